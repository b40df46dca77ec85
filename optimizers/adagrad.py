"""Adagrad (Duchi, Hazan & Singer, 2011): per-coordinate steps shrink with the sum of
squared gradients.

    s <- s + g^2           (s starts at initial_accumulator_value)
    p <- p - lr * g / sqrt(s + eps)

Defaults are Optax's (initial_accumulator_value=0.1, eps=1e-7).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optimizers import _tree
from optimizers.registry import register
from optimizers.space import LogUniform


class AdagradState(NamedTuple):
    sum_of_squares: optax.Updates


@register("adagrad", learning_rate=LogUniform(1e-4, 1.0, default=1e-2), reference="optax:adagrad")
def adagrad(learning_rate: float, initial_accumulator_value: float = 0.1,
            eps: float = 1e-7) -> optax.GradientTransformation:
    def init(params):
        return AdagradState(jax.tree.map(lambda p: jnp.full_like(p, initial_accumulator_value), params))

    def update(grads, state, params=None):
        sums = jax.tree.map(lambda g, s: g * g + s, grads, state.sum_of_squares)
        direction = jax.tree.map(
            lambda g, s: jnp.where(s > 0, jax.lax.rsqrt(s + eps), 0.0) * g, grads, sums)
        return _tree.scale(direction, -learning_rate), AdagradState(sums)

    return optax.GradientTransformation(init, update)
