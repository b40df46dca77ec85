"""RMSProp (Tieleman & Hinton, 2012, lecture 6.5): divide by a running RMS of gradients.

    v <- decay * v + (1 - decay) * g^2
    p <- p - lr * g / sqrt(v + eps)

Defaults are Optax's (decay=0.9, eps=1e-8 inside the square root, v starting at 0).
"""
from typing import NamedTuple

import jax
import optax

from optimizers import _tree
from optimizers.registry import register
from optimizers.space import LogUniform, Uniform


class RmspropState(NamedTuple):
    nu: optax.Updates


@register("rmsprop", learning_rate=LogUniform(1e-5, 1e-1, default=1e-3),
          decay=Uniform(0.8, 0.999, default=0.9), reference="optax:rmsprop")
def rmsprop(learning_rate: float, decay: float = 0.9, eps: float = 1e-8) -> optax.GradientTransformation:
    def init(params):
        return RmspropState(_tree.zeros_like(params))

    def update(grads, state, params=None):
        nu = _tree.ema(grads, state.nu, decay, order=2)
        direction = jax.tree.map(lambda g, v: g * jax.lax.rsqrt(v + eps), grads, nu)
        return _tree.scale(direction, -learning_rate), RmspropState(nu)

    return optax.GradientTransformation(init, update)
