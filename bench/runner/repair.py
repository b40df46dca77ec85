"""`optbench repair RUN`: rebuild a results folder's manifest and tables from its cell files
(the truth; see store.py), after the manifest was damaged or deleted."""
from __future__ import annotations

from pathlib import Path

from bench.errors import UserError
from bench.runner.files import lock_folder, make_folder, remove_temporaries, unlock_folder, write_json
from bench.runner.schema import SCHEMA_VERSION
from bench.runner.store import MANIFEST, RunStore, now


def repair(root: str | Path) -> str:
    """Rebuild a folder's manifest and tables from its cell files (after the manifest was
    damaged or deleted); damaged cell files are set aside. Returns what it did, in a line."""
    store = RunStore(root)
    if not store.cells_dir.is_dir():
        raise UserError(f"{store.root} has no cells/ folder: nothing to repair")
    make_folder(store.cells_dir)  # refuses a link: repair renames files in it
    if not store.cell_files():
        raise UserError(f"{store.cells_dir} holds no optbench cell file (<id>.json): this is"
                        " not a results folder; nothing to repair")
    lock = lock_folder(store.root)
    try:
        try:
            old = store.manifest()
        except UserError:
            old = None
        remove_temporaries(store.root)
        remove_temporaries(store.cells_dir)
        scan = store.scan(set_aside=True)
        cells = sorted({c.record["spec_key"] for c in scan.cells})
        kept = old or {}
        config = kept.get("config") or {"matrix": {"name": store.root.name}}
        manifest = {**kept, "schema_version": SCHEMA_VERSION,
                    "created": kept.get("created", now()), "updated": now(),
                    "config": {**config, "cells": sorted(set(config.get("cells", [])) | set(cells))
                               if old else cells, "repaired": not old}}
        write_json(store.root / MANIFEST, manifest)
        store.merge()
    finally:
        unlock_folder(lock)
    return (f"{store.root}: manifest {'checked' if old else 'rebuilt'}, {len(scan.cells)} cell(s)"
            f" kept, {len(scan.damaged)} damaged file(s) set aside as .corrupt, tables rebuilt")
