"""The `local` executor: programs one after another in this process; with `compile_ahead`
(`optbench run --compile-ahead`), each program's preparation (data, initialisation, every
compile) runs in a thread of its own while the program before it trains.

Off by default because it costs honest timing on a CPU: XLA trains on every core, so a
compile beside it stretches its step times (on this project's 2-core machine a 100-step
chunk of mnist1d-mlp took 104-127 ms beside a preparing thread or process against 52 ms
alone), and two preparations in two threads took no less time than one after the other
(27.6 s vs 26.9 s for 8 programs). Where training runs on an accelerator and the host has
cores to spare, it hides compile time; the manifest records it and the report says so.
Either way each program's timings are its own clocks' (bench/train/engine.py), and the
numbers trained are the same.
"""
from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.errors import UserError
from bench.records import CellResult, ProgramEvent, Status, failed
from bench.runner import interrupts

if TYPE_CHECKING:
    from bench.plan.expand import Program
    from bench.runner.executors import Limits, ProgressCallback
    from bench.train.data import Dataset
    from bench.train.engine import PreparedProgram
    from optimizers.registry import OptimizerSpec
    from workloads.registry import Workload


class DatasetCache:
    """Each workload's data is loaded once per process (workloads sharing a dataset share
    it); its load time is charged to the first cell."""

    def __init__(self, data_dir: str | None):
        self.data_dir = data_dir
        self._loaded: dict[str, Dataset] = {}

    def get(self, workload: Workload) -> tuple[Dataset, float]:
        key = workload.dataset_key
        if key in self._loaded:
            return self._loaded[key], 0.0
        clock = time.perf_counter()
        self._loaded[key] = workload.load_data(self.data_dir)
        return self._loaded[key], time.perf_counter() - clock


@dataclass
class Prepared:
    """A program after its preparation: ready to train, or the exception that stopped it."""

    program: Program
    started: float  # perf_counter when its preparation began
    load_s: float = 0.0
    ready: PreparedProgram | None = None
    error: Exception | None = None


def prepare(program: Program, datasets: DatasetCache, spec: OptimizerSpec | None = None,
            report: Callable[[ProgramEvent], None] | None = None) -> Prepared:
    """Load the data and prepare the program's one compiled program. A UserError (bad user
    input) propagates; any other exception is kept for the program's cells."""
    import optimizers
    import workloads
    from bench.train import engine

    first = program[0]
    done = Prepared(program, time.perf_counter())
    before = interrupts.mark()
    try:
        workload = workloads.get(first.workload)
        if report:
            report(ProgramEvent("data", 0, first.steps))
        dataset, done.load_s = datasets.get(workload)
        hparams = [dict(cell.hparams) for cell in program]
        varying = sorted(k for k, v in hparams[0].items() if isinstance(v, float)
                         and any(h[k] != v for h in hparams))
        # a lone cell runs its optimizer as built, not under inject_hyperparams
        trials = [{k: h[k] for k in varying} for h in hparams] if len(program) > 1 else None
        if report:
            report(ProgramEvent("compile", 0, first.steps))
        done.ready = engine.prepare_program(
            workload, dataset, spec or optimizers.get(first.optimizer), hparams[0], trials,
            steps=first.steps, eval_every=first.eval_every, batch_size=first.batch_size,
            seeds=first.seeds, schedule=first.schedule)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001  the model, optimizer or engine failed: the cells say so
        if interrupts.since(before):  # a Ctrl-C that XLA turned into an error (interrupts.py)
            raise KeyboardInterrupt from exc
        done.error = exc
    except SystemExit as exc:  # plugin code calling sys.exit fails its cells, as in a worker
        done.error = exited(exc)
    return done


def exited(exc: SystemExit) -> RuntimeError:
    """A SystemExit raised by optimizer, workload or plugin code, as its cells' error: the
    run goes on (a worker process that exits fails its cells the same way)."""
    return RuntimeError(f"optimizer, workload or plugin code called sys.exit({exc.code!r})")


