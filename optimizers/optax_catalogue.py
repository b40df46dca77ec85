"""The Optax catalogue: every `optax` alias, and a few `optax.contrib` ones, as `optax:<name>`.

Defaults suit this suite's small networks; the search spaces are the ranges a tuner should
try. The Adam family defaults to a learning rate of 1e-2, the MNIST-1D authors' setting
(Optax's own examples use 1e-3, which leaves the MNIST-1D MLP at ~60% and the CNN at ~83%
test accuracy after 6000 steps instead of ~66% and ~93%). An alias a newer Optax adds is still registered (with the generic
adaptive-method default learning rate) so that the catalogue never silently lags Optax.
"""
import inspect
import warnings

import optax
import optax.contrib
from optax._src import alias as _alias_module

from optimizers.registry import register_factory
from optimizers.space import NON_NEGATIVE, POSITIVE, Choice, Interval, LogUniform, Uniform

PREFIX = "optax:"

_ADAPTIVE_LR = LogUniform(1e-5, 1e-1, default=1e-3)
_ADAM_LR = LogUniform(1e-5, 1e-1, default=1e-2)
_SGD_LR = LogUniform(1e-3, 1.0, default=1e-1)
_B1 = Uniform(0.8, 0.99, default=0.9)
_B2 = Uniform(0.9, 0.9999, default=0.999)
_WEIGHT_DECAY = LogUniform(1e-6, 1e-1, default=1e-4)
_ADAM_LIKE = dict(learning_rate=_ADAM_LR, b1=_B1, b2=_B2)


def _lr(low, high, default):
    return dict(learning_rate=LogUniform(low, high, default=default))


# Known failures of the conformance suite (optimizers/conformance.py), each re-checked in CI:
# if Optax fixes one, the suite reports the caveat as stale.
_LBFGS_WEAK_INFO = ("Optax initialises the line-search info with weakly typed scalars that the"
                    " first update makes strong, so a plain jit loop compiles twice (the"
                    " engine's lax.scan promotes them and compiles once)")
_D_ADAPTATION_ZERO = ("the step-size estimate divides by the sum of gradient magnitudes seen so"
                      " far, 0/0 = NaN while every gradient has been exactly zero")

# name -> register() keyword arguments (hyperparameter defaults, search space, needs)
ALIASES = {
    "adabelief": _ADAM_LIKE,
    "adadelta": _lr(1e-2, 10.0, 1.0),
    "adafactor": _lr(1e-4, 1e-1, 1e-2),
    "adagrad": _lr(1e-4, 1.0, 1e-2),
    "adam": _ADAM_LIKE,
    "adamax": dict(_ADAM_LIKE, learning_rate=LogUniform(1e-5, 1e-1, default=2e-3)),
    "adamaxw": dict(_ADAM_LIKE, learning_rate=LogUniform(1e-5, 1e-1, default=2e-3),
                    weight_decay=_WEIGHT_DECAY),
    "adamw": dict(_ADAM_LIKE, weight_decay=_WEIGHT_DECAY),
    "adan": dict(learning_rate=_ADAPTIVE_LR),
    "amsgrad": _ADAM_LIKE,
    "fromage": _lr(1e-4, 1e-1, 1e-2),
    "lamb": dict(_ADAM_LIKE, weight_decay=_WEIGHT_DECAY),
    "lars": _lr(1e-3, 10.0, 1e-1),
    # L-BFGS brings its own zoom line search: no learning rate to tune.
    "lbfgs": dict(memory_size=Choice((5, 10, 20), default=10), needs=("value", "grad", "value_fn"),
                  caveats={"no-recompile": _LBFGS_WEAK_INFO, "bfloat16": _LBFGS_WEAK_INFO}),
    "lion": dict(learning_rate=LogUniform(1e-5, 1e-2, default=3e-4), b1=_B1),
    "nadam": _ADAM_LIKE,
    "nadamw": dict(_ADAM_LIKE, weight_decay=_WEIGHT_DECAY),
    "noisy_sgd": dict(learning_rate=_SGD_LR, seed=0),
    "novograd": _lr(1e-4, 1.0, 1e-2),
    "polyak_sgd": dict(max_learning_rate=LogUniform(1e-2, 10.0, default=1.0), needs=("value",)),
    "radam": _ADAM_LIKE,
    "rmsprop": dict(learning_rate=_ADAPTIVE_LR, decay=Uniform(0.8, 0.999, default=0.9)),
    "rprop": _lr(1e-4, 1e-1, 1e-3),
    "sgd": dict(learning_rate=_SGD_LR),
    "sign_sgd": _lr(1e-5, 1e-1, 1e-3),
    "signum": dict(learning_rate=LogUniform(1e-5, 1e-1, default=1e-3), beta=_B1),
    "sm3": dict(_lr(1e-4, 1.0, 1e-2), min_leaf_rank=1),  # IndexError on rank-0 leaves
    "yogi": _lr(1e-4, 1e-1, 1e-2),
}

