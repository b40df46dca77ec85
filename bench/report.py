"""`optbench report RUN`: report.html (one self-contained file), report.md, plots/*.png and a
terminal summary, from a results folder's tables alone (no JAX, no training).

A run with one seed, one optimizer, diverged or errored seeds, or no finished cell still
reports: what is missing is said in the report, not raised.
"""
from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from rich.table import Table

from bench import analysis, plots
from bench.store import Results, load

HOW_TO_READ = [
    "Means and 95% confidence intervals (Student's t) are over the seeds that finished; "
    "diverged and errored seeds are counted, not averaged in. One seed gives no interval.",
    "Time to target: where a seed's target-metric curve first reaches the workload's target, "
    "linearly interpolated between the two evaluations around the crossing (the first "
    "evaluation's own step and time when it is already there). Per optimizer, the median over "
    "seeds with unreached seeds counted as infinitely slow: \"not reached\" means more than "
    "half the seeds never got there.",
    "Seconds are training seconds: compiled chunks ending in block_until_ready; compile and "
    "evaluation time are excluded.",
    "Benchmark score (AlgoPerf-style): the area under each optimizer's performance profile "
    "(share of workloads where its time to target is within tau of the fastest) for tau from "
    f"1 to {analysis.TAU_MAX:g}, divided by {analysis.TAU_MAX - 1:g}. 1 is fastest everywhere; "
    "0 is never within 4x of the fastest.",
]


@dataclass
class Report:
    results: Results
    cells: pd.DataFrame  # untuned and tuned cells (tuning trials are in `tuning`)
    summary: pd.DataFrame  # one row per optimizer label across workloads
    notes: list[str] = field(default_factory=list)  # what is missing, said plainly
    tuning: pd.DataFrame = field(default_factory=pd.DataFrame)  # oneshot vs tuned
    tuning_curves: pd.DataFrame = field(default_factory=pd.DataFrame)


def build(results: Results) -> Report:
    runs, curves = results.runs, results.curves
    compared = runs[runs["role"] != "trial"] if "role" in runs else runs  # trials: see tuning
    cells = analysis.cell_table(compared, curves) if len(compared) else pd.DataFrame()
    notes = []
    if not len(runs):
        notes.append("This run has no finished cell yet: nothing to compare.")
    else:
        if (runs["status"] == "error").any():
            notes.append(f"{int((runs['status'] == 'error').sum())} seed(s) ended in an error;"
                         " the tracebacks are in runs.parquet (column error).")
        if runs.groupby("cell_id")["seed"].nunique().max() < 2:
            notes.append("Every cell has a single seed: no confidence intervals.")
        if runs["label"].nunique() < 2:
            notes.append("Only one optimizer: ranks and profiles compare it with nothing.")
        if not (runs["status"] == "done").any():
            notes.append("No seed finished as done: metrics are missing.")
    summary = _summary(cells) if len(cells) else pd.DataFrame()
    tuning = analysis.oneshot_vs_tuned(cells, runs) if len(cells) else pd.DataFrame()
    return Report(results, cells, summary, notes, tuning, analysis.tuning_curves(runs))


def tuning_rows(tuning: pd.DataFrame) -> tuple[list[str], list[list[tuple[str, float]]]]:
    header = ["workload", "optimizer", "untuned (95% CI)", "tuned (95% CI)", "tuned hyperparameters"]
    rows = [[(r.workload, None), (r.optimizer, None),
             (fmt_ci(r.oneshot, r.oneshot_low, r.oneshot_high), _key(r.oneshot)),
             (fmt_ci(r.tuned, r.tuned_low, r.tuned_high), _key(r.tuned)),
             (r.tuned_hparams, None)] for r in tuning.itertuples()]
    return header, rows


