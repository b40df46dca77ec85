"""The `processes` executor: N spawned worker processes (each imports JAX once) taking
programs from a queue. A program past the time limit has its worker killed and replaced,
its cells ending as `timeout`; a worker that dies (out of memory, a crash in native code)
ends its program's cells as `error`."""
from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Sequence

from bench.errors import UserError
from bench.plan.expand import Program
from bench.records import Status
from bench.run.executors import (DatasetCache, Limits, Results, load_plugins, program_failed,
                                 run_program)


def _worker(tasks, results, data_dir: str | None, plugins: Sequence[str]) -> None:
    """A worker process: load plugins once, then train programs until told to stop."""
    load_plugins(plugins)
    datasets = DatasetCache(data_dir)
    while (task := tasks.get()) is not None:
        index, program = task
        results.put(("started", index, (time.time(), os.getpid())))
        try:
            outcome = run_program(program, datasets)
        except Exception:  # noqa: BLE001  a UserError here is still this program's error
            outcome = [result for _, result in
                       program_failed(program, Status.ERROR, traceback.format_exc())]
        results.put(("finished", index, outcome))


def run_processes(programs: Sequence[Program], data_dir: str | None, limits: Limits) -> Results:
    context = multiprocessing.get_context("spawn")  # fork would copy JAX's threads
    tasks, results = context.Queue(), context.Queue()
    for index, program in enumerate(programs):
        tasks.put((index, program))
    pool: list = []
    workers, timeout = limits.workers, limits.cell_timeout

    def spawn():
        process = context.Process(target=_worker, args=(tasks, results, data_dir, limits.plugins),
                                  daemon=True)
        process.start()
        pool.append(process)

    for _ in range(min(workers, len(programs))):
        spawn()
    running: dict[int, float] = {}  # program index -> when its worker started it
    owner: dict[int, int] = {}  # program index -> pid of the worker that took it
    remaining = set(range(len(programs)))
    idle_deaths = 0  # workers that died holding no program: a broken environment
    try:
        while remaining:
            try:
                kind, index, payload = results.get(timeout=0.2)
            except queue.Empty:
                kind = None
            if kind == "started":
                running[index], owner[index] = payload  # (start time, worker pid)
            elif kind == "finished":
                running.pop(index, None)
                remaining.discard(index)
                yield from zip(programs[index], payload)
            for index, started in list(running.items()):
                elapsed = time.time() - started
                if timeout is not None and elapsed > timeout:
                    _kill_worker_of(pool, owner.get(index))
                    running.pop(index)
                    remaining.discard(index)
                    spawn()
                    yield from program_failed(programs[index], Status.TIMEOUT,
                                              f"the cell ran past its time limit of {timeout:g} s"
                                              " and was stopped", elapsed)
            for process in [p for p in pool if not p.is_alive()]:
                pool.remove(process)
                lost = [i for i, pid in owner.items() if pid == process.pid and i in running]
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
        for _ in pool:
            tasks.put(None)
        for process in pool:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()


def _kill_worker_of(pool, pid: int | None) -> None:
    for process in pool:
        if process.pid == pid:
            process.kill()
            process.join()
            pool.remove(process)
            return
