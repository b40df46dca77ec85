"""What a run ran on (platform, devices, library versions, host and git state) and where
it came from (its matrix file or preset, the flags that changed it, the plugin files, the
executor). Goes into the results folder's manifest; results/README.md documents each key."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "pandas", "optbench")
CHECKOUT = Path(__file__).resolve().parents[2]
FLAG_DEFAULTS = "quick"  # the preset a matrix without file or --preset starts from


def environment() -> dict:
    import jax

    devices = jax.devices()
    return {
        "device": {
            "platform": devices[0].platform,
            "kind": devices[0].device_kind,
            "count": len(devices),
        },
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in PACKAGES}},
        "host": {"name": socket.gethostname(), "system": platform.platform(),
                 "machine": platform.machine(), "cpus": usable_cpus(),
                 "cpu_model": cpu_model(), "cores": os.cpu_count(),
                 "load_average": _load_average()},
        "git_commit": git_commit(),
    }


def provenance(matrix, executor: str, limits, overrides: Sequence[str] = ()) -> dict:
    """Where the run's matrix came from and how it ran: the manifest's `provenance`."""
    from bench.train import compile_cache

    return {"matrix": matrix_source(matrix), "overrides": list(overrides),
            "compile_cache": compile_cache.describe(),
            "plugins": plugin_files(), "executor": {
                "name": executor,
                # an existing Dask scheduler has the workers it has: not ours to count
                "workers": (1 if executor == "local" else
                            None if executor == "dask" and limits.address else limits.workers),
                "address": limits.address if executor == "dask" else None,
                # a program's training shared the machine with the next one's compile
                "compile_ahead": executor == "local" and limits.compile_ahead}}


def matrix_source(matrix) -> dict:
    """{"source": "file", "path", "sha256"}, {"source": "preset", "preset", "sha256"}, or
    {"source": "flags", "defaults"} for a matrix the flags named in full (its other keys,
    such as seeds, are the default preset's); "python" for one built in code."""
    source = matrix.source
    if source == "flags":
        return {"source": "flags", "defaults": f"preset:{FLAG_DEFAULTS}"}
    if source.startswith("preset:"):
        return {"source": "preset", "preset": source.removeprefix("preset:"),
                "sha256": matrix.source_sha256}
    if matrix.source_sha256 is None:
        return {"source": "python", "name": source}
    return {"source": "file", "path": str(Path(source).resolve()), "sha256": matrix.source_sha256}


def plugin_files() -> list[dict]:
    """Every plugin file this process loaded (--plugin, the matrix's `plugins`), with the
    sha256 of the bytes it ran."""
    from optimizers.plugins import loaded_sources

    return [{"path": source.path, "sha256": source.digest} for source in loaded_sources()]


def cpu_model() -> str | None:
    """The processor's name: /proc/cpuinfo's `model name` (Linux), else what platform
    knows."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or platform.machine() or None


def _load_average() -> list[float] | None:
    """The 1, 5 and 15-minute load averages at the start: a busy machine slows every clock."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except (AttributeError, OSError):  # not on this system
        return None


def git_commit(root: Path = CHECKOUT) -> str | None:
    """The commit of the optbench checkout, with '+dirty' if it has local changes, new
    untracked files included (a new optimizer file changes what runs)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=normal"],
                               cwd=root, capture_output=True, text=True, timeout=5).stdout.strip()
        return commit.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def usable_cpus() -> int | None:
    """The CPUs this process may run on (its affinity: a container's or taskset's share)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
