"""JAX's persistent compilation cache, on by default: a second run of the same programs
loads their executables from disk instead of compiling them again.

The cache lives in `$OPTBENCH_CACHE/jax` (default `~/.cache/optbench/jax`, beside the
datasets); `OPTBENCH_COMPILE_CACHE=off` (or `optbench run --no-compile-cache`) turns it off.
A cache hit is counted apart (`hit_count`), so the engine books an executable loaded from
disk as `compile_cached_s`, never as `compile_s`: compile figures stay what compiling costs.

Its entries are written whole, and one that cannot be loaded is removed
(bench/train/cache_entries.py).

`configure()` must run before the process compiles anything: JAX decides once per process
whether the cache is used, at its first compile. The engine calls it when it is imported.
"""
from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

from bench.report.render import printable
from bench.runner.files import remove_orphans, utf8
from bench.train.cache_entries import guard_entries
from bench.train.data import cache_dir

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

    problem = unusable()
    if problem is not None:
        print(f"optbench: warning: no compilation cache ({problem}); compiling everything"
              f" (set {SWITCH_ENV}=off to silence this)", file=sys.stderr)
        _off(jax)
        return
    remove_orphans(folder())  # what writers killed mid-write (kill -9) left
    jax.config.update("jax_compilation_cache_dir", str(folder()))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    guard_entries()
    if _hits is None:
        _hits = CacheHits()


def unusable() -> str | None:
    """Why this process cannot use the cache, or None (its folder made if missing)."""
    import jax

    if jax.config.jax_compilation_cache_max_size != -1 and not _has_filelock():
        # JAX's size-limited cache needs filelock: without it JAX would warn at the first
        # compile and cache nothing. Caching without the limit would ignore the user's bound.
        return "JAX_COMPILATION_CACHE_MAX_SIZE needs the filelock package: pip install filelock"
    # JAX takes a bucket (gs://...) too, which Path() would turn into a local gs:/ folder
    given = os.environ.get("JAX_COMPILATION_CACHE_DIR") or ""
    if "://" in given:
        return (f"{printable(given)}: not a local folder, which optbench's cache needs to"
                " write each entry whole")
    # JAX would fail each compile on a folder it cannot make or name (XLA takes the path as
    # UTF-8: one from $OPTBENCH_CACHE in other bytes failed every cell): the run goes uncached
    if not utf8(str(folder())):
        return f"{printable(folder())}: not a valid UTF-8 path, which JAX needs"
    try:
        folder().mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"{printable(folder())}: {exc.strerror or exc}"
    return None


def describe() -> str:
    """The cache as the manifest records it: its folder, or that it is off and why."""
    if not enabled():
        return "off"
    problem = unusable()
    return str(folder()) if problem is None else f"off ({problem})"


def _off(jax) -> None:
    """JAX's cache off for this process: JAX_COMPILATION_CACHE_DIR alone turns it on, and JAX
    would then warn at the first compile about the very thing just said."""
    jax.config.update("jax_enable_compilation_cache", False)


def _has_filelock() -> bool:
    import importlib.util

    return importlib.util.find_spec("filelock") is not None


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
