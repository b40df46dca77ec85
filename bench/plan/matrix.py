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

Every key has a type and a range, checked here (names and hyperparameters in expand, where
the registries are), before anything trains. The limits are far above any sensible matrix
and low enough that a typo fails at once instead of building a million cells.
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
from optimizers.registry import did_you_mean

PRESET_DIR = Path(__file__).parent / "presets"
TOP_KEYS = {"name", "seeds", "steps", "workloads", "optimizers", "plugins", "budget",
            "tuning_seeds", "schedules", "widths", "log"}
WORKLOAD_KEYS = {"name", "steps", "eval_every", "batch_size", "widths", "width"}

MAX_STEPS = 10_000_000  # steps (and eval_every) of a cell
MAX_SEEDS = 1_000  # seeds of a cell
MAX_SEED = 2**31 - 1  # a seed value
MAX_BUDGET = 10_000  # tuning trials per optimizer, workload and schedule
MAX_BATCH_SIZE = 65_536
MAX_CELLS = 100_000  # cells of a matrix, tuning trials and tuned reruns included
MAX_NAME = 100  # characters of a name (the matrix's names its results folder)
MAX_WIDTH = 65_536  # a model's width (hidden units, channels, d_model)
MAX_WIDTHS = 64  # widths in one list
_EXAMPLE = {"workloads": '["mnist1d-mlp"]', "optimizers": '["adam"]',
            "schedules": '["constant"]', "seeds": "3"}
_EXAMPLE_FLAG = {"workloads": "mnist1d-mlp,digits-mlp", "optimizers": "adam,sgd"}
LIMITS = {"steps": MAX_STEPS, "eval_every": MAX_STEPS, "batch_size": MAX_BATCH_SIZE,
          "budget": MAX_BUDGET, "tuning_seeds": MAX_SEEDS}


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
        raise UserError(f"matrix file {_path(path)} does not exist") from None
    except IsADirectoryError:
        raise UserError(f"matrix file {_path(path)} is a folder; give a .toml file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read matrix file {_path(path)}: {_one_line(exc)}") from None
    except toml_text.TomlError as exc:
        raise UserError(f"matrix file {_path(path)} is not valid TOML: {_one_line(exc)}") from None
    return (raw, source, path.stem.lstrip(".").replace("\\", "-") or "matrix",
            hashlib.sha256(content).hexdigest())


def from_dict(raw: dict[str, Any], *, name: Any, source: str, where: str | None = None) -> Matrix:
    """A Matrix from a parsed TOML table; raises UserError (one line) on the first problem,
    starting with `where` (default: "matrix SOURCE")."""
    where = where or f"matrix {source}"
    unknown = set(raw) - TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{where}: unknown key {_quote(key)}{did_you_mean(key, TOP_KEYS)};"
                        f" allowed: {', '.join(sorted(TOP_KEYS))}")
    for key in ("workloads", "optimizers"):
        if key not in raw or raw[key] == []:
            raise UserError(f"{where}: '{key}' is missing or empty; give a list of names")
    plugins = raw.get("plugins", [])
    if not isinstance(plugins, list) or not all(
            isinstance(p, str) and p.strip() and p.isprintable() for p in plugins):
        raise UserError(f"{where}: 'plugins' must be a list of file paths; got {_quote(plugins)}")
    try:
        schedules = [Schedule.parse(e) for e in _as_list(raw.get("schedules", ["constant"]),
                                                         where, "schedules")]
    except ScheduleError as exc:
        raise UserError(f"{where}, key 'schedules': {exc}") from None
    workloads = [_workload(entry, where) for entry in _as_list(raw["workloads"], where, "workloads")]
    optimizers = [_optimizer(entry, where) for entry in _as_list(raw["optimizers"], where, "optimizers")]
    return check(Matrix(  # steps, budget and tuning_seeds are checked there
        budget=raw.get("budget", "oneshot"), tuning_seeds=raw.get("tuning_seeds", 1),
        schedules=list(dict.fromkeys(schedules)), name=_matrix_name(name, where), source=source,
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
            raise UserError(f"{flag} must be a list of names; got {_quote(names)}")
        if not names:
            raise UserError(f"{flag} names no {key[:-1]}: the matrix would have no cells;"
                            f" give comma-separated names, e.g. {flag} {_EXAMPLE_FLAG[key]}")
        changes[key] = [{"name": _check_name(name, flag, key)} for name in names]
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
                            f" {_quote(','.join(log))}")
        changes["log"] = parse_log([] if list(log) == ["none"] else log, "--log")
        origins["log"] = "--log"
    if steps is not None:
        _check_count("--steps", "steps", steps)
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
        _check_count(where, "steps", matrix.steps)
    parse_seeds(matrix.seeds, at("seeds"))
    _check_count(where, "tuning_seeds", matrix.tuning_seeds)
    if matrix.budget != "oneshot":
        _check_budget(where, matrix.budget)
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


def parse_widths(value: Any, where: str, *, allow_empty: bool = False) -> list[int]:
    """A list of distinct model widths, each 1 to MAX_WIDTH."""
    if (isinstance(value, list) and (value or allow_empty) and len(value) <= MAX_WIDTHS
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WIDTH
                    for v in value)):
        if len(set(value)) != len(value):
            raise UserError(f"{where}: widths {_quote(value)} repeat a width")
        return list(value)
    raise UserError(f"{where}: widths must be a list of 1 to {MAX_WIDTHS} integers from 1 to"
                    f" {MAX_WIDTH:,}, e.g. widths = [32, 64, 128]; got {_quote(value)}")


