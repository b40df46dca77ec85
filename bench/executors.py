"""Where cells run. Every executor yields (cell, result) as cells finish; the driver (the
harness) alone writes the store, so workers never touch the results folder.

- `run_local`: one after another in this process (the default).
- `run_processes`: N worker processes (spawned, each importing JAX once) taking cells from
  a queue; a cell past `cell_timeout` seconds has its worker killed and replaced, and ends
  as `timeout`; a worker that dies (out of memory, a crash in native code) ends its cell as
  `error`.
- `run_dask`: cells as tasks on a Dask distributed cluster, a LocalCluster started here or
  an existing scheduler at `address` (a Slurm cluster through dask-jobqueue, for example).
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import time
import traceback
from collections.abc import Callable, Iterator, Sequence

import optimizers
from bench import data, engine, workloads
from bench.errors import UserError
from bench.matrix import Cell
from bench.records import CellResult, SeedRecord, Status, Timings

ProgressCallback = Callable[[Cell, int, int], None]  # (cell, steps done, steps)


class DatasetCache:
    """Each dataset is loaded once per process; its load time is charged to the first cell."""

    def __init__(self, data_dir: str | None):
        self.data_dir = data_dir
        self._loaded: dict[str, data.Dataset] = {}

    def get(self, name: str) -> tuple[data.Dataset, float]:
        if name in self._loaded:
            return self._loaded[name], 0.0
        clock = time.perf_counter()
        self._loaded[name] = data.load(name, self.data_dir)
        return self._loaded[name], time.perf_counter() - clock


def run_cell(cell: Cell, datasets: DatasetCache,
             progress: ProgressCallback | None = None) -> CellResult:
    """Train one cell (see `run_group`)."""
    return run_group([cell], datasets, progress)[0]


def run_local(cells: Sequence[Cell], data_dir: str | None = None,
              progress: ProgressCallback | None = None) -> Iterator[tuple[Cell, CellResult]]:
    """Cells one program at a time: cells that differ only in float hyperparameters (a
    sweep's trials) train together in one vmapped program (see `sweep_groups`)."""
    datasets = DatasetCache(data_dir)
    for group in sweep_groups(cells):
        yield from zip(group, run_group(group, datasets, progress))


def sweep_groups(cells: Sequence[Cell]) -> list[list[Cell]]:
    """Cells that can share one compiled program: same workload, optimizer, budget, seeds and
    every non-float hyperparameter, for optimizers whose hyperparameters can be traced (the
    conformance check `inject` passes; a caveat on it means one program per cell)."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        spec = optimizers.get(cell.optimizer)
        static = tuple((k, v) for k, v in cell.hparams if not isinstance(v, float))
        key = (cell.workload, cell.optimizer, static, cell.steps, cell.eval_every,
               cell.batch_size, cell.seeds, cell.schedule)
        if "inject" in spec.caveats:
            key = (cell.id,)
        groups.setdefault(key, []).append(cell)
    return list(groups.values())


def run_group(group: Sequence[Cell], datasets: DatasetCache,
              progress: ProgressCallback | None = None) -> list[CellResult]:
    """Train `group` (one cell, or the trials of a sweep) as one program. An exception from
    the model, optimizer or engine fails every cell of it, traceback kept; bad user input
    (UserError) still stops the run."""
    clock = time.perf_counter()
    first = group[0]
    workload = workloads.get(first.workload)
    dataset, load_s = datasets.get(workload.dataset)
    hparams = [dict(cell.hparams) for cell in group]
    varying = sorted(k for k, v in hparams[0].items() if isinstance(v, float)
                     and any(h[k] != v for h in hparams))
    # a lone cell runs its optimizer as built, not under inject_hyperparams
    trials = [{k: h[k] for k in varying} for h in hparams] if len(group) > 1 else None
    try:
        results = engine.train_sweep(
            workload, dataset, optimizers.get(first.optimizer), hparams[0], trials,
            steps=first.steps, eval_every=first.eval_every, batch_size=first.batch_size,
            seeds=first.seeds, schedule=dict(first.schedule),
            on_chunk=(lambda done, total: progress(first, done, total)) if progress else None)
    except UserError:
        raise
    except Exception:  # noqa: BLE001
        message = traceback.format_exc()
        return [failed(cell, Status.ERROR, message, time.perf_counter() - clock) for cell in group]
    shared = {id(r.timings): r.timings for r in results}.values()  # a sweep's trials share one
    for timings in shared:
        timings.data_s += load_s
        timings.total_s += load_s
    return results


def failed(cell: Cell, status: Status, message: str, elapsed: float = 0.0) -> CellResult:
    """A cell that produced nothing: every seed `status`, the reason kept as its error."""
    return CellResult(seeds=[SeedRecord(s, status) for s in cell.seeds], curves={},
                      timings=Timings(total_s=elapsed), steps_trained=0, error=message)


def _load_plugins(plugins: Sequence[str]) -> None:
    for path in plugins:
        optimizers.load_plugin_file(path)


def _worker(tasks, results, data_dir: str | None, plugins: Sequence[str]) -> None:
    """A worker process: load plugins once, then train cells until told to stop."""
    _load_plugins(plugins)
    datasets = DatasetCache(data_dir)
    while (task := tasks.get()) is not None:
        index, cell = task
        results.put(("started", index, (time.time(), os.getpid())))
        try:
            result = run_cell(cell, datasets)
        except Exception:  # noqa: BLE001  a UserError here is still this cell's error
            result = failed(cell, Status.ERROR, traceback.format_exc())
        results.put(("finished", index, result))


def run_processes(cells: Sequence[Cell], data_dir: str | None = None, *, workers: int = 2,
                  cell_timeout: float | None = None, plugins: Sequence[str] = ()
                  ) -> Iterator[tuple[Cell, CellResult]]:
    context = multiprocessing.get_context("spawn")  # fork would copy JAX's threads
    tasks, results = context.Queue(), context.Queue()
    for index, cell in enumerate(cells):
        tasks.put((index, cell))
    pool: list = []

    def spawn():
        process = context.Process(target=_worker, args=(tasks, results, data_dir, tuple(plugins)),
                                  daemon=True)
        process.start()
        pool.append(process)

    for _ in range(min(workers, len(cells))):
        spawn()
    running: dict[int, float] = {}  # cell index -> when its worker started it
    owner: dict[int, int] = {}  # cell index -> pid of the worker that took it
    remaining = set(range(len(cells)))
    idle_deaths = 0  # workers that died holding no cell: a broken environment, not a cell
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
                yield cells[index], payload
            for index, started in list(running.items()):
                elapsed = time.time() - started
                if cell_timeout is not None and elapsed > cell_timeout:
                    _kill_worker_of(pool, owner.get(index))
                    running.pop(index)
                    remaining.discard(index)
                    spawn()
                    yield cells[index], failed(cells[index], Status.TIMEOUT,
                                               f"the cell ran past its time limit of"
                                               f" {cell_timeout:g} s and was stopped", elapsed)
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
                    yield cells[index], failed(
                        cells[index], Status.ERROR,
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


def _dask_cell(cell: Cell, data_dir: str | None, plugins: Sequence[str]) -> CellResult:
    """One cell on a Dask worker; plugins and datasets are loaded once per worker process."""
    global _WORKER_DATASETS
    if _WORKER_DATASETS is None:
        _load_plugins(plugins)
        _WORKER_DATASETS = DatasetCache(data_dir)
    return run_cell(cell, _WORKER_DATASETS)


_WORKER_DATASETS: DatasetCache | None = None


def run_dask(cells: Sequence[Cell], data_dir: str | None = None, *, address: str | None = None,
             workers: int = 2, plugins: Sequence[str] = ()) -> Iterator[tuple[Cell, CellResult]]:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:
        raise UserError("--executor dask needs dask.distributed: pip install 'optbench[dask]'") from None
    cluster = None
    try:
        if address is None:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
        client = Client(address or cluster, timeout="30s")
    except OSError as exc:
        raise UserError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
    try:
        by_key = {}
        for cell in cells:
            future = client.submit(_dask_cell, cell, data_dir, tuple(plugins), pure=False,
                                   key=f"optbench-cell-{cell.id}")
            by_key[future.key] = (cell, future)
        for future in as_completed([f for _, f in by_key.values()]):
            cell = by_key[future.key][0]
            try:
                result = future.result()
            except Exception:  # noqa: BLE001  the task itself failed, or its worker died
                result = failed(cell, Status.ERROR, traceback.format_exc())
            yield cell, result
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
