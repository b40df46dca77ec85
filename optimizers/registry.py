"""The optimizer registry: a name -> an optax.GradientTransformation factory, its defaults
and its search space.

An optimizer is registered once, with every hyperparameter's default (taken from the
factory's signature unless `register` gives one) and the dimensions a tuner may search:

    @register("lion", learning_rate=LogUniform(1e-5, 1e-2, default=3e-4), b2=0.99,
              reference="optax:lion")
    def lion(learning_rate, b1=0.9, b2=0.99, weight_decay=0.0): ...

Only JSON-able defaults (numbers, booleans, strings, None) are hyperparameters: they go into
a cell's identity and its records. Anything else (a mask function, a line search object)
stays the factory's own business.
"""
from __future__ import annotations

import difflib
import inspect
import math
import traceback
from pathlib import Path
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optax

from optimizers.space import Dimension

# Extra keyword arguments an optimizer may ask the engine to pass to `update`.
EXTRA_ARGS = frozenset({"value", "grad", "value_fn"})
# Hyperparameters whose meaning fixes their range, whatever the optimizer.
_POSITIVE = {"learning_rate", "max_learning_rate"}
_NON_NEGATIVE = {"eps", "eps_root", "weight_decay", "initial_accumulator_value"}
_UNIT_INTERVAL = {"b1", "b2", "b3", "momentum", "decay", "beta", "rho", "decay_rate"}


def extra_update_args(needs, *, value, grad, value_fn) -> dict[str, Any]:
    """The keyword arguments, among EXTRA_ARGS, that an optimizer declared its update needs."""
    available = {"value": value, "grad": grad, "value_fn": value_fn}
    return {name: available[name] for name in needs}


class RegistryError(ValueError):
    """A user-facing problem with an optimizer name or its hyperparameters (one line)."""


@dataclass(frozen=True)
class OptimizerSpec:
    name: str
    factory: Callable[..., optax.GradientTransformation]
    defaults: Mapping[str, Any]
    space: Mapping[str, Dimension]
    reference: str | None = None
    # (opt_state, params) -> the parameters to evaluate, for optimizers such as schedule-free
    # ones whose training iterate is not the point they want judged.
    eval_params: Callable[[Any, Any], Any] | None = None
    needs: frozenset[str] = field(default_factory=frozenset)
    source: str = ""
    # Hyperparameters that may be None (default None, or `| None` in the signature).
    nullable: frozenset[str] = field(default_factory=frozenset)
    # The lowest leaf rank the optimizer handles (optax.sm3: 1; a matrix-only method: 2).
    min_leaf_rank: int = 0
    # Conformance checks known to fail, with the reason: {"zero-grad": "0/0 in the d estimate"}.
    caveats: Mapping[str, str] = field(default_factory=dict)

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by `overrides`, validated; raises RegistryError on bad input."""
        overrides = dict(overrides or {})
        for key, value in overrides.items():
            if key not in self.defaults:
                raise RegistryError(
                    f"optimizer '{self.name}' has no hyperparameter '{key}'"
                    f"{did_you_mean(key, self.defaults)}; it takes: {', '.join(sorted(self.defaults))}"
                )
            if value is None and key in self.nullable:
                continue
            _check_value(self.name, key, value, self.defaults[key])
        hparams = {**self.defaults, **overrides}
        try:
            tx = self.factory(**hparams)
        except Exception as exc:  # the factory's own validation, in its own words
            raise RegistryError(
                f"optimizer '{self.name}'{self._line_of(exc)} rejected {overrides or 'its defaults'}:"
                f" {type(exc).__name__}: {exc}".splitlines()[0]
            ) from None
        if not isinstance(tx, optax.GradientTransformation):
            raise RegistryError(f"optimizer '{self.name}' ({self.where()}) returned"
                                f" {type(tx).__name__}, not an optax.GradientTransformation")
        if self.needs and not isinstance(tx, optax.GradientTransformationExtraArgs):
            raise RegistryError(
                f"optimizer '{self.name}' ({self.where()}) needs {', '.join(sorted(self.needs))}"
                " but returns a plain GradientTransformation; return an"
                " optax.GradientTransformationExtraArgs, or wrappers drop the extra arguments")
        return hparams

    def _line_of(self, exc: BaseException) -> str:
        """' (file, line N)' of the deepest traceback frame in the factory's own file."""
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if Path(f.filename).resolve() == Path(self.source).resolve()]
        return f" ({self.source}, line {frames[-1].lineno})" if frames else ""

    def where(self) -> str:
        """file:line of the factory, for messages that send the user to the code."""
        try:
            if Path(inspect.getsourcefile(self.factory)).resolve() == Path(self.source).resolve():
                return f"{self.source}:{inspect.getsourcelines(self.factory)[1]}"
        except (OSError, TypeError):
            pass
        return f"{self.source}, {getattr(self.factory, '__module__', '?')}." \
               f"{getattr(self.factory, '__qualname__', '?')}"

    def build(self, hparams: Mapping[str, Any]) -> optax.GradientTransformation:
        return self.factory(**hparams)

    def build_injected(self, hparams: Mapping[str, Any]) -> optax.GradientTransformation:
        """The optimizer under optax.inject_hyperparams: its float hyperparameters live in
        the state as arrays (so trials can differ per vmapped member); every other argument
        of the factory (ints, flags, strings, callables) stays static."""
        return optax.inject_hyperparams(self.factory, static_args=self.static_args(hparams))(**hparams)

    def static_args(self, hparams: Mapping[str, Any]) -> tuple[str, ...]:
        floats = {k for k, v in hparams.items() if isinstance(v, float)}
        return tuple(k for k in inspect.signature(self.factory).parameters if k not in floats)


