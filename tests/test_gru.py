"""The GRU model and the mnist1d-gru workload."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import optimizers
import workloads
from bench.train import engine
from models import GRU


def parameter_count(params) -> int:
    return sum(math.prod(x.shape) for x in jax.tree.leaves(params))


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def reference_gru(x, w_x, w_h, b_x, b_h, kernel, bias, hidden):
    """The documented equations, one example and one time step at a time, in float64:
    per direction r, z, n, h; the backward direction reads x reversed and its output at t
    is its state after x_{T-1} ... x_t; the read-out sees (time, direction, unit)."""
    batch, time_steps, _ = x.shape
    directions = w_x.shape[0]
    features = np.zeros((batch, time_steps, directions, hidden))
    for b in range(batch):
        for d in range(directions):
            h = np.zeros(hidden)
            order = range(time_steps) if d == 0 else reversed(range(time_steps))
            for t in order:
                gx = x[b, t] @ w_x[d] + b_x[d]
                gh = h @ w_h[d] + b_h[d]
                r = _sigmoid(gx[:hidden] + gh[:hidden])
                z = _sigmoid(gx[hidden:2 * hidden] + gh[hidden:2 * hidden])
                n = np.tanh(gx[2 * hidden:] + r * gh[2 * hidden:])
                h = (1 - z) * n + z * h
                features[b, t, d] = h
    return features.reshape(batch, -1) @ kernel + bias


def abstract(make):
    """The model `make()` builds, its parameters shapes only: nothing runs or compiles."""
    return nnx.split(nnx.eval_shape(make))


@pytest.mark.parametrize("bidirectional,in_features", [(True, 1), (False, 1), (True, 3)])
def test_scanned_gru_matches_a_python_loop_of_the_equations(bidirectional, in_features):
    hidden, time_steps = 5, 7
    graphdef, shapes = abstract(lambda: GRU(4, hidden=hidden, time_steps=time_steps,
                                            in_features=in_features,
                                            bidirectional=bidirectional, rngs=nnx.Rngs(0)))
    # every parameter random, biases and the read-out's bias included
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda s: rng.normal(size=s.shape).astype(np.float32), shapes)
    model = nnx.merge(graphdef, params)
    x = rng.normal(size=(3, time_steps, in_features)).astype(np.float32)
    as_np = lambda p: np.asarray(p[...], dtype=np.float64)  # noqa: E731
    expected = reference_gru(
        x.astype(np.float64), as_np(model.w_x), as_np(model.w_h), as_np(model.b_x),
        as_np(model.b_h), as_np(model.readout.kernel), as_np(model.readout.bias), hidden)
    forward = jax.jit(lambda p, x: nnx.merge(graphdef, p)(x))
    np.testing.assert_allclose(forward(params, x), expected, rtol=1e-4, atol=1e-4)
    if in_features == 1:  # (batch, time) reads as one feature per step
        np.testing.assert_allclose(forward(params, x[..., 0]), expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def mnist1d():
    return workloads.get("mnist1d-gru").load_data()


def test_the_authors_gru_and_width_scaling(mnist1d):
    x = jax.ShapeDtypeStruct((3, 40), jnp.float32)
    for name, hidden, count in [
        ("mnist1d-gru", 6, 5134),  # as the authors' GRUBase prints
        ("mnist1d-gru@w8", 8, 2 * (24 + 8 * 24 + 2 * 24) + 2 * 8 * 40 * 10 + 10),
    ]:
        workload = workloads.get(name)
        graphdef, params = abstract(lambda: workload.build_model(mnist1d, nnx.Rngs(0)))
        model = nnx.merge(graphdef, params)
        assert isinstance(model, GRU) and model.hidden == hidden
        assert model.w_h.shape == (2, hidden, 3 * hidden)
        assert parameter_count(params) == count
        logits = jax.eval_shape(lambda p, x: nnx.merge(graphdef, p)(x), params, x)
        assert logits.shape == (3, 10)
    assert workloads.get("mnist1d-gru").model_class is GRU


def test_a_short_training_run_lowers_the_validation_loss(mnist1d):
    workload = workloads.get("mnist1d-gru@w4")
    spec = optimizers.get("adam")
    result = engine.train(workload, mnist1d, spec, spec.resolve({}), steps=300, eval_every=100,
                          batch_size=workload.batch_size, seeds=[0], probe=False)
    val_loss = result.curves["val_loss"]
    assert np.all(np.isfinite(val_loss))
    assert val_loss[-1] < val_loss[0] < np.log(10)
    assert result.curves["val_accuracy"][-1] > 0.3