def _summary(cells: pd.DataFrame) -> pd.DataFrame:
    times = analysis.time_matrix(cells)
    summary = pd.DataFrame({
        "mean_rank": analysis.mean_rank(cells),
        "score": analysis.benchmark_score(times),
        "workloads": cells.groupby("label")["workload"].nunique(),
        "reached": (np.isfinite(times)).sum(axis=1),
        "seeds_done": cells.groupby("label")["done"].sum(),
        "seeds_diverged": cells.groupby("label")["diverged"].sum(),
        "seeds_error": cells.groupby("label")["error"].sum(),
    })
    summary.index.name = "label"
    return summary.sort_values(["score", "mean_rank"], ascending=[False, True]).reset_index()


# ---- formatting -----------------------------------------------------------------------

def fmt_ci(mean: float, low: float, high: float, digits: int = 3) -> str:
    if not np.isfinite(mean):
        return "—"
    if not (np.isfinite(low) and np.isfinite(high)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def fmt_time(value: float, unit: str) -> str:
    if not np.isfinite(value):
        return "not reached"
    return f"{value:,.0f}" if unit == "steps" else f"{value:.3g} s"


def fmt_bytes(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def workload_rows(cells: pd.DataFrame, workload: str) -> tuple[list[str], list[list[tuple[str, float]]]]:
    """Header and rows (text, sort key) of one workload's ranked table."""
    frame = cells[cells["workload"] == workload]
    metric = frame["target_metric"].iloc[0]
    target = frame["target_value"].iloc[0]
    header = ["rank", "optimizer", f"final {metric} (95% CI)", "final test accuracy (95% CI)",
              "best val accuracy", f"steps to {metric} {'≥' if analysis.higher_is_better(metric) else '≤'} {target:g}",
              "seconds to target", "reached", "step time", "done / diverged / error"]
    extras = [(column, title) for column, title in (
        ("state_bytes", "optimizer state"), ("update_share", "update share of step"),
        ("step_time_vs_sgd", "step time vs SGD"))
        if column in frame and np.isfinite(frame[column]).any()]
    header[9:9] = [title for _, title in extras]
    rows = []
    for r in frame.itertuples():
        col = "final_" + metric
        row = [
            (f"{r.rank:g}", r.rank), (r.label, None),
            (fmt_ci(getattr(r, col), getattr(r, col + "_low"), getattr(r, col + "_high")), _key(getattr(r, col))),
            (fmt_ci(r.final_test_accuracy, r.final_test_accuracy_low, r.final_test_accuracy_high), _key(r.final_test_accuracy)),
            (fmt_ci(r.best_val_accuracy, math.nan, math.nan), _key(r.best_val_accuracy)),
            (fmt_time(r.tt_steps, "steps"), _key(r.tt_steps)),
            (fmt_time(r.tt_seconds, "s"), _key(r.tt_seconds)),
            (f"{r.reached}/{r.seeds}", r.reached),
            (f"{r.step_time_s * 1e6:.0f} µs" if np.isfinite(r.step_time_s) else "—", _key(r.step_time_s)),
            (f"{r.done} / {r.diverged} / {r.error}", r.done),
        ]
        row[9:9] = [_extra(column, getattr(r, column)) for column, _ in extras]
        rows.append(row)
    return header, rows


def _extra(column: str, value: float) -> tuple[str, float]:
    if not np.isfinite(value):
        return "—", _key(value)
    if column == "state_bytes":
        return fmt_bytes(value), value
    if column == "update_share":
        return f"{100 * value:.0f}%", value
    return f"{value:.2f}x", value


def summary_rows(summary: pd.DataFrame) -> tuple[list[str], list[list[tuple[str, float]]]]:
    header = ["optimizer", "benchmark score", "mean rank", "workloads reached",
              "seeds done / diverged / error"]
    rows = [[(r.label, None), (f"{r.score:.3f}", r.score), (f"{r.mean_rank:.2f}", r.mean_rank),
             (f"{r.reached}/{r.workloads}", r.reached),
             (f"{r.seeds_done} / {r.seeds_diverged} / {r.seeds_error}", r.seeds_done)]
            for r in summary.itertuples()]
    return header, rows


def _key(value: float) -> float:
    return float(value) if np.isfinite(value) else 1e300


# ---- writers --------------------------------------------------------------------------

def write(report: Report, out: Path | None = None) -> dict[str, Path]:
    """Write plots/, report.md and report.html into `out` (default: the run folder)."""
    out = Path(out or report.results.root)
    plot_dir = out / "plots"
    plot_dir.mkdir(parents=True, exist_ok=True)
    figures = _figures(report, plot_dir)
    (out / "report.md").write_text(markdown(report, figures, out))
    (out / "report.html").write_text(html_page(report, figures))
    return {"html": out / "report.html", "markdown": out / "report.md", "plots": plot_dir}


def _figures(report: Report, plot_dir: Path) -> list[tuple[str, Path]]:
    runs, curves, cells = report.results.runs, report.results.curves, report.cells
    candidates = [
        ("Loss and target metric against step (line: mean over seeds; band: their range)",
         lambda: plots.curves(runs, curves, plot_dir, "step")),
        ("Loss and target metric against training time",
         lambda: plots.curves(runs, curves, plot_dir, "train_seconds")),
        ("Final target metric per seed (box over finished seeds; red crosses: diverged)",
         lambda: plots.final_metric(runs, plot_dir)),
        ("Training seconds to target (median over seeds)",
         lambda: plots.bars(cells, "tt_seconds", "training seconds to target", plot_dir,
                            "time_to_target.png")),
        ("Step time (median over chunks)",
         lambda: plots.bars(cells.assign(step_us=cells["step_time_s"] * 1e6) if len(cells) else cells,
                            "step_us", "µs per step (all seeds)", plot_dir, "step_time.png", "—")),
        ("Optimizer state memory",
         lambda: plots.bars(cells.assign(state_kib=cells["state_bytes"] / 1024)
                            if "state_bytes" in cells else cells.iloc[:0],
                            "state_kib", "KiB of optimizer state", plot_dir, "state_memory.png", "—")),
        ("Performance profiles", lambda: plots.performance_profile(
            analysis.time_matrix(cells) if len(cells) else pd.DataFrame(), plot_dir)),
        ("Normalised final target metric (per workload: 1 best, 0 worst)",
         lambda: plots.heatmap(analysis.normalised_performance(cells) if len(cells) else pd.DataFrame(),
                               plot_dir)),
        ("Learning-rate sensitivity (every cell, tuning trials included)",
         lambda: plots.lr_sensitivity(analysis.cell_table(runs, curves) if len(runs) else cells,
                                      plot_dir)),
        ("Tuning curves: best validation metric after k trials (median and 10-90% over"
         " 200 orders of the trials)", lambda: plots.tuning_curves(report.tuning_curves, plot_dir)),
    ]
    figures = []
    for title, draw in candidates:
        path = draw()
        if path is not None:
            figures.append((title, path))
    return figures


def markdown(report: Report, figures, out: Path) -> str:
    manifest = report.results.manifest
    lines = [f"# optbench report: {_run_name(report)}", "", _provenance(manifest), ""]
    lines += [f"> {note}" for note in report.notes] + ([""] if report.notes else [])
    if len(report.summary):
        lines += ["## Across workloads", "", *_md_table(*summary_rows(report.summary)), ""]
    if len(report.tuning):
        lines += ["## Untuned vs tuned (final target metric)", "",
                  *_md_table(*tuning_rows(report.tuning)), ""]
    for workload in sorted(report.cells["workload"].unique()) if len(report.cells) else []:
        lines += [f"## {workload}", "", *_md_table(*workload_rows(report.cells, workload)), ""]
    for title, path in figures:
        lines += [f"### {title}", "", f"![{title}]({path.relative_to(out).as_posix()})", ""]
    lines += ["## How to read this report", "", *[f"- {rule}" for rule in HOW_TO_READ], ""]
    return "\n".join(lines)


def _md_table(header, rows) -> list[str]:
    def cell(text):
        return str(text).replace("|", "\\|")
    return (["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(cell(text) for text, _ in row) + " |" for row in rows])


def html_page(report: Report, figures) -> str:
    e = html.escape
    manifest = report.results.manifest
    parts = [f"<h1>optbench report: {e(_run_name(report))}</h1>",
             f"<p class=meta>{e(_provenance(manifest))}</p>"]
    parts += [f"<p class=note>{e(note)}</p>" for note in report.notes]
    if len(report.summary):
        parts += ["<h2>Across workloads</h2>", _html_table(*summary_rows(report.summary))]
    if len(report.tuning):
        parts += ["<h2>Untuned vs tuned (final target metric)</h2>",
                  _html_table(*tuning_rows(report.tuning))]
    for workload in sorted(report.cells["workload"].unique()) if len(report.cells) else []:
        parts += [f"<h2>{e(workload)}</h2>", _html_table(*workload_rows(report.cells, workload))]
    for title, path in figures:
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        parts += [f"<h3>{e(title)}</h3>",
                  f"<img alt=\"{e(title)}\" src=\"data:image/png;base64,{data}\">"]
    parts += ["<h2>How to read this report</h2><ul>"
              + "".join(f"<li>{e(rule)}</li>" for rule in HOW_TO_READ) + "</ul>"]
    return _PAGE.replace("{title}", e(f"optbench: {_run_name(report)}")).replace(
        "{body}", "\n".join(parts))


def _html_table(header, rows) -> str:
    """Cells with a numeric key sort by it (data-sort); the others sort as text."""
    head = "".join(f"<th title=\"click to sort\">{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td data-sort=\"{key:.12g}\">{html.escape(text)}</td>" if key is not None
                         else f"<td>{html.escape(text)}</td>" for text, key in row) + "</tr>"
        for row in rows)
    return (f"<div class=scroll><table class=sortable><thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _run_name(report: Report) -> str:
    return report.results.manifest.get("config", {}).get("matrix", {}).get("name") or report.results.root.name


def _provenance(manifest: dict) -> str:
    device = manifest.get("device", {})
    versions = manifest.get("versions", {})
    return (f"Run {manifest.get('updated', '?')} on {device.get('platform', '?')}"
            f" ({device.get('count', '?')} x {device.get('kind', '?')},"
            f" host with {manifest.get('host', {}).get('cpus', '?')} CPUs);"
            f" jax {versions.get('jax', '?')}, optax {versions.get('optax', '?')},"
            f" flax {versions.get('flax', '?')}; commit {manifest.get('git_commit') or 'unknown'}.")


def terminal_table(report: Report) -> Table:
    table = Table(title="optbench report: " + _run_name(report))
    header, rows = summary_rows(report.summary) if len(report.summary) else (["note"], [])
    for h in header:
        table.add_column(h)
    for row in rows:
        table.add_row(*[text for text, _ in row])
    return table


_PAGE = """<!doctype html>
<html lang=en><head><meta charset=utf-8><title>{title}</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2em auto;max-width:1280px;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}
th,td{padding:4px 9px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
th:nth-child(-n+2),td:nth-child(-n+2){text-align:left}
th{background:#f4f5f7;cursor:pointer;user-select:none;white-space:normal;vertical-align:bottom}
.scroll{overflow-x:auto}th:hover{background:#e6e9ee}
th.asc::after{content:" \\25B2"}th.desc::after{content:" \\25BC"}
tr:hover td{background:#fafbff}.meta{color:#666}.note{background:#fff7e0;padding:.5em .8em;border-left:3px solid #e0a800}
img{max-width:100%;border:1px solid #eee;margin:.3em 0 1em}
</style></head><body>
{body}
<script>
// Click a column header to sort by it (numbers by their data-sort value); offline, no libraries.
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], asc = !th.classList.contains("asc");
  th.parentNode.querySelectorAll("th").forEach(h => h.classList.remove("asc", "desc"));
  th.classList.add(asc ? "asc" : "desc");
  const key = td => td.dataset.sort !== undefined ? parseFloat(td.dataset.sort) : td.textContent;
  [...body.rows].sort((a, b) => {
    const x = key(a.cells[col]), y = key(b.cells[col]);
    return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * (asc ? 1 : -1);
  }).forEach(row => body.appendChild(row));
}));
</script></body></html>
"""
