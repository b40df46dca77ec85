"""JAX's persistent compilation cache, on by default: a second run of the same programs
loads their executables from disk instead of compiling them again.

The cache lives in `$OPTBENCH_CACHE/jax` (default `~/.cache/optbench/jax`, beside the
datasets); `OPTBENCH_COMPILE_CACHE=off` (or `optbench run --no-compile-cache`) turns it off.
A cache hit is counted apart (`hit_count`), so the engine books an executable loaded from
disk as `compile_cached_s`, never as `compile_s`: compile figures stay what compiling costs.

JAX writes an entry straight under its final name and never replaces one that exists, so a
kill or a full disk mid-write would leave a truncated entry that every later run fails to
read (a warning per program, and a compile every time, for good). `WholeEntries` wraps
JAX's file cache: an entry is written to a temporary name and renamed into place, and one
that cannot be loaded (it does not read, decompress or deserialize: truncated, a folder in
its place, another program's bytes) is removed, so the next compile writes it again.

`configure()` must run before the process compiles anything: JAX decides once per process
whether the cache is used, at its first compile. The engine calls it when it is imported.
"""
from __future__ import annotations

import os
import shutil
import sys
import threading
from pathlib import Path

from bench.report.render import printable
from bench.runner.files import remove_orphans, utf8, writers_temporary
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


def guard_entries() -> bool:
    """Put `WholeEntries` around JAX's file cache, made now or at the first compile. This
    reaches into `jax._src.compilation_cache` (no public hook exists); where a JAX release
    lacks what it needs, JAX's own cache stays as it is (False), and
    tests/test_compile_cache.py fails to say so."""
    try:
        from jax._src import compilation_cache as jax_cache
        from jax._src import lru_cache
    except ImportError:
        return False
    make = getattr(jax_cache, "get_file_cache", None)
    load = getattr(jax_cache, "get_executable_and_time", None)
    if make is None or load is None or not hasattr(jax_cache, "decompress_executable") \
            or not hasattr(lru_cache, "_CACHE_SUFFIX"):
        return False
    if not getattr(load, "guarded", False):
        jax_cache.get_executable_and_time = _loading_or_discarding(jax_cache, load)
    if getattr(jax_cache, "_cache", None) is not None:  # something compiled before us
        jax_cache._cache = WholeEntries.around(jax_cache._cache)
        return True
    if not getattr(make, "guarded", False):
        def get_file_cache(path):
            made = make(path)
            return None if made is None else (WholeEntries.around(made[0]), made[1])
        get_file_cache.guarded = True
        jax_cache.get_file_cache = get_file_cache
    return True


def _loading_or_discarding(jax_cache, load):
    """JAX's loader, with an entry that reads and decompresses but does not deserialize
    (another program's bytes, a damaged executable) removed and read as missing: JAX would
    warn about it and compile that program again on every run, for good."""
    def get_executable_and_time(cache_key, *args, **kwargs):
        try:
            return load(cache_key, *args, **kwargs)
        except Exception:  # noqa: BLE001  XLA's own error types: any failure to load
            cache = getattr(jax_cache, "_cache", None)
            if not isinstance(cache, WholeEntries) or _raise_cache_errors():
                raise  # JAX's verifying cache, or a user who asked to see these: as JAX does
            cache.discard(cache_key)
            return None, None
    get_executable_and_time.guarded = True
    return get_executable_and_time


def _raise_cache_errors() -> bool:
    import jax

    return bool(getattr(jax.config, "jax_raise_persistent_cache_errors", False))


class WholeEntries:
    """JAX's file cache (`LRUCache`) with whole entries only: written under a temporary
    name and renamed, so no reader ever sees half of one; an entry that does not decompress
    (written by an earlier, unguarded process that was killed) is deleted and reads as
    missing. With JAX's size limit on (`jax_compilation_cache_max_size`), writing goes
    through JAX's own locked, evicting path."""

    _write_failed = False  # one warning per process for a cache that cannot be written
    _too_big_said = False  # and one for programs larger than JAX's size limit

    def __init__(self, base):
        self._base = base
        mask = os.umask(0)  # reading the umask means setting it; put back at once
        os.umask(mask)
        self._mode = 0o666 & ~mask  # as JAX's own writes, also over a dead writer's file

    @classmethod
    def around(cls, cache):
        """`cache` guarded, when it is JAX's plain file cache (it has a `path`); JAX's
        debugging VerificationCache, or one already guarded, as it is."""
        plain = not isinstance(cache, cls) and hasattr(cache, "path")
        return cls(cache) if plain else cache

    def __getattr__(self, name):  # _path and whatever else JAX asks of its cache
        return getattr(self._base, name)

    def _file(self, key: str) -> Path:
        from jax._src.lru_cache import _CACHE_SUFFIX

        return Path(self._base.path) / f"{key}{_CACHE_SUFFIX}"

    def get(self, key: str) -> bytes | None:
        from jax._src.compilation_cache import decompress_executable

        target = self._file(key)
        if (target.exists() or target.is_symlink()) and not target.is_file():
            self.discard(key)  # a folder, a pipe (reading one waits for ever), a dead link
            return None
        try:
            value = self._base.get(key)
        except OSError:  # an unreadable file, or one replaced by a folder since
            self.discard(key)
            return None
        if value is None:
            return None
        try:
            decompress_executable(value)
        except Exception:  # noqa: BLE001  truncated: zstd and zlib both refuse it
            self.discard(key)
            return None
        return value

    def discard(self, key: str) -> None:
        """Remove the entry under `key`, whatever sits there; a link goes, never its target.
        One that cannot be removed stays: it reads as missing and is never written over."""
        target = self._file(key)
        try:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                target.unlink(missing_ok=True)
        except OSError:
            pass

    def put(self, key: str, value: bytes) -> None:
        if getattr(self._base, "eviction_enabled", False):
            limit = getattr(self._base, "max_size", -1)
            if 0 < limit < len(value):  # JAX warns for each such program, on every run
                if not WholeEntries._too_big_said:
                    WholeEntries._too_big_said = True
                    print(f"optbench: warning: a compiled program ({len(value):,} bytes) is"
                          f" larger than the whole compilation cache may be ({limit:,} bytes,"
                          " JAX_COMPILATION_CACHE_MAX_SIZE); such programs are compiled every"
                          " run", file=sys.stderr)
                return
            self._base.put(key, value)
            return
        target = self._file(key)
        if target.exists() or WholeEntries._write_failed:
            return
        tmp = writers_temporary(target)
        try:
            with open(tmp, "wb") as handle:
                handle.write(value)
                os.fchmod(handle.fileno(), self._mode)
            os.replace(tmp, target)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            self._cannot_write(exc)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @staticmethod
    def _cannot_write(exc: OSError) -> None:
        WholeEntries._write_failed = True  # a full disk stays full: do not try per program
        print(f"optbench: warning: cannot write the compilation cache ({exc.strerror or exc});"
              " this run compiles without saving", file=sys.stderr)


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
