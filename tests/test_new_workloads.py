"""The workloads beyond classifiers under the whole harness: every executor, tuning (a sweep
in one program), a schedule, and their own metrics and targets in the tables and report."""
import pandas as pd
import pytest

from tests.conftest import run_optbench

# one of each family (the others of a family share its model, loss and metrics; modadd's
# transformer is synthetic-lm's, and its full-batch steps are the convex problems'): each
# transformer program costs ~10 s to compile and probe here
NEW = ["mnist1d-gru@w4", "synthetic-lm@w32", "lstsq-illcond", "saddle-2d"]


def matrix(tmp_path, names) -> str:
    path = tmp_path / "m.toml"
    path.write_text(
        "seeds = 1\nsteps = 10\nbudget = 2\nschedules = [\"warmup_cosine\"]\n"
        f"workloads = {names!r}\n".replace("'", '"')
        + 'optimizers = [{ name = "adam", search = { learning_rate = [1e-4, 1e-2] } }]\n')
    return str(path)


def check(out, names) -> pd.DataFrame:
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs.workload) == set(names)
    assert set(runs.status) <= {"done", "diverged"} and "done" in set(runs.status)
    for workload, group in runs.groupby("workload"):
        roles = group.groupby("role").size().to_dict()
        assert roles == {"oneshot": 1, "trial": 2, "tuned": 1}, (workload, roles)
        trials = group[group.role == "trial"]
        assert set(trials.trials_in_program) == {2}, workload  # the sweep is one program
        assert group.schedule.str.startswith("warmup_cosine(").all(), workload
        metric = "final_" + group.target_metric.iloc[0]
        assert group.loc[group.status == "done", metric].notna().all(), workload
    return runs


def test_every_new_workload_tunes_and_schedules_under_the_processes_executor(tmp_path):
    out = tmp_path / "out"
    # one worker: two on this 2-core machine only add a process (dispatch over several is
    # test_resilience's); the report is the dask run's, below
    result = run_optbench("run", matrix(tmp_path, NEW), "--executor", "processes",
                          "--workers", "1", "--no-report", "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = check(out, NEW)
    directions = runs.drop_duplicates("workload").set_index("workload").target_direction
    assert directions["synthetic-lm@w32"] == "min" and directions["mnist1d-gru@w4"] == "max"
    assert {"final_val_excess_loss", "final_val_suboptimality", "final_val_x"} <= set(runs.columns)


def test_new_workloads_run_under_dask(tmp_path):
    pytest.importorskip("distributed")
    names = ["logreg-convex", "rosenbrock-2d"]
    out = tmp_path / "out"
    result = run_optbench("run", matrix(tmp_path, names), "--executor", "dask", "--workers", "1",
                          "--out", str(out), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning" not in result.stderr, result.stderr[-3000:]
    runs = check(out, names)
    assert "final_val_suboptimality" in runs.columns
    assert (out / "plots" / "trajectories.png").is_file()  # the 2-D function's paths
