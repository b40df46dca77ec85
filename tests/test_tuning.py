"""Tuning: search spaces checked before anything trains, reproducible quasi-random trials,
sweeps as one compiled program, and selection on the validation split."""

import numpy as np
import pandas as pd
import pytest

import dataclasses

import optimizers
from bench.plan import expand, matrix, tuning
from bench.plan.cells import Tuning
from bench.records import Target
from bench.report import sweeps
from bench.train import data, engine
import workloads
from bench.errors import UserError
from tests.conftest import optbench_here


def cells_of(raw):
    return expand.cells(matrix.from_dict(raw, name="t", source="test"))


BASE = {"seeds": 2, "steps": 100, "workloads": ["synthetic-mlp"]}


@pytest.mark.parametrize("search,message", [
    ({"learning_rate": [0.1, 0.001]}, "is inverted: [0.1, 0.001]; write [low, high]"),
    ({"learning_rate": [0.01, 0.01]}, "is empty: [0.01, 0.01]"),
    ({"lr": [0.001, 0.1]}, "has no hyperparameter 'lr' to search; it takes: b1, b2"),
    ({"learning_rte": [0.01, 0.1]}, "'learning_rte' to search (did you mean: learning_rate"),
    ({"learning_rate": [0.0, 0.1]}, "needs low > 0"),
    ({"b1": "high"}, "must be [low, high]"),
])
def test_bad_search_spaces_fail_before_training(search, message):
    with pytest.raises(UserError) as error:
        cells_of({**BASE, "budget": 4, "optimizers": [{"name": "adam", "search": search}]})
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_search_space_without_a_budget_is_refused():
    with pytest.raises(UserError, match='budget is "oneshot"'):
        cells_of({**BASE, "optimizers": [{"name": "adam", "search": {"b1": [0.8, 0.9]}}]})


def test_trials_are_reproducible_and_inside_the_space():
    raw = {**BASE, "budget": 6, "optimizers": [
        {"name": "adam", "b2": 0.99, "search": {"learning_rate": [1e-4, 1e-1]}}]}
    first, again = cells_of(raw), cells_of(raw)
    assert [c.id for c in first] == [c.id for c in again]
    trials = [c for c in first if c.tuning.role == "trial"]
    assert len(trials) == 6 and all(c.seeds == (0,) for c in trials)
    for cell in trials:
        hparams = dict(cell.hparams)
        assert 1e-4 <= hparams["learning_rate"] <= 1e-1 and 0.8 <= hparams["b1"] <= 0.99
        assert hparams["b2"] == 0.99  # what the matrix set is not searched
    rates = sorted(dict(c.hparams)["learning_rate"] for c in trials)
    assert rates[-1] / rates[0] > 10  # spread over the log range, not clumped
    untuned = [c for c in first if c.tuning.role == "oneshot"]
    assert len(untuned) == 1 and untuned[0].seeds == (0, 1)


def test_selection_uses_validation_only_and_the_targets_direction():
    base = next(c for c in cells_of({**BASE, "budget": 3, "optimizers": ["adam"]})
                if c.tuning.role == "trial")
    a, b, c = (dataclasses.replace(base, tuning=Tuning("trial", i, 3)) for i in range(3))
    # the store hands over the final validation values of seeds that ended done only:
    # test metrics and diverged seeds never reach the selection
    finals = {a: [0.80, 0.82], b: [0.85, 0.83], c: []}
    assert tuning.select(finals, Target("val_accuracy", 0.5, "max")) is b
    assert tuning.select(finals, Target("val_loss", 0.5, "min")) is a
    assert tuning.select({c: []}, base.target) is None
    tied = {a: [0.8], b: [0.8]}
    assert tuning.select(tied, base.target) is a  # ties go to the earlier trial


def sweep_setup():
    w = workloads.get("mnist1d-mlp")
    return w, w.load_data()


