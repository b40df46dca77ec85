"""The results folder: a manifest, one pair of files per finished cell, and merged tables.

    results/<run>/manifest.json        schema_version, config, versions, device, host, git
    results/<run>/cells/<id>.parquet   the cell's curves (written first)
    results/<run>/cells/<id>.json      the cell's spec, per-seed status and timings (last:
                                       its presence is what marks the cell finished)
    results/<run>/runs.parquet         one row per cell x seed, rebuilt from the cell files
    results/<run>/curves.parquet       one row per cell x seed x eval point, likewise

The cell files are the truth; the merged tables are one generation built from them. Both
tables carry the generation's token (a digest of the cell files they were built from), so a
kill between their renames, a deleted or foreign table, or cells finished after the last
merge are seen, and the tables are rebuilt from cells/ (in memory when the folder is locked
by a running run or read-only). A cell file that cannot be read or does not make a table
row is set aside as <file>.corrupt by whoever holds the folder's lock, and its cell runs
again (bench/runner/cell_files.py reads and checks them). Every write goes through
bench/runner/files.py (temporary name, rename, no links
followed). results/README.md documents the columns.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from bench.errors import UserError
from bench.records import CellResult, Status
from bench.report.render import printable
from bench.runner import schema, sessions
from bench.runner.cell_files import Scan, cell_files, read_cell, scan_cells, tables_of
from bench.runner.files import (atomic_write, lock_folder, make_folder, read_json,
                                remove_temporaries, unlock_folder, utf8,
                                write_json)
from bench.runner.schema import SCHEMA_VERSION

if TYPE_CHECKING:  # the store itself stays free of JAX, so reports can read it without
    from bench.plan.cells import Cell

MANIFEST = "manifest.json"
TABLES = {"runs": schema.RUNS, "curves": schema.CURVES}  # runs.parquet, curves.parquet
GENERATION_KEY = b"optbench.generation"
RunState = Literal["running", "finished", "interrupted", "failed"]  # the manifest's "state"
__all__ = ["RunStore", "write_tables", "now"]


class RunStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)
        try:
            where = str(self.root.absolute())
        except OSError:  # the current folder was deleted: opening or reading says what is missing
            where = str(self.root)
        if not utf8(where):
            raise UserError(f"results folder {printable(where)} is not a valid UTF-8 path,"
                            " which its tables need; choose another folder")
        self.cells_dir = self.root / "cells"
        self._lock = None
        self.saved: set[str] = set()  # the cells this session saved (their files' times may lie)

    def open(self, config: dict[str, Any], environment: dict[str, Any], *,
             resume: bool = False, force: bool = False) -> None:
        """Create the folder and manifest, or check that an existing folder may take this
        run: same matrix (it resumes), or --resume / --force for a different one. Holds an
        exclusive lock on the folder until `close` (or the process ends, even by kill -9)."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"{self.root} is a file, not a results folder; choose another --out")
        if self.root.is_dir() and not (self.root / MANIFEST).exists():
            if self.cell_files():
                raise UserError(f"{self.root} holds cell files but no {MANIFEST}: `optbench"
                                f" repair {self.root}` rebuilds it, or choose another --out")
            if any(p.name not in {".lock", ".gitignore", "cells"} for p in self.root.iterdir()):
                raise UserError(f"{self.root} is not empty and not an optbench results folder;"
                                " choose another --out")
        make_folder(self.root, link_ok=True)
        if not os.access(self.root, os.W_OK):
            raise UserError(f"results folder {self.root} is not writable; choose another --out")
        self._lock = lock_folder(self.root)  # kept open: closing it releases the lock
        try:
            existing = self._prepare(config, resume=resume, force=force)
            earlier = sessions.earlier_sessions(existing, self.cell_files())
            write_json(self.root / MANIFEST, {
                "schema_version": SCHEMA_VERSION,
                "created": existing.get("created", now()) if existing else now(),
                "updated": now(),
                "session_started": sessions.now(),
                "state": "running",  # until `mark_ended`; `optbench report --watch` stops on it
                "config": config,
                **environment,
                **({"earlier_sessions": earlier} if earlier else {}),
            })
        except BaseException:
            self.close()  # a refused run must not leave this process (a notebook) locked out
            raise

    def _prepare(self, config: dict[str, Any], *, resume: bool, force: bool) -> dict[str, Any] | None:
        """Under the lock: clear temporaries, read the existing manifest and refuse another
        matrix without --resume or --force. The existing manifest, or None."""
        make_folder(self.cells_dir)
        remove_temporaries(self.root)
        remove_temporaries(self.cells_dir)
        existing = self.manifest() if (self.root / MANIFEST).exists() else None
        if existing and not (resume or force):
            _check_same_matrix(self.root, existing["config"], config)
        return existing

    def mark_ended(self, state: RunState) -> None:
        """Say in the manifest how the run ended (a run killed outright leaves `running`,
        and no lock: readers check both)."""
        write_json(self.root / MANIFEST, {**sessions.ended(self.manifest(), len(self.saved),
                                                         finished=state == "finished",
                                                         present=len(self.cell_files())),
                                          "state": state, "updated": now()})

    def close(self) -> None:
        unlock_folder(self._lock)
        self._lock = None

    def manifest(self) -> dict[str, Any]:
        """The manifest, checked: a missing, damaged or other-version one is a UserError."""
        path = self.root / MANIFEST
        if not self.root.is_dir():
            raise UserError(f"{self.root} is not an optbench results folder ("
                            + ("it is a file)" if self.root.exists() else "it does not exist)"))
        if path.is_dir() and not path.is_symlink():
            raise UserError(f"{path} is a folder, not a manifest: remove it, then `optbench"
                            f" repair {self.root}` rebuilds the manifest from the cell files")
        try:
            manifest = read_json(path)
        except FileNotFoundError:
            raise UserError(f"{self.root} is not an optbench results folder (no {MANIFEST})"
                            + (f"; `optbench repair {self.root}` rebuilds it from the cell files"
                               if self.cells_dir.is_dir() else "")) from None
        except (OSError, ValueError) as exc:
            raise _damaged(self.root, f"unreadable or not JSON ({exc})") from None
        if not isinstance(manifest, dict):
            raise _damaged(self.root, f"it holds {json.dumps(manifest)[:40]}, not a JSON object")
        version = manifest.get("schema_version")
        if type(version) is not int:
            raise _damaged(self.root, f"its schema_version is {version!r}, not a whole number")
        if version != SCHEMA_VERSION:
            advice = ("rerun its matrix into a new folder (`optbench run <matrix> --out NEW`);"
                      " this version's tables hold each workload's own metrics and their"
                      " directions, which older folders lack" if version < SCHEMA_VERSION
                      else "read it with the optbench that wrote it")
            raise UserError(f"{self.root} has results schema version {version}; this optbench"
                            f" reads version {SCHEMA_VERSION}: {advice}")
        config = manifest.get("config")
        if (not isinstance(config, dict) or not isinstance(config.get("cells"), list)
                or not all(isinstance(c, str) for c in config["cells"])
                or not isinstance(config.get("matrix", {}), dict)):
            raise _damaged(self.root, "its config is not a table with a matrix and a list of cells")
        for key in ("device", "host", "versions"):
            if not isinstance(manifest.get(key, {}), dict):
                raise _damaged(self.root, f"its {key} is not a table")
        if not isinstance(config.get("matrix", {}).get("name", ""), str):
            raise _damaged(self.root, "its matrix name is not text")
        return manifest

    def scan(self, *, set_aside: bool = False) -> Scan:
        """Every cell in cells/; with `set_aside` (hold the lock), damaged ones set aside."""
        return scan_cells(self.cells_dir, set_aside=set_aside)

    def cell_files(self) -> list[Path]:
        return cell_files(self.cells_dir)

    def finished(self) -> dict[str, dict[str, Any]]:
        """Records of the cells whose results are complete, by id: both files readable, no
        seed errored or timed out (those are never cached). Damaged ones are set aside."""
        done = {}
        for cell in self.scan(set_aside=True).cells:
            counts = cell.record["status_counts"]
            if not counts.get(Status.ERROR.value, 0) and not counts.get(Status.TIMEOUT.value, 0):
                done[cell.record["id"]] = cell.record
        return done

    def final_values(self, cell_id: str, metric: str) -> list[float]:
        """The last value of a curve column for each seed of a finished cell that ended
        done (what tuning selects on)."""
        cell = read_cell(self.cells_dir / f"{cell_id}.json")
        if cell is None or metric not in cell.curves:
            return []
        done = {s["seed"] for s in cell.record["seeds"] if s["status"] == Status.DONE.value}
        last = cell.curves.sort_values("step").groupby("seed")[metric].last()
        return [float(v) for seed, v in last.items() if seed in done]

    def write_cell(self, cell: Cell, result: CellResult) -> None:
        curves = schema.frame({"cell_id": cell.id, **result.curves} if result.curves else [],
                              "curves")
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
            "finished": now(),
        }
        write_json(self.cells_dir / f"{cell.id}.json", record)
        self.saved.add(cell.id)

    def merge(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rebuild runs.parquet and curves.parquet from the cell files (setting damaged ones
        aside); return them. Call it holding the lock."""
        remove_temporaries(self.root)
        scan = self.scan(set_aside=True)
        runs, curves = tables_of(scan)
        write_tables(self.root, runs, curves, self.generation())
        return runs, curves

    def generation(self) -> str:
        """The token of what cells/ holds now: a digest of its cell files' names, sizes and
        modification times (cheap: nothing is read). The merged tables carry the token of
        the files they were built from."""
        stamps = [f"{p.name}:{p.lstat().st_size}:{p.lstat().st_mtime_ns}"
                  for json_file in self.cell_files()
                  for p in (json_file, json_file.with_suffix(".parquet")) if p.exists()]
        return hashlib.sha256("\n".join(stamps).encode()).hexdigest()

    def merged(self, token: str | None) -> tuple[pd.DataFrame, pd.DataFrame] | None:
        """The merged tables when both are of this schema and of one generation: `token`,
        or any one when None (a folder shared without its cells/, whose tables may also
        come from elsewhere, untokened)."""
        found, tokens = [], set()
        for name in TABLES:
            try:
                arrow = pq.read_table(self.root / f"{name}.parquet")
            except Exception:  # noqa: BLE001  missing or damaged: pyarrow raises several types
                return None
            tokens.add((arrow.schema.metadata or {}).get(GENERATION_KEY))
            if not schema.has_layout(name, arrow.schema.names):
                return None
            found.append(schema.completed(arrow.to_pandas(), name))
        if len(tokens) != 1 or (token is not None and tokens != {token.encode()}):
            return None
        return found[0], found[1]


def write_tables(root: Path, runs: pd.DataFrame, curves: pd.DataFrame, token: str) -> None:
    """runs.parquet and curves.parquet as one generation: both carry `token`."""
    for name, table in (("curves", curves), ("runs", runs)):
        arrow = pa.Table.from_pandas(table, preserve_index=False)
        arrow = arrow.replace_schema_metadata({**(arrow.schema.metadata or {}),
                                               GENERATION_KEY: token.encode()})
        atomic_write(Path(root) / f"{name}.parquet", lambda tmp, t=arrow: pq.write_table(t, tmp))


def _damaged(root: Path, why: str) -> UserError:
    return UserError(f"{root}/{MANIFEST} is damaged: {why}; `optbench repair {root}` rebuilds"
                     " it from the cell files")


def _check_same_matrix(root: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """The same matrix is the same cell specs (code may have changed: its cells rerun)."""
    old_cells, new_cells = set(old.get("cells", [])), set(new["cells"])
    if old_cells == new_cells:
        return  # the same matrix again: resume it
    if old.get("repaired") and old_cells <= new_cells:
        return  # a manifest rebuilt from its cells knows only those: this matrix finishes it
    old_name = old.get("matrix", {}).get("name", "?")
    raise UserError(
        f"{root} holds another matrix ({old_name}, {len(old_cells)} cells; this one has"
        f" {len(new_cells)}, {len(old_cells & new_cells)} in common): pass --resume to add"
        " this matrix's unfinished cells to it, --force to rerun all of them there, or"
        " choose another --out")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
