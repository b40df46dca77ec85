"""`optbench compare A B [C ...]`: runs side by side on the cells they share.

Cells match on `Cell.match_key` (stored as runs.parquet's `match_key`): everything a cell
asks for but its seeds (workload, optimizer, every hyperparameter, steps, batch size, eval
cadence, schedule, tuning role and trial, program layout), so a rerun with other seeds
still compares and different schedules or roles never pool. The
first run is the baseline; every other run is compared with it: the metric's mean and 95%
interval per run, the difference with Welch's interval and p-value (significant at
p < 0.05), and the speed ratio (the baseline's median step time over this run's: above 1
is faster). Cells present in some runs only are listed, never silently dropped. Which way
is better comes from what the workload declared (runs.parquet's `target_direction` and
`metrics`), never from a metric's name. Reads the tables only (no JAX).

The speed verdict knows the noise (speed.py states the rule): the ratio's 95% interval is a
bootstrap over both runs' per-chunk step times (from curves.parquet, with a fixed seed), and
--fail-on-regression PCT flags a cell's speed only when the ratio is more than PCT% below 1
AND the interval lies below 1; a cell with fewer than 3 chunks on either side is not judged
on speed. The metric's verdict (Welch) is apart from it. Runs made on different machines
(device, CPU model, cores, usable CPUs in their manifests) get a note saying that their
speed ratios measure the machines too, and so does a run that started on a busy machine
(setups.py).
Its tables and pages (terminal, compare.md, compare.html) are written by compare_pages.py.
"""
from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from bench.errors import UserError
from bench.report import analysis, speed
from bench.report.setups import setup_notes
from bench.runner.schema import is_metric
from bench.runner.results import Results

# `target`: each cell's target metric on the test split (`final_test_<metric>`); the
# others are runs.parquet columns.
TARGET = "target"
FIXED_METRICS = (TARGET, "best_target", "final_train_loss")
SIGNIFICANCE = 0.05


@dataclass
class Comparison:
    names: list[str]  # one per run, baseline first
    metric: str
    rows: pd.DataFrame  # one row per shared cell x compared run
    only_in: list[tuple[str, str, str]]  # (run, workload, label) of unshared cells
    notes: list[str]
    missing: list[tuple[str, str, str]]  # (later run, workload, label) of baseline cells it lacks
    # the shared cells' target-metric curves: run, workload, label, metric, step, value
    curves: pd.DataFrame = field(default_factory=pd.DataFrame)


