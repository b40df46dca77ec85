"""The report's figures of tuning sweeps (trials): learning-rate sensitivity, the learning
rate with the other hyperparameters, tuning curves. Registered in plots.py, drawn from the
cell table (analysis.cell_table) and sweeps.tuning_curves."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import analysis, figure_files, sweeps
from bench.report.layout import grid, line_styles


def per_optimizer(data: pd.DataFrame, draw, out: Path, name: str) -> Path:
    """One panel per workload; draw(ax, group, colour) once per optimizer, then labels."""
    workloads = analysis.workload_order(data["workload"])
    style = line_styles(data["optimizer"])
    fig, groups = grid(len(workloads), 5.2, 3.6)
    for (ax,), workload in zip(groups, workloads):
        frame = data[data["workload"] == workload]
        for optimizer, group in frame.groupby("optimizer"):
            draw(ax, group, dict(label=optimizer, **style[optimizer]))
        ax.set_title(workload)
        ax.legend(fontsize=8)
    return figure_files.save(fig, out / name)


def target_line(ax, value: float) -> None:
    """The dashed target, once per panel."""
    if not any(line.get_label().startswith("target") for line in ax.get_lines()):
        ax.axhline(value, color="0.35", ls="--", lw=1, label=f"target {value:g}")


def lr_sensitivity(cells: pd.DataFrame, out: Path) -> Path | None:
    """Final target metric against learning rate, when an optimizer ran at several."""
    swept = sweeps.one_dimensional_sweeps(cells)[0]
    if not len(swept):
        return None

    def draw(ax, group, style):
        group = group.sort_values("learning_rate")
        column = "final_" + group["target_metric"].iloc[0]
        low = group[column + "_low"].fillna(group["score"])
        high = group[column + "_high"].fillna(group["score"])
        ax.errorbar(group["learning_rate"], group["score"],
                    yerr=[group["score"] - low, high - group["score"]], marker="o", capsize=3,
                    **style)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(column.replace("_", " "))
        target_line(ax, float(group["target_value"].iloc[0]))

    return per_optimizer(swept, draw, out, "lr_sensitivity.png")


def lr_and_others(cells: pd.DataFrame, out: Path) -> Path | None:
    """For sweeps where more than the learning rate varies: every trial's final target
    metric against its learning rate, coloured by the first other hyperparameter that
    varies (a line through them would mix the effects). One panel per sweep."""
    mixed = sweeps.one_dimensional_sweeps(cells)[1]
    if not mixed:
        return None
    fig, groups = grid(len(mixed), 5.6, 3.8)
    for (ax,), (workload, optimizer, schedule, others) in zip(groups, mixed):
        group = cells[(cells["workload"] == workload) & (cells["optimizer"] == optimizer)
                      & (cells["schedule"] == schedule)]
        group = group[np.isfinite(group["learning_rate"])]
        colour_by = others[0]
        shade = pd.Series([analysis.hparam(h, colour_by) for h in group["hparams"]],
                          index=group.index)
        finite = np.isfinite(group["score"].astype(float))
        points = ax.scatter(group.loc[finite, "learning_rate"], group.loc[finite, "score"],
                            c=shade[finite], cmap="viridis", s=36, edgecolor="0.2", lw=0.5)
        lost = group.loc[~finite, "learning_rate"]
        if len(lost):  # diverged trials: no score to place, still a learning rate tried
            ax.plot(lost, np.full(len(lost), np.nanmin(group["score"]) if finite.any() else 0),
                    "x", color="tab:red", label="no finite value")
            ax.legend(fontsize=8)
        if shade[finite].notna().any():
            fig.colorbar(points, ax=ax, label=colour_by)
        ax.set_xscale("log")
        ax.set_xlabel("learning rate")
        ax.set_ylabel(("final " + group["target_metric"].iloc[0]).replace("_", " "))
        target_line(ax, float(group["target_value"].iloc[0]))
        rest = f" (also varied: {', '.join(others[1:])})" if len(others) > 1 else ""
        ax.set_title(f"{workload} x {optimizer}" + ("" if schedule == "constant"
                                                    else f" @ {schedule}") + rest, fontsize=10)
    return figure_files.save(fig, out / "lr_and_others.png")


def tuning_curves(curves: pd.DataFrame, out: Path) -> Path | None:
    if curves.empty:
        return None

    def draw(ax, group, style):
        ax.plot(group["trials"], group["median"], marker="o", ms=3, **style)
        ax.fill_between(group["trials"], group["low"], group["high"], alpha=0.15,
                        color=style["color"], lw=0)
        ax.set_xlabel("trials")
        ax.set_ylabel("best " + group["metric"].iloc[0].replace("_", " ") + " so far")
        if np.isfinite(group.get("target_value", pd.Series([math.nan]))).all():
            target_line(ax, float(group["target_value"].iloc[0]))

    return per_optimizer(curves, draw, out, "tuning_curves.png")
