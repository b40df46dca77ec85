"""A results folder's sessions: each `optbench run` into it (the first, a resume, a --force
rerun) is one. The manifest's top level describes the session running now (host, device,
executor, ...) and when it started (`session_started`); each earlier session that left cells
in the folder is kept in `earlier_sessions`, with the number of cell files it saved, so that
a report can say when the cells it shows were trained under different set-ups (another
machine, another executor, compile ahead). A resumed run used to keep only its last
session's set-up. No JAX.
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# what an earlier session's record keeps of its manifest: its set-up, not the matrix
KEPT = ("session_started", "updated", "device", "host", "versions", "git_commit", "provenance")
MOST = 50  # sessions kept (the latest): a folder resumed a thousand times stays readable


def now() -> str:
    """A session's start, to the microsecond: cell files saved after it are its own."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def earlier_sessions(existing: dict[str, Any] | None, cell_files: list[Path]) -> list[dict]:
    """The `earlier_sessions` of a session opening a folder whose manifest is `existing`:
    those it recorded, and the session that wrote `existing` when it saved a cell file (or
    when that cannot be told: a manifest made before sessions were recorded)."""
    if not isinstance(existing, dict):
        return []
    earlier = recorded(existing)
    saved = saved_by(existing, cell_files)
    if saved != 0:
        earlier.append({**{k: existing[k] for k in KEPT if k in existing}, "cells_saved": saved})
    return earlier[-MOST:]


def ended(manifest: dict[str, Any], saved: int, *, finished: bool,
          present: int | None = None) -> dict[str, Any]:
    """The manifest of a session ending having saved `saved` cell files. One that `finished`
    having saved none (a resume with nothing left to train) trained none of the cells the
    manifest describes: its set-up gives way to that of the last earlier session, which did
    (a finished folder resumed on another set-up read "trained in 2 sessions set up
    differently" though every cell was the first session's). An interrupted one keeps its
    own, with its count of 0, which is what its Ctrl-C line and bench.run's RunInterrupted
    report; the next session leaves it out of `earlier_sessions`, as one that saved nothing,
    and a report reads the folder through `of_cells`. One that saved every one of the
    `present` cell files (a --force rerun) left none of the earlier sessions' cells: they go
    (the report said such a rerun's cells were "trained in 2 sessions set up differently")."""
    if saved and present is not None and saved >= present:
        return {**{k: v for k, v in manifest.items() if k != "earlier_sessions"},
                "cells_saved": saved}
    if saved or not finished:
        return {**manifest, "cells_saved": saved}
    return of_cells({**manifest, "cells_saved": 0})


def of_cells(manifest: dict[str, Any]) -> dict[str, Any]:
    """`manifest` with the set-up of the session that trained its cells: that of the last
    earlier session when its own saved none (one interrupted before a cell finished), which
    is what a report says the cells were trained with; the report of a resume stopped before
    any cell said the cells were trained "in 2 sessions set up differently", and named the
    stopped session's set-up (executor, --compile-ahead, commit) as the run's."""
    earlier = [s for s in recorded(manifest) if not _none(s.get("cells_saved"))]  # hand edits
    if not earlier or not _none(manifest.get("cells_saved")):
        return ({k: v for k, v in manifest.items() if k != "earlier_sessions"}
                | ({"earlier_sessions": earlier} if earlier else {}))
    last = earlier[-1]
    restored = {k: v for k, v in manifest.items()
                if k not in KEPT or k == "updated"} | {k: last[k] for k in KEPT
                                                         if k in last and k != "updated"}
    restored["cells_saved"] = last.get("cells_saved")
    restored.pop("earlier_sessions", None)
    return {**restored, **({"earlier_sessions": earlier[:-1]} if len(earlier) > 1 else {})}


def _none(count: Any) -> bool:
    """Whether a recorded `cells_saved` says the session saved no cell (a negative one is a
    hand edit, read as none, as `saved_by` does); a bool or anything else says nothing."""
    return isinstance(count, int) and not isinstance(count, bool) and count <= 0


def recorded(manifest: dict[str, Any]) -> list[dict]:
    """The manifest's `earlier_sessions`, oldest first; anything else there (a hand edit) is
    no session."""
    found = manifest.get("earlier_sessions")
    return [s for s in found if isinstance(s, dict)] if isinstance(found, list) else []


def saved_by(manifest: dict[str, Any], cell_files: list[Path]) -> int | None:
    """How many of `cell_files` the session of `manifest` saved: the count it recorded when
    it ended (`cells_saved`), else (a session killed outright) those written since it
    started, by their times, which a copy with its times or a clock that was ahead fools;
    None when neither can be told."""
    recorded_ = manifest.get("cells_saved")
    if isinstance(recorded_, int) and not isinstance(recorded_, bool):
        return min(max(recorded_, 0), len(cell_files))  # a hand edit: no more than are there
    return _saved_since(manifest.get("session_started"), cell_files)


def interrupted_line(saved: int, present: int, folder: str, *, again: str,
                     resume: str | None = None) -> str:
    """What a Ctrl-C leaves in `folder`, said the same by the CLI and the API: the `saved`
    cells this session finished, and those of the `present` from earlier sessions, which a
    rerun (`again`) skips. `resume` (a --force run's): the rerun that keeps this run's cells
    and trains only the missing ones; it keeps the earlier cells too, untrained again, so
    it is offered alone only when there are none, and never when this run saved nothing."""
    before = max(present - saved, 0)
    earlier = (f"; the {before} cell(s) saved there by an earlier run are kept" if before
               else "")
    if not saved and not before:
        return f"interrupted before any cell finished; {again} to start again"
    if not saved:  # a --force run has nothing to lose: the same command starts it again
        return (f"interrupted before any cell of this run finished{earlier}; {again} to"
                + (" start again" if resume else " finish the rest"))
    if resume is None:
        rest = f"{again} to finish the rest"
    elif not before:
        rest = f"{resume} to finish the rest"
    else:
        rest = (f"{resume} to train only the missing cells (keeping those {before} as they"
                f" are), or {again} to retrain every cell")
    return f"interrupted: {saved} finished cell(s) saved in {folder}{earlier}; {rest}"


def _saved_since(started: Any, cell_files: list[Path]) -> int | None:
    """How many of `cell_files` were written at or after `started` (cell files are renamed
    into place when a cell finishes); None when `started` is missing or not a time."""
    try:
        since = datetime.fromisoformat(started).timestamp()
    except (TypeError, ValueError):
        return None
    count = 0
    for path in cell_files:
        try:
            count += path.stat().st_mtime >= since
        except OSError:  # removed meanwhile: not a cell of this folder any more
            pass
    return count
