"""Every column of runs.parquet and curves.parquet, declared once: name, type, unit, doc.

The store builds its tables through `frame`, which refuses a row with a column missing or
undeclared; results/README.md holds `markdown(...)` of these lists verbatim (a test checks
it, and `python -m bench.runner.schema` prints them). Adding a column is one line here, its
value where it is made, and the README regenerated.

`source` says where a value comes from: `timings` and `usage` columns are copied by name
from the cell record's Timings and Usage (bench/records.py); the rest are made by the store.

Each workload declares its own metrics (workloads/registry.py): every workload has `loss`,
declared below; the others (`accuracy`, `excess_loss`, `suboptimality`, ...) are columns
named by a pattern (`METRIC_COLUMNS`), one per metric and split, float, after the declared
ones. A run mixing workloads holds the union; a metric a workload lacks is NaN.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from typing import Literal

import pandas as pd

SCHEMA_VERSION = 3  # the layout of a results folder; bump when a column changes meaning

Source = Literal["cell", "seed", "metric", "timings", "usage", "derived", "curve"]
_PANDAS = {"string": "object", "int": "int64", "int or null": "Int64", "float": "float64"}


@dataclass(frozen=True)
class Column:
    name: str
    dtype: Literal["string", "int", "int or null", "float"]
    unit: str
    doc: str
    source: Source


def _columns(source: Source, *specs: tuple[str, str, str, str]) -> list[Column]:
    return [Column(name, dtype, unit, doc, source) for name, dtype, unit, doc in specs]


RUNS: list[Column] = [
    *_columns("cell",
        ("cell_id", "string", "", "hash of everything that decides the cell's numbers (spec, program layout, code, library versions); names `cells/<id>.*`"),
        ("match_key", "string", "", "hash of the spec without its seeds: `optbench compare` matches cells across runs by it"),
        ("workload", "string", "", "workload name (`optbench list workloads`)"),
        ("optimizer", "string", "", "registered optimizer name"),
        ("label", "string", "", "optimizer name plus the hyperparameters the matrix set, the tuning role and the schedule, e.g. `optax:sgd(momentum=0.9)`"),
        ("hparams", "string", "", "JSON object of every hyperparameter value used"),
        ("steps", "int", "steps", "step budget"),
        ("eval_every", "int", "steps", "evaluation cadence (the length of one compiled chunk)"),
        ("batch_size", "int", "examples", "minibatch size, sampled uniformly with replacement each step"),
        ("schedule", "string", "", "the learning-rate schedule: `constant`, or e.g. `wsd(decay=0.2, warmup=0.05)` (fractions of the steps)"),
        ("role", "string", "", "`oneshot` (registered defaults, or what the matrix set), `trial` (a tuning trial) or `tuned` (the selected trial rerun with every seed)"),
        ("trial", "int or null", "", "the trial's index in the quasi-random sequence (for `trial` and `tuned` rows)"),
        ("budget", "int or null", "trials", "the matrix's tuning budget (for `trial` and `tuned` rows)"),
        ("seeds_in_batch", "int", "", "how many seeds the cell has (they train together in its program)"),
        ("target_metric", "string", "", "the workload's target metric (a curve column, e.g. `val_accuracy`)"),
        ("target_value", "float", "", "the value of `target_metric` the target asks for"),
        ("target_direction", "string", "", "`max` (reached at >= `target_value`, higher is better) or `min` (<=, lower is better)"),
        ("metrics", "string", "", "JSON object: each metric the workload declares and which way is better (`min`, `max`, or null for a value recorded but never scored, such as a position)"),
        ("steps_trained", "int", "steps", "steps the cell ran (less than `steps` if every seed diverged)"),
        ("error", "string", "", "traceback when `status` is `error`, else empty"),
    ),
    *_columns("seed",
        ("seed", "int", "", "seed for the initial parameters and the minibatch order"),
        ("status", "string", "", "`done`, `diverged` (loss became NaN/inf), `error` (the cell raised; `error` holds the traceback) or `timeout` (stopped at `--cell-timeout`)"),
        ("diverged_step", "int or null", "step", "first step whose training loss was not finite"),
    ),
    *_columns("metric",
        ("final_train_loss", "float", "", "mean minibatch loss over the last chunk"),
        ("final_val_loss", "float", "", "the workload's loss on the validation split at the last eval point (cross-entropy in nats for classifiers)"),
        ("final_test_loss", "float", "", "the workload's loss on the test split at the last eval point"),
        ("best_target", "float", "", "the best value of the target metric over the eval points (highest for `max`, lowest for `min`)"),
        ("target_step", "float", "step", "time to target in steps, interpolated between the eval points around the first crossing (bench/report/analysis.py); NaN if never reached"),
        ("target_seconds", "float", "s", "the same crossing in training seconds (`train_seconds`, compile and eval excluded); NaN if never reached"),
        ("algoperf_step", "float", "step", "AlgoPerf's convention: the step of the first evaluation that reaches the target, no interpolation; NaN if never"),
        ("algoperf_seconds", "float", "s", "AlgoPerf's convention: training seconds at that evaluation plus the program's compile time, executables loaded from the compilation cache included (AlgoPerf's clock runs through compilation, and stops for evaluation); NaN if never"),
    ),
    *_columns("timings",
        ("data_s", "float", "s", "loading the dataset (first program using it) and moving it to the device"),
        ("setup_s", "float", "s", "initialising parameters and optimizer state, tracing the step for its FLOP count"),
        ("compile_s", "float", "s", "AOT `lower().compile()` of the train chunk(s) and the eval function; executables loaded from the persistent compilation cache are not in it"),
        ("compile_cached_s", "float", "s", "the same executables loaded from JAX's persistent compilation cache (`$OPTBENCH_CACHE/jax`) instead of compiled; NaN in folders made before it was recorded"),
        ("train_s", "float", "s", "sum of chunk times; each chunk ends with `block_until_ready`"),
        ("eval_s", "float", "s", "time spent evaluating between chunks (its own clock)"),
        ("probe_s", "float", "s", "timing the optimizer update alone after training (its compile included)"),
        ("total_s", "float", "s", "wall-clock of the whole program; data + setup + compile + train + eval + probe leave a few ms of bookkeeping"),
        ("step_time_median_s", "float", "s", "median over chunks of chunk time / chunk steps"),
        ("step_time_iqr_s", "float", "s", "interquartile range of the same per-chunk step times"),
        ("steps_per_s", "float", "1/s", "steps trained / `train_s` (all members advance together)"),
    ),
    *_columns("usage",
        ("trials_in_program", "int", "", "hyperparameter trials trained together in the cell's compiled program (part of the cell's identity; their timings are shared)"),
        ("devices", "int", "", "local devices the program's trials x seeds were split over (the most that divide them evenly)"),
        ("compiles", "int", "", "executables compiled for the program's training and evaluation (one per chunk length, plus eval)"),
        ("compile_cache_hits", "int or null", "", "of those, how many came from the persistent compilation cache; null in folders made before it was recorded"),
        ("param_count", "float", "", "one seed's parameters, as a count of scalars (what a width changes)"),
        ("param_bytes", "float", "bytes", "one seed's parameters"),
        ("state_bytes", "float", "bytes", "one seed's optimizer state (Adam: 2x the parameters plus a step counter)"),
        ("update_s", "float", "s", "the optimizer update plus `apply_updates` alone, all members vmapped, per step: median of 3 runs of a 10-step compiled scan on the cell's parameter shapes, with a quadratic stand-in objective"),
        ("flops_per_step", "float", "FLOP", "one seed, one train step (forward, backward, update), from XLA's cost analysis of the training chunk (of the compiled one where the backend analyses no lowering, as CUDA's does); XLA counts a loop's body once, so a model with a `lax.scan` of its own (mnist1d-gru's time loop) is undercounted by that loop's length on its sequential part"),
        ("peak_flops", "float", "FLOP/s", "the device's dense float32 (TF32) peak from `bench/train/usage.py`; NaN when unknown (CPUs, unlisted GPUs)"),
        ("peak_device_bytes", "float", "bytes", "`memory_stats()[\"peak_bytes_in_use\"]` of device 0, the process's peak so far; NaN where the backend keeps no memory stats (CPU)"),
        ("peak_rss_bytes", "float", "bytes", "peak resident memory of the process so far (`getrusage`)"),
        ("cpu_util_mean", "float", "%", "mean process CPU utilisation while training, sampled every 0.1 s by psutil (100 = one core busy)"),
        ("rss_sampled_peak_bytes", "float", "bytes", "highest resident memory sampled while the program trained (psutil)"),
        ("device_util_mean", "float", "%", "mean GPU utilisation while training, sampled every 0.1 s by NVML; NaN without an NVIDIA GPU"),
        ("device_util_max", "float", "%", "highest sampled GPU utilisation"),
        ("device_mem_peak_bytes", "float", "bytes", "GPU memory in use (whole device, NVML) at its highest sample"),
        ("usage_samples", "int", "", "how many times the sampler read the counters while the program trained"),
        ("missing", "string", "", "JSON object: each usage figure the machine could not give, and why"),
    ),
    *_columns("derived",
        ("state_to_param", "float", "", "`state_bytes / param_bytes`"),
        ("update_share", "float", "fraction", "`update_s / step_time_median_s`: the optimizer's share of a train step"),
        ("achieved_flops_per_s", "float", "FLOP/s", "`flops_per_step` x seeds x steps trained / `train_s`"),
        ("mfu", "float", "fraction", "`achieved_flops_per_s / peak_flops`; NaN when the peak is unknown"),
    ),
]

CURVES: list[Column] = _columns(
    "curve",
    ("cell_id", "string", "", "as in runs.parquet"),
    ("seed", "int", "", "as in runs.parquet"),
    ("step", "int", "step", "steps trained when this point was evaluated"),
    ("train_seconds", "float", "s", "training time so far (sum of chunk times; compile and eval excluded)"),
    ("train_loss", "float", "", "mean minibatch loss over the chunk that ended at `step` (the workload's loss: cross-entropy in nats for classifiers)"),
    ("val_loss", "float", "", "the workload's loss on the validation split (summed on the device, divided by the example count in float64)"),
    ("test_loss", "float", "", "the workload's loss on the test split"),
)

# The columns of the workloads' other metrics, by table: `val_<metric>` and `test_<metric>` in
# curves.parquet (e.g. `val_accuracy`: correct predictions counted as integers on the
# device, divided by the example count in float64), `final_val_<metric>` and
# `final_test_<metric>` (the last eval point) in runs.parquet.
METRIC_COLUMNS = {"runs": re.compile(r"final_(val|test)_[a-z][a-z0-9_]*"),
                  "curves": re.compile(r"(val|test)_[a-z][a-z0-9_]*")}
TABLES = {"runs": RUNS, "curves": CURVES}


class SchemaError(RuntimeError):
    """A table row that does not match the declared columns: a bug, not bad input."""


def names(columns: list[Column], source: Source | None = None) -> list[str]:
    return [c.name for c in columns if source is None or c.source == source]


def frame(rows: list[dict] | dict[str, list], table: str) -> pd.DataFrame:
    """A DataFrame of `table` ("runs" or "curves"): exactly its declared columns, in order,
    of their declared types, then its metric columns (float, sorted by name)."""
    columns = TABLES[table]
    data = pd.DataFrame(rows)
    declared = names(columns)
    metrics = sorted(c for c in data.columns if c not in declared and is_metric(table, c))
    if len(data) or len(data.columns):
        extra = set(data.columns) - set(declared) - set(metrics)
        missing = set(declared) - set(data.columns)
        if extra or missing:
            raise SchemaError(f"columns not declared in bench/runner/schema.py: {sorted(extra)};"
                              f" declared but not made: {sorted(missing)}")
    data = data.reindex(columns=declared + metrics)
    return data.astype({**{c.name: _PANDAS[c.dtype] for c in columns},
                        **{name: "float64" for name in metrics}})


def is_metric(table: str, name: str) -> bool:
    return bool(METRIC_COLUMNS[table].fullmatch(name))


# Columns added within this schema version: a folder written before them lacks them, and
# reads with them empty (NaN / null), not as damaged. Each new column is nullable for this.
ADDED_LATER = {"runs": ("compile_cached_s", "compile_cache_hits"), "curves": ()}


def has_layout(table: str, column_names: list[str]) -> bool:
    """Whether a stored table's columns are this schema's: the declared ones in order (those
    ADDED_LATER may be absent, all together), then metric columns only."""
    declared = names(TABLES[table])
    if not set(ADDED_LATER[table]) & set(column_names):
        declared = [c for c in declared if c not in ADDED_LATER[table]]
    rest = column_names[len(declared):]
    return column_names[:len(declared)] == declared and all(is_metric(table, c) for c in rest)


def completed(data: pd.DataFrame, table: str) -> pd.DataFrame:
    """A stored table with the ADDED_LATER columns it lacks, empty, in their places."""
    missing = [c for c in ADDED_LATER[table] if c not in data.columns]
    if not missing:
        return data
    declared = names(TABLES[table])
    data = data.reindex(columns=declared + [c for c in data.columns if c not in declared])
    kinds = {c.name: _PANDAS[c.dtype] for c in TABLES[table] if c.name in missing}
    return data.astype(kinds)


# what a value may be before the cast to its column's dtype (ints may arrive as floats)
_PYTHON = {"string": (str,), "int": (int, float), "int or null": (int, float, type(None)),
           "float": (int, float, type(None))}


def typed(rows: list[dict], table: str) -> bool:
    """Whether every value in `rows` is of its column's declared type (bools are not
    numbers): a record with `"label": 12345` must not reach a table."""
    kinds = {c.name: _PYTHON[c.dtype] for c in TABLES[table]}
    return all(isinstance(value, kinds.get(name, _PYTHON["float"])) and not isinstance(value, bool)
               for row in rows for name, value in row.items()
               if name in kinds or is_metric(table, name))


def markdown(columns: list[Column]) -> str:
    lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    lines += [f"| `{c.name}` | {c.dtype} | {c.unit} | {c.doc} |" for c in columns]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write("## runs.parquet\n\n" + markdown(RUNS) + "\n## curves.parquet\n\n"
                     + markdown(CURVES))
