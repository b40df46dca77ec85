"""A matrix (a TOML file or a named preset, plus command-line overrides): parsed and
validated here; `bench.plan.expand` turns it into cells.

    # quick.toml
    seeds = 3                                   # or a list: [0, 1, 2]
    steps = 3000                                # optional: every workload's step budget
    workloads = ["mnist1d-mlp", {name = "mnist1d-cnn", steps = 2000}]
    optimizers = ["optax:adam", {name = "optax:sgd", momentum = 0.9}]
    widths = [32, 64, 128]                      # optional: every workload that has a width
                                                # (or per workload: widths = [...], width = 64)
    log = ["tensorboard", "mlflow"]             # optional: also log to these (bench/loggers)

Every key has a type and a range, checked before anything trains: each value by
`bench.plan.values`, the whole matrix here (names and hyperparameters in expand, where the
registries are).
"""
from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.loggers import BACKENDS
from bench.plan import toml_text
from bench.plan.schedules import Schedule, ScheduleError
from bench.report.render import one_line, printable
from bench.plan.values import (MAX_CELLS, as_list, check_budget, check_count, check_name,
                               matrix_name, optimizer_entry, parse_log, parse_seeds,
                               parse_widths, quote, workload_entry)
from optimizers.registry import did_you_mean

PRESET_DIR = Path(__file__).parent / "presets"
TOP_KEYS = {"name", "seeds", "steps", "workloads", "optimizers", "plugins", "budget",
            "tuning_seeds", "schedules", "widths", "log"}
_EXAMPLE = {"workloads": '["mnist1d-mlp"]', "optimizers": '["adam"]',
            "schedules": '["constant"]', "seeds": "3"}
_EXAMPLE_FLAG = {"workloads": "mnist1d-mlp,digits-mlp", "optimizers": "adam,sgd"}


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
    # the widths every workload with a width runs at (a workload's own `widths` wins);
    # empty: each at its registered width
    widths: list[int] = field(default_factory=list)
    # the logging backends a run also writes to (bench/loggers): not part of any cell
    log: list[str] = field(default_factory=list)
    # Keys whose value came from elsewhere than `source`: {"optimizers": "--optimizers"}.
    origins: dict[str, str] = field(default_factory=dict)
    # sha256 of the matrix file (or preset file) as it was read; None for one built in Python
    source_sha256: str | None = None

    def where(self, key: str) -> str:
        """Where `key`'s value came from, for messages: '--optimizers' or
        "matrix m.toml, key 'optimizers'"."""
        return self.origins.get(key, f"matrix {self.source}, key '{key}'")


def presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.toml"))


def load(path: str | Path | None = None, preset: str | None = None,
         settings: Sequence[str] = ()) -> Matrix:
    """Read a matrix file, or the named preset (default: quick), with `settings` (`--set
    KEY=VALUE`, see bench.plan.settings) applied in order, each checked as a file is."""
    raw, source, default_name, digest = read(path, preset)
    matrix = from_dict(raw, name=raw.get("name", default_name), source=source)
    if not settings:
        return dataclasses.replace(matrix, source_sha256=digest)
    from bench.plan.settings import apply

    origins = {}
    for text in settings:  # each checked as it lands, so an error names its own --set
        raw, key = apply(raw, text)
        from_dict(raw, name=raw.get("name", default_name), source=source, where=f"--set {text}")
        origins[key] = f"--set {text}"
    matrix = from_dict(raw, name=raw.get("name", default_name), source=source)
    return dataclasses.replace(matrix, origins=origins, source_sha256=digest)


