"""`optbench plot RUN --kind NAME`: one of the report's figures, for chosen workloads and
optimizers, written to one file, from the results tables alone.

The kinds are the names the report's figures are registered under (plots.FIGURES), so a
figure added to the report can be plotted alone without a line here. `curves` takes its
x axis (`--x step|time`) and, with `--metric`, draws that curve column instead of the
training loss and the target metric. Only `trajectories` reaches past the tables: it asks
the workload registry for the 2-D function's landscape (which imports JAX).
"""
from __future__ import annotations

import dataclasses
import difflib
import os
import re
import shutil
import tempfile
from pathlib import Path

import pandas as pd

from bench.errors import UserError
from bench.report import curve_plots, figure_files, plots
from bench.report import report as report_mod
from bench.runner.files import make_folder
from bench.runner.results import Results

X_AXES = {"step": "step", "time": "train_seconds"}
NOT_METRICS = {"cell_id", "seed", "step", "train_seconds"}  # curve columns that are axes or keys


def select(results: Results, workloads: list[str] | None,
           optimizers: list[str] | None) -> Results:
    """The run's rows (and curve points) of these workloads and optimizers (an optimizer
    name or a cell's label); all of them where a list is None. An unknown name is one line
    with the names the run holds."""
    runs = results.runs
    if not len(runs):
        raise UserError(f"{results.root} holds no finished cell: nothing to plot")
    keep = pd.Series(True, index=runs.index)
    if workloads is not None:
        _check("workload", workloads, sorted(set(runs["workload"].astype(str))))
        keep &= runs["workload"].isin(workloads)
    if optimizers is not None:
        held = sorted(set(runs["optimizer"].astype(str)) | set(runs["label"].astype(str)))
        _check("optimizer", optimizers, held)
        keep &= runs["optimizer"].isin(optimizers) | runs["label"].isin(optimizers)
    chosen = runs[keep]
    if not len(chosen):
        asked = [", ".join(names) for names in (workloads, optimizers) if names]
        raise UserError("the run holds no cell of " + " x ".join(asked))
    curves = results.curves
    if len(curves):
        curves = curves[curves["cell_id"].isin(set(chosen["cell_id"]))]
    return dataclasses.replace(results, runs=chosen, curves=curves)


def _check(what: str, names: list[str], held: list[str]) -> None:
    if not names:
        raise UserError(f"--{what}s is empty; the run holds: {', '.join(held)}")
    for name in names:
        if name not in held:
            close = difflib.get_close_matches(name, held, n=1)
            raise UserError(f"this run has no {what} '{name}'"
                            + (f" (did you mean '{close[0]}'?)" if close else "")
                            + f"; it holds: {', '.join(held)}")


def check_kind(kind: str) -> str:
    kinds = plots.kinds()
    if kind not in kinds:
        close = difflib.get_close_matches(kind, kinds, n=1)
        raise UserError(f"unknown kind '{kind}'" + (f" (did you mean '{close[0]}'?)" if close
                                                    else "") + f"; the kinds: {', '.join(kinds)}")
    return kind


def curve_metrics(curves: pd.DataFrame) -> list[str]:
    """The curve columns `--metric` can draw."""
    return [c for c in curves.columns if c not in NOT_METRICS
            and pd.api.types.is_numeric_dtype(curves[c])]


def check_request(results: Results, kind: str, x: str | None, metric: str | None) -> None:
    """One line for a kind, axis or metric this figure cannot take."""
    check_kind(kind)
    if kind != "curves" and (x is not None or metric is not None):
        flag = "--x" if x is not None else "--metric"
        raise UserError(f"{flag} applies to --kind curves only")
    if x is not None and x not in X_AXES:
        raise UserError(f"--x takes {' or '.join(X_AXES)}, not '{x}'")
    if metric is None:
        return
    offered = curve_metrics(results.curves)
    if metric not in offered:
        close = difflib.get_close_matches(metric, offered, n=1)
        raise UserError(f"unknown curve metric '{metric}'" + (f" (did you mean '{close[0]}'?)"
                                                              if close else "")
                        + f"; the curves hold: {', '.join(offered)}")
    recorded = results.curves.merge(results.runs[["cell_id", "workload"]].drop_duplicates(),
                                    on="cell_id").groupby("workload")[metric].count()
    lacking = sorted(set(results.runs["workload"]) - set(recorded[recorded > 0].index))
    if lacking:
        raise UserError(f"{', '.join(lacking)} record(s) no {metric}; leave them out with"
                        " --workloads")


def default_name(kind: str, x: str | None, metric: str | None) -> str:
    parts = [kind] + (["by-time"] if x == "time" else []) + ([metric] if metric else [])
    return re.sub(r"[^A-Za-z0-9._-]+", "_", "plot-" + "-".join(parts)) + ".png"


def plot(results: Results, kind: str, out: Path, *, x: str | None = None,
         metric: str | None = None) -> Path:
    """Draw one figure of `kind` from `results` (already selected) into `out`, a file
    whose suffix names its format; returns `out`."""
    check_request(results, kind, x, metric)
    fmt = figure_files.format_of(out)
    built = report_mod.build(results)
    if kind == "curves":
        title = f"{kind} against {x or 'step'}"
        figures = [(kind, title, lambda r, folder: curve_plots.curves(
            r.runs, r.results.curves, folder, X_AXES[x or "step"], [metric] if metric else None))]
    else:
        figures = [entry for entry in plots.FIGURES if entry[0] == kind][:1]
    make_folder(out.parent, link_ok=True)  # the user's choice
    scratch = Path(tempfile.mkdtemp(prefix=".optbench-plot-", dir=out.parent))
    try:  # drawn beside `out`, then renamed over it: a stopped plot leaves no half file
        drawn = plots.draw_all(built, scratch, (fmt,), figures)
        if not drawn:
            raise UserError(f"nothing to draw: the selected cells have no {kind} figure"
                            " (`optbench report` shows the figures this run has)")
        os.replace(drawn[0][1], out)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return out


def target(run: Path, out: str | None, kind: str, x: str | None, metric: str | None) -> Path:
    """Where the figure goes: --out (a file, or a folder to put the default name in), or
    the run's plots/ folder."""
    if out is None:
        return Path(run) / "plots" / default_name(kind, x, metric)
    if not out.strip():
        raise UserError("--out is empty; give a file name ending in .png, .svg or .pdf")
    path = Path(out)
    return path / default_name(kind, x, metric) if path.is_dir() else path
