import dataclasses

import jax
import numpy as np
import optax
import pytest
from flax import nnx

import optimizers
from bench.train import data, engine, programs
import workloads
from bench.records import Status


def train(optimizer="optax:adam", overrides=None, *, workload="synthetic-mlp", steps=100,
          eval_every=25, seeds=(0, 1)):
    wl = workloads.get(workload)
    spec = optimizers.get(optimizer)
    return engine.train(wl, wl.load_data(), spec, spec.resolve(overrides or {}),
                        steps=steps, eval_every=eval_every, batch_size=wl.batch_size, seeds=seeds)


def curve(result, seed, column):
    return result.curves[column][result.curves["seed"] == seed]


def test_same_config_and_seed_give_the_same_curves_bit_for_bit():
    a, b = train(), train()
    for column in ("train_loss", "val_loss", "val_accuracy", "test_loss", "test_accuracy"):
        np.testing.assert_array_equal(a.curves[column], b.curves[column])


def test_seeds_are_independent_of_the_batch_they_train_in():
    together = train(seeds=(0, 1))
    alone = train(seeds=(1,))
    np.testing.assert_allclose(curve(together, 1, "val_loss"), curve(alone, 1, "val_loss"),
                               rtol=1e-5)
    assert not np.allclose(curve(together, 0, "val_loss"), curve(together, 1, "val_loss"))


def test_curves_and_timings_are_recorded_per_eval_point():
    result = train(steps=100, eval_every=25, seeds=(0, 1, 2))
    assert list(np.unique(result.curves["step"])) == [25, 50, 75, 100]
    assert len(result.curves["seed"]) == 4 * 3
    seconds = curve(result, 0, "train_seconds")
    assert np.all(np.diff(seconds) > 0)
    t = result.timings
    assert t.compile_s + t.compile_cached_s > 0 and t.train_s > 0 and t.eval_s > 0
    assert t.chunk_steps == [25, 25, 25, 25] and len(t.chunk_seconds) == 4
    assert t.train_s == pytest.approx(sum(t.chunk_seconds))
    assert all(r.status is Status.DONE for r in result.seeds)
    # it learns: validation loss falls
    assert curve(result, 0, "val_loss")[-1] < curve(result, 0, "val_loss")[0]


def test_one_compile_per_chunk_length():
    wl = workloads.get("synthetic-mlp")
    spec = optimizers.get("optax:sgd")
    trainer = engine.MemberBatch(wl, wl.load_data(), spec, spec.resolve(),
                                      seeds=[0], batch_size=8)
    for _ in range(3):
        trainer.run_chunk(10)
    trainer.run_chunk(5)  # a ragged last chunk
    assert sorted(trainer._executables) == [5, 10]


