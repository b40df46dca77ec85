"""Learning-rate schedules as a matrix axis, parameterised by fractions of the step budget.

    schedules = ["constant", {name = "warmup_cosine", warmup = 0.05},
                 {name = "wsd", warmup = 0.05, decay = 0.2}]

A schedule is a multiplier with peak 1 (optax schedules), applied by chaining
`optax.scale_by_schedule` after the optimizer: for optimizers whose update is linear in the
learning rate (nearly all), that is the learning rate following the schedule.

- constant: 1 throughout.
- warmup_cosine: linear from 0 to 1 over `warmup` of the steps, then cosine to 0 at the end.
- wsd (warmup-stable-decay): linear warmup over `warmup`, 1 until the last `decay` of the
  steps, then linear to 0.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optax

from optimizers.registry import did_you_mean

DEFAULTS = {"constant": {}, "warmup_cosine": {"warmup": 0.05}, "wsd": {"warmup": 0.05, "decay": 0.2}}


class ScheduleError(ValueError):
    """A schedule that cannot be built; one line, raised before anything trains."""


def parse(entry: Any) -> tuple[tuple[str, Any], ...]:
    """A matrix entry -> the schedule as sorted (key, value) pairs, defaults filled in;
    `()` for constant, so that cells without a schedule keep their ids."""
    entry = {"name": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else None
    if entry is None or not isinstance(entry.get("name"), str):
        raise ScheduleError(f"a schedule is a name or a table with a 'name'; got {entry!r}")
    name = entry.pop("name")
    if name not in DEFAULTS:
        raise ScheduleError(f"unknown schedule '{name}'{did_you_mean(name, DEFAULTS)};"
                            f" schedules: {', '.join(DEFAULTS)}")
    unknown = set(entry) - set(DEFAULTS[name])
    if unknown:
        raise ScheduleError(f"schedule '{name}' takes {', '.join(DEFAULTS[name]) or 'nothing'};"
                            f" got {', '.join(sorted(unknown))}")
    values = {**DEFAULTS[name], **entry}
    for key, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise ScheduleError(f"schedule '{name}': {key}={value!r} must be a fraction of the"
                                " steps in [0, 1)")
    if sum(values.values()) >= 1:
        raise ScheduleError(f"schedule '{name}': warmup + decay = {sum(values.values()):g} leaves"
                            " no steps; keep their sum below 1")
    return () if name == "constant" else (("name", name), *sorted(values.items()))


def label(schedule: tuple[tuple[str, Any], ...]) -> str:
    if not schedule:
        return ""
    values = dict(schedule)
    name = values.pop("name")
    return f"{name}({', '.join(f'{k}={v:g}' for k, v in values.items())})"


def multiplier(schedule: Mapping[str, Any], steps: int) -> Callable | None:
    """The optax schedule with peak 1 over `steps`, or None for constant."""
    if not schedule:
        return None
    warmup = int(round(schedule["warmup"] * steps))
    if schedule["name"] == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=warmup,
                                                  decay_steps=steps, end_value=0.0)
    decay = int(round(schedule["decay"] * steps))
    return optax.join_schedules(
        [optax.linear_schedule(0.0, 1.0, max(warmup, 1)), optax.constant_schedule(1.0),
         optax.linear_schedule(1.0, 0.0, max(decay, 1))],
        boundaries=[warmup, steps - decay])


def apply(tx: optax.GradientTransformation, schedule: Mapping[str, Any], steps: int):
    """`tx` followed by the schedule's multiplier (unchanged for constant)."""
    scale = multiplier(schedule, steps)
    return tx if scale is None else optax.chain(tx, optax.scale_by_schedule(scale))
