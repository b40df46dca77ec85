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
- Time to target, per optimizer and workload (for performance profiles): the median over
  seeds, an unreached seed counting as infinitely slow, so more than half unreached means
  "not reached".
- Performance profile (Dolan & More, 2002; AlgoPerf, Dahl et al., 2023): for each workload,
  r = time / best time over optimizers; rho(tau) = share of workloads with r <= tau. The
  benchmark score is the area under rho over [1, tau_max] divided by tau_max - 1
  (tau_max = 4): 1 means fastest everywhere, 0 means never within 4x of the fastest.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
from scipy import stats

TAU_MAX = 4.0
SGD_LABELS = ("sgd", "optax:sgd")  # the baseline of "step time relative to SGD"


def higher_is_better(metric: str) -> bool:
    return not metric.endswith("loss")


def mean_ci(values, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) over the finite values; low/high NaN for fewer than two."""
    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size == 1:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def welch(a, b, level: float = 0.95) -> tuple[float, float, float, float]:
    """(mean(b) - mean(a), CI low, CI high, two-sided p) by Welch's t-test; NaN CI and p
    when either side has fewer than two values or both have no spread."""
    a = np.asarray([v for v in a if np.isfinite(v)], dtype=float)
    b = np.asarray([v for v in b if np.isfinite(v)], dtype=float)
    if a.size == 0 or b.size == 0:
        return math.nan, math.nan, math.nan, math.nan
    diff = float(b.mean() - a.mean())
    if a.size < 2 or b.size < 2:
        return diff, math.nan, math.nan, math.nan
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    if va + vb == 0:
        return diff, diff, diff, (1.0 if diff == 0 else 0.0)
    dof = (va + vb) ** 2 / (va ** 2 / (a.size - 1) + vb ** 2 / (b.size - 1))
    half = float(stats.t.ppf((1 + level) / 2, dof) * math.sqrt(va + vb))
    p = float(2 * stats.t.sf(abs(diff) / math.sqrt(va + vb), dof))
    return diff, diff - half, diff + half, p


def crossing(curve: pd.DataFrame, metric: str, target: float) -> tuple[float, float]:
    """(step, train seconds) where one seed's `curve` first reaches `target` (see the module
    docstring for the interpolation rule); NaN, NaN when it never does."""
    if not len(curve) or metric not in curve:
        return math.nan, math.nan
    curve = curve.sort_values("step")
    values = curve[metric].to_numpy(dtype=float)
    reached = values >= target if higher_is_better(metric) else values <= target
    hits = np.flatnonzero(reached)
    if not hits.size:
        return math.nan, math.nan
    i = hits[0]
    steps, seconds = curve["step"].to_numpy(float), curve["train_seconds"].to_numpy(float)
    if i == 0 or not np.isfinite(values[i - 1]):
        return steps[i], seconds[i]
    fraction = (target - values[i - 1]) / (values[i] - values[i - 1])
    return (steps[i - 1] + fraction * (steps[i] - steps[i - 1]),
            seconds[i - 1] + fraction * (seconds[i] - seconds[i - 1]))


def seed_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """runs plus the interpolated time to target of each seed (`tt_steps`, `tt_seconds`)."""
    runs = runs.copy()
    grouped = dict(tuple(curves.groupby(["cell_id", "seed"]))) if len(curves) else {}
    times = [crossing(grouped.get((row.cell_id, row.seed), curves.iloc[:0]),
                      row.target_metric, row.target_value) for row in runs.itertuples()]
    runs["tt_steps"] = [t[0] for t in times]
    runs["tt_seconds"] = [t[1] for t in times]
    return runs


def median_time(times) -> float:
    """Median over seeds with an unreached seed (NaN) counting as infinite."""
    x = np.asarray([t if np.isfinite(t) else np.inf for t in times], dtype=float)
    return float(np.median(x)) if x.size else math.inf


def cell_table(runs: pd.DataFrame, curves: pd.DataFrame) -> pd.DataFrame:
    """One row per workload x optimizer label: statuses, metrics with CIs, time to target,
    speed, state memory (when recorded), and the rank within the workload."""
    seeds = seed_table(runs, curves)
    rows = []
    for (workload, label), group in seeds.groupby(["workload", "label"], sort=False):
        done = group[group["status"] == "done"]
        metric = group["target_metric"].iloc[0]
        row = {
            "workload": workload, "label": label, "optimizer": group["optimizer"].iloc[0],
            "target_metric": metric, "target_value": float(group["target_value"].iloc[0]),
            "seeds": len(group), "done": int((group["status"] == "done").sum()),
            "diverged": int((group["status"] == "diverged").sum()),
            "error": int((group["status"] == "error").sum()),
            "reached": int(np.isfinite(group["tt_steps"]).sum()),
            "tt_steps": median_time(group["tt_steps"]),
            "tt_seconds": median_time(group["tt_seconds"]),
            "step_time_s": float(group["step_time_median_s"].median()),
            "steps_per_s": float(group["steps_per_s"].median()),
            "learning_rate": _hparam(group["hparams"].iloc[0], "learning_rate"),
        }
        for column in ("final_" + metric, "final_val_accuracy", "final_test_accuracy",
                       "final_test_loss", "best_val_accuracy"):
            mean, low, high = mean_ci(done[column]) if column in done else (math.nan,) * 3
            row.update({column: mean, f"{column}_low": low, f"{column}_high": high})
        for column in ("state_bytes", "state_to_param", "update_share", "mfu"):
            if column in group:  # absent from runs made before they were recorded
                row[column] = float(group[column].median())
        rows.append(row)
    table = pd.DataFrame(rows)
    if not len(table):
        return table
    table["step_time_vs_sgd"] = math.nan  # DeepOBS's relative cost, where SGD ran too
    for _, group in table.groupby("workload"):
        sgd = group[group["label"].isin(SGD_LABELS)]["step_time_s"]
        if len(sgd):
            table.loc[group.index, "step_time_vs_sgd"] = group["step_time_s"] / sgd.iloc[0]
    table["score"] = table.apply(lambda r: r["final_" + r["target_metric"]], axis=1)
    table["rank"] = math.nan
    for _, group in table.groupby("workload"):
        table.loc[group.index, "rank"] = group["score"].rank(
            ascending=not higher_is_better(group["target_metric"].iloc[0]), method="average",
            na_option="bottom")
    return table.sort_values(["workload", "rank"]).reset_index(drop=True)


def time_matrix(cells: pd.DataFrame, column: str = "tt_seconds") -> pd.DataFrame:
    """label x workload of median times to target; inf where not reached or not run."""
    matrix = cells.pivot_table(index="label", columns="workload", values=column, aggfunc="first")
    return matrix.astype(float).fillna(np.inf)


def performance_ratios(times: pd.DataFrame) -> pd.DataFrame:
    """Each time over the workload's best time; inf where not reached (or nobody did)."""
    best = times.min(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = (times / best).fillna(np.inf)
    ratios.loc[:, ~np.isfinite(best)] = np.inf
    return ratios


def performance_profile(times: pd.DataFrame, taus) -> pd.DataFrame:
    """label x tau: the share of workloads on which the label is within tau of the best."""
    ratios = performance_ratios(times)
    return pd.DataFrame({tau: (ratios <= tau).mean(axis=1) for tau in taus})


def benchmark_score(times: pd.DataFrame, tau_max: float = TAU_MAX) -> pd.Series:
    """The exact area under the step-function profile over [1, tau_max], over tau_max - 1."""
    ratios = performance_ratios(times)
    area = (tau_max - ratios.clip(lower=1.0)).clip(lower=0.0) / (tau_max - 1.0)
    return area.mean(axis=1).sort_values(ascending=False)


def mean_rank(cells: pd.DataFrame) -> pd.Series:
    return cells.groupby("label")["rank"].mean().sort_values()


def normalised_performance(cells: pd.DataFrame) -> pd.DataFrame:
    """label x workload in [0, 1]: 1 the workload's best final target metric, 0 its worst."""
    norm = pd.Series(math.nan, index=cells.index)
    for _, group in cells.groupby("workload"):
        score = group["score"] if higher_is_better(group["target_metric"].iloc[0]) else -group["score"]
        spread = score.max() - score.min()
        norm[group.index] = (score - score.min()) / spread if spread > 0 else 1.0
    return cells.assign(norm=norm).pivot_table(index="label", columns="workload", values="norm",
                                               aggfunc="first")


def _hparam(hparams_json: str, name: str) -> float:
    try:
        value = json.loads(hparams_json).get(name)
    except (TypeError, ValueError):
        return math.nan
    return float(value) if isinstance(value, (int, float)) else math.nan


def tuning_curves(runs: pd.DataFrame, orders: int = 200, seed: int = 0) -> pd.DataFrame:
    """Best validation target metric found after k trials, k = 1..budget, per workload and
    optimizer: the median and the 10-90% band over `orders` random orders of the trials
    (each trial scored by its mean over its finished seeds)."""
    if "role" not in runs:
        return pd.DataFrame()
    trials = runs[(runs["role"] == "trial") & (runs["status"] == "done")]
    rows = []
    rng = np.random.default_rng(seed)
    for (workload, optimizer), group in trials.groupby(["workload", "optimizer"]):
        metric = "final_" + group["target_metric"].iloc[0]
        scores = group.groupby("trial")[metric].mean().to_numpy()
        if not higher_is_better(metric):
            scores = -scores
        best = np.array([np.maximum.accumulate(rng.permutation(scores)) for _ in range(orders)])
        if not higher_is_better(metric):
            best = -best
        for k in range(best.shape[1]):
            low, median, high = np.percentile(best[:, k], [10, 50, 90])
            rows.append({"workload": workload, "optimizer": optimizer, "trials": k + 1,
                         "metric": metric, "median": median, "low": low, "high": high})
    return pd.DataFrame(rows)


def oneshot_vs_tuned(cells: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """Per workload and optimizer: the untuned cell's and the tuned cell's final target
    metric (mean and interval over seeds) and the tuned hyperparameters."""
    if "role" not in runs or not (runs["role"] == "tuned").any():
        return pd.DataFrame()
    roles = runs.drop_duplicates("label").set_index("label")["role"]
    hparams = runs.drop_duplicates("label").set_index("label")["hparams"]
    rows = []
    for (workload, optimizer), group in cells.groupby(["workload", "optimizer"]):
        by_role = {roles.get(label): row for label, row in group.set_index("label").iterrows()}
        if "tuned" not in by_role:
            continue
        tuned = by_role["tuned"]
        label = group.loc[group["label"].map(roles) == "tuned", "label"].iloc[0]
        column = "final_" + tuned["target_metric"]
        row = {"workload": workload, "optimizer": optimizer, "metric": column,
               "tuned": tuned[column], "tuned_low": tuned[column + "_low"],
               "tuned_high": tuned[column + "_high"], "tuned_hparams": hparams[label]}
        oneshot = by_role.get("oneshot")
        row.update(oneshot=oneshot[column] if oneshot is not None else math.nan,
                   oneshot_low=oneshot[column + "_low"] if oneshot is not None else math.nan,
                   oneshot_high=oneshot[column + "_high"] if oneshot is not None else math.nan)
        rows.append(row)
    return pd.DataFrame(rows)
