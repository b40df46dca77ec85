"""The report's curve figures: training loss and the target metric (or any curve columns)
against step or training seconds, one column of panels per workload; and the rule for when
a metric's axis is logarithmic, which compare's figures share."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import analysis, figure_files
from bench.report.layout import grid, line_styles, log_y


def curves(runs: pd.DataFrame, curves_table: pd.DataFrame, out: Path, x: str,
           metrics: list[str] | None = None) -> Path | None:
    """Training loss and the target metric (or a row of panels per curve column of
    `metrics`) against `x` (step or train_seconds): the mean over seeds, and a band from
    the lowest to the highest seed (a standard-deviation band would dip below zero on the
    log-scaled loss); one column of panels per workload."""
    if not len(curves_table):
        return None
    data = curves_table.merge(runs[["cell_id", "seed", "workload", "label", "target_metric",
                                    "target_value", "target_direction"]
                                   + (["diverged_step"] if "diverged_step" in runs else [])]
                              .drop_duplicates(["cell_id", "seed"]), on=["cell_id", "seed"])
    if not len(data):
        return None
    # the curves' own values only: the target and the divergence step come from runs, and a
    # target masked on a diverged seed's rows read "target nan" when that seed came first
    numbers = (curves_table.select_dtypes("number").columns
               .difference(["step", "train_seconds", "seed"]).intersection(data.columns))
    data[numbers] = data[numbers].where(np.isfinite(data[numbers]))  # a diverged seed's inf
    if "diverged_step" in data:  # a model evaluated after divergence (chance accuracy) is no point
        data.loc[data["step"] >= data["diverged_step"], numbers] = np.nan
    workloads = analysis.workload_order(data["workload"])
    style = line_styles(data["label"])
    fig, groups = grid(len(workloads), 5.2, 3.6, rows_each=len(metrics) if metrics else 2)
    for workload, panels in zip(workloads, groups):
        frame = data[data["workload"] == workload]
        metric = frame["target_metric"].iloc[0]
        for row, (ax, y) in enumerate(zip(panels, metrics or ["train_loss", metric])):
            # one grouping for every label of the panel (one per label cost 2 s a figure)
            summary = frame.groupby(["label", "step"]).agg(x=(x, "mean"), mean=(y, "mean"),
                                                           low=(y, "min"), high=(y, "max"))
            for label, by_step in summary.groupby(level="label"):
                # a run shorter than eval_every has one point per seed: a line would not show it
                ax.plot(by_step["x"], by_step["mean"], label=label, lw=1.6,
                        marker="o" if len(by_step) <= 3 else None, ms=4, **style[label])
                ax.fill_between(by_step["x"], by_step["low"], by_step["high"],
                                color=style[label]["color"], alpha=0.15, lw=0)
            if y == "train_loss":
                if (frame[y] > 0).any():  # log scale needs a positive value to show
                    log_y(ax)
                else:
                    ax.text(0.5, 0.5, "no finite loss: every seed diverged", ha="center",
                            transform=ax.transAxes, color="tab:red")
                lost = all_diverged(runs[runs["workload"] == workload])
                if lost:  # no line to see: say whose
                    ax.text(0.02, 0.02, "every seed diverged: " + ", ".join(lost), fontsize=8,
                            transform=ax.transAxes, color="tab:red", wrap=True)
            elif y == metric:
                target = analysis.target_of(frame.iloc[0])
                ax.axhline(target.value, color="0.35", ls="--", lw=1)
                if log_axis(frame[y], target):
                    log_y(ax)
            elif spans_decades(frame[y]):  # another metric, asked for by name
                log_y(ax)
            if row == 0:
                ax.set_title(workload)
            ax.set_ylabel(y.replace("_", " ") + (f" (dashed: target {target.value:g})"
                                                 if y == metric else ""))
            ax.set_xlabel("step" if x == "step" else "training seconds")
    legend = {}  # every workload's labels, each once
    for panels in groups:
        legend.update({label: handle for handle, label in zip(*panels[0].get_legend_handles_labels())})
    handles, labels = list(legend.values()), list(legend)
    fits = int(fig.get_figwidth() * 11 // (max(map(len, labels), default=1) + 5))  # ~11 chars/inch
    columns = max(1, min(len(labels), fits))
    rows_of_legend = math.ceil(len(labels) / columns)
    legend_inches = 0.22 * rows_of_legend + 0.15  # 9-pt entries, whatever the figure's height
    fig.set_figheight(fig.get_figheight() + legend_inches)
    fig.legend(handles, labels, loc="lower center", ncol=columns, frameon=False, fontsize=9)
    name = "curves_by_step.png" if x == "step" else "curves_by_time.png"
    return figure_files.save(fig, out / name, rect=(0, legend_inches / fig.get_figheight(), 1, 1))


def all_diverged(runs: pd.DataFrame) -> list[str]:
    """Labels of `runs` whose every seed diverged."""
    if "status" not in runs:
        return []
    statuses = runs.groupby("label")["status"].agg(set)
    return sorted(label for label, found in statuses.items() if found == {"diverged"})


def log_axis(values: pd.Series, target) -> bool:
    """Whether a target metric's panel takes a log axis: one minimised towards zero
    (suboptimality, excess loss, a loss target far below; benchopt's log scale) whose values
    and target span decades. An accuracy stays linear, even from chance at 1% to 0.99."""
    return target.direction == "min" and spans_decades(pd.concat([values, pd.Series([target.value])]))


def spans_decades(values: pd.Series, decades: float = 2.0) -> bool:
    """Whether a metric's values are all positive and span more than `decades` powers of
    ten: then a linear axis would flatten everything after the first steps."""
    finite = values[np.isfinite(values)]
    return bool(len(finite) and (finite > 0).all() and finite.max() / finite.min() > 10 ** decades)
