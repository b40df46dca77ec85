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
  an existing scheduler at `address` (a Slurm cluster through dask-jobqueue, for example).

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
import queue
import signal
import sys
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.errors import UserError
from bench.records import CellResult, ProgramEvent, Status, error_summary, failed
from bench.runner.local import DatasetCache, run_local, run_program

if TYPE_CHECKING:  # the table of executors is read by the CLI, which must start fast
    from bench.plan.cells import Cell
    from bench.plan.expand import Program
    from optimizers.plugins import PluginSource

# (the program, what it reports): its phases, and each chunk's curve rows (records.py)
ProgressCallback = Callable[["Program", ProgramEvent], None]
Results = Iterator[tuple["Cell", CellResult]]
DASK_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")


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


def check_address(address: str, executor: str) -> None:
    """`--address`: a Dask scheduler address, PROTOCOL://HOST:PORT (the protocol may be left
    out: tcp). Raises UserError saying what is wrong with it."""
    if executor != "dask":
        raise UserError("--address is for --executor dask")
    protocol, separator, location = address.strip().partition("://")
    if not separator:
        protocol, location = "tcp", address.strip()
    host, colon, port = location.rpartition(":")
    if not address.strip():
        problem = "is empty"
    elif any(c.isspace() for c in address.strip()):
        problem = "has spaces in it"
    elif protocol not in DASK_PROTOCOLS:
        problem = f"uses protocol '{protocol}', which a Dask scheduler does not speak"
    elif not colon or not port:
        problem = "has no port"
    elif not port.isdigit() or not 0 < int(port) < 65536:
        problem = f"has port '{port}', not a number from 1 to 65535"
    elif not host:
        problem = "has no host"
    elif any(c in "/?#@" for c in host):
        problem = f"has host '{host}', not a host name or IP address"
    else:
        return
    raise UserError(f"--address '{address}' {problem}; expected a Dask scheduler address"
                    f" PROTOCOL://HOST:PORT ({', '.join(DASK_PROTOCOLS)}),"
                    " e.g. tcp://10.0.0.5:8786")


def _dask_program(program: Program, data_dir: str | None, code: WorkerCode,
                  topic: str | None = None, index: int = 0) -> list[CellResult]:
    """One program on a Dask worker; datasets are loaded once per worker process. Its
    events go to the driver as Dask events on `topic` (plain lists: msgpack)."""
    with _WORKER_LOCK:
        datasets = _WORKER_DATASETS.setdefault(data_dir, DatasetCache(data_dir))
    if topic is None:
        return run_worker_program(program, datasets, code, None)
    from dask.distributed import get_worker

    worker = get_worker()

    def report(program: Program, event: ProgramEvent) -> None:
        worker.log_event(topic, {"program": index, "event": event.to_message()})
    return run_worker_program(program, datasets, code, report)


_WORKER_DATASETS: dict[str | None, DatasetCache] = {}  # per data folder


