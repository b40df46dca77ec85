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
import re
import traceback
import typing
from pathlib import Path
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import optax

from optimizers.space import DECAY, NON_NEGATIVE, POSITIVE, Dimension, Interval

# Extra keyword arguments an optimizer may ask the engine to pass to `update`.
EXTRA_ARGS = frozenset({"value", "grad", "value_fn"})
# Hyperparameters whose meaning fixes their range, whatever the optimizer; an optimizer's
# own `ranges=` (see `register`) come first.
RANGES: dict[str, Interval] = {
    **dict.fromkeys(("learning_rate", "max_learning_rate", "adam_learning_rate"), POSITIVE),
    **dict.fromkeys(("eps", "eps_root", "adam_eps_root", "weight_decay", "adam_weight_decay",
                     "weight_decay_rate", "initial_accumulator_value", "warmup_steps",
                     "min_dim_size_to_factor", "decay_offset"), NON_NEGATIVE),
    **dict.fromkeys(("b1", "b2", "b3", "beta", "beta3", "momentum", "decay", "rho",
                     "adam_b1", "adam_b2"), DECAY),
    "decay_rate": Interval(0, 1),  # Adafactor's exponent: beta2_t = 1 - t^(-decay_rate)
    "memory_size": Interval(1),
    "ns_steps": Interval(1),
}
# Float hyperparameters are used as float32 (optax.inject_hyperparams makes them float32
# arrays, and the workloads train in float32), and XLA flushes float32 subnormals to zero:
# outside these magnitudes a value is 0 or inf by the time the optimizer uses it.
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # 1.2e-38
FLOAT32_MAX = float(np.finfo(np.float32).max)  # 3.4e+38
# Integer hyperparameters end up as JAX's default int32 when they are used in arrays.
INT32 = Interval(-2**31, 2**31 - 1)
Kind = Literal["bool", "str", "int", "number"]


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
    # Hyperparameters that take whole numbers (an int default, or `int` in the signature).
    integers: frozenset[str] = field(default_factory=frozenset)
    # Allowed values declared for this optimizer (an Interval, or a tuple of the options),
    # before the name-wide RANGES; Literal[...] annotations give options too.
    ranges: Mapping[str, Interval | tuple] = field(default_factory=dict)

    def kind(self, key: str) -> Kind:
        """What `key` takes: true/false, a string, an integer or a number."""
        default = self.defaults[key]
        if isinstance(default, bool):
            return "bool"
        if isinstance(default, str):
            return "str"
        return "int" if key in self.integers else "number"

    def allowed(self, key: str) -> Interval | tuple | None:
        """The interval (or the options) `key`'s values must lie in, if any."""
        return self.ranges.get(key, RANGES.get(key))

    def check(self, key: str, value: Any) -> None:
        """Raise RegistryError (one line: what is wrong, what would be right) unless `key`
        is a hyperparameter of this optimizer and `value` one it may take."""
        if key not in self.defaults:
            raise RegistryError(
                f"optimizer '{self.name}' has no hyperparameter {key!r}"
                f"{did_you_mean(key, self.defaults)}; it takes: {', '.join(sorted(self.defaults))}"
            )
        if value is None and key in self.nullable:
            return
        _check_value(self.name, key, value, self.kind(key), self.allowed(key))

    def resolve(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by `overrides`, validated; raises RegistryError on bad input."""
        overrides = dict(overrides or {})
        for key, value in overrides.items():
            self.check(key, value)
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
             caveats: Mapping[str, str] | None = None,
             ranges: Mapping[str, Interval | tuple] | None = None, **hyperparameters: Any):
    """Decorator registering `factory` under `name`; see the module docstring. `ranges`
    gives a hyperparameter's valid values where its name alone does not (RANGES):
    `ranges={"eta": Interval(0)}`, or a tuple of the options: `{"variant": ("a", "b")}`."""

    def decorator(factory: Callable[..., optax.GradientTransformation]):
        register_factory(name, factory, reference=reference, eval_params=eval_params,
                         needs=needs, min_leaf_rank=min_leaf_rank, caveats=caveats,
                         ranges=ranges, **hyperparameters)
        return factory

    return decorator


def register_factory(name: str, factory: Callable[..., optax.GradientTransformation], *,
                     reference: str | None = None,
                     eval_params: Callable[[Any, Any], Any] | None = None,
                     needs: tuple[str, ...] = (), source: str | None = None,
                     min_leaf_rank: int = 0, caveats: Mapping[str, str] | None = None,
                     ranges: Mapping[str, Interval | tuple] | None = None,
                     **hyperparameters: Any) -> OptimizerSpec:
    if not name or not isinstance(name, str):
        raise RegistryError(f"an optimizer name must be a non-empty string, got {name!r}")
    if not name.isprintable() or len(name) > 200 or name != name.strip():
        raise RegistryError(f"optimizer name {name!r} must be printable text of at most 200"
                            " characters, without line breaks or surrounding spaces")
    if name in _REGISTRY:
        raise RegistryError(
            f"optimizer name '{name}' is already taken (registered by {_REGISTRY[name].source})"
        )
    unknown_needs = set(needs) - EXTRA_ARGS
    if unknown_needs:
        raise RegistryError(f"optimizer '{name}' needs unknown update arguments {sorted(unknown_needs)};"
                            f" known: {sorted(EXTRA_ARGS)}")
    defaults, space, nullable = _defaults_and_space(name, factory, hyperparameters)
    integers, options = _signature_types(factory, defaults)
    unknown_ranges = set(ranges or {}) - set(defaults)
    if unknown_ranges:
        raise RegistryError(f"optimizer '{name}': ranges= names {sorted(unknown_ranges)}, which"
                            f" are not among its hyperparameters ({', '.join(defaults)})")
    spec = OptimizerSpec(
        name=name, factory=factory, defaults=defaults, space=space, reference=reference,
        eval_params=eval_params, needs=frozenset(needs), source=source or _source_of(factory),
        nullable=nullable, min_leaf_rank=min_leaf_rank, caveats=dict(caveats or {}),
        integers=integers, ranges={**options, **(ranges or {})},
    )
    _REGISTRY[name] = spec
    return spec


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def get(name: str) -> OptimizerSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise RegistryError(f"unknown optimizer {name!r}{did_you_mean(name, _REGISTRY)};"
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


def _signature_types(factory, defaults: Mapping[str, Any]) -> tuple[frozenset[str], dict]:
    """(the hyperparameters that take integers, {name: options} from Literal annotations).

    An annotation of only `int` (`int | None`, `Optional[int]`) makes an integer, one of only
    `float` a number; anything else (Optax's ArrayLike, none) follows the default's type."""
    parameters = inspect.signature(factory).parameters
    integers, options = set(), {}
    for pname, default in defaults.items():
        annotation = parameters[pname].annotation
        literal = _literal_options(annotation)
        if literal:
            options[pname] = literal
        names = _annotation_names(annotation) - {"None", "NoneType", "Optional"}
        if names == {"int"} or (isinstance(default, int) and not isinstance(default, bool)
                                and names != {"float"}):
            integers.add(pname)
    return frozenset(integers), options


def _annotation_names(annotation: Any) -> set[str]:
    """{'int', 'None'} for `int | None`; the last part of every name in a string annotation."""
    if annotation is inspect.Parameter.empty:
        return set()
    if isinstance(annotation, str):
        return {word.rsplit(".", 1)[-1] for word in re.findall(r"[A-Za-z_][\w.]*", annotation)}
    if annotation is None or annotation is type(None):
        return {"None"}
    arguments = typing.get_args(annotation)
    if arguments and typing.get_origin(annotation) is not Literal:
        return set().union(*(_annotation_names(a) for a in arguments))
    return {getattr(annotation, "__name__", repr(annotation))}


def _literal_options(annotation: Any) -> tuple:
    """The values of a Literal[...] in the annotation (possibly inside an Optional)."""
    if typing.get_origin(annotation) is Literal:
        return typing.get_args(annotation)
    for argument in typing.get_args(annotation):
        if typing.get_origin(argument) is Literal:
            return typing.get_args(argument)
    return ()


def _check_value(name: str, key: str, value: Any, kind: Kind,
                 allowed: Interval | tuple | None) -> None:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."

    def fail(expected: str):
        raise RegistryError(f"optimizer '{name}': {key}={shown} is invalid; expected {expected}")

    if isinstance(allowed, tuple):
        if not any(type(value) is type(option) and value == option for option in allowed):
            hint = did_you_mean(value, map(str, allowed)) if isinstance(value, str) else ""
            fail(f"one of {', '.join(map(repr, allowed))}{hint}")
        return
    if kind in ("bool", "str"):
        if not isinstance(value, bool if kind == "bool" else str):
            fail("true or false" if kind == "bool" else "a string")
        if kind == "str" and (not value.isprintable() or len(value) > 200):
            fail("printable text of at most 200 characters (it is shown in labels)")
        return
    within = f" {allowed.describe()}" if allowed else ""
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            fail(f"an integer{within}")
        if allowed and value not in allowed:
            fail(f"an integer{within}")
        if value not in INT32:
            fail(f"an integer{within} that fits in int32 ({INT32.describe()})")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        fail("a number")
    try:
        magnitude = abs(float(value))
    except OverflowError:  # an int beyond any float
        magnitude = math.inf
    if isinstance(value, float) and not math.isfinite(value):
        fail(f"a finite number{within}")
    if allowed and value not in allowed:
        fail(f"a number{within}")
    if magnitude > FLOAT32_MAX:
        fail(f"a number{within}, at most {FLOAT32_MAX:.2g} in magnitude: larger is inf in"
             " float32, the dtype the optimizer computes in")
    if 0 < magnitude < FLOAT32_TINY:
        zero = "0 or " if not allowed or 0 in allowed else ""
        fail(f"a number{within}, {zero}at least {FLOAT32_TINY:.2g} in magnitude: smaller is 0"
             " in float32, the dtype the optimizer computes in (XLA flushes subnormals)")


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
