"""Workloads with a known optimum: the convex problems' f* and suboptimality metric, the 2-D
functions and their starting points, and the trajectory figure."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
import scipy.optimize
from flax import nnx

import optimizers
import workloads
from bench.report import trajectories
from bench.train import engine, programs
from models import Linear
from workloads import convex, functions2d

CONVEX = sorted(convex.PROBLEMS)
FUNCTIONS = ["beale-2d", "rastrigin-2d", "rosenbrock-2d", "saddle-2d"]


@pytest.mark.parametrize("name", CONVEX)
def test_the_optimum_is_a_stationary_point_in_float64(name):
    p = convex.problem(name)
    assert np.abs(p.gradient(p.solution)).max() < 1e-12
    assert np.linalg.eigvalsh(p.hessian(p.solution))[0] > 1e-6  # unique: strictly convex
    assert p.objective(p.solution) == pytest.approx(p.optimum, rel=1e-14)


@pytest.mark.parametrize("name", ["lstsq-convex", "lstsq-illcond"])
def test_least_squares_optimum_matches_the_normal_equations(name):
    p = convex.problem(name)
    a = p.design
    theta = np.linalg.solve(a.T @ a, a.T @ p.y)
    np.testing.assert_allclose(theta, p.solution, rtol=1e-8, atol=1e-9)
    assert p.objective(theta) == pytest.approx(p.optimum, rel=1e-12)


def test_logistic_optimum_matches_an_independent_solver():
    p = convex.problem("logreg-convex")
    found = scipy.optimize.minimize(p.objective, np.zeros(p.design.shape[1]), jac=p.gradient,
                                    method="BFGS", options={"gtol": 1e-11, "maxiter": 10_000})
    assert found.fun >= p.optimum - 1e-14
    assert found.fun == pytest.approx(p.optimum, abs=1e-11)
    assert 0 < p.y.sum() < len(p.y)  # both classes occur


@pytest.mark.parametrize("name", CONVEX)
def test_registered_descriptions_state_the_solved_figures(name):
    p = convex.problem(name)
    text = workloads.get(name).description
    n, d = p.x.shape
    assert f"n={n}, d={d}" in text
    assert f"f* = {p.optimum:.10f}" in text
    stated = float(re.search(r"condition number ([0-9.e+]+),", text)[1])
    assert stated == pytest.approx(p.condition_number, rel=1e-2)


def _evaluate(name, kernel, bias):
    """val_<metric> for the model with these parameters, as the engine measures them."""
    wl = workloads.get(name)
    data = wl.load_data()
    model = Linear(data.input_shape[0], rngs=nnx.Rngs(params=0))
    model.kernel[...] = jnp.asarray(kernel, jnp.float32)
    model.bias[...] = jnp.asarray(bias, jnp.float32)
    sums = jax.device_get(wl.metric_sums(model(data.x_val), data.y_val))
    return {k: float(np.float64(v) / len(data.y_val)) for k, v in sums.items()}


@pytest.mark.parametrize("name", CONVEX)
def test_suboptimality_is_zero_at_the_optimum_and_f_minus_f_star_elsewhere(name):
    p = convex.problem(name)
    at_optimum = _evaluate(name, p.weights, p.bias)
    assert 0 <= at_optimum["suboptimality"] < 1e-9
    assert at_optimum["loss"] == pytest.approx(p.optimum, abs=1e-6)
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1e-2, 0.3):
        theta = p.solution + scale * rng.standard_normal(len(p.solution))
        theta = theta.astype(np.float32).astype(np.float64)  # what the device holds
        measured = _evaluate(name, theta[:-1], theta[-1])["suboptimality"]
        exact = p.objective(theta) - p.optimum
        assert measured >= 0
        assert measured == pytest.approx(exact, rel=1e-3)


def test_full_batch_training_drives_suboptimality_down():
    wl = workloads.get("lstsq-convex")
    spec = optimizers.get("momentum")
    result = engine.train(wl, wl.load_data(), spec, spec.resolve(), steps=100, eval_every=20,
                          batch_size=wl.batch_size, seeds=[0])
    sub = result.curves["val_suboptimality"]
    assert np.all(sub >= 0) and np.all(np.diff(sub) < 0)
    assert sub[-1] < 1e-3 * sub[0]
    f_star = convex.problem("lstsq-convex").optimum
    np.testing.assert_allclose(result.curves["val_loss"] - f_star, sub, atol=1e-6)


def test_function_values_at_the_known_minima():
    assert functions2d.rosenbrock(1.0, 1.0) == 0
    assert functions2d.beale(3.0, 0.5) == 0
    assert functions2d.rastrigin(0.0, 0.0) == 0
    assert functions2d.saddle(0.0, 1.0) == functions2d.saddle(0.0, -1.0) == 0
    # saddle-2d: a saddle at the origin (gradient 0, curvatures 2 and -1)
    f = lambda p: functions2d.saddle(p[0], p[1], xp=jnp)
    origin = jnp.zeros(2)
    assert np.allclose(jax.grad(f)(origin), 0)
    np.testing.assert_allclose(np.linalg.eigvalsh(jax.hessian(f)(origin)), [-1.0, 2.0])
    for name in FUNCTIONS:
        landscape = workloads.get(name).landscape
        for x, y in landscape.minima:
            assert landscape.function(np.array([x]), np.array([y]))[0] == pytest.approx(0, abs=1e-12)
        # the training loss (float32) agrees with the drawn function
        wl = workloads.get(name)
        point = jnp.array([[0.3, -0.7]], jnp.float32)
        assert float(wl.loss(point, jnp.zeros((1, 1)))) == pytest.approx(
            landscape.function(0.3, -0.7), rel=1e-5)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_optimizer_starts_from_the_same_point_for_a_seed(name):
    wl = workloads.get(name)
    data = wl.load_data()
    starts = {}
    for optimizer in ("sgd", "adam", "optax:rmsprop"):
        spec = optimizers.get(optimizer)
        batch = engine.MemberBatch(wl, data, spec, spec.resolve(), seeds=[0, 1, 2],
                                   batch_size=wl.batch_size)
        starts[optimizer] = np.asarray(batch.params["position"][...])
    first = starts["sgd"]
    for other in starts.values():
        np.testing.assert_array_equal(other, first)
    np.testing.assert_array_equal(first[0], np.float32(wl.model.start))  # seed 0: canonical
    offsets = np.linalg.norm(first[1:] - first[0], axis=1)
    assert np.all(offsets > 0) and np.all(offsets < 1.0)  # other seeds: a small offset
    assert not np.array_equal(first[1], first[2])


def test_a_two_d_run_records_its_path_and_reaches_the_target():
    wl = workloads.get("saddle-2d")
    spec = optimizers.get("sgd")
    result = engine.train(wl, wl.load_data(), spec, spec.resolve(), steps=100, eval_every=5,
                          batch_size=wl.batch_size, seeds=[0])
    c = result.curves
    assert len(c["val_x"]) == 20
    np.testing.assert_allclose(c["val_loss"], functions2d.saddle(c["val_x"], c["val_y"]),
                               rtol=1e-4, atol=1e-7)
    assert c["val_loss"][-1] <= wl.target.value
    assert c["val_y"][-1] == pytest.approx(1.0, abs=1e-2)  # escaped the saddle upwards


def _frames(workload_names, label="adam $x$"):
    runs, curves = [], []
    for w in workload_names:
        for i, name in enumerate([label, "sgd", "gone"]):
            cell = f"{w}/{i}"
            for seed in (0, 1):
                runs.append(dict(cell_id=cell, workload=w, label=name, seed=seed,
                                 status="diverged" if name == "gone" else "done"))
                t = np.arange(1, 11, dtype=float)
                x, y = 0.2 * t * (i - 1), 1 - 0.1 * t
                if name == "gone":
                    x[1:] = np.nan
                curves.append(pd.DataFrame(dict(cell_id=cell, seed=seed, step=5 * t, val_x=x,
                                                val_y=y, val_loss=1.0)))
    return pd.DataFrame(runs), pd.concat(curves, ignore_index=True)


def test_trajectories_draws_a_png_for_landscape_workloads(tmp_path):
    runs, curves = _frames(["rosenbrock-2d", "saddle-2d", "lstsq-convex", "not-registered"])
    path = trajectories.draw(runs, curves, tmp_path)
    assert path == tmp_path / "trajectories.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_trajectories_draws_nothing_without_a_landscape(tmp_path):
    runs, curves = _frames(["lstsq-convex", "not-registered"])
    assert trajectories.draw(runs, curves, tmp_path) is None
    assert trajectories.draw(runs.iloc[:0], curves.iloc[:0], tmp_path) is None
    assert not list(tmp_path.iterdir())


def test_a_path_is_cut_where_it_leaves_the_region():
    bounds = ((-1.0, 1.0), (-1.0, 1.0))
    xs, ys, left = trajectories._cut(np.array([0.0, 0.5, 3.0, 0.0]),
                                     np.array([0.0, 0.0, 0.0, 0.0]), bounds)
    assert left and list(xs) == [0.0, 0.5, 1.0] and list(ys) == [0.0, 0.0, 0.0]
    xs, ys, left = trajectories._cut(np.array([0.0, 0.5, np.nan]), np.zeros(3), bounds)
    assert left and list(xs) == [0.0, 0.5]
    xs, ys, left = trajectories._cut(np.array([0.0, 0.5]), np.zeros(2), bounds)
    assert not left and len(xs) == 2