def run_dask(programs: Sequence[Program], data_dir: str | None, limits: Limits,
             progress: ProgressCallback | None = None) -> Results:
    try:
        from dask.distributed import LocalCluster
    except ImportError:
        raise UserError("--executor dask needs dask.distributed: pip install 'optbench[dask]'") from None
    cluster = None
    if limits.address is None:
        # ":0": any free port, so two runs (or a notebook's cluster) never clash
        cluster = LocalCluster(n_workers=limits.workers, threads_per_worker=1,
                               processes=True, dashboard_address=":0")
    try:
        client = _connect(limits.address or cluster)
    except Exception as exc:  # noqa: BLE001  refused, timed out, not a scheduler at all
        if cluster is not None:
            cluster.close()
        raise UserError(f"cannot reach the Dask scheduler at {limits.address or 'a LocalCluster'}:"
                        f" {error_summary(exc)}; check the address and that the scheduler is"
                        " running") from None
    print(dashboard_line(client, own_cluster=cluster is not None), file=sys.stderr)
    code = worker_code()
    # events arrive on the client's own thread; they are handed to this one through a queue
    events: queue.SimpleQueue = queue.SimpleQueue()
    topic = f"optbench-events-{uuid.uuid4().hex}" if progress is not None else None
    try:
        if cluster is not None:  # our own workers, in the terminal's process group
            client.register_plugin(_ignore_interrupts_plugin())
        if topic is not None:
            client.subscribe_topic(topic, events.put)
        futures, by_key = [], {}
        for index, program in enumerate(programs):
            future = client.submit(_dask_program, program, data_dir, code, topic, index,
                                   pure=False, key=f"optbench-program-{program[0].id}")
            futures.append(future)
            by_key[future.key] = program
        pending = list(futures)
        while pending:
            _relay_events(events, programs, progress)
            for future in [f for f in pending if f.done()]:
                # a program's events reach this client before its result does (the same
                # worker and scheduler streams, in order): all of them are queued by now
                _relay_events(events, programs, progress, wait_s=0)
                pending.remove(future)
                program = by_key[future.key]
                try:
                    yield from zip(program, future.result())
                except Exception as exc:  # noqa: BLE001  the task failed, or its worker died
                    yield from program_failed(program, Status.ERROR, exc)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def dashboard_line(client, *, own_cluster: bool) -> str:
    """Where to watch the workers: the dashboard's URL, or why there is none. Without bokeh
    Dask serves only a page asking for it at the same URL, so our own cluster's link is
    given only when this process can serve the dashboard (a remote scheduler's own
    packages decide for it)."""
    try:
        link = client.dashboard_link
    except Exception:  # noqa: BLE001  an old or odd scheduler: the run goes on without it
        link = None
    if own_cluster and not dashboard_installed():
        return ("optbench: note: no Dask dashboard: it needs bokeh>=3.1 (pip install"
                " 'bokeh>=3.1'); the run goes on without it")
    if not link:
        return "optbench: note: the Dask scheduler serves no dashboard"
    return f"Dask dashboard: {link}"


def dashboard_installed() -> bool:
    """Whether Dask can serve its dashboard here (its own test: bokeh imports)."""
    try:
        import distributed.dashboard.scheduler  # noqa: F401
    except ImportError:
        return False
    return True


def _relay_events(events: queue.SimpleQueue, programs: Sequence[Program],
                  progress: ProgressCallback | None, wait_s: float = 0.2) -> None:
    """Pass the Dask events that arrived to `progress`, waiting up to `wait_s` for the first
    (the executor's poll interval: a finished program is seen within it)."""
    try:
        _, message = events.get(timeout=wait_s)  # (scheduler time, message)
        while True:
            progress(programs[message["program"]], ProgramEvent.from_message(message["event"]))
            _, message = events.get_nowait()
    except queue.Empty:
        return


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


def _connect(address):
    """A Client for `address`, or an exception within Dask's connect timeout (the setting
    distributed.comm.timeouts.connect, e.g. DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT=10s).
    Dask waits for a peer's handshake without a limit, so a silent listener (a port that
    accepts connections but is no scheduler) would hang it: it connects in a thread here."""
    import dask
    from dask.distributed import Client
    from dask.utils import parse_timedelta

    wait = parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "seconds")
    outcome: dict = {}

    def connect():
        try:
            outcome["client"] = Client(address, timeout=wait)
        except Exception as exc:  # noqa: BLE001  handed to the caller
            outcome["error"] = exc

    thread = threading.Thread(target=connect, name="optbench-dask-connect", daemon=True)
    thread.start()
    thread.join(wait + 1)
    if thread.is_alive():
        raise TimeoutError(f"it accepted the connection but did not answer within {wait:g} s,"
                           " as a Dask scheduler would")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["client"]


def _ignore_interrupts_plugin():
    """A Dask WorkerPlugin: the LocalCluster's workers leave Ctrl-C to the driver, which
    reports it and closes the cluster (a Dask worker would print a traceback of its own).
    Dask starts its worker processes from threads of its own, so `interrupts_held` cannot
    reach them."""
    from dask.distributed import WorkerPlugin

    class IgnoreInterrupts(WorkerPlugin):
        name = "optbench-ignore-interrupts"

        def setup(self, worker):
            if threading.current_thread() is threading.main_thread():
                signal.signal(signal.SIGINT, signal.SIG_IGN)

    return IgnoreInterrupts()


def _run_processes(programs: Sequence[Program], data_dir: str | None, limits: Limits,
                   progress: ProgressCallback | None = None) -> Results:
    from bench.runner.processes import run_processes

    return run_processes(programs, data_dir, limits, progress)


# The executors, by the name the CLI offers (`--executor NAME`); each takes
# (programs, data_dir, limits, progress) and yields (cell, result) as programs finish.
EXECUTORS: dict[str, Callable[..., Results]] = {
    "local": run_local, "processes": _run_processes, "dask": run_dask}
