"""JAX's persistent compilation cache, on by default: a second run of the same programs
loads their executables from disk instead of compiling them again.

The cache lives in `$OPTBENCH_CACHE/jax` (default `~/.cache/optbench/jax`, beside the
datasets); `OPTBENCH_COMPILE_CACHE=off` (or `optbench run --no-compile-cache`) turns it off.
A cache hit is counted apart (`hit_count`), so the engine books an executable loaded from
disk as `compile_cached_s`, never as `compile_s`: compile figures stay what compiling costs.

`configure()` must run before the process compiles anything: JAX decides once per process
whether the cache is used, at its first compile. The engine calls it when it is imported.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from bench.train.data import cache_dir  # no JAX: the manifest asks `enabled` and `folder`

SWITCH_ENV = "OPTBENCH_COMPILE_CACHE"
OFF = {"0", "off", "false", "no"}
_HIT_EVENT = "/jax/compilation_cache/cache_hits"  # recorded by jax._src.compiler on a hit


ON = {"", "1", "on", "true", "yes"}


def enabled() -> bool:
    return os.environ.get(SWITCH_ENV, "on").strip().lower() not in OFF


def switch_problem() -> str | None:
    """What is wrong with $OPTBENCH_COMPILE_CACHE, or None: a value that is neither on nor
    off (a typo such as `of`) would leave the cache on without a word."""
    value = os.environ.get(SWITCH_ENV, "on")
    if value.strip().lower() in ON | OFF:
        return None
    return (f"{SWITCH_ENV}={value!r} is neither on nor off; set it to off (or 0, false, no) to"
            " compile everything afresh, or to on (or 1, true, yes, or unset it) to use the"
            " cache")


def folder() -> Path:
    """$OPTBENCH_CACHE/jax, or the folder JAX was already told to use (its own variable
    JAX_COMPILATION_CACHE_DIR: a user's, or the test session's shared one)."""
    return Path(os.environ.get("JAX_COMPILATION_CACHE_DIR") or cache_dir() / "jax")


def configure() -> None:
    """Point JAX's persistent cache at `folder()`, or leave it off when switched off. Every
    executable is cached, however fast it compiled (JAX's default keeps only those over a
    second: most of ours compile in less, and a run holds dozens)."""
    global _hits
    if not enabled():
        return
    import jax

    try:  # JAX would fail each compile on a folder it cannot make: say so once, run uncached
        folder().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"optbench: warning: no compilation cache ({folder()}: {exc.strerror or exc});"
              f" compiling everything (set {SWITCH_ENV}=off to silence this)", file=sys.stderr)
        return
    jax.config.update("jax_compilation_cache_dir", str(folder()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    if _hits is None:
        _hits = CacheHits()


class CacheHits:
    """Counts JAX's cache-hit events in this process (thread-safe): the engine reads the
    count before and after a compile to know whether it came from disk."""

    def __init__(self):
        import jax

        self._lock = threading.Lock()
        self._count = 0
        jax.monitoring.register_event_listener(self._on_event)

    def _on_event(self, event: str, **_) -> None:
        if event == _HIT_EVENT:
            with self._lock:
                self._count += 1

    @property
    def count(self) -> int:
        with self._lock:
            return self._count


_hits: CacheHits | None = None  # made by configure(): no cache, no hits


def hit_count() -> int:
    """Cache hits in this process so far (0 with the cache off)."""
    return _hits.count if _hits is not None else 0
