"""The engine's training chunk against two bare `lax.scan` loops of the same model,
optimizer and batch sampling (issue 15: engine >= 0.95x the best bare loop on every
built-in workload, with one seed and with several).

- `bare_args`: the data passed as arguments, as the engine passes it;
- `bare_const`: the data closed over as constants, the best loop a user could write (XLA
  may specialise on it).

Several seeds: the bare loops vmap their step over the seeds' parameters, optimizer states
and keys, as a user batching seeds would. Every side is compiled before timing and each
timed call trains STEPS steps and ends with `block_until_ready`; the sides are interleaved
round by round. Run with `make bench`; extra_info holds each side's steps/s and the median
per-round time ratios engine/bare_args and engine/bare_const.
"""
import statistics

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

import optimizers
from bench.train import engine
import workloads
from tests.perf.interleaved import record_ratio, time_interleaved

STEPS = 500
WORKLOADS = ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-logreg", "mnist1d-gru", "digits-mlp",
             "digits-cnn"]  # every built-in classification workload that needs no download


def bare_loop(workload, dataset, learning_rate, steps, seeds: int, constant_data: bool):
    """The ~30-line reference: Adam, uniform minibatches, no harness; vmapped over `seeds`
    when there are several."""
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

    carry = (params, tx.init(params), jax.random.key(1))
    if seeds > 1:
        run = jax.vmap(run, in_axes=(0, 0, 0, None, None))
        carry = (*jax.tree.map(lambda x: jnp.stack([x] * seeds), carry[:2]),
                 jax.random.split(jax.random.key(1), seeds))
    if constant_data:
        fn = lambda p, s, k: run(p, s, k, x_train, y_train)  # noqa: E731
        data = ()
    else:
        fn, data = run, (x_train, y_train)
    compiled = jax.jit(fn, donate_argnums=(0, 1)).lower(*carry, *data).compile()
    state = {"carry": carry}

    def train_steps():
        carry, losses = compiled(*state["carry"], *data)
        jax.block_until_ready((carry, losses))
        state["carry"] = carry
        return losses

    return train_steps


def engine_loop(workload, dataset, learning_rate, steps, seeds: int):
    spec = optimizers.get("optax:adam")
    trainer = engine.MemberBatch(workload, dataset, spec,
                                 spec.resolve({"learning_rate": learning_rate}),
                                 seeds=list(range(seeds)), batch_size=workload.batch_size)
    trainer.compile_chunk(steps)
    return lambda: trainer.run_chunk(steps)


def pytest_generate_tests(metafunc):
    """Every workload under `make bench`; under `make test` (benchmarks disabled) only the
    cheapest, to check that the three loops build and run."""
    if "workload_name" in metafunc.fixturenames:
        config = metafunc.config  # pytest-benchmark's own rule for "disabled"
        timed = config.getoption("benchmark_enable") or not config.getoption("benchmark_disable")
        metafunc.parametrize("workload_name", WORKLOADS if timed else ["mnist1d-logreg"])


@pytest.mark.parametrize("seeds", [1, 4])
def test_engine_vs_bare_scan(benchmark, workload_name, seeds):
    """Interleaved round by round: timed in separate tests, the bare side moved by up to 2x
    from one run to the next."""
    workload = workloads.get(workload_name)
    dataset = workload.load_data()
    steps = STEPS if not benchmark.disabled else 5  # under `make test`: that it runs
    sides = {"engine": engine_loop(workload, dataset, 1e-2, steps, seeds),
             "bare_args": bare_loop(workload, dataset, 1e-2, steps, seeds, constant_data=False),
             "bare_const": bare_loop(workload, dataset, 1e-2, steps, seeds, constant_data=True)}
    for train_steps in sides.values():
        losses = train_steps()  # warm-up: first execution pays one-off allocation costs
        assert bool(jnp.all(jnp.isfinite(losses)))
    times = time_interleaved(benchmark, sides, rounds=9, group=f"engine-vs-bare:{seeds}-seed")
    for bare in ("bare_args", "bare_const"):
        record_ratio(benchmark, times, "engine", bare)
    if benchmark.stats is not None:
        benchmark.extra_info.update({f"{side}_steps_per_s": steps / statistics.median(t)
                                     for side, t in times.items()})
