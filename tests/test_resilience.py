"""Runs that survive anything: real processes killed mid-run, folders shared by mistake,
damaged files, and workers that raise, return NaN or hang."""
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, interruptible, optbench_here, run_optbench

# five cells, one program of two trials among them (tests/matrices/resilience.toml); the
# gated matrix adds a last cell that waits at a gate the test opens (tests/plugins/gate.py)
# none of these tests reads a report: --no-report spares each run ~1.5 s of figures
GATED = [str(ROOT / "tests" / "matrices" / "gated.toml"), "--no-report"]
SMOKE_50 = ["--preset", "smoke", "--steps", "50", "--no-report"]
METRICS = ["cell_id", "seed", "status", "trials_in_program", "final_train_loss",
           "final_val_accuracy", "final_test_accuracy", "target_step", "algoperf_step"]


def start_gated(out: Path, gate: Path, *extra: str) -> subprocess.Popen:
    """The gated matrix in its own process; its last cell waits until `gate`/release exists."""
    gate.mkdir(exist_ok=True)
    command = [sys.executable, "-m", "bench.cli", "run", *GATED, "--out", str(out), *extra]
    return subprocess.Popen(interruptible(command), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "OPTBENCH_TEST_GATE": str(gate)})


def wait_at_gate(gate: Path, process: subprocess.Popen, out: Path | None = None,
                 saved: int = 0) -> None:
    """Until the gated cell is in flight (it wrote `started`) and `saved` cells are in
    `out`: events, not a guess (the gated cell is prepared while the cell before it still
    trains, bench/runner/local.py). The deadline only turns a broken run into a failure
    instead of a hang."""
    deadline = time.monotonic() + 600
    while not (gate / "started").exists() or (
            saved and len(list((out / "cells").glob("*.json"))) < saved):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the gated cell never started"
        time.sleep(0.02)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> pd.DataFrame:
    """The gated matrix run whole, its gate open from the start."""
    out, gate = tmp_path_factory.mktemp("whole") / "run", tmp_path_factory.mktemp("gate")
    (gate / "release").touch()
    process = start_gated(out, gate)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr
    return pd.read_parquet(out / "runs.parquet")


def same_results(out: Path, reference: pd.DataFrame) -> None:
    runs = pd.read_parquet(out / "runs.parquet")
    key = ["cell_id", "seed"]
    pd.testing.assert_frame_equal(runs[METRICS].sort_values(key).reset_index(drop=True),
                                  reference[METRICS].sort_values(key).reset_index(drop=True))


@pytest.mark.parametrize("sig,code", [(signal.SIGKILL, -9), (signal.SIGINT, 130)])
def test_killed_mid_run_then_rerun_loses_only_cells_in_flight(tmp_path, uninterrupted, sig, code):
    out, gate = tmp_path / "run", tmp_path / "gate"
    process = start_gated(out, gate)
    wait_at_gate(gate, process, out, saved=5)  # five cells saved, the sixth in flight
    process.send_signal(sig)
    (gate / "release").touch()  # a SIGINT is raised once the main thread runs Python again
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == code, stderr
    if sig == signal.SIGINT:
        assert "interrupted: 5 finished cell(s) saved in" in stderr and "Traceback" not in stderr
        assert len(pd.read_parquet(out / "runs.parquet")["cell_id"].unique()) == 5
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert len(finished) == 5
    assert not list(out.rglob("*.tmp")) or sig == signal.SIGKILL  # SIGINT cleans up its temp files

    rerun = start_gated(out, gate)
    _, stderr = rerun.communicate(timeout=600)
    assert rerun.returncode == 0, stderr
    assert "5 of 6 cells already finished" in stderr
    assert not (out / "live").exists()  # no partial curves outlive the run that ended
    for name, mtime in finished.items():  # not recomputed, not rewritten
        assert (out / "cells" / name).stat().st_mtime_ns == mtime
    same_results(out, uninterrupted)


def test_a_different_matrix_is_refused_unless_resume_or_force(tmp_path):
    out = tmp_path / "run"
    assert optbench_here("run", *SMOKE_50, "--out", str(out)).returncode == 0
    other = ["run", *SMOKE_50, "--optimizers", "optax:sgd,optax:lion",
             "--out", str(out)]
    refused = optbench_here(*other)  # in this process: a refusal must release the lock
    assert refused.returncode == 2
    assert "holds another matrix (smoke, 2 cells; this one has 2, 1 in common)" in refused.stderr
    resumed = optbench_here(*other, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 of 2 cells already finished" in resumed.stderr
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs["optimizer"]) == {"optax:sgd", "optax:adam", "optax:lion"}


def test_a_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text("pid 4242")
    folder = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = run_optbench("run", *SMOKE_50, "--out", str(out))
    finally:
        os.close(folder)
    assert result.returncode == 2
    assert "is in use by another optbench run (pid 4242)" in result.stderr
    assert optbench_here("run", *SMOKE_50, "--out", str(out)).returncode == 0