def compare(runs: list[Results], metric: str = TARGET) -> Comparison:
    names = _names(runs)
    empty = [name for name, r in zip(names, runs) if not len(r.runs)]
    if empty:
        raise UserError(f"{', '.join(empty)} holds no finished cell: nothing to compare"
                        " (`optbench report RUN` says why)")
    offered = metrics_offered([r.runs for r in runs])
    if metric not in offered:
        close = difflib.get_close_matches(metric, offered, n=1)
        raise UserError(f"unknown metric '{metric}'"
                        + (f" (did you mean '{close[0]}'?)" if close else "")
                        + f"; the runs offer: {', '.join(offered)}")
    keyed = _keyed([r.runs for r in runs])
    shared = set.intersection(*(set(k["compare_key"]) for k in keyed))
    only_in = sorted({(name, row.workload, row.label) for name, table in zip(names, keyed)
                      for row in table.itertuples() if row.compare_key not in shared})
    missing = sorted({(name, row.workload, row.label) for name, table in zip(names[1:], keyed[1:])
                      for row in keyed[0].itertuples()
                      if row.compare_key not in set(table["compare_key"])})
    rows = []
    without = set()  # cells whose workload has no such metric: nothing to compare there
    base = keyed[0]
    chunks = [_chunk_times(r.curves) for r in runs]  # per run: cell_id -> per-chunk step times
    # rows by workload and label, as the report lists cells (the keys are hashes)
    names_of = base.drop_duplicates("compare_key").set_index("compare_key")
    in_order = sorted(shared, key=lambda k: (names_of.at[k, "workload"],
                                             names_of.at[k, "label"], k))
    for name, table, times in zip(names[1:], keyed[1:], chunks[1:]):
        for key in in_order:
            a, b = base[base["compare_key"] == key], table[table["compare_key"] == key]
            column = _column(a.iloc[0], metric)
            if not _declares(a.iloc[0], column):  # diverged cells declare it, NaN or not
                without.add((a["workload"].iloc[0], a["label"].iloc[0]))
                continue
            a_values, b_values = _done(a, column), _done(b, column)
            mean_a, low_a, high_a = analysis.mean_ci(a_values, column=column)
            mean_b, low_b, high_b = analysis.mean_ci(b_values, column=column)
            diff, diff_low, diff_high, p = analysis.welch(a_values, b_values, column=column)
            # speed from the chunks' step times (curves.parquet), or the runs table's medians
            # of them where the curves are not there; never steps_per_s, which also carries
            # one-off costs of the process's first cells (it moved by up to 17% between runs)
            step_a, step_b = a["step_time_median_s"].median(), b["step_time_median_s"].median()
            pace = speed.judge(_cell_chunks(chunks[0], a), _cell_chunks(times, b),
                               fallback=step_a / step_b if step_b else math.nan)
            rows.append({
                "run": name, "workload": b["workload"].iloc[0], "label": b["label"].iloc[0],
                "column": column, "better": direction(a.iloc[0], column),
                "seeds_a": len(a_values), "seeds_b": len(b_values),
                "not_done_a": int((a["status"] != "done").sum()),
                "not_done_b": int((b["status"] != "done").sum()),
                "statuses_b": _statuses(b),
                "mean_a": mean_a, "low_a": low_a, "high_a": high_a,
                "mean_b": mean_b, "low_b": low_b, "high_b": high_b,
                "diff": diff, "diff_low": diff_low, "diff_high": diff_high, "p": p,
                "significant": bool(np.isfinite(p) and p < SIGNIFICANCE),
                "change_pct": 100 * diff / abs(mean_a) if mean_a else math.nan,
                "speed_ratio": pace.ratio, "speed_low": pace.low, "speed_high": pace.high,
                "chunks_a": pace.chunks_a, "chunks_b": pace.chunks_b,
                "speed_verdict": pace.verdict,
            })
    notes = []
    if without:
        notes.append(f"Not compared: {metric} is not a metric of "
                     + ", ".join(f"{w} x {label}" for w, label in sorted(without)) + ".")
    if not shared:
        notes.append("The runs share no cell: nothing to compare side by side.")
    notes += setup_notes(names, [r.manifest for r in runs])
    return Comparison(names, metric, pd.DataFrame(rows), only_in, notes, missing,
                      _curves(names, keyed, [r.curves for r in runs], shared))


