import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from models import CNN, MLP, LogisticRegression, PatchConv


def parameter_count(model) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.split(model)[1]))


@pytest.mark.parametrize("spatial,kernel,stride,padding", [
    ((40,), (5,), 2, 1), ((19,), (3,), 2, 1), ((8, 8), (3, 3), 1, 1), ((28, 28), (3, 3), 2, 1),
])
def test_patch_conv_matches_lax_conv(spatial, kernel, stride, padding):
    conv = PatchConv(3, 7, kernel, stride=stride, padding=padding, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, *spatial, 3))
    dims = "".join("HW"[: len(spatial)])
    reference = jax.lax.conv_general_dilated(
        x, conv.kernel[...], window_strides=(stride,) * len(spatial),
        padding=[(padding, padding)] * len(spatial),
        dimension_numbers=(f"N{dims}C", f"{dims}IO", f"N{dims}C"),
    ) + conv.bias[...]
    np.testing.assert_allclose(conv(x), reference, rtol=1e-5, atol=1e-5)


def test_mnist1d_cnn_has_the_authors_parameter_count():
    cnn = CNN((40, 1), 10, channels=(25, 25, 25), kernels=(5, 3, 3), strides=(2, 2, 2),
              rngs=nnx.Rngs(0))
    assert parameter_count(cnn) == 5210
    assert cnn(jnp.ones((4, 40))).shape == (4, 10)


def test_mlp_and_logreg_shapes():
    mlp = MLP(40, (100, 100), 10, rngs=nnx.Rngs(0))
    assert parameter_count(mlp) == 40 * 100 + 100 + 100 * 100 + 100 + 100 * 10 + 10
    assert mlp(jnp.ones((3, 40))).shape == (3, 10)
    logreg = LogisticRegression(64, 10, rngs=nnx.Rngs(0))
    assert logreg(jnp.ones((3, 8, 8, 1))).shape == (3, 10)


def test_2d_cnn_on_images():
    cnn = CNN((28, 28, 1), 10, channels=(16, 32), kernels=(3, 3), strides=(2, 2), rngs=nnx.Rngs(0))
    assert cnn(jnp.ones((2, 28, 28, 1))).shape == (2, 10)
