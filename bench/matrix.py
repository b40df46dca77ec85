"""A matrix (a TOML file or a named preset, plus command-line overrides) -> validated Cells.

    # quick.toml
    seeds = 3                                   # or a list: [0, 1, 2]
    steps = 3000                                # optional: every workload's step budget
    workloads = ["mnist1d-mlp", {name = "mnist1d-cnn", steps = 2000}]
    optimizers = ["optax:adam", {name = "optax:sgd", momentum = 0.9}]

Every name, value and hyperparameter is checked here, before anything trains.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import optimizers
from bench import schedules, tuning, workloads
from bench.data import check_available
from bench.errors import UserError
from optimizers.registry import RegistryError, did_you_mean

CELL_SCHEMA = 1  # bump when the meaning of a cell spec changes: old results stop matching
PRESET_DIR = Path(__file__).parent / "presets"
_TOP_KEYS = {"name", "seeds", "steps", "workloads", "optimizers", "plugins", "budget",
             "tuning_seeds", "schedules"}
_WORKLOAD_KEYS = {"name", "steps", "eval_every", "batch_size"}


@dataclass(frozen=True)
class Cell:
    """One (workload, optimizer, hyperparameters, budget) with its seeds."""

    workload: str
    optimizer: str
    hparams: tuple[tuple[str, Any], ...]  # every hyperparameter, sorted by name
    overrides: tuple[str, ...]  # the names the matrix set (they make the label)
    steps: int
    eval_every: int
    batch_size: int
    seeds: tuple[int, ...]
    target_metric: str
    target_value: float
    # for tuning cells: (("budget", 8), ("role", "trial"), ("trial", 3)) or role "tuned"
    tuning: tuple[tuple[str, Any], ...] = ()
    # a learning-rate schedule (bench/schedules.py); () is constant
    schedule: tuple[tuple[str, Any], ...] = ()

    def spec(self) -> dict[str, Any]:
        """What identifies the cell; its hash is the cell id."""
        spec = {
            "cell_schema": CELL_SCHEMA, "workload": self.workload, "optimizer": self.optimizer,
            "hparams": dict(self.hparams), "steps": self.steps, "eval_every": self.eval_every,
            "batch_size": self.batch_size, "seeds": list(self.seeds),
            "target_metric": self.target_metric, "target_value": self.target_value,
        }
        if self.tuning:  # absent for untuned cells, whose ids stay what they were
            spec["tuning"] = dict(self.tuning)
        if self.schedule:  # likewise absent for the constant schedule
            spec["schedule"] = dict(self.schedule)
        return spec

    @cached_property
    def id(self) -> str:
        canonical = json.dumps(self.spec(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        """The optimizer name, with the hyperparameters the matrix set: 'optax:sgd(momentum=0.9)'."""
        hparams, tuning = dict(self.hparams), dict(self.tuning)
        values = ", ".join(f"{k}={hparams[k]}" for k in self.overrides)
        scheduled = f" @ {schedules.label(self.schedule)}" if self.schedule else ""
        if tuning.get("role") == "trial":
            return f"{self.optimizer}(trial {tuning['trial']}: {values}){scheduled}"
        if tuning.get("role") == "tuned":
            return f"{self.optimizer}(tuned: {values}){scheduled}"
        return (f"{self.optimizer}({values})" if self.overrides else self.optimizer) + scheduled


@dataclass
class Matrix:
    name: str
    source: str  # the preset name or file path it came from
    seeds: list[int]
    workloads: list[dict[str, Any]]
    optimizers: list[dict[str, Any]]
    steps: int | None = None
    plugins: list[str] = field(default_factory=list)
    budget: int | str = "oneshot"  # "oneshot" (registered defaults) or a number of trials
    schedules: list[tuple[tuple[str, Any], ...]] = field(default_factory=lambda: [()])
    tuning_seeds: int = 1  # seeds per trial; the selected point reruns with `seeds`


def load(path: str | Path | None = None, preset: str | None = None) -> Matrix:
    """Read a matrix file, or the named preset (default: quick)."""
    if path is not None and preset is not None:
        raise UserError("give a matrix file or --preset, not both")
    if path is None:
        preset = preset or "quick"
        available = sorted(p.stem for p in PRESET_DIR.glob("*.toml"))
        if preset not in available:
            raise UserError(f"unknown preset '{preset}'{did_you_mean(preset, available)};"
                            f" presets: {', '.join(available)}")
        path = PRESET_DIR / f"{preset}.toml"
        source = f"preset:{preset}"
    else:
        source = str(path)
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"matrix file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read matrix file {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"matrix file {path} is not valid TOML: {exc}") from None
    return from_dict(raw, name=raw.get("name", path.stem), source=source)


def from_dict(raw: dict[str, Any], *, name: str, source: str) -> Matrix:
    where = f"matrix {source}"
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{where}: unknown key '{key}'{did_you_mean(key, _TOP_KEYS)};"
                        f" allowed: {', '.join(sorted(_TOP_KEYS))}")
    for key in ("workloads", "optimizers"):
        if not raw.get(key):
            raise UserError(f"{where}: '{key}' is missing or empty; give a list of names")
    steps = raw.get("steps")
    if steps is not None:
        _check_positive_int(where, "steps", steps)
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise UserError(f"{where}: 'plugins' must be a list of file paths")
    budget = raw.get("budget", "oneshot")
    if budget != "oneshot":
        _check_positive_int(where, "budget", budget)
    tuning_seeds = raw.get("tuning_seeds", 1)
    _check_positive_int(where, "tuning_seeds", tuning_seeds)
    try:
        parsed_schedules = [schedules.parse(e) for e in _as_list(raw.get("schedules", ["constant"]),
                                                                  where, "schedules")]
    except schedules.ScheduleError as exc:
        raise UserError(f"{where}: {exc}") from None
    return Matrix(
        budget=budget, tuning_seeds=tuning_seeds, schedules=list(dict.fromkeys(parsed_schedules)),
        name=str(name), source=source, seeds=parse_seeds(raw.get("seeds", 3), where),
        workloads=[_entry(w, where, "workloads") for w in _as_list(raw["workloads"], where, "workloads")],
        optimizers=[_entry(o, where, "optimizers") for o in _as_list(raw["optimizers"], where, "optimizers")],
        steps=steps, plugins=plugins,
    )


def parse_seeds(value: Any, where: str = "--seeds") -> list[int]:
    """3 -> [0, 1, 2]; [0, 5] -> [0, 5]; "0,5" -> [0, 5]."""
    if isinstance(value, str):
        try:
            value = [int(v) for v in value.split(",")] if "," in value else int(value)
        except ValueError:
            raise UserError(f"{where}: seeds must be a count (3) or a list (0,1,2); got '{value}'") from None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UserError(f"{where}: seeds must be at least 1; got {value}")
        return list(range(value))
    if (isinstance(value, list) and value
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)):
        if len(set(value)) != len(value):
            raise UserError(f"{where}: seeds {value} repeat a seed")
        return list(value)
    raise UserError(f"{where}: seeds must be a count (3) or a list of non-negative integers; got {value!r}")


def cells(matrix: Matrix, data_dir: str | None = None) -> list[Cell]:
    """Every (workload, optimizer) cell, validated; raises UserError on the first problem."""
    where = f"matrix {matrix.source}"
    result: dict[str, Cell] = {}
    resolved_optimizers = [_resolve_optimizer(o, where) for o in matrix.optimizers]
    searched = [o["name"] for o in matrix.optimizers if "search" in o]
    if searched and matrix.budget == "oneshot":
        raise UserError(f"{where}: '{searched[0]}' has a search space but budget is \"oneshot\";"
                        " set budget = <number of trials> to tune")
    for entry in matrix.workloads:
        workload = workloads.get(entry["name"])
        unknown = set(entry) - _WORKLOAD_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise UserError(f"{where}: workload '{workload.name}' has unknown key '{key}';"
                            f" allowed: {', '.join(sorted(_WORKLOAD_KEYS))}")
        steps = entry.get("steps", matrix.steps or workload.steps)
        eval_every = entry.get("eval_every", workload.eval_every)
        batch_size = entry.get("batch_size", workload.batch_size)
        for key, value in (("steps", steps), ("eval_every", eval_every), ("batch_size", batch_size)):
            _check_positive_int(f"{where}: workload '{workload.name}'", key, value)
        check_available(workload.dataset, data_dir)
        for schedule in matrix.schedules:
            for entry, (name, hparams, overrides) in zip(matrix.optimizers, resolved_optimizers):
                base = Cell(workload.name, name, tuple(sorted(hparams.items())), overrides,
                            steps, min(eval_every, steps), batch_size, tuple(matrix.seeds),
                            workload.target_metric, workload.target_value, schedule=schedule)
                result.setdefault(base.id, base)
                if matrix.budget != "oneshot":
                    for cell in _trial_cells(matrix, base, entry, where):
                        result.setdefault(cell.id, cell)
    return list(result.values())


def _trial_cells(matrix: Matrix, base: Cell, entry: dict[str, Any], where: str) -> list[Cell]:
    """`budget` quasi-random points of the optimizer's search space, as cells trained with
    the first `tuning_seeds` seeds."""
    spec = optimizers.get(base.optimizer)
    fixed = {k: v for k, v in entry.items() if k not in ("name", "search")}
    try:
        space = tuning.search_space(spec, entry.get("search"))
    except tuning.SearchSpaceError as exc:
        raise UserError(f"{where}: {exc}") from None
    space = {k: d for k, d in space.items() if k not in fixed}  # what the matrix set stays set
    points = tuning.draw(space, matrix.budget, tuning.stream_seed(base.workload, base.label))
    seeds = tuple(matrix.seeds[:matrix.tuning_seeds])
    trials = []
    for index, point in enumerate(points):
        try:
            hparams = spec.resolve({**fixed, **point})
        except RegistryError as exc:
            raise UserError(f"{where}: trial {index} of {base.label}: {exc}") from None
        trials.append(dataclasses.replace(
            base, hparams=tuple(sorted(hparams.items())),
            overrides=tuple(sorted({*fixed, *point})), seeds=seeds,
            tuning=(("budget", matrix.budget), ("role", "trial"), ("trial", index))))
    return trials


def tuned_cells(cells: list[Cell], runs) -> list[Cell]:
    """For each workload x optimizer entry that ran trials, its best trial (selected on the
    validation split, see bench/tuning.py) as a cell with every seed of the matrix."""
    trials = [c for c in cells if dict(c.tuning).get("role") == "trial"]
    untuned = {(c.workload, c.optimizer, c.steps, c.schedule): c for c in cells if not c.tuning}
    chosen = []
    for key in dict.fromkeys((c.workload, c.optimizer, c.steps, c.schedule) for c in trials):
        ids = {c.id: c for c in trials if (c.workload, c.optimizer, c.steps, c.schedule) == key}
        trial_runs = runs[runs["cell_id"].isin(list(ids))]
        best = tuning.select(trial_runs.assign(trial=trial_runs["cell_id"].map(
            lambda i: dict(ids[i].tuning)["trial"])))
        if best is None:
            continue
        winner = ids[best]
        chosen.append(dataclasses.replace(
            winner, seeds=untuned[key].seeds,
            tuning=(("budget", dict(winner.tuning)["budget"]), ("role", "tuned"),
                    ("trial", dict(winner.tuning)["trial"]))))
    return chosen


def _resolve_optimizer(entry: dict[str, Any], where: str):
    overrides = {k: v for k, v in entry.items() if k not in ("name", "search")}
    try:
        spec = optimizers.get(entry["name"])
        return spec.name, spec.resolve(overrides), tuple(sorted(overrides))
    except RegistryError as exc:
        raise UserError(f"{where}: {exc}") from None


def _as_list(value: Any, where: str, key: str) -> list:
    if isinstance(value, (str, dict)):
        return [value]
    if not isinstance(value, list):
        raise UserError(f"{where}: '{key}' must be a list of names or tables")
    return value


def _entry(value: Any, where: str, key: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": value}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        return dict(value)
    raise UserError(f"{where}: each of '{key}' must be a name or a table with a 'name'; got {value!r}")


def _check_positive_int(where: str, key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{where}: '{key}' must be a positive integer; got {value!r}")
