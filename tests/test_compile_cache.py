"""The persistent compilation cache: a rerun loads its executables instead of compiling
them, books that time apart (compile_cached_s, compile_cache_hits), gets the same numbers,
and the switch turns it off. Each run is its own process: JAX decides once per process
whether it uses the cache."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from tests.conftest import ROOT

ARGS = ["run", "--workloads", "rosenbrock-2d", "--optimizers", "adam", "--steps", "20",
        "--seeds", "1"]


def run(out, cache, *extra, env=None):
    environment = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    environment.update(PYTHONPATH=str(ROOT), OPTBENCH_CACHE=str(cache), **(env or {}))
    done = subprocess.run([sys.executable, "-m", "bench.cli", *ARGS, "--out", str(out), *extra],
                          capture_output=True, text=True, timeout=300, env=environment)
    assert done.returncode == 0, done.stderr[-2000:]
    return pd.read_parquet(out / "runs.parquet").iloc[0], done.stderr


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compile-cache")
    cache = root / "cache"
    first = run(root / "first", cache)
    second = run(root / "second", cache)
    off = run(root / "off", cache, "--no-compile-cache")
    off_by_env = run(root / "off-env", cache, env={"OPTBENCH_COMPILE_CACHE": "off"})
    return root, cache, first, second, off, off_by_env


def test_a_rerun_loads_every_executable_and_books_it_apart(runs):
    root, cache, (first, _), (second, stderr), *_ = runs
    assert any((cache / "jax").iterdir())  # under $OPTBENCH_CACHE, never elsewhere
    assert first["compile_cache_hits"] == 0 and first["compile_s"] > 0
    assert first["compile_cached_s"] == 0
    assert second["compile_cache_hits"] == second["compiles"] == first["compiles"]
    assert second["compile_s"] == 0 and second["compile_cached_s"] > 0
    assert "from the cache" in stderr  # the cell's line says where its executables came from
    for column in ("final_val_loss", "final_test_loss", "best_target"):  # same programs
        assert second[column] == first[column]
    manifest = json.loads((root / "second" / "manifest.json").read_text())
    assert manifest["provenance"]["compile_cache"] == str(cache / "jax")


def test_the_switch_compiles_everything_afresh(runs):
    root, _, (first, _), _, (off, _), (off_by_env, _) = runs
    for row in (off, off_by_env):
        assert row["compile_cache_hits"] == 0 and row["compile_cached_s"] == 0
        assert row["compile_s"] > 0 and row["compiles"] == first["compiles"]
        np.testing.assert_equal(row["final_val_loss"], first["final_val_loss"])
    manifest = json.loads((root / "off" / "manifest.json").read_text())
    assert manifest["provenance"]["compile_cache"] == "off"


def test_a_cache_folder_that_cannot_be_made_is_one_warning_and_the_run_goes_on(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    row, stderr = run(tmp_path / "out", blocker)
    assert "warning: no compilation cache" in stderr and "Traceback" not in stderr
    assert row["compile_cache_hits"] == 0 and row["compile_s"] > 0


def test_a_switch_that_is_neither_on_nor_off_is_one_line_before_anything_runs(tmp_path,
                                                                             monkeypatch):
    from tests.conftest import optbench_here

    monkeypatch.setenv("OPTBENCH_COMPILE_CACHE", "of")  # a typo: it would have stayed on
    out = tmp_path / "run"
    result = optbench_here(*ARGS, "--out", str(out))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "optbench: error: OPTBENCH_COMPILE_CACHE='of' is neither on nor off; set it to off (or"
        " 0, false, no) to compile everything afresh, or to on (or 1, true, yes, or unset it)"
        " to use the cache"]
    assert not out.exists()
    monkeypatch.setenv("OPTBENCH_COMPILE_CACHE", " OFF ")  # case and spaces are forgiven
    from bench.train import compile_cache
    assert compile_cache.switch_problem() is None and not compile_cache.enabled()
