"""What each `optbench` command does, once its arguments are parsed (bench/cli.py parses
them): run, report, plot, compare, repair, list (check, new-optimizer and new-workload, the
commands of writing a plugin, are in bench/plugin_commands.py). Each returns the exit code;
bad input raises UserError, which the CLI prints as one line with exit code 2."""
from __future__ import annotations

import dataclasses
import os
import re
import sys
from datetime import datetime
from pathlib import Path

from bench.errors import UserError
from bench.report.render import one_line, printable, shell_word
from optimizers.registry import RegistryError

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def load_plugins(paths) -> bool:
    """Load the built-in optimizers and `paths`; print one line per plugin that failed.
    True when every one loaded (a command whose plugins failed still runs, then exits 2)."""
    import optimizers
    from optimizers.plugins import check_plugin_path

    failures = list(optimizers.load_builtins())
    # a wrong path, not a broken plugin: stop before anything runs; each file once
    unique: dict[Path, str] = {}
    for path in paths:
        unique.setdefault(check_plugin_path(path), path)
    for path in unique.values():
        try:
            optimizers.load_plugin_file(path)
        except RegistryError as exc:
            failures.append(str(exc))
    for line in failures:  # a plugin's own message: its tab or colour code shown, not sent
        print(f"optbench: error: {one_line(line)}", file=sys.stderr)
    return not failures


def split(text: str | None) -> list[str] | None:
    """A comma-separated flag as a list; None when the flag was not given (an empty list,
    for `--optimizers ","`, is for the matrix to refuse, naming the flag)."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def new_folder(parent: Path, name: str) -> Path:
    """parent/<name>-<time>, with -2, -3, ... when a run started in the same second."""
    stem = f"{name}-{datetime.now():%Y%m%d-%H%M%S}"
    path, count = parent / stem, 1
    while path.exists() or path.is_symlink():
        count += 1
        path = parent / f"{stem}-{count}"
    return path


def folder_name(name: str) -> str:
    """A matrix name as one safe path component: names are names, never paths."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:80] or "run"


def run(args) -> int:
    from bench.plan import expand
    from bench.plan import matrix as matrix_mod
    from bench.runner.driver import check_settings, run_matrix
    from bench.runner import interrupts
    from bench.runner.dask_cluster import check_address
    from bench.runner.executors import Limits

    for flag in ("out", "data_dir"):
        if getattr(args, flag) is not None and not getattr(args, flag).strip():
            raise UserError(f"--{flag.replace('_', '-')} is empty; give a folder")
    # here, so that --dry-run refuses them too; --no-compile-cache overrides the switch
    check_settings(cache_switch=not args.no_compile_cache)
    matrix = matrix_mod.load(args.matrix, args.preset, args.settings)
    plugins_ok = load_plugins([*matrix.plugins, *args.plugin])
    matrix = matrix_mod.with_overrides(
        matrix, workloads=split(args.workloads), optimizers=split(args.optimizers),
        seeds=args.seeds, steps=args.steps, log=split(args.log))
    if args.matrix is None and args.preset is None and {"workloads", "optimizers"} <= set(
            matrix.origins):  # the flags named the whole matrix: it is not the quick preset
        matrix = dataclasses.replace(matrix, source="flags")
    cells = expand.cells(matrix, args.data_dir)
    if args.dry_run:
        from bench.loggers.fanout import Loggers
        from bench.plan.estimate import describe as describe_time

        Loggers(matrix.log, matrix.where("log"))  # their packages import, or one line
        print(expand.describe(cells))
        print(expand.describe_programs(cells))
        print(describe_time(expand.programs(cells), report=not args.no_report))
        if matrix.log:
            print(f"Logs each cell to: {', '.join(matrix.log)}.")
        return EXIT_OK if plugins_ok else EXIT_USAGE
    out = Path(args.out) if args.out else new_folder(Path("results"), folder_name(matrix.name))
    if args.cell_timeout and args.executor != "processes":
        raise UserError("--cell-timeout needs --executor processes: only a worker process can"
                        " be stopped safely mid-cell")
    if args.compile_ahead and args.executor != "local":  # it would be silently ignored
        raise UserError(f"--compile-ahead needs --executor local: with --executor"
                        f" {args.executor} each worker prepares the programs it trains")
    if args.address is not None:
        check_address(args.address, args.executor)
    if args.no_compile_cache:  # read when the engine is first imported, here and in workers
        os.environ["OPTBENCH_COMPILE_CACHE"] = "off"
    limits = Limits(args.workers, args.cell_timeout, args.address,
                    compile_ahead=args.compile_ahead)
    began = interrupts.mark()
    with interrupts.counted():
        code = run_matrix(matrix, cells, out, data_dir=args.data_dir, force=args.force,
                          resume=args.resume, executor=args.executor, limits=limits,
                          overrides=_overrides(args))
        if not _report_after_run(out, code, args.no_report, began):
            return EXIT_INTERRUPTED
    return code if plugins_ok else EXIT_USAGE


