"""Where programs run. The plan groups cells into programs (bench/plan/expand.py); every
executor trains exactly those programs, so a cell's numbers never depend on the executor.
Each yields (cell, result) as programs finish; the driver alone writes the store, so
workers never touch the results folder.

- `local`: one program after another in this process (the default); with `compile_ahead`
  each program's preparation is done while the one before it trains (bench/runner/local.py).
- `processes`: N worker processes (spawned, each importing JAX once) taking programs from a
  queue; a program past `cell_timeout` seconds of preparation (data, tracing, compiling)
  or of training has its worker killed and replaced, and its cells end as `timeout`; a
  worker that dies (out of memory, a crash in native code) ends its cells as `error`.
- `dask`: programs as tasks on a Dask distributed cluster, a LocalCluster started here or
  an existing scheduler at `address` (a Slurm cluster through dask-jobqueue, for example;
  bench/runner/dask_cluster.py).

Workers run the code the driver planned with: each task carries the driver's plugin files
(`WorkerCode`), loaded by content, and a worker whose own files or package versions differ
from a cell's record fails that cell, saying which, instead of training stale code. Worker
processes started here leave Ctrl-C to the driver, which alone reports the interruption.

Every executor relays its programs' events (`records.ProgramEvent`: the phase, steps done,
each chunk's curve rows) to the driver's `progress` callback, in this thread, as they come:
`local` directly, `processes` through its result queue, `dask` as Dask events (plain lists,
msgpack) on a topic of the run's own. The driver turns them into progress and partial curves.

`EXECUTORS` is the table the CLI offers its choices from.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.records import CellResult, ProgramEvent, Status, failed
from bench.runner.local import DatasetCache, run_local, run_program

if TYPE_CHECKING:  # the table of executors is read by the CLI, which must start fast
    from bench.plan.cells import Cell
    from bench.plan.expand import Program
    from optimizers.plugins import PluginSource

# (the program, what it reports): its phases, and each chunk's curve rows (records.py)
ProgressCallback = Callable[["Program", ProgramEvent], None]
Results = Iterator[tuple["Cell", CellResult]]


@dataclass(frozen=True)
class Limits:
    """What the user asked of the executor: its size, a time limit, a cluster, whether to
    compile ahead."""

    workers: int = 2
    cell_timeout: float | None = None  # seconds per phase of a program; worker processes only
    address: str | None = None  # an existing Dask scheduler (workers get every plugin file
    # this process loaded, as `WorkerCode` with each task)
    compile_ahead: bool = False  # local: prepare the next program while one trains


@dataclass(frozen=True)
class WorkerCode:
    """What a worker needs to run the code the driver planned with: the driver's plugin
    files as bytes, the name each has in `Cell.code`, and the driver's package versions."""

    plugins: tuple[PluginSource, ...] = ()
    names: tuple[str, ...] = ()  # Cell.code's name for each of `plugins`
    versions: dict[str, str | None] = field(default_factory=dict)


def worker_code() -> WorkerCode:
    """The driver's side: every plugin file this process loaded, once each."""
    from bench.plan.cells import code_digests, versions
    from optimizers.plugins import loaded_sources

    sources = loaded_sources()
    return WorkerCode(sources, tuple(code_digests([Path(s.path)])[0][0] for s in sources),
                      dict(versions()))


def program_failed(program: Program, status: Status, reason: str | BaseException,
                   elapsed: float = 0.0) -> list[tuple[Cell, CellResult]]:
    return [(cell, failed(cell.seeds, status, reason, elapsed)) for cell in program]


# A worker process may outlive runs (a Dask worker) and run tasks in threads: plugins are
# swapped under this lock, and each program takes its optimizer while holding it.
_WORKER_LOCK = threading.Lock()
_FIRST_SEEN: dict[str, str] = {}  # a checkout file -> its digest when this process first used it


def run_worker_program(program: Program, datasets: DatasetCache, code: WorkerCode,
                       progress: ProgressCallback | None = None) -> list[CellResult]:
    """A program on a worker: the driver's plugins loaded, the worker's code checked against
    the cells' record, then trained. A mismatch fails the program, saying what differs."""
    import optimizers
    from optimizers.plugins import sync_plugins
    from optimizers.registry import RegistryError

    try:
        with _WORKER_LOCK:
            sync_plugins(code.plugins)
            problem = code_mismatch(program[0], code)
            spec = None if problem else optimizers.get(program[0].optimizer)
    except RegistryError as exc:
        problem = f"on this worker: {exc}"
    if problem:
        return [failed(cell.seeds, Status.ERROR, problem) for cell in program]
    return run_program(program, datasets, progress, spec)


def code_mismatch(cell: Cell, code: WorkerCode) -> str | None:
    """Why this process would not run the code `cell` was planned with, or None. A plugin
    counts as the bytes the driver sent; a checkout file as it was when this process first
    used it (a module imported once is not re-read when its file changes)."""
    from bench.plan.cells import ROOT, code_digests, versions

    sent: dict[str, set[str]] = {}
    for name, source in zip(code.names, code.plugins):
        sent.setdefault(name, set()).add(source.digest)
    differ = []
    for name, recorded in cell.code:
        if name in sent:  # cells keep a prefix of the file's sha256 (bench/plan/cells.py)
            same = any(digest.startswith(recorded) for digest in sent[name])
        elif name.startswith("plugin:"):
            same = False  # a plugin the driver did not send
        else:
            if name not in _FIRST_SEEN:
                _FIRST_SEEN[name] = code_digests([ROOT / name])[0][1]
            same = _FIRST_SEEN[name] == recorded
        if not same:
            differ.append(name)
    differ += [f"{package} {version} (the driver has {code.versions[package]})"
               for package, version in versions().items()
               if package in code.versions and code.versions[package] != version]
    if not differ:
        return None
    verb = "differs" if len(differ) == 1 else "differ"
    return (f"this worker runs other code than the driver planned with: {', '.join(differ)}"
            f" {verb} (edited after the worker started?); restart the workers, then rerun")


@contextlib.contextmanager
def interrupts_held():
    """Hold Ctrl-C (block SIGINT) in this thread while child processes start: they inherit
    the block, so a Ctrl-C, which the terminal sends to every process of the group, cannot
    reach them (or print their tracebacks) before they choose to ignore it; this process
    gets one that arrived meanwhile as soon as the block ends. The driver alone reports an
    interruption and stops its workers."""
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)


def _run_processes(programs: Sequence[Program], data_dir: str | None, limits: Limits,
                   progress: ProgressCallback | None = None) -> Results:
    from bench.runner.processes import run_processes

    return run_processes(programs, data_dir, limits, progress)


def _run_dask(programs: Sequence[Program], data_dir: str | None, limits: Limits,
              progress: ProgressCallback | None = None) -> Results:
    from bench.runner.dask_cluster import run_dask

    return run_dask(programs, data_dir, limits, progress)


# The executors, by the name the CLI offers (`--executor NAME`); each takes
# (programs, data_dir, limits, progress) and yields (cell, result) as programs finish.
EXECUTORS: dict[str, Callable[..., Results]] = {
    "local": run_local, "processes": _run_processes, "dask": _run_dask}
