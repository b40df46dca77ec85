"""The engine's training chunk against a bare `lax.scan` loop of the same model, optimizer
and batch sampling (issue: engine steps/s >= 0.95x the bare loop).

Both sides are compiled before timing and each timed call trains STEPS steps and ends with
`block_until_ready`. Run with `make bench`; the JSON report holds steps/s in extra_info.
"""
import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

import optimizers
from bench import data, engine, workloads

STEPS = 500


def bare_loop(workload, dataset, learning_rate, steps):
    """The ~30-line reference: one seed, no vmap, no harness."""
    graphdef, params = nnx.split(workload.model(dataset, nnx.Rngs(params=jax.random.key(0))))
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
    trainer = engine.SeedBatchTrainer(workload, dataset, spec,
                                      spec.resolve({"learning_rate": learning_rate}),
                                      seeds=[0], batch_size=workload.batch_size)
    trainer.compile_chunk(steps)
    return lambda: trainer.run_chunk(steps)


# every built-in workload that needs no downloaded data
@pytest.mark.parametrize("workload_name", ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-logreg",
                                           "digits-mlp", "digits-cnn"])
@pytest.mark.parametrize("loop", [bare_loop, engine_loop], ids=["bare", "engine"])
def test_engine_vs_bare_scan(benchmark, workload_name, loop):
    workload = workloads.get(workload_name)
    dataset = data.load(workload.dataset)
    train_steps = loop(workload, dataset, 1e-2, STEPS)
    train_steps()  # warm-up: first execution pays one-off allocation costs
    benchmark.group = f"engine-vs-bare:{workload_name}"
    losses = benchmark.pedantic(train_steps, rounds=7, iterations=1)
    assert bool(jnp.all(jnp.isfinite(losses)))
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["steps_per_s"] = STEPS / benchmark.stats.stats.median