def _chunk_times(curves: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each cell's per-chunk step times (speed.chunk_step_times), by cell_id."""
    columns = ["cell_id", "step", "train_seconds"]
    if not len(curves) or not set(columns) <= set(curves.columns):
        return {}
    # a cell's seeds share one clock: one row per step is the whole of it
    clock = curves[columns].drop_duplicates(["cell_id", "step"])
    return {cell: speed.chunk_step_times(rows) for cell, rows in clock.groupby("cell_id")}


def _cell_chunks(times: dict[str, np.ndarray], rows: pd.DataFrame) -> np.ndarray:
    """The chunks of the cell(s) behind one compared row."""
    found = [times[cell] for cell in rows["cell_id"].unique() if cell in times]
    return np.concatenate(found) if found else np.empty(0)


def _curves(names, keyed, curves, shared) -> pd.DataFrame:
    """Every run's curve points of the shared cells, as (run, workload, label, metric, step,
    value): the value is the cell's target metric (on the validation split)."""
    parts = []
    for name, table, points in zip(names, keyed, curves):
        if not len(points) or "step" not in points:
            continue
        cells = table.loc[table["compare_key"].isin(shared),
                          ["cell_id", "seed", "workload", "label", "target_metric"]]
        merged = points.merge(cells.drop_duplicates(["cell_id", "seed"]), on=["cell_id", "seed"])
        for metric, group in merged.groupby("target_metric"):
            if metric in group:
                values = group[metric].astype(float)
                parts.append(group.assign(run=name, metric=metric, value=values)
                             [["run", "workload", "label", "metric", "step", "value"]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _keyed(tables: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """Each run's rows with the key cells match on: the match key (the spec without its
    seeds), with the seeds added where one run holds several cells of one match key (a
    resume with more seeds), so that different cells never pool."""
    seeds = [t.groupby("cell_id")["seed"].agg(lambda s: ",".join(map(str, sorted(s))))
             for t in tables]
    ambiguous = set().union(*(set(t.drop_duplicates("cell_id")["match_key"][
        t.drop_duplicates("cell_id")["match_key"].duplicated()]) for t in tables))
    return [t.assign(compare_key=[key + (f"|seeds {s[cell]}" if key in ambiguous else "")
                                  for key, cell in zip(t["match_key"], t["cell_id"])],
                     label=[label + (f" (seeds {s[cell]})" if key in ambiguous else "")
                            for label, key, cell in zip(t["label"], t["match_key"], t["cell_id"])])
            for t, s in zip(tables, seeds)]


def regressions(comparison: Comparison, pct: float, *, allow_failures: bool = False,
                allow_missing: bool = False) -> list[str]:
    """One line per cell where a later run is worse than the baseline: by more than pct%
    on the metric (its mean) or on speed (the ratio of median step times, beyond the
    chunks' noise: speed.py); with more seeds
    diverged, errored or timed out than the baseline (unless `allow_failures`); or missing
    a cell the baseline has (unless `allow_missing`)."""
    found = [f"{r.run}: {r.workload} x {r.label}: {reason}"
             for r in comparison.rows.itertuples()
             for reason in row_regressions(r, pct, allow_failures=allow_failures)]
    if not allow_missing:
        found += [f"{run}: {workload} x {label}: missing (the baseline has it; cells match on"
                  " everything but their seeds: steps, batch size, hyperparameters, schedule)"
                  for run, workload, label in comparison.missing]
    return found


def row_regressions(r, pct: float, *, allow_failures: bool = False) -> list[str]:
    """Why one row of `Comparison.rows` (a namedtuple) is a regression; [] when it is none."""
    found = []
    if r.not_done_b > r.not_done_a and not allow_failures:
        found.append(f"{r.not_done_b} seed(s) not done ({r.statuses_b}); the baseline had"
                     f" {r.not_done_a}")
    worse = {"max": -r.change_pct, "min": r.change_pct}.get(r.better, math.nan)
    if np.isfinite(worse) and worse > pct:
        found.append(f"{r.column} {r.mean_a:.4g} -> {r.mean_b:.4g} ({r.change_pct:+.2f}%,"
                     f" p={r.p:.3g})")
    pace = speed_of(r)
    if pace.regression(pct):
        found.append(f"speed {pace.describe()} ({(pace.ratio - 1) * 100:+.1f}%)")
    return found


def speed_of(r) -> speed.Speed:
    """The speed figures of one row of `Comparison.rows` (a namedtuple)."""
    return speed.Speed(r.speed_ratio, r.speed_low, r.speed_high, r.chunks_a, r.chunks_b)


def _statuses(rows: pd.DataFrame) -> str:
    counts = rows["status"].value_counts()
    return ", ".join(f"{n} {status}" for status, n in counts.items())


def metrics_offered(tables: list[pd.DataFrame]) -> list[str]:
    """`target`, `best_target`, `final_train_loss`, then every final metric column some
    cell of every run holds."""
    held = [set(c for c in t.columns if is_metric("runs", c) and t[c].notna().any())
            for t in tables]
    return [*FIXED_METRICS, *sorted(set.intersection(*held))]


def _column(row, metric: str) -> str:
    return f"final_test_{row['target_metric'].removeprefix('val_')}" if metric == TARGET else metric


def direction(row, column: str) -> str | None:
    """Which way is better for `column` in this cell: the target's direction for the target
    metric, the workload's declaration for its other metrics, None for a value that is not
    a score (a position)."""
    if column == "best_target":
        return row["target_direction"]
    if column == "final_train_loss":
        return "min"
    metric = column.removeprefix("final_val_").removeprefix("final_test_")
    if metric == row["target_metric"].removeprefix("val_"):
        return row["target_direction"]
    return _declared(row).get(metric, "min" if metric == "loss" else None)


def _declares(row, column: str) -> bool:
    """Whether the cell's workload has `column` at all (the fixed metrics: every one)."""
    if not column.startswith(("final_val_", "final_test_")):
        return True
    declared = _declared(row)
    metric = column.removeprefix("final_val_").removeprefix("final_test_")
    return metric in declared or metric == "loss" or not declared


def _declared(row) -> dict:
    """The cell's workload's metrics and directions (runs.parquet's `metrics`); {} for a
    table without them."""
    return json.loads(row["metrics"]) if isinstance(row.get("metrics"), str) else {}


def _done(rows: pd.DataFrame, column: str) -> list[float]:
    if column not in rows:
        return []
    return rows.loc[rows["status"] == "done", column].astype(float).tolist()


def _names(runs: list[Results]) -> list[str]:
    names = [r.root.name for r in runs]
    if len(set(names)) < len(names):  # same folder names under different parents
        names = [str(r.root) for r in runs]
    return names