CONTRIB = {
    "muon": _lr(1e-4, 1e-1, 2e-2),
    "schedule_free_adamw": dict(
        learning_rate=LogUniform(1e-5, 1e-1, default=2.5e-3), b1=_B1,
        eval_params=lambda state, params: optax.contrib.schedule_free_eval_params(state, params),
    ),
    "schedule_free_sgd": dict(
        learning_rate=LogUniform(1e-2, 10.0, default=1.0), b1=_B1,
        eval_params=lambda state, params: optax.contrib.schedule_free_eval_params(state, params),
    ),
    "prodigy": dict(_lr(1e-1, 10.0, 1.0), caveats={"zero-grad": _D_ADAPTATION_ZERO}),
    "adopt": _ADAM_LIKE,
    "ademamix": dict(learning_rate=_ADAPTIVE_LR, b1=_B1),
    "dadapt_adamw": dict(_lr(1e-1, 10.0, 1.0), caveats={"zero-grad": _D_ADAPTATION_ZERO}),
}

# Valid values where a hyperparameter's name alone does not say (the registry's RANGES
# cover learning rates, epsilons, decay rates, ...): what each alias's docstring or maths
# requires. Checked before anything trains; a value outside is a one-line error.
RANGES = {
    "adafactor": {"clipping_threshold": Interval(1)},  # "Must be >= 1" (Optax's docstring)
    "ademamix": {"alpha": NON_NEGATIVE},
    "dadapt_adamw": {"estim_lr0": POSITIVE},
    "fromage": {"min_norm": NON_NEGATIVE},
    "lars": {"trust_coefficient": POSITIVE},
    # eta is the noise's initial variance, gamma the exponent of its decay (1 + t)^-gamma
    "noisy_sgd": {"eta": NON_NEGATIVE, "gamma": NON_NEGATIVE, "seed": NON_NEGATIVE},
    "polyak_sgd": {"scaling": POSITIVE, "variant": ("sps", "sps+")},
    "prodigy": {"estim_lr0": POSITIVE, "estim_lr_coef": POSITIVE},
    "rmsprop": {"initial_scale": NON_NEGATIVE},
    # Rprop shrinks steps by eta_minus < 1 and grows them by eta_plus > 1, between the bounds
    "rprop": {"eta_minus": Interval(0, 1, low_open=True, high_open=True),
              "eta_plus": Interval(1, low_open=True), "min_step_size": NON_NEGATIVE,
              "max_step_size": POSITIVE},
    "schedule_free_adamw": {"weight_lr_power": NON_NEGATIVE},
    "schedule_free_sgd": {"weight_lr_power": NON_NEGATIVE},
}

# Callables in optax's alias module that are not optimizers.
NOT_OPTIMIZERS = {"MaskOrFn"}


def optax_alias_names() -> list[str]:
    """Every optimizer factory Optax exports from its alias module."""
    names = []
    for name in optax.__all__:
        obj = getattr(_alias_module, name, None)
        if callable(obj) and not inspect.isclass(obj) and name not in NOT_OPTIMIZERS:
            names.append(name)
    return sorted(names)


def register_catalogue() -> None:
    source = __file__
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for name in optax_alias_names():
            kwargs = ALIASES.get(name)
            if kwargs is None:  # an alias newer than this table
                kwargs = {"learning_rate": _ADAPTIVE_LR}
            register_factory(PREFIX + name, getattr(optax, name), reference=f"optax:{name}",
                             source=source, ranges=RANGES.get(name), **kwargs)
        for name, kwargs in CONTRIB.items():
            register_factory(PREFIX + name, getattr(optax.contrib, name),
                             reference=f"optax.contrib:{name}", source=source,
                             ranges=RANGES.get(name), **kwargs)
