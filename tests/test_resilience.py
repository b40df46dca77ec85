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

from tests.conftest import ROOT, run_optbench

# five cells, one program of two trials among them (tests/matrices/resilience.toml)
MATRIX = [str(ROOT / "tests" / "matrices" / "resilience.toml")]
METRICS = ["cell_id", "seed", "status", "trials_in_program", "final_train_loss",
           "final_val_accuracy", "final_test_accuracy", "target_step", "algoperf_step"]


def start(out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "bench.cli", "run", *MATRIX, "--out", str(out),
                             *extra], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_cells(out: Path, count: int, process: subprocess.Popen, limit: float = 240) -> None:
    deadline = time.time() + limit
    while len(list((out / "cells").glob("*.json"))) < count:
        assert process.poll() is None, process.communicate()
        assert time.time() < deadline, "no cells finished in time"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> pd.DataFrame:
    out = tmp_path_factory.mktemp("whole") / "run"
    result = run_optbench("run", *MATRIX, "--out", str(out))
    assert result.returncode == 0, result.stderr
    return pd.read_parquet(out / "runs.parquet")


def same_results(out: Path, reference: pd.DataFrame) -> None:
    runs = pd.read_parquet(out / "runs.parquet")
    key = ["cell_id", "seed"]
    pd.testing.assert_frame_equal(runs[METRICS].sort_values(key).reset_index(drop=True),
                                  reference[METRICS].sort_values(key).reset_index(drop=True))


@pytest.mark.parametrize("sig,code", [(signal.SIGKILL, -9), (signal.SIGINT, 130)])
def test_killed_mid_run_then_rerun_loses_only_cells_in_flight(tmp_path, uninterrupted, sig, code):
    out = tmp_path / "run"
    process = start(out)
    wait_for_cells(out, 2, process)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    if sig == signal.SIGINT:
        assert "interrupted: finished cells are saved" in stderr and "Traceback" not in stderr
        assert len(pd.read_parquet(out / "runs.parquet")["cell_id"].unique()) >= 2
    finished = {p.name: p.stat().st_mtime_ns for p in (out / "cells").glob("*.json")}
    assert len(finished) >= 2
    assert not list(out.rglob("*.tmp")) or sig == signal.SIGKILL  # SIGINT cleans up its temp files

    rerun = run_optbench("run", *MATRIX, "--out", str(out))
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(finished)} of 5 cells already finished" in rerun.stderr
    for name, mtime in finished.items():  # not recomputed, not rewritten
        assert (out / "cells" / name).stat().st_mtime_ns == mtime
    same_results(out, uninterrupted)


def test_a_different_matrix_is_refused_unless_resume_or_force(tmp_path):
    out = tmp_path / "run"
    assert run_optbench("run", "--preset", "smoke", "--steps", "50", "--out", str(out)).returncode == 0
    other = ["run", "--preset", "smoke", "--steps", "50", "--optimizers", "optax:sgd,optax:lion",
             "--out", str(out)]
    refused = run_optbench(*other)
    assert refused.returncode == 2
    assert "holds another matrix (smoke, 2 cells; this one has 2, 1 in common)" in refused.stderr
    resumed = run_optbench(*other, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "1 of 2 cells already finished" in resumed.stderr
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs["optimizer"]) == {"optax:sgd", "optax:adam", "optax:lion"}


def test_a_folder_in_use_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("pid 4242")
        lock.flush()
        result = run_optbench("run", "--preset", "smoke", "--steps", "50", "--out", str(out))
    assert result.returncode == 2
    assert "is in use by another optbench run (pid 4242)" in result.stderr
    assert run_optbench("run", "--preset", "smoke", "--steps", "50", "--out", str(out)).returncode == 0


def test_a_damaged_cell_file_is_set_aside_and_rerun(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--preset", "smoke", "--steps", "50", "--out", str(out)]
    assert run_optbench(*args).returncode == 0
    damaged = sorted((out / "cells").glob("*.parquet"))[0]
    damaged.write_bytes(b"not a parquet file")
    rerun = run_optbench(*args)
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
    (lambda o: (o / "runs.parquet").write_bytes(b"garbage"), "report", "is corrupt"),
    (lambda o: (o / "manifest.json").write_text("{not json"), "report", "is unreadable or not JSON"),
    (lambda o: (o / "manifest.json").write_text(json.dumps({"schema_version": 99})), "report",
     "has results schema version 99; this optbench reads version 2"),
    (lambda o: (o / "manifest.json").write_text(json.dumps({"schema_version": 99})), "run",
     "has results schema version 99"),
    (lambda o: (o / "manifest.json").unlink(), "run", "is not empty and not an optbench results folder"),
])
def test_damaged_or_foreign_folders_are_one_line_errors(tmp_path, smoke_run, damage, command, message):
    out = bad_folder(tmp_path, smoke_run, damage)
    args = ["report", str(out)] if command == "report" else ["run", "--preset", "smoke", "--out", str(out)]
    result = run_optbench(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_an_unwritable_output_is_one_line():
    result = run_optbench("run", "--preset", "smoke", "--out", "/proc/optbench-results")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "cannot create results folder" in result.stderr


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
    started = time.time()
    result = run_optbench("run", "--preset", "smoke", "--steps", "100", "--plugin", str(plugin),
                          "--optimizers", "test:raises,test:nan,test:hangs,optax:sgd",
                          "--executor", "processes", "--workers", "2", "--cell-timeout", "20",
                          "--out", str(out))
    assert result.returncode == 1, result.stderr
    assert time.time() - started < 200
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
    result = run_optbench("run", *MATRIX, "--out", str(out), *executor)
    assert result.returncode == 0, result.stderr
    same_results(out, uninterrupted)
