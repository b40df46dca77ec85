"""What the user waits for besides training (issue 15: the quick preset's overhead share,
1 - train_s / wall clock, under 30% on a first run and under 15% on a rerun with warm
caches), what a compile costs when the persistent cache has it, and how the speed verdicts of
`optbench compare` read between the two runs, which train the same code.

`optbench run --preset quick` as a user starts it, twice, in fresh processes: first with an
empty cache folder ($OPTBENCH_CACHE: generated data and compiled programs), then again with
it warm. Wall clock is the whole command (interpreter start to the report written); train_s
is the sum of the programs' training clocks. Run with `make bench`; under `make test` a
two-cell matrix checks that the measurement works.
"""
import os
import subprocess
import sys
import time

import pandas as pd

from tests.conftest import ROOT


def run_wall(args: list[str], cache) -> float:
    env = {**os.environ, "OPTBENCH_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    for name in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS",
                 "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"):  # the test session's, not a user's
        env.pop(name, None)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "bench.cli", "run", *args], env=env,
                          capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stderr[-2000:]
    return wall


def programs(out) -> pd.DataFrame:
    """One row per program: a sweep's trials share their program's timings, so equal
    timing columns within a workload and optimizer are one program counted once."""
    runs = pd.read_parquet(out / "runs.parquet").drop_duplicates("cell_id")
    return runs.drop_duplicates(["workload", "optimizer", "train_s", "compile_s"])


def test_overhead_share_first_run_and_rerun(benchmark, tmp_path):
    # make bench: the quick preset with its report, as a user waits for it; make test: a check
    # that the measurement works, on two cells without one
    matrix = ["--preset", "quick"] if not benchmark.disabled else [
        "--workloads", "rosenbrock-2d", "--optimizers", "adam,sgd", "--steps", "50", "--seeds", "1",
        "--no-report"]
    cache = tmp_path / "cache"
    walls, tables = {}, {}
    for name in ("first", "rerun"):
        out = tmp_path / name
        walls[name] = run_wall([*matrix, "--out", str(out)], cache)
        tables[name] = programs(out)
    first, rerun = tables["first"], tables["rerun"]
    assert first["compile_s"].sum() > 0 and rerun["compile_cache_hits"].sum() > 0
    assert rerun["compile_s"].sum() < first["compile_s"].sum()  # the rerun loads, not compiles
    speeds = same_code_speed(tmp_path / "first", tmp_path / "rerun")
    assert 0 <= speeds["same_code_regressions_15"] <= speeds["same_code_beyond_noise"] \
        <= speeds["same_code_judged"] <= len(first)
    benchmark.group = "overhead"
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)  # the figures are extra_info
    if benchmark.stats is None:
        return
    info = benchmark.extra_info
    for name, table in tables.items():
        train = float(table["train_s"].sum())
        info[f"{name}_wall_s"] = walls[name]
        info[f"{name}_train_s"] = train
        info[f"{name}_overhead_share"] = 1 - train / walls[name]
        for column in ("setup_s", "compile_s", "compile_cached_s", "eval_s", "probe_s", "data_s"):
            info[f"{name}_{column}"] = float(table[column].sum())
    info["compile_cold_s"] = float(first["compile_s"].sum() + first["compile_cached_s"].sum())
    info["compile_cache_hit_s"] = float(rerun["compile_cached_s"].sum())
    info.update(speeds)


def same_code_speed(first, rerun) -> dict:
    """The two runs train the same programs (the rerun only loads them from the cache), so
    each cell's speed verdict of the rerun against the first run should read "within noise":
    how many read "faster" or "slower", and how many `compare --fail-on-regression 15` flags
    (issue 15: it flagged all 14 cells of a rerun)."""
    from bench.report import compare
    from bench.runner.results import load

    rows = compare.compare([load(first), load(rerun)]).rows
    paces = [compare.speed_of(r) for r in rows.itertuples()]
    judged = [p for p in paces if p.verdict != "too few chunks"]
    return {"same_code_judged": len(judged),
            "same_code_beyond_noise": sum(p.verdict != "within noise" for p in judged),
            "same_code_regressions_15": sum(p.regression(15) for p in judged),
            "same_code_ratio_min": min((p.ratio for p in judged), default=None),
            "same_code_ratio_max": max((p.ratio for p in judged), default=None)}
