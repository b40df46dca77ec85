"""A matrix (a TOML file or a named preset, plus command-line overrides): parsed and
validated here; `bench.plan.expand` turns it into cells.

    # quick.toml
    seeds = 3                                   # or a list: [0, 1, 2]
    steps = 3000                                # optional: every workload's step budget
    workloads = ["mnist1d-mlp", {name = "mnist1d-cnn", steps = 2000}]
    optimizers = ["optax:adam", {name = "optax:sgd", momentum = 0.9}]

Every key and value is checked here or in expand, before anything trains.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.plan.schedules import Schedule, ScheduleError
from optimizers.registry import did_you_mean

PRESET_DIR = Path(__file__).parent / "presets"
TOP_KEYS = {"name", "seeds", "steps", "workloads", "optimizers", "plugins", "budget",
            "tuning_seeds", "schedules"}
WORKLOAD_KEYS = {"name", "steps", "eval_every", "batch_size"}


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
    schedules: list[Schedule] = field(default_factory=lambda: [Schedule()])
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
    unknown = set(raw) - TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{where}: unknown key '{key}'{did_you_mean(key, TOP_KEYS)};"
                        f" allowed: {', '.join(sorted(TOP_KEYS))}")
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
        schedules = [Schedule.parse(e) for e in _as_list(raw.get("schedules", ["constant"]),
                                                         where, "schedules")]
    except ScheduleError as exc:
        raise UserError(f"{where}: {exc}") from None
    entries = [_entry(w, where, "workloads") for w in _as_list(raw["workloads"], where, "workloads")]
    for entry in entries:
        unknown = set(entry) - WORKLOAD_KEYS
        if unknown:
            key = sorted(unknown)[0]
            raise UserError(f"{where}: workload '{entry['name']}' has unknown key '{key}'"
                            f"{did_you_mean(key, WORKLOAD_KEYS)}; allowed: {', '.join(sorted(WORKLOAD_KEYS))}")
        for key in WORKLOAD_KEYS - {"name"}:
            if key in entry:
                _check_positive_int(f"{where}: workload '{entry['name']}'", key, entry[key])
    return Matrix(
        budget=budget, tuning_seeds=tuning_seeds, schedules=list(dict.fromkeys(schedules)),
        name=str(name), source=source, seeds=parse_seeds(raw.get("seeds", 3), where),
        workloads=entries,
        optimizers=[_entry(o, where, "optimizers") for o in _as_list(raw["optimizers"], where, "optimizers")],
        steps=steps, plugins=plugins,
    )


def with_overrides(matrix: Matrix, *, workloads: list[str] | None = None,
                   optimizers: list[str] | None = None, seeds: Any = None,
                   steps: int | None = None) -> Matrix:
    """The matrix with command-line (or `bench.run`) choices replacing its own; a step
    budget given here overrides every workload's, its own entries' included."""
    changes: dict[str, Any] = {}
    if workloads:
        changes["workloads"] = [{"name": name} for name in workloads]
    if optimizers:
        changes["optimizers"] = [{"name": name} for name in optimizers]
    if seeds is not None:
        changes["seeds"] = parse_seeds(seeds)
    if steps is not None:
        _check_positive_int("--steps", "steps", steps)
        changes["steps"] = steps
        changes["workloads"] = [{k: v for k, v in entry.items() if k != "steps"}
                                for entry in changes.get("workloads", matrix.workloads)]
    return dataclasses.replace(matrix, **changes)


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
