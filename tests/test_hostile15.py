"""Attacks on what issue 15 changed, each a defect found and fixed: compile ahead
(bench/runner/local.py) under plugins that exit or hang and under Ctrl-C, the speed
verdicts of `optbench compare` on hand-edited results, tools/perf_ratios.py on a partial
bench.json."""
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from bench.runner import local
from bench.runner.executors import Limits
from tests.conftest import ROOT, interruptible, wait_for
from tests.test_compile_ahead import programs


@pytest.mark.parametrize("ahead", [True, False])
@pytest.mark.parametrize("where", ["prepare_program", "train_prepared"])
def test_plugin_code_calling_sys_exit_fails_its_cells_only(monkeypatch, ahead, where):
    """As a worker process that exits does (--executor processes): before, the run ended
    with the plugin's exit code, no line said why, no table was merged."""
    from bench.train import engine

    planned = programs(["optax:sgd", "optax:adam", "lion"])
    original, calls = getattr(engine, where), []

    def exiting(*args, **kwargs):  # programs are prepared and trained in order: adam's is 2nd
        calls.append(where)
        if len(calls) == 2:
            sys.exit(3)
        return original(*args, **kwargs)

    monkeypatch.setattr(engine, where, exiting)
    done = list(local.run_local(planned, None, Limits(compile_ahead=ahead)))
    assert [(c.optimizer, r.seeds[0].status.value) for c, r in done] == [
        ("optax:sgd", "done"), ("optax:adam", "error"), ("lion", "done")]
    assert "called sys.exit(3)" in done[1][1].error


def test_cancel_stops_a_preparation_stuck_in_python_code():
    """A plugin looping forever in the preparing thread: cancel() ends it (before, a Ctrl-C
    waited for it without end)."""
    entered, left = threading.Event(), threading.Event()

    def stuck():
        entered.set()
        try:
            while True:  # the gate pattern of tests/plugins/gate.py, with no release
                time.sleep(0.01)
        finally:
            left.set()

    thread = local.InThread(stuck)
    assert entered.wait(timeout=60)
    thread.cancel()
    assert left.is_set()
    with pytest.raises(KeyboardInterrupt):
        thread.result()


def test_ctrl_c_while_a_hung_plugin_is_prepared_ahead_saves_and_exits(tmp_path):
    """--compile-ahead: the run waits for the next program's preparation (test:gate, whose
    init waits at a gate never opened) when Ctrl-C comes: exit 130, the saved cell kept, no
    hang (before, the run waited for the preparation to end, forever)."""
    out, gate = tmp_path / "run", tmp_path / "gate"
    gate.mkdir()
    command = [sys.executable, "-m", "bench.cli", "run", "--plugin",
               str(ROOT / "tests" / "plugins" / "gate.py"), "--workloads", "rosenbrock-2d",
               "--optimizers", "sgd,test:gate", "--steps", "20", "--seeds", "1",
               "--compile-ahead", "--out", str(out)]
    process = subprocess.Popen(interruptible(command), cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT),
                                    "OPTBENCH_TEST_GATE": str(gate)})
    lines = []
    for line in process.stderr:  # until the run waits for test:gate's preparation
        lines.append(line)
        if "compile: rosenbrock-2d x test:gate" in line:
            break
    # the line comes as the preparation starts: its init reaches the gate a moment later (it
    # was asserted at once, and a fresh clone's run lost that race)
    wait_for(gate / "started", process)
    process.send_signal(signal.SIGINT)
    try:
        _, stderr = process.communicate(timeout=120)  # the gate stays shut: no release
    finally:
        (gate / "release").touch()  # a broken run ends instead of lingering
        process.kill() if process.poll() is None else None
    assert process.returncode == 130, stderr
    stderr = "".join(lines) + stderr
    assert "interrupted: 1 finished cell(s) saved in" in stderr and "Traceback" not in stderr
    assert len(list((out / "cells").glob("*.json"))) == 1


def test_chunk_times_leave_out_text_in_a_hand_edited_table():
    """train_seconds as text (a table edited by hand): compare raised ValueError."""
    import pandas as pd

    from bench.report import speed

    rows = pd.DataFrame({"step": [10, 20, "x", 40],
                         "train_seconds": ["0.1", "0.2", "0.3", "abc"]}, dtype=object)
    assert speed.chunk_step_times(rows).tolist() == pytest.approx([0.01, 0.01])


