"""Writing files safely: every file optbench writes goes through here.

- A file is written to a temporary name in its folder and renamed into place, so a crash,
  kill or full disk never leaves a half-written file under the real name.
- Links are never followed when writing: the rename replaces a symbolic link itself, not
  its target, and a folder optbench makes inside a results folder (cells/, plots/,
  compare/) is refused when it is a link.
- A failure to write (a full disk, a read-only folder, a path that is a file) is one
  `UserError` line naming the path and the reason, never a traceback.
- A results folder is locked by an `flock` on the folder itself, held by the open
  descriptor until the process ends (even by kill -9): deleting a file cannot fool it.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import socket
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.errors import UserError

TEMPORARY = ".*.tmp"  # the pattern of the temporary names below
LOCK_INFO = ".lock"  # who holds the lock (for the message); the lock is on the folder


def utf8(text: str) -> bool:
    """Whether `text` encodes as UTF-8: a file name that is not (Python keeps its bytes as
    surrogates) cannot be handed to pyarrow or written into a page."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def make_folder(path: Path, *, link_ok: bool = False) -> Path:
    """Create `path` (and its parents) if missing. A folder the user named may be a link
    (`link_ok`); one optbench makes inside a results folder may not."""
    path = Path(path)
    if path.is_symlink() and not link_ok:
        raise UserError(f"{path} is a symbolic link; optbench never writes through links:"
                        " remove it or choose another folder")
    if path.is_symlink() and not path.exists():
        raise UserError(f"{path} is a link to {os.readlink(path)}, which does not exist;"
                        " choose another folder")
    if path.exists() and not path.is_dir():
        raise UserError(f"{path} is a file, not a folder; choose another path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create folder {path}: {_reason(exc)}") from None
    return path


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise UserError(f"cannot write {path}: it is a folder")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:64]}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"cannot write in {path.parent}: {_reason(exc)}") from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)  # replaces a link at `path`, never writes through it
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {_reason(exc)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json(path: Path, payload: Any) -> None:
    """Strict JSON (NaN and infinities become null), so any tool can read it."""
    text = json.dumps(_finite(payload), indent=2, default=_jsonable, allow_nan=False)
    write_text(path, text)


def read_json(path: Path) -> Any:
    """JSON from a regular file, not through a link; OSError or ValueError when it is not."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not block
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        try:
            return json.loads(handle.read())
        except RecursionError:  # nested thousands deep: damaged or hostile, like bad JSON
            raise ValueError(f"{path}: JSON nested too deeply") from None


def lock_folder(root: Path):
    """An exclusive lock on the folder `root`, or a one-line UserError naming its holder.
    Returns the descriptor that holds it; keep it open for as long as the lock is needed."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise UserError(f"{root} is in use by another optbench run ({_holder(root)});"
                        " wait for it to finish or choose another --out") from None
    write_text(root / LOCK_INFO, f"pid {os.getpid()}")
    return fd


def try_lock_folder(root: Path):
    """The lock when it is free, else None (readers use it to decide whether to write)."""
    try:
        return lock_folder(root)
    except (UserError, OSError):
        return None


def folder_in_use(root: Path) -> bool:
    """Whether a run holds the folder's lock now (tested with a shared lock, taken and let
    go at once: nothing is written, so a read-only folder can be asked too)."""
    try:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # closing releases a lock taken here


def unlock_folder(fd) -> None:
    if fd is not None:
        os.close(fd)


def remove_temporaries(folder: Path) -> None:
    """Temporary files a killed process left behind (call it holding the folder's lock)."""
    for tmp in Path(folder).glob(TEMPORARY):
        if tmp.is_file() and not tmp.is_symlink():
            tmp.unlink(missing_ok=True)


# this machine's name, as a name can hold it unambiguously: no dots, no slashes
HOST = re.sub(r"[^A-Za-z0-9-]", "_", socket.gethostname())[:64] or "_"
_WRITERS_TEMPORARY = re.compile(r"\.(.+)\.([A-Za-z0-9_-]+)\.(\d+)\.\d+\.tmp")


def writers_temporary(path: Path) -> Path:
    """A temporary name beside `path` that is its writer's own, for a folder no lock guards
    (the shared caches): `.<name>.<host>.<pid>.<thread>.tmp`. One per thread too: two
    programs' threads of one Dask worker may write the same file at once. The host, because
    a cache on a shared disk (an NFS home, a cluster's) has writers on other machines, whose
    pids say nothing here."""
    return path.with_name(f".{path.name[:64]}.{HOST}.{os.getpid()}.{threading.get_ident()}.tmp")


def remove_orphans(folder: Path, name: str | None = None) -> None:
    """Remove the `writers_temporary` files in `folder` (only `name`'s, if given) whose
    writer is gone: a process of this machine killed outright (kill -9, a power cut)
    mid-write leaves its file, and no later writer takes that name again. A running
    writer's file is kept, and so is another machine's: whether its writer runs cannot be
    told from here. Only files go: never a link (nor what it points to) or a folder."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        found = _WRITERS_TEMPORARY.fullmatch(entry.name)
        if (found and (name is None or found[1] == name[:64]) and found[2] == HOST
                and entry.is_file(follow_symlinks=False) and not _running(int(found[3]))):
            with contextlib.suppress(OSError):  # another writer removed it first
                os.unlink(entry.path)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):  # another user's process; no pid is that large
        return True
    return True


def _holder(root: Path) -> str:
    try:
        fd = os.open(root / LOCK_INFO, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            text = handle.read(64).decode("ascii", "replace").strip()
    except OSError:
        text = ""
    return text if text.startswith("pid ") and text[4:].isdigit() else "another process"


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _umask() -> int:
    """The process umask (reading it means setting it; it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any):
    if isinstance(value, (np.integer, np.floating)):
        return _finite(value.item())
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
