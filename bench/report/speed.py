"""Speed verdicts that know the noise: is a cell slower in one run than in the baseline by
more than its own chunks scatter?

The sample. A cell trains in chunks of `eval_every` steps, each timed on its own and ended by
`block_until_ready` (records.Timings.step_times: chunk seconds / chunk steps). curves.parquet
keeps them: every member of a program shares the program's clock, so a cell's rows hold,
at each `step`, the cumulative chunk time `train_seconds`; diff(train_seconds) / diff(step)
(the first row: train_seconds / step) are its per-chunk step times (`chunk_step_times`).

The rule, stated once:
- The speed ratio is the baseline's median step time over the run's (above 1: faster).
- Its 95% interval is a percentile bootstrap: both chunk samples are resampled with
  replacement BOOTSTRAP times, from a fixed seed (the same tables give the same interval
  every time), and the interval is the 2.5th and 97.5th percentiles of the ratio of the
  resamples' medians.
- A ratio whose interval holds 1 is within noise; one whose interval lies below 1 is slower
  (above 1: faster). A cell with fewer than MIN_CHUNKS chunks on either side is not judged.
- A speed regression at PCT% needs both: the ratio more than PCT% below 1, and the interval's
  upper end below 1 (`regression`).

What the rule cannot see: a machine loaded evenly through a whole run slows every chunk
alike, which is a difference beyond the chunks' scatter; only a rerun tells that apart.
Reads the tables only (no JAX).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

MIN_CHUNKS = 3  # fewer chunks than this on either side: the median is one or two numbers
# resamples: on the quick preset's cells the interval's ends moved by at most 0.023 over
# 20 bootstrap seeds at this count
BOOTSTRAP = 2000
SEED = 0  # the bootstrap's: repeatable output, and no cell's interval depends on another's
LEVEL = 0.95
# the most draws resampled at once: a cell of 200,000 chunks (eval_every 1) took 6.6 GB in
# one go; in batches this size, 32 MB each
MAX_DRAWS = 4_000_000

Verdict = Literal["slower", "faster", "within noise", "too few chunks"]


def chunk_step_times(rows: pd.DataFrame) -> np.ndarray:
    """A cell's per-chunk step times (seconds per step, in training order) from its curve
    rows (any of its seeds: they share one clock). Rows with no step or time, and repeated
    steps, are left out; so is a chunk whose clock did not advance or ran backwards (rows
    edited or damaged): it could only be a wrong figure."""
    if not len(rows) or not {"step", "train_seconds"} <= set(rows.columns):
        return np.empty(0)
    # hand-edited tables may hold text: what is not a number is left out like a gap
    points = rows[["step", "train_seconds"]].apply(pd.to_numeric, errors="coerce").astype(float)
    points = points[np.isfinite(points).all(axis=1)].drop_duplicates("step").sort_values("step")
    steps = np.diff(points["step"].to_numpy(), prepend=0.0)
    seconds = np.diff(points["train_seconds"].to_numpy(), prepend=0.0)
    keep = (steps > 0) & (seconds > 0)
    return seconds[keep] / steps[keep]


@dataclass(frozen=True)
class Speed:
    """One cell's speed in a run against the baseline's (`judge`)."""

    ratio: float  # the baseline's median step time over the run's: above 1 is faster
    low: float  # the 95% interval of the ratio; NaN when not judged
    high: float
    chunks_a: int  # the baseline's chunks
    chunks_b: int  # the run's

    @property
    def verdict(self) -> Verdict:
        if min(self.chunks_a, self.chunks_b) < MIN_CHUNKS or not np.isfinite(self.high):
            return "too few chunks"
        if self.high < 1:
            return "slower"
        return "faster" if self.low > 1 else "within noise"

    def regression(self, pct: float) -> bool:
        """Slower by more than pct% and beyond the noise (the interval below 1)."""
        return (self.verdict == "slower" and np.isfinite(self.ratio)
                and (1 - self.ratio) * 100 > pct)

    def describe(self) -> str:
        """'0.82x [0.61, 1.05], within noise'; '0.50x [0.46, 0.55], slower';
        '0.82x, too few chunks to judge (2 vs 8)'; '—' without a ratio."""
        if not np.isfinite(self.ratio):
            return "—"
        if self.verdict == "too few chunks":
            return (f"{ratio_text(self.ratio)}, too few chunks to judge"
                    f" ({self.chunks_a} vs {self.chunks_b})")
        return (f"{ratio_text(self.ratio)} [{ratio_text(self.low, x='')},"
                f" {ratio_text(self.high, x='')}], {self.verdict}")


def ratio_text(value: float, x: str = "x") -> str:
    """Two decimals, or two significant figures below 0.1 (a 40x slowdown is 0.025x)."""
    return f"{value:.2f}{x}" if abs(value) >= 0.1 else f"{value:.2g}{x}"


def judge(a: np.ndarray, b: np.ndarray, fallback: float = math.nan) -> Speed:
    """The speed of per-chunk step times `b` against the baseline's `a`. Without chunks on a
    side (tables shared without their curves), the ratio is `fallback` (the runs tables'
    median step times) and is not judged."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if not (a.size and b.size):
        return Speed(fallback, math.nan, math.nan, a.size, b.size)
    ratio = float(np.median(a) / np.median(b))
    if min(a.size, b.size) < MIN_CHUNKS:
        return Speed(ratio, math.nan, math.nan, a.size, b.size)
    rng = np.random.default_rng(SEED)
    medians_a, medians_b = resampled_medians(rng, a), resampled_medians(rng, b)
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(medians_a / medians_b, [tail, 100 - tail])
    return Speed(ratio, float(low), float(high), a.size, b.size)


def resampled_medians(rng: np.random.Generator, sample: np.ndarray) -> np.ndarray:
    """The medians of BOOTSTRAP resamples of `sample`, drawn in batches of at most MAX_DRAWS
    numbers so that memory stays bounded however many chunks a cell has (a sample small
    enough for one batch draws exactly what one call would)."""
    rows = max(1, MAX_DRAWS // sample.size)
    return np.concatenate([
        np.median(rng.choice(sample, size=(min(rows, BOOTSTRAP - start), sample.size)), axis=1)
        for start in range(0, BOOTSTRAP, rows)])
