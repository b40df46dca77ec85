"""Convex problems with a known optimum (benchopt style): least squares and logistic
regression on fixed generated designs, their optimum solved in float64.

The objective is the empirical risk on the training design, nothing else: no held-out data,
so the validation and test splits are the training set itself and `val_suboptimality` is
f(w) - f*, the distance to the optimum in the objective's own units. Every problem is
unregularised and has a unique optimum: least squares with n > d and a full-rank design,
logistic regression on data with label noise (labels drawn from a logistic model, so not
separable). The design is generated in float64 from a fixed NumPy seed and rounded to
float32 (what the device trains on); the optimum is solved on the rounded design in float64
(least squares: `numpy.linalg.lstsq`; logistic: Newton's method to a gradient of 1e-13).

Measuring f(w) - f* in float32. Subtracting f* from a float32 sum of losses would lose
everything below about 1e-7 x f* (and the float32 sum's own rounding). Instead each example's
targets carry, beside its label, the optimum's prediction z*_i = x_i . w* + b*, and the
suboptimality is the mean of per-example Bregman divergences of the loss in the prediction,
D(z_i, z*_i) = l(z_i) - l(z*_i) - l'(z*_i) (z_i - z*_i) >= 0. Their mean is exactly
f(w) - f*, because the linear terms sum to grad f(w*) . (w - w*) = 0 when every prediction
comes from the same linear model; it is a sum of non-negative terms computed without
cancellation: least squares D = (z - z*)^2 / 2, logistic D = log1p(p* expm1(d)) - p* d with
d = z - z*, p* = sigmoid(z*). What remains is float32 rounding of the predictions and of the
stored z*: around 1e-12 for least squares and around eps32 x sqrt(f - f*) for logistic
regression (about 1e-9 at the target), far below the targets (1e-3). The `loss` metric is the
plain float32 mean loss; `loss` - f* is only good to about 1e-7.

Starting point: the model's kernel is N(0, 1/d) from the seed, the bias 0 (models/linear.py),
the same for every optimizer at a given seed. Steps are full batch (batch size = n), so a
run is deterministic given the seed.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from bench.records import Target
from bench.train.data import Dataset
from models import Linear
from workloads.registry import register_workload

METRICS = {"loss": "min", "suboptimality": "min"}
TARGET = Target("val_suboptimality", 1e-3, "min")


@dataclass(frozen=True)
class Problem:
    """One generated problem and its optimum, all float64 (the design as the device sees it:
    rounded to float32 and back)."""

    name: str
    kind: str  # "least_squares" | "logistic"
    x: np.ndarray  # (n, d)
    y: np.ndarray  # (n,)
    weights: np.ndarray  # (d,) optimum kernel
    bias: float  # optimum bias
    optimum: float  # f*

    @property
    def design(self) -> np.ndarray:
        """The design with the bias column: (n, d + 1)."""
        return np.c_[self.x, np.ones(len(self.x))]

    @property
    def solution(self) -> np.ndarray:
        return np.r_[self.weights, self.bias]

    def objective(self, theta: np.ndarray) -> float:
        """f(kernel, bias) in float64, theta = (kernel..., bias)."""
        z = self.design @ theta
        if self.kind == "least_squares":
            return float(0.5 * np.mean((z - self.y) ** 2))
        return float(np.mean(np.logaddexp(0.0, z) - self.y * z))

    def gradient(self, theta: np.ndarray) -> np.ndarray:
        a = self.design
        z = a @ theta
        if self.kind == "least_squares":
            return a.T @ (z - self.y) / len(z)
        return a.T @ (_sigmoid(z) - self.y) / len(z)

    def hessian(self, theta: np.ndarray) -> np.ndarray:
        a = self.design
        if self.kind == "least_squares":
            return a.T @ a / len(a)
        p = _sigmoid(a @ theta)
        return (a * (p * (1 - p))[:, None]).T @ a / len(a)

    @property
    def condition_number(self) -> float:
        """Of the Hessian at the optimum (kernel and bias)."""
        eig = np.linalg.eigvalsh(self.hessian(self.solution))
        return float(eig[-1] / eig[0])

    def dataset(self) -> Dataset:
        """Every split is the training design. Targets: (label, the optimum's prediction)."""
        targets = np.c_[self.y, self.design @ self.solution]
        return Dataset(self.name, self.x, targets, self.x, targets, self.x, targets)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _as_float32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float32).astype(np.float64)


