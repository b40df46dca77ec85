"""A cell, and the three keys that say which cells are the same.

A cell is one (workload, optimizer, hyperparameters, schedule, budget, tuning role) with its
seeds. Everything else asks the cell:

- `Cell.id`: a hash of everything that decides the cell's numbers: its spec, the program
  layout it trains in, the source of its optimizer, workload, model, data and engine code,
  and the jax / jaxlib / flax / optax versions. The store resumes by it.
- `Cell.spec_key`: the spec alone. A finished cell with the same spec key but another id is
  the same experiment run with other code; the driver says which file changed.
- `Cell.match_key`: the spec without its seeds: what `optbench compare` matches across runs.
- `Cell.program_key`: cells with equal program keys train in one compiled program.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Literal

from bench.plan.schedules import Schedule
from bench.records import Target

CELL_SCHEMA = 2  # bump when the meaning of a cell spec changes: old results stop matching
ROOT = Path(__file__).resolve().parents[2]  # the checkout: bench/, models/, optimizers/
VERSIONED = ("jax", "jaxlib", "flax", "optax")
Role = Literal["oneshot", "trial", "tuned"]


@dataclass(frozen=True)
class Tuning:
    """Where a cell stands in the tuning protocol (bench/plan/tuning.py)."""

    role: Role = "oneshot"  # the registered defaults (or what the matrix set)
    trial: int | None = None  # the trial's index in the quasi-random sequence
    budget: int | None = None  # trials per optimizer and workload

    def spec(self) -> dict[str, Any] | None:
        return None if self.role == "oneshot" else {"role": self.role, "trial": self.trial,
                                                     "budget": self.budget}


@dataclass(frozen=True)
class Cell:
    workload: str
    optimizer: str
    hparams: tuple[tuple[str, Any], ...]  # every hyperparameter, sorted by name
    overrides: tuple[str, ...]  # the names the matrix set (they make the label)
    steps: int
    eval_every: int
    batch_size: int
    seeds: tuple[int, ...]
    target: Target
    tuning: Tuning = Tuning()
    schedule: Schedule = Schedule()
    sweepable: bool = True  # its optimizer's float hyperparameters can be traced
    trials_in_program: int = 1  # set by the plan: the program layout the cell trains in
    code: tuple[tuple[str, str], ...] = field(default=(), compare=False)  # (file, digest)
    # the workload's metrics and which way is better: recorded beside the results, not part
    # of the spec (the workload's code digest already decides them)
    metrics: tuple[tuple[str, str | None], ...] = field(default=(), compare=False)

    def spec(self) -> dict[str, Any]:
        """What the cell asks for; with the code digests and versions it makes the id."""
        spec = {
            "cell_schema": CELL_SCHEMA, "workload": self.workload, "optimizer": self.optimizer,
            "hparams": dict(self.hparams), "steps": self.steps, "eval_every": self.eval_every,
            "batch_size": self.batch_size, "seeds": list(self.seeds),
            "target": {"metric": self.target.metric, "value": self.target.value,
                       "direction": self.target.direction},
            "trials_in_program": self.trials_in_program,
        }
        for key, part in (("tuning", self.tuning.spec()), ("schedule", self.schedule.spec())):
            if part is not None:
                spec[key] = part
        return spec

    @cached_property
    def id(self) -> str:
        return _digest({"spec": self.spec(), "code": dict(self.code), "versions": versions()})

    @cached_property
    def spec_key(self) -> str:
        return _digest(self.spec())

    @cached_property
    def match_key(self) -> str:
        spec = self.spec()
        del spec["seeds"]
        return _digest(spec)

    def program_key(self) -> tuple:
        """Cells that differ only in float hyperparameters share a program, when their
        optimizer can take them as traced values (optax.inject_hyperparams)."""
        if not self.sweepable:
            return (self.spec_key,)
        static = tuple((k, v) for k, v in self.hparams if not isinstance(v, float))
        return (self.workload, self.optimizer, static, self.steps, self.eval_every,
                self.batch_size, self.seeds, self.schedule, self.tuning.role)

    @property
    def label(self) -> str:
        """The optimizer, the hyperparameters the matrix set, the tuning role and schedule:
        'optax:sgd(momentum=0.9)', 'adam(trial 3: learning_rate=0.002) @ wsd(...)'."""
        hparams = dict(self.hparams)
        values = ", ".join(f"{k}={hparams[k]}" for k in self.overrides)
        scheduled = "" if self.schedule.constant else f" @ {self.schedule.label}"
        if self.tuning.role == "trial":
            return f"{self.optimizer}(trial {self.tuning.trial}: {values}){scheduled}"
        if self.tuning.role == "tuned":
            return f"{self.optimizer}(tuned: {values}){scheduled}"
        return (f"{self.optimizer}({values})" if self.overrides else self.optimizer) + scheduled

    def record(self) -> dict[str, Any]:
        """The identity fields a cell file stores beside its results."""
        return {"id": self.id, "spec_key": self.spec_key, "match_key": self.match_key,
                "label": self.label, "schedule": self.schedule.label, "spec": self.spec(),
                "metrics": dict(self.metrics), "code": dict(self.code), "versions": versions()}


def code_files(optimizer_source: str, workload) -> list[Path]:
    """The files whose content decides a cell's numbers: the optimizer's file and the
    workload's (a plugin's included), its model's, the data and engine code."""
    import inspect

    train = ROOT / "bench" / "train"
    files = [Path(optimizer_source), ROOT / "workloads" / "registry.py", train / "data.py",
             train / "engine.py", train / "programs.py"]
    if workload.source:
        files.append(Path(workload.source))
    if workload.model_class is not None:
        files.append(Path(inspect.getsourcefile(workload.model_class)))
    return files


def code_digests(files: list[Path]) -> tuple[tuple[str, str], ...]:
    """(name, sha256 prefix) per file; names are paths in the checkout, or 'plugin:<name>'
    for files outside it, so that the same plugin gives the same id on any machine."""
    return tuple(sorted((_code_name(path), _file_digest(path.resolve())) for path in files))


def changed_code(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two cell records' code and versions, one phrase each."""
    changes = [f"{name} changed" for name in sorted(set(old.get("code", {})) | set(new["code"]))
               if old.get("code", {}).get(name) != new["code"].get(name)]
    changes += [f"{package} {old.get('versions', {}).get(package)} -> {version}"
                for package, version in new["versions"].items()
                if old.get("versions", {}).get(package) != version]
    return changes or ["its recorded code differs"]


@cache
def versions() -> dict[str, str | None]:
    found = {}
    for package in VERSIONED:
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = None
    return found


def _code_name(path: Path) -> str:
    resolved = path.resolve()
    if resolved.is_relative_to(ROOT):
        return resolved.relative_to(ROOT).as_posix()
    return f"plugin:{resolved.name}"


def _file_digest(path: Path) -> str:
    # Read every time: a file edited while this process runs (a plugin, say) must count.
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError:
        return "unreadable"


def _digest(payload: Any) -> str:
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]
