"""The conformance suite over the whole registry, and proof that each check can fail."""
import jax
import jax.numpy as jnp
import optax
import pytest

import optimizers
from optimizers import registry
from optimizers.conformance import CHECKS, run_checks


@pytest.mark.parametrize("name", optimizers.names())
def test_every_registered_optimizer_conforms(name):
    results = run_checks(optimizers.get(name))
    assert [r.check for r in results] == list(CHECKS)
    problems = [f"{r.check} ({r.status}): {r.detail}" for r in results if not r.ok]
    assert not problems, "\n".join(problems)


def _sgd_like(direction):
    """A stateless optimizer whose update is direction(grads, params)."""
    def factory(learning_rate: float = 0.1):
        return optax.GradientTransformation(
            lambda params: optax.EmptyState(),
            lambda grads, state, params=None: (
                jax.tree.map(lambda g, p: -learning_rate * direction(g, p), grads, params), state))
    return factory




def _weakly_typed_count(learning_rate: float = 0.1):
    """Its state starts as a Python float and comes back as a float32 array."""
    return optax.GradientTransformation(
        lambda params: (0.0,),
        lambda grads, state, params=None: (
            jax.tree.map(lambda g: -learning_rate * g, grads), (jnp.float32(state[0] + 1),)))


def _branches_on_learning_rate(learning_rate: float = 0.1):
    step = learning_rate if learning_rate < 1.0 else 1.0  # a Python branch on a hyperparameter
    return optax.sgd(step)


def _needs_value_undeclared(learning_rate: float = 0.1):
    """A damped step scaled by the loss value, which the update takes as a keyword."""
    def update(grads, state, params=None, *, value):
        damping = value / (1.0 + value)
        return jax.tree.map(lambda g: -learning_rate * damping.astype(g.dtype) * g, grads), state
    return optax.GradientTransformationExtraArgs(lambda params: optax.EmptyState(), update)


BROKEN = {
    # name: (factory, the one check expected to fail, words the failure must contain)
    "ascends": (_sgd_like(lambda g, p: -g), "quadratic", "needed <"),
    "upcasts": (_sgd_like(lambda g, p: g.astype(jnp.float32)), "bfloat16", "float32 updates"),
    "normalises": (_sgd_like(lambda g, p: g / jnp.sqrt(jnp.sum(g * g))), "zero-grad", "non-finite"),
    "weak-count": (_weakly_typed_count, "no-recompile", "compiled 2 times"),
    "python-branch": (_branches_on_learning_rate, "inject", "raised"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_each_check_catches_the_bug_it_is_for(name):
    factory, failing, words = BROKEN[name]
    registry.register_factory(f"test-{name}", factory)
    try:
        results = {r.check: r for r in run_checks(registry.get(f"test-{name}"))}
    finally:
        registry.unregister(f"test-{name}")
    assert not results[failing].passed
    assert words in results[failing].detail
    if name != "weak-count":  # a weakly typed state also changes the bfloat16 run
        assert [c for c, r in results.items() if not r.passed] == [failing]


def test_an_undeclared_update_argument_fails_every_check_that_updates():
    registry.register_factory("test-needs-value", _needs_value_undeclared)
    try:
        results = run_checks(registry.get("test-needs-value"))
    finally:
        registry.unregister("test-needs-value")
    assert all(not r.passed and "value" in r.detail for r in results)


def test_a_declared_update_argument_is_passed():
    registry.register_factory("test-needs-value", _needs_value_undeclared, needs=("value",))
    try:
        results = run_checks(registry.get("test-needs-value"))
    finally:
        registry.unregister("test-needs-value")
    assert all(r.passed for r in results), [r.detail for r in results if not r.passed]


def test_a_caveat_is_a_known_failure_and_goes_stale_when_the_check_passes():
    registry.register_factory("test-ascends", _sgd_like(lambda g, p: -g),
                              caveats={"quadratic": "it climbs", "jit": "it does not"})
    try:
        results = {r.check: r for r in run_checks(registry.get("test-ascends"))}
    finally:
        registry.unregister("test-ascends")
    assert results["quadratic"].status == "known" and results["quadratic"].ok
    assert results["jit"].status == "stale caveat" and not results["jit"].ok


def test_a_caveat_for_an_unknown_check_is_reported():
    registry.register_factory("test-typo", _sgd_like(lambda g, p: g), caveats={"quadratc": "x"})
    try:
        results = run_checks(registry.get("test-typo"))
    finally:
        registry.unregister("test-typo")
    assert results[0].check == "caveats" and "quadratc" in results[0].detail and not results[0].ok


def test_min_leaf_rank_keeps_scalar_leaves_away_from_sm3():
    assert optimizers.get("optax:sm3").min_leaf_rank == 1
    with pytest.raises(IndexError):  # the reason for the declaration
        tx = optax.sm3(0.1)
        params = {"scalar": jnp.ones(())}
        tx.update(params, tx.init(params), params)
