"""AlgoPerf benchmark score (bench/report/algoperf.py) on a table worked by hand.

Grid: np.linspace(1, 4, 100), so tau_k = 1 + k*h with h = 3/99 = 1/33, k = 0..99,
tau_0 = 1.0 and tau_99 = 4.0 exactly (linspace sets both ends).
A ratio r is within tau_k (r <= tau_k) for k >= m, m = ceil((r - 1) * 33).
Trapezoid area of a 0/1 step that switches on at k = m (1 <= m <= 99):
  full intervals [k, k+1] for k = m..98: (99 - m) * h, plus the half interval
  [m-1, m]: h/2  ->  (99 - m + 0.5) * h.  For m = 0 the area is 99 h = 3.
Normalised by the grid width 3 = 99 h: (99 - m + 0.5) / 99, or 1 for m = 0.
"""
import math

import numpy as np
import pandas as pd
import pytest

from bench.report.algoperf import (MAX_TAU, MIN_TAU, NUM_POINTS, algoperf_profile,
                                   algoperf_ratios, algoperf_score)

INF, NAN = math.inf, math.nan

# times to target in seconds
#          w1     w2     w3     w4 (nobody reaches)
# A       100    inf    300    inf
# B       125    200    NaN    NaN
# C       250    800   1500    inf
# fastest 100    200    300    inf
# 4x cap: w3 C 1500 > 4*300 = 1200 -> inf;  w2 C 800 = 4*200 exactly, not > -> kept.
# ratios:
# A       1.0    inf    1.0    inf      m: w1 0,  w3 0
# B       1.25   1.0    NaN    NaN      m: w1 ceil(0.25*33 = 8.25) = 9,  w2 0
# C       2.5    4.0    inf    inf      m: w1 ceil(1.5*33 = 49.5) = 50,  w2 ceil(3*33) = 99
# (tau_8 = 1.2424 < 1.25 < tau_9 = 1.2727;  tau_49 = 2.4848 < 2.5 < tau_50 = 2.5152)
TIMES = pd.DataFrame(
    {"w1": [100.0, 125.0, 250.0], "w2": [INF, 200.0, 800.0],
     "w3": [300.0, NAN, 1500.0], "w4": [INF, NAN, INF]},
    index=["A", "B", "C"])
K = np.arange(100)
# rho = count of workloads within tau / 4 (w4 still counts in the denominator)
RHO = {"A": np.full(100, 2 / 4),                                  # w1, w3 at every tau
       "B": np.where(K >= 9, 2 / 4, 1 / 4),                       # w2 always, w1 from k=9
       "C": np.where(K >= 99, 2 / 4, np.where(K >= 50, 1 / 4, 0.0))}  # w1 from 50, w2 at 99
# score = mean over the 4 workloads of the normalised per-workload areas:
# A: (1 + 1 + 0 + 0) / 4                         = 0.5
# B: (90.5/99 + 1 + 0 + 0) / 4 = 189.5 / 396     = 0.47853...
# C: (49.5/99 + 0.5/99 + 0 + 0) / 4 = 50 / 396    = 0.12626...
SCORE = {"A": 0.5, "B": 189.5 / 396, "C": 50 / 396}


def test_defaults_are_algoperfs():
    assert (MIN_TAU, MAX_TAU, NUM_POINTS) == (1.0, 4.0, 100)


def test_ratios_with_cap_and_unreached():
    r = algoperf_ratios(TIMES)
    assert r.loc["B", "w1"] == 1.25 and r.loc["C", "w1"] == 2.5 and r.loc["C", "w2"] == 4.0
    assert r.loc["C", "w3"] == INF  # capped: beyond 4x of the fastest
    assert np.isinf(r.loc[["A", "C"], "w4"]).all() and np.isnan(r.loc["B", "w4"])


