"""Run validated cells into a results folder: skip finished cells, train the rest, save each
as it finishes, rebuild the merged tables, print a summary."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import executors
from bench.matrix import Cell, Matrix
from bench.monitor import environment
from bench.records import Status
from bench.store import RunStore
from bench.summary import summary_table, wide_console


def run_matrix(matrix: Matrix, cells: list[Cell], out: Path, *, data_dir: str | None = None,
               force: bool = False) -> int:
    """Returns the exit code: 0 if every cell ended done or diverged, 1 if any errored."""
    console = wide_console(stderr=True)
    store = RunStore(out)
    config = {"matrix": dataclasses.asdict(matrix), "cells": [c.id for c in cells]}
    store.open(config, environment())
    finished = set() if force else store.finished()
    todo = [c for c in cells if c.id not in finished]
    if len(todo) < len(cells):
        console.print(f"{len(cells) - len(todo)} of {len(cells)} cells already in {out}; "
                      "running the rest (--force reruns them)")

    errors = 0
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        overall = progress.add_task("cells", total=len(todo))
        steps_task = progress.add_task("", total=1)

        def on_chunk(cell: Cell, done: int, total: int) -> None:
            progress.update(steps_task, description=f"  {cell.workload} x {cell.label}",
                            completed=done, total=total)

        try:
            for index, (cell, result) in enumerate(
                    executors.run_local(todo, data_dir, on_chunk), start=1):
                store.write_cell(cell, result)
                progress.advance(overall)
                errors += any(s.status is Status.ERROR for s in result.seeds)
                console.print(_cell_line(index, len(todo), cell, result))
        except KeyboardInterrupt:
            store.merge()
            console.print(f"interrupted: finished cells are saved in {out}; rerun the same"
                          " command to finish the rest")
            return 130

    runs, _ = store.merge()
    wide_console().print(summary_table(runs))
    console.print(f"results: {out.resolve()}")
    if errors:
        console.print(f"{errors} cell(s) failed; their tracebacks are in {out}/cells/*.json")
    return 1 if errors else 0


def _cell_line(index: int, total: int, cell: Cell, result) -> str:
    statuses = ", ".join(f"{sum(s.status is st for s in result.seeds)} {st.value}"
                         for st in Status if any(s.status is st for s in result.seeds))
    t = result.timings
    if result.error:
        reason = result.error.strip().splitlines()[-1]
        return f"[{index}/{total}] {cell.workload} x {cell.label}: error: {reason}"
    accuracy = result.curves["test_accuracy"][-len(cell.seeds):]
    return (f"[{index}/{total}] {cell.workload} x {cell.label}: {statuses}; "
            f"test accuracy {accuracy.mean():.3f}; compile {t.compile_s:.1f}s, "
            f"train {t.train_s:.1f}s ({t.steps_per_s:,.0f} steps/s)")
