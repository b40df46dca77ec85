"""optbench's exceptions: one base to catch them all, a type for each kind of failure.

    OptbenchError          anything optbench refuses or reports as failed
    ├── UserError          bad input: the CLI prints it as one line, exit code 2
    │   └── MatrixError    a matrix that cannot run as given (`bench.run`): an unknown key
    │                      or name, a value out of range, a plugin that fails to load, a
    │                      workload's dataset not found
    └── RunFailed          cells errored or timed out; `.results` holds every finished cell
    RunInterrupted         Ctrl-C (or a notebook's stop button) during `bench.run`: a
                           KeyboardInterrupt, so `except Exception` never swallows it;
                           `.results` holds the cells finished before it

Every message is one line that says what is wrong and what would be right.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: importing the store would import pandas with every error
    from bench.runner.results import Results


class OptbenchError(Exception):
    """The base of every exception optbench raises on purpose."""


class UserError(OptbenchError, ValueError):
    """Bad input from the user: an unknown name, a malformed file, missing data.

    Its message is one line that says what is wrong and what would be right.
    """


class MatrixError(UserError):
    """A matrix (a file, a dict, a preset, or `bench.run`'s keyword overrides) that cannot
    run as given; raised before anything trains."""


class RunFailed(OptbenchError):
    """Some cells errored or timed out (after every other cell ran). `results` is the run's
    tables, as `bench.load` gives them; the failed rows have status `error` or `timeout`
    and their reason in the `error` column."""

    def __init__(self, message: str, results: Results):
        super().__init__(message)
        self.results = results


class RunInterrupted(KeyboardInterrupt):
    """The run was interrupted; the cells finished before it are saved, and `results` holds
    them. Rerunning the same call finishes the rest."""

    def __init__(self, message: str, results: Results):
        super().__init__(message)
        self.results = results
