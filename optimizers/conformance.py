"""The conformance suite: what every registered optimizer must do before the engine trusts it.

Each check runs on a small convex quadratic, f(p) = 1/2 sum(a * p^2) with a in [0.5, 2],
over a pytree of mixed shapes (a vector, a matrix, a rank-3 conv kernel, a scalar), at the
optimizer's registered defaults. Extra update arguments the optimizer declared (`needs`:
value, grad, value_fn) are passed, as the engine passes them, and schedule-free style
optimizers are judged at their `eval_params`. An optimizer that cannot take low-rank leaves
declares `min_leaf_rank` and gets only leaves of that rank or more; one with a known,
explained failure declares it in `caveats`, and that check must then fail (a caveat that
stops failing is reported as stale).

    results = run_checks(optimizers.get("adam"))
    assert all(r.ok for r in results)

`optbench check NAME` prints the same results as a table, each optimizer checked in a child
process (optimizers/check_process.py) so that one that hangs is stopped after a time limit;
tests/test_conformance.py runs them over the whole registry.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

from optimizers.registry import OptimizerSpec, extra_update_args

DECREASE_STEPS = 300
# The loss must fall below this fraction of where it started. Loose on purpose: a sign
# method at lr 3e-4 moves each coordinate by only 0.09 in 300 steps.
DECREASE_FACTOR = 0.9
SHAPES = {"vector": (8,), "matrix": (6, 4), "kernel": (3, 2, 4), "scalar": ()}


@dataclass(frozen=True)
class CheckResult:
    check: str
    passed: bool
    detail: str  # what was measured when it passed, what went wrong when it failed
    caveat: str = ""  # the optimizer's declared reason for this check to fail, if any

    @property
    def ok(self) -> bool:
        """Passed, or failed as declared. A declared failure that passes is not ok: the
        caveat is stale and hides nothing any more."""
        return self.passed != bool(self.caveat)

    @property
    def status(self) -> str:
        if self.caveat:
            return "stale caveat" if self.passed else "known"
        return "pass" if self.passed else "FAIL"


class CheckFailed(AssertionError):
    pass


def _shapes(min_leaf_rank: int):
    return {name: shape for name, shape in SHAPES.items() if len(shape) >= min_leaf_rank}


def _curvature(min_leaf_rank: int = 0):
    shapes = _shapes(min_leaf_rank)
    keys = jax.random.split(jax.random.key(42), len(SHAPES))
    return {name: jax.random.uniform(k, shape, minval=0.5, maxval=2.0)
            for k, (name, shape) in zip(keys, SHAPES.items()) if name in shapes}


def _start(dtype, min_leaf_rank: int = 0):
    shapes = _shapes(min_leaf_rank)
    keys = jax.random.split(jax.random.key(7), len(SHAPES))
    return {name: jax.random.normal(k, shape).astype(dtype)
            for k, (name, shape) in zip(keys, SHAPES.items()) if name in shapes}


def quadratic(params, curvature):
    return sum(0.5 * jnp.sum(curvature[k] * params[k].astype(jnp.float32) ** 2) for k in params)


class _Problem:
    """One optimizer on the quadratic, with the jitted step every check shares."""

    def __init__(self, spec: OptimizerSpec, hparams, dtype):
        self.spec, self.dtype = spec, dtype
        self.tx = spec.build(hparams)
        self.curvature = _curvature(spec.min_leaf_rank)
        self.traces = 0
        value_fn = lambda p: quadratic(p, self.curvature)  # noqa: E731

        def step(params, state):
            self.traces += 1  # runs only while tracing: counts compilations
            value, grads = jax.value_and_grad(value_fn)(params)
            grads = jax.tree.map(lambda g, p: g.astype(p.dtype), grads, params)
            extra = extra_update_args(spec.needs, value=value, grad=grads, value_fn=value_fn)
            updates, state = self.tx.update(grads, state, params, **extra)
            return optax.apply_updates(params, updates), state, updates

        self.step = jax.jit(step)
        self.init = jax.jit(self.tx.init)

    def start(self, dtype=None):
        return _start(dtype or self.dtype, self.spec.min_leaf_rank)

    def judged(self, params, state):
        if self.spec.eval_params is not None:
            params = self.spec.eval_params(state, params)
        return float(quadratic(params, self.curvature))


class _Subject:
    """The optimizer under test: its spec, resolved defaults, and one compiled problem per
    dtype, shared by the checks (so the compilation count covers all of them)."""

    def __init__(self, spec: OptimizerSpec):
        self.spec, self.hparams = spec, spec.resolve()
        self._problems: dict = {}

    def problem(self, dtype) -> _Problem:
        if dtype not in self._problems:
            self._problems[dtype] = _Problem(self.spec, self.hparams, dtype)
        return self._problems[dtype]


def _leaves_summary(tree) -> list[tuple]:
    return [(path, leaf.shape, leaf.dtype) for path, leaf in jax.tree_util.tree_leaves_with_path(tree)]


def _all_finite(tree) -> bool:
    return all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(tree)
               if jnp.issubdtype(leaf.dtype, jnp.inexact))


def check_jits(subject):
    problem = subject.problem(jnp.float32)
    params = problem.start()
    new_params, _, updates = problem.step(params, problem.init(params))
    if jax.tree.structure(updates) != jax.tree.structure(params):
        raise CheckFailed("updates do not have the parameters' tree structure")
    for (path, shape, _), (_, u_shape, _) in zip(_leaves_summary(params), _leaves_summary(updates)):
        if shape != u_shape:
            raise CheckFailed(f"update for {jax.tree_util.keystr(path)} has shape {u_shape}, not {shape}")
    return "init and update compile under jax.jit"


def _check_steady(subject, dtype):
    """Three steps from the same compiled program; state and dtypes unchanged."""
    problem = subject.problem(dtype)
    params = problem.start()
    state = problem.init(params)
    before = _leaves_summary(state)
    structure = jax.tree.structure(state)
    for _ in range(3):
        params, state, updates = problem.step(params, state)
    if jax.tree.structure(state) != structure:
        raise CheckFailed("the state's tree structure changed after an update")
    after = _leaves_summary(state)
    for (path, shape, dt), (_, shape2, dt2) in zip(before, after):
        if (shape, dt) != (shape2, dt2):
            raise CheckFailed(f"state {jax.tree_util.keystr(path)} went from {dt}{list(shape)}"
                              f" to {dt2}{list(shape2)}")
    for (path, leaf) in jax.tree_util.tree_leaves_with_path(updates):
        if leaf.dtype != dtype:
            raise CheckFailed(f"{jnp.dtype(dtype).name} params got {leaf.dtype} updates at"
                              f" {jax.tree_util.keystr(path)}")
    if problem.traces != 1:
        raise CheckFailed(f"the update compiled {problem.traces} times: the state"
                          " changes type between steps (often a weakly typed or Python scalar)")
    if not _all_finite(updates):
        raise CheckFailed(f"non-finite updates in {jnp.dtype(dtype).name}")
    return problem


def check_no_recompile(subject):
    _check_steady(subject, jnp.float32)
    return "3 steps, 1 compilation, state structure, shapes and dtypes unchanged"


def check_bfloat16(subject):
    _check_steady(subject, jnp.bfloat16)
    return "bfloat16 params get bfloat16 updates; 1 compilation"


def check_zero_gradients(subject):
    """At the minimum, where the gradient is exactly zero, nothing may become NaN or inf."""
    problem = subject.problem(jnp.float32)
    params = jax.tree.map(jnp.zeros_like, problem.start())
    state = problem.init(params)
    for step in range(5):
        params, state, updates = problem.step(params, state)
        if not (_all_finite(updates) and _all_finite(state) and _all_finite(params)):
            raise CheckFailed(f"zero gradients gave non-finite values at step {step + 1}")
    return "5 steps at zero gradient stay finite"


def check_decreases_quadratic(subject):
    problem = subject.problem(jnp.float32)
    params = problem.start()
    state = problem.init(params)
    start = problem.judged(params, state)
    for _ in range(DECREASE_STEPS):
        params, state, _ = problem.step(params, state)
    end = problem.judged(params, state)
    if not math.isfinite(end) or end > DECREASE_FACTOR * start:
        raise CheckFailed(f"loss went from {start:.4g} to {end:.4g} in {DECREASE_STEPS} steps"
                          f" at the defaults (needed < {DECREASE_FACTOR:g}x)")
    return f"loss {start:.3g} -> {end:.3g} in {DECREASE_STEPS} steps"


def traced_hyperparameter(spec, hparams) -> str | None:
    """The float hyperparameter a sweep would vary first: the learning rate if there is one."""
    floats = [k for k, v in hparams.items() if isinstance(v, float)]
    for preferred in ("learning_rate", *spec.space, *floats):
        if preferred in floats:
            return preferred
    return None


def check_inject_hyperparams(subject):
    """Two trials vmapped over a traced hyperparameter, each equal to its plain build."""
    spec, hparams = subject.spec, subject.hparams
    name = traced_hyperparameter(spec, hparams)
    if name is None:
        return "no float hyperparameter to trace"
    params = _start(jnp.float32, spec.min_leaf_rank)
    curvature = _curvature(spec.min_leaf_rank)
    value_fn = lambda p: quadratic(p, curvature)  # noqa: E731
    value, grads = jax.value_and_grad(value_fn)(params)
    extra = extra_update_args(spec.needs, value=value, grad=grads, value_fn=value_fn)

    def first_update(tx):
        return tx.update(grads, tx.init(params), params, **extra)[0]

    values = [hparams[name], hparams[name] * 0.1]
    swept = jax.jit(jax.vmap(lambda x: first_update(spec.build_injected({**hparams, name: x}))))(
        jnp.asarray(values, jnp.float32))
    for trial, value in enumerate(values):
        plain = jax.jit(lambda v=value: first_update(spec.build({**hparams, name: v})))()
        for path, leaf in jax.tree_util.tree_leaves_with_path(plain):
            got = swept[path[0].key][trial]
            scale = max(1.0, float(jnp.abs(params[path[0].key]).max()))
            if not np.allclose(got, leaf, rtol=1e-5, atol=1e-7 * scale):
                raise CheckFailed(f"with {name}={value:g} traced, the update at"
                                  f" {jax.tree_util.keystr(path)} differs from the plain build's")
    return f"2 trials vmapped over {name}, each equal to its plain build"


CHECKS: dict[str, tuple[str, Callable]] = {
    "jit": ("init and update compile under jax.jit", check_jits),
    "no-recompile": ("the second call reuses the compiled step; state is stable", check_no_recompile),
    "bfloat16": ("bfloat16 parameters keep their dtype", check_bfloat16),
    "zero-grad": ("zero gradients leave everything finite", check_zero_gradients),
    "quadratic": ("decreases a convex quadratic at the defaults", check_decreases_quadratic),
    "inject": ("works under optax.inject_hyperparams, vmapped", check_inject_hyperparams),
}


def run_checks(spec: OptimizerSpec, only: list[str] | None = None) -> list[CheckResult]:
    """Run every check (or those named in `only`); a check that raises is a failure."""
    return list(iter_checks(spec, only))


def iter_checks(spec: OptimizerSpec, only: list[str] | None = None,
                starting: Callable[[str], None] | None = None) -> Iterator[CheckResult]:
    """`run_checks` one result at a time, calling `starting(check)` before each check."""
    subject = _Subject(spec)
    unknown = sorted(set(spec.caveats) - set(CHECKS))
    if unknown:
        yield CheckResult("caveats", False, f"caveats name unknown checks {unknown};"
                          f" the checks are: {', '.join(CHECKS)}")
    for name, (_, check) in CHECKS.items():
        if only and name not in only:
            continue
        if starting is not None:
            starting(name)
        caveat = spec.caveats.get(name, "")
        try:
            yield CheckResult(name, True, check(subject), caveat)
        except CheckFailed as exc:
            yield CheckResult(name, False, str(exc), caveat)
        except Exception as exc:  # the optimizer itself raised
            yield CheckResult(name, False, raised(exc), caveat)


def raised(exc: BaseException) -> str:
    """What a check says of an optimizer that raised: the type and its message's first line."""
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"raised {type(exc).__name__}: {message}"
