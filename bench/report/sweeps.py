"""The statistics of tuning sweeps, from the cell table (analysis.cell_table): tuning
curves, untuned against tuned, which sweeps vary only the learning rate, and the report's
notes on them. No plotting (sweep_plots.py draws them)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.report import analysis


def tuning_curves(runs: pd.DataFrame, orders: int = 200, seed: int = 0) -> pd.DataFrame:
    """Best validation target metric found after k trials, k = 1..budget, per workload,
    optimizer and schedule: the median and the 10-90% band over `orders` random orders of
    the trials (each trial scored by its mean over its finished seeds)."""
    trials = runs[(runs["role"] == "trial") & (runs["status"] == "done")]
    rows = []
    rng = np.random.default_rng(seed)
    for (workload, optimizer, schedule), group in trials.groupby(
            ["workload", "optimizer", "schedule"]):
        metric = "final_" + group["target_metric"].iloc[0]
        sign = 1.0 if group["target_direction"].iloc[0] == "max" else -1.0
        scores = sign * group.groupby("trial")[metric].mean().to_numpy()
        best = sign * np.array([np.maximum.accumulate(rng.permutation(scores))
                                for _ in range(orders)])
        name = optimizer if schedule == "constant" else f"{optimizer} @ {schedule}"
        for k in range(best.shape[1]):
            low, median, high = np.percentile(best[:, k], [10, 50, 90])
            rows.append({"workload": workload, "optimizer": name, "trials": k + 1,
                         "metric": metric, "median": median, "low": low, "high": high,
                         "target_value": float(group["target_value"].iloc[0])
                         if "target_value" in group else math.nan})
    return pd.DataFrame(rows)


def oneshot_vs_tuned(cells: pd.DataFrame) -> pd.DataFrame:
    """Per workload, optimizer and schedule: the untuned cell's and the tuned cell's final
    target metric (mean and interval over seeds) and the tuned hyperparameters."""
    rows = []
    for (workload, optimizer, schedule), group in cells.groupby(["workload", "optimizer", "schedule"]):
        tuned = group[group["role"] == "tuned"]
        if not len(tuned):
            continue
        tuned = tuned.iloc[0]
        column = "final_" + tuned["target_metric"]
        oneshot = group[group["role"] == "oneshot"]
        untuned = oneshot.iloc[0] if len(oneshot) else None
        rows.append({
            "workload": workload, "optimizer": optimizer if schedule == "constant"
            else f"{optimizer} @ {schedule}", "metric": column,
            "tuned": tuned[column], "tuned_low": tuned[column + "_low"],
            "tuned_high": tuned[column + "_high"], "tuned_hparams": tuned["hparams"],
            "direction": tuned.get("target_direction", "max"),
            **{f"oneshot{suffix}": untuned[column + suffix] if untuned is not None else math.nan
               for suffix in ("", "_low", "_high")}})
    return pd.DataFrame(rows)


def tuned_worse_notes(tuning: pd.DataFrame) -> list[str]:
    """The report's notes for tuned cells worse than their untuned cell: the defaults are
    never a trial, and a trial picked on few seeds carries their noise, so a search can
    end below the defaults; a reader must not take the tuned cell as the optimizer's best."""
    notes = []
    for row in tuning.to_dict("records") if len(tuning) else []:
        tuned, untuned = row["tuned"], row["oneshot"]
        if not (np.isfinite(tuned) and np.isfinite(untuned)):
            continue
        if (tuned < untuned) if row.get("direction", "max") == "max" else (tuned > untuned):
            overlap = not (row["tuned_high"] < row["oneshot_low"]
                           or row["oneshot_high"] < row["tuned_low"])
            notes.append(
                f"{row['workload']} x {row['optimizer']}: the tuned cell ({tuned:.4g}) is worse"
                f" than the untuned one at the registered defaults ({untuned:.4g}"
                + ("; within noise" if overlap else "") + "). The defaults are not among the"
                " trials, and a trial chosen on tuning_seeds seed(s) carries their noise: give"
                " the search more seeds or trials before reading the tuned cell as this"
                " optimizer's best.")
    return notes


def one_dimensional_sweeps(cells: pd.DataFrame) -> tuple[pd.DataFrame, list[tuple]]:
    """(cells of the sweeps where only the learning rate varies, [(workload, optimizer,
    schedule, other varying names)] of the sweeps where more varies)."""
    if not len(cells) or "learning_rate" not in cells:
        return cells.iloc[:0], []
    swept = cells[np.isfinite(cells["learning_rate"])]
    keep, skipped = [], []
    for key, group in swept.groupby(["workload", "optimizer", "schedule"]):
        if group["learning_rate"].nunique() < 2:
            continue
        values = pd.DataFrame([analysis.hparams_of(h) for h in group["hparams"]])
        others = sorted(c for c in values if c != "learning_rate"
                        and values[c].astype(str).nunique() > 1)
        if others:
            skipped.append((*key, others))
        else:
            keep.append(group)
    return (pd.concat(keep) if keep else cells.iloc[:0]), skipped


def lr_sensitivity_skipped(cells: pd.DataFrame) -> list[str]:
    """The report's notes for sweeps left out of the learning-rate sensitivity figure."""
    return [f"{workload} x {optimizer}" + ("" if schedule == "constant" else f" @ {schedule}")
            + f": its trials vary {', '.join(others)} as well as the learning rate, so they are"
            f" not in the learning-rate sensitivity lines (which would mix the effects) but in"
            f" the figure coloured by {others[0]}; the key table lists every trial's values."
            for workload, optimizer, schedule, others
            in one_dimensional_sweeps(cells)[1]]
