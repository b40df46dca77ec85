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
from bench.records import CURVE_COLUMNS, CellResult, Status

if TYPE_CHECKING:  # the store itself stays free of JAX, so reports can read it without
    from bench.matrix import Cell

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
_UMASK = os.umask(0)
os.umask(_UMASK)
_FILE_MODE = 0o666 & ~_UMASK  # what open() would have given the file


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, payload: Any) -> None:
    """Strict JSON (NaN and infinities become null), so any tool can read it."""
    text = json.dumps(_finite(payload), indent=2, default=_jsonable, allow_nan=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))


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
        self._lock()
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

    def _lock(self) -> None:
        """An exclusive advisory lock on <root>/.lock, released when the process exits
        (even by kill -9): a second run into the same folder is refused, not interleaved."""
        handle = open(self.root / ".lock", "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"{self.root} is in use by another optbench run ({holder});"
                            " wait for it to finish or choose another --out") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        self._lock_handle = handle  # kept open: closing it would release the lock

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
            raise UserError(f"{self.root} has results schema version {version}; this optbench"
                            f" reads version {SCHEMA_VERSION}")
        return manifest

    def finished(self) -> set[str]:
        """Ids of cells whose results are complete: both files readable, no seed errored or
        timed out (those are never cached). A cell whose curves file is damaged is set
        aside as <id>.json.corrupt, so that it runs again."""
        done = set()
        for path in self.cells_dir.glob("*.json"):
            record = _read_cell_json(path)
            if record is None:
                continue
            if _read_curves(path.with_suffix(".parquet")) is None:
                os.replace(path, path.with_name(path.name + ".corrupt"))
                continue
            counts = record["status_counts"]
            if not counts.get(Status.ERROR.value, 0) and not counts.get(Status.TIMEOUT.value, 0):
                done.add(path.stem)
        return done

    def write_cell(self, cell: Cell, result: CellResult) -> None:
        curves = pd.DataFrame(result.curves, columns=list(CURVE_COLUMNS))
        curves.insert(0, "cell_id", cell.id)
        atomic_write(self.cells_dir / f"{cell.id}.parquet",
                     lambda tmp: curves.to_parquet(tmp, index=False))
        timings = result.timings
        record = {
            "schema_version": SCHEMA_VERSION, "id": cell.id, "label": cell.label,
            "spec": cell.spec(), "steps_trained": result.steps_trained, "error": result.error,
            "seeds": [{"seed": s.seed, "status": s.status.value, "diverged_step": s.diverged_step}
                      for s in result.seeds],
            "status_counts": _count_status(result),
            "timings": {
                "data_s": timings.data_s, "setup_s": timings.setup_s,
                "compile_s": timings.compile_s, "train_s": timings.train_s,
                "eval_s": timings.eval_s, "probe_s": timings.probe_s, "total_s": timings.total_s,
                "step_time_median_s": timings.step_time_median_s,
                "step_time_iqr_s": timings.step_time_iqr_s, "steps_per_s": timings.steps_per_s,
                "chunk_seconds": timings.chunk_seconds, "chunk_steps": timings.chunk_steps,
            },
            "usage": asdict(result.usage),
            "finished": _now(),
        }
        write_json(self.cells_dir / f"{cell.id}.json", record)

    def merge(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Rebuild runs.parquet and curves.parquet from the cell files; return them."""
        records, curve_frames = [], []
        for path in sorted(self.cells_dir.glob("*.json")):
            record = _read_cell_json(path)
            if record is None:
                continue
            curves = _read_curves(path.with_suffix(".parquet"))
            if curves is None:  # damaged: finished() sets it aside for a rerun
                continue
            records.append((record, curves))
            curve_frames.append(curves)
        runs = pd.DataFrame([row for record, curves in records for row in run_rows(record, curves)],
                            columns=RUN_COLUMNS)
        runs["diverged_step"] = runs["diverged_step"].astype("Int64")
        runs["trial"] = runs["trial"].astype("Int64")
        runs["budget"] = runs["budget"].astype("Int64")
        curves = pd.concat(curve_frames, ignore_index=True) if curve_frames else _empty_curves()
        atomic_write(self.root / "runs.parquet", lambda tmp: runs.to_parquet(tmp, index=False))
        atomic_write(self.root / "curves.parquet", lambda tmp: curves.to_parquet(tmp, index=False))
        return runs, curves


RUN_COLUMNS = [
    "cell_id", "workload", "optimizer", "label", "hparams", "steps", "eval_every", "batch_size",
    "seed", "status", "diverged_step", "steps_trained", "final_train_loss", "final_val_loss",
    "final_val_accuracy", "final_test_loss", "final_test_accuracy", "best_val_accuracy",
    "target_metric", "target_value", "target_step", "target_seconds", "seeds_in_batch",
    "schedule", "role", "trial", "budget",
    "data_s", "setup_s", "compile_s", "train_s", "eval_s", "probe_s", "total_s",
    "step_time_median_s", "step_time_iqr_s", "steps_per_s", "compiles", "trials_in_program",
    "devices", "param_bytes", "state_bytes", "state_to_param", "update_s", "update_share", "flops_per_step",
    "achieved_flops_per_s", "mfu", "peak_device_bytes", "peak_rss_bytes", "cpu_util_mean",
    "device_util_mean", "device_util_max", "device_mem_peak_bytes", "missing", "error",
]
_FINAL = ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy")
_TIMINGS = ("data_s", "setup_s", "compile_s", "train_s", "eval_s", "probe_s", "total_s",
            "step_time_median_s", "step_time_iqr_s", "steps_per_s")
_USAGE = ("compiles", "trials_in_program", "devices", "param_bytes", "state_bytes", "update_s",
          "flops_per_step", "peak_device_bytes", "peak_rss_bytes", "cpu_util_mean", "device_util_mean",
          "device_util_max", "device_mem_peak_bytes")


def run_rows(record: dict[str, Any], curves: pd.DataFrame) -> list[dict[str, Any]]:
    """One row per seed of a cell record: spec, status, final and best metrics, target."""
    spec = record["spec"]
    rows = []
    for seed_record in record["seeds"]:
        seed_curve = curves[curves["seed"] == seed_record["seed"]].sort_values("step")
        last = seed_curve.iloc[-1] if len(seed_curve) else None
        target_step, target_seconds = first_reaching(
            seed_curve, spec["target_metric"], spec["target_value"])
        rows.append({
            "cell_id": record["id"], "workload": spec["workload"], "optimizer": spec["optimizer"],
            "label": record["label"], "hparams": json.dumps(spec["hparams"], sort_keys=True),
            "steps": spec["steps"], "eval_every": spec["eval_every"],
            "batch_size": spec["batch_size"], "seed": seed_record["seed"],
            "status": seed_record["status"], "diverged_step": seed_record["diverged_step"],
            "steps_trained": record["steps_trained"],
            **{f"final_{m}": (float(last[m]) if last is not None else math.nan) for m in _FINAL},
            "best_val_accuracy": float(seed_curve["val_accuracy"].max()) if len(seed_curve) else math.nan,
            "target_metric": spec["target_metric"], "target_value": spec["target_value"],
            "target_step": target_step, "target_seconds": target_seconds,
            "seeds_in_batch": len(record["seeds"]),
            "schedule": _schedule_name(spec.get("schedule")),
            "role": spec.get("tuning", {}).get("role", "oneshot"),
            "trial": spec.get("tuning", {}).get("trial"),
            "budget": spec.get("tuning", {}).get("budget"),
            **{k: _or_nan(record["timings"].get(k)) for k in _TIMINGS},
            **usage_columns(record, len(record["seeds"])),
            "error": record.get("error"),
        })
    return rows


def usage_columns(record: dict[str, Any], seeds: int) -> dict[str, Any]:
    """The usage of a cell record, with the ratios derived from it (NaN when unknown)."""
    usage = record.get("usage") or {}
    columns = {k: _or_nan(usage.get(k)) for k in _USAGE}
    timings = record["timings"]
    train_s, step_s = _or_nan(timings.get("train_s")), _or_nan(timings.get("step_time_median_s"))
    achieved = columns["flops_per_step"] * seeds * record["steps_trained"] / train_s \
        if train_s > 0 else math.nan
    columns.update(
        state_to_param=columns["state_bytes"] / columns["param_bytes"]
        if columns["param_bytes"] else math.nan,
        update_share=columns["update_s"] / step_s if step_s > 0 else math.nan,
        achieved_flops_per_s=achieved,
        mfu=achieved / usage["peak_flops"] if usage.get("peak_flops") else math.nan,
        missing=json.dumps(usage.get("missing", {}), sort_keys=True),
    )
    return columns


def first_reaching(curve: pd.DataFrame, metric: str, value: float) -> tuple[float, float]:
    """(step, train seconds) of the first eval point where `metric` reaches `value`
    (>= for accuracies, <= for losses); NaN when never reached. No interpolation: the
    resolution is the eval cadence."""
    if not len(curve) or metric not in curve:
        return math.nan, math.nan
    values = curve[metric].to_numpy()
    reached = values <= value if metric.endswith("loss") else values >= value
    hits = np.flatnonzero(reached)
    if not hits.size:
        return math.nan, math.nan
    row = curve.iloc[hits[0]]
    return float(row["step"]), float(row["train_seconds"])


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
        return Results(store.root, manifest, pd.DataFrame(columns=RUN_COLUMNS), _empty_curves())
    try:
        runs = pd.read_parquet(runs_path)
        curves = pd.read_parquet(curves_path) if curves_path.exists() else _empty_curves()
    except Exception as exc:  # pyarrow raises several types for a damaged file
        raise UserError(f"a table in {root} is corrupt: {str(exc).splitlines()[0]}"
                        f"; `optbench run --out {root}` rebuilds it from the cell files") from None
    return Results(store.root, manifest, runs, curves)


def load_tables(root: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) of a results folder."""
    results = load(root)
    return results.runs, results.curves


def _check_same_matrix(root: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    old_cells, new_cells = set(old.get("cells", [])), set(new["cells"])
    if old_cells == new_cells:
        return  # the same matrix again: resume it
    old_name = old.get("matrix", {}).get("name", "?")
    raise UserError(
        f"{root} holds another matrix ({old_name}, {len(old_cells)} cells; this one has"
        f" {len(new_cells)}, {len(old_cells & new_cells)} in common): pass --resume to add"
        " this matrix's unfinished cells to it, --force to rerun all of them there, or"
        " choose another --out")


def _schedule_name(schedule: dict[str, Any] | None) -> str:
    """'constant', or e.g. 'wsd(decay=0.2, warmup=0.05)'."""
    if not schedule:
        return "constant"
    values = {k: v for k, v in schedule.items() if k != "name"}
    return f"{schedule['name']}({', '.join(f'{k}={v:g}' for k, v in sorted(values.items()))})"


def _or_nan(value: Any) -> float:
    return math.nan if value is None else float(value)


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
        return _empty_curves()
    try:
        return pd.read_parquet(path)
    except Exception:  # noqa: BLE001  pyarrow raises several types for a damaged file
        return None


def _count_status(result: CellResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for seed in result.seeds:
        counts[seed.status.value] = counts.get(seed.status.value, 0) + 1
    return counts


def _empty_curves() -> pd.DataFrame:
    return pd.DataFrame(columns=["cell_id", *CURVE_COLUMNS])


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
