"""`optbench report RUN --watch`: rebuild the report whenever cells finish, until the run
ends (or Ctrl-C, after one last build).

A run is in progress while it holds the results folder's lock and its manifest's `state`
is `running` (bench/runner/store.py). Finished cells change the folder's generation token
(a digest of cells/, nothing read), so polling it is cheap. The report shows finished
cells only; a note says the run is still going and how many cells are in progress.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from bench.runner.cell_files import CELL_FILE
from bench.runner.files import folder_in_use
from bench.runner.live import LIVE
from bench.runner.store import RunStore

DEFAULT_INTERVAL_S = 5.0
SHORTEST_INTERVAL_S = 0.1  # shorter only spins a CPU core: a build itself takes seconds


def in_progress(store: RunStore) -> bool:
    """Whether a run is writing the folder now. A run killed outright leaves its manifest
    saying `running` but releases the lock; an older folder has no `state`."""
    return folder_in_use(store.root) and store.manifest().get("state", "running") == "running"


def progress_note(store: RunStore) -> str | None:
    """The report's note while the run goes on, or None once it has ended."""
    if not in_progress(store):
        return None
    live = store.root / LIVE
    running = sum(1 for p in live.glob("*.json") if CELL_FILE.fullmatch(p.name)) \
        if live.is_dir() else 0
    return (f"This run is still in progress ({running} cell(s) training now): the report"
            " shows the cells finished so far, not partial curves; `optbench report --watch`"
            " rebuilds it as cells finish, and `bench.load(path, partial=True)` reads the"
            " curves of the cells in progress.")


def watch(root: str | Path, rebuild: Callable[[], None], *,
          interval_s: float = DEFAULT_INTERVAL_S,
          wait: Callable[[float], None] = time.sleep) -> int:
    """Call `rebuild` now and whenever cells/ changes, checking every `interval_s` seconds
    (`wait` is how it waits: a test passes its own); return 0 once the run has ended and
    the last build has everything, or on Ctrl-C after one last build."""
    store = RunStore(root)
    built = None  # what the last build saw: the generation, and whether the run went on
    try:
        while True:
            running = in_progress(store)  # before the token: cells written until now count
            seen = (store.generation(), running)
            if seen != built:  # new cells, or the run ended (the "in progress" note goes)
                rebuild()
                built = seen
            if not running:
                return 0
            wait(interval_s)
    except KeyboardInterrupt:
        rebuild()
        return 0
