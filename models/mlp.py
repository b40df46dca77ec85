"""A multilayer perceptron with configurable width and depth, optionally residual."""
from collections.abc import Sequence

import jax
from flax import nnx


class MLP(nnx.Module):
    """Flattens its input, then `len(hidden)` ReLU layers and a linear read-out.

    With `residual=True`, every hidden layer after the first adds its input to its output,
    `h = h + relu(linear(h))` (the widths must then be equal). The MNIST-1D authors' MLP
    (Greydanus, 2020, `models.py` of the mnist1d package) is `MLP(40, (100, 100), 10,
    residual=True)`.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, *,
                 residual: bool = False, rngs: nnx.Rngs):
        widths = [in_features, *hidden]
        if residual and len(set(hidden)) > 1:
            raise ValueError(f"a residual MLP needs equal hidden widths, got {tuple(hidden)}")
        self.hidden = nnx.List(
            [nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])]
        )
        self.readout = nnx.Linear(widths[-1], num_classes, rngs=rngs)
        self.residual = residual

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for index, layer in enumerate(self.hidden):
            out = jax.nn.relu(layer(x))
            x = x + out if self.residual and index > 0 else out
        return self.readout(x)
