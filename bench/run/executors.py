"""Where programs run. The plan groups cells into programs (bench/plan/expand.py); every
executor trains exactly those programs, so a cell's numbers never depend on the executor.
Each yields (cell, result) as programs finish; the driver alone writes the store, so
workers never touch the results folder.

- `local`: one program after another in this process (the default).
- `processes`: N worker processes (spawned, each importing JAX once) taking programs from a
  queue; a program past `cell_timeout` seconds has its worker killed and replaced, and its
  cells end as `timeout`; a worker that dies (out of memory, a crash in native code) ends
  its cells as `error`.
- `dask`: programs as tasks on a Dask distributed cluster, a LocalCluster started here or
  an existing scheduler at `address` (a Slurm cluster through dask-jobqueue, for example).

`EXECUTORS` is the table the CLI offers its choices from.
"""
from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator, Sequence

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.errors import UserError
from bench.records import CellResult, Status, failed

if TYPE_CHECKING:  # the table of executors is read by the CLI, which must start fast
    from bench.plan.cells import Cell
    from bench.plan.expand import Program
    from bench.train.data import Dataset

ProgressCallback = Callable[["Cell", int, int], None]  # (cell, steps done, steps)
Results = Iterator[tuple["Cell", CellResult]]


@dataclass(frozen=True)
class Limits:
    """What the user asked of the executor: its size, a time limit, a cluster, plugins."""

    workers: int = 2
    cell_timeout: float | None = None  # seconds per program; worker processes only
    address: str | None = None  # an existing Dask scheduler
    plugins: tuple[str, ...] = ()  # plugin files workers must load too


class DatasetCache:
    """Each dataset is loaded once per process; its load time is charged to the first cell."""

    def __init__(self, data_dir: str | None):
        self.data_dir = data_dir
        self._loaded: dict[str, Dataset] = {}

    def get(self, name: str) -> tuple[Dataset, float]:
        from bench.train import data

        if name in self._loaded:
            return self._loaded[name], 0.0
        clock = time.perf_counter()
        self._loaded[name] = data.load(name, self.data_dir)
        return self._loaded[name], time.perf_counter() - clock


def run_local(programs: Sequence[Program], data_dir: str | None, limits: Limits,
              progress: ProgressCallback | None = None) -> Results:
    """Programs one after another in this process."""
    datasets = DatasetCache(data_dir)
    for program in programs:
        yield from zip(program, run_program(program, datasets, progress))


def run_program(program: Program, datasets: DatasetCache,
                progress: ProgressCallback | None = None) -> list[CellResult]:
    """Train `program` (one cell, or the trials of a sweep) as one compiled program. An
    exception from the model, optimizer or engine fails every cell of it, traceback kept;
    bad user input (UserError) still stops the run."""
    import optimizers
    from bench.train import engine, workloads

    clock = time.perf_counter()
    first = program[0]
    workload = workloads.get(first.workload)
    dataset, load_s = datasets.get(workload.dataset)
    hparams = [dict(cell.hparams) for cell in program]
    varying = sorted(k for k, v in hparams[0].items() if isinstance(v, float)
                     and any(h[k] != v for h in hparams))
    # a lone cell runs its optimizer as built, not under inject_hyperparams
    trials = [{k: h[k] for k in varying} for h in hparams] if len(program) > 1 else None
    try:
        results = engine.train_program(
            workload, dataset, optimizers.get(first.optimizer), hparams[0], trials,
            steps=first.steps, eval_every=first.eval_every, batch_size=first.batch_size,
            seeds=first.seeds, schedule=first.schedule,
            on_chunk=(lambda done, total: progress(first, done, total)) if progress else None)
    except UserError:
        raise
    except Exception:  # noqa: BLE001
        message = traceback.format_exc()
        return [failed(cell.seeds, Status.ERROR, message, time.perf_counter() - clock)
                for cell in program]
    shared = {id(r.timings): r.timings for r in results}.values()  # a sweep's trials share one
    for timings in shared:
        timings.data_s += load_s
        timings.total_s += load_s
    return results


def program_failed(program: Program, status: Status, message: str,
                   elapsed: float = 0.0) -> list[tuple[Cell, CellResult]]:
    return [(cell, failed(cell.seeds, status, message, elapsed)) for cell in program]


def load_plugins(plugins: Sequence[str]) -> None:
    import optimizers

    for path in plugins:
        optimizers.load_plugin_file(path)


def _dask_program(program: Program, data_dir: str | None, plugins: Sequence[str]) -> list[CellResult]:
    """One program on a Dask worker; plugins and datasets are loaded once per worker process."""
    global _WORKER_DATASETS
    if _WORKER_DATASETS is None:
        load_plugins(plugins)
        _WORKER_DATASETS = DatasetCache(data_dir)
    return run_program(program, _WORKER_DATASETS)


_WORKER_DATASETS: DatasetCache | None = None


def run_dask(programs: Sequence[Program], data_dir: str | None, limits: Limits,
             progress: ProgressCallback | None = None) -> Results:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UserError("--executor dask needs dask.distributed: pip install 'optbench[dask]'") from None
    cluster = None
    try:
        if limits.address is None:
            cluster = LocalCluster(n_workers=limits.workers, threads_per_worker=1,
                                   processes=True, dashboard_address=None)
        client = Client(limits.address or cluster, timeout="30s")
    except OSError as exc:
        raise UserError(f"cannot reach the Dask scheduler at {limits.address}: {exc}") from None
    try:
        futures, by_key = [], {}
        for program in programs:
            future = client.submit(_dask_program, program, data_dir, limits.plugins, pure=False,
                                   key=f"optbench-program-{program[0].id}")
            futures.append(future)
            by_key[future.key] = program
        for future in as_completed(futures):
            program = by_key[future.key]
            try:
                yield from zip(program, future.result())
            except Exception:  # noqa: BLE001  the task itself failed, or its worker died
                yield from program_failed(program, Status.ERROR, traceback.format_exc())
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _run_processes(programs: Sequence[Program], data_dir: str | None, limits: Limits,
                   progress: ProgressCallback | None = None) -> Results:
    from bench.run.processes import run_processes

    return run_processes(programs, data_dir, limits)


# The executors, by the name the CLI offers (`--executor NAME`); each takes
# (programs, data_dir, limits, progress) and yields (cell, result) as programs finish.
EXECUTORS: dict[str, Callable[..., Results]] = {
    "local": run_local, "processes": _run_processes, "dask": run_dask}
