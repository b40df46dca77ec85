"""Small pytree helpers shared by the hand-written optimizers (jax.numpy only)."""
import jax
import jax.numpy as jnp

_INT32_MAX = jnp.iinfo(jnp.int32).max


def zeros_like(params):
    return jax.tree.map(jnp.zeros_like, params)


def ema(updates, moments, decay, order=1):
    """Exponential moving average of the `order`-th power of the updates."""
    return jax.tree.map(lambda g, m: (1 - decay) * (g ** order) + decay * m, updates, moments)


def bias_corrected(moments, decay, count):
    """Divide by 1 - decay**count, computed in float32 and applied in each leaf's dtype."""
    correction = 1 - decay ** count
    return jax.tree.map(lambda m: m / correction.astype(m.dtype), moments)


def increment(count):
    """count + 1, saturating instead of overflowing int32."""
    return jnp.where(count < _INT32_MAX, count + 1, _INT32_MAX)


def scale(updates, factor):
    return jax.tree.map(lambda g: factor * g, updates)


def add_decayed_weights(updates, params, weight_decay):
    """updates + weight_decay * params. No shortcut for 0: under inject_hyperparams the
    decay is a traced array, and a Python comparison on it would fail."""
    return jax.tree.map(lambda g, p: g + weight_decay * p, updates, params)