def parse_log(value: Any, where: str) -> list[str]:
    """Logging backend names (a list, or one name), each once: ["tensorboard", "mlflow"]."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{where}: log must be a list of backend names, e.g. log ="
                        f" [\"tensorboard\", \"mlflow\"]; got {_quote(value)}")
    for name in names:
        if name not in BACKENDS:
            raise UserError(f"{where}: unknown logging backend {_quote(name)}"
                            f"{did_you_mean(name, BACKENDS)}; backends: {', '.join(BACKENDS)}")
    return list(dict.fromkeys(names))


def parse_seeds(value: Any, where: str = "--seeds") -> list[int]:
    """3 -> [0, 1, 2]; [0, 5] -> [0, 5]; "0,5" -> [0, 5]."""
    form = f"seeds must be a count (3) or a list (0,1,2) of at most {MAX_SEEDS:,} seeds"
    if isinstance(value, str):
        parts = [part.strip() for part in value.split(",")]
        try:
            value = [int(p) for p in parts] if len(parts) > 1 else int(parts[0])
        except ValueError:
            raise UserError(f"{where}: {form}; got {_quote(value)}") from None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 1:
            raise UserError(f"{where}: seeds must be at least 1; got {value}")
        if value > MAX_SEEDS:
            raise UserError(f"{where}: seeds = {value} is more than the limit of {MAX_SEEDS:,}"
                            " seeds per cell")
        return list(range(value))
    if isinstance(value, list) and not value:
        raise UserError(f"{where}: seeds is an empty list, so there would be nothing to run;"
                        " give a count (3) or at least one seed ([0])")
    if (isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                        and 0 <= v <= MAX_SEED for v in value)):
        if len(set(value)) != len(value):
            raise UserError(f"{where}: seeds {_quote(value)} repeat a seed")
        if len(value) > MAX_SEEDS:
            raise UserError(f"{where}: {len(value):,} seeds is more than the limit of"
                            f" {MAX_SEEDS:,} seeds per cell")
        return list(value)
    raise UserError(f"{where}: {form}, each from 0 to {MAX_SEED}; got {_quote(value)}")


def _trials(matrix: Matrix) -> int:
    return 1 if matrix.budget == "oneshot" else matrix.budget + 2


def _preset_name(preset: Any) -> str:
    available = presets()
    if preset is None:
        return "quick"
    if not isinstance(preset, str) or not preset.strip():
        raise UserError(f"the preset name is empty; presets: {', '.join(available)}")
    if any(mark in preset for mark in ("/", "\\", "..")) or not preset.isprintable():
        raise UserError(f"preset {_quote(preset)} is not a preset name; presets:"
                        f" {', '.join(available)} (to run a matrix file, give its path:"
                        " optbench run FILE.toml)")
    if preset not in available:
        raise UserError(f"unknown preset {_quote(preset)}{did_you_mean(preset, available)};"
                        f" presets: {', '.join(available)}")
    return preset


def _matrix_name(name: Any, where: str) -> str:
    """The matrix's name: it names its results folder, so no path in it."""
    if (not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME
            or not name.isprintable() or any(mark in name for mark in "/\\")
            or name.startswith(".")):
        raise UserError(f"{where}: 'name' must be a name of 1 to {MAX_NAME} printable"
                        " characters without / or \\ and not starting with '.' (it names the"
                        f" results folder); got {_quote(name)}")
    return name


