"""AMSGrad (Reddi, Kale & Kumar, 2018): Adam with a non-decreasing second moment.

    m, v as in Adam;  v_max <- max(v_max, v / (1 - b2^t))
    p <- p - lr * (m / (1 - b1^t)) / (sqrt(v_max + eps_root) + eps)

Defaults are Optax's except the learning rate (1e-2, as for Adam here).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optimizers import _tree
from optimizers.registry import register
from optimizers.space import LogUniform, Uniform


class AmsgradState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates


@register("amsgrad", learning_rate=LogUniform(1e-5, 1e-1, default=1e-2),
          b1=Uniform(0.8, 0.99, default=0.9), b2=Uniform(0.9, 0.9999, default=0.999),
          reference="optax:amsgrad")
def amsgrad(learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
            eps_root: float = 0.0) -> optax.GradientTransformation:
    def init(params):
        zeros = _tree.zeros_like(params)
        return AmsgradState(jnp.zeros([], jnp.int32), zeros, zeros, zeros)

    def update(grads, state, params=None):
        mu = _tree.ema(grads, state.mu, b1, order=1)
        nu = _tree.ema(grads, state.nu, b2, order=2)
        count = _tree.increment(state.count)
        mu_hat = _tree.bias_corrected(mu, b1, count)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, _tree.bias_corrected(nu, b2, count))
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_max)
        return _tree.scale(direction, -learning_rate), AmsgradState(count, mu, nu, nu_max)

    return optax.GradientTransformation(init, update)
