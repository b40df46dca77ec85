"""Width as an axis: does the best learning rate move as a model widens?

Cells of `<workload>@w<width>` are grouped by their registered workload. For each
optimizer and width, the best learning rate is the one whose cell scores best on the
target metric (validation split, the workload's direction) among the cells that ran that
optimizer at that width with different learning rates: tuning trials, or a list of learning
rates in the matrix. This is the question µP (Yang et al., arXiv 2203.03466) answers for
Adam: under standard parametrisation the best learning rate shrinks as width grows.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.render import Table, sort_key
from bench.report.tables import fmt_step_time

_SCALED = re.compile(r"(?P<base>.+)@w(?P<width>[0-9]+)")


def with_widths(cells: pd.DataFrame) -> pd.DataFrame:
    """The cells of width-scaled workloads, with `base` and `width` columns; empty when
    the run scaled no width."""
    if not len(cells):
        return cells
    parts = cells["workload"].str.extract(_SCALED)
    scaled = cells[parts["base"].notna()].assign(
        base=parts["base"].dropna(), width=parts["width"].dropna().astype(int))
    counts = scaled.groupby("base")["width"].nunique()
    return scaled if len(counts) and counts.max() > 1 else scaled.iloc[:0]


def best_learning_rates(cells: pd.DataFrame) -> pd.DataFrame:
    """One row per (base workload, optimizer, width) that ran at two learning rates or
    more: the best one, its score, the parameter count and the median step time."""
    scaled = with_widths(cells)
    if not len(scaled):
        return pd.DataFrame()
    scaled = scaled[scaled["role"] != "tuned"]  # a rerun of one of the trials
    rows = []
    for (base, optimizer, width), group in scaled.groupby(["base", "optimizer", "width"]):
        tried = group[np.isfinite(group["learning_rate"]) & np.isfinite(group["score"])]
        if tried["learning_rate"].nunique() < 2:
            continue
        ascending = group["target_direction"].iloc[0] == "min"
        best = tried.sort_values("score", ascending=ascending).iloc[0]
        # a diverged larger rate brackets the best from above as well as a worse one does
        rates = group.loc[np.isfinite(group["learning_rate"]), "learning_rate"]
        rows.append({"base": base, "optimizer": optimizer, "width": width,
                     "learning_rate": best["learning_rate"], "score": best["score"],
                     "target_metric": best["target_metric"], "tried": len(rates),
                     "no_score": len(rates) - len(tried),  # every seed diverged
                     # the best at the grid's edge: the optimum may lie beyond what was tried
                     "at_edge": best["learning_rate"] in (rates.min(), rates.max()),
                     "param_count": float(group["param_count"].median()),
                     "step_time_s": float(group["step_time_s"].median())})
    return pd.DataFrame(rows)


def table(cells: pd.DataFrame) -> Table | None:
    """Parameters, step time and the best learning rate per width (the learning rate only
    where several were tried)."""
    scaled = with_widths(cells)
    if not len(scaled):
        return None
    best = best_learning_rates(cells)
    found = {(r.base, r.optimizer, r.width): r for r in best.itertuples()}
    header = ["workload", "width", "parameters", "optimizer", "step time",
              "best learning rate (of those tried)", "its final target metric"]
    rows = []
    for (base, width, optimizer), group in scaled.groupby(["base", "width", "optimizer"]):
        chosen = found.get((base, optimizer, width))
        params = float(group["param_count"].median())
        step = float(group["step_time_s"].median())
        rows.append([
            (base, None), (str(width), width),
            (f"{params:,.0f}" if math.isfinite(params) else "—", sort_key(params)),
            (optimizer, None),
            (fmt_step_time(step), sort_key(step)),
            (f"{chosen.learning_rate:.3g} ({chosen.tried} tried"
             + (f", {chosen.no_score} diverged" if chosen.no_score else "")
             + ("; at the edge of those: widen the range)" if chosen.at_edge else ")")
             if chosen else "one tried",
             sort_key(chosen.learning_rate if chosen else math.nan)),
            (f"{chosen.score:.4g}" if chosen else "—", sort_key(chosen.score if chosen else math.nan)),
        ])
    return Table(header, rows, title="Width: parameters, step time and the best learning rate")


def draw(cells: pd.DataFrame, out: Path, panels, palette, save) -> Path | None:
    """Best learning rate against width, one line per optimizer, one panel per workload;
    both axes log2 / log10. `panels`, `palette`, `save`: the report's figure helpers."""
    best = best_learning_rates(cells)
    if not len(best):
        return None
    bases = sorted(best["base"].unique())
    fig, axes = panels(len(bases))
    colours = palette(best["optimizer"])
    for ax, base in zip(axes[0], bases):
        for optimizer, group in best[best["base"] == base].groupby("optimizer"):
            group = group.sort_values("width")
            ax.plot(group["width"], group["learning_rate"], marker="o", label=optimizer,
                    color=colours[optimizer])
        ax.set_xscale("log", base=2)
        ticks = sorted(best.loc[best["base"] == base, "width"].unique())
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_yscale("log")
        ax.set_xlabel("width")
        ax.set_ylabel("best learning rate")
        ax.set_title(base)
        ax.legend(fontsize="small")
    return save(fig, out / "best_lr_by_width.png")
