"""The report's statistics against values worked out by hand."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench import analysis


def test_mean_ci_is_students_t_over_finite_values():
    mean, low, high = analysis.mean_ci([1.0, 2.0, 3.0, math.nan])
    # sd = 1, t(0.975, df=2) = 4.302653, half width = 4.302653 / sqrt(3) = 2.484138
    assert mean == 2.0
    assert low == pytest.approx(2.0 - 2.484138, abs=1e-6)
    assert high == pytest.approx(2.0 + 2.484138, abs=1e-6)


def test_one_value_has_no_interval_and_none_has_no_mean():
    assert analysis.mean_ci([0.7])[0] == 0.7 and math.isnan(analysis.mean_ci([0.7])[1])
    assert all(math.isnan(v) for v in analysis.mean_ci([]))


def test_welch_difference_interval_and_p():
    a, b = [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]
    diff, low, high, p = analysis.welch(a, b)
    # var/n: 1/3 and 4/3; se = sqrt(5/3); Welch-Satterthwaite dof = (5/3)^2 / ((1/9)/2 + (16/9)/2) = 50/17
    se, dof = math.sqrt(5 / 3), 50 / 17
    half = stats.t.ppf(0.975, dof) * se
    assert diff == 2.0
    assert (low, high) == pytest.approx((2.0 - half, 2.0 + half))
    assert p == pytest.approx(stats.ttest_ind(b, a, equal_var=False).pvalue)
    assert p == pytest.approx(2 * stats.t.sf(2.0 / se, dof))


def curve(values, metric="val_accuracy"):
    return pd.DataFrame({"step": [100, 200, 300], "train_seconds": [1.0, 2.0, 3.0], metric: values})


@pytest.mark.parametrize("values,metric,target,expected", [
    ([0.5, 0.7, 0.9], "val_accuracy", 0.8, (250.0, 2.5)),      # halfway between 200 and 300
    ([0.5, 0.7, 0.9], "val_accuracy", 0.55, (125.0, 1.25)),    # a quarter of the way
    ([0.5, 0.7, 0.9], "val_accuracy", 0.4, (100.0, 1.0)),      # the first eval already there
    ([0.5, 0.7, 0.9], "val_accuracy", 0.7, (200.0, 2.0)),      # exactly on an eval point
    ([2.0, 1.0, 0.5], "val_loss", 0.75, (250.0, 2.5)),         # losses go down to their target
])
def test_crossing_interpolates_linearly_between_eval_points(values, metric, target, expected):
    assert analysis.crossing(curve(values, metric), metric, target) == pytest.approx(expected)


def test_never_reaching_the_target_has_no_time():
    assert all(math.isnan(v) for v in analysis.crossing(curve([0.5, 0.6, 0.7]), "val_accuracy", 0.9))


def test_median_time_counts_unreached_seeds_as_infinitely_slow():
    assert analysis.median_time([10.0, math.nan, 30.0]) == 30.0
    assert analysis.median_time([10.0, math.nan, math.nan]) == math.inf


@pytest.fixture
def times():
    #            w1    w2      w3 (nobody reached it)
    return pd.DataFrame({"w1": [10.0, 20.0, 50.0], "w2": [20.0, 10.0, np.inf],
                         "w3": [np.inf, np.inf, np.inf]}, index=["A", "B", "C"])


def test_performance_profile(times):
    # ratios: A = (1, 2, inf), B = (2, 1, inf), C = (5, inf, inf)
    profile = analysis.performance_profile(times, taus=[1.0, 2.0, 4.0, 5.0])
    assert profile.loc["A"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert profile.loc["B"].tolist() == pytest.approx([1 / 3, 2 / 3, 2 / 3, 2 / 3])
    assert profile.loc["C"].tolist() == pytest.approx([0, 0, 0, 1 / 3])


def test_benchmark_score_is_the_area_under_the_profile_up_to_tau_4(times):
    # A: ((4 - 1) / 3 + (4 - 2) / 3 + 0) / 3 = (1 + 2/3) / 3 = 5/9; B the same; C: 5 > 4, so 0
    score = analysis.benchmark_score(times)
    assert score["A"] == pytest.approx(5 / 9) and score["B"] == pytest.approx(5 / 9)
    assert score["C"] == 0.0
    # the exact area equals a fine Riemann sum of the profile over [1, 4]
    taus = np.linspace(1, 4, 30001)
    profile = analysis.performance_profile(times, taus)
    assert score["A"] == pytest.approx(np.trapezoid(profile.loc["A"], taus) / 3, abs=1e-3)


def synthetic_run():
    """Two optimizers on one workload, three seeds each; one of B's seeds diverged."""
    rows, curves = [], []
    finals = {"A": [0.80, 0.82, 0.84], "B": [0.90, 0.92, 0.10]}
    for label, accuracies in finals.items():
        for seed, accuracy in enumerate(accuracies):
            status = "diverged" if (label, seed) == ("B", 2) else "done"
            rows.append({
                "cell_id": label, "workload": "w", "optimizer": label, "label": label,
                "hparams": json.dumps({"learning_rate": 0.1}), "seed": seed, "status": status,
                "final_val_accuracy": accuracy, "final_test_accuracy": accuracy - 0.01,
                "final_test_loss": 1 - accuracy, "best_val_accuracy": accuracy,
                "target_metric": "val_accuracy", "target_value": 0.85,
                "step_time_median_s": 0.001 if label == "A" else 0.002, "steps_per_s": 1000.0,
            })
            curves.append(pd.DataFrame({"cell_id": label, "seed": seed, "step": [100, 200],
                                        "train_seconds": [1.0, 2.0],
                                        "val_accuracy": [accuracy / 2, accuracy]}))
    return pd.DataFrame(rows), pd.concat(curves, ignore_index=True)


def test_cell_table_averages_done_seeds_and_counts_the_rest():
    cells = analysis.cell_table(*synthetic_run()).set_index("label")
    assert cells.loc["B", "done"] == 2 and cells.loc["B", "diverged"] == 1
    assert cells.loc["B", "final_val_accuracy"] == pytest.approx(0.91)  # not (0.9+0.92+0.1)/3
    # B: seeds 0 and 1 cross 0.85 between (100, 0.45|0.46) and (200, 0.90|0.92);
    # seed 2 never does, so the median over (t0, t1, inf) is the slower of t0, t1
    t0 = 100 + (0.85 - 0.45) / (0.90 - 0.45) * 100
    t1 = 100 + (0.85 - 0.46) / (0.92 - 0.46) * 100
    assert cells.loc["B", "reached"] == 2
    assert cells.loc["B", "tt_steps"] == pytest.approx(max(t0, t1))
    assert cells.loc["A", "reached"] == 0 and cells.loc["A", "tt_steps"] == math.inf
    assert cells.loc["B", "rank"] == 1 and cells.loc["A", "rank"] == 2
