"""The report's figures (seaborn on matplotlib figures), from the results tables only.

`FIGURES` is the registered list: each entry is a name (what `optbench plot --kind` takes),
a title and a function that takes the report and the plot folder, writes one figure (in
the formats figure_files.save is asked for) and returns its path, or None when the run
holds nothing to draw (no curves, one learning rate, ...). Figures are made with
`matplotlib.figure.Figure`, never pyplot, so no backend is chosen and no global state is
touched; the seaborn style applies inside `draw_all` only.
"""
from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import offset_copy

from bench.report import (algoperf, analysis, figure_files, sweep_plots, trajectories,
                          widths)
from bench.report.curve_plots import all_diverged, curves
from bench.report.layout import grid, label_inches, line_styles

FIGURES: list[tuple[str, str, Callable]] = []  # (name, title, draw)


def figure(title: str, name: str | None = None):
    """Register a figure of the report, in the order the report shows them, under `name`
    (`optbench plot --kind NAME`; without one, the title's first words). Figures that share
    a name are variants of one kind (curves by step and by time)."""
    def register(draw: Callable) -> Callable:
        words = re.findall(r"[a-z0-9]+", title.lower())[:3]
        FIGURES.append((name or "-".join(words) or f"figure-{len(FIGURES) + 1}", title, draw))
        return draw
    return register


def kinds() -> list[str]:
    """The figures' names, each once, in the report's order."""
    return list(dict.fromkeys(name for name, _, _ in FIGURES))


def draw_all(report, out: Path, formats: tuple[str, ...] = ("png",),
             figures=None) -> list[tuple[str, Path]]:
    """Every registered figure (or those of `figures`, entries like FIGURES') that has
    something to draw, in each of `formats`: (title, the path a page embeds)."""
    drawn = []
    report = _as_text(report)
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"), \
            warnings.catch_warnings(), figure_files.formats(formats):
        # a name in a script the font lacks is drawn as boxes; one warning per glyph is noise
        warnings.filterwarnings("ignore", message="Glyph .* missing", category=UserWarning)
        for _, title, draw in FIGURES if figures is None else figures:
            path = draw(report, out)
            if path is not None:
                drawn.append((title, path))
    return drawn


NAMES = ("label", "workload", "optimizer", "schedule")  # user-given text the figures show


def _as_text(report):
    """The report with every name's `$` escaped: matplotlib reads `$...$` as mathtext (an
    odd one raises), but a name is text. Mathtext stays on for the axes' own log ticks."""
    def escaped(frame: pd.DataFrame) -> pd.DataFrame:
        if not isinstance(frame, pd.DataFrame) or not len(frame):
            return frame
        return frame.assign(**{c: frame[c].astype(str).str.replace("$", r"\$", regex=False)
                               for c in NAMES if c in frame})
    return dataclasses.replace(report, runs=escaped(report.runs), cells=escaped(report.cells),
                               all_cells=escaped(report.all_cells),
                               tuning_curves=escaped(report.tuning_curves))


def _palette(labels) -> dict:
    labels = sorted(set(labels))
    return dict(zip(labels, sns.color_palette("tab10" if len(labels) <= 10 else "husl", len(labels))))


def _panels(count: int, width: float = 5.2, height: float = 3.6, rows: int = 1):
    fig = Figure(figsize=(width * count, height * rows))
    return fig, fig.subplots(rows, count, squeeze=False)


def _save(fig, path: Path, **layout) -> Path:
    return figure_files.save(fig, path, **layout)  # in every format asked for


LEGEND_DROP_IN = 0.62  # inches below a panel: its tick labels and x label, at the report's fonts


