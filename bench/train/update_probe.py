"""The optimizer update timed alone, apart from the training step (usage.update_s, the
report's update share): compiled while the program is prepared, run once it has trained."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optimizers.registry import extra_update_args

if TYPE_CHECKING:
    from bench.train.engine import MemberBatch


def compile_probe(batch: MemberBatch, steps: int = 10):
    """The optimizer update (and apply_updates) alone on this program's parameter shapes,
    all members vmapped as in training, `steps` of them in a scan, on a quadratic stand-in
    objective (so that optimizers needing the loss value or function get them). Compiled
    while the program is prepared; its seconds go to timings.probe_s, apart from training."""
    clock = time.perf_counter()
    tx, needs = batch.transformation.tx, batch.transformation.needs

    def quadratic(p):
        return 0.5 * sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(p))

    def run(params, state):
        def step(carry, _):
            params, state = carry
            value, grads = jax.value_and_grad(quadratic)(params)
            extra = extra_update_args(needs, value=value, grad=grads, value_fn=quadratic)
            updates, state = tx.update(grads, state, params, **extra)
            return (optax.apply_updates(params, updates), state), None
        return jax.lax.scan(step, (params, state), length=steps)[0]

    executable = jax.jit(jax.vmap(run)).lower(batch.params, batch.opt_state).compile()
    batch.timings.probe_s += time.perf_counter() - clock
    return executable


def time_probe(batch: MemberBatch, executable, steps: int = 10, repeats: int = 3) -> None:
    """Time the compiled probe (`compile_probe`) after training: one warm-up call, then the
    median of `repeats` calls per step, into usage.update_s."""
    clock = time.perf_counter()
    carry = executable(batch.params, batch.opt_state)  # warm-up
    jax.block_until_ready(carry)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        carry = executable(*carry)
        jax.block_until_ready(carry)
        times.append((time.perf_counter() - start) / steps)
    batch.usage.update_s = float(np.median(times))
    batch.timings.probe_s += time.perf_counter() - clock
