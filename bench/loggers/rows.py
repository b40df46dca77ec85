"""A cell's stored rows in the shapes the logging backends take: its parameters, its
curves per eval step, its summary figures. One home for these rules, so TensorBoard,
MLflow and W&B show the same numbers under the same names.

- Curve metrics keep their curves.parquet names (`val_loss`, `test_accuracy`,
  `train_seconds`, ...): `seed_<seed>/<name>` for each seed, and `<name>` for the mean over
  the cell's seeds at that step.
- Non-finite values are left out: a diverged seed's curve stops at its last finite point
  (its `status` and `diverged_step` are in runs.parquet), and the mean is left out at a step
  where any seed is not finite, rather than averaged over the survivors.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from bench.runner import schema

# the runs.parquet columns a run's summary shows (means over the cell's seeds)
SUMMARY = ("best_target", "target_step", "target_seconds", "compile_s", "train_s", "eval_s",
           "steps_per_s", "step_time_median_s", "param_count")
# optbench's own parameters of a cell; a hyperparameter of the same name is `hparam.<name>`
CELL_PARAMS = ("workload", "optimizer", "label", "schedule", "role", "trial", "budget",
               "steps", "eval_every", "batch_size", "target_metric", "target_value",
               "target_direction", "cell_id")


def curve_columns(curves: pd.DataFrame) -> list[str]:
    """The columns of curves.parquet that are values over steps."""
    return [c for c in curves.columns
            if c in ("train_seconds", "train_loss") or schema.is_metric("curves", c)]


def params(runs: pd.DataFrame) -> dict[str, Any]:
    """What the cell is: optbench's fields (those it has: a oneshot cell has no trial),
    every hyperparameter value, its seeds."""
    first = runs.iloc[0]
    found = {name: _plain(first[name]) for name in CELL_PARAMS}
    found = {name: value for name, value in found.items() if value is not None}  # trial, budget
    for name, value in json.loads(first["hparams"]).items():  # None too: it is the value used
        found[f"hparam.{name}" if name in CELL_PARAMS else name] = value
    found["seeds"] = ",".join(str(s) for s in runs["seed"])
    return found


def status(runs: pd.DataFrame) -> str:
    """'done', or the seeds' statuses counted: '1 done, 1 diverged'."""
    counts = runs["status"].value_counts()
    return ", ".join(f"{n} {s}" for s, n in counts.items()) if len(counts) > 1 \
        else str(counts.index[0])


def failed(runs: pd.DataFrame) -> bool:
    """Whether a seed errored or timed out (a diverged seed is a result, not a failure)."""
    return bool(runs["status"].isin(["error", "timeout"]).any())


def steps(curves: pd.DataFrame) -> Iterator[tuple[int, dict[str, float]]]:
    """(step, {name: value}) in step order: each seed's values and the mean over seeds."""
    columns = curve_columns(curves)
    ordered = curves.sort_values(["step", "seed"])
    at = ordered["step"].to_numpy()
    seeds = ordered["seed"].to_numpy()
    values = {column: ordered[column].to_numpy(dtype=float) for column in columns}
    if not len(at):  # a cell that failed before its first evaluation
        return
    bounds = [0, *(np.flatnonzero(np.diff(at)) + 1), len(at)]  # where each step's rows start
    for start, end in zip(bounds[:-1], bounds[1:]):
        found: dict[str, float] = {}
        for column in columns:
            here = values[column][start:end]
            for seed, value in zip(seeds[start:end], here):
                if math.isfinite(value):
                    found[f"seed_{seed}/{column}"] = float(value)
            if np.isfinite(here).all():
                found[column] = float(here.mean())
        yield int(at[start]), found


def summary(runs: pd.DataFrame) -> dict[str, float]:
    """The cell's figures from runs.parquet, means over its seeds: each `final_*` metric
    and SUMMARY. Left out where a seed's value is not finite (a target never reached)."""
    columns = [c for c in runs.columns if c.startswith("final_")] + list(SUMMARY)
    found = {}
    for column in columns:
        values = runs[column].to_numpy(dtype=float)
        if len(values) and all(math.isfinite(v) for v in values):
            found[column] = float(values.mean())
    return found


def _plain(value: Any) -> Any:
    """A table value as plain Python (None for a missing one)."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    return value.item() if hasattr(value, "item") else value


def run_name(runs: pd.DataFrame) -> str:
    """How a cell is named in a backend's list of runs: 'mnist1d-mlp x optax:adam'."""
    first = runs.iloc[0]
    return f"{first['workload']} x {first['label']}"


def component(text: str, limit: int = 100) -> str:
    """`text` as one portable file or project name: letters, digits and ._=,()+@- kept,
    anything else (/, \\, :, spaces, markup) as '_', no leading dot, at most `limit`."""
    safe = re.sub(r"[^A-Za-z0-9._=,()+@-]", "_", text).lstrip(".")[:limit]
    return safe or "_"
