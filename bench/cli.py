"""The `optbench` command: run a matrix, list what is available, check and scaffold
optimizers.

Bad input never ends in a traceback: it is one line on stderr and exit code 2. A plugin
that fails to load is one such line; the other optimizers still load and the command still
does its work, then exits 2.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from datetime import datetime
from pathlib import Path

from bench.errors import UserError
from bench.run.executors import EXECUTORS
from optimizers.registry import RegistryError

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise UserError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="optbench", description="Optimizer comparison benchmark on JAX.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = commands.add_parser("run", help="train a matrix of workloads x optimizers")
    run.add_argument("matrix", nargs="?", help="a matrix TOML file (default: --preset quick)")
    run.add_argument("--preset", help="a built-in matrix: quick (default), standard, smoke")
    run.add_argument("--workloads", help="comma-separated workload names (replace the matrix's)")
    run.add_argument("--optimizers", help="comma-separated optimizer names (replace the matrix's)")
    run.add_argument("--seeds", help="a count (3) or a list (0,1,2)")
    run.add_argument("--steps", type=_positive_int, help="step budget for every workload")
    run.add_argument("--out", help="results folder (default: results/<matrix>-<time>)")
    run.add_argument("--data-dir", help="folder with <dataset>/ IDX files (or $OPTBENCH_DATA)")
    _plugin_option(run)
    run.add_argument("--force", action="store_true",
                     help="rerun cells already in --out (also: run another matrix into it)")
    run.add_argument("--resume", action="store_true",
                     help="run another matrix into an existing --out, skipping finished cells")
    run.add_argument("--executor", choices=list(EXECUTORS), default="local",
                     help="where cells run: this process (default), worker processes, or Dask")
    run.add_argument("--workers", type=_positive_int, default=2,
                     help="worker processes for --executor processes or a Dask LocalCluster")
    run.add_argument("--cell-timeout", type=_positive_float, metavar="SECONDS",
                     help="stop a cell whose training runs longer than this, or whose"
                          " preparation (loading data, compiling) does: each has its own"
                          " clock (--executor processes)")
    run.add_argument("--address", help="an existing Dask scheduler, e.g. tcp://host:8786")
    run.add_argument("--dry-run", action="store_true",
                     help="check the matrix and print its size (cells, programs, steps);"
                          " train nothing")
    run.set_defaults(handler=_cmd_run)

    listing = commands.add_parser("list", help="list optimizers, workloads or presets")
    listing.add_argument("what", choices=["optimizers", "workloads", "presets"])
    _plugin_option(listing)
    listing.set_defaults(handler=_cmd_list)

    report = commands.add_parser("report", help="tables and plots of a results folder")
    report.add_argument("run", help="a results folder (e.g. results/quick-20261126-101500)")
    report.add_argument("--out", help="where to write report.html, report.md and plots/"
                                      " (default: the results folder)")
    report.set_defaults(handler=_cmd_report)

    repair = commands.add_parser("repair", help="rebuild a results folder's manifest and"
                                 " tables from its cell files")
    repair.add_argument("run", help="a results folder whose manifest or tables are damaged")
    repair.set_defaults(handler=_cmd_repair)

    compare = commands.add_parser("compare", help="runs side by side on the cells they share")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="results folders; the first is the baseline")
    compare.add_argument("--metric", default="final_test_accuracy",
                         help="a runs.parquet metric column (default: final_test_accuracy)")
    compare.add_argument("--fail-on-regression", type=_percent, metavar="PCT",
                         help="exit 1 when a later run is worse than the baseline by more than"
                              " PCT%% on the metric or on speed, has more seeds diverged,"
                              " errored or timed out, or lacks a cell of the baseline")
    compare.add_argument("--allow-failures", action="store_true",
                         help="with --fail-on-regression: diverged, errored or timed-out"
                              " seeds are not regressions")
    compare.add_argument("--allow-missing", action="store_true",
                         help="with --fail-on-regression: cells missing from a later run"
                              " are not regressions")
    compare.add_argument("--out", help="where to write compare.md and compare.html"
                                       " (default: <last run>/compare)")
    compare.set_defaults(handler=_cmd_compare)

    check = commands.add_parser("check", help="run the conformance suite on optimizers")
    check.add_argument("names", nargs="+", metavar="NAME", help="registered optimizer names")
    _plugin_option(check)
    check.add_argument("--timeout", type=_positive_float, default=120, metavar="SECONDS",
                       help="stop an optimizer's checks after this long; the check it was"
                            " in fails (default: 120)")
    check.set_defaults(handler=_cmd_check)

    new = commands.add_parser("new-optimizer",
                              help="write a documented optimizer template and its test")
    new.add_argument("name", help="the optimizer's name, also its file name (e.g. my_sgd)")
    new.add_argument("--dir", help="where to write NAME.py (default: the optimizers/ package,"
                                   " where drop-in files are found)")
    new.add_argument("--tests-dir", help="where to write test_NAME.py (default: tests/ next"
                                         " to the optimizers/ package, if it exists)")
    new.add_argument("--force", action="store_true", help="overwrite existing files")
    new.set_defaults(handler=_cmd_new_optimizer)
    return parser


def _plugin_option(parser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE",
                        help="a Python file registering optimizers (repeatable)")


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except (UserError, RegistryError) as exc:
        print(f"optbench: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a path the user gave that the system refuses (too long, a loop)
        where = f"{str(exc.filename)[:120]}: " if exc.filename else ""
        print(f"optbench: error: {_one_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("optbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001  a bug of ours: still one line, and how to see more
        if os.environ.get("OPTBENCH_DEBUG"):
            raise
        print(f"optbench: internal error: {type(exc).__name__}: {_one_line(exc)}"
              " (set OPTBENCH_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return EXIT_FAILED_CELLS


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line, control characters shown escaped."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _load_plugins(paths) -> bool:
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
    for line in failures:
        print(f"optbench: error: {line}", file=sys.stderr)
    return not failures


def _number(convert, accept, expected: str):
    """An argparse type: `convert` the text, then check it; one-line messages either way."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            kind = "an integer" if convert is int else "a number"
            raise argparse.ArgumentTypeError(f"'{text}' is not {kind}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"must be {expected}, got {value:g}")
        return value
    return parse


_positive_int = _number(int, lambda v: v >= 1, "at least 1")
_positive_float = _number(float, lambda v: v > 0, "more than 0")
_percent = _number(float, lambda v: 0 <= v < 100, "in [0, 100)")


def _split(text: str | None) -> list[str] | None:
    """A comma-separated flag as a list; None when the flag was not given (an empty list,
    for `--optimizers ","`, is for the matrix to refuse, naming the flag)."""
    return None if text is None else [part.strip() for part in text.split(",") if part.strip()]


def _folder_name(name: str) -> str:
    """A matrix name as one safe path component: names are names, never paths."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._-")[:80] or "run"


def _cmd_run(args) -> int:
    from bench.plan import expand
    from bench.plan import matrix as matrix_mod
    from bench.run.driver import run_matrix
    from bench.run.executors import Limits, check_address

    for flag in ("out", "data_dir"):
        if getattr(args, flag) is not None and not getattr(args, flag).strip():
            raise UserError(f"--{flag.replace('_', '-')} is empty; give a folder")
    matrix = matrix_mod.load(args.matrix, args.preset)
    plugins_ok = _load_plugins([*matrix.plugins, *args.plugin])
    matrix = matrix_mod.with_overrides(
        matrix, workloads=_split(args.workloads), optimizers=_split(args.optimizers),
        seeds=args.seeds, steps=args.steps)
    cells = expand.cells(matrix, args.data_dir)
    if args.dry_run:
        print(expand.describe(cells))
        return EXIT_OK if plugins_ok else EXIT_USAGE
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = (Path(args.out) if args.out
           else Path("results") / f"{_folder_name(matrix.name)}-{stamp}")
    if args.cell_timeout and args.executor != "processes":
        raise UserError("--cell-timeout needs --executor processes: only a worker process can"
                        " be stopped safely mid-cell")
    if args.address is not None:
        check_address(args.address, args.executor)
    limits = Limits(args.workers, args.cell_timeout, args.address,
                    tuple(str(Path(p).resolve()) for p in [*matrix.plugins, *args.plugin]))
    code = run_matrix(matrix, cells, out, data_dir=args.data_dir, force=args.force,
                      resume=args.resume, executor=args.executor, limits=limits)
    _write_report(out)
    return code if plugins_ok else EXIT_USAGE


def _write_report(out: Path) -> None:
    """The run's report, written after its results are safe: a failure here costs the
    report only, never a result, so it is one warning line."""
    from bench.report import report
    from bench.run.store import load

    try:
        paths = report.write(report.build(load(out)))
    except Exception as exc:  # noqa: BLE001
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"optbench: warning: no report ({type(exc).__name__}: {message});"
              f" the results are saved; try `optbench report {out}`", file=sys.stderr)
        return
    print(f"report: {paths['html']}", file=sys.stderr)


def _cmd_report(args) -> int:
    from bench.report import report
    from bench.report.summary import wide_console
    from bench.run.store import load

    built = report.build(load(args.run))
    try:
        paths = report.write(built, Path(args.out) if args.out else None)
    except UserError as exc:
        raise UserError(f"{exc}" + ("" if args.out else "; pass --out DIR to write the report"
                                    " elsewhere")) from None
    console = wide_console()
    for note in built.notes:
        console.print(f"note: {note}", markup=False)
    table = report.terminal_table(built)
    if table is not None:
        console.print(table)
    console.print(f"report: {paths['html']}\nmarkdown: {paths['markdown']}\nplots: {paths['plots']}",
                  markup=False, highlight=False)
    return EXIT_OK


def _cmd_compare(args) -> int:
    from bench.report import compare
    from bench.report.summary import wide_console
    from bench.run.store import load

    if len(args.runs) < 2:
        raise UserError("compare needs at least two results folders: BASELINE RUN [RUN ...]")
    comparison = compare.compare([load(run) for run in args.runs], args.metric)
    out = Path(args.out) if args.out else Path(args.runs[-1]) / "compare"
    try:
        md_path, html_path = compare.write(comparison, out, link_ok=args.out is not None)
    except UserError as exc:
        raise UserError(f"{exc}" + ("" if args.out else "; pass --out DIR to write the"
                                    " comparison elsewhere")) from None
    console = wide_console()
    for note in comparison.notes:
        console.print(f"note: {note}", markup=False)
    console.print(compare.terminal_table(comparison))
    for run, workload, label in comparison.only_in:
        console.print(f"only in {run}: {workload} x {label}", markup=False, highlight=False)
    console.print(f"markdown: {md_path}\nhtml: {html_path}", markup=False, highlight=False)
    if args.fail_on_regression is not None:
        found = compare.regressions(comparison, args.fail_on_regression,
                                    allow_failures=args.allow_failures,
                                    allow_missing=args.allow_missing)
        for line in found:
            print(f"regression: {line}", file=sys.stderr)
        if found:
            return EXIT_FAILED_CELLS
    return EXIT_OK


def _cmd_repair(args) -> int:
    from bench.run.store import repair

    print(repair(args.run))
    return EXIT_OK


def _cmd_list(args) -> int:
    from rich.markup import escape
    from rich.table import Table

    from bench.report.summary import wide_console

    console = wide_console()
    plugins_ok = _load_plugins(args.plugin)
    if args.what == "optimizers":
        import optimizers
        from optimizers.space import describe

        table = Table("name", "defaults", "search space", "reference")
        for name in optimizers.names():
            spec = optimizers.get(name)
            space = ", ".join(f"{k}: {describe(d)}" for k, d in spec.space.items())
            defaults = ", ".join(f"{k}={spec.defaults[k]}" for k in spec.space)
            table.add_row(name, defaults, space or "-", spec.reference or "-")
        console.print(table)
    elif args.what == "workloads":
        from bench.train import workloads

        table = Table("name", "dataset", "batch", "steps", "eval every", "target", "model")
        for name in workloads.names():
            w = workloads.get(name)
            table.add_row(name, w.dataset, str(w.batch_size), str(w.steps), str(w.eval_every),
                          w.target.describe(), w.description)
        console.print(table)
    else:
        from bench.plan.matrix import PRESET_DIR

        for path in sorted(PRESET_DIR.glob("*.toml")):
            first = path.read_text().splitlines()[0].lstrip("# ")
            console.print(f"[bold]{path.stem}[/bold]: {escape(first)}", markup=True)
    return EXIT_OK if plugins_ok else EXIT_USAGE


def _cmd_check(args) -> int:
    """A pass/fail table per optimizer; exit 1 when any check fails (or hangs past
    --timeout: each optimizer is checked in a child process that can be stopped)."""
    from rich.markup import escape
    from rich.table import Table

    import optimizers
    from bench.report.summary import wide_console
    from optimizers.conformance import CHECKS, run_checks_isolated
    from optimizers.plugins import loaded_sources

    plugins_ok = _load_plugins(args.plugin)
    specs = [optimizers.get(name) for name in args.names]  # unknown names fail before any runs
    console = wide_console()
    all_ok = True
    checked = run_checks_isolated([spec.name for spec in specs], loaded_sources(), args.timeout)
    try:
        for spec, (_, results) in zip(specs, checked):
            table = Table("check", "what it asks", "result", "detail",
                          title=escape(f"{spec.name} ({spec.where()})"))
            for r in results:
                colour = "green" if r.ok else "red"
                detail = f"{r.detail} (declared: {r.caveat})" if r.caveat else r.detail
                table.add_row(r.check, CHECKS.get(r.check, ("",))[0],
                              f"[{colour}]{r.status}[/{colour}]", escape(detail))
            console.print(table)
            failed = [r.check for r in results if not r.ok]
            known = [r.check for r in results if r.caveat and r.ok]
            all_ok &= not failed
            verdict = (f"[red]{len(failed)} of {len(results)} checks failed:"
                       f" {', '.join(failed)}[/red]" if failed else
                       f"[green]conforms: {len(results) - len(known)} checks pass"
                       + (f", {len(known)} known failures (declared)" if known else "")
                       + "[/green]")
            console.print(f"{escape(spec.name)}: {verdict}")
    except KeyboardInterrupt:
        checked.close()  # stops the child process
        print("optbench: interrupted", file=sys.stderr)
        return 130
    if not plugins_ok:
        return EXIT_USAGE
    return EXIT_OK if all_ok else EXIT_FAILED_CELLS


def _cmd_new_optimizer(args) -> int:
    import optimizers
    from bench.scaffold import write_optimizer

    package_dir = Path(optimizers.__file__).parent
    tests_dir = Path(args.tests_dir) if args.tests_dir else package_dir.parent / "tests"
    if not args.tests_dir and not tests_dir.is_dir():
        tests_dir = None
    target = Path(args.dir) if args.dir else package_dir
    in_package = target.resolve() == package_dir.resolve()
    taken = {name: optimizers.get(name).source for name in optimizers.names()}
    written = write_optimizer(args.name, target, tests_dir, taken=taken,
                              in_package=in_package, force=args.force)
    for path in written:
        print(f"wrote {path}")
    plugin = "" if in_package else f" --plugin {written[0]}"
    print(f"next: edit {written[0].name}, then `optbench check {args.name}{plugin}`")
    return EXIT_OK


def main_exit() -> None:
    """The console script `optbench`."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
