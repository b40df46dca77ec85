"""Adam (Kingma & Ba, 2015) and its decoupled-weight-decay and Nesterov variants.

    m <- b1 * m + (1 - b1) * g             v <- b2 * v + (1 - b2) * g^2
    m_hat = m / (1 - b1^t)                 v_hat = v / (1 - b2^t)
    d = m_hat / (sqrt(v_hat + eps_root) + eps)
    adam:   p <- p - lr * d
    adamw:  p <- p - lr * (d + weight_decay * p)        (Loshchilov & Hutter, 2019)
    nadam:  m_hat = b1 * m / (1 - b1^(t+1)) + (1 - b1) * g / (1 - b1^t)   (Dozat, 2016)

Defaults are Optax's except the learning rate: 1e-2, the MNIST-1D authors' setting.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optimizers import _tree
from optimizers.registry import register
from optimizers.space import LogUniform, Uniform


class AdamState(NamedTuple):
    count: jax.Array  # int32 scalar: steps taken
    mu: optax.Updates
    nu: optax.Updates


def scale_by_adam(b1: float, b2: float, eps: float, eps_root: float,
                  nesterov: bool = False) -> optax.GradientTransformation:
    """The Adam direction, without the learning rate."""

    def init(params):
        return AdamState(jnp.zeros([], jnp.int32), _tree.zeros_like(params), _tree.zeros_like(params))

    def update(grads, state, params=None):
        mu = _tree.ema(grads, state.mu, b1, order=1)
        nu = _tree.ema(grads, state.nu, b2, order=2)
        count = _tree.increment(state.count)
        if nesterov:
            mu_hat = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g,
                                  _tree.bias_corrected(mu, b1, _tree.increment(count)),
                                  _tree.bias_corrected(grads, b1, count))
        else:
            mu_hat = _tree.bias_corrected(mu, b1, count)
        nu_hat = _tree.bias_corrected(nu, b2, count)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v + eps_root) + eps), mu_hat, nu_hat)
        return direction, AdamState(count, mu, nu)

    return optax.GradientTransformation(init, update)


def adam_family(learning_rate, b1, b2, eps, eps_root, weight_decay, nesterov):
    """weight_decay=None (adam, nadam) means no decay term at all, decided at build time."""
    direction = scale_by_adam(b1, b2, eps, eps_root, nesterov)

    def update(grads, state, params=None):
        updates, state = direction.update(grads, state)
        if weight_decay is not None:
            updates = _tree.add_decayed_weights(updates, params, weight_decay)
        return _tree.scale(updates, -learning_rate), state

    return optax.GradientTransformation(direction.init, update)


_SPACE = dict(learning_rate=LogUniform(1e-5, 1e-1, default=1e-2),
              b1=Uniform(0.8, 0.99, default=0.9), b2=Uniform(0.9, 0.9999, default=0.999))


@register("adam", reference="optax:adam", **_SPACE)
def adam(learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
         eps_root: float = 0.0) -> optax.GradientTransformation:
    return adam_family(learning_rate, b1, b2, eps, eps_root, None, nesterov=False)


@register("adamw", reference="optax:adamw",
          weight_decay=LogUniform(1e-6, 1e-1, default=1e-4), **_SPACE)
def adamw(learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          eps_root: float = 0.0, weight_decay: float = 1e-4) -> optax.GradientTransformation:
    return adam_family(learning_rate, b1, b2, eps, eps_root, weight_decay, nesterov=False)


@register("nadam", reference="optax:nadam", **_SPACE)
def nadam(learning_rate: float, b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8,
          eps_root: float = 0.0) -> optax.GradientTransformation:
    return adam_family(learning_rate, b1, b2, eps, eps_root, None, nesterov=True)
