"""Partial curves: a cell in progress, readable while its run goes on.

    results/<run>/live/<id>.parquet   the curve rows of a running cell so far (written first)
    results/<run>/live/<id>.json      its record, seeds marked `running` (its presence marks it)

The driver rewrites a cell's curves with every row so far after a chunk, at most every
`EVERY_S` seconds (temporary name, rename: a kill mid-write leaves the previous file), and
removes the pair once the cell's final files are in cells/. Nothing
that reads finished results looks in live/: `bench.load(path)`, the merged tables, report and
compare are the same as without it; `bench.load(path, partial=True)` adds these rows. A run
that opens the folder clears what a killed run left here.
"""
from __future__ import annotations

import dataclasses
import io
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.errors import UserError
from bench.records import ProgramEvent, Timings, Usage
from bench.runner import schema, tables
from bench.runner.cell_files import CELL_FILE, cell_files
from bench.runner.files import (atomic_write, folder_in_use, make_folder, read_json,
                                write_json)
from bench.runner.schema import SCHEMA_VERSION

if TYPE_CHECKING:
    from bench.plan.cells import Cell
    from bench.plan.expand import Program
    from bench.runner.results import Results

LIVE = "live"
RUNNING = "running"  # the status of a seed whose cell has not finished (partial rows only)
# A cell's curves are rewritten at most this often (and at its first chunk): a write costs
# milliseconds, a chunk may take less, and a run must not wait on its own progress files.
EVERY_S = 1.0


class LiveCurves:
    """The driver's writer of live/: accumulates each program's chunk rows per cell and
    rewrites that cell's curves (every row so far) at most every `EVERY_S` seconds; its
    record once. Cells already finished (or skipped) are never written."""

    def __init__(self, root: Path, skip: set[str] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.folder = Path(root) / LIVE
        self.skip = set(skip or ())  # ids whose final files exist, or are being written
        self.clock = clock
        self._rows: dict[str, list[dict[str, np.ndarray]]] = {}
        self._written: dict[str, float] = {}  # cell id -> when its curves were last written
        self.failed: str | None = None  # why live/ is no longer written

    def clear(self) -> None:
        """Remove what a killed run left (call it holding the folder's lock)."""
        if self.folder.is_dir() and not self.folder.is_symlink():
            shutil.rmtree(self.folder, ignore_errors=True)

    def add(self, program: Program, event: ProgramEvent) -> str | None:
        """Write the cells of `program` that `event` brings rows for. Partial curves are a
        convenience: a failure to write them (a full disk) stops them, never the run, and is
        returned once, as a line to show."""
        if self.failed:
            return None
        for cell, rows in zip(program, event.rows):
            if cell.id in self.skip:
                continue
            self._rows.setdefault(cell.id, []).append(rows)
            now = self.clock()
            if now - self._written.get(cell.id, -math.inf) < EVERY_S:
                continue  # its rows wait in memory for the next write
            try:
                self._write(cell)
                self._written[cell.id] = now
            except UserError as exc:
                self.failed = f"partial curves are no longer written ({exc}); the run goes on"
                return self.failed
        return None

    def finish(self, cell_id: str) -> None:
        """The cell's final files are written: its live pair goes (record first: without
        it, a leftover parquet is ignored) and later events for it are ignored."""
        self.skip.add(cell_id)
        self._rows.pop(cell_id, None)
        self._written.pop(cell_id, None)
        for suffix in (".json", ".parquet"):
            (self.folder / f"{cell_id}{suffix}").unlink(missing_ok=True)

    def _write(self, cell: Cell) -> None:
        make_folder(self.folder)
        chunks = self._rows[cell.id]
        rows = {c: np.concatenate([chunk[c] for chunk in chunks]) for c in chunks[-1]}
        curves = schema.frame({"cell_id": cell.id, **rows}, "curves")
        atomic_write(self.folder / f"{cell.id}.parquet",
                     lambda tmp: curves.to_parquet(tmp, index=False))
        if cell.id in self._written:
            return  # its record is there: the reader takes steps trained from the curves
        write_json(self.folder / f"{cell.id}.json", {
            "schema_version": SCHEMA_VERSION, **cell.record(), "steps_trained": 0,
            "error": None, "seeds": [{"seed": s, "status": RUNNING, "diverged_step": None}
                                     for s in cell.seeds],
            "status_counts": {RUNNING: len(cell.seeds)}, "timings": Timings().record(),
            "usage": asdict(Usage()), "finished": None})


def with_live(results: Results) -> Results:
    """`results` plus the rows of the cells in progress, when a run holds the folder (live/
    files without one were left by a killed run, and are no one's progress)."""
    if not folder_in_use(results.root):
        stale = (results.root / LIVE).is_dir() and any((results.root / LIVE).glob("*.json"))
        return dataclasses.replace(results, notes=results.notes + (
            ("no run is in progress in this folder: the partial curves in live/ are left over"
             " from one that was stopped, and are not shown",) if stale else ()))
    finished = set(results.runs["cell_id"]) | {p.stem for p in cell_files(results.root / "cells")}
    runs, curves = read_live(results.root, finished)
    if not len(runs):
        return results
    count = runs["cell_id"].nunique()
    return dataclasses.replace(
        results, runs=pd.concat([results.runs, runs], ignore_index=True),
        curves=pd.concat([results.curves, curves], ignore_index=True),
        notes=results.notes + (f"{count} cell(s) still running are included as they stand:"
                               " status `running`, curves up to their last chunk",))


def read_live(root: Path, finished: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The runs and curves rows of the cells in live/ that are not in `finished`; a pair
    that cannot be read (half removed, foreign, damaged) is left out."""
    folder = Path(root) / LIVE
    runs, curves = [], []
    paths = sorted(folder.glob("*.json")) if folder.is_dir() and not folder.is_symlink() else []
    for path in paths:
        if not CELL_FILE.fullmatch(path.name) or path.stem in finished:
            continue
        pair = _read_pair(path)
        if pair is not None:
            runs.extend(pair[0])
            curves.append(pair[1])
    return (schema.frame(runs, "runs"),
            schema.frame(pd.concat(curves, ignore_index=True) if curves else [], "curves"))


def _read_pair(path: Path) -> tuple[list[dict[str, Any]], pd.DataFrame] | None:
    try:
        record = read_json(path)
        if record.get("schema_version") != SCHEMA_VERSION or record.get("id") != path.stem:
            return None
        # one open, read whole: pyarrow given a path opens it more than once, and the
        # driver may replace the file in between (a torn read)
        fd = os.open(path.with_suffix(".parquet"), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            curves = schema.frame(pd.read_parquet(io.BytesIO(handle.read())), "curves")
        record["steps_trained"] = int(curves["step"].max()) if len(curves) else 0
        if set(curves["cell_id"]) - {record["id"]}:
            return None
        rows = tables.run_rows(record, curves)
        schema.frame(rows, "runs")
    except Exception:  # noqa: BLE001  a pair being replaced or removed as it is read
        return None
    return rows, curves