def _report_after_run(out: Path, code: int, no_report: bool, began: int) -> bool:
    """Write the run's report (or say how to, after --no-report); False when a Ctrl-C came
    meanwhile: one swallowed where it landed (interrupts.py) since the run's last check of
    its own, or one while the report is drawn. An interrupted run said its own line."""
    from bench.runner import interrupts
    from bench.runner.store import RunStore

    checked = interrupts.mark() if code == EXIT_INTERRUPTED else began
    drawn = False
    try:
        interrupts.stop_if_since(checked)
        if code == EXIT_INTERRUPTED and not RunStore(out).cell_files():
            pass  # nothing to report, and the run's last line said so
        elif no_report:
            print(no_report_line(out), file=sys.stderr)
        else:
            write_report(out)
            drawn = True
        interrupts.stop_if_since(checked)
    except KeyboardInterrupt:
        print("optbench: interrupted" + (" as the report was finished" if drawn else
              f" before the report was written; the results are saved, and"
              f" `{report_command(out)}` writes it"), file=sys.stderr)
        return False
    return True


def _overrides(args) -> list[str]:
    """The flags that changed the matrix, as given: ["--set budget=8", "--steps 20"]."""
    given = [f"--set {setting}" for setting in args.settings]
    for flag in ("workloads", "optimizers", "seeds", "steps"):
        if getattr(args, flag) is not None:
            given.append(f"--{flag} {getattr(args, flag)}")
    return given


def no_report_line(out: Path) -> str:
    """What a `run --no-report` says last: how to write the report, and whether one already
    in `out` (which this run did not write) could be taken for its own."""
    stale = [name for name in ("report.html", "report.md") if (out / name).exists()]
    return ("report: not written (--no-report)"
            + (f"; the {' and '.join(stale)} there predate{'s' * (len(stale) == 1)} this run"
               if stale else "")
            + f"; `{report_command(out)}` writes it")


def report_command(out: Path) -> str:
    """The command that writes `out`'s report, to paste into a shell."""
    return f"optbench report {shell_word(out)}"


def write_report(out: Path) -> None:
    """The run's report, written after its results are safe: a failure here costs the
    report only, never a result, so it is one warning line."""
    from bench.report import report
    from bench.runner.results import load

    try:
        paths = report.write(report.build(load(out)))
    except Exception as exc:  # noqa: BLE001
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"optbench: warning: no report ({type(exc).__name__}: {message});"
              f" the results are saved; try `{report_command(out)}`", file=sys.stderr)
        return
    # absolute, as the `results:` line above it: a path to open from any folder
    print(f"report: {printable(Path(paths['html']).resolve())}", file=sys.stderr)