def _check_name(name: Any, where: str, key: str) -> str:
    """A workload or optimizer name: a non-empty printable string (resolved in expand)."""
    if not isinstance(name, str) or not name.strip() or not name.isprintable() \
            or len(name) > 200:
        raise UserError(f"{where}: {_quote(name)} is not a valid {key[:-1]} name; give a name"
                        f" from `optbench list {key}`")
    return name


def _as_list(value: Any, where: str, key: str) -> list:
    if isinstance(value, (str, dict)):
        return [value]
    if not isinstance(value, list):
        raise UserError(f"{where}: '{key}' must be a list of names or tables; got {_quote(value)}")
    return value


def _entry(value: Any, where: str, key: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": _check_name(value, f"{where}, key '{key}'", key)}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        _check_name(value["name"], f"{where}, key '{key}'", key)
        return dict(value)
    raise UserError(f"{where}: each of '{key}' must be a name or a table with a 'name';"
                    f" got {_quote(value)}")


def _workload(value: Any, where: str) -> dict[str, Any]:
    entry = _entry(value, where, "workloads")
    unknown = set(entry) - WORKLOAD_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{where}: workload {_quote(entry['name'])} has unknown key"
                        f" {_quote(key)}{did_you_mean(key, WORKLOAD_KEYS)}; allowed:"
                        f" {', '.join(sorted(WORKLOAD_KEYS))}")
    for key in sorted(WORKLOAD_KEYS - {"name", "widths", "width"}):
        if key in entry:
            _check_count(f"{where}: workload {_quote(entry['name'])}", key, entry[key])
    here = f"{where}: workload {_quote(entry['name'])}"
    if "width" in entry and "widths" in entry:
        raise UserError(f"{here} gives both 'width' and 'widths'; give one (width = 64 is"
                        " widths = [64])")
    if "width" in entry:  # one width: the shorthand of a list of one
        entry["widths"] = parse_widths([entry.pop("width")], here)
    elif "widths" in entry:
        parse_widths(entry["widths"], here)
    return entry


def _optimizer(value: Any, where: str) -> dict[str, Any]:
    """An optimizer entry; its hyperparameters are checked in expand (by the registry), the
    shape of its search space here."""
    entry = _entry(value, where, "optimizers")
    search = entry.get("search")
    if "search" in entry and (not isinstance(search, dict) or not search):
        raise UserError(
            f"{where}, key 'optimizers': optimizer {_quote(entry['name'])}: search must be a"
            " table of hyperparameter = [low, high] (or = [option, ...]), e.g. search ="
            f" {{learning_rate = [1e-4, 1e-1]}}; got search = {_quote(search)}")
    return entry


def _check_count(where: str, key: str, value: Any) -> None:
    """A positive integer at most LIMITS[key]."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{where}: '{key}' must be a positive integer; got {_quote(value)}")
    if value > LIMITS[key]:
        raise UserError(f"{where}: '{key}' = {_quote(value)} is more than the limit of"
                        f" {LIMITS[key]:,}")


def _check_budget(where: str, budget: Any) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise UserError(f"{where}: 'budget' must be \"oneshot\" or a number of trials (a"
                        f" positive integer); got {_quote(budget)}")
    _check_count(where, "budget", budget)


def _quote(value: Any) -> str:
    """A user's value in a message: repr-quoted (so it stays on one line), TOML's true and
    false for booleans, and cut to 60 characters."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _path(path: Path) -> str:
    """A path in a message: as it is, unless it would break the line."""
    return str(path) if str(path).isprintable() else repr(str(path))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())
