"""What training a cell produces, in plain Python and NumPy (no JAX), so that the store,
executors and reports can use it without importing the engine."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np


class Status(str, enum.Enum):
    DONE = "done"            # trained for the whole budget with finite loss
    DIVERGED = "diverged"    # loss became non-finite; `diverged_step` says when
    ERROR = "error"          # the optimizer or the engine raised; the message is kept


@dataclass
class SeedRecord:
    seed: int
    status: Status
    diverged_step: int | None = None


CURVE_COLUMNS = ("seed", "step", "train_seconds", "train_loss", "val_loss", "val_accuracy",
                 "test_loss", "test_accuracy")


@dataclass
class Timings:
    """Seconds, for the whole seed batch of one cell (seeds train together in one program)."""

    data_s: float = 0.0      # loading the dataset and moving it to the device
    compile_s: float = 0.0   # AOT lower().compile() of the train chunk(s) and eval
    train_s: float = 0.0     # sum of chunk times, each ended by block_until_ready
    eval_s: float = 0.0      # evaluations between chunks, on their own clock
    total_s: float = 0.0     # wall-clock of the whole cell
    chunk_seconds: list[float] = field(default_factory=list)
    chunk_steps: list[int] = field(default_factory=list)

    @property
    def step_times(self) -> np.ndarray:
        return np.asarray(self.chunk_seconds) / np.maximum(np.asarray(self.chunk_steps), 1)

    @property
    def step_time_median_s(self) -> float:
        return float(np.median(self.step_times)) if self.chunk_seconds else float("nan")

    @property
    def step_time_iqr_s(self) -> float:
        if not self.chunk_seconds:
            return float("nan")
        q1, q3 = np.percentile(self.step_times, [25, 75])
        return float(q3 - q1)

    @property
    def steps_per_s(self) -> float:
        return sum(self.chunk_steps) / self.train_s if self.train_s > 0 else float("nan")


@dataclass
class CellResult:
    seeds: list[SeedRecord]
    curves: dict[str, np.ndarray]  # CURVE_COLUMNS -> equal-length arrays, one row per seed x eval
    timings: Timings
    steps_trained: int
    error: str | None = None  # the traceback when the cell failed as a whole
