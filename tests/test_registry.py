import optax
import pytest

import optimizers
from optimizers import registry
from optimizers.optax_catalogue import CONTRIB, PREFIX, optax_alias_names
from optimizers.space import LogUniform


def test_every_optax_alias_and_the_contrib_set_is_registered():
    expected = {PREFIX + n for n in optax_alias_names()} | {PREFIX + n for n in CONTRIB}
    assert expected <= set(optimizers.names())
    assert {"optax:muon", "optax:schedule_free_adamw", "optax:prodigy", "optax:adopt",
            "optax:ademamix", "optax:dadapt_adamw", "optax:adam", "optax:sgd"} <= expected


@pytest.mark.parametrize("name", optimizers.names())
def test_defaults_build_a_gradient_transformation(name):
    spec = optimizers.get(name)
    hparams = spec.resolve()
    assert isinstance(spec.build(hparams), optax.GradientTransformation)
    for dim_name, dim in spec.space.items():
        assert hparams[dim_name] == dim.default


def test_schedule_free_declares_its_eval_params():
    assert optimizers.get("optax:schedule_free_adamw").eval_params is not None
    assert optimizers.get("optax:adam").eval_params is None


def test_unknown_name_suggests_close_matches():
    with pytest.raises(optimizers.RegistryError, match=r"did you mean: .*optax:yogi"):
        optimizers.get("yogi")  # only registered as optax:yogi
    with pytest.raises(optimizers.RegistryError, match=r"did you mean: adamw"):
        optimizers.get("adamww")


@pytest.mark.parametrize("overrides,message", [
    ({"lr": 0.1}, "has no hyperparameter 'lr'"),
    ({"learning_rate": -1.0}, "expected a number > 0"),
    ({"learning_rate": "fast"}, "expected a number"),
    ({"b1": 1.5}, r"expected a number in \[0, 1\)"),
    ({"b1": 1.0}, r"expected a number in \[0, 1\)"),  # b1 = 1 freezes the average
    ({"nesterov": 1}, "expected true or false"),
    ({"learning_rate": float("nan")}, "expected a finite number"),
])
def test_bad_hyperparameters_are_one_line_errors(overrides, message):
    with pytest.raises(optimizers.RegistryError, match=message) as info:
        optimizers.get("optax:adam").resolve(overrides)
    assert "\n" not in str(info.value)


def test_register_takes_defaults_from_signature_and_rejects_taken_names():
    def my_sgd(learning_rate, scale=2.0):
        return optax.sgd(learning_rate * scale)

    try:
        spec = registry.register_factory(
            "test:my_sgd", my_sgd, learning_rate=LogUniform(1e-3, 1.0, default=0.1))
        assert spec.defaults == {"learning_rate": 0.1, "scale": 2.0}
        assert set(spec.space) == {"learning_rate"}
        with pytest.raises(optimizers.RegistryError, match="already taken"):
            registry.register_factory("test:my_sgd", my_sgd, learning_rate=0.1)
    finally:
        registry.unregister("test:my_sgd")


def test_register_needs_a_default_for_every_hyperparameter():
    with pytest.raises(optimizers.RegistryError, match="has no default"):
        registry.register_factory("test:nodefault", lambda learning_rate: optax.sgd(learning_rate))
