"""Statistics for reports and comparisons, computed from the results tables alone (no JAX).

Rules, stated once (the report repeats them):
- A metric's mean and 95% confidence interval are over the seeds that finished (`done`);
  the interval is Student's t on n - 1 degrees of freedom, and none is given for n = 1.
  Diverged and errored seeds are counted and shown, never averaged in.
- Time to target, per seed: the target is crossed where the metric's curve first reaches
  it; between the last evaluation short of the target and the first one reaching it, the
  step and the training seconds are interpolated linearly. When the first evaluation
  already reaches it, that evaluation's step and seconds are used (there is no evaluation
  at step 0 to interpolate from). A seed that never reaches it has no time.
  This is computed once per seed, when the store builds runs.parquet (`target_step`,
  `target_seconds`); everything else reads the stored figures.
- AlgoPerf's convention is stored beside it (`algoperf_step`, `algoperf_seconds`): the
  first evaluation that reaches the target, no interpolation, and the seconds include the
  program's compile time, as AlgoPerf's submission clock does.
- Time to target, per cell: the median over seeds, an unreached seed counting as
  infinitely slow, so a cell is "not reached" when half or more of its seeds never got
  there (with an even count, the median of the middle two is then infinite).
- Benchmark score: exactly MLCommons AlgoPerf's (bench/report/algoperf.py), over each
  cell's median `algoperf_seconds`.
- Which way is better comes from the stored `target_direction` (the workload's Target),
  never from a metric's name.
- Ties within noise: in a workload, cells are taken best first; a cell whose 95% interval
  overlaps the interval of its group's best cell joins that group and shares its rank
  (`tied_rank`). With one seed there is no interval, and only equal values tie.
- Step-time spread: the interquartile range over chunks (`step_time_iqr_s`), drawn centred
  on the median; a ratio's interval divides the low end by the other's high end and back,
  so a ratio whose interval holds 1 is within noise.
"""
from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd

from bench.records import Target

SGD_LABELS = ("sgd", "optax:sgd")  # the baseline of "step time relative to SGD"
TIME_COLUMNS = ("target_step", "target_seconds", "algoperf_step", "algoperf_seconds")


def target_of(row) -> Target:
    """The Target a runs.parquet row (or a cell_table row) was measured against."""
    return Target(row["target_metric"], float(row["target_value"]), row["target_direction"])


