"""Heavy-ball momentum (Polyak, 1964), in the form deep-learning libraries use:

    v <- g + beta * v
    p <- p - lr * v            (nesterov=False)
    p <- p - lr * (g + beta * v)   (nesterov=True, Sutskever et al., 2013)

Registered as `momentum` and `nesterov`; the twin is optax.sgd(lr, momentum, nesterov).
"""
from typing import NamedTuple

import jax
import optax

from optimizers import _tree
from optimizers.registry import register
from optimizers.space import LogUniform, Uniform


class MomentumState(NamedTuple):
    velocity: optax.Updates


def heavy_ball(learning_rate: float, beta: float, nesterov: bool) -> optax.GradientTransformation:
    def init(params):
        return MomentumState(velocity=_tree.zeros_like(params))

    def update(grads, state, params=None):
        velocity = jax.tree.map(lambda g, v: g + beta * v, grads, state.velocity)
        direction = (jax.tree.map(lambda g, v: g + beta * v, grads, velocity)
                     if nesterov else velocity)
        return _tree.scale(direction, -learning_rate), MomentumState(velocity)

    return optax.GradientTransformation(init, update)


_LR = LogUniform(1e-3, 1.0, default=0.05)
_BETA = Uniform(0.5, 0.99, default=0.9)


@register("momentum", learning_rate=_LR, beta=_BETA, reference="optax:sgd(momentum=beta)")
def momentum(learning_rate: float, beta: float = 0.9) -> optax.GradientTransformation:
    return heavy_ball(learning_rate, beta, nesterov=False)


@register("nesterov", learning_rate=_LR, beta=_BETA,
          reference="optax:sgd(momentum=beta, nesterov=True)")
def nesterov(learning_rate: float, beta: float = 0.9) -> optax.GradientTransformation:
    return heavy_ball(learning_rate, beta, nesterov=True)
