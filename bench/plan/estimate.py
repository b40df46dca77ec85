"""How long a plan will take, guessed from a results folder that ran the same workloads
(by default the shipped `results/reference`), for `optbench run --dry-run`. Cheap and
honest: no JAX, no compiling, and "unknown" where nothing was measured.

A program's guess is its reference figures, per workload x optimizer where the reference
ran that pair, else the workload's median over the optimizers it ran:

    train   = (train seconds per step per seed) x steps x seeds x trials in the program
    compile = the reference's compile time of one program (it does not grow with steps)
    other   = data + setup + eval + probe seconds of one program, as measured (eval grows
              with the number of eval points; this keeps the reference's)

Linear in seeds and trials: vmapped members usually cost less than that, so the train
figure leans long. The reference's machine is named, since another machine differs.
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.plan.cells import Cell

REFERENCE = Path(__file__).resolve().parents[2] / "results" / "reference"
_COLUMNS = ["cell_id", "workload", "optimizer", "steps", "seeds_in_batch", "trials_in_program",
            "train_s", "compile_s", "total_s"]


@dataclass(frozen=True)
class Figures:
    """Per-program figures of one workload (x optimizer) in the reference."""

    train_per_step_seed: float  # seconds of training per step and per seed (or trial)
    compile_s: float
    other_s: float  # data, setup, eval and probe of one program


@dataclass(frozen=True)
class Estimate:
    train_s: float
    compile_s: float
    other_s: float
    exact: int  # programs guessed from the same workload x optimizer
    by_workload: int  # programs guessed from the workload's other optimizers
    unknown: tuple[str, ...]  # the workload of each program nothing is known about
    basis: str  # where the figures come from, in words

    @property
    def total_s(self) -> float:
        return self.train_s + self.compile_s + self.other_s


def reference_figures(folder: Path = REFERENCE):
    """({(workload, optimizer): Figures}, {workload: Figures}, basis), or None when the
    folder holds no readable runs table."""
    try:
        import pandas as pd

        runs = pd.read_parquet(folder / "runs.parquet", columns=_COLUMNS)
    except Exception:  # noqa: BLE001  no reference, or an unreadable one: no estimate
        return None
    cells = runs.drop_duplicates("cell_id").dropna(subset=["train_s", "total_s", "compile_s"])
    if cells.empty:
        return None
    members = cells["steps"] * cells["seeds_in_batch"] * cells["trials_in_program"]
    cells = cells.assign(per_step=cells["train_s"] / members,
                         other=cells["total_s"] - cells["train_s"] - cells["compile_s"])

    def figures(group) -> Figures:
        return Figures(float(group["per_step"].median()), float(group["compile_s"].median()),
                       float(group["other"].median()))

    pairs = {key: figures(g) for key, g in cells.groupby(["workload", "optimizer"])}
    workloads = {key: figures(g) for key, g in cells.groupby("workload")}
    return pairs, workloads, _basis(folder, len(cells))


def estimate(programs: Sequence[Sequence[Cell]], folder: Path = REFERENCE) -> Estimate | None:
    """The guess for these programs, or None when there is no reference to guess from."""
    reference = reference_figures(folder)
    if reference is None:
        return None
    pairs, workloads, basis = reference
    train = compile_ = other = 0.0
    exact = by_workload = 0
    unknown = []
    for program in programs:
        first = program[0]
        found = pairs.get((first.workload, first.optimizer))
        if found is not None:
            exact += 1
        else:
            found = workloads.get(first.workload)
            if found is None:
                unknown.append(first.workload)
                continue
            by_workload += 1
        members = sum(len(cell.seeds) for cell in program)  # seeds x trials
        train += found.train_per_step_seed * first.steps * members
        compile_ += found.compile_s
        other += found.other_s
    return Estimate(train, compile_, other, exact, by_workload, tuple(unknown), basis)


def describe(programs: Sequence[Sequence[Cell]], folder: Path = REFERENCE, *,
             report: bool = True) -> str:
    """The estimate in a few lines, with what it rests on (and the report's drawing beyond
    it, unless the run writes none)."""
    guess = estimate(programs, folder)
    if guess is None:
        return (f"Estimated time: unknown (no reference results to estimate from: {folder}"
                " holds no readable runs.parquet).")
    known = guess.exact + guess.by_workload
    if not known:
        return ("Estimated time: unknown: the reference holds none of these workloads"
                f" ({_names(guess.unknown)}). Reference: {guess.basis}.")
    lines = [f"Estimated time: about {_duration(guess.total_s)} for {known} of"
             f" {known + len(guess.unknown)} programs (train {_duration(guess.train_s)},"
             f" compile {_duration(guess.compile_s)}, data, setup, eval and probe"
             f" {_duration(guess.other_s)}), plus start-up" + (" and the report" if report else "")
             + (", and the tuned reruns (one program per sweep, planned once its trials"
                " end)" if any(c.tuning.role == "trial" for p in programs for c in p) else "")
             + "."]
    if guess.unknown:
        lines.append(f"Unknown for {len(guess.unknown)} program(s), of workloads the"
                     f" reference never ran: {_names(guess.unknown)}.")
    busy = _busy()
    if busy:
        lines.append(busy)
    lines.append(
        f"Based on: {guess.basis}; {guess.exact} program(s) from the same workload x"
        f" optimizer, {guess.by_workload} from the workload's median over other optimizers;"
        " training scaled linearly by steps x seeds x trials (vmapped seeds usually cost"
        " less), compile and the rest per program as measured there.")
    return "\n".join(lines)


def _busy() -> str:
    """A line when this machine is busier than its CPUs (the guess assumes it is idle)."""
    try:
        load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    except (AttributeError, OSError):
        return ""
    if load <= cpus:
        return ""
    return (f"This machine is busy (load average {load:.1f} on {cpus} CPUs): other work"
            " will stretch these figures.")


def _basis(folder: Path, cells: int) -> str:
    """'results/reference (quick, 49 cells, cpu x1, 2 CPUs, 2026-11-27)'."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        device, host = manifest.get("device") or {}, manifest.get("host") or {}
        name = (manifest.get("config") or {}).get("matrix", {}).get("name", "?")
        machine = (f"{device.get('platform', '?')} x{device.get('count', '?')},"
                   f" {host.get('cpus', '?')} CPUs")
        when = str(manifest.get("created", "?"))[:10]
    except (OSError, ValueError, AttributeError):
        name, machine, when = "?", "machine unknown", "?"
    return f"{_short(folder)} ({name}, {cells} cells, {machine}, {when})"


def _short(folder: Path) -> str:
    try:
        return str(folder.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(folder)


def _names(names: Sequence[str], shown: int = 5) -> str:
    unique = list(dict.fromkeys(names))
    text = ", ".join(unique[:shown])
    return text + (f" and {len(unique) - shown} more" if len(unique) > shown else "")


def _duration(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