def test_non_finite_loss_marks_the_seed_diverged_with_its_step():
    result = train("optax:sgd", {"learning_rate": 1e4}, steps=60, eval_every=20)
    for record in result.seeds:
        assert record.status is Status.DIVERGED
        assert 1 <= record.diverged_step <= 60
    # training stops at the end of the chunk in which the last seed diverged
    last = max(r.diverged_step for r in result.seeds)
    assert result.steps_trained == -(-last // 20) * 20


@pytest.mark.parametrize("name", ["optax:lbfgs", "optax:polyak_sgd"])
def test_optimizers_that_need_the_loss_value_run(name):
    result = train(name, steps=40, eval_every=20)
    assert all(r.status is Status.DONE for r in result.seeds)
    assert np.all(np.isfinite(result.curves["val_loss"]))


def test_schedule_free_is_evaluated_on_its_eval_params():
    wl = workloads.get("synthetic-mlp")
    spec = optimizers.get("optax:schedule_free_adamw")
    trainer = engine.MemberBatch(wl, wl.load_data(), spec, spec.resolve(),
                                 seeds=[0], batch_size=wl.batch_size)
    trainer.run_chunk(50)
    reported = trainer.evaluate()
    own_state = trainer.transformation.optimizer_state(trainer.opt_state)
    eval_params = jax.vmap(optax.contrib.schedule_free_eval_params)(own_state, trainer.params)
    # the same evaluation with no eval_params: it judges whatever parameters it is given
    plain = dataclasses.replace(trainer.transformation, own_eval_params=None)
    evaluate = jax.vmap(programs.make_evaluate(wl, trainer.graphdef, plain), in_axes=(0, 0, None))
    examples = trainer.examples["val"]
    on_eval_params = evaluate(eval_params, trainer.opt_state, trainer.splits)["val_loss"] / examples
    on_train_iterate = evaluate(trainer.params, trainer.opt_state, trainer.splits)["val_loss"] / examples
    np.testing.assert_allclose(reported["val_loss"], np.asarray(on_eval_params), rtol=1e-6)
    assert not np.allclose(reported["val_loss"], np.asarray(on_train_iterate))


@pytest.mark.parametrize("workload,minimum", [("mnist1d-mlp", 0.60), ("mnist1d-cnn", 0.88)])
def test_adam_defaults_reach_published_mnist1d_accuracy(workload, minimum):
    """The MNIST-1D authors' own rerun: MLP 65%, CNN 92% (Adam 1e-2, batch 100, 6000 steps).
    One seed at the workload's default budget must land within a few points."""
    wl = workloads.get(workload)
    result = train("optax:adam", workload=workload, steps=wl.steps, eval_every=wl.steps,
                   seeds=(0,))
    assert result.curves["test_accuracy"][-1] >= minimum


def _count_vmapped_builds(monkeypatch) -> list[int]:
    """The member counts of the vmapped builds that succeed from now on (a build that fails
    falls back to the loop silently, so the bits alone would not tell)."""
    built, vmapped = [], programs._init_vmapped

    def counted(workload, dataset, seeds):
        result = vmapped(workload, dataset, seeds)
        built.append(len(seeds))
        return result
    monkeypatch.setattr(programs, "_init_vmapped", counted)
    return built


@pytest.mark.parametrize("name", ["mnist1d-cnn", "mnist1d-gru", "modadd-transformer",
                                  "rosenbrock-2d"])
def test_a_vmapped_init_gives_each_seed_the_bits_of_its_own_build(name, monkeypatch):
    """Past VMAPPED_INIT_FROM members the members are built in one vmapped call (a build
    per member took 33 s for 1024 members on an H200); each must still be exactly what its
    seed builds alone. The 2-D functions build from numpy values, which cannot be vmapped:
    they are built one by one, with no error."""
    workload = workloads.get(name)
    dataset = workload.load_data()
    seeds = [0, 7, 2**31 - 1]
    graphdef, alone = programs.init_params(workload, dataset, seeds)
    monkeypatch.setattr(programs, "VMAPPED_INIT_FROM", 2)
    built = _count_vmapped_builds(monkeypatch)
    vmapped_graphdef, together = programs.init_params(workload, dataset, seeds)
    assert built == ([] if name == "rosenbrock-2d" else [len(seeds)])
    assert vmapped_graphdef == graphdef
    assert jax.tree.structure(together) == jax.tree.structure(alone)
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(together)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    vmapped_keys = jax.random.key_data(programs.data_keys(seeds))
    monkeypatch.setattr(programs, "VMAPPED_INIT_FROM", 4)
    np.testing.assert_array_equal(vmapped_keys, jax.random.key_data(programs.data_keys(seeds)))


def _plugin(model) -> workloads.Workload:
    """A plugin workload around `model(dataset, rngs)`, on a 4-feature regression."""
    def load(_=None):
        x = np.random.default_rng(0).normal(size=(30, 4)).astype(np.float32)
        return data.Dataset("t", x[:10], x[:10, :1], x[10:20], x[10:20, :1], x[20:], x[20:, :1])

    return workloads.registry.Workload(
        name="hx", data=load, model=model, target=workloads.Target("val_loss", 0.01, "min"),
        batch_size=8, steps=5, eval_every=5, loss=lambda p, t: jax.numpy.mean((p - t) ** 2),
        metric_sums=lambda p, t: {"loss": jax.numpy.sum((p - t) ** 2)}, metrics={"loss": "min"})


class _BranchesOnItsWeights(nnx.Module):  # a Python `if` on a random value, and .item()
    def __init__(self, dataset, rngs):
        self.linear = nnx.Linear(4, 1, rngs=rngs)
        if self.linear.kernel[...].sum() > 0:
            self.linear.bias[...] = self.linear.bias[...] + self.linear.kernel[...].max().item()


class _RefusesTracers(nnx.Module):  # a plugin's own check, not a JAX error
    def __init__(self, dataset, rngs):
        key = rngs.params()
        if isinstance(key, jax.core.Tracer):
            raise ValueError("this model wants concrete keys")
        self.linear = nnx.Linear(4, 1, rngs=nnx.Rngs(params=key))


class _WithState(nnx.Module):  # integer and bool parameters, batch statistics, an RNG stream
    def __init__(self, dataset, rngs):
        self.linear = nnx.Linear(4, 1, rngs=rngs)
        self.counts = nnx.Param(jax.random.randint(rngs.params(), (3,), 0, 100))
        self.mask = nnx.Param(jax.random.bernoulli(rngs.params(), 0.5, (3,)))
        self.norm = nnx.BatchNorm(1, rngs=rngs)
        self.dropout = nnx.Dropout(0.5, rng_collection="params", rngs=rngs)


@pytest.mark.parametrize("model,traceable", [(_BranchesOnItsWeights, False),
                                             (_RefusesTracers, False), (_WithState, True)])
def test_a_plugin_model_gets_the_same_bits_vmapped_or_not(model, traceable, monkeypatch):
    """A plugin model that cannot be traced (a branch on a random value, `.item()`, its own
    type check) is built one by one; one that can be gives the same bits vmapped. Seeds
    repeat in a sweep, and 0 and the uint32 edges are seeds too. Never a new error."""
    workload = _plugin(model)
    dataset = workload.load_data()
    seeds = [0, 0, 5, 2**31 - 1, 2**31, 2**32 - 1]
    graphdef, alone = programs.init_params(workload, dataset, seeds)
    monkeypatch.setattr(programs, "VMAPPED_INIT_FROM", 2)
    built = _count_vmapped_builds(monkeypatch)
    vmapped_graphdef, together = programs.init_params(workload, dataset, seeds)
    assert built == ([len(seeds)] if traceable else [])
    assert vmapped_graphdef == graphdef
    assert jax.tree.structure(together) == jax.tree.structure(alone)
    for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(together)):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_model_that_fails_fails_with_its_own_error_vmapped_or_not(monkeypatch):
    class Broken(nnx.Module):
        def __init__(self, dataset, rngs):
            raise RuntimeError("broken plugin")

    workload = _plugin(Broken)
    monkeypatch.setattr(programs, "VMAPPED_INIT_FROM", 2)
    with pytest.raises(RuntimeError, match="broken plugin"):
        programs.init_params(workload, workload.load_data(), [0, 1, 2])


