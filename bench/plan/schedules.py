"""Learning-rate schedules as a matrix axis, parameterised by fractions of the step budget.

    schedules = ["constant", {name = "warmup_cosine", warmup = 0.05},
                 {name = "wsd", warmup = 0.05, decay = 0.2}]

A schedule is a multiplier with peak 1, chained after the optimizer (built by
`bench.train.programs.schedule_multiplier`): for optimizers whose update is linear in the
learning rate (nearly all), that is the learning rate following the schedule.

- constant: 1 throughout.
- warmup_cosine: linear from 0 to 1 over `warmup` of the steps, then cosine to 0 at the end.
- wsd (warmup-stable-decay): linear warmup over `warmup`, 1 until the last `decay` of the
  steps, then linear to 0.

This module only parses and names schedules; building them is the engine's business.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from optimizers.registry import did_you_mean

DEFAULTS = {"constant": {}, "warmup_cosine": {"warmup": 0.05}, "wsd": {"warmup": 0.05, "decay": 0.2}}


class ScheduleError(ValueError):
    """A schedule that cannot be built; one line, raised before anything trains."""


@dataclass(frozen=True)
class Schedule:
    name: str = "constant"
    fractions: tuple[tuple[str, float], ...] = ()  # sorted (key, fraction of the steps)

    @property
    def constant(self) -> bool:
        return self.name == "constant"

    @property
    def label(self) -> str:
        """'constant', or e.g. 'wsd(decay=0.2, warmup=0.05)'."""
        if self.constant:
            return "constant"
        return f"{self.name}({', '.join(f'{k}={v:g}' for k, v in self.fractions)})"

    def spec(self) -> dict[str, Any] | None:
        """What goes into a cell's spec; None for constant."""
        return None if self.constant else {"name": self.name, **dict(self.fractions)}

    @classmethod
    def parse(cls, entry: Any) -> Schedule:
        """A matrix entry (a name or a table) -> a validated Schedule, defaults filled in."""
        entry = {"name": entry} if isinstance(entry, str) else dict(entry) if isinstance(entry, dict) else None
        if entry is None or not isinstance(entry.get("name"), str):
            raise ScheduleError(f"a schedule is a name or a table with a 'name'; got {entry!r}")
        name = entry.pop("name")
        if name not in DEFAULTS:
            raise ScheduleError(f"unknown schedule {name!r}{did_you_mean(name, DEFAULTS)};"
                                f" schedules: {', '.join(DEFAULTS)}")
        unknown = [k if k.isprintable() else repr(k) for k in sorted(set(entry) - set(DEFAULTS[name]))]
        if unknown:
            raise ScheduleError(f"schedule '{name}' takes {', '.join(DEFAULTS[name]) or 'nothing'};"
                                f" got {', '.join(unknown)}")
        values = {**DEFAULTS[name], **entry}
        for key, value in values.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
                raise ScheduleError(f"schedule '{name}': {key}={value!r} must be a fraction of"
                                    " the steps in [0, 1)")
        if sum(values.values()) >= 1:
            raise ScheduleError(f"schedule '{name}': warmup + decay = {sum(values.values()):g}"
                                " leaves no steps; keep their sum below 1")
        return cls(name, tuple(sorted((k, float(v)) for k, v in values.items())))
