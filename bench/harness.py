"""Run validated cells into a results folder: skip finished cells, train the rest, save each
as it finishes, rebuild the merged tables, print a summary."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import executors
from bench.matrix import Cell, Matrix, tuned_cells
from bench.monitor import environment
from bench.records import Status
from bench.store import RunStore
from bench.summary import summary_table, wide_console


@dataclasses.dataclass(frozen=True)
class ExecutorChoice:
    """Where cells run (see bench/executors.py) and the limits that go with it."""

    name: str = "local"  # local | processes | dask
    workers: int = 2
    cell_timeout: float | None = None  # seconds; enforced for cells in worker processes
    address: str | None = None  # an existing Dask scheduler
    plugins: tuple[str, ...] = ()  # plugin files workers must load too

    def cells(self, todo: list[Cell], data_dir: str | None, on_chunk):
        if self.name == "processes":
            return executors.run_processes(todo, data_dir, workers=self.workers,
                                           cell_timeout=self.cell_timeout, plugins=self.plugins)
        if self.name == "dask":
            return executors.run_dask(todo, data_dir, address=self.address,
                                      workers=self.workers, plugins=self.plugins)
        return executors.run_local(todo, data_dir, on_chunk)


def run_matrix(matrix: Matrix, cells: list[Cell], out: Path, *, data_dir: str | None = None,
               force: bool = False, resume: bool = False,
               executor: ExecutorChoice = ExecutorChoice()) -> int:
    """Returns the exit code: 0 if every cell ended done or diverged, 1 if any errored or
    timed out (after all the others ran), 130 when interrupted."""
    console = wide_console(stderr=True)
    store = RunStore(out)
    config = {"matrix": dataclasses.asdict(matrix), "cells": [c.id for c in cells]}
    store.open(config, environment(), resume=resume, force=force)
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

        def run(batch: list[Cell]) -> int:
            failures = 0
            for index, (cell, result) in enumerate(
                    executor.cells(batch, data_dir, on_chunk), start=1):
                store.write_cell(cell, result)
                progress.advance(overall)
                failures += any(s.status in (Status.ERROR, Status.TIMEOUT) for s in result.seeds)
                console.print(_cell_line(index, len(batch), cell, result))
            return failures

        try:
            errors += run(todo)
            if any(cell.tuning for cell in cells):  # phase 2: each best trial, every seed
                runs, _ = store.merge()
                tuned = [c for c in tuned_cells(cells, runs) if c.id not in finished]
                if tuned:
                    console.print(f"tuning: rerunning the best of each sweep with every seed"
                                  f" ({len(tuned)} cells)")
                    progress.update(overall, total=len(todo) + len(tuned))
                    errors += run(tuned)
        except KeyboardInterrupt:
            store.merge()
            console.print(f"interrupted: finished cells are saved in {out}; rerun the same"
                          " command to finish the rest")
            return 130

    runs, _ = store.merge()
    wide_console().print(summary_table(runs))
    console.print(f"results: {out.resolve()}")
    if errors:
        console.print(f"{errors} cell(s) failed or timed out; the reasons are in"
                      f" {out}/cells/*.json and the error column of runs.parquet")
    return 1 if errors else 0


def _cell_line(index: int, total: int, cell: Cell, result) -> str:
    statuses = ", ".join(f"{sum(s.status is st for s in result.seeds)} {st.value}"
                         for st in Status if any(s.status is st for s in result.seeds))
    t = result.timings
    if result.error:
        reason = result.error.strip().splitlines()[-1]
        return f"[{index}/{total}] {cell.workload} x {cell.label}: {result.seeds[0].status.value}: {reason}"
    accuracy = result.curves["test_accuracy"][-len(cell.seeds):]
    return (f"[{index}/{total}] {cell.workload} x {cell.label}: {statuses}; "
            f"test accuracy {accuracy.mean():.3f}; compile {t.compile_s:.1f}s, "
            f"train {t.train_s:.1f}s ({t.steps_per_s:,.0f} steps/s)")
