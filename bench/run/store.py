"""The results folder: a manifest, one pair of files per finished cell, and merged tables.

    results/<run>/manifest.json        schema_version, config, versions, device, host, git
    results/<run>/cells/<id>.parquet   the cell's curves (written first)
    results/<run>/cells/<id>.json      the cell's spec, per-seed status and timings (last:
                                       its presence is what marks the cell finished)
    results/<run>/runs.parquet         one row per cell x seed, rebuilt from the cell files
    results/<run>/curves.parquet       one row per cell x seed x eval point, likewise

Every file is written to a temporary name in the same folder and renamed into place, so a
crash or kill never leaves a half-written file behind. results/README.md documents the columns.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from bench.errors import UserError
from bench.records import CellResult, Status
from bench.run import schema, tables
from bench.run.schema import SCHEMA_VERSION

if TYPE_CHECKING:  # the store itself stays free of JAX, so reports can read it without
    from bench.plan.cells import Cell

MANIFEST = "manifest.json"


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path: Path, payload: Any) -> None:
    """Strict JSON (NaN and infinities become null), so any tool can read it."""
    text = json.dumps(_finite(payload), indent=2, default=_jsonable, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))


def lock_folder(root: Path):
    """An exclusive advisory lock on <root>/.lock, released when the process exits (even by
    kill -9): a second run into the same folder is refused, not interleaved. Returns the
    open handle that holds it."""
    handle = open(root / ".lock", "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise UserError(f"{root} is in use by another optbench run ({holder});"
                        " wait for it to finish or choose another --out") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.cells_dir = self.root / "cells"

    def open(self, config: dict[str, Any], environment: dict[str, Any], *,
             resume: bool = False, force: bool = False) -> None:
        """Create the folder and manifest, or check that an existing folder may take this
        run: same matrix (it resumes), or --resume / --force for a different one. Holds an
        exclusive lock on the folder until the process ends."""
        if (self.root.exists() and not (self.root / MANIFEST).exists()
                and any(p.name not in {".lock", ".gitignore", "cells"} for p in self.root.iterdir())):
            raise UserError(f"{self.root} is not empty and not an optbench results folder;"
                            " choose another --out")
        try:
            self.cells_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create results folder {self.root}: {exc.strerror}") from None
        if not os.access(self.root, os.W_OK):
            raise UserError(f"results folder {self.root} is not writable")
        self._lock_handle = lock_folder(self.root)  # kept open: closing it releases the lock
        existing = self.manifest() if (self.root / MANIFEST).exists() else None
        if existing and not (resume or force):
            _check_same_matrix(self.root, existing.get("config", {}), config)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created": existing["created"] if existing else _now(),
            "updated": _now(),
            "config": config,
            **environment,
        }
        write_json(self.root / MANIFEST, manifest)

    def manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        try:
            manifest = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{self.root} is not an optbench results folder (no {MANIFEST})") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{path} is unreadable or not JSON: {exc}") from None
        version = manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            advice = (f"rerun its matrix into a new folder (`optbench run <matrix> --out NEW`);"
                      " this version stores each cell's code, program layout and AlgoPerf"
                      " times, which older folders lack" if isinstance(version, int)
                      and version < SCHEMA_VERSION else "read it with the optbench that wrote it")
            raise UserError(f"{self.root} has results schema version {version}; this optbench"
                            f" reads version {SCHEMA_VERSION}: {advice}")
        return manifest

    def finished(self) -> dict[str, dict[str, Any]]:
        """Records of the cells whose results are complete, by id: both files readable, no
        seed errored or timed out (those are never cached). A cell whose curves file is
        damaged is set aside as <id>.json.corrupt, so that it runs again."""
        done = {}
        for path in self.cells_dir.glob("*.json"):
            record = _read_cell_json(path)
            if record is None:
                continue
            if _read_curves(path.with_suffix(".parquet")) is None:
                os.replace(path, path.with_name(path.name + ".corrupt"))
                continue
            counts = record["status_counts"]
            if not counts.get(Status.ERROR.value, 0) and not counts.get(Status.TIMEOUT.value, 0):
                done[record["id"]] = record
        return done

    def final_values(self, cell_id: str, metric: str) -> list[float]:
        """The last value of a curve column for each seed of a finished cell that ended
        done (what tuning selects on)."""
        record = _read_cell_json(self.cells_dir / f"{cell_id}.json")
        curves = _read_curves(self.cells_dir / f"{cell_id}.parquet")
        if record is None or curves is None:
            return []
        done = {s["seed"] for s in record["seeds"] if s["status"] == Status.DONE.value}
        last = curves.sort_values("step").groupby("seed")[metric].last()
        return [float(v) for seed, v in last.items() if seed in done]

    def write_cell(self, cell: Cell, result: CellResult) -> None:
        curves = schema.frame({"cell_id": cell.id, **result.curves} if result.curves else [],
                              schema.CURVES)
        atomic_write(self.cells_dir / f"{cell.id}.parquet",
                     lambda tmp: curves.to_parquet(tmp, index=False))
        record = {
            "schema_version": SCHEMA_VERSION, **cell.record(),
            "steps_trained": result.steps_trained, "error": result.error,
            "seeds": [{"seed": s.seed, "status": s.status.value, "diverged_step": s.diverged_step}
                      for s in result.seeds],
            "status_counts": result.status_counts(),
            "timings": result.timings.record(),
            "usage": asdict(result.usage),
            "finished": _now(),
        }
        write_json(self.cells_dir / f"{cell.id}.json", record)

    def merge(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rebuild runs.parquet and curves.parquet from the cell files; return them."""
        pairs = []
        for path in sorted(self.cells_dir.glob("*.json")):
            record = _read_cell_json(path)
            curves = _read_curves(path.with_suffix(".parquet")) if record else None
            if curves is not None:  # a damaged pair: finished() sets it aside for a rerun
                pairs.append((record, curves))
        runs = tables.runs_table(pairs)
        curves = schema.frame(pd.concat([c for _, c in pairs], ignore_index=True)
                              if pairs else [], schema.CURVES)
        atomic_write(self.root / "runs.parquet", lambda tmp: runs.to_parquet(tmp, index=False))
        atomic_write(self.root / "curves.parquet", lambda tmp: curves.to_parquet(tmp, index=False))
        return runs, curves


