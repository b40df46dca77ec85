"""`optbench compare`'s tables and pages: the terminal table, compare.md and compare.html.

The pages mark the rows `compare.regressions` would fail on (at --fail-on-regression's
threshold, or HIGHLIGHT_PCT without it) with a CSS class and a written marker (colour is
never the only sign), explain the marker in a legend, and show each workload's curves of
every run (compare_figures.py), saved beside the pages. Every name is escaped.
"""
from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.report import render
from bench.report.compare import Comparison, row_regressions, speed_of
from bench.report.figure_files import embed
from bench.report.speed import MIN_CHUNKS
from bench.runner.files import make_folder, write_text

# the highlight without --fail-on-regression: reruns of one matrix on this project's
# shared 2-core CPU moved speed by up to 10%, so a smaller threshold marks noise
HIGHLIGHT_PCT = 10.0


@dataclass(frozen=True)
class Flags:
    """What compare.html and compare.md mark as a regression: `regressions`' settings."""
    pct: float = HIGHLIGHT_PCT
    allow_failures: bool = False
    allow_missing: bool = False


MARK = "▲ regression"  # the written marker: the row's colour is never the only sign


def table(comparison: Comparison, flags: Flags | None = None) -> render.Table:
    """The side-by-side table; with `flags`, a first column saying why each row is a
    regression (`MARK: ...`, or — for none) and a `regression` class on those rows."""
    a = comparison.names[0]
    header = ["run", "workload", "optimizer", f"{a} (95% CI)", "this run (95% CI)",
              "difference (95% CI)", "p", "significant", "speed vs baseline (95% CI)",
              "seeds (done)"]
    rows, classes = [], []
    for r in comparison.rows.itertuples():
        row = [(r.run, None), (r.workload, None), (r.label, None),
               (render.interval(r.mean_a, r.low_a, r.high_a, digits=4), render.sort_key(r.mean_a)),
               (render.interval(r.mean_b, r.low_b, r.high_b, digits=4), render.sort_key(r.mean_b)),
               (render.interval(r.diff, r.diff_low, r.diff_high, digits=4, sign=True),
                render.sort_key(r.diff)),
               ("—" if not np.isfinite(r.p) else f"{r.p:.3g}", render.sort_key(r.p)),
               ("yes" if r.significant else ("n/a" if not np.isfinite(r.p) else "no"), None),
               (speed_of(r).describe(), render.sort_key(r.speed_ratio)),
               (f"{r.seeds_a} vs {r.seeds_b}", None)]
        if flags is not None:
            reasons = row_regressions(r, flags.pct, allow_failures=flags.allow_failures)
            row.insert(0, (f"{MARK}: {'; '.join(reasons)}" if reasons else "—", None))
            classes.append("regression" if reasons else "")
        rows.append(row)
    if flags is not None:
        header.insert(0, f"regression (> {flags.pct:g}%)")
    return render.Table(header, rows, title=f"{comparison.metric}: {' vs '.join(comparison.names)}",
                        row_classes=classes)


def terminal_table(comparison: Comparison):
    return render.terminal(table(comparison))


def speed_key(comparison: Comparison) -> str:
    """How to read the speed column (speed.py states the rule); where some cell had too few
    chunks, how to get more; "" when the runs share no cell."""
    if not len(comparison.rows):
        return ""
    few = (comparison.rows["speed_verdict"] == "too few chunks").any()
    return ("speed vs baseline: the baseline's median step time over this run's (above 1:"
            " faster), with a 95% bootstrap interval over both runs' per-chunk step times;"
            f" within noise when it holds 1, not judged under {MIN_CHUNKS} chunks a side"
            + (" (a chunk is eval_every steps: for more, raise --steps or lower eval_every,"
               ' as {name = "NAME", eval_every = 20} in the matrix\'s workloads)' if few
               else "")
            + ". The interval is the scatter of chunks within each run, not a machine's drift"
            " between runs (two identical runs on a 2-core virtual machine: 0.84-1.80x):"
            " rerun both before believing a speed difference.")


