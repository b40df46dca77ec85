"""Schedule-free SGD (Defazio et al., 2024, "The Road Less Scheduled").

Three sequences: z takes plain SGD steps, x is a weighted average of the z's (the point to
evaluate), and gradients are taken at y, an interpolation of the two (the point the
engine trains, i.e. `params`):

    y_t = (1 - b1) z_t + b1 x_t
    z_{t+1} = z_t - lr_t (grad f(y_t) + weight_decay * y_t)
    x_{t+1} = (1 - c_{t+1}) x_t + c_{t+1} z_{t+1},   c_{t+1} = lr_max^w / sum_{i<=t+1} lr_max,i^w

with lr_t a linear warmup over `warmup_steps` (0 means none) and w = weight_lr_power.
Evaluation uses x, recovered from (y, z) by `eval_params`; it needs no lr decay schedule.

The twin is optax.contrib.schedule_free_sgd (warmup_steps=None there is 0 here). As there,
the z step takes the warmup one step behind the weights, so the first warmed-up step is
zero. Defaults are Optax's (learning rate 1.0).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optimizers import _tree
from optimizers.registry import register
from optimizers.space import LogUniform, Uniform


class ScheduleFreeState(NamedTuple):
    b1: jax.Array  # kept in the state so that eval_params can undo the interpolation
    weight_sum: jax.Array
    step_count: jax.Array  # int32, counts from 1 as in the paper
    max_lr: jax.Array
    z: optax.Params


def eval_params(state: ScheduleFreeState, params):
    """x = (y - (1 - b1) z) / b1: the averaged iterate, the one to judge."""
    return jax.tree.map(lambda y, z: (y - (1.0 - state.b1) * z) / state.b1, params, state.z)


@register("schedule_free_sgd", reference="optax:schedule_free_sgd",
          eval_params=eval_params,
          learning_rate=LogUniform(1e-2, 10.0, default=1.0), b1=Uniform(0.5, 0.99, default=0.9))
def schedule_free_sgd(learning_rate: float, b1: float = 0.9, warmup_steps: int = 0,
                      weight_decay: float | None = None,
                      weight_lr_power: float = 2.0) -> optax.GradientTransformation:
    if warmup_steps < 0:
        raise ValueError(f"warmup_steps must be >= 0, got {warmup_steps}")

    def warmup(count):
        if not warmup_steps:
            return learning_rate
        return learning_rate * jnp.minimum(count, warmup_steps) / warmup_steps

    def init(params):
        dtype = jnp.result_type(*jax.tree.leaves(params)) if jax.tree.leaves(params) else jnp.float32
        return ScheduleFreeState(b1=jnp.asarray(b1, dtype), weight_sum=jnp.zeros([], dtype),
                                 step_count=jnp.ones([], jnp.int32), max_lr=jnp.zeros([], dtype),
                                 z=jax.tree.map(jnp.copy, params))

    def update(grads, state, params=None):
        # As in Optax, the averaging weight uses the warmup at step_count (from 1) and the
        # z step uses it one step earlier (from 0), so a warmed-up first step moves nothing.
        lr, step_lr = warmup(state.step_count), warmup(state.step_count - 1)
        max_lr = jnp.maximum(state.max_lr, lr)
        weight = max_lr ** weight_lr_power
        weight_sum = state.weight_sum + weight
        c = jnp.where(weight_sum > 0, weight / jnp.where(weight_sum > 0, weight_sum, 1), 0)
        if weight_decay is not None:
            grads = _tree.add_decayed_weights(grads, params, weight_decay)
        z = jax.tree.map(lambda z, g: (z - step_lr * g).astype(z.dtype), state.z, grads)
        # the previous x from the closed-over b1 (not state.b1): Optax rounds it this way
        x = jax.tree.map(lambda y, z_old, z: (1.0 - c) * ((y - (1.0 - b1) * z_old) / b1) + c * z,
                         params, state.z, z)
        y = jax.tree.map(lambda x, z: b1 * x + (1.0 - b1) * z, x, z)
        updates = jax.tree.map(lambda new, old: (new - old).astype(old.dtype), y, params)
        return updates, ScheduleFreeState(state.b1, weight_sum, _tree.increment(state.step_count),
                                          max_lr, z)

    return optax.GradientTransformation(init, update)
