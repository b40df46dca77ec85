"""Search-space dimensions (each carries the value used when nothing is tuned), and the
intervals a hyperparameter's values must lie in."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class LogUniform:
    """Log-uniform on [low, high]: learning rates, weight decays, epsilons."""

    low: float
    high: float
    default: float

    def __post_init__(self):
        if not (0 < self.low < self.high) or not math.isfinite(self.high):
            raise ValueError(f"LogUniform needs 0 < low < high, got [{self.low}, {self.high}]")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"default {self.default} outside [{self.low}, {self.high}]")


@dataclass(frozen=True)
class Uniform:
    """Uniform on [low, high]: momenta, betas."""

    low: float
    high: float
    default: float

    def __post_init__(self):
        if not self.low < self.high:
            raise ValueError(f"Uniform needs low < high, got [{self.low}, {self.high}]")
        if not self.low <= self.default <= self.high:
            raise ValueError(f"default {self.default} outside [{self.low}, {self.high}]")


@dataclass(frozen=True)
class Choice:
    """One of a few discrete values."""

    options: tuple[Any, ...]
    default: Any

    def __post_init__(self):
        if self.default not in self.options:
            raise ValueError(f"default {self.default!r} not among {self.options!r}")


Dimension = Union[LogUniform, Uniform, Choice]


@dataclass(frozen=True)
class Interval:
    """The values a numeric hyperparameter may take: `low` to `high`, either end open
    (excluded) or absent (unbounded). Interval(0, low_open=True) is "> 0"."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, value: float) -> bool:
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        if self.high is not None and (value >= self.high if self.high_open else value > self.high):
            return False
        return True

    def describe(self) -> str:
        """'> 0', '>= 1', 'in [0, 1)'."""
        if self.low is not None and self.high is not None:
            return (f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.high_open else ']'}")
        if self.low is not None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return "of any value"


POSITIVE = Interval(0, low_open=True)
NON_NEGATIVE = Interval(0)
DECAY = Interval(0, 1, high_open=True)  # a decay rate: 1 would freeze its average


def describe(dim: Dimension) -> str:
    if isinstance(dim, LogUniform):
        return f"log-uniform[{dim.low:g}, {dim.high:g}]"
    if isinstance(dim, Uniform):
        return f"uniform[{dim.low:g}, {dim.high:g}]"
    return "one of " + ", ".join(map(repr, dim.options))
