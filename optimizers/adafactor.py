"""Adafactor (Shazeer & Stern, 2018, "Adafactor: Adaptive Learning Rates with Sublinear
Memory Cost").

For a leaf whose two largest axes are both >= min_dim_size_to_factor, the second moment is
kept as a row and a column vector (memory sublinear in the leaf's size); other leaves keep
a full second moment, as RMSprop does:

    beta2_t = 1 - t^(-decay_rate)                          (t counts from 1)
    factored:  R <- beta2_t R + (1 - beta2_t) mean_cols(g^2 + eps)
               C <- beta2_t C + (1 - beta2_t) mean_rows(g^2 + eps)
               u = g / sqrt(outer(R / mean(R), C))
    otherwise: V <- beta2_t V + (1 - beta2_t) (g^2 + eps);   u = g / sqrt(V)
    u <- u / max(1, rms(u) / clipping_threshold)          (update clipping)
    u <- lr * u * max(rms(p), 1e-3)                       (multiply_by_parameter_scale)
    p <- p - (u + weight_decay_rate * p)

The twin is optax.adafactor. Differences in defaults: the learning rate is 1e-2 (Optax's
None means no scaling; 1e-2 is the paper's relative step size before its 1/sqrt(t) decay),
and min_dim_size_to_factor is 32 instead of 128, so that the hidden layers of this suite's
small models are factored at all. As in Optax, the weight decay is not scaled by the
learning rate, and momentum (off by default) is an undebiased EMA of the updates.
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optimizers import _tree
from optimizers.registry import register
from optimizers.space import LogUniform, Uniform

_MIN_PARAM_SCALE = 1e-3


class AdafactorState(NamedTuple):
    count: jax.Array  # int32 scalar: steps taken
    v_row: optax.Updates  # factored leaves: mean over the largest axis; else shape (1,)
    v_col: optax.Updates  # factored leaves: mean over the second largest axis; else (1,)
    v: optax.Updates  # unfactored leaves: full second moment; else shape (1,)
    # EMA of the updates; None when momentum is off. Not (1,) placeholders: eight of them
    # in a scan's carry made an MNIST-1D CNN update 27% slower than Optax's (tests/perf).
    momentum: optax.Updates | None


def factored_axes(shape, min_dim_size_to_factor: int):
    """(second largest axis, largest axis) when both are big enough to factor, else None."""
    if len(shape) < 2:
        return None
    order = np.argsort(shape)
    if shape[order[-2]] < min_dim_size_to_factor:
        return None
    return int(order[-2]), int(order[-1])


def _rms(x):
    return jnp.sqrt(jnp.mean(jnp.square(x)))


@register("adafactor", reference="optax:adafactor",
          learning_rate=LogUniform(1e-4, 1e-1, default=1e-2),
          decay_rate=Uniform(0.5, 1.0, default=0.8))
def adafactor(learning_rate: float = 1e-2, min_dim_size_to_factor: int = 32,
              decay_rate: float = 0.8, clipping_threshold: float | None = 1.0,
              multiply_by_parameter_scale: bool = True, momentum: float | None = None,
              weight_decay_rate: float | None = None, eps: float = 1e-30,
              factored: bool = True) -> optax.GradientTransformation:
    def axes(param):
        return factored_axes(param.shape, min_dim_size_to_factor) if factored else None

    def placeholder(param):
        return jnp.zeros((1,), param.dtype)

    def init(params):
        def v_row(p):
            ax = axes(p)
            return placeholder(p) if ax is None else jnp.zeros_like(p.sum(axis=ax[1]))

        def v_col(p):
            ax = axes(p)
            return placeholder(p) if ax is None else jnp.zeros_like(p.sum(axis=ax[0]))

        def v(p):
            return jnp.zeros_like(p) if axes(p) is None else placeholder(p)

        mom = _tree.zeros_like(params) if momentum is not None else None
        return AdafactorState(jnp.zeros([], jnp.int32), jax.tree.map(v_row, params),
                              jax.tree.map(v_col, params), jax.tree.map(v, params), mom)

    def update(grads, state, params=None):
        step = jnp.asarray(state.count + 1, jnp.float32)
        beta2 = 1.0 - step ** (-decay_rate)

        def scale_leaf(g, v_row, v_col, v, p):
            g_sq = jnp.square(g) + eps
            ax = axes(p)
            if ax is None:
                v = (beta2 * v + (1 - beta2) * g_sq).astype(p.dtype)
                return g * v ** -0.5, placeholder(p), placeholder(p), v
            small, large = ax
            v_row = (beta2 * v_row + (1 - beta2) * g_sq.mean(axis=large)).astype(p.dtype)
            v_col = (beta2 * v_col + (1 - beta2) * g_sq.mean(axis=small)).astype(p.dtype)
            # v_row lost axis `large`, so axis `small` sits one lower when it came after it
            row_mean = v_row.mean(axis=small - 1 if small > large else small, keepdims=True)
            row_factor = jnp.expand_dims((v_row / row_mean) ** -0.5, large)
            col_factor = jnp.expand_dims(v_col ** -0.5, small)
            return g * row_factor * col_factor, v_row, v_col, placeholder(p)

        treedef = jax.tree.structure(grads)
        per_leaf = [scale_leaf(*leaf) for leaf in zip(*(
            treedef.flatten_up_to(tree)
            for tree in (grads, state.v_row, state.v_col, state.v, params)))]
        updates, v_row, v_col, v = (treedef.unflatten(column) for column in zip(*per_leaf))
        if clipping_threshold is not None:
            updates = jax.tree.map(
                lambda u: u / jnp.maximum(1.0, _rms(u) / clipping_threshold), updates)
        updates = _tree.scale(updates, learning_rate)
        if multiply_by_parameter_scale:
            updates = jax.tree.map(lambda u, p: u * _param_scale(p), updates, params)
        mom = None
        if momentum is not None:
            mom = _tree.ema(updates, state.momentum, momentum)
            updates = mom
        if weight_decay_rate is not None:
            updates = _tree.add_decayed_weights(updates, params, weight_decay_rate)
        return (_tree.scale(updates, -1.0),
                AdafactorState(_tree.increment(state.count), v_row, v_col, v, mom))

    return optax.GradientTransformation(init, update)


def _param_scale(p):
    """max(rms(p), 1e-3), without the NaN gradient jnp.maximum would have at p = 0."""
    rms = _rms(p)
    safe = jnp.where(rms <= _MIN_PARAM_SCALE, jnp.ones_like(p), p)
    return jnp.where(rms <= _MIN_PARAM_SCALE, _MIN_PARAM_SCALE, _rms(safe))
