"""The report's tables, as render.Tables: the same rows for report.html, report.md and the
terminal summary, so all three say the same numbers under the same labels."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from bench.report import analysis
from bench.report.aliases import hyperparameters
from bench.report.analysis import target_of
from bench.report.render import Table, interval, sort_key


def fmt_time(value: float, unit: str) -> str:
    if not np.isfinite(value):
        return "not reached"
    return f"{value:,.0f}" if unit == "steps" else f"{value:.3g} s"


def fmt_step_time(seconds: float) -> str:
    """A step time in the unit that keeps it short: '26 µs', '99.4 ms', '1.23 s'."""
    if not np.isfinite(seconds):
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def fmt_bytes(value: float) -> str:
    if not np.isfinite(value):
        return "—"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return ""


def workload_table(cells: pd.DataFrame, workload: str, *, brief: bool = False) -> Table:
    """One workload's cells ranked by the final value of the target metric (validation)."""
    frame = cells[cells["workload"] == workload]
    target = target_of(frame.iloc[0])
    metric = "final_" + target.metric
    header = ["rank", "optimizer", f"final {target.metric} (95% CI)",
              f"final test_{target.metric.removeprefix('val_')} (95% CI)",
              f"steps to {target.describe()} (interpolated)",
              "seconds to target (interpolated)", "reached", "step time",
              "done / diverged / error"]
    extras = [] if brief else [
        (column, title) for column, title in (
            ("algoperf_seconds", "AlgoPerf seconds (first eval, + compile)"),
            ("state_bytes", "optimizer state"), ("update_share", "update share of step"),
            ("step_time_vs_sgd", "step time vs SGD"))
        if column in frame and np.isfinite(frame[column]).any()]
    header[8:8] = [title for _, title in extras]
    rows = []
    for r in frame.to_dict("records"):
        row = [
            _rank(r), (r["label"], None),
            (interval(r[metric], r[metric + "_low"], r[metric + "_high"]), sort_key(r[metric])),
            (interval(r["test_target"], r["test_target_low"], r["test_target_high"]),
             sort_key(r["test_target"])),
            (fmt_time(r["target_step"], "steps"), sort_key(r["target_step"])),
            (fmt_time(r["target_seconds"], "s"), sort_key(r["target_seconds"])),
            (f"{r['reached']}/{r['seeds']}", r["reached"]),
            (fmt_step_time(r["step_time_s"]) + _iqr(r), sort_key(r["step_time_s"])),
            (f"{r['done']} / {r['diverged']} / {r['error']}", r["done"]),
        ]
        row[8:8] = [_extra(column, r[column], r) for column, _ in extras]
        rows.append(row)
    return Table(header, rows, title=workload)


def _rank(r: dict) -> tuple[str, float]:
    """'2', or '=2' when the cell's interval overlaps a better one's (analysis.tied_ranks)."""
    rank = r.get("tied_rank", r["rank"])
    if not (np.isfinite(rank) and np.isfinite(r.get("score", rank))):  # no finished seed
        return "—", sort_key(rank)
    return ("=" if r.get("tied") else "") + f"{rank:g}", rank


def _iqr(r: dict) -> str:
    iqr = r.get("step_time_iqr_s", math.nan)
    # the IQR itself, not '± half of it': chunk times are skewed (a slow chunk on a shared
    # machine), and '40 µs ± 352 µs' would read as a negative step time
    return f" (IQR {fmt_step_time(iqr)})" if np.isfinite(iqr) and iqr > 0 else ""


def _extra(column: str, value: float, r: dict) -> tuple[str, float]:
    if not np.isfinite(value):
        return ("not reached" if column == "algoperf_seconds" else "—"), sort_key(value)
    if column == "algoperf_seconds":
        return fmt_time(value, "s"), value
    if column == "state_bytes":
        return fmt_bytes(value), value
    if column == "update_share":
        return _update_share(value, r), value
    low, high = r.get("step_time_vs_sgd_low", math.nan), r.get("step_time_vs_sgd_high", math.nan)
    if not (np.isfinite(low) and np.isfinite(high)) or low == high:
        return f"{value:.2f}x", value
    noise = ", within noise" if analysis.within_noise(low, high) else ""
    return f"{value:.2f}x [{low:.2f}, {high:.2f}]{noise}", value


def _update_share(share: float, r: dict) -> str:
    """The update's share with the step time's spread: update_s over the step's high and
    low ends."""
    update, step, iqr = (r.get(k, math.nan) for k in ("update_s", "step_time_s", "step_time_iqr_s"))
    if not all(np.isfinite(v) for v in (update, step, iqr)) or iqr <= 0 or step - iqr / 2 <= 0:
        return f"{100 * share:.0f}%"
    return (f"{100 * share:.0f}% [{100 * update / (step + iqr / 2):.0f},"
            f" {100 * update / (step - iqr / 2):.0f}]")


def summary_table(summary: pd.DataFrame) -> Table:
    header = ["optimizer", "AlgoPerf score", "mean rank", "workloads reached",
              "seeds done / diverged / error"]
    rows = [[(r.label, None), (f"{r.score:.3f}" if math.isfinite(r.score) else "—", sort_key(r.score)),
             (f"{r.mean_rank:.2f}", r.mean_rank), (f"{r.reached}/{r.workloads}", r.reached),
             (f"{r.seeds_done} / {r.seeds_diverged} / {r.seeds_error}", r.seeds_done)]
            for r in summary.itertuples()]
    return Table(header, rows, title="Across workloads")


def tuning_table(tuning: pd.DataFrame) -> Table:
    header = ["workload", "optimizer", "untuned (95% CI)", "tuned (95% CI)", "tuned hyperparameters"]
    rows = [[(r.workload, None), (r.optimizer, None),
             (interval(r.oneshot, r.oneshot_low, r.oneshot_high), sort_key(r.oneshot)),
             (interval(r.tuned, r.tuned_low, r.tuned_high), sort_key(r.tuned)),
             (hyperparameters(r.tuned_hparams), None)] for r in tuning.itertuples()]
    return Table(header, rows, title="Untuned vs tuned (final target metric)")
