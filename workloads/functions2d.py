"""Two-dimensional test functions: the model is a point in the plane, the loss the function's
value there. Seconds-long and drawable: each registers a `Landscape`, and the report draws
the optimizers' paths over its contours (bench/report/trajectories.py).

- rosenbrock-2d: (1 - x)^2 + 100 (y - x^2)^2, a curved narrow valley; minimum 0 at (1, 1);
  start (-1.2, 1), Rosenbrock's own.
- beale-2d: (1.5 - x + xy)^2 + (2.25 - x + xy^2)^2 + (2.625 - x + xy^3)^2, flat plateaus and
  steep walls (the y^3 term); minimum 0 at (3, 0.5); start (1, 1.5).
- saddle-2d: x^2 + (y^2 - 1)^2 / 4 = x^2 - y^2/2 + y^4/4 + 1/4, the saddle x^2 - y^2/2 made
  bounded below: a saddle at (0, 0) (value 1/4, curvatures 2 and -1) on the way to two
  minima, 0 at (0, +-1); start (1.5, 0.01), just off the saddle's stable manifold (the x
  axis), so a method first runs into the saddle and must then escape it.
- rastrigin-2d: 20 + sum(x_i^2 - 10 cos(2 pi x_i)), a grid of local minima (values near
  integers' squares) around the global one, 0 at (0, 0); start (3.3, -2.6).

Starting point: the function's start for seed 0, and for seed s > 0 the start plus a seeded
offset N(0, 0.1^2 I): every optimizer starts from the same point for a given seed. The model
factory does not see the seed, only the key the engine derives from it
(`bench.train.programs.init_key`); seed 0 is recognised by that key.

Data: one dummy example; full-batch steps. Metrics: loss = f(position) and the position's
coordinates `x` and `y` (recorded for the trajectory figure, never scored). Target: val_loss
<= 1e-3, a point near the bottom (float32 evaluates these functions to about 1e-12 near their
minima). The defaults' learning rates (tuned for networks) are too large for the steep
functions: sgd and momentum diverge on rosenbrock-2d and beale-2d at their defaults.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from bench.records import Target
from bench.train.data import Dataset
from models import Point
from workloads.registry import Landscape, register_workload

METRICS = {"loss": "min", "x": None, "y": None}
TARGET = Target("val_loss", 1e-3, "min")
OFFSET_SCALE = 0.1


def rosenbrock(x, y, xp=np):
    return (1 - x) ** 2 + 100 * (y - x ** 2) ** 2


def beale(x, y, xp=np):
    return (1.5 - x + x * y) ** 2 + (2.25 - x + x * y ** 2) ** 2 + (2.625 - x + x * y ** 3) ** 2


def saddle(x, y, xp=np):
    return x ** 2 + (y ** 2 - 1) ** 2 / 4


def rastrigin(x, y, xp=np):
    return 20 + x ** 2 - 10 * xp.cos(2 * math.pi * x) + y ** 2 - 10 * xp.cos(2 * math.pi * y)


def dummy_data(name: str) -> Dataset:
    one = np.zeros((1, 1), np.float32)
    return Dataset(name, one, one, one, one, one, one)


def start_point(canonical, rngs: nnx.Rngs) -> np.ndarray:
    """`canonical` for seed 0; for other seeds, plus an offset N(0, OFFSET_SCALE^2 I) drawn
    from the seed's key."""
    from bench.train.programs import init_key

    key = rngs.params.key[...]
    start = np.asarray(canonical, dtype=np.float32)
    if (int(rngs.params.count[...]) == 0 and np.array_equal(
            jax.random.key_data(key), jax.random.key_data(init_key(0)))):
        return start
    return start + OFFSET_SCALE * np.asarray(jax.random.normal(rngs.params(), (2,)))


def _register(name: str, function, start, bounds, minima, description: str, *,
              steps: int = 500, eval_every: int = 5, log_levels: bool = True):
    f_jax = functools.partial(function, xp=jnp)

    def loss(outputs, targets):
        return jnp.mean(f_jax(outputs[:, 0], outputs[:, 1]))

    def metric_sums(outputs, targets):
        return {"loss": jnp.sum(f_jax(outputs[:, 0], outputs[:, 1])),
                "x": jnp.sum(outputs[:, 0]), "y": jnp.sum(outputs[:, 1])}

    def model(data: Dataset, rngs: nnx.Rngs):
        return Point(start_point(start, rngs))

    model.model_class = Point
    model.start = start
    register_workload(
        name, data=lambda data_dir=None: dummy_data(name), target=TARGET, batch_size=1,
        steps=steps, eval_every=eval_every, loss=loss, metric_sums=metric_sums,
        metrics=dict(METRICS), description=description,
        landscape=Landscape(functools.partial(function, xp=np), bounds, minima, log_levels),
    )(model)


_register("rosenbrock-2d", rosenbrock, (-1.2, 1.0), ((-2.0, 2.0), (-1.0, 3.0)), ((1.0, 1.0),),
          "Rosenbrock's banana valley; minimum 0 at (1, 1), start (-1.2, 1)")
_register("beale-2d", beale, (1.0, 1.5), ((-1.5, 4.5), (-2.0, 2.5)), ((3.0, 0.5),),
          "Beale's function: plateaus and steep walls; minimum 0 at (3, 0.5), start (1, 1.5)")
_register("saddle-2d", saddle, (1.5, 0.01), ((-2.0, 2.0), (-2.0, 2.0)), ((0.0, 1.0), (0.0, -1.0)),
          "x^2 + (y^2 - 1)^2 / 4: a saddle at (0, 0) between minima 0 at (0, +-1); start"
          " (1.5, 0.01), next to the saddle's stable manifold")
_register("rastrigin-2d", rastrigin, (3.3, -2.6), ((-5.12, 5.12), (-5.12, 5.12)), ((0.0, 0.0),),
          "Rastrigin's function: a grid of local minima; global minimum 0 at (0, 0),"
          " start (3.3, -2.6)", log_levels=False)