def test_deleting_the_lock_file_mid_run_does_not_let_a_second_run_in(tmp_path):
    out, gate = tmp_path / "run", tmp_path / "gate"
    first = start_gated(out, gate)
    wait_at_gate(gate, first)
    (out / ".lock").unlink()
    second = optbench_here("run", *GATED, "--out", str(out))
    (gate / "release").touch()
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    assert second.returncode == 2 and "is in use by another optbench run" in second.stderr


def test_a_damaged_cell_file_is_set_aside_and_rerun(tmp_path):
    out = tmp_path / "run"
    args = ["run", *SMOKE_50, "--out", str(out)]
    assert optbench_here(*args).returncode == 0
    damaged = sorted((out / "cells").glob("*.parquet"))[0]
    damaged.write_bytes(b"not a parquet file")
    rerun = optbench_here(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert "1 of 2 cells already finished" in rerun.stderr
    assert damaged.with_suffix(".json.corrupt").exists()
    assert len(pd.read_parquet(out / "runs.parquet")["cell_id"].unique()) == 2


def bad_folder(tmp_path, smoke_run, damage):
    out = tmp_path / "bad"
    out.mkdir()
    for name in ("manifest.json", "runs.parquet", "curves.parquet"):
        (out / name).write_bytes((smoke_run / name).read_bytes())
    damage(out)
    return out


@pytest.mark.parametrize("damage,command,message", [
    (lambda o: (o / "runs.parquet").write_bytes(b"garbage"), "report",
     "has no cells/ folder and its runs.parquet and curves.parquet are missing, damaged"),
    (lambda o: (o / "manifest.json").write_text("{not json"), "report", "is damaged: unreadable or not JSON"),
    (lambda o: (o / "manifest.json").write_text(json.dumps({"schema_version": 99})), "report",
     "has results schema version 99; this optbench reads version 3"),
    (lambda o: (o / "manifest.json").write_text(json.dumps({"schema_version": 99})), "run",
     "has results schema version 99"),
    (lambda o: (o / "manifest.json").unlink(), "run", "is not empty and not an optbench results folder"),
])
def test_damaged_or_foreign_folders_are_one_line_errors(tmp_path, smoke_run, damage, command, message):
    out = bad_folder(tmp_path, smoke_run, damage)
    args = ["report", str(out)] if command == "report" else ["run", "--preset", "smoke", "--out", str(out)]
    result = optbench_here(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_an_unwritable_output_is_one_line():
    result = optbench_here("run", "--preset", "smoke", "--out", "/proc/optbench-results")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cannot create folder" in result.stderr


FAULTY = '''
import time
import jax
import jax.numpy as jnp
import optax
from optimizers import register

@register("test:raises")
def raises(learning_rate: float = 0.1):
    def update(grads, state, params=None):
        raise RuntimeError("update exploded")
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)

@register("test:nan")
def nan(learning_rate: float = 0.1):
    def update(grads, state, params=None):
        return jax.tree.map(lambda g: g * jnp.nan, grads), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)

@register("test:hangs")
def hangs(learning_rate: float = 0.1):
    def init(params):
        time.sleep(600)  # runs while the engine traces init, inside the worker
        return optax.EmptyState()
    return optax.GradientTransformation(init, lambda g, s, p=None: (g, s))
'''


def test_faulty_optimizers_end_in_their_status_and_the_rest_completes(tmp_path):
    plugin = tmp_path / "faulty.py"
    plugin.write_text(FAULTY)
    out = tmp_path / "run"
    # the hanging cell sleeps 600 s: it ending `timeout` (below) and run_optbench's own
    # limit show it was cut, with no timing assertion here
    result = run_optbench("run", "--preset", "smoke", "--steps", "100", "--no-report",
                          "--plugin", str(plugin),
                          "--optimizers", "test:raises,test:nan,test:hangs,optax:sgd",
                          "--executor", "processes", "--workers", "2", "--cell-timeout", "20",
                          "--out", str(out))
    assert result.returncode == 1, result.stderr
    runs = pd.read_parquet(out / "runs.parquet")
    statuses = runs.groupby("optimizer")["status"].agg(set).to_dict()
    assert statuses == {"test:raises": {"error"}, "test:nan": {"diverged"},
                        "test:hangs": {"timeout"}, "optax:sgd": {"done"}}
    assert "update exploded" in runs.loc[runs.optimizer == "test:raises", "error"].iloc[0]
    assert "time limit of 20 s" in runs.loc[runs.optimizer == "test:hangs", "error"].iloc[0]
    assert runs.loc[runs.optimizer == "test:nan", "diverged_step"].notna().all()


@pytest.mark.parametrize("executor", [["--executor", "processes", "--workers", "2"],
                                      ["--executor", "dask", "--workers", "2"]])
def test_other_executors_give_the_local_executors_results(tmp_path, uninterrupted, executor):
    pytest.importorskip("dask.distributed") if "dask" in executor else None
    out = tmp_path / "run"
    result = run_optbench("run", *GATED, "--out", str(out), *executor)  # the gate stays open
    assert result.returncode == 0, result.stderr
    same_results(out, uninterrupted)
