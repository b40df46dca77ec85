"""The terminal summary of a run: one row per cell, seeds aggregated (pure pandas + rich)."""
from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.table import Table


def wide_console(stderr: bool = False) -> Console:
    """A console that stays wide when it writes to a pipe or a log file, so names don't wrap."""
    console = Console(stderr=stderr)
    return console if console.is_terminal else Console(stderr=stderr, width=160)


def cell_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per cell: status counts, test accuracy mean and std over seeds, median time to target."""
    if runs.empty:
        return pd.DataFrame()
    grouped = runs.groupby(["workload", "label"], sort=False)
    summary = grouped.agg(
        seeds=("seed", "size"),
        done=("status", lambda s: int((s == "done").sum())),
        diverged=("status", lambda s: int((s == "diverged").sum())),
        error=("status", lambda s: int((s == "error").sum())),
        test_accuracy=("final_test_accuracy", "mean"),
        test_accuracy_std=("final_test_accuracy", "std"),
        target_step=("target_step", "median"),
        reached=("target_step", lambda s: int(s.notna().sum())),
        steps_per_s=("steps_per_s", "first"),
        compile_s=("compile_s", "first"),
    ).reset_index()
    return summary.sort_values(["workload", "test_accuracy"], ascending=[True, False])


def summary_table(runs: pd.DataFrame) -> Table:
    table = Table("workload", "optimizer", "seeds done", "test accuracy", "reached target",
                  "median steps to target", "steps/s", "compile s", title="optbench summary")
    summary = cell_summary(runs)
    for row in summary.itertuples():
        status = f"{row.done}/{row.seeds}"
        if row.diverged:
            status += f", {row.diverged} diverged"
        if row.error:
            status += f", {row.error} error"
        sd = "" if pd.isna(row.test_accuracy_std) else f" ± {row.test_accuracy_std:.3f}"
        acc = "-" if pd.isna(row.test_accuracy) else f"{row.test_accuracy:.3f}{sd}"
        to_target = "not reached" if pd.isna(row.target_step) else f"{row.target_step:,.0f}"
        table.add_row(row.workload, row.label, status, acc, f"{row.reached}/{row.seeds}",
                      to_target, f"{row.steps_per_s:,.0f}", f"{row.compile_s:.1f}")
    if summary.empty:
        table.caption = "no finished cells"
    return table
