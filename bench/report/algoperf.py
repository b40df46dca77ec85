"""The MLCommons AlgoPerf benchmark score, over a table of times to target.

Rules as AlgoPerf's scoring code applies them (mlcommons/algorithmic-efficiency,
`scoring/performance_profile.py`: `compute_performance_profiles`,
`compute_leaderboard_score`; and `scoring/score_submissions.py`: `main`,
`compute_leaderboard_score`). This module is a re-implementation of that
arithmetic, not their code.

1. A run that never reaches the target has an infinite time. A missing time
   (NaN, e.g. an OOM) is never counted as reached either.
2. A time more than 4x the fastest time on that workload (strictly greater) is
   set to infinity: such runs count as not reached.
3. Performance ratio = time / fastest time on that workload (over all labels).
   Where that division gives NaN (a workload nobody reached: inf/inf) the
   time is kept as it was, so it stays unreached (they use `DataFrame.update`).
4. Tau grid: `np.linspace(min_tau, max_tau, num_points)`, linear. The leaderboard
   uses min_tau=1.0, max_tau=4.0, num_points=100. (With max_tau=None their
   function takes the largest finite ratio, inf and NaN read as -1.)
5. Profile rho(tau) = (number of workloads with ratio <= tau) / number of
   workloads: each base workload weighs the same, and a workload that nobody
   reached still counts in the denominator (they divide by
   NUM_BASE_WORKLOADS = 8, the fixed base set; here the table's columns).
6. Score = trapezoid-rule integral of rho over the tau grid, divided by the
   grid's width (max tau - min tau = 3): `normalize=True` is the default of
   `score_submissions.compute_leaderboard_score`, which the leaderboard uses.
   The score lies in [0, 1]; 1 means fastest on every workload.

Not reproduced: the median over studies and best trial per study (the input is
already one time per label and workload), held-out workload variants,
`reference_submission_tag` and the log-scale grid.
"""
import math

import numpy as np
import pandas as pd

MIN_TAU = 1.0  # compute_performance_profiles(min_tau=1.0); score_submissions passes 1.0
MAX_TAU = 4.0  # score_submissions.main passes max_tau=4.0 (function default None)
NUM_POINTS = 100  # num_points=100 in both
TIME_CAP_FACTOR = 4.0  # "Set score to inf if not within 4x of fastest submission"
NORMALIZE = True  # score_submissions.compute_leaderboard_score(df, normalize=True)
NUM_BASE_WORKLOADS = 8  # their fixed denominator, for reference; ours defaults to len(columns)


def algoperf_ratios(times: pd.DataFrame) -> pd.DataFrame:
    """Label x workload performance ratios after the 4x cap (rules 1-3)."""
    t = times.astype(float)
    best = t.min(axis=0)  # NaN skipped; inf if nobody reached
    t = t.mask(t.gt(TIME_CAP_FACTOR * best, axis=1), math.inf)
    ratios = t.div(t.min(axis=0), axis=1)
    return ratios.where(ratios.notna(), t)  # NaN results leave the time as it was


def tau_grid(ratios: pd.DataFrame, min_tau: float = MIN_TAU, max_tau: float | None = MAX_TAU,
             num_points: int = NUM_POINTS) -> np.ndarray:
    """`np.linspace(min_tau, max_tau, num_points)`; max_tau=None: largest finite ratio."""
    if max_tau is None:
        max_tau = float(ratios.replace(math.inf, -1).fillna(-1).to_numpy().max())
    return np.linspace(min_tau, max_tau, num=num_points)


def algoperf_profile(times: pd.DataFrame, min_tau: float = MIN_TAU,
                     max_tau: float | None = MAX_TAU, num_points: int = NUM_POINTS,
                     num_workloads: int | None = None) -> pd.DataFrame:
    """Performance profile rho(tau): index = labels, columns = tau grid (rules 1-5).

    `times`: index = labels, columns = workloads, values = seconds to target
    (inf or NaN = not reached). `num_workloads` is the denominator (AlgoPerf: 8);
    by default the number of columns. An empty table gives an empty frame.
    """
    if times.empty:
        return pd.DataFrame(index=times.index[:0], dtype=float)
    ratios = algoperf_ratios(times)
    points = tau_grid(ratios, min_tau, max_tau, num_points)
    n = times.shape[1] if num_workloads is None else num_workloads
    hits = ratios.to_numpy()[:, :, None] <= points[None, None, :]  # NaN <= tau is False
    rho = hits.sum(axis=1) / n
    return pd.DataFrame(rho, index=times.index, columns=pd.Index(points, name="tau"))


def profile_score(profile: pd.DataFrame, normalize: bool = NORMALIZE) -> pd.Series:
    """Trapezoid integral of each row over the tau columns, / tau range (rule 6)."""
    if profile.empty:
        return pd.Series(dtype=float, name="score")
    x = profile.columns.to_numpy(dtype=float)
    y = profile.to_numpy(dtype=float)
    area = ((y[:, 1:] + y[:, :-1]) / 2.0 * np.diff(x)).sum(axis=1)
    if normalize:
        with np.errstate(divide="ignore", invalid="ignore"):  # zero-width grid -> NaN, as theirs
            area = area / (x.max() - x.min())
    return pd.Series(area, index=profile.index, name="score")


def algoperf_score(times: pd.DataFrame, min_tau: float = MIN_TAU,
                   max_tau: float | None = MAX_TAU, num_points: int = NUM_POINTS,
                   num_workloads: int | None = None, normalize: bool = NORMALIZE) -> pd.Series:
    """AlgoPerf benchmark score per label, highest first (ties keep input order)."""
    profile = algoperf_profile(times, min_tau, max_tau, num_points, num_workloads)
    score = profile_score(profile, normalize)
    return score.sort_values(ascending=False, kind="mergesort")
