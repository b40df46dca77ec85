"""A small convolutional network, 1-D or 2-D, written as patches + matmul.

XLA:CPU runs convolutions with few channels slowly: on this project's 2-core machine the
MNIST-1D CNN took 3.15 ms/step with `nnx.Conv` and 1.16 ms/step written as patch extraction
(strided slices) followed by one matrix product (measured by this project's first
sessions; the design notes live outside the repository). The maths is the same as a
zero-padded cross-correlation, which `tests/test_models.py` checks against `jax.lax.conv`.
"""
import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx


def extract_patches(x: jax.Array, kernel: Sequence[int], stride: int, padding: int) -> jax.Array:
    """(batch, *spatial, channels) -> (batch, *out_spatial, prod(kernel) * channels).

    Patch features are ordered (kernel offsets..., channel), matching a conv kernel of shape
    (*kernel, in_channels, out_channels) reshaped to (prod(kernel) * in_channels, out_channels).
    """
    spatial = x.shape[1:-1]
    pad = [(0, 0)] + [(padding, padding)] * len(spatial) + [(0, 0)]
    x = jnp.pad(x, pad)
    out = [(n + 2 * padding - k) // stride + 1 for n, k in zip(spatial, kernel)]
    slices = []
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = (slice(None),) + tuple(
            slice(o, o + stride * (m - 1) + 1, stride) for o, m in zip(offset, out)
        ) + (slice(None),)
        slices.append(x[index])
    return jnp.concatenate(slices, axis=-1)


class PatchConv(nnx.Module):
    """A convolution (any number of spatial dims) as patches @ kernel + bias."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Sequence[int], *,
                 stride: int = 1, padding: int = 0, rngs: nnx.Rngs):
        self.kernel_size = tuple(kernel)
        self.stride = stride
        self.padding = padding
        init = nnx.initializers.lecun_normal()
        self.kernel = nnx.Param(init(rngs.params(), (*self.kernel_size, in_channels, out_channels)))
        self.bias = nnx.Param(jnp.zeros((out_channels,)))

    def __call__(self, x: jax.Array) -> jax.Array:
        patches = extract_patches(x, self.kernel_size, self.stride, self.padding)
        weights = self.kernel[...].reshape(-1, self.kernel.shape[-1])
        return patches @ weights + self.bias[...]


class CNN(nnx.Module):
    """Conv layers with ReLU, then flatten and a dense read-out.

    `input_shape` is (*spatial, channels). The MNIST-1D authors' CNN is
    `CNN((40, 1), channels=(25, 25, 25), kernels=(5, 3, 3), strides=(2, 2, 2))` with padding 1:
    5,210 parameters.
    """

    def __init__(self, input_shape: Sequence[int], num_classes: int, *, channels: Sequence[int],
                 kernels: Sequence[int], strides: Sequence[int], padding: int = 1, rngs: nnx.Rngs):
        *spatial, in_channels = input_shape
        layers = []
        for out_channels, k, s in zip(channels, kernels, strides, strict=True):
            kernel = (k,) * len(spatial)
            layers.append(PatchConv(in_channels, out_channels, kernel, stride=s, padding=padding, rngs=rngs))
            spatial = [(n + 2 * padding - k) // s + 1 for n in spatial]
            in_channels = out_channels
        self.convs = nnx.List(layers)
        self.readout = nnx.Linear(in_channels * math.prod(spatial), num_classes, rngs=rngs)
        self.input_shape = tuple(input_shape)

    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], *self.input_shape)
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return self.readout(x.reshape(x.shape[0], -1))