def final_metric(runs: pd.DataFrame, out: Path) -> Path | None:
    """The final target metric per optimizer: a box over the finished seeds, every seed a
    point; diverged seeds are red crosses at their last value."""
    if not len(runs):
        return None
    workloads = analysis.workload_order(runs["workload"])
    height = 0.45 * runs.groupby("workload")["label"].nunique().max() + 2.0
    fig, groups = grid(len(workloads), 3.6 + label_inches(runs["label"]), height)
    for (ax,), workload in zip(groups, workloads):
        frame = runs[runs["workload"] == workload]
        metric = "final_" + frame["target_metric"].iloc[0]
        if metric not in frame:  # no seed of any run evaluated (each errored): nothing to draw
            frame = frame.assign(**{metric: np.nan})
        order = (frame[frame["status"] == "done"].groupby("label")[metric].mean()
                 .sort_values(ascending=frame["target_direction"].iloc[0] == "min").index.tolist())
        order += sorted(set(frame["label"]) - set(order))
        done = frame[frame["status"] == "done"]
        if len(done):
            sns.boxplot(data=done, x=metric, y="label", order=order, ax=ax, color="0.9",
                        fliersize=0, width=0.6)
            # every seed a point, jittered from a generator of its own: seaborn's
            # stripplot draws from numpy's global one, so the same run gave other PNGs
            jitter = np.random.default_rng(0).uniform(-0.15, 0.15, len(done))
            ax.scatter(done[metric], [order.index(label) for label in done["label"]] + jitter,
                       s=25, color="tab:blue", zorder=4)
        diverged = frame[frame["status"] == "diverged"]
        shown = diverged[np.isfinite(diverged[metric].astype(float))]
        if len(diverged):  # a loss that became NaN has no value to draw: counted instead
            ax.scatter(shown[metric], [order.index(label) for label in shown["label"]],
                       marker="x", color="tab:red", s=50, zorder=5,
                       label="diverged seed" + (f" ({len(diverged) - len(shown)} with no finite"
                                                " value)" if len(shown) < len(diverged) else ""))
        for label in all_diverged(frame):  # a row with nothing to draw still gets its name
            if label not in set(shown["label"]):
                ax.text(0.02, order.index(label), "every seed diverged (no finite value)",
                        transform=ax.get_yaxis_transform(), va="center", fontsize=8,
                        color="tab:red")
        ax.set_yticks(range(len(order)), order)
        ax.set_ylim(len(order) - 0.5, -0.5)
        target = analysis.target_of(frame.iloc[0])
        if metric == "final_" + target.metric:
            ax.axvline(target.value, color="0.35", ls="--", lw=1, label=f"target {target.value:g}")
        # under the panel (inside, it would cover a row's points or its note), a fixed
        # distance below its axis: a fraction of the panel's height put it over the x
        # label on panels of one or two rows
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0), ncol=2, fontsize=8,
                  frameon=False, bbox_transform=offset_copy(ax.transAxes, fig=fig,
                                                            y=-LEGEND_DROP_IN, units="inches"))
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))  # tick labels never run together
        ax.set_title(workload)
        ax.set_xlabel(metric.replace("_", " "))
        ax.set_ylabel("")
    return _save(fig, out / "final_metric.png")


def bars(cells: pd.DataFrame, column: str, xlabel: str, out: Path, name: str,
         missing: str = "not reached", spread: str | None = None) -> Path | None:
    """One horizontal bar per optimizer per workload; `missing` where the value is not finite.
    `spread`: a column whose value is drawn as a whisker of that width centred on the bar's
    end (the step time's interquartile range over chunks)."""
    if not len(cells) or column not in cells or not np.isfinite(cells[column]).any():
        return None
    workloads = analysis.workload_order(cells["workload"])
    height = 0.4 * cells.groupby("workload")["label"].nunique().max() + 1.6
    fig, groups = grid(len(workloads), 3.8 + label_inches(cells["label"]), height)
    for (ax,), workload in zip(groups, workloads):
        frame = cells[cells["workload"] == workload].sort_values(column)
        values = frame[column].where(np.isfinite(frame[column]), 0.0)
        half = (frame[spread].where(np.isfinite(frame[spread]), 0.0) / 2 if spread in frame
                else None)
        ax.barh(frame["label"], values, color="tab:blue", alpha=0.8,
                xerr=half, error_kw=dict(ecolor="0.15", capsize=3, lw=1))
        ends = values + (half if half is not None else 0)
        for i, (value, shown) in enumerate(zip(frame[column], ends)):
            ax.text(shown, i, f" {_number(value)}" if np.isfinite(value) else f" {missing}",
                    va="center", fontsize=8, color="0.2" if np.isfinite(value) else "tab:red")
        ax.invert_yaxis()
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.margins(x=0.18)  # room for the value written after the longest bar
        ax.set_title(workload)
        ax.set_xlabel(xlabel)
    return _save(fig, out / name)


def _number(value: float) -> str:
    """'2,310' rather than '2.31e+03'; three significant figures below a thousand."""
    return f"{value:,.0f}" if 1e3 <= abs(value) < 1e7 else f"{value:.3g}"


def performance_profile(times: pd.DataFrame, out: Path) -> Path | None:
    """AlgoPerf's performance profile (bench/report/algoperf.py), as the score integrates it."""
    if times.empty or not np.isfinite(times.to_numpy()).any():
        return None
    profile = algoperf.algoperf_profile(times)
    taus = profile.columns.to_numpy(dtype=float)
    style = line_styles(profile.index)
    fig = Figure(figsize=(6.4 + label_inches(profile.index), 4.2))
    ax = fig.subplots()
    for label, row in profile.iterrows():
        ax.plot(taus, row.to_numpy(), label=label, lw=1.6, **style[label])
    ax.set_xlim(taus.min(), taus.max())
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("tau: AlgoPerf seconds / fastest on the workload")
    ax.set_ylabel("share of workloads within tau")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _save(fig, out / "performance_profile.png")