def read(path: str | Path | None = None, preset: str | None = None
         ) -> tuple[dict[str, Any], str, str, str]:
    """A matrix file's (or preset's) table, parsed but not yet validated (`bench.run`
    merges its keyword overrides into it first): (table, source, the name it gets if it
    names none, the sha256 of the file as read)."""
    if path is not None and preset is not None:
        raise UserError("give a matrix file or --preset, not both")
    if path is None:
        preset = _preset_name(preset)
        path, source = PRESET_DIR / f"{preset}.toml", f"preset:{preset}"
    else:
        if str(path).strip() == "":
            raise UserError("the matrix file name is empty; give the path of a .toml file")
        source = str(path)
    path = Path(path)
    try:
        content = path.read_bytes()
        raw = toml_text.loads(content.decode())
    except FileNotFoundError:
        raise UserError(f"matrix file {printable(path)} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"matrix file {printable(path)} is a folder; give a .toml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read matrix file {printable(path)}: {one_line(exc)}") from None
    except toml_text.TomlError as exc:
        raise UserError(f"matrix file {printable(path)} is not valid TOML: {one_line(exc)}") from None
    return (raw, source, path.stem.lstrip(".").replace("\\", "-") or "matrix",
            hashlib.sha256(content).hexdigest())


def from_dict(raw: dict[str, Any], *, name: Any, source: str, where: str | None = None) -> Matrix:
    """A Matrix from a parsed TOML table; raises UserError (one line) on the first problem,
    starting with `where` (default: "matrix SOURCE")."""
    where = where or f"matrix {source}"
    unknown = set(raw) - TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{where}: unknown key {quote(key)}{did_you_mean(key, TOP_KEYS)};"
                        f" allowed: {', '.join(sorted(TOP_KEYS))}")
    for key in ("workloads", "optimizers"):
        if key not in raw or raw[key] == []:
            raise UserError(f"{where}: '{key}' is missing or empty; give a list of names")
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(
            isinstance(p, str) and p.strip() and p.isprintable() for p in plugins):
        raise UserError(f"{where}: 'plugins' must be a list of file paths; got {quote(plugins)}")
    try:
        schedules = [Schedule.parse(e) for e in as_list(raw.get("schedules", ["constant"]),
                                                         where, "schedules")]
    except ScheduleError as exc:
        raise UserError(f"{where}, key 'schedules': {exc}") from None
    workloads = [workload_entry(entry, where)
                 for entry in as_list(raw["workloads"], where, "workloads")]
    optimizers = [optimizer_entry(entry, where)
                  for entry in as_list(raw["optimizers"], where, "optimizers")]
    return check(Matrix(  # steps, budget and tuning_seeds are checked there
        budget=raw.get("budget", "oneshot"), tuning_seeds=raw.get("tuning_seeds", 1),
        schedules=list(dict.fromkeys(schedules)), name=matrix_name(name, where), source=source,
        seeds=parse_seeds(raw.get("seeds", 3), where), workloads=workloads,
        optimizers=optimizers, steps=raw.get("steps"), plugins=plugins,
        widths=parse_widths(raw["widths"], f"{where}, key 'widths'") if "widths" in raw else [],
        log=parse_log(raw.get("log", []), f"{where}, key 'log'"),
    ), where=where)


def with_overrides(matrix: Matrix, *, workloads: list[str] | None = None,
                   optimizers: list[str] | None = None, seeds: Any = None,
                   steps: int | None = None, log: list[str] | None = None) -> Matrix:
    """The matrix with command-line (or `bench.run`) choices replacing its own; a step
    budget given here overrides every workload's, its own entries' included. None leaves
    the matrix's own; an empty list is an error naming the flag (`--log none` is none)."""
    changes: dict[str, Any] = {}
    origins = dict(matrix.origins)
    for key, names in (("workloads", workloads), ("optimizers", optimizers)):
        if names is None:
            continue
        flag = f"--{key}"
        if isinstance(names, str) or not isinstance(names, (list, tuple)):
            raise UserError(f"{flag} must be a list of names; got {quote(names)}")
        if not names:
            raise UserError(f"{flag} names no {key[:-1]}: the matrix would have no cells;"
                            f" give comma-separated names, e.g. {flag} {_EXAMPLE_FLAG[key]}")
        changes[key] = [{"name": check_name(name, flag, key)} for name in names]
        origins[key] = flag
    if seeds is not None:
        changes["seeds"] = parse_seeds(seeds, "--seeds")
        origins["seeds"] = "--seeds"
    if log is not None:
        if not log:
            raise UserError(f"--log names no backend; give comma-separated names from"
                            f" {', '.join(BACKENDS)}, or none")
        if "none" in log and len(log) > 1:
            raise UserError(f"--log: none turns logging off, so it takes no other name; got"
                            f" {quote(','.join(log))}")
        changes["log"] = parse_log([] if list(log) == ["none"] else log, "--log")
        origins["log"] = "--log"
    if steps is not None:
        check_count("--steps", "steps", steps)
        changes["steps"] = steps
        changes["workloads"] = [{k: v for k, v in entry.items() if k != "steps"}
                                for entry in changes.get("workloads", matrix.workloads)]
    return check(dataclasses.replace(matrix, origins=origins, **changes))


