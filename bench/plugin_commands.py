"""The commands of writing a plugin (bench/cli.py parses their arguments): `check` (the
conformance suite on optimizers), `new-optimizer` and `new-workload` (a template and its
test). Each returns the exit code; bad input raises UserError (one line, exit code 2)."""
from __future__ import annotations

import sys
from pathlib import Path

from bench.commands import EXIT_FAILED_CELLS, EXIT_OK, EXIT_USAGE, load_plugins
from bench.report.render import printable


def check(args) -> int:
    """A pass/fail table per optimizer; exit 1 when any check fails (or hangs past
    --timeout: each optimizer is checked in a child process that can be stopped)."""
    from rich.table import Table
    from rich.text import Text

    import optimizers
    from bench.report.summary import wide_console
    from optimizers.check_process import run_checks_isolated
    from optimizers.conformance import CHECKS
    from optimizers.plugins import loaded_sources

    plugins_ok = load_plugins(args.plugin)
    if not plugins_ok and not set(args.names) <= set(optimizers.names()):
        return EXIT_USAGE  # the failed plugin, said above, may be what registers the name
    specs = [optimizers.get(name) for name in args.names]  # unknown names fail before any runs
    console = wide_console()
    all_ok = True
    checked = run_checks_isolated([spec.name for spec in specs], loaded_sources(), args.timeout)
    try:
        for spec, (_, results) in zip(specs, checked):
            table = Table("check", "what it asks", "result", "detail",
                          title=Text(f"{spec.name} ({spec.where()})"))
            for r in results:  # every string is data (Text), colour is a style
                detail = f"{r.detail} (declared: {r.caveat})" if r.caveat else r.detail
                detail = printable(detail)  # what the optimizer raised: its colour codes shown
                table.add_row(Text(r.check), Text(CHECKS.get(r.check, ("",))[0]),
                              Text(r.status, style="green" if r.ok else "red"), Text(detail))
            console.print(table)
            failed = [r.check for r in results if not r.ok]
            known = [r.check for r in results if r.caveat and r.ok]
            all_ok &= not failed
            verdict = (Text(f"{len(failed)} of {len(results)} checks failed: {', '.join(failed)}",
                            style="red") if failed else
                       Text(f"conforms: {len(results) - len(known)} checks pass"
                            + (f", {len(known)} known failures (declared)" if known else ""),
                            style="green"))
            console.print(Text.assemble(f"{spec.name}: ", verdict))
    except KeyboardInterrupt:
        checked.close()  # stops the child process
        print("optbench: interrupted", file=sys.stderr)
        return 130
    if not plugins_ok:
        return EXIT_USAGE
    return EXIT_OK if all_ok else EXIT_FAILED_CELLS


def new_optimizer(args) -> int:
    import optimizers
    from bench.scaffold import write_optimizer

    taken = {name: optimizers.get(name).source for name in optimizers.names()}
    return _scaffold(args, Path(optimizers.__file__).parent, write_optimizer, taken,
                     "`optbench check {name}{plugin}`")


def new_workload(args) -> int:
    import workloads
    from bench.new_workload import write_workload

    taken = {name: workloads.get(name).source for name in workloads.names()}
    return _scaffold(args, Path(workloads.__file__).parent, write_workload, taken,
                     "`optbench run --workloads {name} --optimizers adam,sgd{plugin}`")


def _scaffold(args, package_dir: Path, write, taken: dict[str, str], next_step: str) -> int:
    """Write a template and its test (`new-optimizer`, `new-workload`) and say what next."""
    target, tests_dir, in_package = _scaffold_folders(args, package_dir)
    written = write(args.name, target, tests_dir, taken=taken, in_package=in_package,
                    force=args.force)
    for path in written:
        print(f"wrote {printable(path)}")
    plugin = "" if in_package else f" --plugin {printable(written[0])}"
    print(f"next: edit {written[0].name}, then {next_step.format(name=args.name, plugin=plugin)}")
    return EXIT_OK


def _scaffold_folders(args, package_dir: Path) -> tuple[Path, Path | None, bool]:
    """(where the file goes, where its test goes or None, whether that is the package)."""
    tests_dir = Path(args.tests_dir) if args.tests_dir else package_dir.parent / "tests"
    if not args.tests_dir and not tests_dir.is_dir():
        tests_dir = None
    target = Path(args.dir) if args.dir else package_dir
    return target, tests_dir, target.resolve() == package_dir.resolve()
