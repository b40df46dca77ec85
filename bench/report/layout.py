"""How the report's figures are laid out: panels wrapped into rows, widths from the labels
they must show, and line styles that keep many lines apart. Pure helpers on matplotlib
figures (never pyplot)."""
from __future__ import annotations

import math

from matplotlib.figure import Figure
from matplotlib.ticker import LogFormatter

LINE_STYLES = ("-", "--", ":", "-.")


def line_styles(labels) -> dict[str, dict]:
    """A colour and a line style per label: ten colours that stay apart (tab10), then the
    same ten dashed, dotted, dash-dotted, so forty lines can still be told apart; a husl
    wheel of forty hues could not."""
    labels = sorted(set(labels))
    return {label: dict(color=f"C{i % 10}", ls=LINE_STYLES[(i // 10) % len(LINE_STYLES)])
            for i, label in enumerate(labels)}


MAX_COLUMNS = 3  # panels side by side: more, and a 1300-pixel page shrinks each to a sliver
CHAR_INCHES = 0.085  # one character of a tick label at the notebook context's 11 pt


def label_inches(labels) -> float:
    """The width the longest of `labels` takes as a tick label, in inches."""
    return CHAR_INCHES * max((len(str(label)) for label in labels), default=1) + 0.3


def grid(count: int, width: float, height: float, rows_each: int = 1):
    """A figure of `count` panel groups (each `rows_each` panels tall) wrapped at
    MAX_COLUMNS: (fig, [[axes of group 0's rows], ...]); unused panels are hidden."""
    columns = max(1, min(count, MAX_COLUMNS))
    bands = math.ceil(count / columns)
    fig = Figure(figsize=(width * columns, height * rows_each * bands))
    axes = fig.subplots(rows_each * bands, columns, squeeze=False)
    groups = [[axes[(i // columns) * rows_each + row][i % columns] for row in range(rows_each)]
              for i in range(count)]
    for i in range(count, bands * columns):
        for row in range(rows_each):
            axes[(bands - 1) * rows_each + row][i % columns].set_visible(False)
    return fig, groups


def log_y(ax) -> None:
    """A log y axis whose ticks read as plain numbers (0.6, 20, 1e-05), not 6 x 10^-1: a
    loss spanning less than a decade shows only minor ticks. Matplotlib's own rule still
    decides which minor ticks get a label (few decades: some; many: none)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.yaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(1, 0.4)))