def test_profile_worked_table():
    prof = algoperf_profile(TIMES)
    np.testing.assert_array_equal(prof.columns.to_numpy(), np.linspace(1.0, 4.0, 100))
    assert list(prof.index) == ["A", "B", "C"]
    for label, rho in RHO.items():
        np.testing.assert_allclose(prof.loc[label].to_numpy(), rho, rtol=0, atol=0)


def test_score_worked_table():
    s = algoperf_score(TIMES)
    assert list(s.index) == ["A", "B", "C"]  # descending
    for label, want in SCORE.items():
        assert s[label] == pytest.approx(want, abs=1e-12)


def test_nan_is_not_reached():
    as_inf = TIMES.fillna(INF)
    pd.testing.assert_frame_equal(algoperf_profile(TIMES), algoperf_profile(as_inf))
    pd.testing.assert_series_equal(algoperf_score(TIMES), algoperf_score(as_inf))


def test_workload_nobody_reached_counts_zero_but_weighs():
    three = algoperf_score(TIMES.drop(columns="w4"))
    four = algoperf_score(TIMES)
    for label in "ABC":  # adding an all-unreached workload scales every score by 3/4
        assert four[label] == pytest.approx(three[label] * 3 / 4, abs=1e-12)
    nobody = pd.DataFrame({"w": [INF, NAN]}, index=["x", "y"])
    assert (algoperf_profile(nobody).to_numpy() == 0).all()
    assert (algoperf_score(nobody) == 0).all()


def test_single_label_scores_fraction_reached():
    one = pd.DataFrame({"a": [10.0], "b": [INF], "c": [NAN], "d": [5.0]}, index=["only"])
    # its own ratios are 1 where reached: rho = 2/4 on the whole grid, area 0.5 * 3 / 3
    assert algoperf_score(one)["only"] == pytest.approx(0.5, abs=1e-12)


def test_empty_table():
    assert algoperf_profile(pd.DataFrame()).empty
    assert algoperf_score(pd.DataFrame()).empty
    assert algoperf_score(pd.DataFrame(index=["a", "b"])).empty


def test_data_driven_max_tau():
    # max_tau=None: the largest finite ratio (here C's 4.0 on w2) ends the grid
    prof = algoperf_profile(TIMES, max_tau=None)
    assert prof.columns[-1] == 4.0
    prof = algoperf_profile(TIMES.drop(columns="w2"), max_tau=None)
    assert prof.columns[-1] == 2.5


def _reference(t: np.ndarray, min_tau=1.0, max_tau=4.0, num_points=100) -> np.ndarray:
    """AlgoPerf's steps written again in plain numpy (performance_profile.py,
    score_submissions.compute_leaderboard_score with normalize=True)."""
    with np.errstate(invalid="ignore"):
        best = np.nanmin(t, axis=0)
        t = np.where(t > 4 * best, np.inf, t)          # cap beyond 4x
        r = t / np.nanmin(t, axis=0)
    r = np.where(np.isnan(r), t, r)                      # DataFrame.update skips NaN
    x = np.linspace(min_tau, max_tau, num=num_points)
    rho = np.stack([(r <= tau).sum(axis=1) / t.shape[1] for tau in x], axis=1)
    trap = getattr(np, "trapezoid", None) or np.trapz
    return trap(rho, x=x) / (x.max() - x.min())


def test_matches_plain_numpy_reference_on_random_table():
    rng = np.random.default_rng(0)
    t = rng.uniform(10.0, 60.0, size=(7, 9))
    t[rng.random(t.shape) < 0.2] = np.inf
    t[rng.random(t.shape) < 0.1] = np.nan
    t[:, 4] = np.inf  # one workload nobody reached
    df = pd.DataFrame(t, index=[f"opt{i}" for i in range(7)],
                      columns=[f"wl{j}" for j in range(9)])
    got = algoperf_score(df)
    want = pd.Series(_reference(t), index=df.index)
    np.testing.assert_allclose(got[df.index].to_numpy(), want.to_numpy(), rtol=0, atol=1e-12)
    assert (np.diff(got.to_numpy()) <= 0).all()