def test_a_sweep_is_one_program_and_matches_its_trials_run_one_by_one():
    """Sweep members are independent: the same trials, run as separate programs, give the
    same curves over a short horizon. (Over thousands of steps, float rounding that differs
    with the batch's size grows, as it does for any change of batch composition.)"""
    w, d = sweep_setup()
    spec = optimizers.get("adam")
    trials = [{"learning_rate": 3e-3, "b1": 0.9}, {"learning_rate": 1e-2, "b1": 0.8},
              {"learning_rate": 3e-2, "b1": 0.95}]
    kwargs = dict(steps=30, eval_every=10, batch_size=w.batch_size, seeds=[0, 1], probe=False)
    swept = engine.train_program(w, d, spec, spec.resolve(), trials, **kwargs)
    assert all(r.usage.compiles == 2 and r.usage.trials_in_program == 3 for r in swept)
    for trial, result in zip(trials, swept):
        alone = engine.train_program(w, d, spec, spec.resolve(), [trial], **kwargs)[0]
        for column in ("train_loss", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(result.curves[column], alone.curves[column], rtol=1e-4)


def test_a_linear_optimizer_sweep_equals_plain_runs_exactly():
    w, d = sweep_setup()
    spec = optimizers.get("momentum")
    trials = [{"learning_rate": 0.05, "beta": 0.9}, {"learning_rate": 0.1, "beta": 0.5}]
    kwargs = dict(steps=100, eval_every=50, batch_size=w.batch_size, seeds=[0], probe=False)
    swept = engine.train_program(w, d, spec, spec.resolve(), trials, **kwargs)
    for trial, result in zip(trials, swept):
        plain = engine.train(w, d, spec, spec.resolve(trial), **kwargs)
        np.testing.assert_allclose(result.curves["train_loss"], plain.curves["train_loss"], rtol=1e-5)


def test_a_budget_runs_trials_then_the_best_with_every_seed(tmp_path):
    path = tmp_path / "tune.toml"
    path.write_text('seeds = 2\nsteps = 100\nbudget = 4\nworkloads = ["synthetic-mlp"]\n'
                    'optimizers = [{name = "optax:sgd", search = {learning_rate = [0.001, 1.0]}}]\n')
    out = tmp_path / "run"
    result = optbench_here("run", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "rerunning the best of each sweep with every seed (1 cells)" in result.stderr
    runs = pd.read_parquet(out / "runs.parquet")
    assert sorted(runs.groupby("role")["cell_id"].nunique().items()) == [
        ("oneshot", 1), ("trial", 4), ("tuned", 1)]
    trials = runs[runs["role"] == "trial"]
    assert set(trials["trials_in_program"]) == {4} and set(trials["seed"]) == {0}
    # the trials share one program's timings, and its parts still add up to its wall-clock
    parts = trials[["data_s", "setup_s", "compile_s", "compile_cached_s", "train_s", "eval_s",
                    "probe_s"]].sum(axis=1)
    assert trials["total_s"].nunique() == 1 and (parts <= trials["total_s"] + 1e-6).all()
    tuned = runs[runs["role"] == "tuned"]
    assert sorted(tuned["seed"]) == [0, 1]
    best = trials.groupby("trial")["final_val_accuracy"].mean().idxmax()
    assert tuned["trial"].iloc[0] == best
    assert json_of(tuned["hparams"].iloc[0]) == json_of(trials[trials["trial"] == best]["hparams"].iloc[0])
    report = (out / "report.md").read_text()
    assert "## Untuned vs tuned" in report and "(tuned: learning_rate=" in report
    assert "(trial " not in report.split("### ")[0]  # trials stay out of the ranked tables
    assert (out / "plots" / "tuning_curves.png").is_file()


def test_tuning_curve_is_the_best_so_far_over_orders_of_the_trials():
    runs = pd.DataFrame({"workload": "w", "optimizer": "o", "role": "trial", "status": "done",
                         "schedule": "constant", "target_metric": "val_accuracy",
                         "target_direction": "max", "trial": [0, 1, 2],
                         "final_val_accuracy": [0.1, 0.5, 0.3]})
    curve = sweeps.tuning_curves(runs, orders=3000).set_index("trials")
    assert curve.loc[3, "median"] == curve.loc[3, "low"] == 0.5  # every order has seen the best
    # after one trial: each trial equally likely first, so the median is the middle one
    assert curve.loc[1, "median"] == 0.3 and curve.loc[1, "low"] == 0.1 and curve.loc[1, "high"] == 0.5
    # after two: the best of a random pair is 0.5 two times in three, else 0.3
    assert curve.loc[2, "median"] == 0.5 and curve.loc[2, "low"] == 0.3


def json_of(text):
    import json
    return json.loads(text)


SHARDED = '''
import numpy as np, jax, optimizers
from bench.train import data, engine
import workloads
assert len(jax.devices()) == 2
w = workloads.get("mnist1d-mlp"); d = w.load_data()
spec = optimizers.get("momentum")
trials = [{"learning_rate": 0.05}, {"learning_rate": 0.1}, {"learning_rate": 0.2}]
runs = {}
for shard in (True, False):
    t = engine.MemberBatch(w, d, spec, spec.resolve(), seeds=[0, 1], batch_size=100,
                                trials=trials, shard=shard)
    t.compile_chunk(50)
    runs[shard] = (t, np.concatenate([t.run_chunk(50) for _ in range(2)], axis=1), t.evaluate())
sharded, plain = runs[True], runs[False]
assert sharded[0].usage.devices == 2 and plain[0].usage.devices == 1
assert len(jax.tree.leaves(sharded[0].params)[0].sharding.device_set) == 2
np.testing.assert_allclose(sharded[1], plain[1], rtol=1e-5)
for name in plain[2]:
    np.testing.assert_allclose(sharded[2][name], plain[2][name], rtol=1e-5, atol=1e-6)
print("ok")
'''


def test_a_sweep_splits_its_members_over_several_devices():
    """Two host CPU devices stand in for two accelerators: 3 trials x 2 seeds split 3 + 3,
    with the curves of the same program on one device."""
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT
    result = subprocess.run([sys.executable, "-c", SHARDED], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr[-3000:]