def mean_ci(values, level: float = 0.95, column: str = "") -> tuple[float, float, float]:
    """(mean, low, high) over the finite values; low/high NaN for fewer than two. The
    t-interval is cut to the range `column` can take (an accuracy's [0, 1]): three seeds at
    0.99, 0.93 and 0.88 would otherwise give an accuracy up to 1.08."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan
    half = float(_t_quantile((1 + level) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    low, high = value_range(column)
    return mean, max(mean - half, low), min(mean + half, high)


def value_range(column: str) -> tuple[float, float]:
    """The values a metric column can take: an accuracy is a fraction; a loss is left
    unbounded (a plugin workload's loss, a negative log-likelihood, may go below 0)."""
    return (0.0, 1.0) if column.endswith("accuracy") else (-math.inf, math.inf)


# Student's t from scipy.special, not scipy.stats (the same functions underneath): importing
# scipy.stats costs ~0.75 s more on 2 cores, paid by every `optbench run` and `report`, and
# many times over by the test suite's processes
def _t_quantile(q: float, dof: float) -> float:
    """The `q` quantile of Student's t with `dof` degrees of freedom (scipy.stats.t.ppf)."""
    from scipy.special import stdtrit

    return float(stdtrit(dof, q))


def _t_upper_tail(x: float, dof: float) -> float:
    """P(T > x) for Student's t with `dof` degrees of freedom (scipy.stats.t.sf)."""
    from scipy.special import stdtr

    return float(stdtr(dof, -x))


def welch(a, b, level: float = 0.95, column: str = "") -> tuple[float, float, float, float]:
    """(mean(b) - mean(a), CI low, CI high, two-sided p) by Welch's t-test; NaN CI and p
    when either side has fewer than two values. When neither side has any spread the
    interval is the difference itself, and p is what scipy.stats.ttest_ind gives: 0 when
    the means differ, NaN when they are equal. The interval is cut to the differences
    `column` can show (two accuracies differ by at most 1: two seeds a side at 0.91 and
    0.84 against 0.95 and 0.35 gave -0.23 [-3.83, +3.37])."""
    a = np.asarray([v for v in a if np.isfinite(v)], dtype=float)
    b = np.asarray([v for v in b if np.isfinite(v)], dtype=float)
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    diff = float(b.mean() - a.mean())
    if a.size < 2 or b.size < 2:
        return diff, math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:
        return diff, diff, diff, (0.0 if diff else math.nan)
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = float(_t_quantile((1 + level) / 2, dof) * math.sqrt(va + vb))
    p = 2 * _t_upper_tail(abs(diff) / math.sqrt(va + vb), dof)
    low, high = value_range(column)
    return diff, max(diff - half, low - high), min(diff + half, high - low), p


def crossing(curve: pd.DataFrame, target: Target) -> tuple[float, float]:
    """(step, train seconds) where one seed's `curve` first reaches `target` (see the module
    docstring for the interpolation rule); NaN, NaN when it never does."""
    hits, curve = _hits(curve, target)
    if not hits.size:
        return math.nan, math.nan
    i = hits[0]
    values = curve[target.metric].to_numpy(dtype=float)
    steps, seconds = curve["step"].to_numpy(float), curve["train_seconds"].to_numpy(float)
    if i == 0 or not np.isfinite(values[i - 1]):
        return steps[i], seconds[i]
    fraction = (target.value - values[i - 1]) / (values[i] - values[i - 1])
    return (steps[i - 1] + fraction * (steps[i] - steps[i - 1]),
            seconds[i - 1] + fraction * (seconds[i] - seconds[i - 1]))


def first_reaching(curve: pd.DataFrame, target: Target) -> tuple[float, float]:
    """AlgoPerf's convention: (step, train seconds) of the first evaluation that reaches
    `target`, no interpolation; NaN, NaN when none does."""
    hits, curve = _hits(curve, target)
    if not hits.size:
        return math.nan, math.nan
    row = curve.iloc[hits[0]]
    return float(row["step"]), float(row["train_seconds"])


def times_to_target(curve: pd.DataFrame, target: Target, compile_s: float) -> dict[str, float]:
    """The stored time-to-target columns of one seed (TIME_COLUMNS)."""
    step, seconds = crossing(curve, target)
    first_step, first_seconds = first_reaching(curve, target)
    return {"target_step": step, "target_seconds": seconds, "algoperf_step": first_step,
            "algoperf_seconds": first_seconds + compile_s}


def _hits(curve: pd.DataFrame, target: Target) -> tuple[np.ndarray, pd.DataFrame]:
    if not len(curve) or target.metric not in curve:
        return np.array([], dtype=int), curve
    curve = curve.sort_values("step")
    return np.flatnonzero(target.reached(curve[target.metric].to_numpy(dtype=float))), curve


def median_time(times) -> float:
    """Median over seeds with an unreached seed (NaN) counting as infinite."""
    x = np.asarray([t if np.isfinite(t) else np.inf for t in times], dtype=float)
    return float(np.median(x)) if x.size else math.inf


def workload_order(names) -> list[str]:
    """Workload names in reading order: numbers compare as numbers, so `mlp@w64` comes
    before `mlp@w256`."""
    return sorted({str(n) for n in names},
                  key=lambda n: [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", n)])


def test_column(target_metric: str) -> str:
    """The runs.parquet column of the target's metric on the test split:
    `val_accuracy` -> `final_test_accuracy`."""
    return "final_test_" + target_metric.removeprefix("val_")


def cell_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per cell (runs grouped by cell_id, never by label): statuses, metrics with
    CIs, median times to target, speed, state memory, and the rank within the workload by
    the final value of its target metric (on the validation split)."""
    rows = []
    runs = label_cells(runs)
    for cell_id, group in runs.groupby("cell_id", sort=False):
        first = group.iloc[0]
        done = group[group["status"] == "done"]
        metric = "final_" + first["target_metric"]
        test_metric = test_column(first["target_metric"])
        row = {
            "cell_id": cell_id, "workload": first["workload"], "label": first["label"],
            "full_label": first.get("full_label", first["label"]),  # aliases.assign's
            "trial": first.get("trial", math.nan),
            "optimizer": first["optimizer"], "role": first["role"], "schedule": first["schedule"],
            "target_metric": first["target_metric"], "target_value": float(first["target_value"]),
            "target_direction": first["target_direction"],
            "seeds": len(group), "done": len(done),
            "diverged": int((group["status"] == "diverged").sum()),
            "error": int(group["status"].isin(["error", "timeout"]).sum()),
            "reached": int(np.isfinite(group["target_step"]).sum()),
            **{column: median_time(group[column]) for column in TIME_COLUMNS},
            "step_time_s": float(group["step_time_median_s"].median()),
            "step_time_iqr_s": (float(group["step_time_iqr_s"].median())
                                if "step_time_iqr_s" in group else math.nan),
            "steps_per_s": float(group["steps_per_s"].median()),
            "learning_rate": hparam(first["hparams"], "learning_rate"),
            "hparams": first["hparams"],
        }
        # a column no seed wrote is missing: where every seed of a classifier errored before
        # its first evaluation, runs.parquet has no accuracy column at all
        for column in dict.fromkeys((metric, test_metric, "final_test_loss", "best_target")):
            ranged = first["target_metric"] if column == "best_target" else column
            mean, low, high = (mean_ci(done[column], column=ranged) if column in done
                               else (math.nan, math.nan, math.nan))
            row.update({column: mean, f"{column}_low": low, f"{column}_high": high})
        row["score"] = row[metric]
        # the target's metric on the test split, under one name whatever the workload
        row.update({f"test_target{end}": row[test_metric + end] for end in ("", "_low", "_high")})
        for column in ("state_bytes", "state_to_param", "update_share", "update_s", "mfu",
                       "param_count"):
            row[column] = float(group[column].median()) if column in group else math.nan
        rows.append(row)
    table = pd.DataFrame(rows)
    if not len(table):
        return table
    for column in ("step_time_vs_sgd", "step_time_vs_sgd_low", "step_time_vs_sgd_high"):
        table[column] = math.nan  # DeepOBS's relative cost, where SGD ran too
    table["rank"] = math.nan
    table["tied_rank"] = math.nan
    table["tied"] = False
    for _, group in table.groupby("workload"):
        # an SGD cell whose every seed diverged trained a few steps in one chunk: its step
        # time is mostly the chunk's launch, no baseline to divide by
        sgd = group[group["optimizer"].isin(SGD_LABELS) & (group["label"] == group["optimizer"])
                    & (group["done"] > 0)]
        if len(sgd):
            ratio = ratio_interval(group, sgd.iloc[0])
            for column in ratio:
                table.loc[group.index, column] = ratio[column]
        ascending = group["target_direction"].iloc[0] == "min"
        table.loc[group.index, "rank"] = group["score"].rank(
            ascending=ascending, method="average", na_option="bottom")
        tied_rank, tied = tied_ranks(group, "final_" + group["target_metric"].iloc[0], ascending)
        table.loc[group.index, "tied_rank"] = tied_rank
        table.loc[group.index, "tied"] = tied
    table["tied"] = table["tied"].astype(bool)
    return table.sort_values(["workload", "rank"]).reset_index(drop=True)


def step_time_spread(cells: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """(low, high) of each cell's step time: the median -/+ half the IQR over chunks; the
    median itself where the IQR is unknown."""
    half = cells.get("step_time_iqr_s", pd.Series(math.nan, index=cells.index)).fillna(0) / 2
    return cells["step_time_s"] - half, cells["step_time_s"] + half


def ratio_interval(cells: pd.DataFrame, baseline) -> dict[str, pd.Series]:
    """Each cell's step time over `baseline`'s, with the widest interval their spreads allow."""
    low, high = step_time_spread(cells)
    base = pd.DataFrame([baseline])
    base_low, base_high = (float(v.iloc[0]) for v in step_time_spread(base))
    return {"step_time_vs_sgd": cells["step_time_s"] / float(baseline["step_time_s"]),
            "step_time_vs_sgd_low": low / base_high,
            "step_time_vs_sgd_high": high / base_low if base_low > 0 else pd.Series(
                math.inf, index=cells.index)}


def within_noise(low: float, high: float, value: float = 1.0) -> bool:
    """Whether an interval holds `value` (a ratio of 1: no difference)."""
    return bool(np.isfinite(low) and np.isfinite(high) and low <= value <= high)


TIE_RTOL = 1e-4  # values closer than this (relative) tie: below the tables' 4 significant digits


def tied_ranks(group: pd.DataFrame, column: str, ascending: bool) -> tuple[pd.Series, pd.Series]:
    """(rank, tied) per cell of one workload by `column` (its mean) and its 95% interval
    (`column`_low/_high): taken best first, a cell whose interval overlaps the interval of
    the current group's best cell joins that group and shares its rank; otherwise it starts
    a group at its own position. Cells with no value come last, untied. Each interval is
    widened by TIE_RTOL of its value: deterministic cells (a 2-D function, one seed) have
    none, and 17.90900 against 17.90901 is no difference a table could show."""
    values = group[column].astype(float)
    slack = TIE_RTOL * values.abs()
    low = group[column + "_low"].astype(float).fillna(values) - slack
    high = group[column + "_high"].astype(float).fillna(values) + slack
    order = values[np.isfinite(values)].sort_values(ascending=ascending, kind="stable").index
    rank = pd.Series(math.nan, index=group.index)
    tied = pd.Series(False, index=group.index)
    leader = None
    for position, i in enumerate(order, start=1):
        if leader is not None and low[i] <= high[leader] and low[leader] <= high[i]:
            rank[i] = rank[leader]
            tied[i] = tied[leader] = True
        else:
            leader, rank[i] = i, position
    rank[rank.isna()] = len(order) + 1
    return rank, tied


DISTINGUISHING = ("steps", "batch_size", "eval_every", "schedule", "hparams", "trial",
                  "trials_in_program")


def label_cells(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with labels made distinct per cell: where two cells of one workload share a
    label (a workload listed twice with other budgets, a resume with more seeds), what tells
    them apart is appended, e.g. 'adam (steps 150)' or 'adam (seeds 0,1,2)'. Different cells
    never pool in a table or a plot, and never look alike. Idempotent."""
    if not len(runs):
        return runs
    columns = [c for c in DISTINGUISHING if c in runs]  # a table built by hand may lack some
    cells = runs.groupby("cell_id", sort=False).agg(
        workload=("workload", "first"), label=("label", "first"),
        **{c: (c, "first") for c in columns}, seeds=("seed", lambda s: ",".join(map(str, sorted(s)))))
    labels = cells["label"].copy()
    for _, group in cells.groupby(["workload", "label"]):
        if len(group) < 2:
            continue
        differing = [c for c in [*columns, "seeds"] if group[c].astype(str).nunique() > 1]
        for cell_id, row in group.iterrows():
            parts = [f"{c} {row[c]}" for c in differing] or [cell_id[:8]]
            labels[cell_id] = f"{row['label']} ({', '.join(parts)})"
    clash = labels.groupby([cells["workload"], labels]).transform("size") > 1
    # built in Python: pandas 3.0.0 refuses object + str arrays, even when none clash
    labels[clash] = [f"{label} [{cell_id[:8]}]" for cell_id, label in labels[clash].items()]
    return runs.assign(label=runs["cell_id"].map(labels))


def time_matrix(cells: pd.DataFrame, column: str = "algoperf_seconds") -> pd.DataFrame:
    """label x workload of median times to target; inf where not reached or not run."""
    matrix = cells.pivot_table(index="label", columns="workload", values=column, aggfunc="first")
    return matrix.astype(float).fillna(np.inf)


def mean_rank(cells: pd.DataFrame) -> pd.Series:
    """Mean over workloads of the rank with ties within noise shared (`tied_rank`)."""
    column = "tied_rank" if "tied_rank" in cells else "rank"
    return cells.groupby("label")[column].mean().sort_values()


def hparam(hparams_json: str, name: str) -> float:
    """One numeric hyperparameter of a cell's `hparams` JSON (NaN when it has none)."""
    value = hparams_of(hparams_json).get(name)
    return float(value) if isinstance(value, (int, float)) else math.nan


def hparams_of(hparams) -> dict:
    """A cell's `hparams` JSON as a dict ({} when it is not one)."""
    try:
        values = json.loads(hparams)
    except (TypeError, ValueError):
        return {}
    return values if isinstance(values, dict) else {}
