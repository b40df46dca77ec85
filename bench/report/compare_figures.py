"""compare.html's curves: per workload, one figure of the target metric against step, with
a colour per optimizer label and a line style per run (the baseline solid), so a run that
learns slower or stops short shows where it parts from the baseline.

Only the cells every run shares are drawn (the rows of the comparison), as the mean over
each cell's seeds. Files are named by position (`curves-01-<workload>.png`), the workload
reduced to safe characters: a stored name never becomes a path.
"""
from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.report import analysis, curve_plots, figure_files
from bench.report.layout import log_y

STYLES = ("-", "--", ":", "-.")
MAX_RUNS_STYLED = len(STYLES)  # beyond, styles repeat with thinner lines


def draw(comparison, out: Path) -> list[tuple[str, Path]]:
    """One PNG per workload in `out`: [(title, path)]; [] when the runs share no curves."""
    curves = comparison.curves
    if not len(curves):
        return []
    curves = curves[np.isfinite(curves["value"])]
    drawn = []
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"), \
            warnings.catch_warnings(), figure_files.formats(("png",)):
        warnings.filterwarnings("ignore", message="Glyph .* missing", category=UserWarning)
        for number, workload in enumerate(analysis.workload_order(curves["workload"]), 1):
            frame = curves[curves["workload"] == workload]
            title = f"{workload}: {frame['metric'].iloc[0]} against step"
            name = f"curves-{number:02d}-{_safe(workload)}.png"
            drawn.append((title, _figure(frame, workload, comparison.names, out / name)))
    return drawn


def _figure(frame, workload: str, names: list[str], path: Path) -> Path:
    labels = sorted(frame["label"].unique())
    colours = dict(zip(labels, sns.color_palette("tab10" if len(labels) <= 10 else "husl",
                                                 len(labels))))
    handles = [Line2D([], [], color=colours[label], lw=2, label=_text(label)) for label in labels]
    handles += [Line2D([], [], color="0.25", ls=STYLES[i % len(STYLES)],
                       label=_text(run) + (" (baseline)" if i == 0 else ""))
                for i, run in enumerate(names)]
    legend = 0.17 * -(-len(handles) // 2) + 0.15  # inches below the axes: two columns
    fig = Figure(figsize=(7.0, 3.8 + legend))
    ax = fig.subplots()
    for label in labels:
        for index, run in enumerate(names):
            points = frame[(frame["label"] == label) & (frame["run"] == run)]
            if not len(points):
                continue
            mean = points.groupby("step")["value"].mean()
            ax.plot(mean.index, mean.to_numpy(), color=colours[label],
                    ls=STYLES[index % len(STYLES)], lw=1.8 if index < MAX_RUNS_STYLED else 1.0,
                    marker="o" if len(mean) <= 3 else None, ms=4)
    if curve_plots.spans_decades(frame["value"]):  # the report's rule: a loss falling for decades
        log_y(ax)
    ax.set_title(_text(workload))
    ax.set_xlabel("step")
    ax.set_ylabel(str(frame["metric"].iloc[0]).replace("_", " "))
    fig.legend(handles=handles, loc="lower center", ncol=2, frameon=False, fontsize=8)
    return figure_files.save(fig, path, rect=(0, legend / (3.8 + legend), 1, 1))


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", str(name)).strip("._")[:60] or "workload"


def _text(name) -> str:
    """A name as text: matplotlib would read `$...$` as mathtext."""
    return str(name).replace("$", r"\$")
