"""The `optbench` command: run a matrix, list what is available.

Bad input never ends in a traceback: it is one line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from bench.errors import UserError
from optimizers.registry import RegistryError

EXIT_OK, EXIT_FAILED_CELLS, EXIT_USAGE = 0, 1, 2


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
    run.add_argument("--plugin", action="append", default=[], metavar="FILE",
                     help="a Python file registering optimizers (repeatable)")
    run.add_argument("--force", action="store_true", help="rerun cells already in --out")
    run.set_defaults(handler=_cmd_run)

    listing = commands.add_parser("list", help="list optimizers, workloads or presets")
    listing.add_argument("what", choices=["optimizers", "workloads", "presets"])
    listing.set_defaults(handler=_cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.handler(args)
    except (UserError, RegistryError) as exc:
        print(f"optbench: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _cmd_run(args) -> int:
    from bench import matrix as matrix_mod
    from bench.harness import run_matrix

    import optimizers

    matrix = matrix_mod.load(args.matrix, args.preset)
    for plugin in [*matrix.plugins, *args.plugin]:
        optimizers.load_plugin_file(plugin)
    if args.workloads:
        matrix.workloads = [{"name": n} for n in _split(args.workloads)]
    if args.optimizers:
        matrix.optimizers = [{"name": n} for n in _split(args.optimizers)]
    if args.seeds:
        matrix.seeds = matrix_mod.parse_seeds(args.seeds)
    if args.steps:
        matrix.steps = args.steps
        for entry in matrix.workloads:
            entry.pop("steps", None)
    cells = matrix_mod.cells(matrix, args.data_dir)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(args.out) if args.out else Path("results") / f"{matrix.name}-{stamp}"
    return run_matrix(matrix, cells, out, data_dir=args.data_dir, force=args.force)


def _cmd_list(args) -> int:
    from rich.table import Table

    from bench.summary import wide_console

    console = wide_console()
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
        _warn_plugin_errors()
    elif args.what == "workloads":
        from bench import workloads

        table = Table("name", "dataset", "batch", "steps", "eval every", "target", "model")
        for name in workloads.names():
            w = workloads.get(name)
            table.add_row(name, w.dataset, str(w.batch_size), str(w.steps), str(w.eval_every),
                          f"{w.target_metric} >= {w.target_value:g}", w.description)
        console.print(table)
    else:
        from bench.matrix import PRESET_DIR

        for path in sorted(PRESET_DIR.glob("*.toml")):
            first = path.read_text().splitlines()[0].lstrip("# ")
            console.print(f"[bold]{path.stem}[/bold]: {first}")
    return EXIT_OK


def _warn_plugin_errors() -> None:
    from optimizers.plugins import load_errors

    for line in load_errors:
        print(f"optbench: warning: {line}", file=sys.stderr)


def main_exit() -> None:
    """The console script `optbench`."""
    sys.exit(main())


if __name__ == "__main__":
    main_exit()
