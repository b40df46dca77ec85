"""The `optbench` command line: its arguments (parsed here) and its one rule for failure;
what each command does is in bench/commands.py and bench/plugin_commands.py.

Bad input never ends in a traceback: it is one line on stderr and exit code 2. A plugin
that fails to load is one such line; the other optimizers still load and the command still
does its work, then exits 2.
"""
from __future__ import annotations

import argparse
import os
import re
import signal
import sys


def _start_jax() -> None:
    """Import JAX first, to say in one line (exit 2) what it refuses: it reads its JAX_*
    variables on import and raises ValueError on a value it cannot read (JAX_ENABLE_X64=maybe,
    JAX_COMPILATION_CACHE_MAX_SIZE=1GB), which every command, `list` too, imports it for."""
    try:
        import jax  # noqa: F401
    except ValueError as exc:
        from bench.report.render import one_line  # rich only: no JAX

        said = one_line(exc)
        flag = re.search(r"for JAX flag (\w+)", said)  # names the flag, not its variable
        which = f"{flag[1].upper()}: " if flag else ""
        print(f"optbench: error: JAX cannot start with this environment ({which}{said}); fix"
              " that variable or unset it", file=sys.stderr)
        sys.exit(2)  # EXIT_USAGE: bench.commands imports JAX


_start_jax()

from bench import commands, plugin_commands  # after JAX has started
from bench.commands import EXIT_FAILED_CELLS, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from bench.errors import OptbenchError, UserError
from bench.plan.matrix import presets
from bench.report.render import one_line, printable
from bench.runner.executors import EXECUTORS
from bench.runner.files import utf8
from optimizers.registry import RegistryError


