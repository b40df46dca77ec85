"""Data optbench generates, cached as .npz files (no pickle): read back, or None when
there is nothing usable, and written whole or not at all. The cache holds only what can be
generated again, so a damaged or unwritable cache costs a note and the generation, never a
failed cell."""
from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bench.report.render import printable

# What a damaged .npz raises on reading: truncated or overwritten (BadZipFile, EOFError,
# zlib.error), an array missing (KeyError), an object array (ValueError, pickle refused),
# a folder or an unreadable file in its place (OSError).
_UNREADABLE = (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error)


def read(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays cached at `path`, or None when there are none to read: a damaged file (a
    hand edit, a disk that filled) is named in a note, for the caller to generate again."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: np.asarray(npz[name]) for name in names}
    except (FileNotFoundError, NotADirectoryError):  # none cached (a file in the folder's place)
        return None
    except _UNREADABLE as exc:
        unreadable(path, exc)
        return None


def unreadable(path: Path, exc: Exception) -> None:
    """The note for a cached file that cannot be used, and why."""
    print(f"optbench: note: the cached data {printable(path)} cannot be read"
          f" ({type(exc).__name__}: {exc}); generating it again", file=sys.stderr)


def keep(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Cache `arrays` at `path` if the cache can take them; a cache that cannot (read-only,
    full, a folder in the way) costs the next run the generation again, nothing else."""
    try:
        write_atomically(path, **arrays)
    except OSError as exc:  # named when it is about a folder above (a file in its place)
        where = (f"{printable(exc.filename)}: " if exc.filename
                 and Path(os.fsdecode(exc.filename)).parent != path.parent else "")
        print(f"optbench: note: cannot cache the generated data at {printable(path)}"
              f" ({where}{exc.strerror or exc}); the next run generates it again",
              file=sys.stderr)


def write_atomically(path: Path, **arrays) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_orphans(path)
    # one name per thread too: two programs' threads of one Dask worker may both generate
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:  # a full disk or a Ctrl-C leaves no half-written file (a kill -9
        # leaves its temporary name, which no reader takes for the set)
        tmp.unlink(missing_ok=True)
        raise


def remove_orphans(path: Path) -> None:
    """Remove the temporaries of `path` whose writer is gone: a process killed outright
    (kill -9, a power cut) mid-write leaves its file (MNIST-1D's is ~1.6 MB), and no later
    run would take that name again. A writer still running on this machine keeps its file."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)\.\d+\.tmp")
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        found = pattern.fullmatch(entry.name)
        if found and entry.is_file(follow_symlinks=False) and not _running(int(found[1])):
            with contextlib.suppress(OSError):  # another run removed it first
                os.unlink(entry.path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; a number no pid is
        return True
    return True
