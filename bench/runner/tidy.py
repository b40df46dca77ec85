"""`Results.tidy()`: the curves as one long table ready for plotting: each eval point of
curves.parquet with its cell described (from runs.parquet) and each hyperparameter as a
column of its own, so a plot needs no join and no JSON:

    seaborn.relplot(data=results.tidy(), x="step", y="val_accuracy", hue="optimizer",
                    col="workload", kind="line")

One row per row of curves.parquet, in its order. Columns (results/README.md lists them):
DESCRIBED, then curves.parquet's own columns but `cell_id`, then one column per
hyperparameter (sorted by name), then `cell_id`. A hyperparameter whose name is taken by
another column is `hparam_<name>`. Pure pandas: no JAX.
"""
from __future__ import annotations

import json
from typing import Any

import pandas as pd

# runs.parquet columns joined to every eval point of the cell x seed they describe
DESCRIBED = ("workload", "optimizer", "label", "schedule", "role", "seed", "status")
KEYS = ["cell_id", "seed"]  # a row of runs.parquet: one cell x seed
HPARAM_PREFIX = "hparam_"  # for a hyperparameter named like another column


def tidy(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    curve_columns = [c for c in curves.columns if c not in ("cell_id", "seed")]
    hparams = hparam_columns(runs, taken={*DESCRIBED, *curve_columns, "cell_id"})
    described = pd.concat([runs[[*KEYS, *(c for c in DESCRIBED if c not in KEYS)]], hparams],
                          axis=1)
    table = curves.merge(described, on=KEYS, how="left", validate="many_to_one")
    return table[[*DESCRIBED, *curve_columns, *hparams.columns, "cell_id"]]


def hparam_columns(runs: pd.DataFrame, taken: set[str]) -> pd.DataFrame:
    """runs.parquet's `hparams` JSON as one column per hyperparameter, typed: numbers as
    int64 (whole numbers on every row) or float64 (NaN where a cell's optimizer lacks it or
    sets it to null), booleans as pandas' nullable boolean, strings as objects; a column
    null on every row is float64 NaN."""
    values = [json.loads(text) for text in runs["hparams"]]
    names = sorted({name for value in values for name in value})
    return pd.DataFrame({f"{HPARAM_PREFIX}{name}" if name in taken else name:
                         _typed([value.get(name) for value in values], runs.index)
                         for name in names}, index=runs.index)


def _typed(column: list[Any], index: pd.Index) -> pd.Series:
    present = [v for v in column if v is not None]
    if not present:  # null wherever it is set (rmsprop's momentum=None): NaN, as pandas has it
        return pd.Series(float("nan"), dtype="float64", index=index)
    if present and all(isinstance(v, bool) for v in present):
        return pd.Series(column, dtype="boolean", index=index)
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        whole = all(isinstance(v, int) for v in present) and len(present) == len(column)
        return pd.Series(column, dtype="int64" if whole else "float64",
                         index=index)
    return pd.Series(column, dtype="object", index=index)