def check(matrix: Matrix, where: str | None = None) -> Matrix:
    """The whole matrix (also one built or changed in Python): no empty axis, every number
    in range, and its size within MAX_CELLS, before a single cell is built. Returns it."""
    given = where  # a caller's (a file, a --set) names the key there; else the key's origin

    def at(key: str) -> str:
        return f"{given}, key '{key}'" if given else matrix.where(key)

    where = where or f"matrix {matrix.source}"
    for key in ("workloads", "optimizers", "schedules", "seeds"):
        if not getattr(matrix, key):
            raise UserError(f"{at(key)} is empty: the matrix would have no cells;"
                            f" give at least one, e.g. {key} = {_EXAMPLE[key]}")
    if matrix.steps is not None:
        check_count(where, "steps", matrix.steps)
    parse_seeds(matrix.seeds, at("seeds"))
    check_count(where, "tuning_seeds", matrix.tuning_seeds)
    if matrix.budget != "oneshot":
        check_budget(where, matrix.budget)
        if matrix.tuning_seeds > len(matrix.seeds):
            raise UserError(f"{where}: tuning_seeds = {matrix.tuning_seeds} but the matrix has"
                            f" {len(matrix.seeds)} seeds; trials run on the first tuning_seeds"
                            " of the seeds, so give at most that many")
    parse_widths(matrix.widths, at("widths"), allow_empty=True)
    parse_log(matrix.log, at("log"))
    size = planned_cells(matrix)
    if size > MAX_CELLS:
        per = f" x {_trials(matrix)} (the oneshot cell, budget trials, the tuned rerun)" \
            if matrix.budget != "oneshot" else ""
        raise UserError(
            f"{where} asks for {size:,} cells ({len(matrix.workloads)} workloads x"
            f" {len(matrix.schedules)} schedules x {len(matrix.optimizers)} optimizers{per});"
            f" the limit is {MAX_CELLS:,}: split it into smaller matrices")
    return matrix


def planned_cells(matrix: Matrix) -> int:
    """The most cells the matrix can make (duplicates are merged later), counted without
    building any: workload widths x schedules x optimizers x (1, or 1 + budget + 1 tuned)."""
    widths = sum(len(entry.get("widths") or matrix.widths or [None]) for entry in matrix.workloads)
    return widths * len(matrix.schedules) * len(matrix.optimizers) * _trials(matrix)


def _trials(matrix: Matrix) -> int:
    return 1 if matrix.budget == "oneshot" else matrix.budget + 2


def _preset_name(preset: Any) -> str:
    available = presets()
    if preset is None:
        return "quick"
    if not isinstance(preset, str) or not preset.strip():
        raise UserError(f"the preset name is empty; presets: {', '.join(available)}")
    if any(mark in preset for mark in ("/", "\\", "..")) or not preset.isprintable():
        raise UserError(f"preset {quote(preset)} is not a preset name; presets:"
                        f" {', '.join(available)} (to run a matrix file, give its path:"
                        " optbench run FILE.toml)")
    if preset not in available:
        raise UserError(f"unknown preset {quote(preset)}{did_you_mean(preset, available)};"
                        f" presets: {', '.join(available)}")
    return preset
