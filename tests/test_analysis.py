"""The report's statistics against values worked out by hand."""
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from bench.records import Target
from bench.report import analysis, sweeps


def test_an_accuracys_interval_stays_inside_0_and_1():
    values = [0.99, 0.93, 0.88]
    mean, low, high = analysis.mean_ci(values, column="final_val_accuracy")
    t_mean, t_low, t_high = analysis.mean_ci(values)  # no range known: the t-interval
    assert t_high > 1 and (mean, low, high) == (t_mean, t_low, 1.0)
    assert analysis.mean_ci([0.01, 0.0, 0.1], column="final_test_accuracy")[1] == 0.0
    assert analysis.mean_ci([-5.0, 1.0, 3.0], column="final_val_loss")[1] < -5  # unbounded


def test_a_difference_of_accuracies_stays_inside_minus_1_and_1():
    """compare's difference column: two smoke seeds a side gave -0.23 [-3.83, +3.37]."""
    a, b = [0.914, 0.844], [0.95, 0.35]
    diff, low, high, p = analysis.welch(a, b, column="final_test_accuracy")
    t_diff, t_low, t_high, t_p = analysis.welch(a, b)  # no range known: the t-interval
    assert t_low < -1 and t_high > 1
    assert (diff, low, high, p) == (t_diff, -1.0, 1.0, t_p)
    assert analysis.welch([1.0, 2.0], [2.0, 40.0], column="final_val_loss")[2] > 40


def test_mean_ci_is_students_t_over_finite_values():
    mean, low, high = analysis.mean_ci([1.0, 2.0, 3.0, math.nan])
    # sd = 1, t(0.975, df=2) = 4.302653, half width = 4.302653 / sqrt(3) = 2.484138
    assert mean == 2.0
    assert low == pytest.approx(2.0 - 2.484138, abs=1e-6)
    assert high == pytest.approx(2.0 + 2.484138, abs=1e-6)


def test_one_value_has_no_interval_and_none_has_no_mean():
    assert analysis.mean_ci([0.7])[0] == 0.7 and math.isnan(analysis.mean_ci([0.7])[1])
    assert all(math.isnan(v) for v in analysis.mean_ci([]))


@pytest.mark.parametrize("values", [[0.91, 0.93], [1.0, 2.0, 4.0], list(range(30))])
def test_mean_ci_is_students_t_interval(values):
    mean, low, high = analysis.mean_ci(values)
    expected = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values),
                                scale=stats.sem(values))
    assert mean == pytest.approx(np.mean(values))
    assert (low, high) == pytest.approx(expected, rel=1e-12)


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
    direction = "min" if metric == "val_loss" else "max"
    assert analysis.crossing(curve(values, metric), Target(metric, target, direction)) \
        == pytest.approx(expected)


def test_the_direction_comes_from_the_target_not_the_name():
    # a metric named like a loss that is to be maximised, and the converse
    rising = curve([0.5, 0.7, 0.9], "val_loss")
    assert analysis.crossing(rising, Target("val_loss", 0.8, "max")) == pytest.approx((250.0, 2.5))
    falling = curve([0.9, 0.7, 0.5], "val_accuracy")
    assert analysis.crossing(falling, Target("val_accuracy", 0.8, "min")) == pytest.approx((150.0, 1.5))


def test_algoperf_convention_is_the_first_eval_reaching_it_plus_compile():
    c = curve([0.5, 0.7, 0.9])
    target = Target("val_accuracy", 0.8)
    assert analysis.first_reaching(c, target) == (300.0, 3.0)  # no interpolation
    times = analysis.times_to_target(c, target, compile_s=1.5)
    assert times == pytest.approx({"target_step": 250.0, "target_seconds": 2.5,
                                   "algoperf_step": 300.0, "algoperf_seconds": 4.5})


def test_never_reaching_the_target_has_no_time():
    target = Target("val_accuracy", 0.9)
    assert all(math.isnan(v) for v in analysis.crossing(curve([0.5, 0.6, 0.7]), target))
    assert all(math.isnan(v) for v in analysis.times_to_target(curve([0.5, 0.6, 0.7]), target, 1.0).values())


def test_median_time_counts_unreached_seeds_as_infinitely_slow():
    assert analysis.median_time([10.0, math.nan, 30.0]) == 30.0
    assert analysis.median_time([10.0, math.nan, math.nan]) == math.inf
    # half unreached is not reached: the median of the middle two is infinite
    assert analysis.median_time([10.0, math.nan]) == math.inf


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("a,b", [([1.0, 1.0], [2.0, 2.0]), ([1.0, 1.0], [1.0, 1.0])])
def test_welch_with_no_spread_gives_scipys_p_value(a, b):
    diff, low, high, p = analysis.welch(a, b)
    assert low == high == diff == b[0] - a[0]
    expected = stats.ttest_ind(b, a, equal_var=False).pvalue
    assert (math.isnan(p) and math.isnan(expected)) or p == expected


def synthetic_runs():
    """Two optimizers on one workload, three seeds each; one of B's seeds diverged. Times
    to target come from the curves by the store's rule (analysis.times_to_target)."""
    rows = []
    finals = {"A": [0.80, 0.82, 0.84], "B": [0.90, 0.92, 0.10]}
    target = Target("val_accuracy", 0.85)
    for label, accuracies in finals.items():
        for seed, accuracy in enumerate(accuracies):
            status = "diverged" if (label, seed) == ("B", 2) else "done"
            seed_curve = pd.DataFrame({"step": [100, 200], "train_seconds": [1.0, 2.0],
                                       "val_accuracy": [accuracy / 2, accuracy]})
            rows.append({
                "cell_id": label, "workload": "w", "optimizer": label, "label": label,
                "role": "oneshot", "schedule": "constant",
                "hparams": json.dumps({"learning_rate": 0.1}), "seed": seed, "status": status,
                "final_val_accuracy": accuracy, "final_test_accuracy": accuracy - 0.01,
                "final_test_loss": 1 - accuracy, "best_val_accuracy": accuracy,
                "target_metric": "val_accuracy", "target_value": 0.85, "target_direction": "max",
                "step_time_median_s": 0.001 if label == "A" else 0.002, "steps_per_s": 1000.0,
                "state_bytes": 8.0, "state_to_param": 1.0, "update_share": 0.5, "mfu": math.nan,
                **analysis.times_to_target(seed_curve, target, compile_s=0.5),
            })
    return pd.DataFrame(rows)