def report(args) -> int:
    from bench.report import report, watch
    from bench.report.figure_files import parse_formats
    from bench.report.summary import wide_console
    from bench.runner.store import RunStore
    from bench.runner.results import load

    formats = parse_formats(args.format)  # before any reading: a typo costs nothing
    if args.interval is not None and not args.watch:
        raise UserError("--interval is for --watch (how often to look for finished cells)")
    if args.interval is not None and args.interval < watch.SHORTEST_INTERVAL_S:
        raise UserError(f"--interval must be at least {watch.SHORTEST_INTERVAL_S:g} seconds"
                        f" (got {args.interval:g}): looking more often only spins a CPU core")
    store = RunStore(args.run)
    last: dict = {}

    def build() -> None:
        results = load(args.run)
        note = watch.progress_note(store) if args.watch else None
        last["built"] = report.build(results if note is None else dataclasses.replace(
            results, notes=(*results.notes, note)))
        last["paths"] = _written(lambda: report.write(last["built"], Path(args.out)
                                                      if args.out else None, formats), args.out, "report")
        if args.watch:
            print(f"report: rebuilt at {datetime.now():%H:%M:%S} with"
                  f" {results.runs['cell_id'].nunique()} finished cell(s)"
                  + ("" if note is None else "; the run goes on"), file=sys.stderr, flush=True)

    if args.watch:
        store.manifest()  # a folder that is not a run: one line, before any waiting
        watch.watch(args.run, build, interval_s=args.interval or watch.DEFAULT_INTERVAL_S)
    else:
        build()
    built, paths = last["built"], last["paths"]
    console = wide_console()
    for note in built.notes:
        console.print(f"note: {printable(note)}", markup=False)
    table = report.terminal_table(built)
    if table is not None:
        console.print(table)
    console.print(f"report: {printable(paths['html'])}\nmarkdown: {printable(paths['markdown'])}"
                  f"\nplots: {printable(paths['plots'])}",
                  markup=False, highlight=False)
    return EXIT_OK


def plot(args) -> int:
    from bench.report import one_figure
    from bench.runner.results import load

    one_figure.check_kind(args.kind)  # before any reading: a typo costs nothing
    results = one_figure.select(load(args.run), split(args.workloads), split(args.optimizers))
    one_figure.check_request(results, args.kind, args.x, args.metric)
    out = one_figure.target(Path(args.run), args.out, args.kind, args.x, args.metric)
    written = _written(lambda: one_figure.plot(results, args.kind, out, x=args.x,
                                               metric=args.metric), args.out, "figure",
                       "--out FILE")
    print(printable(written))
    return EXIT_OK


def _written(write, out: str | None, what: str, flag: str = "--out DIR"):
    """write(); where it cannot write into the default folder, the message says how to
    write elsewhere (a user who named --out already chose)."""
    try:
        return write()
    except UserError as exc:
        advice = "" if out else f"; pass {flag} to write the {what} elsewhere"
        raise UserError(f"{exc}{advice}") from None


def compare(args) -> int:
    from bench.report import compare, compare_pages
    from bench.report.summary import wide_console
    from bench.runner.results import load

    if len(args.runs) < 2:
        raise UserError("compare needs at least two results folders: BASELINE RUN [RUN ...]")
    comparison = compare.compare([load(run) for run in args.runs], args.metric)
    out = Path(args.out) if args.out else Path(args.runs[-1]) / "compare"
    flags = compare_pages.Flags(compare_pages.HIGHLIGHT_PCT if args.fail_on_regression is None
                                else args.fail_on_regression, args.allow_failures,
                                args.allow_missing)
    md_path, html_path = _written(
        lambda: compare_pages.write(comparison, out, link_ok=args.out is not None, flags=flags),
        args.out, "comparison")
    console = wide_console()
    for note in comparison.notes:
        console.print(f"note: {printable(note)}", markup=False)
    console.print(compare_pages.terminal_table(comparison))
    if key := compare_pages.speed_key(comparison):  # none when the runs share no cell
        console.print(key, markup=False, highlight=False)
    for run, workload, label in comparison.only_in:
        console.print(f"only in {run}: {workload} x {label}", markup=False, highlight=False)
    console.print(f"markdown: {printable(md_path)}\nhtml: {printable(html_path)}", markup=False,
                  highlight=False)
    if args.fail_on_regression is not None:
        found = compare.regressions(comparison, args.fail_on_regression,
                                    allow_failures=args.allow_failures,
                                    allow_missing=args.allow_missing)
        for line in found:
            print(f"regression: {line}", file=sys.stderr)
        if found:
            return EXIT_FAILED_CELLS
    return EXIT_OK


def repair(args) -> int:
    from bench.runner.repair import repair

    print(repair(args.run))
    return EXIT_OK


def list_(args) -> int:
    import json

    from bench import listing
    from bench.report.summary import wide_console

    plugins_ok = load_plugins(args.plugin)
    rows, unmatched = listing.rows(args.what, args.filter)
    if unmatched:
        print(f"optbench: note: {unmatched}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2, allow_nan=False))
    elif rows:
        listing.show(wide_console(), args.what, rows)
    return EXIT_OK if plugins_ok else EXIT_USAGE
