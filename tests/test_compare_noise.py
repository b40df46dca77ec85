"""compare's speed verdict knows the noise: per-chunk step times from curves.parquet, a
bootstrap interval of the ratio of medians, and a regression only beyond it (speed.py)."""
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import bench
from bench import cli
from bench.records import Timings
from bench.report import compare, compare_pages, setups, speed
from bench.runner.store import write_tables
from tests.conftest import run_optbench


def chunked(curves: pd.DataFrame, step_times, steps_per_chunk: int = 10) -> pd.DataFrame:
    """The curves with every cell's rows replaced by one row per chunk whose per-step times
    are `step_times` (the other columns: the cell's first row, repeated)."""
    step_times = np.asarray(step_times, dtype=float)
    blocks = []
    for _, group in curves.groupby(["cell_id", "seed"]):
        block = pd.concat([group.iloc[[0]]] * len(step_times), ignore_index=True)
        block["step"] = steps_per_chunk * np.arange(1, len(step_times) + 1)
        block["train_seconds"] = np.cumsum(step_times * steps_per_chunk)
        blocks.append(block)
    return pd.concat(blocks, ignore_index=True)


def folder(smoke_run, tmp_path, name, step_times):
    """A copy of the smoke run's tables whose cells trained in chunks of `step_times`."""
    out = tmp_path / name
    out.mkdir()
    shutil.copy(smoke_run / "manifest.json", out / "manifest.json")
    curves = chunked(pd.read_parquet(smoke_run / "curves.parquet"), step_times)
    write_tables(out, pd.read_parquet(smoke_run / "runs.parquet"), curves, token=name)
    return out


def compared(*folders):
    return compare.compare([bench.load(f) for f in folders], "final_test_accuracy")


def draw(seed: int, chunks: int, scale: float = 1e-3, sigma: float = 0.3) -> np.ndarray:
    """Chunk step times around `scale` seconds, skewed as on a shared machine."""
    return scale * np.random.default_rng(seed).lognormal(0.0, sigma, chunks)


