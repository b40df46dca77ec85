"""How a run shows its progress on stderr, from the programs' events (records.ProgramEvent).

- `TerminalProgress` (stderr is a terminal): a bar per run (steps of every program to
  train, with the cells written and an ETA) and one for the program training now, labelled
  with its phase (data, compile, train, eval), so a long compile is named, not an empty bar.
- `PlainProgress` (CI logs, files): lines, not a flood: one when a program starts loading
  data, compiling and training, and a step line at most every `every_s` seconds and only
  after another tenth of the program has trained.
- `SilentProgress`: nothing (notebooks, `bench.run(progress=False)`).

`run_matrix(..., progress=...)` takes any of them; None picks the first two by the stream.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.records import ProgramEvent
from bench.report.render import printable

if TYPE_CHECKING:
    from bench.plan.expand import Program


def program_label(program: Program) -> str:
    first = program[0]
    trials = f" (+{len(program) - 1} trials)" if len(program) > 1 else ""
    return printable(f"{first.workload} x {first.label}{trials}")


def eta_text(seconds: float) -> str:
    """'ETA 1m05s', 'ETA 2h03m', 'ETA 4s'."""
    seconds = round(seconds)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    text = f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s" if minutes \
        else f"{seconds}s"
    return f"ETA {text}"


class SilentProgress:
    """Shows nothing. The base of the others: each method is a moment of the run."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def plan(self, cells: int, steps: int, programs: int) -> None:
        """`cells` more cells to write, in `programs` programs of `steps` steps in all."""

    def event(self, program: Program, event: ProgramEvent) -> None:
        """A program's event, as the executor relays it."""

    def cell_written(self) -> None:
        """A cell's results are saved."""


class _Totals:
    """The run so far, for the ETA: steps planned and trained (each program's latest
    `done`), and per program when it started, when its training started, its last event."""

    def __init__(self, clock: Callable[[], float]):
        self.clock = clock
        self.cells = self.cells_written = self.steps = self.programs = 0
        self._done: dict[str, int] = {}
        self._times: dict[str, list[float | None]] = {}  # program -> [start, train start, last]

    def plan(self, cells: int, steps: int, programs: int) -> None:
        self.cells += cells
        self.steps += steps
        self.programs += programs

    def record(self, program: Program, event: ProgramEvent) -> None:
        now = self.clock()
        key = program[0].id
        self._done[key] = event.done
        times = self._times.setdefault(key, [now, None, now])
        if event.phase == "train" and times[1] is None:
            times[1] = now
        times[2] = now

    @property
    def steps_done(self) -> int:
        return sum(self._done.values())

    def eta(self) -> str:
        """Steps left at the training speed so far, plus, for each program not started,
        the mean time programs took before training (data, compile): those are seconds a
        step rate alone would leave out."""
        started = [t for t in self._times.values() if t[1] is not None]
        train_s = sum(t[2] - t[1] for t in started)
        if not started or train_s <= 0 or self.steps_done <= 0:
            return ""
        before = sum(t[1] - t[0] for t in started) / len(started)
        left = max(self.programs - len(self._times), 0) * before \
            + max(self.steps - self.steps_done, 0) * train_s / self.steps_done
        return eta_text(left)


class TerminalProgress(SilentProgress):
    def __init__(self, console, clock: Callable[[], float] = time.monotonic):
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[eta]}"))
        self._bars = Progress(*columns, console=console, transient=True)
        self._totals = _Totals(clock)

    def __enter__(self):
        self._bars.__enter__()
        self._run = self._bars.add_task("steps, cells 0/0", total=0, eta="")
        self._program = self._bars.add_task("", total=1, eta="")
        self._shown: str | None = None  # the program the second bar shows
        return self

    def __exit__(self, *exc) -> None:
        self._bars.__exit__(*exc)

    def plan(self, cells: int, steps: int, programs: int) -> None:
        self._totals.plan(cells, steps, programs)
        self._update_run()

    def event(self, program: Program, event: ProgramEvent) -> None:
        self._totals.record(program, event)
        label = escape(f"  [{event.phase}] {program_label(program)}")
        if program[0].id != self._shown:  # a new program: its own elapsed time
            self._shown = program[0].id
            self._bars.reset(self._program)
        self._bars.update(self._program, description=label, completed=event.done,
                          total=event.total)
        self._update_run()

    def cell_written(self) -> None:
        self._totals.cells_written += 1
        self._update_run()

    def _update_run(self) -> None:
        t = self._totals
        self._bars.update(self._run, description=f"steps, cells {t.cells_written}/{t.cells}",
                          completed=t.steps_done, total=max(t.steps, 1), eta=t.eta())


class PlainProgress(SilentProgress):
    PHASE_LINES = ("data", "compile")  # and the first `train`: eval/train alternate per chunk

    def __init__(self, stream: TextIO, *, every_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic):
        self.stream, self.every_s, self.clock = stream, every_s, clock
        self._totals = _Totals(clock)
        self._last_line = -math.inf  # when the last step line was written
        self._tenths: dict[str, int] = {}  # program -> tenths trained at its last step line

    def plan(self, cells: int, steps: int, programs: int) -> None:
        self._totals.plan(cells, steps, programs)

    def event(self, program: Program, event: ProgramEvent) -> None:
        self._totals.record(program, event)
        key = program[0].id
        if event.phase in self.PHASE_LINES or (event.phase == "train" and event.done == 0):
            self._tenths[key] = 0
            self._write(f"{event.phase}: {program_label(program)}")
            return
        tenths = 10 * event.done // max(event.total, 1)
        now = self.clock()
        if event.phase != "train" or tenths <= self._tenths.get(key, 0) \
                or now - self._last_line < self.every_s:
            return
        self._tenths[key], self._last_line = tenths, now
        t = self._totals
        eta = t.eta()
        self._write(f"train: {program_label(program)}: step {event.done}/{event.total}"
                    f" ({100 * event.done // max(event.total, 1)}%); cells {t.cells_written}"
                    f"/{t.cells} written" + (f"; {eta}" if eta else ""))

    def cell_written(self) -> None:
        self._totals.cells_written += 1

    def _write(self, line: str) -> None:
        print(f"progress: {line}", file=self.stream, flush=True)


def default_progress(console) -> SilentProgress:
    """The bars on a terminal or in Jupyter (rich draws them there as a widget), lines
    elsewhere (a CI log, a file: rich's bars would leave only a blank line); nothing on a
    quiet console (`bench.run` without verbose)."""
    if console.quiet:
        return SilentProgress()
    if console.is_terminal or console.is_jupyter:
        return TerminalProgress(console)
    return PlainProgress(console.file)
