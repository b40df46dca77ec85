"""A multilayer perceptron with configurable width and depth."""
from collections.abc import Sequence

import jax
from flax import nnx


class MLP(nnx.Module):
    """Flattens its input, then `len(hidden)` ReLU layers and a linear read-out.

    The MNIST-1D authors' MLP is `MLP(40, (100, 100), 10)`.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, *, rngs: nnx.Rngs):
        widths = [in_features, *hidden]
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.readout = nnx.Linear(widths[-1], num_classes, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
        return self.readout(x)