WEEK = 7 * 24 * 3600  # the longest time limit a flag takes


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of argparse's usage block
        raise UserError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="optbench", description="Optimizer comparison benchmark on JAX.")
    parser.add_argument("--version", action="version", version=_version(),
                        help="optbench's version and the versions of jax, jaxlib, flax and"
                             " optax it runs with")
    subcommands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = subcommands.add_parser("run", help="train a matrix of workloads x optimizers")
    run.add_argument("matrix", nargs="?", help="a matrix TOML file (default: --preset quick)")
    run.add_argument("--preset", help=f"a built-in matrix: {', '.join(presets())} (default:"
                                      " quick; optbench list presets)")
    run.add_argument("--workloads", help="comma-separated workload names (replace the matrix's)")
    run.add_argument("--optimizers", help="comma-separated optimizer names (replace the matrix's)")
    run.add_argument("--seeds", help="a count (3) or a list (0,1,2)")
    run.add_argument("--steps", type=_positive_int, help="step budget for every workload")
    run.add_argument("--set", action="append", default=[], dest="settings",
                     metavar="KEY=VALUE",
                     help="set a matrix key as a TOML value (repeatable): budget=8,"
                          " 'schedules=[\"constant\",\"cosine\"]', tuning_seeds=2,"
                          " workloads.mnist1d-mlp.steps=500 (every entry of that name);"
                          " applied before --workloads, --optimizers, --seeds, --steps")
    run.add_argument("--out", help="results folder (default: results/<matrix>-<time>)")
    run.add_argument("--log", metavar="BACKENDS",
                     help="also log to tensorboard, mlflow and/or wandb (comma-separated;"
                          " replaces the matrix's `log`; `none` turns it off); each writes"
                          " offline under the results folder and needs its extra:"
                          " pip install 'optbench[mlflow]'")
    run.add_argument("--data-dir", help="folder with <dataset>/ IDX files (or $OPTBENCH_DATA)")
    _plugin_option(run)
    run.add_argument("--force", action="store_true",
                     help="rerun cells already in --out (also: run another matrix into it)")
    run.add_argument("--resume", action="store_true",
                     help="run another matrix into an existing --out, skipping finished cells")
    run.add_argument("--executor", choices=list(EXECUTORS), default="local",
                     help="where cells run: this process (default), worker processes, or Dask")
    run.add_argument("--workers", type=_positive_int, default=2,
                     help="worker processes for --executor processes or a Dask LocalCluster"
                          " (default: 2)")
    run.add_argument("--cell-timeout", type=_seconds, metavar="SECONDS",
                     help="stop a cell whose training runs longer than this, or whose"
                          " preparation (loading data, compiling) does: each has its own"
                          " clock (--executor processes)")
    run.add_argument("--address", help="an existing Dask scheduler, e.g. tcp://host:8786")
    run.add_argument("--no-compile-cache", action="store_true",
                     help="compile every program afresh, without JAX's persistent compilation"
                          " cache ($OPTBENCH_CACHE/jax, by default ~/.cache/optbench/jax; also"
                          " OPTBENCH_COMPILE_CACHE=off), for"
                          " compile and AlgoPerf times comparable across cells and runs (a load"
                          " from the cache is booked apart, as compile_cached_s); every run then"
                          " pays its compiles again (a rerun of the quick preset: 162 s instead"
                          " of 109 s on 2 cores)")
    run.add_argument("--compile-ahead", action="store_true",
                     help="prepare and compile each program while the one before it trains"
                          " (--executor local): a shorter wait where training runs on an"
                          " accelerator, but on a CPU training shares its cores with the"
                          " compile and its step times stretch (2-2.5x measured on 2 cores),"
                          " which the report and compare note")
    run.add_argument("--no-report", action="store_true",
                     help="write the results and print the summary, but not report.html,"
                          " report.md and plots/ (drawing the figures takes ~10 s of the quick"
                          " preset's rerun on 2 cores); `optbench report <the results folder>` writes"
                          " them later")
    run.add_argument("--dry-run", action="store_true",
                     help="check the matrix and print its cells, the programs they compile"
                          " into and an estimated time (from results/reference); train"
                          " nothing")
    run.set_defaults(handler=commands.run)

    listing = subcommands.add_parser("list", help="list optimizers, workloads or presets")
    kinds = ["optimizers", "workloads", "presets"]
    # The metavar names the choices in argparse's "required" error, which would say `what`
    listing.add_argument("what", choices=kinds, metavar="{" + ",".join(kinds) + "}")
    listing.add_argument("--json", action="store_true",
                         help="print a JSON list: every field, defaults and search spaces"
                              " included (for scripts)")
    listing.add_argument("--filter", metavar="TEXT",
                         help="only names containing TEXT, or matching it as a glob"
                              " (optax:*, *adam*); case ignored")
    _plugin_option(listing)
    listing.set_defaults(handler=commands.list_)

    report = subcommands.add_parser("report", help="tables and plots of a results folder")
    report.add_argument("run", help="a results folder (e.g. results/quick-20261126-101500)")
    report.add_argument("--out", help="where to write report.html, report.md and plots/"
                                      " (default: the results folder)")
    report.add_argument("--format", default="png", metavar="FORMATS",
                        help="the figures' file formats, comma-separated: png (default), svg,"
                             " pdf; report.html shows the PNG, or the SVG without png")
    report.add_argument("--watch", action="store_true",
                        help="keep the report current while the run goes on: rebuild it as"
                             " cells finish, stop when the run ends (or on Ctrl-C)")
    report.add_argument("--interval", type=_seconds, metavar="SECONDS",
                        help="with --watch: how often to look for finished cells (default: 5)")
    report.set_defaults(handler=commands.report)

    plot = subcommands.add_parser("plot", help="one of the report's figures, for chosen"
                                  " workloads and optimizers", formatter_class=_KindsHelp)
    plot.add_argument("run", help="a results folder")
    plot.add_argument("--kind", required=True, help="which figure: ")  # _KindsHelp lists them
    plot.add_argument("--workloads", help="comma-separated workload names (default: all)")
    plot.add_argument("--optimizers", help="comma-separated optimizer names or labels"
                                           " (default: all)")
    plot.add_argument("--metric", help="--kind curves: the curve column to draw (val_loss,"
                                       " test_accuracy, ...) instead of the training loss"
                                       " and the target metric")
    plot.add_argument("--x", help="--kind curves: step (default) or time (training seconds)")
    plot.add_argument("--out", help="the file to write; its suffix (.png, .svg, .pdf) is its"
                                    " format (default: RUN/plots/plot-KIND.png)")
    plot.set_defaults(handler=commands.plot)

    repair = subcommands.add_parser("repair", help="rebuild a results folder's manifest and"
                                 " tables from its cell files")
    repair.add_argument("run", help="a results folder whose manifest or tables are damaged")
    repair.set_defaults(handler=commands.repair)

    compare = subcommands.add_parser("compare", help="runs side by side on the cells they share")
    compare.add_argument("runs", nargs="+", metavar="RUN",
                         help="results folders; the first is the baseline")
    compare.add_argument("--metric", default="target",
                         help="`target` (each cell's target metric on the test split: the"
                              " default), `best_target`, or a runs.parquet metric column such"
                              " as final_test_loss or final_val_accuracy")
    compare.add_argument("--fail-on-regression", type=_percent, metavar="PCT",
                         help="exit 1 when a later run is worse than the baseline by more than"
                              " PCT%% on the metric, or slower by more than PCT%% beyond the"
                              " noise (the speed ratio's 95%% interval below 1; never a cell"
                              " with too few chunks to judge), has more seeds diverged,"
                              " errored or timed out, or lacks a cell of the baseline")
    compare.add_argument("--allow-failures", action="store_true",
                         help="with --fail-on-regression: diverged, errored or timed-out"
                              " seeds are not regressions")
    compare.add_argument("--allow-missing", action="store_true",
                         help="with --fail-on-regression: cells missing from a later run"
                              " are not regressions")
    compare.add_argument("--out", help="where to write compare.md and compare.html"
                                       " (default: <last run>/compare)")
    compare.set_defaults(handler=commands.compare)

    check = subcommands.add_parser("check", help="run the conformance suite on optimizers")
    check.add_argument("names", nargs="+", metavar="NAME", help="registered optimizer names")
    _plugin_option(check)
    check.add_argument("--timeout", type=_seconds, default=120, metavar="SECONDS",
                       help="stop an optimizer's checks after this long; the check it was"
                            " in fails (default: 120)")
    check.set_defaults(handler=plugin_commands.check)

    new = subcommands.add_parser("new-optimizer",
                              help="write a documented optimizer template and its test")
    new.add_argument("name", help="the optimizer's name, also its file name (e.g. my_sgd)")
    new.add_argument("--dir", help="where to write NAME.py (default: the optimizers/ package,"
                                   " where drop-in files are found)")
    new.add_argument("--tests-dir", help="where to write test_NAME.py (default: tests/ next"
                                         " to the optimizers/ package, if it exists)")
    new.add_argument("--force", action="store_true", help="overwrite existing files")
    new.set_defaults(handler=plugin_commands.new_optimizer)

    new = subcommands.add_parser("new-workload",
                                 help="write a documented workload template and its test")
    new.add_argument("name", help="the workload's name (e.g. my-regression); its file is the"
                                  " name with '-' as '_'")
    new.add_argument("--dir", help="where to write the file (default: the workloads/ package,"
                                   " where drop-in files are found)")
    new.add_argument("--tests-dir", help="where to write its test (default: tests/ next to"
                                         " the workloads/ package, if it exists)")
    new.add_argument("--force", action="store_true",
                     help="overwrite a previous template of this name")
    new.set_defaults(handler=plugin_commands.new_workload)
    return parser


