"""Run planned cells into a results folder: skip finished programs, train the rest with the
chosen executor, save each cell as it finishes, run the tuning phase, rebuild the merged
tables, print a summary."""
from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from bench.plan import expand, tuning
from bench.plan.cells import Cell, changed_code
from bench.errors import UserError
from bench.loggers.fanout import Loggers
from bench.plan.matrix import Matrix
from bench.records import CellResult, Status
from bench.report.render import printable
from bench.report.summary import summary_table, wide_console
from bench.runner import interrupts, sessions
from bench.runner.environment import environment, provenance
from bench.runner.executors import EXECUTORS, Limits
from bench.runner.live import LiveCurves
from bench.runner.progress import SilentProgress, default_progress
from bench.runner.store import RunStore
from bench.train import compile_cache, cpu_devices


def check_settings(*, cache_switch: bool = True) -> None:
    """One line (UserError) for an optbench environment variable whose value is no setting:
    a run refuses it before anything runs, and a dry run says what the run would.
    `cache_switch=False`: $OPTBENCH_COMPILE_CACHE is overridden (--no-compile-cache)."""
    for problem in (cache_switch and compile_cache.switch_problem(), cpu_devices.problem()):
        if problem:
            raise UserError(problem)


def run_matrix(matrix: Matrix, cells: list[Cell], out: Path, *, data_dir: str | None = None,
               force: bool = False, resume: bool = False, executor: str = "local",
               limits: Limits = Limits(), overrides: Sequence[str] = (),
               console: Console | None = None, progress: SilentProgress | None = None) -> int:
    """Returns the exit code: 0 if every cell ended done or diverged, 1 if any errored or
    timed out (after all the others ran), 130 when interrupted. `overrides`: the flags
    that changed the matrix, for the manifest.

    `console` takes the run's lines and its summary table (default: the CLI's, stderr and
    the summary on stdout; `Console(quiet=True)` prints nothing). `progress` shows the run's
    progress (bench/runner/progress.py; `SilentProgress()` shows none); None: bars on a
    terminal, plain lines otherwise. Cells in progress keep their curves so far in live/."""
    if executor not in EXECUTORS:
        raise UserError(f"unknown executor {executor!r}; choose one of: {', '.join(EXECUTORS)}")
    check_settings()
    if resume and force:
        raise UserError("--resume and --force contradict each other: --resume skips finished"
                        " cells, --force reruns them; pass one")
    cpu_devices.configure()  # before the manifest asks JAX for its devices
    if executor == "local":
        cpu_devices.warn_shared_cores(1)
    elif not (executor == "dask" and limits.address):
        cpu_devices.warn_shared_cores(limits.workers)
    summary_console = wide_console() if console is None else console
    console = wide_console(stderr=True) if console is None else console
    # a missing backend package is one line here, before the folder is made or a cell trains
    loggers = Loggers(matrix.log, matrix.where("log"),
                      warn=lambda line: console.print(line, markup=False, highlight=False))
    loggers.check(Path(out))  # a link or a file where a backend writes: before the folder opens
    store = RunStore(out)
    config = {"matrix": dataclasses.asdict(matrix), "cells": sorted(c.spec_key for c in cells)}
    store.open(config, {**environment(),
                        "provenance": provenance(matrix, executor, limits, overrides)},
               resume=resume, force=force)
    state = "failed"
    try:
        loggers.open(out, store.manifest())
        code = _run_open(store, matrix, cells, out, data_dir, force, executor, limits, console,
                         summary_console, progress or default_progress(console), loggers)
        state = "interrupted" if code == 130 else "finished"
        return code
    finally:
        try:
            loggers.close()
        finally:  # even after a Ctrl-C while a backend closes
            with contextlib.suppress(UserError):  # a full disk: the lock's release says it ended
                store.mark_ended(state)
            store.close()  # a notebook's next run into this folder must not find it locked


def _run_open(store, matrix, cells, out, data_dir, force, executor, limits, console,
              summary_console, progress: SilentProgress, loggers) -> int:
    finished = {} if force else store.finished()
    live = LiveCurves(out, skip=set(finished))
    live.clear()  # what a killed run left: we hold the lock
    began = interrupts.mark()
    try:
        with interrupts.counted():
            with progress:
                errors = _train(store, matrix, cells, out, data_dir, executor, limits,
                                console, progress, finished, live, loggers)
            runs, _ = store.merge()
            summary_console.print(summary_table(runs))
            console.print(f"results: {printable(out.resolve())}", markup=False,
                          highlight=False)
            interrupts.stop_if_since(began)  # one swallowed after the last cell (interrupts.py)
    except KeyboardInterrupt:
        with interrupts.ignored():  # a second Ctrl-C must not cut the merge short
            store.merge()
        console.print(sessions.interrupted_line(
            len(store.saved), len(store.cell_files()), printable(out),
            again="rerun the same command",
            resume="rerun with --resume in place of --force" if force else None), markup=False)
        return 130
    finally:
        live.clear()  # the run has ended, however: nothing of it is in progress now
    if errors:
        console.print(f"{errors} cell(s) failed or timed out; the reasons are in"
                      f" {out}/cells/*.json and the error column of runs.parquet", markup=False)
    return 1 if errors else 0


def _train(store, matrix, cells, out, data_dir, executor, limits, console, progress,
           finished, live, loggers) -> int:
    """Train and save every unfinished cell, then each sweep's tuned cells; returns how
    many cells failed or timed out."""

    began = interrupts.mark()

    def on_event(program, event) -> None:
        interrupts.stop_if_since(began)  # a Ctrl-C swallowed where it landed (interrupts.py)
        problem = live.add(program, event)  # first: what progress shows is on disk
        if problem:
            console.print(f"optbench: warning: {printable(problem)}", markup=False)
        progress.event(program, event)

    def run(batch: list[Cell]) -> int:
        todo = _unfinished_programs(batch, finished, console)
        count = sum(c.id not in finished for p in todo for c in p)
        progress.plan(count, sum(p[0].steps for p in todo), len(todo))
        failures = 0
        results = EXECUTORS[executor](todo, data_dir, limits, on_event)
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
            live.finish(cell.id)
            written += 1
            progress.cell_written()
            failures += any(s.status in (Status.ERROR, Status.TIMEOUT) for s in result.seeds)
            console.print(printable(_cell_line(written, count, cell, result)), markup=False,
                          highlight=False)
            loggers.cell(store.cells_dir, cell.id)  # from the files just written
            interrupts.stop_if_since(began)
        return failures

    errors = run(cells)
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
    return errors


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
        rest = "running the rest" if skipped < len(cells) else "nothing left to run"
        console.print(f"{skipped} of {len(cells)} cells already finished; {rest}"
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
            f"final {metric} {values.mean():.4g}; compile {t.compile_s:.1f}s"
            + (f" (+{t.compile_cached_s:.1f}s from the cache)" if t.compile_cached_s else "") + ", "
            f"train {t.train_s:.1f}s ({t.steps_per_s:,.0f} steps/s)")
