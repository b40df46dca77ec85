"""`optbench report RUN`: report.html (one self-contained file), report.md, plots/*.png (and
.svg, .pdf with --format) and a terminal summary, from a results folder's tables alone (no
JAX, no training).

A run with one seed, one optimizer, diverged or errored seeds, or no finished cell still
reports: what is missing is said in the report, not raised.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report import (aliases, algoperf, analysis, figure_files, plots, render, setups,
                          sweeps, widths)
from bench.report.tables import fmt_step_time, summary_table, tuning_table, workload_table
from bench.runner import sessions
from bench.runner.files import make_folder, write_text
from bench.runner.results import Results

HOW_TO_READ = [
    "Means and 95% confidence intervals (Student's t) are over the seeds that finished; "
    "diverged and errored seeds are counted, not averaged in. One seed gives no interval.",
    "Cells are ranked within each workload by the final value of the workload's target "
    "metric on the validation split; the direction (higher or lower is better) is the "
    "workload's own. The same metric on the test split is shown, never used to rank or to"
    " tune. Tuning trials are never ranked: the tables and the ranked figures show the "
    "untuned and the tuned cells, the tuning section the trials.",
    "Ties within noise: taken best first, a cell whose 95% interval overlaps the interval of "
    "the best cell of the current group shares that cell's rank, written '=2'. Their "
    "difference is within noise; with one seed there is no interval, and only values within "
    "0.01% of each other tie. The mean rank across workloads uses these shared ranks.",
    "Step time: the median over chunks, with the interquartile range over chunks as its "
    "spread (in the tables 'IQR' beside the median, in the figure whiskers of its width "
    "around the median). 'Step time vs SGD' "
    "divides by the untuned SGD cell's (none where every SGD seed diverged: its few steps "
    "time the launch, not a step); its interval divides each end by the other's "
    "opposite end, and 'within noise' means that interval holds 1. The update share "
    "(update alone / whole step) carries the step time's spread the same way.",
    "Long labels (a tuning trial's hyperparameters) are shown as short aliases, e.g. "
    "'adam·t4' (trial 4), 'adam·tuned'; the key after the figures maps each alias to its full "
    "label and hyperparameters.",
    "Time to target (the 'interpolated' columns): where a seed's target-metric curve first "
    "reaches the target, linearly interpolated between the two evaluations around the "
    "crossing (the first evaluation's own step and time when it is already there); seconds "
    "are training seconds, compile and evaluation excluded. Per cell, the median over seeds "
    "with unreached seeds counted as infinitely slow: 'not reached' means half or more of "
    "the seeds never got there.",
    "AlgoPerf seconds follow MLCommons AlgoPerf's convention instead: the first evaluation "
    "that reaches the target, no interpolation, plus the program's compile time.",
    "AlgoPerf score: computed as MLCommons AlgoPerf's scoring code computes it "
    "(scoring/performance_profile.py): per workload, times more than "
    f"{algoperf.TIME_CAP_FACTOR:g}x the fastest count as not reached; the performance "
    "profile rho(tau) is the share of workloads whose time ratio to the fastest is <= tau on "
    f"{algoperf.NUM_POINTS} points from {algoperf.MIN_TAU:g} to {algoperf.MAX_TAU:g}; the "
    "score is its trapezoid-rule area divided by the grid's width. 1 is fastest everywhere. "
    "Times are each cell's median AlgoPerf seconds.",
]


@dataclass
class Report:
    results: Results
    runs: pd.DataFrame  # results.runs with labels distinct per cell (analysis.label_cells)
    cells: pd.DataFrame  # untuned and tuned cells (tuning trials are in `tuning`)
    summary: pd.DataFrame  # one row per optimizer label across workloads
    notes: list[str] = field(default_factory=list)  # what is missing, said plainly
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)  # oneshot vs tuned
    tuning_curves: pd.DataFrame = field(default_factory=pd.DataFrame)
    all_cells: pd.DataFrame = field(default_factory=pd.DataFrame)  # trials included

    @property
    def name(self) -> str:
        return self.results.manifest.get("config", {}).get("matrix", {}).get("name") \
            or self.results.root.name


def build(results: Results) -> Report:
    runs = aliases.assign(results.runs)
    all_cells = analysis.cell_table(runs) if len(runs) else pd.DataFrame()
    # ranked on their own: a tuning trial never takes a rank (nor a tie) from a cell shown
    ranked = runs[runs["role"] != "trial"] if len(runs) else runs
    cells = analysis.cell_table(ranked) if len(ranked) else pd.DataFrame()
    notes = list(results.notes)
    if not len(runs):
        notes.append("This run has no finished cell yet: nothing to compare.")
    else:
        if results.manifest.get("state") == "interrupted":  # a Ctrl-C: the rest never ran
            notes.append(_interrupted(results.manifest, runs))
        failed = int(runs["status"].isin(["error", "timeout"]).sum())
        if failed:
            notes.append(f"{failed} seed(s) ended in an error or a timeout; the tracebacks are"
                         " in runs.parquet (column error).")
        if runs.groupby("cell_id")["seed"].nunique().max() < 2:
            notes.append("Every cell has a single seed: no confidence intervals.")
        if runs["label"].nunique() < 2:
            notes.append("Only one optimizer: ranks and profiles compare it with nothing.")
        if not (runs["status"] == "done").any():
            notes.append("No seed finished as done: metrics are missing.")
        roles = runs.groupby(["workload", "optimizer"])["role"].agg(set)
        for (workload, optimizer), found in roles.items():
            if "trial" in found and "tuned" not in found:
                notes.append(f"{workload} x {optimizer}: no tuning trial ended done (all"
                             " diverged or failed), so it has no tuned cell.")
        notes += sweeps.lr_sensitivity_skipped(all_cells)
        cached = runs.drop_duplicates("cell_id").get("compile_cache_hits", pd.Series(dtype=float))
        if (cached.fillna(0) > 0).any():
            notes.append(f"{int((cached > 0).sum())} cell(s) loaded executables from the"
                         " persistent compilation cache (runs.parquet: compile_cached_s): their"
                         " AlgoPerf seconds count that load, not a compile. For compile times"
                         " comparable across cells, run with --no-compile-cache.")
        notes += _update_share_note(runs)
        resumed = setups.sessions_note(results.manifest)
        notes += [resumed] if resumed else []
        recorded = sessions.of_cells(results.manifest).get("provenance")
        executor = recorded.get("executor") if isinstance(recorded, dict) else None
        if isinstance(executor, dict) and executor.get("compile_ahead") is True:
            notes.append("This run compiled each program while the one before it trained"
                         " (--compile-ahead): on a CPU the two share cores, so step times"
                         " and speed comparisons are stretched by the overlap.")
        if (runs["label"] != runs["full_label"]).any():
            notes.append("Long labels are shown as short names (adam·t4: trial 4, adam·tuned);"
                         " the key after the figures gives each one's hyperparameters.")
    summary = _summary(cells) if len(cells) else pd.DataFrame()
    tuning = sweeps.oneshot_vs_tuned(cells) if len(cells) else pd.DataFrame()
    notes += sweeps.tuned_worse_notes(tuning)
    return Report(results, runs, cells, summary, notes, tuning, sweeps.tuning_curves(runs),
                  all_cells)


def _update_share_note(runs: pd.DataFrame) -> list[str]:
    """A share over 100% is no measurement: seen on an H200, where a 44 us MLP step in a
    scan was shorter than the update probe's own program (call and sync included). The
    note says where, how short the steps were, and what to read instead."""
    if "update_share" not in runs:  # a table from before the probe: nothing to explain
        return []
    cells = runs.drop_duplicates("cell_id")
    over = cells[pd.to_numeric(cells["update_share"], errors="coerce").gt(1).fillna(False)
                 .astype(bool)]
    if not len(over):
        return []
    where = ", ".join(f"{workload} (steps of {fmt_step_time(group['step_time_median_s'].median())})"
                      for workload, group in over.groupby("workload"))
    return [f"The 'update share of step' is over 100% on {where}: not a measurement. The"
            " update is timed alone, in a program of its own, and calling that program costs"
            " more than a whole training step this short. 'Step time vs SGD', where shown,"
            " compares the optimizers' cost instead."]


def _summary(cells: pd.DataFrame) -> pd.DataFrame:
    times = analysis.time_matrix(cells, "algoperf_seconds")
    summary = pd.DataFrame({
        "mean_rank": analysis.mean_rank(cells),
        "score": algoperf.algoperf_score(times),
        "workloads": cells.groupby("label")["workload"].nunique(),
        "reached": np.isfinite(times).sum(axis=1),
        "seeds_done": cells.groupby("label")["done"].sum(),
        "seeds_diverged": cells.groupby("label")["diverged"].sum(),
        "seeds_error": cells.groupby("label")["error"].sum(),
    })
    summary.index.name = "label"
    return summary.sort_values(["score", "mean_rank"], ascending=[False, True]).reset_index()


def tables(report: Report) -> list[render.Table]:
    """Every table of the report, in order."""
    found = [summary_table(report.summary)] if len(report.summary) else []
    if len(report.tuning):
        found.append(tuning_table(report.tuning))
    width = widths.table(report.all_cells)
    if width is not None:
        found.append(width)
    workloads = analysis.workload_order(report.cells["workload"]) if len(report.cells) else []
    return found + [workload_table(report.cells, w) for w in workloads]


def appendix(report: Report) -> list[render.Table]:
    """The tables after the figures: the key to the short names (long with a tuning run)."""
    key = aliases.key_table(report.all_cells)
    return [key] if key else []


def _interrupted(manifest: dict, runs: pd.DataFrame) -> str:
    """What a run stopped by Ctrl-C holds: its planned cells are the manifest's (a sweep's
    tuned cells are planned once its trials end, so they are not among them)."""
    planned = len(manifest.get("config", {}).get("cells", []))
    finished = runs["cell_id"].nunique()
    if finished < planned:
        return (f"This run was interrupted with {finished} of its {planned} planned cells"
                " finished: the others are missing here (rerunning its command finishes them),"
                " and what is here compares only the cells that finished.")
    return ("This run was interrupted after its planned cells had finished; a sweep's tuned"
            " cells, if it has any, may be missing (rerunning its command finishes them).")


def write(report: Report, out: Path | None = None,
          formats: tuple[str, ...] = ("png",)) -> dict[str, Path]:
    """Write plots/ (each figure in each of `formats`), report.md and report.html into
    `out` (default: the run folder)."""
    out = make_folder(Path(out or report.results.root), link_ok=True)  # the user's choice
    plot_dir = make_folder(out / "plots")
    figures = plots.draw_all(report, plot_dir, formats)
    write_text(out / "report.md", markdown(report, figures, out))
    write_text(out / "report.html", html_page(report, figures))
    return {"html": out / "report.html", "markdown": out / "report.md", "plots": plot_dir}


def markdown(report: Report, figures: list[tuple[str, Path]], out: Path) -> str:
    text = render.markdown_text
    lines = [f"# optbench report: {text(report.name)}", "", text(provenance(report.results.manifest)), ""]
    lines += [f"> {text(note)}" for note in report.notes] + ([""] if report.notes else [])
    for table in tables(report):
        lines += [f"## {text(table.title)}", "", *render.markdown(
            render.Table(table.header, table.rows)), ""]
    for title, path in figures:
        where = path.relative_to(out).as_posix()  # a PDF is a link: no viewer shows it inline
        lines += [f"### {title}", "", f"[{title} (PDF)]({where})" if path.suffix == ".pdf"
                  else f"![{title}]({where})", ""]
    for table in appendix(report):
        lines += [f"## {text(table.title)}", "", *render.markdown(
            render.Table(table.header, table.rows)), ""]
    lines += ["## How to read this report", "", *[f"- {rule}" for rule in HOW_TO_READ], ""]
    return "\n".join(lines)


def html_page(report: Report, figures: list[tuple[str, Path]]) -> str:
    e = html.escape
    parts = [f"<h1>optbench report: {e(report.name)}</h1>",
             f"<p class=meta>{e(provenance(report.results.manifest))}</p>"]
    parts += [f"<p class=note>{e(note)}</p>" for note in report.notes]
    for table in tables(report):
        parts += [f"<h2>{e(table.title)}</h2>",
                  render.html_table(render.Table(table.header, table.rows))]
    for title, path in figures:
        parts += [f"<h3>{e(title)}</h3>", figure_files.embed(title, path)]
    for table in appendix(report):
        parts += [f"<h2>{e(table.title)}</h2>",
                  render.html_table(render.Table(table.header, table.rows))]
    parts.append("<h2>How to read this report</h2><ul>"
                 + "".join(f"<li>{e(rule)}</li>" for rule in HOW_TO_READ) + "</ul>")
    return render.page(f"optbench: {report.name}", parts)


def provenance(manifest: dict) -> str:
    manifest = sessions.of_cells(manifest)  # the set-up the cells were trained with
    device = manifest.get("device", {})
    versions = manifest.get("versions", {})
    return (f"Run {manifest.get('updated', '?')} on {device.get('platform', '?')}"
            f" ({device.get('count', '?')} x {device.get('kind', '?')},"
            f" host with {manifest.get('host', {}).get('cpus', '?')} CPUs);"
            f" jax {versions.get('jax', '?')}, optax {versions.get('optax', '?')},"
            f" flax {versions.get('flax', '?')}; commit {manifest.get('git_commit') or 'unknown'}.")


def terminal_table(report: Report):
    return render.terminal(summary_table(report.summary)) if len(report.summary) else None