def test_a_sweep_trains_the_same_bits_with_its_members_built_vmapped(monkeypatch):
    """A sweep's members repeat its seeds once per trial; built in one vmapped call they
    must train to the very curves they train to when built one by one."""
    wl = workloads.get("synthetic-mlp")
    spec = optimizers.get("optax:adam")
    trials = [{"learning_rate": 1e-3}, {"learning_rate": 1e-2}]

    def sweep():
        results = engine.train_program(wl, wl.load_data(), spec, spec.resolve({}), trials,
                                       steps=20, eval_every=10, batch_size=wl.batch_size,
                                       seeds=(0, 2**31 - 1), probe=False)
        return [r.curves for r in results]
    alone = sweep()
    monkeypatch.setattr(programs, "VMAPPED_INIT_FROM", 2)
    built = _count_vmapped_builds(monkeypatch)
    together = sweep()
    assert built == [4]  # 2 trials x 2 seeds, in one build
    for a, b in zip(alone, together, strict=True):
        for column in ("train_loss", "val_loss", "val_accuracy"):
            np.testing.assert_array_equal(a[column], b[column])


@pytest.mark.parametrize("name, constant", [("digits-mlp", True), ("mnist1d-mlp", False)])
def test_small_training_data_is_compiled_in_and_trains_the_same_bits(name, constant, monkeypatch):
    """Data of at most CONSTANT_DATA_BYTES is the training program's constants (passed in,
    the tiny digits-mlp trained at 0.935x a bare loop closing over its data); larger data
    is an argument. Either way the members train the same bits."""
    w = workloads.get(name)
    dataset = w.load_data()
    spec = optimizers.get("adam")

    def trained():
        batch = engine.MemberBatch(w, dataset, spec, spec.resolve(), seeds=[0, 1],
                                   batch_size=w.batch_size)
        losses = np.concatenate([batch.run_chunk(30) for _ in range(2)], axis=1)
        return batch, losses, jax.tree.leaves(batch.params)

    batch, losses, params = trained()
    assert (batch._chunk_data() == ()) is constant
    assert len(batch.chunk_lowerings[30].args_info[0]) == (3 if constant else 5)  # arguments
    monkeypatch.setattr(engine, "CONSTANT_DATA_BYTES", 0 if constant else 2**40)
    other, other_losses, other_params = trained()
    assert (other._chunk_data() == ()) is not constant
    np.testing.assert_array_equal(losses, other_losses)
    for a, b in zip(params, other_params):
        np.testing.assert_array_equal(a, b)
