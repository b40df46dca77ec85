"""The terminal summary of a run: the report's own per-workload tables (same rules, same
labels, same ranking), rendered for the terminal."""
from __future__ import annotations

import pandas as pd
from rich.console import Console, Group
from rich.text import Text

from bench.report import aliases, analysis, render
from bench.report.tables import workload_table


def wide_console(stderr: bool = False) -> Console:
    """A console that stays wide when it writes to a pipe or a log file, so names don't wrap.
    Markup and highlighting are off: every string printed is data (a label `my:[/red]`
    shows as it is); colour is asked for explicitly, with `Text` styles."""
    console = Console(stderr=stderr, markup=False, highlight=False)
    # in a log, lines stay whole (a long path is never split); tables still fit 160 columns
    return console if console.is_terminal else Console(stderr=stderr, width=160, markup=False,
                                                       highlight=False, soft_wrap=True)


def summary_table(runs: pd.DataFrame) -> Group:
    """Per workload, its cells ranked as the report ranks them (tuning trials left out),
    under the report's labels: a long one as its short alias, with the key below (the full
    label was cut off mid-number in the table's column)."""
    runs = aliases.assign(runs)  # the report's labels
    cells = analysis.cell_table(runs[runs["role"] != "trial"]) if len(runs) else pd.DataFrame()
    if not len(cells):
        return Group(Text("optbench summary: no finished cells"))
    key = aliases.key_table(cells)
    return Group(Text("optbench summary (the report has the rest: optbench report RUN)"),
                 *(render.terminal(workload_table(cells, w, brief=True))
                   for w in analysis.workload_order(cells["workload"])),
                 *([render.terminal(key)] if key is not None else []))