_REGISTRY: dict[str, OptimizerSpec] = {}


def register(name: str, *, reference: str | None = None,
             eval_params: Callable[[Any, Any], Any] | None = None,
             needs: tuple[str, ...] = (), min_leaf_rank: int = 0,
             caveats: Mapping[str, str] | None = None, **hyperparameters: Any):
    """Decorator registering `factory` under `name`; see the module docstring."""

    def decorator(factory: Callable[..., optax.GradientTransformation]):
        register_factory(name, factory, reference=reference, eval_params=eval_params,
                         needs=needs, min_leaf_rank=min_leaf_rank, caveats=caveats,
                         **hyperparameters)
        return factory

    return decorator


def register_factory(name: str, factory: Callable[..., optax.GradientTransformation], *,
                     reference: str | None = None,
                     eval_params: Callable[[Any, Any], Any] | None = None,
                     needs: tuple[str, ...] = (), source: str | None = None,
                     min_leaf_rank: int = 0, caveats: Mapping[str, str] | None = None,
                     **hyperparameters: Any) -> OptimizerSpec:
    if not name or not isinstance(name, str):
        raise RegistryError(f"an optimizer name must be a non-empty string, got {name!r}")
    if name in _REGISTRY:
        raise RegistryError(
            f"optimizer name '{name}' is already taken (registered by {_REGISTRY[name].source})"
        )
    unknown_needs = set(needs) - EXTRA_ARGS
    if unknown_needs:
        raise RegistryError(f"optimizer '{name}' needs unknown update arguments {sorted(unknown_needs)};"
                            f" known: {sorted(EXTRA_ARGS)}")
    defaults, space, nullable = _defaults_and_space(name, factory, hyperparameters)
    spec = OptimizerSpec(
        name=name, factory=factory, defaults=defaults, space=space, reference=reference,
        eval_params=eval_params, needs=frozenset(needs), source=source or _source_of(factory),
        nullable=nullable, min_leaf_rank=min_leaf_rank, caveats=dict(caveats or {}),
    )
    _REGISTRY[name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> OptimizerSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RegistryError(f"unknown optimizer '{name}'{did_you_mean(name, _REGISTRY)};"
                            " see `optbench list optimizers`") from None


def names() -> list[str]:
    return sorted(_REGISTRY)


def _defaults_and_space(name, factory, given: Mapping[str, Any]):
    signature = inspect.signature(factory)
    accepted = {p.name: p for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    unknown = set(given) - set(accepted)
    if unknown:
        raise RegistryError(f"optimizer '{name}': register() names {sorted(unknown)}, which its"
                            f" factory does not take ({', '.join(accepted)})")
    defaults: dict[str, Any] = {}
    space: dict[str, Dimension] = {}
    for pname, param in accepted.items():
        if pname in given:
            value = given[pname]
            if hasattr(value, "default") and not isinstance(value, (int, float, str, bool)):
                space[pname] = value
                value = value.default
        elif param.default is param.empty:
            raise RegistryError(f"optimizer '{name}': hyperparameter '{pname}' has no default;"
                                " give one to register()")
        else:
            value = param.default
        if value is None or isinstance(value, (bool, int, float, str)):
            defaults[pname] = value
    nullable = frozenset(p for p, v in defaults.items()
                         if v is None or "None" in str(accepted[p].annotation))
    return defaults, space, nullable


def _check_value(name: str, key: str, value: Any, default: Any) -> None:
    def fail(expected: str):
        raise RegistryError(f"optimizer '{name}': {key}={value!r} is invalid; expected {expected}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            fail("true or false")
        return
    if isinstance(default, str):
        if not isinstance(value, str):
            fail("a string")
        return
    if value is None:
        if default is not None:
            fail("a number")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail("a number" if not isinstance(default, bool) else "true or false")
    if isinstance(default, int) and not isinstance(value, int):
        fail("an integer")
    if not math.isfinite(value):
        fail("a finite number")
    if key in _POSITIVE and value <= 0:
        fail("a number > 0")
    if key in _NON_NEGATIVE and value < 0:
        fail("a number >= 0")
    if key in _UNIT_INTERVAL and not 0 <= value <= 1:
        fail("a number in [0, 1]")


def did_you_mean(name: str, candidates) -> str:
    """' (did you mean: a, b?)' for close matches of `name`, or ''."""
    candidates = list(candidates)
    # Also match on the part after a namespace, so 'adamw' finds 'optax:adamw'.
    short = {c.split(":", 1)[-1]: c for c in candidates}
    found = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    found += [short[s] for s in difflib.get_close_matches(name, list(short), n=3, cutoff=0.6)]
    found = list(dict.fromkeys(found))[:4]
    return f" (did you mean: {', '.join(found)}?)" if found else ""


def _source_of(factory) -> str:
    try:
        return inspect.getsourcefile(factory) or factory.__module__
    except TypeError:
        return getattr(factory, "__module__", "?")
