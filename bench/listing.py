"""What `optbench list` shows, as plain data: one dict per optimizer, workload or preset,
with everything a script needs (`--json` prints these as they are; the tables are drawn
from them), and `--filter` choosing by name.

A filter with a glob character (`*`, `?`, `[`) is a glob on the whole name; otherwise a
substring of it; both ignore case.
"""
from __future__ import annotations

import fnmatch
import hashlib
import math
from pathlib import Path
from typing import Any

from bench.errors import UserError
from optimizers.registry import did_you_mean

_PACKAGES = {"optimizers": Path(__file__).resolve().parents[1] / "optimizers",
             "workloads": Path(__file__).resolve().parents[1] / "workloads"}


def rows(what: str, pattern: str | None) -> tuple[list[dict[str, Any]], str]:
    """The rows of `optbench list WHAT` that `pattern` picks, and a note when it picks
    none ("" otherwise)."""
    if what == "presets":
        found = presets()
        names = [row["name"] for row in found]
        picked = set(chosen(names, pattern))
        found = [row for row in found if row["name"] in picked]
    else:
        import optimizers
        import workloads

        names = (optimizers if what == "optimizers" else workloads).names()
        describe = optimizer if what == "optimizers" else workload
        found = [describe(name) for name in chosen(names, pattern)]
    return found, (no_match(what, pattern, names) if not found and pattern else "")


def show(console, what: str, rows: list[dict[str, Any]]) -> None:
    """The rows as a terminal table (presets: a paragraph each); every value is data."""
    from rich.markup import escape
    from rich.table import Table

    if what == "presets":
        for row in rows:
            console.print(f"[bold]{escape(row['name'])}[/bold]: {escape(row['description'])}",
                          markup=True)
        return
    if what == "optimizers":
        table = Table("name", "defaults", "search space", "reference")
        for row in rows:
            space = ", ".join(f"{k}: {_dimension(d)}" for k, d in row["search_space"].items())
            defaults = ", ".join(f"{k}={row['defaults'][k]}" for k in row["search_space"])
            table.add_row(*map(escape, (row["name"], defaults, space or "-",
                                        row["reference"] or "-")))
    else:
        table = Table("name", "data", "batch", "steps", "eval every", "target", "width",
                      "model")
        for row in rows:
            target = row["target"]
            table.add_row(*(escape(str(v)) for v in (
                row["name"], row["data"], row["batch_size"], row["steps"], row["eval_every"],
                f"{target['metric']} {'≥' if target['direction'] == 'max' else '≤'}"
                f" {target['value']:g}", row["width"] or "-", row["model"])))
    console.print(table)


def _dimension(dim: dict[str, Any]) -> str:
    """A search-space entry as `optbench list` has always shown it."""
    if dim["kind"] == "choice":
        return "one of " + ", ".join(map(repr, dim["options"]))
    return f"{dim['kind']}[{dim['low']:g}, {dim['high']:g}]"


def chosen(names: list[str], pattern: str | None) -> list[str]:
    """The names `pattern` picks (all of them without one)."""
    if pattern is None:
        return names
    if not pattern.strip():
        raise UserError("--filter is empty; give part of a name (adam) or a glob (optax:*)")
    if not pattern.isprintable():
        raise UserError(f"--filter {pattern!r} holds control characters; give part of a name"
                        " (adam) or a glob (optax:*)")
    lowered = pattern.lower()
    if any(mark in pattern for mark in "*?["):
        return [n for n in names if fnmatch.fnmatchcase(n.lower(), lowered)]
    return [n for n in names if lowered in n.lower()]


def no_match(what: str, pattern: str, names: list[str]) -> str:
    return (f"no {what[:-1]} matches --filter {pattern!r}{did_you_mean(pattern, names)};"
            f" `optbench list {what}` shows them all")


def optimizer(name: str) -> dict[str, Any]:
    import optimizers
    from optimizers.space import Choice, LogUniform

    spec = optimizers.get(name)
    space = {}
    for key, dim in spec.space.items():
        if isinstance(dim, Choice):
            space[key] = {"kind": "choice", "options": [_plain(o) for o in dim.options],
                          "default": _plain(dim.default)}
        else:
            space[key] = {"kind": "log-uniform" if isinstance(dim, LogUniform) else "uniform",
                          "low": _plain(dim.low), "high": _plain(dim.high),
                          "default": _plain(dim.default)}
    return {"name": spec.name, "defaults": {k: _plain(v) for k, v in spec.defaults.items()},
            "search_space": space, "reference": spec.reference,
            "source": spec.source, "origin": _origin(spec.source, "optimizers", spec.name),
            "sha256": _digest(spec.source), "caveats": dict(spec.caveats)}


def workload(name: str) -> dict[str, Any]:
    import workloads

    w = workloads.get(name)
    return {"name": w.name, "data": w.data if isinstance(w.data, str) else "generated",
            "batch_size": w.batch_size, "steps": w.steps, "eval_every": w.eval_every,
            "target": {"metric": w.target.metric, "value": _plain(w.target.value),
                       "direction": w.target.direction},
            "metrics": dict(w.metrics), "width": w.width, "model": w.description,
            "source": w.source, "origin": _origin(w.source, "workloads", w.name),
            "sha256": _digest(w.source)}


def presets() -> list[dict[str, Any]]:
    """Each preset's name, its whole description (the comment lines that open its file,
    joined into one text) and its file."""
    from bench.plan.matrix import PRESET_DIR

    found = []
    for path in sorted(PRESET_DIR.glob("*.toml")):
        header = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            header.append(line.lstrip("#").strip())
        found.append({"name": path.stem, "description": " ".join(filter(None, header)),
                      "file": str(path)})
    return found


def _origin(source: str, package: str, name: str) -> str:
    """'optax' (the catalogue), 'builtin' (a file of the package) or 'plugin'."""
    if name.startswith("optax:"):
        return "optax"
    try:
        inside = Path(source).resolve().parent == _PACKAGES[package]
    except (OSError, ValueError):
        inside = False
    return "builtin" if inside else "plugin"


def _digest(source: str) -> str | None:
    """sha256 of the file that registered it, as it is now (None if unreadable)."""
    try:
        return hashlib.sha256(Path(source).read_bytes()).hexdigest()
    except (OSError, ValueError):
        return None


def _plain(value: Any) -> Any:
    """A value JSON holds as it is: numbers (inf and NaN as text), text, true/false, null;
    anything else as its repr."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return repr(value)
