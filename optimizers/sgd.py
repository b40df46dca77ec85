"""Plain stochastic gradient descent: p <- p - lr * g (Robbins & Monro, 1951)."""
from typing import NamedTuple

import optax

from optimizers import _tree
from optimizers.registry import register
from optimizers.space import LogUniform


class SgdState(NamedTuple):
    """SGD keeps no state."""


@register("sgd", learning_rate=LogUniform(1e-3, 1.0, default=0.1), reference="optax:sgd")
def sgd(learning_rate: float) -> optax.GradientTransformation:
    def init(params):
        return SgdState()

    def update(grads, state, params=None):
        return _tree.scale(grads, -learning_rate), state

    return optax.GradientTransformation(init, update)