def _correlated_design(rng, n: int, d: int, rho: float) -> np.ndarray:
    """Gaussian features with unit variance and correlation rho^|i-j| (benchopt's simulated
    design)."""
    cov = rho ** np.abs(np.subtract.outer(np.arange(d), np.arange(d)))
    return rng.standard_normal((n, d)) @ np.linalg.cholesky(cov).T


def _spectral_design(rng, n: int, d: int, kappa: float) -> np.ndarray:
    """Centred features whose covariance X^T X / n has eigenvalues log-spaced from 1 down to
    1/kappa in random directions; centred, so the bias decouples (its eigenvalue is 1) and
    the Hessian's condition number is kappa."""
    g = rng.standard_normal((n, d))
    u, _ = np.linalg.qr(g - g.mean(0))  # orthonormal columns, orthogonal to the ones vector
    v, _ = np.linalg.qr(rng.standard_normal((d, d)))
    return np.sqrt(n) * (u * np.sqrt(np.logspace(0, -np.log10(kappa), d))) @ v.T


def solve_least_squares(name, x, y) -> Problem:
    x, y = _as_float32(x), _as_float32(y)
    a = np.c_[x, np.ones(len(x))]
    theta, _, rank, _ = np.linalg.lstsq(a, y, rcond=None)
    if rank < a.shape[1]:
        raise ValueError(f"{name}: the design is rank deficient ({rank} < {a.shape[1]})")
    return Problem(name, "least_squares", x, y, theta[:-1], float(theta[-1]),
                   float(0.5 * np.mean((a @ theta - y) ** 2)))


def solve_logistic(name, x, y, tol: float = 1e-13) -> Problem:
    """Newton's method with backtracking from 0, in float64, to max |gradient| <= tol."""
    x, y = _as_float32(x), y.astype(np.float64)
    problem = Problem(name, "logistic", x, y, np.zeros(x.shape[1]), 0.0, np.nan)
    theta = np.zeros(x.shape[1] + 1)
    value = problem.objective(theta)
    for _ in range(100):
        grad = problem.gradient(theta)
        if np.abs(grad).max() <= tol:
            break
        step = np.linalg.solve(problem.hessian(theta), grad)
        t = 1.0
        while problem.objective(theta - t * step) > value + 1e-4 * t * (grad @ -step) and t > 1e-10:
            t /= 2
        theta = theta - t * step
        value = problem.objective(theta)
    else:
        raise ValueError(f"{name}: Newton's method did not converge (data separable?)")
    return Problem(name, "logistic", x, y, theta[:-1], float(theta[-1]), value)


@functools.cache
def problem(name: str) -> Problem:
    """The generated problem `name` (one of PROBLEMS), solved; cached per process."""
    return PROBLEMS[name]()


def _lstsq_convex() -> Problem:
    rng = np.random.default_rng(20240601)
    n, d = 500, 20
    x = _correlated_design(rng, n, d, rho=0.5)
    w = rng.standard_normal(d) * 2 / np.sqrt(d)
    return solve_least_squares("lstsq-convex", x, x @ w + 0.3 + 0.5 * rng.standard_normal(n))


def _lstsq_illcond() -> Problem:
    rng = np.random.default_rng(20240602)
    n, d = 500, 50
    x = _spectral_design(rng, n, d, kappa=1e3)
    w = rng.standard_normal(d)
    return solve_least_squares("lstsq-illcond", x, x @ w + 0.3 + 0.5 * rng.standard_normal(n))