class _KindsHelp(argparse.HelpFormatter):
    """`optbench plot --help` lists the figure kinds: the report's registry, read only
    when help is printed (importing the plotting stack costs every command a second)."""
    def _get_help_string(self, action):
        if action.dest != "kind":
            return action.help
        from bench.report.plots import kinds
        return action.help + ", ".join(kinds())


def _plugin_option(parser) -> None:
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE",
                        help="a Python file registering optimizers or workloads (repeatable)")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv:  # a bare `optbench`: what it can do, not an error
        build_parser().print_help()
        return 0
    try:
        _refuse_undecodable(argv)
        args = build_parser().parse_args(argv)
        code = args.handler(args)
        sys.stdout.flush()  # here, where a closed pipe is caught, not at exit
        return code
    except (OptbenchError, RegistryError) as exc:
        print(f"optbench: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `optbench ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return EXIT_OK
    except OSError as exc:  # a path the user gave that the system refuses (too long, a loop)
        where = f"{str(exc.filename)[:120]}: " if exc.filename else ""
        print(f"optbench: error: {_one_line(where + (exc.strerror or str(exc)))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C: no traceback while closing
        print("optbench: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001  a bug of ours: still one line, and how to see more
        if os.environ.get("OPTBENCH_DEBUG"):
            raise
        print(f"optbench: internal error: {type(exc).__name__}: {_one_line(exc)}"
              " (set OPTBENCH_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
        return EXIT_FAILED_CELLS


def _version() -> str:
    """'optbench 0.1.0 (jax 0.4.x, jaxlib ..., flax ..., optax ...)', read from the installed
    packages' metadata: no JAX import for a version line."""
    import importlib.metadata

    from bench import __version__

    def installed(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return f"optbench {__version__} (" + ", ".join(
        f"{package} {installed(package)}" for package in ("jax", "jaxlib", "flax", "optax")) + ")"


LONGEST_WORD = 200  # a message echoes what the user gave: 5,000 digits make no better line


def _one_line(exc: BaseException) -> str:
    """An exception's message on one line (`render.one_line`), or its type's name."""
    return one_line(exc, LONGEST_WORD) or type(exc).__name__


def _refuse_undecodable(argv: list[str]) -> None:
    """A name that is not UTF-8 (bytes Python keeps as surrogates) could not go into the
    tables and pages it ends up in: say so now, not after the run has trained."""
    for arg in argv:
        if not utf8(arg):
            raise UserError(f"'{printable(arg)}' is not valid UTF-8; the names and paths"
                            " optbench writes into its tables and pages must be: rename it")


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
_seconds = _number(float, lambda v: 0 < v <= WEEK, f"more than 0 and at most {WEEK} (a week)")
_percent = _number(float, lambda v: 0 <= v < 100, "in [0, 100)")


def main_exit() -> None:
    """The console script `optbench`."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
