"""Search-space dimensions: each carries the value used when nothing is tuned."""
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


def describe(dim: Dimension) -> str:
    if isinstance(dim, LogUniform):
        return f"log-uniform[{dim.low:g}, {dim.high:g}]"
    if isinstance(dim, Uniform):
        return f"uniform[{dim.low:g}, {dim.high:g}]"
    return "one of " + ", ".join(map(repr, dim.options))
