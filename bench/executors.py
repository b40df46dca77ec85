"""Where cells run. `run_local` trains them one after another in this process and yields
each result as it finishes; the driver (the CLI) alone writes the store."""
from __future__ import annotations

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
    """Train one cell. An exception from the model, optimizer or engine becomes an ERROR
    result with its traceback; bad user input (UserError) still stops the run."""
    clock = time.perf_counter()
    workload = workloads.get(cell.workload)
    dataset, load_s = datasets.get(workload.dataset)
    try:
        result = engine.train(
            workload, dataset, optimizers.get(cell.optimizer), dict(cell.hparams),
            steps=cell.steps, eval_every=cell.eval_every, batch_size=cell.batch_size,
            seeds=cell.seeds,
            on_chunk=(lambda done, total: progress(cell, done, total)) if progress else None,
        )
    except UserError:
        raise
    except Exception:
        timings = Timings(total_s=time.perf_counter() - clock)
        return CellResult(seeds=[SeedRecord(s, Status.ERROR) for s in cell.seeds], curves={},
                          timings=timings, steps_trained=0, error=traceback.format_exc())
    result.timings.data_s += load_s
    result.timings.total_s += load_s
    return result


def run_local(cells: Sequence[Cell], data_dir: str | None = None,
              progress: ProgressCallback | None = None) -> Iterator[tuple[Cell, CellResult]]:
    datasets = DatasetCache(data_dir)
    for cell in cells:
        yield cell, run_cell(cell, datasets, progress)