def rank_grid(cells: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ranks, text): label x workload, rows by mean rank (best first). The colour is the
    rank with ties within noise shared; the text the rank and the absolute final target
    metric, so a gap of 0.001 never looks like one of 0.3."""
    if not len(cells):
        return pd.DataFrame(), pd.DataFrame()
    ranks = cells.pivot_table(index="label", columns="workload", values="tied_rank", aggfunc="first")
    ranks = ranks.loc[analysis.mean_rank(cells).index, analysis.workload_order(ranks.columns)]
    text = pd.DataFrame("", index=ranks.index, columns=ranks.columns)
    for r in cells.to_dict("records"):  # no finished seed: coloured last, written as such
        text.at[r["label"], r["workload"]] = (
            ("=" if r["tied"] else "") + f"{r['tied_rank']:g}\n{r['score']:.3g}"
            if np.isfinite(r["score"]) else "no\nscore")
    return ranks, text


def heatmap(cells: pd.DataFrame, out: Path) -> Path | None:
    ranks, text = rank_grid(cells)
    if ranks.empty:
        return None
    fig = Figure(figsize=(1.3 * ranks.shape[1] + label_inches(ranks.index) + 2.2,
                          0.5 * ranks.shape[0] + 1.8))
    ax = fig.subplots()
    sns.heatmap(ranks, annot=text.to_numpy(), fmt="", cmap="viridis_r", vmin=1,
                vmax=max(2.0, float(np.nanmax(ranks.to_numpy()))), ax=ax, annot_kws={"fontsize": 8},
                cbar_kws={"label": "rank in the workload (1 best)"})
    ax.set_xticklabels(ax.get_xticklabels(), rotation=30, ha="right")
    ax.set_yticklabels(ax.get_yticklabels(), rotation=0)  # seaborn turns crowded rows on end
    ax.collections[0].colorbar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # ranks
    ax.set_xlabel("")
    ax.set_ylabel("")
    return _save(fig, out / "heatmap.png")


# ---- the report's figures, in order ---------------------------------------------------------

def _ranked(runs: pd.DataFrame) -> pd.DataFrame:
    """The runs the ranked figures show: tuning trials are the tuning section's."""
    return runs[runs["role"] != "trial"] if len(runs) else runs


def _step_us(cells: pd.DataFrame) -> pd.DataFrame:
    if not len(cells):
        return cells
    iqr = cells["step_time_iqr_s"] if "step_time_iqr_s" in cells else math.nan
    return cells.assign(step_us=cells["step_time_s"] * 1e6, iqr_us=iqr * 1e6)


def _state_kib(cells: pd.DataFrame) -> pd.DataFrame:
    return cells.assign(state_kib=cells["state_bytes"] / 1024) if len(cells) else cells


figure("Loss and target metric against step (line: mean over seeds; band: their range)",
       name="curves")(
    lambda r, out: curves(_ranked(r.runs), r.results.curves, out, "step"))
figure("Loss and target metric against training time", name="curves")(
    lambda r, out: curves(_ranked(r.runs), r.results.curves, out, "train_seconds"))
figure("Paths on the 2-D test functions (each cell's lowest seed; o start, * minimum)",
       name="trajectories")(
    lambda r, out: trajectories.draw(r.runs[r.runs["role"] != "trial"], r.results.curves, out))
figure("Final target metric per seed (box over finished seeds; red crosses: diverged)",
       name="final-metric")(
    lambda r, out: final_metric(r.runs[r.runs["role"] != "trial"], out))
figure("Training seconds to target (interpolated; median over seeds)", name="time-to-target")(
    lambda r, out: bars(r.cells, "target_seconds", "training seconds to target", out,
                        "time_to_target.png"))
figure("Step time (median over chunks; whiskers: the interquartile range over chunks)",
       name="step-time")(
    lambda r, out: bars(_step_us(r.cells), "step_us", "µs per step (all seeds)", out,
                        "step_time.png", "—", spread="iqr_us"))
figure("Optimizer state memory", name="state-memory")(
    lambda r, out: bars(_state_kib(r.cells), "state_kib", "KiB of optimizer state", out,
                        "state_memory.png", "—"))
figure("AlgoPerf performance profiles (AlgoPerf seconds)", name="performance-profile")(
    lambda r, out: performance_profile(
        analysis.time_matrix(r.cells) if len(r.cells) else pd.DataFrame(), out))
figure("Rank per workload (colour and first line; '=' tied within noise) and the final target"
       " metric (second line); rows by mean rank", name="heatmap")(
    lambda r, out: heatmap(r.cells, out))
figure("Learning-rate sensitivity (sweeps where only the learning rate varies; tuning trials"
       " included)", name="lr-sensitivity")(
    lambda r, out: sweep_plots.lr_sensitivity(r.all_cells, out))
figure("Learning rate and the other hyperparameters (sweeps where more than the learning rate"
       " varies; colour: the first other one)", name="lr-and-others")(
    lambda r, out: sweep_plots.lr_and_others(r.all_cells, out))
figure("Best learning rate against width (per optimizer; of the learning rates tried)",
       name="best-lr-by-width")(
    lambda r, out: widths.draw(r.all_cells, out, _panels, _palette, _save))
figure("Tuning curves: best validation metric after k trials (median and 10-90% over"
       " 200 orders of the trials)", name="tuning-curves")(
    lambda r, out: sweep_plots.tuning_curves(r.tuning_curves, out))
