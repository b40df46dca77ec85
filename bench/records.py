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
    TIMEOUT = "timeout"      # the cell ran past its time limit in a worker process


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
    setup_s: float = 0.0     # initialising parameters and optimizer state, counting FLOPs
    compile_s: float = 0.0   # AOT lower().compile() of the train chunk(s) and eval
    train_s: float = 0.0     # sum of chunk times, each ended by block_until_ready
    eval_s: float = 0.0      # evaluations between chunks, on their own clock
    probe_s: float = 0.0     # timing the optimizer update alone, after training
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
class Usage:
    """What a cell's training used. Sizes are for one seed; None means the machine could not
    tell, and `missing` says why."""

    param_bytes: int | None = None        # one seed's parameters
    state_bytes: int | None = None        # one seed's optimizer state
    flops_per_step: float | None = None   # one seed, one train step: XLA's cost analysis
    peak_flops: float | None = None       # the device's dense float32 peak, when known
    update_s: float | None = None         # the optimizer update alone, all seeds, per step
    peak_device_bytes: int | None = None  # memory_stats peak_bytes_in_use (process so far)
    peak_rss_bytes: int | None = None     # host resident memory peak (process so far)
    cpu_util_mean: float | None = None    # process CPU %, psutil (100 = one core busy)
    device_util_mean: float | None = None  # GPU utilisation %, NVML
    device_util_max: float | None = None
    device_mem_peak_bytes: int | None = None  # GPU memory used, NVML (whole device)
    compiles: int = 0                     # executables compiled for training and eval
    trials_in_program: int = 1            # hyperparameter trials sharing the compiled program
    devices: int = 1                      # devices the program's members were split over
    missing: dict[str, str] = field(default_factory=dict)


@dataclass
class CellResult:
    seeds: list[SeedRecord]
    curves: dict[str, np.ndarray]  # CURVE_COLUMNS -> equal-length arrays, one row per seed x eval
    timings: Timings
    steps_trained: int
    error: str | None = None  # the traceback when the cell failed as a whole
    usage: Usage = field(default_factory=Usage)
