"""The 2-D trajectory figure: for every workload with a `Landscape` (workloads/functions2d.py,
or a plugin's), the function's contours and each optimizer's path over them.

One panel per such workload; one line per optimizer label, drawn from its cell's lowest seed:
the starting point (the model the engine initialises for that seed, evaluated like the curve
points), then the recorded positions `val_x`, `val_y` at every evaluation. A path stops where
it first leaves the drawn region or stops being finite (a diverged run), with a cross at the
edge. Labels are user-given text, so a `$` is escaped (matplotlib would read mathtext).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import ListedColormap, LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from bench.report import figure_files
from bench.report.analysis import workload_order

FILE = "trajectories.png"
STYLES = ("-", "--", "-.", ":")
PANEL = (5.0, 4.4)  # inches per panel
_GRID = 300
_DECADES = 5  # log-spaced levels span this many decades below the region's largest value
# low values white, high ones light grey: the paths' colours stay readable over it
_BACKGROUND = ListedColormap(colormaps["Greys"](np.linspace(0.0, 0.45, 256)))


def draw(runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path) -> Path | None:
    """Write `out_dir/trajectories.png` (and .svg / .pdf: figure_files.save decides) and
    return the path a page embeds, or None when no workload of
    `runs` has a landscape (or none has recorded positions)."""
    panels = _panels(runs, curves)
    if not panels:
        return None
    labels = sorted({label for _, _, paths in panels for label, *_ in paths})
    # a line style per label too: optimizers that take the same path (adam and adamw at a
    # small weight decay) still show as two lines, one dashed over the other
    style = {label: (f"C{i % 10}", STYLES[i % len(STYLES)])
             for i, label in enumerate(labels)}
    columns = min(len(panels), 2 if len(panels) == 4 else 3)
    rows = math.ceil(len(panels) / columns)
    handles = [Line2D([], [], color=style[label][0], ls=style[label][1], lw=1.8,
                      label=_text(label)) for label in labels]
    handles += [Line2D([], [], ls="", marker="o", mfc="white", mec="black", ms=7, label="start"),
                Line2D([], [], ls="", marker="*", color="gold", mec="black", ms=12,
                       label="minimum"),
                Line2D([], [], ls="", marker="X", color="0.3", ms=7,
                       label="left the region / diverged")]
    width = PANEL[0] * columns
    longest = max(len(h.get_label()) for h in handles)
    ncol = max(1, min(len(handles), int(width * 11 // (longest + 6))))  # ~11 characters/inch
    legend = 0.22 * math.ceil(len(handles) / ncol) + 0.2  # inches below the panels
    fig = Figure(figsize=(width, PANEL[1] * rows + legend))
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (name, landscape, paths) in zip(axes, panels):
        _draw_panel(ax, name, landscape, paths, style)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    fig.legend(handles=handles, loc="lower center", ncol=ncol, frameon=False, fontsize=9)
    # cramped by very long labels: still drawn (save silences that warning)
    return figure_files.save(fig, Path(out_dir) / FILE,
                             rect=(0, legend / (PANEL[1] * rows + legend), 1, 1))


def _text(name) -> str:
    return str(name).replace("$", r"\$")


def _panels(runs: pd.DataFrame, curves: pd.DataFrame) -> list:
    """[(workload, landscape, [(label, xs, ys, status), ...])] for every workload of `runs`
    that resolves, has a landscape and recorded positions."""
    if not len(runs) or not len(curves) or not {"val_x", "val_y"} <= set(curves.columns):
        return []
    import workloads

    panels = []
    for name in workload_order(runs["workload"]):
        try:
            workload = workloads.get(name)
        except Exception:  # noqa: BLE001  a plugin's workload, not loaded here
            continue
        if workload.landscape is None:
            continue
        mine = runs[runs["workload"] == name]
        starts: dict[int, tuple[float, float] | None] = {}  # every optimizer shares a seed's
        paths = []
        for cell_id, cell in mine.groupby("cell_id", sort=False):
            seed = int(cell["seed"].min())
            row = cell[cell["seed"] == seed].iloc[0]
            points = curves[(curves["cell_id"] == cell_id) & (curves["seed"] == seed)]
            points = points.sort_values("step")
            xs = points["val_x"].to_numpy(dtype=float)
            ys = points["val_y"].to_numpy(dtype=float)
            if seed not in starts:
                starts[seed] = _start(workload, seed)
            start = starts[seed]
            if start is not None:
                xs, ys = np.r_[start[0], xs], np.r_[start[1], ys]
            if len(xs):
                paths.append((str(row["label"]), xs, ys, str(row.get("status", ""))))
        if paths:
            panels.append((name, workload.landscape, sorted(paths, key=lambda p: p[0])))
    return panels


def _start(workload, seed: int) -> tuple[float, float] | None:
    """Where `seed` starts: the engine's initial model, its `x` and `y` metrics on the
    validation split (as the curve's points are measured); None if that fails."""
    try:
        from flax import nnx

        from bench.train import programs

        data = workload.load_data()
        import jax

        graphdef, params = programs.init_params(workload, data, [seed])
        model = nnx.merge(graphdef, jax.tree.map(lambda leaf: leaf[0], params))  # unstacked
        sums = workload.metric_sums(model(data.x_val), data.y_val)
        return float(sums["x"]) / len(data.y_val), float(sums["y"]) / len(data.y_val)
    except Exception:  # noqa: BLE001  the figure still draws from the first evaluation
        return None


def _inside(xs, ys, bounds) -> np.ndarray:
    (x0, x1), (y0, y1) = bounds
    return np.isfinite(xs) & np.isfinite(ys) & (xs >= x0) & (xs <= x1) & (ys >= y0) & (ys <= y1)


def _cut(xs, ys, bounds):
    """The path up to where it first leaves the region or stops being finite; a finite
    point outside is replaced by where the segment to it crosses the edge. Returns
    (xs, ys, left: whether it was cut)."""
    inside = _inside(xs, ys, bounds)
    if inside.all():
        return xs, ys, False
    first = int(np.argmin(inside))
    if first == 0:
        return xs[:0], ys[:0], True
    keep_x, keep_y = list(xs[:first]), list(ys[:first])
    out = np.array([xs[first], ys[first]])
    if np.isfinite(out).all():
        edge = _edge(np.array([keep_x[-1], keep_y[-1]]), out, bounds)
        keep_x.append(edge[0])
        keep_y.append(edge[1])
    return np.array(keep_x), np.array(keep_y), True


def _edge(a: np.ndarray, b: np.ndarray, bounds) -> np.ndarray:
    """Where the segment from `a` (inside) to `b` (outside) crosses the region's edge."""
    t = 1.0
    for axis, (low, high) in enumerate(bounds):
        step = b[axis] - a[axis]
        if b[axis] > high and step:
            t = min(t, (high - a[axis]) / step)
        if b[axis] < low and step:
            t = min(t, (low - a[axis]) / step)
    return a + max(t, 0.0) * (b - a)


def _draw_panel(ax, name: str, landscape, paths, style) -> None:
    (x0, x1), (y0, y1) = landscape.bounds
    gx, gy = np.meshgrid(np.linspace(x0, x1, _GRID), np.linspace(y0, y1, _GRID))
    with np.errstate(all="ignore"):
        z = np.asarray(landscape.function(gx, gy), dtype=float)
    finite = z[np.isfinite(z)]
    if finite.size:
        if landscape.log_levels and (finite > 0).any():
            top = finite.max()
            low = max(finite[finite > 0].min(), top * 10.0 ** -_DECADES)
            levels = np.logspace(np.log10(low), np.log10(top), 24)
            shown = np.clip(z, low, top)
            ax.contourf(gx, gy, shown, levels=levels, norm=LogNorm(low, top), cmap=_BACKGROUND)
            ax.contour(gx, gy, shown, levels=levels[::2], norm=LogNorm(low, top), colors="0.55",
                       linewidths=0.5)
        else:
            ax.contourf(gx, gy, z, levels=24, cmap=_BACKGROUND)
            ax.contour(gx, gy, z, levels=12, colors="0.55", linewidths=0.5)
    unseen = []
    starts = set()
    for label, xs, ys, status in paths:
        colour, line = style[label]
        if np.isfinite(xs[0]) and np.isfinite(ys[0]):
            starts.add((round(float(xs[0]), 9), round(float(ys[0]), 9)))
        xs, ys, left = _cut(xs, ys, landscape.bounds)
        if len(xs) <= 1:
            unseen.append(f"{_text(label)} ({'diverged' if status == 'diverged' else 'left'})")
            if not left or not len(xs):
                continue
        ax.plot(xs, ys, color=colour, ls=line, lw=1.5, marker="o", ms=1.8, zorder=3)
        if left:
            ax.plot(xs[-1], ys[-1], ls="", marker="X", color=colour, mec="black", mew=0.5,
                    ms=8, zorder=4, clip_on=False)
    for x, y in starts:
        ax.plot(x, y, ls="", marker="o", mfc="white", mec="black", ms=7, zorder=5, clip_on=False)
    for x, y in landscape.minima:
        ax.plot(x, y, ls="", marker="*", color="gold", mec="black", ms=14, zorder=5,
                clip_on=False)
    if unseen:
        ax.text(0.02, 0.02, "no evaluation inside the region:\n" + "\n".join(unseen), fontsize=7,
                transform=ax.transAxes, va="bottom", ha="left", zorder=6,
                bbox=dict(boxstyle="round", fc="white", ec="0.6", alpha=0.85))
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(_text(name), fontsize=11)