def _logreg_convex() -> Problem:
    rng = np.random.default_rng(20240603)
    n, d = 1000, 20
    x = _correlated_design(rng, n, d, rho=0.5)
    w = rng.standard_normal(d) * 3 / np.sqrt(d)
    labels = rng.random(n) < _sigmoid(x @ w - 0.2)  # label noise: not separable
    return solve_logistic("logreg-convex", x, labels)


PROBLEMS = {"lstsq-convex": _lstsq_convex, "lstsq-illcond": _lstsq_illcond,
            "logreg-convex": _logreg_convex}


# --- losses and metrics: targets[:, 0] the label, targets[:, 1] the optimum's prediction ---

def least_squares_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    return 0.5 * jnp.mean(jnp.square(outputs - targets[:, 0]))


def least_squares_sums(outputs: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    return {"loss": 0.5 * jnp.sum(jnp.square(outputs - targets[:, 0])),
            "suboptimality": 0.5 * jnp.sum(jnp.square(outputs - targets[:, 1]))}


def _logistic_losses(z, labels):
    return jax.nn.softplus(z) - labels * z


def logistic_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    return jnp.mean(_logistic_losses(outputs, targets[:, 0]))


def logistic_sums(outputs: jax.Array, targets: jax.Array) -> dict[str, jax.Array]:
    z_star = targets[:, 1]
    d = outputs - z_star
    p = jax.nn.sigmoid(z_star)
    # softplus(z* + d) - softplus(z*) = log(1 - p + p e^d): log1p(p expm1(d)) keeps its
    # precision for small d, the logaddexp form does not overflow for large d
    near = jnp.log1p(p * jnp.expm1(jnp.minimum(d, 1.0)))
    far = jnp.logaddexp(jax.nn.log_sigmoid(-z_star), jax.nn.log_sigmoid(z_star) + d)
    bregman = jnp.maximum(jnp.where(jnp.abs(d) < 1.0, near, far) - p * d, 0.0)  # >= 0 exactly
    return {"loss": jnp.sum(_logistic_losses(outputs, targets[:, 0])),
            "suboptimality": jnp.sum(bregman)}


def _linear(data: Dataset, rngs):
    return Linear(data.input_shape[0], rngs=rngs)


_linear.model_class = Linear


def _register(name: str, kind: str, what: str, *, n: int, d: int, condition: float,
              optimum: float, steps: int, eval_every: int):
    """The problem's figures are written out (solving every problem whenever the workloads
    load would cost every command ~0.2 s); tests/test_known_optima.py checks them against
    the solve."""
    loss, sums = ((least_squares_loss, least_squares_sums) if kind == "least_squares"
                  else (logistic_loss, logistic_sums))
    register_workload(
        name, data=lambda data_dir=None: problem(name).dataset(), target=TARGET, batch_size=n,
        steps=steps, eval_every=eval_every, loss=loss, metric_sums=sums, metrics=dict(METRICS),
        description=f"{what}: n={n}, d={d} (+ bias), condition number {condition:.3g},"
                    f" f* = {optimum:.10f}; full batch, validated on the training set",
    )(_linear)


_register("lstsq-convex", "least_squares", "least squares, correlated Gaussian design (rho 0.5)",
          n=500, d=20, condition=10.93, optimum=0.1220010040, steps=500, eval_every=10)
_register("lstsq-illcond", "least_squares",
          "least squares, ill-conditioned design (covariance eigenvalues 1 to 1e-3)",
          n=500, d=50, condition=1000.0, optimum=0.1066343316, steps=2000, eval_every=40)
_register("logreg-convex", "logistic",
          "logistic regression, correlated Gaussian design (rho 0.5), labels with noise",
          n=1000, d=20, condition=10.77, optimum=0.3705727807, steps=1000, eval_every=20)
