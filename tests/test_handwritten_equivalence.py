"""Every hand-written optimizer against its Optax twin: same updates and parameters after
200 steps on a pytree of mixed shapes, float32, rtol 1e-5, over several settings."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import optimizers

# name -> (twin factory taking our hyperparameters, settings to try beyond the defaults)
TWINS = {
    "sgd": (lambda learning_rate: optax.sgd(learning_rate), [{"learning_rate": 0.03}]),
    "momentum": (lambda learning_rate, beta: optax.sgd(learning_rate, momentum=beta),
                 [{"beta": 0.5}, {"learning_rate": 0.2, "beta": 0.99}]),
    "nesterov": (lambda learning_rate, beta: optax.sgd(learning_rate, momentum=beta, nesterov=True),
                 [{"beta": 0.7}]),
    "adagrad": (optax.adagrad, [{"initial_accumulator_value": 0.0, "eps": 1e-5}]),
    "rmsprop": (optax.rmsprop, [{"decay": 0.99, "eps": 1e-6}]),
    "adam": (optax.adam, [{"b1": 0.8, "b2": 0.99}, {"eps_root": 1e-8, "learning_rate": 1e-3}]),
    "adamw": (optax.adamw, [{"weight_decay": 0.05}, {"b1": 0.95, "b2": 0.98, "weight_decay": 0.0}]),
    "nadam": (optax.nadam, [{"b1": 0.85, "b2": 0.995}]),
    "amsgrad": (optax.amsgrad, [{"b1": 0.8, "b2": 0.95}]),
    "lion": (optax.lion, [{"weight_decay": 0.0}, {"b1": 0.95, "b2": 0.98, "weight_decay": 0.1}]),
    # min_dim_size_to_factor 3 and 4 factor the (5, 3) matrix and the (3, 4, 6) kernel
    "adafactor": (optax.adafactor, [
        {"min_dim_size_to_factor": 3},
        {"min_dim_size_to_factor": 4, "momentum": 0.9, "weight_decay_rate": 1e-3,
         "clipping_threshold": None},
        {"multiply_by_parameter_scale": False, "decay_rate": 0.6, "factored": False},
    ]),
    "muon": (optax.contrib.muon, [
        {"beta": 0.9, "weight_decay": 0.01, "adam_weight_decay": 0.01},
        {"ns_steps": 3, "adam_b1": 0.8, "learning_rate": 0.005},
    ]),
    "schedule_free_sgd": (
        lambda learning_rate, b1, warmup_steps, weight_decay, weight_lr_power:
            optax.contrib.schedule_free_sgd(learning_rate, warmup_steps or None, b1,
                                            weight_decay, weight_lr_power),
        [{"warmup_steps": 20, "b1": 0.8}, {"weight_decay": 1e-3, "weight_lr_power": 1.0}]),
}
CASES = [(name, setting) for name, (_, settings) in TWINS.items() for setting in [{}, *settings]]


def mixed_params(key):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    return {
        "bias": jax.random.normal(k1, (7,)),
        "dense": jax.random.normal(k2, (5, 3)),
        "conv": jax.random.normal(k3, (3, 4, 6)),  # (kernel, in, out)
        "scalar": jax.random.normal(k4, ()),
    }


STEPS = 200


@functools.cache
def gradient_noise():
    """The noise added to each step's gradient, drawn once for every case: drawing it inside
    the scanned step put a threefry per leaf in each case's program, which took ~1 s of
    its ~1.3 s compile on this CPU."""
    params = mixed_params(jax.random.key(0))
    keys = dict(zip(params, jax.random.split(jax.random.key(1), len(params))))
    return {leaf: jax.random.normal(keys[leaf], (STEPS, *p.shape)) for leaf, p in params.items()}


def test_every_handwritten_optimizer_with_a_twin_is_checked():
    handwritten = {n for n in optimizers.names() if ":" not in n
                   and (optimizers.get(n).reference or "").startswith("optax:")}
    assert handwritten <= set(TWINS)


@pytest.mark.parametrize("name,setting", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_optax_twin_over_200_steps(name, setting):
    spec = optimizers.get(name)
    hparams = spec.resolve(setting)
    ours, twin = spec.build(hparams), TWINS[name][0](**hparams)
    params = mixed_params(jax.random.key(0))

    @jax.jit
    def run(params, noise):
        def step(carry, noise):
            p_ours, s_ours, p_twin, s_twin = carry
            # the same gradient for both, from a smooth loss plus noise (so signs vary)
            grads = jax.tree.map(lambda p, e: 0.5 * p + e, p_ours, noise)
            u_ours, s_ours = ours.update(grads, s_ours, p_ours)
            u_twin, s_twin = twin.update(grads, s_twin, p_twin)
            return ((optax.apply_updates(p_ours, u_ours), s_ours,
                     optax.apply_updates(p_twin, u_twin), s_twin), (u_ours, u_twin, p_twin))

        carry = (params, ours.init(params), params, twin.init(params))
        (p_ours, _, p_twin, _), (u_ours, u_twin, trajectory) = jax.lax.scan(
            step, carry, noise)
        return p_ours, p_twin, u_ours, u_twin, trajectory

    p_ours, p_twin, u_ours, u_twin, trajectory = run(params, gradient_noise())
    for leaf in params:
        assert p_ours[leaf].dtype == jnp.float32
        # rtol 1e-5, plus two float32 ulps of the parameter the update is added to: a
        # schedule-free update is the difference of two parameter values and carries
        # their rounding (elsewhere this is the atol ~1e-7 of an O(1) parameter)
        ulps = 2 * np.spacing(np.maximum(np.abs(np.asarray(trajectory[leaf])), 1.0))
        error = np.abs(np.asarray(u_ours[leaf]) - np.asarray(u_twin[leaf]))
        allowed = 1e-5 * np.abs(np.asarray(u_twin[leaf])) + ulps
        assert np.all(error <= allowed), (
            f"{leaf}: {int(np.sum(error > allowed))} updates differ by up to {error.max():.3g}")
        np.testing.assert_allclose(p_ours[leaf], p_twin[leaf], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(TWINS))
def test_numeric_hyperparameters_survive_inject_hyperparams(name):
    """Trials are vmapped over traced hyperparameters: no Python branch may look at them."""
    spec = optimizers.get(name)
    hparams = spec.resolve()
    # floats are traced; ints, booleans, strings and None shape the program and stay static
    static = tuple(k for k, v in hparams.items() if not isinstance(v, float))
    injected = optax.inject_hyperparams(spec.factory, static_args=static)(**hparams)
    plain = spec.build(hparams)
    params = mixed_params(jax.random.key(2))
    grads = jax.tree.map(jnp.ones_like, params)
    u_injected, _ = jax.jit(injected.update)(grads, injected.init(params), params)
    u_plain, _ = plain.update(grads, plain.init(params), params)
    # float32 hyperparameters round differently from Python floats: rtol as for the twins
    for leaf in params:
        np.testing.assert_allclose(u_injected[leaf], u_plain[leaf], rtol=1e-5, atol=1e-7)


def test_schedule_free_sgd_evaluates_the_same_averaged_point_as_optax():
    spec = optimizers.get("schedule_free_sgd")
    hparams = spec.resolve({"warmup_steps": 5})
    ours = spec.build(hparams)
    twin = TWINS["schedule_free_sgd"][0](**hparams)
    params = p_twin = mixed_params(jax.random.key(3))
    s_ours, s_twin = ours.init(params), twin.init(params)
    for step in range(10):
        grads = jax.tree.map(lambda p: jnp.cos(p + step), params)
        u_ours, s_ours = ours.update(grads, s_ours, params)
        u_twin, s_twin = twin.update(grads, s_twin, p_twin)
        params, p_twin = optax.apply_updates(params, u_ours), optax.apply_updates(p_twin, u_twin)
    x_ours = spec.eval_params(s_ours, params)
    x_twin = optax.contrib.schedule_free_eval_params(s_twin, p_twin)
    for leaf in params:
        np.testing.assert_allclose(x_ours[leaf], x_twin[leaf], rtol=1e-5, atol=1e-6)
        assert not np.allclose(x_ours[leaf], params[leaf])  # x really differs from y
