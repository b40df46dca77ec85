"""`bench.run`: run a matrix from Python (a notebook, a script) and get its tables back.

    results = bench.run({"workloads": ["rosenbrock-2d"], "optimizers": ["adam", "sgd"]},
                        seeds=1, steps=200, out="results/nb")
    results.tidy()

The matrix rules are `optbench run`'s (bench/plan/matrix.py parses and checks them; nothing
here checks them again); the manners are a library's: nothing printed unless asked, typed
exceptions from bench/errors.py instead of exit codes, never SystemExit. Only light
modules are imported at the top: `import bench` must not import JAX.
"""
from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.errors import MatrixError, OptbenchError, RunFailed, RunInterrupted, UserError

if TYPE_CHECKING:
    from bench.plan.matrix import Matrix
    from bench.runner.results import Results

LONGEST_RANGE = 10_000  # a range longer than any matrix list the limits allow stays a range
# bench.run's own keywords; every other keyword is a matrix key (matrix.TOP_KEYS)
RUN_OPTIONS = ("matrix", "out", "executor", "preset", "force", "resume", "data_dir",
               "verbose", "progress")


def run(matrix: str | os.PathLike | Mapping | None = None, out: str | os.PathLike | None = None,
        executor: str = "local", *, preset: str | None = None, force: bool = False,
        resume: bool = False, data_dir: str | None = None, verbose: bool = False,
        progress: bool = False, **overrides: Any) -> Results:
    """Run a matrix into `out` and return its tables, as `bench.load(out)` gives them.

    `matrix` is a matrix file's path, a dict in the TOML's shape, or None for `preset`
    (default: quick). Keyword overrides replace the matrix's top-level keys (`workloads`,
    `optimizers`, `seeds`, `steps`, `budget`, ...); `steps` replaces every workload's
    budget, as `optbench run --steps` does. `out` defaults to results/<name>-<time>.

    Prints nothing unless asked: `verbose=True` prints a line per cell and the summary
    table, `progress=True` shows live progress bars (in a terminal or in Jupyter, where rich
    needs ipywidgets: `pip install optbench[notebook]`), or plain lines where stderr is
    neither (a script's log), as `optbench run` does.

    Raises MatrixError (before anything trains) for a matrix that cannot run, UserError for
    other bad input (an unknown executor, an `out` holding another matrix), RunFailed
    (with `.results`) when cells errored or timed out, RunInterrupted (a KeyboardInterrupt,
    with `.results`) on Ctrl-C; never SystemExit.
    """
    from rich.console import Console

    from bench import commands
    from bench.report.summary import wide_console
    from bench.runner.driver import run_matrix
    from bench.runner.progress import SilentProgress, default_progress
    from bench.runner import sessions
    from bench.runner.store import RunStore
    from bench.runner.results import load

    for name, value in (("out", out), ("data_dir", data_dir)):
        _check_folder_argument(name, value)
    plan, cells, notes = _plan(matrix, preset, overrides, data_dir)
    out = Path(out) if out is not None else commands.new_folder(
        Path("results"), commands.folder_name(plan.name))
    console = wide_console(stderr=True) if verbose else Console(quiet=True)
    for note in notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    try:
        code = run_matrix(plan, cells, out, data_dir=data_dir, force=force, resume=resume,
                          executor=executor, console=console,
                          progress=default_progress(wide_console(stderr=True)) if progress
                          else SilentProgress())
    except OSError as exc:  # a path the system refuses (too long, a loop): bad input, typed
        where = f"{str(exc.filename)[:120]}: " if exc.filename else ""
        raise UserError(f"bench.run: {where}{exc.strerror or exc}") from None
    except SystemExit as exc:  # an optimizer or workload that calls sys.exit mid-run
        raise OptbenchError(f"the run into {out} was stopped by a call to sys.exit"
                            f" ({exc.code!r}) from optimizer, workload or plugin code; the"
                            " cells finished before it are saved") from None
    results = load(out)
    if notes:
        results = dataclasses.replace(results, notes=(*results.notes, *notes))
    if code == commands.EXIT_INTERRUPTED:
        files = RunStore(out).cell_files()
        raise RunInterrupted(sessions.interrupted_line(
            sessions.saved_by(results.manifest, files) or 0, len(files), str(out),
            again="run the same call again",
            resume="call again with resume=True in place of force=True" if force else None),
            results)
    if code != commands.EXIT_OK:
        raise RunFailed(_failure(results), results)
    return results


def _check_folder_argument(name: str, value: Any) -> None:
    """`out` and `data_dir`: None or a folder's path; a UserError in one line otherwise
    (Path() would raise TypeError on an int, ValueError on a NUL byte)."""
    if value is None:
        return
    if not isinstance(value, (str, os.PathLike)) or isinstance(os.fspath(value), bytes):
        raise UserError(f"bench.run: {name} must be a folder's path (a str or Path); got"
                        f" {type(value).__name__}")
    text = os.fspath(value)
    if not text.strip():
        raise UserError(f"bench.run: {name} is empty; give a folder")
    if "\0" in text:
        raise UserError(f"bench.run: {name} holds a NUL character, which no path can hold")


