"""Data optbench generates, cached as .npz files (no pickle): read back, or None when
there is nothing usable, and written whole or not at all. The cache holds only what can be
generated again, so a damaged or unwritable cache costs a note and the generation, never a
failed cell."""
from __future__ import annotations

import os
import sys
import zipfile
import zlib
from pathlib import Path

import numpy as np

from bench.report.render import printable
from bench.runner.files import remove_orphans, writers_temporary

# What a damaged .npz raises on reading: truncated or overwritten (BadZipFile, EOFError,
# zlib.error), an array missing (KeyError), an object array (ValueError, pickle refused),
# a folder or an unreadable file in its place (OSError).
_UNREADABLE = (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error)


def read(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays cached at `path`, or None when there are none to read: a damaged file (a
    hand edit, a disk that filled) is named in a note, for the caller to generate again.
    What a writer killed mid-write left beside it goes first: later runs only read."""
    remove_orphans(path.parent, path.name)
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
    tmp = writers_temporary(path)  # what a killed writer left goes when the set is read
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:  # a full disk or a Ctrl-C leaves no half-written file (a kill -9
        # leaves its temporary name, which no reader takes for the set)
        tmp.unlink(missing_ok=True)
        raise