def test_cell_table_averages_done_seeds_and_counts_the_rest():
    cells = analysis.cell_table(synthetic_runs()).set_index("label")
    assert cells.loc["B", "done"] == 2 and cells.loc["B", "diverged"] == 1
    assert cells.loc["B", "final_val_accuracy"] == pytest.approx(0.91)  # not (0.9+0.92+0.1)/3
    # B: seeds 0 and 1 cross 0.85 between (100, 0.45|0.46) and (200, 0.90|0.92);
    # seed 2 never does, so the median over (t0, t1, inf) is the slower of t0, t1
    t0 = 100 + (0.85 - 0.45) / (0.90 - 0.45) * 100
    t1 = 100 + (0.85 - 0.46) / (0.92 - 0.46) * 100
    assert cells.loc["B", "reached"] == 2
    assert cells.loc["B", "target_step"] == pytest.approx(max(t0, t1))
    assert cells.loc["B", "algoperf_seconds"] == 2.0 + 0.5  # the eval at step 200, + compile
    assert cells.loc["A", "reached"] == 0 and cells.loc["A", "target_step"] == math.inf
    assert cells.loc["B", "rank"] == 1 and cells.loc["A", "rank"] == 2


def test_a_classifier_whose_every_seed_errored_has_a_row_and_a_figure(tmp_path):
    """runs.parquet has no accuracy columns when no seed evaluated (a damaged data cache):
    the run's summary and `optbench report` ended in an internal error, KeyError:
    'final_val_accuracy'."""
    from bench.report import plots

    runs = synthetic_runs().assign(status="error").drop(
        columns=["final_val_accuracy", "final_test_accuracy", "best_val_accuracy"])
    cells = analysis.cell_table(runs).set_index("label")
    assert cells.loc["A", "error"] == 3 and math.isnan(cells.loc["A", "score"])
    assert math.isnan(cells.loc["A", "final_val_accuracy"])
    assert plots.final_metric(runs, tmp_path).is_file()


def test_ranks_follow_the_stored_direction():
    runs = synthetic_runs()
    cells = analysis.cell_table(runs.assign(target_direction="min")).set_index("label")
    assert cells.loc["A", "rank"] == 1 and cells.loc["B", "rank"] == 2


def test_cells_sharing_a_label_never_pool():
    runs = synthetic_runs()
    twice = pd.concat([runs, runs[runs["label"] == "A"].assign(cell_id="A2")], ignore_index=True)
    cells = analysis.cell_table(twice)
    assert len(cells) == 3 and cells["seeds"].tolist().count(3) == 3
    assert cells["label"].is_unique


def test_a_tuned_cell_worse_than_its_defaults_gets_a_note_in_either_direction():
    def row(optimizer, tuned, untuned, direction, spread=0.01):
        return {"workload": "w", "optimizer": optimizer, "tuned": tuned, "oneshot": untuned,
                "tuned_low": tuned - spread, "tuned_high": tuned + spread,
                "oneshot_low": untuned - spread, "oneshot_high": untuned + spread,
                "direction": direction}
    tuning = pd.DataFrame([
        row("acc-worse", 0.55, 0.58, "max"),           # accuracy fell: a note, outside noise
        row("acc-better", 0.60, 0.58, "max"),          # accuracy rose: no note
        row("loss-worse", 0.30, 0.29, "min", 0.05),    # loss rose, within noise: a note saying so
        row("loss-better", 0.20, 0.29, "min"),         # loss fell: no note
        row("no-untuned", 0.5, float("nan"), "max"),   # nothing to compare with
    ])
    notes = sweeps.tuned_worse_notes(tuning)
    assert [n.split(":")[0] for n in notes] == ["w x acc-worse", "w x loss-worse"]
    assert "(0.55) is worse than the untuned one at the registered defaults (0.58)." in notes[0]
    assert "(0.29; within noise)" in notes[1]
    assert sweeps.tuned_worse_notes(pd.DataFrame()) == []


def test_deterministic_cells_tie_only_when_closer_than_the_tables_can_show():
    group = pd.DataFrame({"m": [17.90900, 17.90901, 17.95],
                          "m_low": [math.nan] * 3, "m_high": [math.nan] * 3})  # no interval
    rank, tied = analysis.tied_ranks(group, "m", ascending=True)
    assert rank.tolist() == [1, 1, 3] and tied.tolist() == [True, True, False]


def test_listing_and_intervals_import_no_scipy_stats():
    """scipy.stats costs ~0.7 s to import: tuning.py draws its points with it lazily, and
    `optbench list` still paid it through this module's top-level import; the intervals take
    Student's t from scipy.special (a `run --no-report` never imports scipy.stats)."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    code = ("import sys, contextlib, io\nfrom bench.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    main(['list', 'workloads'])\n"
            "from bench.report import analysis\n"  # intervals too: a run's terminal summary
            "analysis.mean_ci([1.0, 2.0]), analysis.welch([1.0, 2.0], [2.0, 4.0])\n"
            "print('scipy.stats' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "False"
