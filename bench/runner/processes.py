"""The `processes` executor: N spawned worker processes (each imports JAX once) taking
programs from a queue. A program has two clocks, each limited to `cell_timeout`: its
preparation (loading data, tracing, compiling) and, once its worker reports it compiled,
its training; past either, its worker is killed and replaced and its cells end as
`timeout`. A worker that dies (out of memory, a crash in native code) ends its program's
cells as `error`. Workers ignore Ctrl-C: the driver alone stops them and reports it."""
from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import time
from collections.abc import Callable, Sequence

from bench.errors import UserError
from bench.plan.expand import Program
from bench.records import Status
from bench.runner.executors import (DatasetCache, Limits, ProgressCallback, Results, WorkerCode,
                                 interrupts_held, program_failed, run_worker_program,
                                 worker_code)

PHASES = {"preparing": "its preparation (loading data, tracing, compiling)",
          "training": "its training"}


def _worker(tasks, results, data_dir: str | None, code: WorkerCode) -> None:
    """A worker process: train programs until told to stop, saying when each starts and
    when it is compiled (its training clock starts then)."""
    ignore_interrupts()
    datasets = DatasetCache(data_dir)
    while (task := tasks.get()) is not None:
        index, program = task
        results.put(("preparing", index, os.getpid()))

        def report(program, event, index=index):
            if event.phase == "train" and event.done == 0:  # compiled: the training clock
                results.put(("training", index, os.getpid()))
            results.put(("event", index, event))  # to the driver's progress and live curves
        try:
            outcome = run_worker_program(program, datasets, code, report)
        except Exception as exc:  # noqa: BLE001  a UserError here is still this program's error
            outcome = [result for _, result in program_failed(program, Status.ERROR, exc)]
        results.put(("finished", index, outcome))


def ignore_interrupts() -> None:
    """In a worker started under `interrupts_held`: Ctrl-C is the driver's to report; one
    caught here would print a traceback per worker. A SIGINT pending since the start is
    discarded with it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def run_processes(programs: Sequence[Program], data_dir: str | None, limits: Limits,
                  progress: ProgressCallback | None = None,
                  clock: Callable[[], float] = time.monotonic) -> Results:
    context = multiprocessing.get_context("spawn")  # fork would copy JAX's threads
    tasks, results = context.Queue(), context.Queue()
    for index, program in enumerate(programs):
        tasks.put((index, program))
    pool: list = []
    workers, timeout = limits.workers, limits.cell_timeout
    code = worker_code()

    def spawn():
        process = context.Process(target=_worker, args=(tasks, results, data_dir, code),
                                  daemon=True)
        with interrupts_held():
            process.start()
        pool.append(process)

    for _ in range(min(workers, len(programs))):
        spawn()
    running: dict[int, tuple[str, float, int]] = {}  # program -> (phase, since when, worker pid)
    remaining = set(range(len(programs)))
    idle_deaths = 0  # workers that died holding no program: a broken environment
    try:
        while remaining:
            try:
                kind, index, payload = results.get(timeout=0.2)
            except queue.Empty:
                kind = None
            if kind is not None and index not in remaining:
                pass  # sent by a worker stopped since: its program is already reported
            elif kind == "event":
                if progress is not None:
                    progress(programs[index], payload)
            elif kind in PHASES:
                running[index] = (kind, clock(), payload)
            elif kind == "finished":
                running.pop(index, None)
                remaining.discard(index)
                yield from zip(programs[index], payload)
            for index, (phase, since, pid) in list(running.items()):
                elapsed = clock() - since
                if timeout is not None and elapsed > timeout:
                    _kill_worker_of(pool, pid)
                    running.pop(index)
                    remaining.discard(index)
                    spawn()
                    yield from program_failed(
                        programs[index], Status.TIMEOUT,
                        f"{PHASES[phase]} ran past its time limit of {timeout:g} s"
                        " (--cell-timeout) and was stopped", elapsed)
            for process in [p for p in pool if not p.is_alive()]:
                pool.remove(process)
                lost = [i for i, (_, _, pid) in running.items() if pid == process.pid]
                idle_deaths = 0 if lost else idle_deaths + 1
                if idle_deaths > 3:
                    raise UserError(f"worker processes keep exiting before they start a cell"
                                    f" (exit code {process.exitcode}); try --executor local")
                for index in lost:
                    running.pop(index)
                    remaining.discard(index)
                    yield from program_failed(
                        programs[index], Status.ERROR,
                        f"the worker process died (exit code {process.exitcode}) while training")
                if remaining and len(pool) < min(workers, len(remaining)):
                    spawn()
    finally:
        _stop(pool, tasks, finished=not remaining)


def _stop(pool, tasks, finished: bool) -> None:
    """Let idle workers exit after a finished run; otherwise (interrupted, or the caller
    stopped reading) kill them at once: they may be in the middle of a program."""
    if finished:
        for _ in pool:
            tasks.put(None)
    for process in pool:
        if finished:
            process.join(timeout=5)
        if process.is_alive():
            process.kill()
            process.join()


def _kill_worker_of(pool, pid: int | None) -> None:
    for process in pool:
        if process.pid == pid:
            process.kill()
            process.join()
            pool.remove(process)
            return
