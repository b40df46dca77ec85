"""The cell files of a results folder: which files are cells, reading and checking them,
and setting damaged ones aside. A cell counts only when both its files read, belong to it,
have their columns' types, and hold every seed that ended done up to the last step; what
does not is damaged (it runs again), never shown as a result with holes in it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.records import Status
from bench.runner import schema, tables
from bench.runner.files import read_json
from bench.runner.schema import SCHEMA_VERSION

CELL_FILE = re.compile(r"[0-9a-f]{16}\.json")  # cells/<id>.json


@dataclass(frozen=True)
class StoredCell:
    """A finished cell's two files, read and checked: they make table rows."""

    record: dict[str, Any]
    curves: pd.DataFrame
    rows: list[dict[str, Any]]  # its runs.parquet rows


@dataclass
class Scan:
    """What cells/ holds: the readable cells, and the files that are not."""

    cells: list[StoredCell] = field(default_factory=list)
    damaged: list[Path] = field(default_factory=list)

    def current(self) -> list[StoredCell]:
        """The cells the tables show: per cell spec, the latest finished (a cell rerun under
        changed code supersedes the one before it; both files stay in cells/)."""
        latest: dict[str, StoredCell] = {}
        for cell in sorted(self.cells, key=lambda c: c.record["finished"]):
            latest[cell.record["spec_key"]] = cell
        return sorted(latest.values(), key=lambda c: c.record["id"])


def cell_files(cells_dir: Path) -> list[Path]:
    """cells/<id>.json, where <id> is a cell id (16 hex digits): other files are not
    optbench's, and are neither read nor touched."""
    if not cells_dir.is_dir():
        return []
    return sorted(p for p in cells_dir.glob("*.json") if CELL_FILE.fullmatch(p.name))


def scan_cells(cells_dir: Path, *, set_aside: bool = False) -> Scan:
    """Read every cell in cells/. With `set_aside` (the caller holds the lock), damaged
    files are renamed <file>.corrupt so that their cells run again."""
    scan = Scan()
    for path in cell_files(cells_dir):
        cell = read_cell(path)
        if cell is None:
            scan.damaged.append(path)
            if set_aside:
                _set_aside(path)
        else:
            scan.cells.append(cell)
    return scan


def read_cell(path: Path) -> StoredCell | None:
    """A cell's record and curves, or None when either is unreadable, of another schema,
    not this file's cell, or does not make table rows (the cell then counts as unfinished).
    Links are not followed."""
    try:
        record = read_json(path)
    except (OSError, ValueError):
        return None
    if (not isinstance(record, dict) or type(record.get("schema_version")) is not int
            or record["schema_version"] != SCHEMA_VERSION or record.get("id") != path.stem):
        return None
    parquet = path.with_suffix(".parquet")
    try:
        if parquet.is_symlink():
            return None
        curves = (schema.frame(pd.read_parquet(parquet), "curves") if parquet.exists()
                  else schema.frame([], "curves"))  # a cell that errored before any eval
        if len(curves) and set(curves["cell_id"]) != {record["id"]}:
            return None
        if not _complete(record, curves):
            return None
        rows = tables.run_rows(record, curves)
        schema.frame(rows, "runs")
        if not (schema.typed(rows, "runs") and isinstance(record.get("spec_key"), str)
                and isinstance(record.get("finished"), str)
                and isinstance(record.get("status_counts"), dict)):
            return None
    except Exception:  # noqa: BLE001  any damage, whatever the parser or the record raises
        return None
    return StoredCell(record, curves, rows)


def _complete(record: dict[str, Any], curves: pd.DataFrame) -> bool:
    """Whether the curves hold what the record says ran: seeds listed once each, a known
    status and target metric, and every seed that ended done evaluated up to the last step."""
    seeds = record["seeds"]
    if not seeds or not all(isinstance(s, dict) for s in seeds):
        return False
    ids = [s.get("seed") for s in seeds]
    statuses = {s.value for s in Status}
    if (len(set(ids)) != len(ids) or not all(type(i) is int for i in ids)
            or not all(s.get("status") in statuses for s in seeds)
            or not schema.is_metric("curves", record["spec"]["target"]["metric"])
            or (len(curves) and record["spec"]["target"]["metric"] not in curves)
            or not set(curves["seed"]) <= set(ids)):
        return False
    last = curves.groupby("seed")["step"].max().to_dict() if len(curves) else {}
    return all(last.get(s["seed"]) == record["steps_trained"]
               for s in seeds if s["status"] == Status.DONE.value)


def _set_aside(path: Path) -> None:
    for damaged in (path, path.with_suffix(".parquet")):
        if damaged.exists() or damaged.is_symlink():
            os.replace(damaged, damaged.with_name(damaged.name + ".corrupt"))


def tables_of(scan: Scan) -> tuple[pd.DataFrame, pd.DataFrame]:
    current = scan.current()
    runs = schema.frame([row for cell in current for row in cell.rows], "runs")
    curves = schema.frame(pd.concat([c.curves for c in current], ignore_index=True)
                          if current else [], "curves")
    return runs, curves
