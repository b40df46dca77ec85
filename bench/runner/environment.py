"""What a run ran on: platform, devices, library versions, host and git state. Goes into
the results folder's manifest."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy", "pandas", "optbench")
CHECKOUT = Path(__file__).resolve().parents[2]


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
                 "machine": platform.machine(), "cpus": _cpu_count()},
        "git_commit": git_commit(),
    }


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


def _cpu_count() -> int | None:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