def test_the_bootstrap_resamples_in_bounded_batches(monkeypatch):
    """A cell of 200,000 chunks took 6.6 GB in one draw; now no draw exceeds MAX_DRAWS, and
    a sample that fits one batch gets exactly the numbers of one call."""
    import numpy as np

    from bench.report import speed

    sample = np.random.default_rng(1).lognormal(size=50)
    one_call = np.median(np.random.default_rng(0).choice(
        sample, size=(speed.BOOTSTRAP, sample.size)), axis=1)
    np.testing.assert_array_equal(speed.resampled_medians(np.random.default_rng(0), sample),
                                  one_call)

    sizes = []

    class Watched:
        def __init__(self):
            self.rng = np.random.default_rng(0)

        def choice(self, values, size):
            sizes.append(size[0] * size[1])
            return self.rng.choice(values, size=size)

    monkeypatch.setattr(speed, "MAX_DRAWS", 1000)
    medians = speed.resampled_medians(Watched(), sample)
    assert medians.shape == (speed.BOOTSTRAP,) and max(sizes) <= 1000
    assert sum(sizes) == speed.BOOTSTRAP * sample.size


def test_a_manifest_with_infinite_cpus_reads_as_unknown_load():
    """json reads Infinity; int(inf) raised OverflowError out of `optbench compare`."""
    from bench.report import setups

    manifest = {"host": {"cpus": float("inf"), "load_average": [3.0, 2.0, 1.0]}}
    assert setups._load(manifest) is None
    assert setups.load_note(["a", "b"], [manifest, {"host": {"cpus": 2,
                                                            "load_average": [0.1]}}]) is None


def test_final_metric_figure_is_repeatable_and_its_legend_clears_the_x_label(tmp_path,
                                                                           monkeypatch):
    """Every sgd seed diverges on rosenbrock-2d (nothing finite to draw), adam's finish: the
    figure draws, the same bytes twice; its legend sat over the x label on short panels."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import bench
    from bench import cli
    from bench.report import figure_files, plots

    out = tmp_path / "run"
    assert cli.main(["run", "--workloads", "rosenbrock-2d", "--optimizers", "sgd,adam",
                     "--steps", "20", "--seeds", "2", "--no-report", "--out", str(out)]) in (0, 1)
    runs = bench.load(out).runs
    assert set(runs[runs["optimizer"] == "sgd"]["status"]) == {"diverged"}
    drawn, save = [], plots._save
    monkeypatch.setattr(plots, "_save", lambda fig, path, **kw: (drawn.append(fig),
                                                                 save(fig, path, **kw))[1])
    first = plots.final_metric(runs, tmp_path).read_bytes()
    assert plots.final_metric(runs, tmp_path).read_bytes() == first
    fig = drawn[0]
    fig.dpi = figure_files.DPI  # as saved: the x label is placed when the figure is drawn
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        if ax.get_visible() and ax.get_legend() is not None:
            legend = ax.get_legend().get_window_extent(renderer)
            label = ax.xaxis.label.get_window_extent(renderer)
            assert legend.y1 <= label.y0  # display coordinates: y grows upwards


@pytest.mark.parametrize("argv", [["--bogus"], ["a", "b"], ["--smal"]])
def test_gpu_check_refuses_what_is_not_a_folder_or_small(argv, capsys):
    """'--bogus' was taken for the output folder: a quick-preset run, then a traceback."""
    from tools import gpu_check

    assert gpu_check.main(argv) == 2
    assert capsys.readouterr().err.startswith("gpu_check: ")


def test_terminal_tables_and_notes_never_send_an_escape_sequence(tmp_path, capsys):
    """A shared results folder's label or manifest with ESC in it: `optbench compare` sent
    it raw (a colour, a terminal title) in its table and in its machine note."""
    import io
    import json
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from rich.console import Console

    from bench import cli
    from bench.report import render

    table = render.Table(["optimizer"], [[("ad\x1b[31mam\nsecond line", None)]])
    console = Console(file=io.StringIO(), width=80)
    console.print(render.terminal(table))
    assert "\x1b" not in console.file.getvalue() and "ad\\x1b[31mam" in console.file.getvalue()
    assert "second line" in console.file.getvalue()

    a, b = tmp_path / "a", tmp_path / "b"
    assert cli.main(["run", "--workloads", "rosenbrock-2d", "--optimizers", "adam", "--steps",
                     "20", "--seeds", "1", "--no-report", "--out", str(a)]) == 0
    shutil.copytree(a, b)
    data = json.loads((b / "manifest.json").read_text())
    data["host"]["cpu_model"] = "evil\x1b]0;title\x07"
    (b / "manifest.json").write_text(json.dumps(data))
    runs = pq.read_table(b / "runs.parquet")
    edited = pa.Table.from_pandas(runs.to_pandas().assign(label="ad\x1b[31mam"),
                                  preserve_index=False)
    pq.write_table(edited.replace_schema_metadata(runs.schema.metadata), b / "runs.parquet")
    capsys.readouterr()
    assert cli.main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr()
    assert "\x1b" not in out.out + out.err
    assert "evil\\x1b]0;title\\x07" in out.out + out.err
