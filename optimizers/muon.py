"""Muon: momentum orthogonalised by Newton-Schulz (Jordan et al., 2024, "Muon: An optimizer
for hidden layers in neural networks"; Bernstein & Newhouse, 2024, "Old Optimizer, New Norm").

On matrix leaves (ndim == 2, shape fan_in x fan_out):

    m <- beta * m + (1 - beta) * g
    m_hat = beta * m / (1 - beta^(t+1)) + (1 - beta) * g / (1 - beta^t)   (Nesterov)
    O = NewtonSchulz5(m_hat / ||m_hat||_F)   ~ U V^T of m_hat = U S V^T
    p <- p - lr * (sqrt(max(1, fan_out / fan_in)) * O + weight_decay * p)

NewtonSchulz5 runs `ns_steps` iterations X <- a X + (b A + c A A) X with A = X X^T and
(a, b, c) = (3.4445, -4.7750, 2.0315), on the wide orientation of the matrix.

Every other leaf (biases, scalars, conv kernels of rank 3 or more) falls back to NAdamW
with the same learning rate, as in Optax. The twin is optax.contrib.muon; defaults are its
own except the learning rate, 2e-2 (Keller Jordan's setting for hidden layers).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from optimizers import _tree
from optimizers.adam import scale_by_adam
from optimizers.registry import register
from optimizers.space import LogUniform, Uniform

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


class MuonState(NamedTuple):
    count: jax.Array  # int32 scalar: steps taken
    mu: optax.Updates  # momentum of the matrix leaves; shape (1,) on the others
    fallback: optax.OptState  # NAdam state of the non-matrix leaves; (1,) on the matrices


def is_matrix(leaf) -> bool:
    return leaf.ndim == 2


def newton_schulz(x, steps: int, eps: float):
    """An approximate U V^T of x = U S V^T by a quintic Newton-Schulz iteration."""
    wide = x.T if x.shape[0] > x.shape[1] else x
    wide = wide / (jnp.linalg.norm(wide) + eps)
    a, b, c = (jnp.asarray(k, x.dtype) for k in NS_COEFFICIENTS)
    for _ in range(steps):  # unrolled: a handful of small matmuls
        gram = wide @ wide.T
        wide = a * wide + (b * gram + c * gram @ gram) @ wide
    return wide.T if x.shape[0] > x.shape[1] else wide


def _on(select, tree, other):
    """Leaves of `tree` where `select` holds, a (1,) placeholder of `other`'s dtype elsewhere."""
    return jax.tree.map(lambda t, o: t if select(o) else jnp.zeros((1,), o.dtype), tree, other)


@register("muon", reference="optax:muon",
          learning_rate=LogUniform(1e-4, 1e-1, default=2e-2),
          beta=Uniform(0.8, 0.99, default=0.95))
def muon(learning_rate: float, beta: float = 0.95, ns_steps: int = 5, eps: float = 1e-8,
         weight_decay: float = 0.0, adam_b1: float = 0.9, adam_b2: float = 0.999,
         adam_weight_decay: float = 0.0) -> optax.GradientTransformation:
    fallback = scale_by_adam(adam_b1, adam_b2, eps, 0.0, nesterov=True)
    not_matrix = lambda leaf: not is_matrix(leaf)  # noqa: E731

    def init(params):
        return MuonState(jnp.zeros([], jnp.int32), _on(is_matrix, _tree.zeros_like(params), params),
                         fallback.init(_on(not_matrix, params, params)))

    def update(grads, state, params=None):
        count = _tree.increment(state.count)
        mu = _on(is_matrix, _tree.ema(grads, state.mu, beta), params)
        mu_hat = jax.tree.map(lambda m, g: beta * m + (1 - beta) * g,
                              _tree.bias_corrected(mu, beta, _tree.increment(count)),
                              _tree.bias_corrected(_on(is_matrix, grads, params), beta, count))
        adam_direction, fallback_state = fallback.update(_on(not_matrix, grads, params),
                                                         state.fallback)

        def leaf_update(p, m, d):
            if not is_matrix(p):
                return -learning_rate * (d + adam_weight_decay * p)
            fan_in, fan_out = p.shape
            width = max(1.0, fan_out / fan_in) ** 0.5
            return -learning_rate * (width * newton_schulz(m, ns_steps, eps) + weight_decay * p)

        updates = jax.tree.map(leaf_update, params, mu_hat, adam_direction)
        return updates, MuonState(count, mu, fallback_state)

    return optax.GradientTransformation(init, update)
