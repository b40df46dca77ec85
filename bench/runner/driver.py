"""Run planned cells into a results folder: skip finished programs, train the rest with the
chosen executor, save each cell as it finishes, run the tuning phase, rebuild the merged
tables, print a summary."""
from __future__ import annotations

import contextlib
import dataclasses
import signal
import threading
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.plan import expand, tuning
from bench.plan.cells import Cell, changed_code
from bench.errors import UserError
from bench.plan.matrix import Matrix
from bench.records import CellResult, Status
from bench.report.render import printable
from bench.report.summary import summary_table, wide_console
from bench.runner.environment import environment
from bench.runner.executors import EXECUTORS, Limits
from bench.runner.store import RunStore


def run_matrix(matrix: Matrix, cells: list[Cell], out: Path, *, data_dir: str | None = None,
               force: bool = False, resume: bool = False, executor: str = "local",
               limits: Limits = Limits(), console: Console | None = None,
               progress: bool | None = None) -> int:
    """Returns the exit code: 0 if every cell ended done or diverged, 1 if any errored or
    timed out (after all the others ran), 130 when interrupted.

    `console` takes the run's lines and its summary table (default: the CLI's, stderr and
    the summary on stdout; `Console(quiet=True)` prints nothing). `progress` shows the live
    bars (default: when the console is a terminal; True also draws them in Jupyter), on
    stderr when `console` is quiet, so a notebook can have bars without the lines."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    if resume and force:
        raise UserError("--resume and --force contradict each other: --resume skips finished"
                        " cells, --force reruns them; pass one")
    summary_console = wide_console() if console is None else console
    console = wide_console(stderr=True) if console is None else console
    # the bars draw on a console of their own when the lines are quiet
    bars = wide_console(stderr=True) if console.quiet and progress else console
    show_bars = console.is_terminal if progress is None else progress
    store = RunStore(out)
    config = {"matrix": dataclasses.asdict(matrix), "cells": sorted(c.spec_key for c in cells)}
    store.open(config, environment(), resume=resume, force=force)
    try:
        return _run_open(store, matrix, cells, out, data_dir, force, executor, limits, console,
                         summary_console, bars, show_bars)
    finally:
        store.close()  # a notebook's next run into this folder must not find it locked


def _run_open(store, matrix, cells, out, data_dir, force, executor, limits, console,
              summary_console, bars, show_bars) -> int:
    finished = {} if force else store.finished()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    errors = 0
    with Progress(*columns, console=bars, transient=True, disable=not show_bars) as progress:
        overall = progress.add_task("cells", total=0)
        steps_task = progress.add_task("", total=1)

        def on_chunk(cell: Cell, done: int, total: int) -> None:
            progress.update(steps_task, description=escape(printable(f"  {cell.workload} x {cell.label}")),
                            completed=done, total=total)

        def run(batch: list[Cell]) -> int:
            todo = _unfinished_programs(batch, finished, console)
            count = sum(c.id not in finished for p in todo for c in p)
            progress.update(overall, total=progress.tasks[overall].total + count)
            failures = 0
            results = EXECUTORS[executor](todo, data_dir, limits, on_chunk)
            written = 0
            for cell, result in results:
                if cell.id in finished:  # retrained with its program; its files stay as they are
                    continue
                try:
                    store.write_cell(cell, result)
                except UserError as exc:  # a full disk, say: what is saved stays saved
                    raise UserError(f"{exc}; the {written} cell(s) saved before it are kept in"
                                    f" {out}: fix this and rerun the same command to finish"
                                    " the rest") from None
                written += 1
                progress.advance(overall)
                failures += any(s.status in (Status.ERROR, Status.TIMEOUT) for s in result.seeds)
                console.print(printable(_cell_line(written, count, cell, result)), markup=False,
                              highlight=False)
            return failures

        try:
            errors += run(cells)
            trials = [c for c in cells if c.tuning.role == "trial"]
            if trials:  # phase 2: each sweep's best trial, with every seed
                finals = {t.id: store.final_values(t.id, t.target.metric) for t in trials}
                tuned = tuning.tuned_cells(trials, tuple(matrix.seeds), finals)
                for workload, optimizer in sorted({(t.workload, t.optimizer) for t in trials}
                                                  - {(c.workload, c.optimizer) for c in tuned}):
                    console.print(printable(f"tuning: no trial of {workload} x {optimizer} ended"
                                            " done (all diverged or failed): no tuned cell"))
                console.print(f"tuning: rerunning the best of each sweep with every seed"
                              f" ({len(tuned)} cells)")
                errors += run(tuned)
        except KeyboardInterrupt:
            with _interrupts_ignored():  # a second Ctrl-C must not cut the merge short
                store.merge()
            console.print(f"interrupted: finished cells are saved in {printable(out)}; rerun the same"
                          " command to finish the rest", markup=False)
            return 130

    runs, _ = store.merge()
    summary_console.print(summary_table(runs))
    console.print(f"results: {printable(out.resolve())}", markup=False, highlight=False)
    if errors:
        console.print(f"{errors} cell(s) failed or timed out; the reasons are in"
                      f" {out}/cells/*.json and the error column of runs.parquet", markup=False)
    return 1 if errors else 0


@contextlib.contextmanager
def _interrupts_ignored():
    """SIGINT ignored inside (main thread only, where Python handles signals)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _unfinished_programs(cells: list[Cell], finished: dict, console) -> list[expand.Program]:
    """The programs that hold a cell not finished yet. The whole program trains again (its
    layout is part of its cells' identity), but only its unfinished cells are written. A
    cell finished before under other code is named, with the files that changed."""
    by_spec = {record["spec_key"]: record for record in finished.values()}
    todo = [p for p in expand.programs(cells) if any(c.id not in finished for c in p)]
    skipped = sum(c.id in finished for c in cells)
    for program in todo:
        for cell in program:
            old = by_spec.get(cell.spec_key)
            if cell.id not in finished and old is not None:
                console.print(f"rerunning {cell.workload} x {cell.label}: "
                              + "; ".join(changed_code(old, cell.record())),
                              markup=False, highlight=False)
    if skipped:
        console.print(f"{skipped} of {len(cells)} cells already finished; running the rest"
                      " (--force reruns them)")
    return todo


def _cell_line(index: int, total: int, cell: Cell, result: CellResult) -> str:
    statuses = ", ".join(f"{count} {status}" for status, count in result.status_counts().items())
    t = result.timings
    if result.error:
        reason = result.error.strip().splitlines()[-1]
        return f"[{index}/{total}] {cell.workload} x {cell.label}: {result.seeds[0].status.value}: {reason}"
    metric = cell.target.metric
    values = result.curves[metric][-len(cell.seeds):]
    return (f"[{index}/{total}] {cell.workload} x {cell.label}: {statuses}; "
            f"final {metric} {values.mean():.4g}; compile {t.compile_s:.1f}s, "
            f"train {t.train_s:.1f}s ({t.steps_per_s:,.0f} steps/s)")
