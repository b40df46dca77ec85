"""The vocabulary every stage shares, in plain Python and NumPy (no JAX): what a workload
aims at (`Target`), and what training a cell produces (`CellResult`). The store, the
executors and the reports use it without importing the engine."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Direction = Literal["max", "min"]


class Status(str, enum.Enum):
    DONE = "done"            # trained for the whole budget with finite loss
    DIVERGED = "diverged"    # loss became non-finite; `diverged_step` says when
    ERROR = "error"          # the optimizer or the engine raised; the message is kept
    TIMEOUT = "timeout"      # the cell ran past its time limit in a worker process


@dataclass(frozen=True)
class Target:
    """The point time-to-target is measured at: `metric` (a curve column) reaching `value`,
    where `direction` says which way is better ("max": reached at >= value)."""

    metric: str
    value: float
    direction: Direction = "max"

    def __post_init__(self):
        if self.direction not in ("max", "min"):
            raise ValueError(f"a target's direction is 'max' or 'min', not {self.direction!r}")

    def reached(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=float)
        return values >= self.value if self.direction == "max" else values <= self.value

    def better(self, a: float, b: float) -> bool:
        """Is `a` strictly better than `b`? (NaN is never better.)"""
        if math.isnan(a):
            return False
        return math.isnan(b) or (a > b if self.direction == "max" else a < b)

    def describe(self) -> str:
        return f"{self.metric} {'≥' if self.direction == 'max' else '≤'} {self.value:g}"


@dataclass
class SeedRecord:
    seed: int
    status: Status
    diverged_step: int | None = None


@dataclass
class Timings:
    """Seconds, for the whole program a cell trained in (its seeds, and in a sweep its
    sibling trials, train together)."""

    data_s: float = 0.0      # loading the dataset and moving it to the device
    setup_s: float = 0.0     # initialising parameters and optimizer state, counting FLOPs
    compile_s: float = 0.0   # AOT lower().compile() of the train chunk(s) and eval
    compile_cached_s: float = 0.0  # the same executables loaded from the persistent cache
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
        return float(np.median(self.step_times)) if self.chunk_seconds else math.nan

    @property
    def step_time_iqr_s(self) -> float:
        if not self.chunk_seconds:
            return math.nan
        q1, q3 = np.percentile(self.step_times, [25, 75])
        return float(q3 - q1)

    @property
    def steps_per_s(self) -> float:
        return sum(self.chunk_steps) / self.train_s if self.train_s > 0 else math.nan

    def record(self) -> dict[str, float | list]:
        """The stored form: every field plus the derived step-time figures."""
        return {**self.__dict__, "step_time_median_s": self.step_time_median_s,
                "step_time_iqr_s": self.step_time_iqr_s, "steps_per_s": self.steps_per_s}


@dataclass
class Usage:
    """What a cell's training used. Sizes are for one seed; None means the machine could not
    tell, and `missing` says why. The sampler's summary keys are these field names."""

    param_count: int | None = None        # one seed's parameters (scalars)
    param_bytes: int | None = None        # one seed's parameters
    state_bytes: int | None = None        # one seed's optimizer state
    flops_per_step: float | None = None   # one seed, one train step: XLA's cost analysis
    peak_flops: float | None = None       # the device's dense float32 peak, when known
    update_s: float | None = None         # the optimizer update alone, all seeds, per step
    peak_device_bytes: int | None = None  # memory_stats peak_bytes_in_use (process so far)
    peak_rss_bytes: int | None = None     # host resident memory peak (process so far)
    cpu_util_mean: float | None = None    # process CPU %, psutil (100 = one core busy)
    rss_sampled_peak_bytes: int | None = None  # highest RSS sampled while the cell trained
    device_util_mean: float | None = None  # GPU utilisation %, NVML
    device_util_max: float | None = None
    device_mem_peak_bytes: int | None = None  # GPU memory used, NVML (whole device)
    usage_samples: int = 0                # how many times the sampler read the counters
    compiles: int = 0                     # executables compiled for training and eval
    compile_cache_hits: int = 0           # of those, loaded from the persistent cache
    trials_in_program: int = 1            # hyperparameter trials sharing the compiled program
    devices: int = 1                      # devices the program's members were split over
    missing: dict[str, str] = field(default_factory=dict)


Phase = Literal["data", "compile", "train", "eval"]


@dataclass(frozen=True)
class ProgramEvent:
    """What a program reports while it runs, in order: `data` (loading its dataset),
    `compile` (setting up and compiling), `train` with `done=0` (compiled: training starts),
    then per chunk `eval` (evaluating after `done` steps) and `train` with that chunk's curve
    rows. The executors carry it to the driver (across worker processes and Dask too); the
    progress display, partial curves and loggers read it.

    `rows` is empty except at the end of a chunk, where it holds the rows that chunk added,
    one mapping per trial of the program (the columns of `CellResult.curves`: seed, step,
    train_seconds, train_loss and the evaluated metrics, one entry per seed)."""

    phase: Phase
    done: int   # steps trained so far
    total: int  # the program's step budget
    rows: tuple[dict[str, np.ndarray], ...] = ()

    def to_message(self) -> dict:
        """Plain lists and numbers (msgpack for Dask's event stream; no pickle)."""
        return {"phase": self.phase, "done": self.done, "total": self.total,
                "rows": [{k: np.asarray(v).tolist() for k, v in trial.items()}
                         for trial in self.rows]}

    @classmethod
    def from_message(cls, message: dict) -> ProgramEvent:
        return cls(message["phase"], int(message["done"]), int(message["total"]),
                   tuple({k: np.asarray(v) for k, v in trial.items()}
                         for trial in message["rows"]))


@dataclass
class CellResult:
    seeds: list[SeedRecord]
    curves: dict[str, np.ndarray]  # curve columns -> equal-length arrays, one row per seed x eval
    timings: Timings
    steps_trained: int
    error: str | None = None  # the traceback when the cell failed as a whole
    usage: Usage = field(default_factory=Usage)

    def status_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for seed in self.seeds:
            counts[seed.status.value] = counts.get(seed.status.value, 0) + 1
        return counts


def failed(seeds, status: Status, reason: str | BaseException, elapsed: float = 0.0) -> CellResult:
    """A cell that produced nothing: every seed `status`, the reason kept as its error (an
    exception is kept as `error_text` gives it)."""
    message = error_text(reason) if isinstance(reason, BaseException) else reason
    return CellResult(seeds=[SeedRecord(s, status) for s in seeds], curves={},
                      timings=Timings(total_s=elapsed), steps_trained=0, error=message)


def error_summary(exc: BaseException) -> str:
    """The exception's own one line, 'Type: first line of its message'."""
    message = str(exc).strip()
    name = type(exc).__name__
    return f"{name}: {message.splitlines()[0]}" if message else name


def error_text(exc: BaseException) -> str:
    """The traceback as Python prints it, then `error_summary` as its last line: the line a
    cell's failure is quoted by. Python would end with notes instead (JAX adds one about the
    frames it hid) or with the last line of a message of several."""
    import traceback

    text = "".join(traceback.format_exception(exc)).rstrip("\n")
    summary = error_summary(exc)
    return text if text.splitlines()[-1] == summary else f"{text}\n{summary}"
