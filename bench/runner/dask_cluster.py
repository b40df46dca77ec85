"""The `dask` executor: programs as tasks on a Dask distributed cluster, a LocalCluster
started here or an existing scheduler at `--address` (bench/runner/executors.py says what
every executor does). Dask is imported only when a run uses it.
"""
from __future__ import annotations

import queue
import signal
import sys
import threading
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.errors import UserError
from bench.records import CellResult, ProgramEvent, Status, error_summary
from bench.runner.executors import (Limits, ProgressCallback, Results, WorkerCode,
                                    program_failed, run_worker_program, worker_code)
from bench.runner.local import DatasetCache

if TYPE_CHECKING:
    from bench.plan.expand import Program

DASK_PROTOCOLS = ("tcp", "tls", "ws", "wss", "ucx")


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
    elif not (port.isascii() and port.isdigit()) or not 0 < int(port) < 65536:
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
    with _DATASETS_LOCK:  # a worker runs tasks in threads
        datasets = _WORKER_DATASETS.setdefault(data_dir, DatasetCache(data_dir))
    if topic is None:
        return run_worker_program(program, datasets, code, None)
    from dask.distributed import get_worker

    worker = get_worker()

    def report(program: Program, event: ProgramEvent) -> None:
        worker.log_event(topic, {"program": index, "event": event.to_message()})
    return run_worker_program(program, datasets, code, report)


_WORKER_DATASETS: dict[str | None, DatasetCache] = {}  # per data folder
_DATASETS_LOCK = threading.Lock()


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
        if topic is not None:  # first, or the scheduler may forward a program's event to
            # the closed client (a Ctrl-C mid-program) and log it as CRITICAL with a traceback
            client.unsubscribe_topic(topic)
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
