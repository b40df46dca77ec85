"""Learning-rate schedules as a matrix axis: their shapes, their errors, and that they reach
the optimizer, alone and inside a sweep."""
import numpy as np
import pandas as pd
import pytest

import optimizers
from bench.plan import expand, matrix, schedules
from bench.train import data, engine, programs
import workloads
from bench.errors import UserError
from tests.conftest import optbench_here


def values(entry, steps, at):
    scale = programs.schedule_multiplier(schedules.Schedule.parse(entry), steps)
    return [round(float(scale(t)), 6) for t in at]


def test_warmup_stable_decay_by_hand():
    # 100 steps: warmup 10 (0 -> 1), stable until 80, then linear to 0 at 100
    assert values({"name": "wsd", "warmup": 0.1, "decay": 0.2}, 100,
                  [0, 5, 10, 50, 80, 90, 100]) == [0.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.0]


def test_warmup_cosine_by_hand():
    # 200 steps, warmup 20: linear to 1, then 1/2 (1 + cos(pi * (t - 20) / 180)) down to 0
    got = values({"name": "warmup_cosine", "warmup": 0.1}, 200, [0, 10, 20, 110, 200])
    assert got == pytest.approx([0.0, 0.5, 1.0, 0.5, 0.0], abs=1e-6)


def test_constant_is_no_schedule_and_keeps_cell_ids():
    constant = schedules.Schedule.parse("constant")
    assert constant == schedules.Schedule() and constant.spec() is None
    assert programs.schedule_multiplier(constant, 100) is None
    raw = {"seeds": 1, "steps": 10, "workloads": ["synthetic-mlp"], "optimizers": ["adam"]}
    plain = expand.cells(matrix.from_dict(raw, name="a", source="a"))
    constant = expand.cells(matrix.from_dict({**raw, "schedules": ["constant"]}, name="a", source="a"))
    assert [c.id for c in plain] == [c.id for c in constant]


@pytest.mark.parametrize("entry,message", [
    ("cosine", "unknown schedule 'cosine'"),
    ("wsdd", "(did you mean: wsd"),
    ({"name": "wsd", "warmup": 1.5}, "warmup=1.5 must be a fraction of the steps in [0, 1)"),
    ({"name": "wsd", "warmup": 0.6, "decay": 0.5}, "warmup + decay = 1.1 leaves no steps"),
    ({"name": "warmup_cosine", "decay": 0.2}, "schedule 'warmup_cosine' takes warmup; got decay"),
    (3, "a schedule is a name or a table"),
])
def test_bad_schedules_are_one_line_before_training(entry, message):
    raw = {"seeds": 1, "workloads": ["synthetic-mlp"], "optimizers": ["adam"], "schedules": [entry]}
    with pytest.raises(UserError) as error:
        matrix.from_dict(raw, name="m", source="m")
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_schedule_scales_the_updates_alone_and_in_a_sweep():
    """Momentum is linear in the learning rate, so a scheduled sweep must equal each trial
    run alone with the same schedule; and the schedule must change the curve."""
    w = workloads.get("mnist1d-mlp")
    d = w.load_data()
    spec = optimizers.get("momentum")
    wsd = schedules.Schedule.parse({"name": "wsd", "warmup": 0.2, "decay": 0.4})
    # (at 0.1 the residual MLP amplifies float32 rounding between the two builds to 1e-3)
    trials = [{"learning_rate": 0.03}, {"learning_rate": 0.05}]
    kwargs = dict(steps=100, eval_every=50, batch_size=w.batch_size, seeds=[0], probe=False)
    swept = engine.train_program(w, d, spec, spec.resolve(), trials, schedule=wsd, **kwargs)
    for trial, result in zip(trials, swept):
        alone = engine.train(w, d, spec, spec.resolve(trial), schedule=wsd, **kwargs)
        unscheduled = engine.train(w, d, spec, spec.resolve(trial), **kwargs)
        np.testing.assert_allclose(result.curves["train_loss"], alone.curves["train_loss"], rtol=1e-5)
        assert not np.allclose(alone.curves["train_loss"], unscheduled.curves["train_loss"])


def test_schedules_run_as_an_axis_with_schedule_free_and_tuning(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('seeds = 1\nsteps = 60\nbudget = 2\nworkloads = ["synthetic-mlp"]\n'
                    'optimizers = ["optax:schedule_free_adamw"]\n'
                    'schedules = ["constant", {name = "wsd", warmup = 0.1, decay = 0.3}]\n')
    out = tmp_path / "run"
    result = optbench_here("run", str(path), "--out", str(out))
    assert result.returncode == 0, result.stderr
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs["status"]) == {"done"}
    assert sorted(runs.groupby("schedule")["role"].agg(lambda r: "/".join(sorted(r))).items()) == [
        ("constant", "oneshot/trial/trial/tuned"), ("wsd(decay=0.3, warmup=0.1)", "oneshot/trial/trial/tuned")]
    assert any(label.endswith("@ wsd(decay=0.3, warmup=0.1)") for label in runs["label"])
