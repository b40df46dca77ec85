"""What the run ran on: platform, devices, library versions, host, git commit.

(Sampling device and host usage while a cell trains belongs here too.)
"""
from __future__ import annotations

import importlib.metadata
import platform
import socket
import subprocess
from pathlib import Path

_PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "pandas", "optbench")


def environment() -> dict:
    import jax

    devices = jax.devices()
    return {
        "device": {
            "platform": devices[0].platform,
            "kind": devices[0].device_kind,
            "count": len(devices),
        },
        "versions": {"python": platform.python_version(), **{p: _version(p) for p in _PACKAGES}},
        "host": {"name": socket.gethostname(), "system": platform.platform(),
                 "machine": platform.machine(), "cpus": _cpu_count()},
        "git_commit": git_commit(),
    }


def git_commit() -> str | None:
    """The commit of the optbench checkout, with '+dirty' if it has local changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=5)
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return commit.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_count() -> int | None:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
