"""One value of a matrix, checked: its seeds, widths, logging backends, a workload's or an
optimizer's entry, a count within its limit, the matrix's name. Each check raises a one-line
UserError that starts with where the value came from (a file's key, a flag, a --set).
`bench.plan.matrix` puts them together into a whole matrix.

The limits are far above any sensible matrix and low enough that a typo fails at once
instead of building a million cells.
"""
from __future__ import annotations

from typing import Any

from bench.errors import UserError
from bench.loggers import BACKENDS
from optimizers.registry import did_you_mean

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
LIMITS = {"steps": MAX_STEPS, "eval_every": MAX_STEPS, "batch_size": MAX_BATCH_SIZE,
          "budget": MAX_BUDGET, "tuning_seeds": MAX_SEEDS}


def parse_widths(value: Any, where: str, *, allow_empty: bool = False) -> list[int]:
    """A list of distinct model widths, each 1 to MAX_WIDTH."""
    if (isinstance(value, list) and (value or allow_empty) and len(value) <= MAX_WIDTHS
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WIDTH
                    for v in value)):
        if len(set(value)) != len(value):
            raise UserError(f"{where}: widths {quote(value)} repeat a width")
        return list(value)
    raise UserError(f"{where}: widths must be a list of 1 to {MAX_WIDTHS} integers from 1 to"
                    f" {MAX_WIDTH:,}, e.g. widths = [32, 64, 128]; got {quote(value)}")


def parse_log(value: Any, where: str) -> list[str]:
    """Logging backend names (a list, or one name), each once: ["tensorboard", "mlflow"]."""
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise UserError(f"{where}: log must be a list of backend names, e.g. log ="
                        f" [\"tensorboard\", \"mlflow\"]; got {quote(value)}")
    for name in names:
        if name not in BACKENDS:
            raise UserError(f"{where}: unknown logging backend {quote(name)}"
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
            raise UserError(f"{where}: {form}; got {quote(value)}") from None
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
            raise UserError(f"{where}: seeds {quote(value)} repeat a seed")
        if len(value) > MAX_SEEDS:
            raise UserError(f"{where}: {len(value):,} seeds is more than the limit of"
                            f" {MAX_SEEDS:,} seeds per cell")
        return list(value)
    raise UserError(f"{where}: {form}, each from 0 to {MAX_SEED}; got {quote(value)}")


def matrix_name(name: Any, where: str) -> str:
    """The matrix's name: it names its results folder, so no path in it."""
    if (not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME
            or not name.isprintable() or any(mark in name for mark in "/\\")
            or name.startswith(".")):
        raise UserError(f"{where}: 'name' must be a name of 1 to {MAX_NAME} printable"
                        " characters without / or \\ and not starting with '.' (it names the"
                        f" results folder); got {quote(name)}")
    return name


def check_name(name: Any, where: str, key: str) -> str:
    """A workload or optimizer name: a non-empty printable string (resolved in expand)."""
    if not isinstance(name, str) or not name.strip() or not name.isprintable() \
            or len(name) > 200:
        raise UserError(f"{where}: {quote(name)} is not a valid {key[:-1]} name; give a name"
                        f" from `optbench list {key}`")
    return name


def as_list(value: Any, where: str, key: str) -> list:
    if isinstance(value, (str, dict)):
        return [value]
    if not isinstance(value, list):
        raise UserError(f"{where}: '{key}' must be a list of names or tables; got {quote(value)}")
    return value


def _entry(value: Any, where: str, key: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": check_name(value, f"{where}, key '{key}'", key)}
    if isinstance(value, dict) and isinstance(value.get("name"), str):
        check_name(value["name"], f"{where}, key '{key}'", key)
        return dict(value)
    raise UserError(f"{where}: each of '{key}' must be a name or a table with a 'name';"
                    f" got {quote(value)}")


def workload_entry(value: Any, where: str) -> dict[str, Any]:
    entry = _entry(value, where, "workloads")
    unknown = set(entry) - WORKLOAD_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise UserError(f"{where}: workload {quote(entry['name'])} has unknown key"
                        f" {quote(key)}{did_you_mean(key, WORKLOAD_KEYS)}; allowed:"
                        f" {', '.join(sorted(WORKLOAD_KEYS))}")
    for key in sorted(WORKLOAD_KEYS - {"name", "widths", "width"}):
        if key in entry:
            check_count(f"{where}: workload {quote(entry['name'])}", key, entry[key])
    here = f"{where}: workload {quote(entry['name'])}"
    if "width" in entry and "widths" in entry:
        raise UserError(f"{here} gives both 'width' and 'widths'; give one (width = 64 is"
                        " widths = [64])")
    if "width" in entry:  # one width: the shorthand of a list of one
        entry["widths"] = parse_widths([entry.pop("width")], here)
    elif "widths" in entry:
        parse_widths(entry["widths"], here)
    return entry


def optimizer_entry(value: Any, where: str) -> dict[str, Any]:
    """An optimizer entry; its hyperparameters are checked in expand (by the registry), the
    shape of its search space here."""
    entry = _entry(value, where, "optimizers")
    search = entry.get("search")
    if "search" in entry and (not isinstance(search, dict) or not search):
        raise UserError(
            f"{where}, key 'optimizers': optimizer {quote(entry['name'])}: search must be a"
            " table of hyperparameter = [low, high] (or = [option, ...]), e.g. search ="
            f" {{learning_rate = [1e-4, 1e-1]}}; got search = {quote(search)}")
    return entry


def check_count(where: str, key: str, value: Any) -> None:
    """A positive integer at most LIMITS[key]."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"{where}: '{key}' must be a positive integer; got {quote(value)}")
    if value > LIMITS[key]:
        raise UserError(f"{where}: '{key}' = {quote(value)} is more than the limit of"
                        f" {LIMITS[key]:,}")


def check_budget(where: str, budget: Any) -> None:
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise UserError(f"{where}: 'budget' must be \"oneshot\" or a number of trials (a"
                        f" positive integer); got {quote(budget)}")
    check_count(where, "budget", budget)


def quote(value: Any) -> str:
    """A user's value in a message: repr-quoted (so it stays on one line), TOML's true and
    false for booleans, and cut to 60 characters."""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
