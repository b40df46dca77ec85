"""The engine's training chunk against a bare `lax.scan` loop of the same model, optimizer
and batch sampling (issue: engine steps/s >= 0.95x the bare loop).

Both sides are compiled before timing and each timed call trains STEPS steps and ends with
`block_until_ready`. Run with `make bench`; extra_info holds both sides' steps/s and the
median per-round time ratio engine/bare (below 1: the engine is faster).
"""
import statistics

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

import optimizers
from bench.train import data, engine
import workloads
from tests.perf.interleaved import record_ratio, time_interleaved

STEPS = 500


def bare_loop(workload, dataset, learning_rate, steps):
    """The ~30-line reference: one seed, no vmap, no harness."""
    graphdef, params = nnx.split(workload.build_model(dataset, nnx.Rngs(params=jax.random.key(0))))
    tx = optax.adam(learning_rate)
    x_train, y_train = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)

    def loss_fn(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def run(params, opt_state, key, x_train, y_train):
        def step(carry, _):
            params, opt_state, key = carry
            key, batch_key = jax.random.split(key)
            index = jax.random.randint(batch_key, (workload.batch_size,), 0, x_train.shape[0])
            loss, grads = jax.value_and_grad(loss_fn)(params, x_train[index], y_train[index])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, key), loss

        return jax.lax.scan(step, (params, opt_state, key), length=steps)

    # The data is an argument, not a closed-over constant, as in the engine.
    compiled = jax.jit(run, donate_argnums=(0, 1)).lower(
        params, tx.init(params), jax.random.key(1), x_train, y_train).compile()
    state = {"carry": (params, tx.init(params), jax.random.key(1))}

    def train_steps():
        carry, losses = compiled(*state["carry"], x_train, y_train)
        jax.block_until_ready((carry, losses))
        state["carry"] = carry
        return losses

    return train_steps


def engine_loop(workload, dataset, learning_rate, steps):
    spec = optimizers.get("optax:adam")
    trainer = engine.MemberBatch(workload, dataset, spec,
                                      spec.resolve({"learning_rate": learning_rate}),
                                      seeds=[0], batch_size=workload.batch_size)
    trainer.compile_chunk(steps)
    return lambda: trainer.run_chunk(steps)


# every built-in workload that needs no downloaded data
@pytest.mark.parametrize("workload_name", ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-logreg",
                                           "mnist1d-gru", "digits-mlp", "digits-cnn"])
def test_engine_vs_bare_scan(benchmark, workload_name):
    """Interleaved round by round: timed in separate tests, the bare side moved by up to 2x
    from one run to the next."""
    workload = workloads.get(workload_name)
    dataset = workload.load_data()
    sides = {"engine": engine_loop(workload, dataset, 1e-2, STEPS),
             "bare": bare_loop(workload, dataset, 1e-2, STEPS)}
    for train_steps in sides.values():
        losses = train_steps()  # warm-up: first execution pays one-off allocation costs
        assert bool(jnp.all(jnp.isfinite(losses)))
    times = time_interleaved(benchmark, sides, rounds=15, group="engine-vs-bare")
    record_ratio(benchmark, times, "engine", "bare",
                 engine_steps_per_s=STEPS / statistics.median(times["engine"]),
                 bare_steps_per_s=STEPS / statistics.median(times["bare"]))
