"""Reading a results folder: `bench.load(path)` -> `Results`, pandas tables of what it holds.

The merged tables are read when they are the generation of the cell files (bench/runner/
store.py says how a folder is written); otherwise they are rebuilt from the cell files, and
written back when nobody holds the folder and it is writable. No JAX.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from bench.errors import UserError
from bench.runner.cell_files import Scan, tables_of
from bench.runner.files import try_lock_folder, unlock_folder
from bench.runner.store import TABLES, RunStore
from bench.runner.tidy import tidy


@dataclass(frozen=True)
class Results:
    """A results folder as pandas tables: what `bench.load(path)` returns."""

    root: Path
    manifest: dict[str, Any]
    runs: pd.DataFrame  # one row per cell x seed (results/README.md)
    curves: pd.DataFrame  # one row per cell x seed x eval point
    notes: tuple[str, ...] = ()  # what was repaired or left out while reading

    def tidy(self) -> pd.DataFrame:
        """The curves, one row per eval point, with each cell's workload, optimizer, label,
        schedule, role, seed status and hyperparameters as columns (bench/runner/tidy.py):
        `seaborn.relplot(data=results.tidy(), x="step", y="val_accuracy", hue="optimizer",
        col="workload", kind="line")`."""
        return tidy(self.runs, self.curves)


def load(root: str | Path, *, partial: bool = False) -> Results:
    """Read a results folder. The merged tables are used when they are the generation of
    the cell files in cells/; otherwise the tables are rebuilt from those files (and written
    back when no run holds the folder and it is writable). A missing, foreign, newer or
    damaged folder is a one-line UserError. With `partial`, the cells a run is training now
    are added (bench/runner/live.py): their seeds' status is `running`, their curves end at
    their last chunk."""
    from bench.runner.live import with_live

    if not isinstance(root, (str, os.PathLike)):  # None, bytes, a list: not a folder's name
        raise UserError(f"bench.load takes a results folder's path (a str or Path); got"
                        f" {type(root).__name__}")
    if not str(root).strip():  # not the current folder by accident
        raise UserError("bench.load: the path is empty; give a results folder")
    try:
        results = _load_finished(root)
        return with_live(results) if partial else results
    except OSError as exc:  # a path the system refuses (too long, a loop, no permission)
        raise UserError(f"cannot read {str(root)[:120]!r}: {exc.strerror or exc}") from None


def _load_finished(root: str | Path) -> Results:
    store = RunStore(root)
    manifest = store.manifest()
    if not store.cells_dir.is_dir():  # tables shared without their cell files: as they are
        if not any((store.root / f"{name}.parquet").exists() for name in TABLES):
            return Results(store.root, manifest, *tables_of(Scan()))  # nothing finished yet
        tables_ = store.merged(None)
        if tables_ is None:
            raise UserError(f"{store.root} has no cells/ folder and its runs.parquet and"
                            " curves.parquet are missing, damaged or not one generation;"
                            " the cell files are needed to rebuild them")
        return Results(store.root, manifest, *tables_)
    notes, unreadable = [], 0
    tables_ = store.merged(store.generation())
    if tables_ is None:
        scan = store.scan()
        damaged = [p.name for p in scan.damaged]
        writable = os.access(store.root, os.W_OK) and not store.cells_dir.is_symlink()
        lock = try_lock_folder(store.root) if writable else None
        try:
            tables_ = store.merge() if lock is not None else tables_of(scan)
        except UserError:  # cannot write here (a full disk, say): the tables in memory do
            tables_ = tables_of(scan)
        finally:
            unlock_folder(lock)
        if damaged:
            notes.append(f"{len(damaged)} damaged cell file(s) in {store.cells_dir} are left"
                         f" out ({', '.join(damaged[:3])}"
                         + (", set aside as .corrupt" if lock is not None else "")
                         + "); `optbench run` with the same matrix reruns their cells")
        unreadable = len(damaged) if lock is None else 0  # still in cells/
    superseded = (len(store.cell_files()) - unreadable
                  - tables_[0]["cell_id"].nunique())
    if superseded > 0:
        notes.append(f"{superseded} cell(s) rerun under changed code are shown in their latest"
                     " run only; the earlier files stay in cells/")
    return Results(store.root, manifest, *tables_, notes=tuple(notes))
