"""A run watched while it goes on: partial curves (live/), `report --watch`, progress."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest

import bench
from bench.records import ProgramEvent


def plan(optimizers: list[str], steps: int = 40, eval_every: int = 10, seeds: int = 2):
    import optimizers as registry
    from bench.plan import expand
    from bench.plan import matrix as matrix_mod

    registry.load_builtins()
    matrix = matrix_mod.from_dict(
        {"seeds": seeds, "steps": steps, "optimizers": optimizers,
         "workloads": [{"name": "synthetic-mlp", "eval_every": eval_every}]},
        name="live", source="test")
    return matrix, expand.cells(matrix)


def open_folder(out, cells):
    """A results folder held as a running run holds it, with no training behind it."""
    from bench.runner.store import RunStore

    store = RunStore(out)
    store.open({"matrix": {"name": "live"}, "cells": sorted(c.spec_key for c in cells)}, {})
    return store


def chunk_rows(seeds: list[int], step: int) -> dict[str, np.ndarray]:
    n = len(seeds)
    return {"seed": np.asarray(seeds), "step": np.full(n, step),
            "train_seconds": np.full(n, step / 100), "train_loss": np.full(n, 1.0 / step),
            "val_loss": np.full(n, 0.5), "test_loss": np.full(n, 0.5),
            "val_accuracy": np.full(n, 0.8), "test_accuracy": np.full(n, 0.8)}


def test_partial_curves_during_a_local_run(tmp_path, monkeypatch):
    from bench.runner import live
    from bench.runner.driver import run_matrix
    from bench.runner.progress import SilentProgress

    monkeypatch.setattr(live, "EVERY_S", 0)  # every chunk written, whatever the machine's speed

    matrix, cells = plan(["optax:sgd", "optax:adam"])
    out = tmp_path / "run"
    seen = {}

    class ReadAtChunkTwo(SilentProgress):
        """Reads the folder as a notebook would, when adam has trained two chunks."""

        def event(self, program, event):
            if program[0].optimizer == "optax:adam" and event.phase == "train" \
                    and event.done == 20:
                seen["partial"] = bench.load(out, partial=True)
                seen["finished"] = bench.load(out)
                seen["live"] = sorted(p.name for p in (out / "live").iterdir())

    assert run_matrix(matrix, cells, out, progress=ReadAtChunkTwo()) == 0

    partial, finished = seen["partial"], seen["finished"]
    adam = next(c for c in cells if c.optimizer == "optax:adam")
    sgd = next(c for c in cells if c.optimizer == "optax:sgd")
    assert seen["live"] == [f"{adam.id}.json", f"{adam.id}.parquet"]
    assert set(finished.runs["cell_id"]) == {sgd.id}  # the default reads finished cells only
    running = partial.runs[partial.runs["cell_id"] == adam.id]
    assert sorted(running["seed"]) == [0, 1] and set(running["status"]) == {"running"}
    curves = partial.curves[partial.curves["cell_id"] == adam.id]
    assert sorted(curves["step"]) == [10, 10, 20, 20]
    assert set(partial.runs.loc[partial.runs["cell_id"] == sgd.id, "status"]) == {"done"}
    assert any("still running" in note for note in partial.notes)

    assert not (out / "live").exists()  # gone once the cells were written and the run ended
    after = bench.load(out, partial=True)
    assert set(after.runs["status"]) == {"done"} and after.curves["step"].max() == 40
    assert len(after.runs) == len(bench.load(out).runs) == 4
    assert json.loads((out / "manifest.json").read_text())["state"] == "finished"


def test_partial_files_left_by_a_killed_run_are_not_shown_and_damaged_ones_are_skipped(tmp_path):
    from bench.runner.live import LiveCurves

    _, cells = plan(["optax:sgd", "optax:adam"])
    out = tmp_path / "run"
    store = open_folder(out, cells)
    seconds = iter([0.0, 5.0, 10.0])
    live = LiveCurves(out, clock=lambda: next(seconds))
    for step in (10, 20):
        live.add(cells[:1], ProgramEvent("train", step, 40, (chunk_rows([0, 1], step),)))
    live.add(cells[1:], ProgramEvent("train", 10, 40, (chunk_rows([0, 1], 10),)))
    (out / "live" / f"{cells[1].id}.parquet").write_bytes(b"not parquet")  # torn by hand

    held = bench.load(out, partial=True)  # a run holds the folder: its progress shows
    assert set(held.runs["cell_id"]) == {cells[0].id}
    assert sorted(held.curves["step"]) == [10, 10, 20, 20]
    assert held.runs["steps_trained"].tolist() == [20, 20]
    assert len(bench.load(out).runs) == 0

    store.close()  # the run is gone without cleaning up (kill -9)
    stale = bench.load(out, partial=True)
    assert len(stale.runs) == 0
    assert any("left over" in note for note in stale.notes)


def test_events_for_a_finished_cell_write_nothing(tmp_path):
    from bench.runner.live import LiveCurves

    _, cells = plan(["optax:sgd"])
    live = LiveCurves(tmp_path)
    live.add(cells, ProgramEvent("train", 10, 40, (chunk_rows([0, 1], 10),)))
    live.finish(cells[0].id)
    live.add(cells, ProgramEvent("train", 20, 40, (chunk_rows([0, 1], 20),)))  # arrived late
    assert list((tmp_path / "live").iterdir()) == []


def test_a_program_event_survives_the_plain_message_dask_carries():
    event = ProgramEvent("train", 20, 40, (chunk_rows([0, 1], 20), chunk_rows([0, 1], 20)))
    message = json.loads(json.dumps(event.to_message()))  # plain lists and numbers only
    back = ProgramEvent.from_message(message)
    assert (back.phase, back.done, back.total) == ("train", 20, 40)
    assert len(back.rows) == 2
    for mine, theirs in zip(back.rows, event.rows):
        assert mine.keys() == theirs.keys()
        for column in mine:
            np.testing.assert_array_equal(mine[column], theirs[column])


def test_watch_rebuilds_as_cells_finish_and_stops_when_the_run_ends(tmp_path):
    from bench.report.watch import watch

    _, cells = plan(["optax:sgd"])
    out = tmp_path / "run"
    store = open_folder(out, cells)
    builds, waits = [], []

    def rebuild():
        builds.append(sorted(p.name for p in (out / "cells").iterdir()))

    def finish_a_cell():
        (out / "cells" / "0123456789abcdef.json").write_text("{}")

    def end_the_run():
        store.mark_ended("finished")
        store.close()

    steps = iter([lambda: None, finish_a_cell, lambda: None, end_the_run])

    def wait(seconds):
        waits.append(seconds)
        next(steps)()

    assert watch(out, rebuild, interval_s=2.5, wait=wait) == 0
    assert waits == [2.5] * 4
    # at the start; when a cell finished; when the run ended (the note changes)
    assert builds == [[], ["0123456789abcdef.json"], ["0123456789abcdef.json"]]


def test_watch_stops_on_ctrl_c_after_a_last_build(tmp_path):
    from bench.report.watch import watch

    _, cells = plan(["optax:sgd"])
    store = open_folder(tmp_path / "run", cells)
    builds = []

    def interrupted(seconds):
        raise KeyboardInterrupt

    try:
        assert watch(tmp_path / "run", lambda: builds.append(1), wait=interrupted) == 0
    finally:
        store.close()
    assert builds == [1, 1]


def test_report_watch_on_an_ended_run_builds_once_and_returns(tmp_path, capsys):
    from bench import cli

    _, cells = plan(["optax:sgd"])
    store = open_folder(tmp_path / "run", cells)
    store.mark_ended("interrupted")
    store.close()
    assert cli.main(["report", str(tmp_path / "run"), "--watch", "--interval", "0.5"]) == 0
    assert (tmp_path / "run" / "report.html").exists()
    assert capsys.readouterr().err.count("report: rebuilt at") == 1
    assert cli.main(["report", str(tmp_path / "run"), "--interval", "1"]) == 2
    assert "--interval is for --watch" in capsys.readouterr().err


def test_plain_progress_is_a_few_lines_with_an_eta():
    from bench.runner.progress import PlainProgress

    _, cells = plan(["optax:sgd"], steps=100, eval_every=5)
    program = tuple(cells)
    stream, now = io.StringIO(), [0.0]
    progress = PlainProgress(stream, every_s=10, clock=lambda: now[0])
    progress.plan(cells=1, steps=100, programs=1)
    progress.event(program, ProgramEvent("data", 0, 100))
    now[0] = 1.0
    progress.event(program, ProgramEvent("compile", 0, 100))
    now[0] = 5.0
    progress.event(program, ProgramEvent("train", 0, 100))
    for done in range(5, 101, 5):  # 20 chunks, one second each
        now[0] += 1.0
        progress.event(program, ProgramEvent("eval", done, 100))
        progress.event(program, ProgramEvent("train", done, 100, (chunk_rows([0, 1], done),)))
    lines = stream.getvalue().splitlines()
    assert lines == [
        "progress: data: synthetic-mlp x optax:sgd",
        "progress: compile: synthetic-mlp x optax:sgd",
        "progress: train: synthetic-mlp x optax:sgd",
        # the first after a tenth; then at most one each 10 s (and a new tenth)
        "progress: train: synthetic-mlp x optax:sgd: step 10/100 (10%); cells 0/1 written;"
        " ETA 18s",
        "progress: train: synthetic-mlp x optax:sgd: step 60/100 (60%); cells 0/1 written;"
        " ETA 8s",
    ]


def test_without_a_terminal_the_default_progress_is_plain_lines():
    from rich.console import Console

    from bench.runner.progress import PlainProgress, default_progress

    stream = io.StringIO()
    assert isinstance(default_progress(Console(file=stream)), PlainProgress)


@pytest.mark.parametrize("executor", ["processes", "dask"])
def test_the_worker_executors_relay_every_event_with_its_rows(executor):
    from bench.runner.executors import EXECUTORS, Limits

    if executor == "dask":
        pytest.importorskip("dask.distributed")
    _, cells = plan(["optax:sgd"], steps=20, eval_every=10)
    events = []
    results = list(EXECUTORS[executor]([tuple(cells)], None, Limits(workers=1),
                                       lambda program, event: events.append((program, event))))
    assert [r.seeds[0].status.value for _, r in results] == ["done"]
    assert all(program == tuple(cells) for program, _ in events)
    assert [(e.phase, e.done) for _, e in events] == [
        ("data", 0), ("compile", 0), ("train", 0), ("eval", 10), ("train", 10), ("eval", 20),
        ("train", 20)]
    rows = [e.rows for _, e in events if e.rows]
    assert [r[0]["step"].tolist() for r in rows] == [[10, 10], [20, 20]]
    assert [r[0]["seed"].tolist() for r in rows] == [[0, 1], [0, 1]]
    np.testing.assert_array_equal(rows[-1][0]["val_loss"], results[0][1].curves["val_loss"][-2:])


def test_a_sweeps_chunk_rows_are_split_by_trial():
    from bench.train.engine import CurveRows

    curves = CurveRows([0, 1, 0, 1])  # two trials of seeds 0 and 1, trial-major
    losses = np.arange(8, dtype=float).reshape(4, 2)  # (members, steps in the chunk)
    curves.add(10, 0.5, losses, {"val_loss": np.array([1.0, 2.0, 3.0, 4.0])})
    first, second = curves.last_by_trial(2)
    assert first["seed"].tolist() == second["seed"].tolist() == [0, 1]
    assert first["val_loss"].tolist() == [1.0, 2.0] and second["val_loss"].tolist() == [3.0, 4.0]
    assert second["train_loss"].tolist() == [4.5, 6.5]  # the chunk's mean minibatch loss
    assert "member" not in first


def test_a_cells_curves_are_written_at_its_first_chunk_then_at_most_once_a_second(tmp_path):
    import pandas as pd

    from bench.runner.live import EVERY_S, LiveCurves

    _, cells = plan(["optax:sgd"])
    now = [0.0]
    live = LiveCurves(tmp_path, clock=lambda: now[0])
    stored = tmp_path / "live" / f"{cells[0].id}.parquet"
    written = []
    for step, at in [(10, 0.0), (20, EVERY_S / 2), (30, EVERY_S * 1.2)]:
        now[0] = at
        live.add(cells, ProgramEvent("train", step, 40, (chunk_rows([0, 1], step),)))
        written.append(sorted(set(pd.read_parquet(stored)["step"])))
    assert written == [[10], [10], [10, 20, 30]]  # held rows are written with the next


def test_a_run_stopped_by_an_error_says_so_in_its_manifest_and_leaves_no_partial_curves(tmp_path):
    from bench.errors import UserError
    from bench.runner.driver import run_matrix
    from bench.runner.files import folder_in_use
    from bench.runner.progress import SilentProgress

    matrix, cells = plan(["optax:sgd"])
    out = tmp_path / "run"

    class StopsAtChunkTwo(SilentProgress):
        def event(self, program, event):
            if event.done == 20 and event.phase == "train":
                assert (out / "live" / f"{cells[0].id}.json").exists()
                raise UserError("stopped here")

    with pytest.raises(UserError, match="stopped here"):
        run_matrix(matrix, cells, out, progress=StopsAtChunkTwo())
    assert json.loads((out / "manifest.json").read_text())["state"] == "failed"
    assert not (out / "live").exists() and not folder_in_use(out)