@dataclass(frozen=True)
class Results:
    """A results folder as pandas tables: what `bench.load(path)` returns."""

    root: Path
    manifest: dict[str, Any]
    runs: pd.DataFrame  # one row per cell x seed (results/README.md)
    curves: pd.DataFrame  # one row per cell x seed x eval point


def load(root: str | Path) -> Results:
    """Read a results folder. A folder whose run has not merged any cell yet gives empty
    tables; a missing, foreign, newer or corrupt folder is a one-line UserError."""
    store = RunStore(root)
    manifest = store.manifest()  # checks it is a results folder of this schema
    runs_path, curves_path = store.root / "runs.parquet", store.root / "curves.parquet"
    if not runs_path.exists():
        return Results(store.root, manifest, schema.frame([], schema.RUNS),
                       schema.frame([], schema.CURVES))
    try:
        runs = pd.read_parquet(runs_path)
        curves = (pd.read_parquet(curves_path) if curves_path.exists()
                  else schema.frame([], schema.CURVES))
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"a table in {root} is corrupt: {str(exc).splitlines()[0]}"
                        f"; `optbench run --out {root}` rebuilds it from the cell files") from None
    return Results(store.root, manifest, runs, curves)


def _check_same_matrix(root: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """The same matrix is the same cell specs (code may have changed: its cells rerun)."""
    old_cells, new_cells = set(old.get("cells", [])), set(new["cells"])
    if old_cells == new_cells:
        return  # the same matrix again: resume it
    old_name = old.get("matrix", {}).get("name", "?")
    raise UserError(
        f"{root} holds another matrix ({old_name}, {len(old_cells)} cells; this one has"
        f" {len(new_cells)}, {len(old_cells & new_cells)} in common): pass --resume to add"
        " this matrix's unfinished cells to it, --force to rerun all of them there, or"
        " choose another --out")


def _read_cell_json(path: Path) -> dict[str, Any] | None:
    """A cell record, or None when it is unreadable (the cell then counts as unfinished)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(record, dict) or record.get("schema_version") != SCHEMA_VERSION:
        return None
    return record


def _read_curves(path: Path) -> pd.DataFrame | None:
    """A cell's curves; empty for a cell that errored before writing any; None if damaged."""
    if not path.exists():
        return schema.frame([], schema.CURVES)
    try:
        return pd.read_parquet(path)
    except Exception:  # noqa: BLE001  pyarrow raises several types for a damaged file
        return None


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any):
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