def _plan(matrix, preset, overrides: dict[str, Any], data_dir) -> tuple[Matrix, list, list[str]]:
    """The validated matrix, its cells, and notes (optimizer files that failed to load);
    MatrixError for anything wrong with them."""
    import optimizers
    from bench.plan import expand
    from optimizers.plugins import check_plugin_path
    from optimizers.registry import RegistryError

    try:
        plan = _matrix(matrix, preset, overrides)
        notes = list(optimizers.load_builtins())
        for plugin in dict.fromkeys(plan.plugins):
            try:
                optimizers.load_plugin_file(check_plugin_path(plugin))
            except RegistryError as exc:
                raise MatrixError(f"{plan.where('plugins')}: {exc}") from None
        return plan, expand.cells(plan, data_dir), notes
    except MatrixError:
        raise
    except (UserError, RegistryError) as exc:  # the planning stage's errors, typed for the API
        raise MatrixError(str(exc)) from None


def _matrix(matrix, preset, overrides: dict[str, Any]) -> Matrix:
    """A Matrix from a path, a dict or a preset, with `overrides` merged into its table
    before the one validation (so a bad override fails exactly as a bad file would)."""
    from bench.plan import matrix as matrix_mod
    from optimizers.registry import did_you_mean

    unknown = sorted(set(overrides) - matrix_mod.TOP_KEYS)  # keywords: always strings
    if unknown:
        raise MatrixError(
            f"bench.run: unknown keyword {unknown[0]!r}"
            f"{did_you_mean(unknown[0], [*matrix_mod.TOP_KEYS, *RUN_OPTIONS])}; matrix keys:"
            f" {', '.join(sorted(matrix_mod.TOP_KEYS))}; run options: {', '.join(RUN_OPTIONS)}")
    if matrix is not None and preset is not None:
        raise MatrixError("bench.run: give a matrix or preset=, not both")
    if isinstance(matrix, Mapping):
        raw, source, default_name, digest = dict(matrix), "(a dict)", "matrix", None
    elif matrix is None or isinstance(matrix, (str, os.PathLike)):
        raw, source, default_name, digest = matrix_mod.read(matrix, preset)
    else:
        raise MatrixError("bench.run: matrix must be a matrix file's path, a dict in the"
                          f" TOML's shape, or None for a preset; got {type(matrix).__name__}")
    try:
        raw, overrides = _as_toml(raw), _as_toml(overrides)
    except RecursionError:  # a list that holds itself, or one nested thousands deep
        raise MatrixError("bench.run: the matrix's values are nested too deeply (or hold"
                          " themselves); give lists of names, numbers and tables") from None
    if overrides:
        source += f" + bench.run({', '.join(overrides)})"
        raw.update(overrides)
        if "steps" in overrides and isinstance(raw.get("workloads"), list):
            # as `optbench run --steps`: every workload's budget, its own entry's included
            raw["workloads"] = [{k: v for k, v in entry.items() if k != "steps"}
                                if isinstance(entry, dict) else entry
                                for entry in raw["workloads"]]
    plan = matrix_mod.from_dict(raw, name=raw.get("name", default_name), source=source)
    return dataclasses.replace(plan, source_sha256=digest, origins={
        **plan.origins, **{key: f"bench.run({key}=...)" for key in overrides}})


def _as_toml(value: Any) -> Any:
    """A Python value as the TOML parser would give it: tuples, ranges and arrays as lists,
    NumPy scalars as Python numbers, mappings as dicts with string keys. Anything else (a
    range too long to be a matrix's list) stays as it is, for the matrix's checks to refuse
    in one line."""
    if isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise MatrixError(f"a matrix's keys are names (strings), as in TOML; got the"
                                  f" key {key!r:.60}")
        return {key: _as_toml(item) for key, item in value.items()}
    if isinstance(value, range) and len(value) > LONGEST_RANGE:
        return value
    if isinstance(value, (list, tuple, range)):
        return [_as_toml(item) for item in value]
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return _as_toml(value.tolist())  # a NumPy scalar (-> a number) or array (-> a list)
    return value


def _failure(results: Results) -> str:
    """One line: how many cells failed, the first one and its reason."""
    runs = results.runs
    failed = runs[runs["status"].isin(["error", "timeout"])]
    cells = failed.drop_duplicates("cell_id")
    first = cells.iloc[0] if len(cells) else None
    reason = ""
    if first is not None:
        lines = str(first["error"]).strip().splitlines() or [first["status"]]
        reason = f" (first: {first['workload']} x {first['label']}: {lines[-1][:200]})"
    return (f"{len(cells)} of {runs['cell_id'].nunique()} cell(s) errored or timed out"
            f"{reason}; the exception's .results has the run's tables (the failed rows: status"
            f" error or timeout, the traceback in the error column); saved in {results.root}")