@pytest.fixture(scope="module")
def uneven_run(tmp_path_factory):
    """A real run whose last chunk is shorter than the others (120 steps, chunks of 50)."""
    out = tmp_path_factory.mktemp("uneven") / "run"
    assert cli.main(["run", "--preset", "smoke", "--steps", "120", "--seeds", "1",
                     "--optimizers", "optax:sgd", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("run", ["smoke_run", "uneven_run"])
def test_chunk_step_times_from_the_curves_are_the_runs_timings(run, request):
    root = request.getfixturevalue(run)
    curves = pd.read_parquet(root / "curves.parquet")
    cells = sorted((root / "cells").glob("*.json"))
    assert cells
    for path in cells:
        recorded = json.loads(path.read_text())["timings"]
        known = Timings(chunk_seconds=recorded["chunk_seconds"], chunk_steps=recorded["chunk_steps"])
        rows = curves[curves["cell_id"] == path.stem]
        assert rows["seed"].nunique() >= 1
        np.testing.assert_allclose(speed.chunk_step_times(rows), known.step_times, rtol=1e-9)
    if run == "uneven_run":
        assert known.chunk_steps == [50, 50, 20]


def test_chunk_step_times_leave_out_repeated_and_backward_rows():
    rows = pd.DataFrame({"step": [500, 250, 250, 600, 700, 800],
                         "train_seconds": [1.5, 1.0, 1.0, 1.7, 1.6, np.nan]})
    # 250 steps in 1 s, 250 in 0.5 s, 100 in 0.2 s; the clock running backwards is no chunk
    np.testing.assert_allclose(speed.chunk_step_times(rows), [0.004, 0.002, 0.002])
    assert speed.chunk_step_times(pd.DataFrame()).size == 0


def test_identical_chunk_distributions_are_never_flagged(smoke_run, tmp_path):
    times = draw(1, 30)
    a = folder(smoke_run, tmp_path, "a", times)
    b = folder(smoke_run, tmp_path, "b", times[::-1])  # the same chunks in another order
    for cmp in (compared(a, b), compared(smoke_run, smoke_run)):
        assert (cmp.rows["speed_ratio"] == 1).all()
        assert (cmp.rows["speed_verdict"] == "within noise").all()
        assert compare.regressions(cmp, 0) == []


def test_a_clear_2x_slowdown_with_many_chunks_is_flagged(smoke_run, tmp_path):
    a = folder(smoke_run, tmp_path, "fast", draw(1, 30))
    b = folder(smoke_run, tmp_path, "slow", 2 * draw(2, 30))
    rows = compared(a, b).rows
    assert (rows["speed_verdict"] == "slower").all()
    assert (rows["speed_low"] < rows["speed_ratio"]).all()
    assert (rows["speed_ratio"] < rows["speed_high"]).all() and (rows["speed_high"] < 1).all()
    assert rows["speed_ratio"].between(0.4, 0.6).all()
    result = run_optbench("compare", str(a), str(b), "--fail-on-regression", "15",
                          "--out", str(tmp_path / "cmp"))
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if "speed" in line]
    assert len(lines) == 2 and all("slow: synthetic-mlp x optax:" in line for line in lines)
    assert all(", slower (-" in line and "x [" in line for line in lines)
    # the same slowdown is not beyond a threshold it does not reach
    assert compare.regressions(compared(a, b), 60) == []


def test_a_noisy_small_difference_is_within_noise_and_never_flagged(smoke_run, tmp_path):
    base = np.linspace(1e-3, 20e-3, 20)  # chunks spread 20-fold: a busy shared machine
    other = 1.1 * np.random.default_rng(3).permutation(base)
    a = folder(smoke_run, tmp_path, "a", base)
    b = folder(smoke_run, tmp_path, "b", other)
    cmp = compared(a, b)
    ratio = cmp.rows["speed_ratio"]
    assert ratio.to_numpy() == pytest.approx(1 / 1.1)  # 9% slower at the medians ...
    assert (cmp.rows["speed_low"] < 1).all() and (cmp.rows["speed_high"] > 1).all()
    assert (cmp.rows["speed_verdict"] == "within noise").all()
    assert compare.regressions(cmp, 1) == []  # ... which the old rule flagged at 1%
    assert "within noise" in compare_pages.markdown(cmp)


def words(page: str) -> str:
    """An HTML page's text as a reader sees it: a figure's spread is on a line of its own
    (render._figure), its words unchanged."""
    return page.replace("<span class=spread>", "").replace("</span>", "")


def test_too_few_chunks_are_not_judged_and_say_so(smoke_run, tmp_path):
    a = folder(smoke_run, tmp_path, "a", [1e-3, 1e-3])
    b = folder(smoke_run, tmp_path, "b", [2e-3, 2e-3])
    cmp = compared(a, b)
    assert (cmp.rows["speed_ratio"] == 0.5).all()
    assert (cmp.rows["speed_verdict"] == "too few chunks").all()
    assert compare.regressions(cmp, 5) == []
    flags = compare_pages.Flags(5.0)
    assert [row[0][0] for row in compare_pages.table(cmp, flags).rows] == ["—", "—"]
    for page in (compare_pages.markdown(cmp, flags), words(compare_pages.html_page(cmp, flags))):
        assert "0.50x, too few chunks to judge (2 vs 2)" in page
        assert "not judged under 3 chunks a side (a chunk is eval_every steps" in page
    result = run_optbench("compare", str(a), str(b), "--out", str(tmp_path / "cmp"))
    assert "speed vs baseline: the baseline's median step time" in result.stdout
    assert "lower eval_every" in result.stdout  # how to get a verdict next time


def test_the_interval_is_shown_everywhere_and_repeatable(smoke_run, tmp_path):
    a = folder(smoke_run, tmp_path, "a", draw(1, 12, sigma=0.6))
    b = folder(smoke_run, tmp_path, "b", draw(2, 12, sigma=0.6))
    first, second = compared(a, b), compared(a, b)
    pd.testing.assert_frame_equal(first.rows, second.rows)
    row = next(first.rows.itertuples())
    text = compare.speed_of(row).describe()
    assert text == f"{row.speed_ratio:.2f}x [{row.speed_low:.2f}, {row.speed_high:.2f}]," \
                   f" {row.speed_verdict}"
    console = Console(file=io.StringIO(), width=400)
    console.print(compare_pages.terminal_table(first))
    pages = (console.file.getvalue(), compare_pages.markdown(first),
             words(compare_pages.html_page(first)))
    for page in pages:
        assert text in page
    assert compare_pages.markdown(first) == compare_pages.markdown(second)
    assert "(above 1: faster)" in compare_pages.markdown(first)  # the column's key
    assert "lower eval_every" not in compare_pages.markdown(first)  # every cell was judged


def test_tables_without_curves_keep_the_ratio_and_are_not_judged(smoke_run, tmp_path):
    out = tmp_path / "bare"
    out.mkdir()
    shutil.copy(smoke_run / "manifest.json", out / "manifest.json")
    runs = pd.read_parquet(smoke_run / "runs.parquet")
    slow = runs.assign(step_time_median_s=2 * runs["step_time_median_s"])
    empty = pd.read_parquet(smoke_run / "curves.parquet").iloc[:0]
    write_tables(out, slow, empty, token="bare")
    cmp = compared(smoke_run, out)
    assert cmp.rows["speed_ratio"].to_numpy() == pytest.approx(0.5)
    assert (cmp.rows["speed_verdict"] == "too few chunks").all()
    assert compare.regressions(cmp, 5) == []


MACHINE_X = {"device": {"platform": "cpu", "kind": "cpu", "count": 1},
             "host": {"name": "vm", "cpu_model": "Xeon <X>", "cores": 2, "cpus": 2}}


@pytest.mark.parametrize("other, says", [
    ({**MACHINE_X, "host": {"name": "elsewhere", "cpu_model": "Xeon <X>", "cores": 2, "cpus": 2}},
     None),  # another host name, the same machine: no note
    ({**MACHINE_X, "host": {"name": "vm", "cpu_model": "EPYC", "cores": 16, "cpus": 16}},
     "Speed ratios between different machines (CPU model: a Xeon <X> vs b EPYC; cores: a 2 vs"
     " b 16; usable CPUs: a 2 vs b 16) measure the machines too."),
    ({"device": MACHINE_X["device"], "host": {"name": "vm", "cpus": 2}},  # an older manifest
     "Speed ratios between different machines (CPU model: a Xeon <X> vs b unknown; cores: a 2"
     " vs b unknown) measure the machines too."),
])
def test_the_speed_note_names_the_machines(other, says):
    notes = setups.setup_notes(["a", "b"], [MACHINE_X, other])
    assert notes == ([says] if says else [])


def test_manifests_that_cannot_tell_the_machines_apart_say_so():
    old = {"host": {"name": "vm", "cpus": 2}}
    (note,) = setups.setup_notes(["a", "b"], [old, old])
    assert "whether the machines differ is unknown" in note


def test_a_run_started_on_a_busy_machine_is_noted_with_every_runs_load():
    quiet = {"host": {**MACHINE_X["host"], "load_average": [0.4, 0.5, 0.5]}}
    busy = {"host": {**MACHINE_X["host"], "load_average": [4.79, 3.15, 2.69]}}
    assert setups.load_note(["a", "b"], [quiet, quiet]) is None  # 0.2 per CPU
    note = setups.load_note(["a", "b", "c"], [quiet, busy, {"host": {"load_average": "x"}}])
    assert note.startswith("A run started on a busy machine (1-minute load average: a 0.4 on 2"
                           " CPUs vs b 4.79 on 2 CPUs vs c unknown).")
    assert setups.setup_notes(["a", "b"], [quiet, busy]) == [setups.load_note(["a", "b"],
                                                                             [quiet, busy])]


def test_a_run_that_compiled_ahead_is_noted():
    """--compile-ahead stretches step times on a CPU; a manifest written before the flag
    existed trained beside no compile, so it reads "off", not "unknown"."""
    plain = {**MACHINE_X, "provenance": {"executor": {"name": "local", "workers": 1}}}
    ahead = {**MACHINE_X, "provenance": {"executor": {"name": "local", "workers": 1,
                                                      "compile_ahead": True}}}
    assert setups.setup_notes(["a", "b"], [plain, plain]) == []
    assert setups.setup_notes(["a", "b"], [plain, ahead]) == [
        "The runs ran differently: compile ahead: a off vs b on. Speed ratios compare these"
        " as much as the code."]
