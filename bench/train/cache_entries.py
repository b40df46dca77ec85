"""The compilation cache's entries, whole or not at all.

JAX writes an entry straight under its final name and never replaces one that exists, so a
kill or a full disk mid-write would leave a truncated entry that every later run fails to
read (a warning per program, and a compile every time, for good). `WholeEntries` wraps
JAX's file cache: an entry is written to a temporary name and renamed into place, and one
that cannot be loaded (it does not read, decompress or deserialize: truncated, a folder in
its place, another program's bytes) is removed, so the next compile writes it again.

`guard_entries` puts it around JAX's cache (bench/train/compile_cache.py calls it when it
configures the cache).
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from bench.runner.files import writers_temporary


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
