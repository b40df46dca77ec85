"""Models of the known-optimum workloads: a linear predictor with one output per example, and
a point in the plane."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx


class Linear(nnx.Module):
    """`x @ kernel + bias`, one value per example (shape `(n,)`): the predictor of least
    squares and binary logistic regression. The kernel starts from N(0, 1/in_features)
    drawn from `rngs.params`, the bias at 0."""

    def __init__(self, in_features: int, *, bias: bool = True, rngs: nnx.Rngs):
        self.kernel = nnx.Param(
            jax.random.normal(rngs.params(), (in_features,)) / math.sqrt(in_features))
        self.bias = nnx.Param(jnp.zeros(())) if bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        out = x.reshape(x.shape[0], -1) @ self.kernel
        return out if self.bias is None else out + self.bias


class Point(nnx.Module):
    """A point in the plane, the only parameter: its output is the position, repeated once
    per input row (the input's values are not used)."""

    def __init__(self, start):
        self.position = nnx.Param(jnp.asarray(start, dtype=jnp.float32).reshape(2))

    def __call__(self, x: jax.Array) -> jax.Array:
        return jnp.broadcast_to(self.position, (x.shape[0], 2))