def train(prepared: Prepared, report: Callable[[ProgramEvent], None] | None = None
          ) -> list[CellResult]:
    """Train a prepared program (one cell, or the trials of a sweep). An exception from the
    model, optimizer or engine fails every cell of it, traceback kept."""
    from bench.train import engine

    program = prepared.program
    before = interrupts.mark()
    try:
        if prepared.error is not None:
            raise prepared.error
        results = engine.train_prepared(prepared.ready, report)
    except UserError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001
        if interrupts.since(before):  # a Ctrl-C that XLA turned into an error (interrupts.py)
            raise KeyboardInterrupt from exc
        reason = exited(exc) if isinstance(exc, SystemExit) else exc
        return [failed(cell.seeds, Status.ERROR, reason, time.perf_counter() - prepared.started)
                for cell in program]
    shared = {id(r.timings): r.timings for r in results}.values()  # a sweep's trials share one
    for timings in shared:
        timings.data_s += prepared.load_s
        timings.total_s += prepared.load_s
    return results


def run_program(program: Program, datasets: DatasetCache,
                progress: ProgressCallback | None = None,
                spec: OptimizerSpec | None = None) -> list[CellResult]:
    """Prepare and train `program` here and now; bad user input (UserError) stops the run."""
    report = (lambda event: progress(program, event)) if progress else None
    return train(prepare(program, datasets, spec, report), report)


class InThread:
    """`work()` run in a daemon thread of its own; `result()` waits for it (Ctrl-C still
    interrupts the wait) and returns its value or raises its exception; `cancel()` stops
    it at its next line of Python and waits for that."""

    def __init__(self, work: Callable[[], Any]):
        self._value: Any = None
        self._error: BaseException | None = None
        self._working = False  # inside work(): where a cancel may land (under _lock)
        self._cancelled = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True,
                                         name="optbench-prepare")
        self._thread.start()

    def _run(self, work) -> None:
        try:
            try:
                with self._lock:
                    if self._cancelled:
                        return
                    self._working = True
                self._value = work()
            finally:
                with self._lock:
                    self._working = False
        except BaseException as exc:  # noqa: BLE001  handed to the waiting thread
            self._error = exc

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def cancel(self) -> None:
        """Raise KeyboardInterrupt in the thread, then wait for it to end. Python delivers
        it at the thread's next bytecode: at once in Python code (a plugin stuck in a loop
        ends here instead of hanging the run), after the call returns in native code (an
        XLA compile ends first: leaving the process while XLA compiles in another thread
        crashes it, measured: SIGSEGV or abort)."""
        with self._lock:
            self._cancelled = True
            if self._working:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread.ident), ctypes.py_object(KeyboardInterrupt))
        self._thread.join()


def run_local(programs: Sequence[Program], data_dir: str | None, limits: Limits,
              progress: ProgressCallback | None = None) -> Iterator[tuple[Any, CellResult]]:
    """Programs one after another in this process; with `limits.compile_ahead`, each one's
    preparation runs while the one before it trains. Events come from this thread only: a
    program's data and compile phases are reported when the run starts waiting for them."""
    datasets = DatasetCache(data_dir)
    if not limits.compile_ahead:
        for program in programs:
            yield from zip(program, run_program(program, datasets, progress))
        return
    pending = InThread(lambda: prepare(programs[0], datasets)) if programs else None
    try:
        for index, program in enumerate(programs):
            report = (lambda event, p=program: progress(p, event)) if progress else None
            if report:
                report(ProgramEvent("compile", 0, program[0].steps))
            prepared = pending.result()
            after = programs[index + 1] if index + 1 < len(programs) else None
            pending = InThread(lambda p=after: prepare(p, datasets)) if after else None
            yield from zip(program, train(prepared, report))
    finally:  # interrupted, or the caller stopped early: its program will not train, so
        # stop its preparation, letting a compile in flight end first
        if pending is not None:
            pending.cancel()
