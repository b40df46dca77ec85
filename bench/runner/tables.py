"""runs.parquet from the cell records: one row per cell x seed, every column declared in
bench/runner/schema.py. Time to target is computed here, once, by the report's own rules
(bench/report/analysis.py), and stored; nothing downstream computes it again."""
from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from bench.report.analysis import target_of, times_to_target
from bench.runner import schema

def runs_table(pairs: list[tuple[dict[str, Any], pd.DataFrame]]) -> pd.DataFrame:
    """(cell record, its curves) pairs -> runs.parquet."""
    return schema.frame([row for record, curves in pairs for row in run_rows(record, curves)],
                        "runs")


def run_rows(record: dict[str, Any], curves: pd.DataFrame) -> list[dict[str, Any]]:
    cell = cell_columns(record)
    timings = {name: _number(record["timings"].get(name))
               for name in schema.names(schema.RUNS, "timings")}
    usage = usage_columns(record)
    target = target_of(cell)
    by_seed = dict(tuple(curves.groupby("seed"))) if len(curves) else {}
    # the workload's metrics: what its curves hold (an errored cell's may hold none)
    final = ["train_loss", "val_loss", "test_loss",
             *(c for c in curves.columns if schema.is_metric("curves", c)
               and c not in ("val_loss", "test_loss"))]
    best = max if target.direction == "max" else min
    rows = []
    for seed in record["seeds"]:
        curve = by_seed.get(seed["seed"], curves.iloc[:0]).sort_values("step")
        last = curve.iloc[-1] if len(curve) else None
        rows.append({
            **cell, **timings, **usage,
            "seed": seed["seed"], "status": seed["status"], "diverged_step": seed["diverged_step"],
            **{f"final_{m}": float(last[m]) if last is not None else math.nan for m in final},
            "best_target": (float(best(curve[target.metric])) if len(curve)
                            and curve[target.metric].notna().any() else math.nan),
            # AlgoPerf's clock runs through getting the executables, compiled or loaded
            **times_to_target(curve, target, timings["compile_s"]
                              + np.nan_to_num(timings["compile_cached_s"])),
        })
    return rows


def cell_columns(record: dict[str, Any]) -> dict[str, Any]:
    """The columns every seed of a cell shares: what it is, and what it aimed at."""
    spec = record["spec"]
    tuning = spec.get("tuning", {})
    return {
        "cell_id": record["id"], "match_key": record["match_key"], "workload": spec["workload"],
        "optimizer": spec["optimizer"], "label": record["label"],
        "hparams": json.dumps(spec["hparams"], sort_keys=True), "steps": spec["steps"],
        "eval_every": spec["eval_every"], "batch_size": spec["batch_size"],
        "schedule": record["schedule"], "role": tuning.get("role", "oneshot"),
        "trial": tuning.get("trial"), "budget": tuning.get("budget"),
        "seeds_in_batch": len(record["seeds"]), "target_metric": spec["target"]["metric"],
        "target_value": spec["target"]["value"], "target_direction": spec["target"]["direction"],
        "metrics": json.dumps(record.get("metrics", {}), sort_keys=True),
        "steps_trained": record["steps_trained"], "error": record.get("error") or "",
    }


def usage_columns(record: dict[str, Any]) -> dict[str, Any]:
    """A cell record's usage, copied by name, with the ratios derived from it (NaN when
    unknown)."""
    usage = record["usage"]
    columns = {name: _number(usage.get(name)) for name in schema.names(schema.RUNS, "usage")
               if name != "missing"}
    timings = record["timings"]
    train_s, step_s = _number(timings.get("train_s")), _number(timings.get("step_time_median_s"))
    achieved = (columns["flops_per_step"] * len(record["seeds"]) * record["steps_trained"] / train_s
                if train_s > 0 else math.nan)
    columns.update(
        missing=json.dumps(usage.get("missing", {}), sort_keys=True),
        state_to_param=(columns["state_bytes"] / columns["param_bytes"]
                        if columns["param_bytes"] else math.nan),
        update_share=columns["update_s"] / step_s if step_s > 0 else math.nan,
        achieved_flops_per_s=achieved,
        mfu=achieved / columns["peak_flops"] if columns["peak_flops"] > 0 else math.nan,
    )
    return columns


def _number(value: Any) -> float:
    return math.nan if value is None else float(value)
