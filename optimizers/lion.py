"""Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

    d <- sign((1 - b1) * g + b1 * m)
    m <- (1 - b2) * g + b2 * m
    p <- p - lr * (d + weight_decay * p)

Defaults are Optax's (b1=0.9, b2=0.99, weight_decay=1e-3) with a learning rate of 3e-4.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optimizers import _tree
from optimizers.registry import register
from optimizers.space import LogUniform, Uniform


class LionState(NamedTuple):
    mu: optax.Updates


@register("lion", learning_rate=LogUniform(1e-5, 1e-2, default=3e-4),
          b1=Uniform(0.8, 0.99, default=0.9), reference="optax:lion")
def lion(learning_rate: float, b1: float = 0.9, b2: float = 0.99,
         weight_decay: float = 1e-3) -> optax.GradientTransformation:
    def init(params):
        return LionState(_tree.zeros_like(params))

    def update(grads, state, params=None):
        direction = jax.tree.map(lambda g, m: jnp.sign((1.0 - b1) * g + b1 * m), grads, state.mu)
        mu = _tree.ema(grads, state.mu, b2, order=1)
        direction = _tree.add_decayed_weights(direction, params, weight_decay)
        return _tree.scale(direction, -learning_rate), LionState(mu)

    return optax.GradientTransformation(init, update)
