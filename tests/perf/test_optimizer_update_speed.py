"""One update of each hand-written optimizer against its Optax twin, on the parameter
shapes of `mnist1d-cnn` (issue: no hand-written optimizer more than 10% slower).

A timed call runs UPDATES updates inside one compiled `lax.scan` (so that dispatch, ~10 us
on a CPU, does not swamp an update of 5,210 parameters) and ends with
`block_until_ready`. The two sides are interleaved round by round; extra_info holds
microseconds per update and the median per-round ratio, which `make bench` prints.
"""
import statistics

import jax
import jax.numpy as jnp
import optax
import pytest
from flax import nnx

import optimizers
import workloads
from tests.perf.interleaved import record_ratio, time_interleaved
from tests.test_handwritten_equivalence import TWINS

UPDATES = 200


def cnn_params():
    workload = workloads.get("mnist1d-cnn")
    model = workload.build_model(workload.load_data(), nnx.Rngs(params=jax.random.key(0)))
    return nnx.split(model, nnx.Param)[1]


def timed_updates(tx, params):
    grads = jax.tree.map(lambda p: 0.01 * jnp.cos(p), params)

    def run(params, state):
        def step(carry, _):
            params, state = carry
            updates, state = tx.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), None

        return jax.lax.scan(step, (params, state), length=UPDATES)[0]

    compiled = jax.jit(run).lower(params, tx.init(params)).compile()
    carry = {"value": (params, tx.init(params))}

    def call():
        carry["value"] = compiled(*carry["value"])
        jax.block_until_ready(carry["value"])

    return call


@pytest.mark.parametrize("name", sorted(TWINS))
def test_update_speed_against_optax_twin(benchmark, name):
    spec = optimizers.get(name)
    hparams = spec.resolve()
    params = cnn_params()
    sides = {"handwritten": timed_updates(spec.build(hparams), params),
             "optax": timed_updates(TWINS[name][0](**hparams), params)}
    for call in sides.values():
        call()  # warm-up
    times = time_interleaved(benchmark, sides, rounds=31, group="update-vs-optax")
    record_ratio(benchmark, times, "handwritten", "optax",
                 us_per_update_handwritten=1e6 * statistics.median(times["handwritten"]) / UPDATES,
                 us_per_update_optax=1e6 * statistics.median(times["optax"]) / UPDATES)