def legend(flags: Flags) -> str:
    """What a marked row means, in words."""
    return (f"{MARK}: a later run worse than the baseline by more than {flags.pct:g}% on the"
            " metric's mean, or slower by more than that beyond the noise (the speed ratio's"
            " 95% interval over the chunks' step times below 1)"
            + ("" if flags.allow_failures
               else ", or with more seeds diverged, errored or timed out")
            + ("" if flags.allow_missing else ", or lacking a cell the baseline has")
            + f" (what --fail-on-regression {flags.pct:g} fails on).")


def _only_in(comparison: Comparison, flags: Flags | None) -> render.Table:
    """The cells some runs lack; with `flags` (and no allow_missing), a baseline cell
    missing from a later run is marked as the regression it is."""
    missing = set() if flags is None or flags.allow_missing else \
        {(workload, label) for _, workload, label in comparison.missing}
    base = comparison.names[0]
    header, rows, classes = ["run", "workload", "optimizer"], [], []
    for run, workload, label in comparison.only_in:
        rows.append([(run, None), (workload, None), (label, None)])
        if flags is not None:
            marked = run == base and (workload, label) in missing
            rows[-1].insert(0, (f"{MARK}: missing from a later run" if marked else "—", None))
            classes.append("regression" if marked else "")
    if flags is not None:
        header.insert(0, "regression")
    return render.Table(header, rows, row_classes=classes)


def markdown(comparison: Comparison, flags: Flags | None = None,
             figures: list[tuple[str, Path]] = ()) -> str:
    text = render.markdown_text
    lines = [f"# optbench compare: {text(' vs '.join(comparison.names))}", "",
             f"Metric: `{comparison.metric}`; baseline: {text(comparison.names[0])}.", ""]
    lines += [f"> {text(note)}" for note in comparison.notes] + ([""] if comparison.notes else [])
    if flags is not None:
        lines += [text(legend(flags)), ""]
    lines += render.markdown(table(comparison, flags))
    key = speed_key(comparison)
    lines += ["", text(key)] if key else []
    if comparison.only_in:
        lines += ["", "## Cells in some runs only", ""]
        lines += render.markdown(_only_in(comparison, flags))
    if figures:
        lines += ["", "## Curves", ""]
        lines += [f"![{text(title)}]({path.name})" for title, path in figures]
    return "\n".join(lines) + "\n"


def html_page(comparison: Comparison, flags: Flags | None = Flags(),
              figures: list[tuple[str, Path]] = ()) -> str:
    e = html.escape
    parts = [f"<h1>optbench compare: {e(' vs '.join(comparison.names))}</h1>",
             f"<p>Metric: <code>{e(comparison.metric)}</code>; baseline:"
             f" <code>{e(comparison.names[0])}</code>.</p>"]
    parts += [f"<p class=note>{e(note)}</p>" for note in comparison.notes]
    if flags is not None:
        parts.append(f"<p class=legend><span class=regression>{e(MARK)}</span>"
                     f" {e(legend(flags).removeprefix(MARK + ':'))}</p>")
    parts.append(f"<div class=compare>{render.html_table(table(comparison, flags))}</div>")
    key = speed_key(comparison)
    parts += [f"<p class=meta>{e(key)}</p>"] if key else []
    if comparison.only_in:
        parts += ["<h2>Cells in some runs only</h2>",
                  render.html_table(_only_in(comparison, flags))]
    if figures:
        parts += ["<h2>Curves: each run's target metric against step</h2>",
                  "<p>Line: the mean over a cell's seeds; colour: the optimizer; line style:"
                  " the run (solid: the baseline).</p><div class=figures>"]
        parts += [f"<figure>{embed(title, path)}</figure>" for title, path in figures]
        parts.append("</div>")
    return render.page("optbench compare", parts)


def write(comparison: Comparison, out: Path, *, link_ok: bool = True,
          flags: Flags = Flags()) -> tuple[Path, Path]:
    """compare.md, compare.html and each workload's curves (curves-*.png) in `out` (a link
    only where the user named it)."""
    from bench.report import compare_figures  # matplotlib: only when pages are written

    make_folder(out, link_ok=link_ok)
    figures = compare_figures.draw(comparison, out)
    write_text(out / "compare.md", markdown(comparison, flags, figures))
    write_text(out / "compare.html", html_page(comparison, flags, figures))
    return out / "compare.md", out / "compare.html"
