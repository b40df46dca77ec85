"""What `optbench list` shows, as plain data: one dict per optimizer, workload or preset,
with everything a script needs (`--json` prints these as they are; the tables are drawn
from them), and `--filter` choosing by name.

A filter with a glob character (`*`, `?`, `[`) is a glob on the whole name; otherwise a
substring of it; both ignore case.
"""
from __future__ import annotations

import fnmatch
import math
from pathlib import Path
from typing import Any

from bench.errors import UserError
from optimizers.registry import did_you_mean

_PACKAGES = {"optimizers": Path(__file__).resolve().parents[1] / "optimizers",
             "workloads": Path(__file__).resolve().parents[1] / "workloads"}


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
            "caveats": dict(spec.caveats)}


def workload(name: str) -> dict[str, Any]:
    import workloads

    w = workloads.get(name)
    return {"name": w.name, "data": w.data if isinstance(w.data, str) else "generated",
            "batch_size": w.batch_size, "steps": w.steps, "eval_every": w.eval_every,
            "target": {"metric": w.target.metric, "value": _plain(w.target.value),
                       "direction": w.target.direction},
            "metrics": dict(w.metrics), "width": w.width, "model": w.description,
            "source": w.source, "origin": _origin(w.source, "workloads", w.name)}


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
