"""A validated matrix -> the cells it asks for, each knowing the program it trains in.

    cells = expand.cells(matrix, data_dir)     # every workload x schedule x optimizer entry,
                                               # plus the tuning trials of a budget
    for program in expand.programs(cells): ... # what each executor trains as one program

The plan fixes the program layout before anything runs, so every executor trains the same
programs and a cell's id says which layout its numbers came from.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import optimizers
from bench.errors import UserError
from bench.plan import matrix as matrix_mod
from bench.plan import tuning
from bench.plan.cells import Cell, code_digests, code_files
from bench.plan.matrix import Matrix
import workloads
from optimizers.registry import OptimizerSpec, RegistryError

Program = tuple[Cell, ...]


def cells(matrix: Matrix, data_dir: str | None = None) -> list[Cell]:
    """Every cell of the matrix, validated, with its program layout set; raises UserError
    on the first problem, before anything trains."""
    matrix_mod.check(matrix)  # its size first: nothing is built for a matrix over the limits
    where = matrix.where("optimizers")
    resolved = [_resolve_optimizer(entry, where) for entry in matrix.optimizers]
    searched = [entry["name"] for entry in matrix.optimizers if "search" in entry]
    if searched and matrix.budget == "oneshot":
        raise UserError(f"{where}: {searched[0]!r} has a search space but budget is \"oneshot\";"
                        " set budget = <number of trials> to tune")
    found: dict[str, Cell] = {}
    for entry, workload in _workloads(matrix):
        workload.check_data(data_dir)
        steps = entry.get("steps", matrix.steps or workload.steps)
        for schedule in matrix.schedules:
            for optimizer_entry, (spec, hparams, overrides) in zip(matrix.optimizers, resolved):
                base = Cell(
                    workload.name, spec.name, tuple(sorted(hparams.items())), overrides, steps,
                    min(entry.get("eval_every", workload.eval_every), steps),
                    entry.get("batch_size", workload.batch_size), tuple(matrix.seeds),
                    workload.target, schedule=schedule, sweepable="inject" not in spec.caveats,
                    code=code_digests(code_files(spec.source, workload)),
                    metrics=tuple(workload.metrics.items()))
                found.setdefault(base.spec_key, base)
                if matrix.budget != "oneshot":
                    try:
                        trials = tuning.trial_cells(base, spec, optimizer_entry, matrix.budget,
                                                    matrix.tuning_seeds)
                    except tuning.SearchSpaceError as exc:
                        raise UserError(f"{where}: {exc}") from None
                    for trial in trials:
                        found.setdefault(trial.spec_key, trial)
    return with_layout(list(found.values()))


def _workloads(matrix: Matrix) -> list[tuple[dict[str, Any], workloads.Workload]]:
    """(entry, workload) per workload entry and width: an entry's own `widths`, else the
    matrix's for workloads that have a width (one without runs once, as registered)."""
    found = []
    scaled = False  # whether the matrix's widths applied to any workload
    for entry in matrix.workloads:
        try:
            workload = workloads.get(entry["name"])
            if workload.base and "widths" in entry:  # `x@w8` with widths = [...]: which?
                raise UserError(f"workload '{entry['name']}' names its width and also has"
                                f" widths = {entry['widths']}; give '{workload.base}' with"
                                " widths, or the one name")
            if "widths" in entry:
                found += [(entry, workload.at_width(w)) for w in entry["widths"]]
            elif matrix.widths and workload.width is not None and not workload.base:
                # a name that says its width (`x@w8`) keeps it, as an entry's widths win
                found += [(entry, workload.at_width(w)) for w in matrix.widths]
                scaled = True
            else:
                found.append((entry, workload))
        except UserError as exc:
            raise UserError(f"{matrix.where('workloads')}: {exc}") from None
    if matrix.widths and not scaled:
        raise UserError(f"{matrix.where('widths')}: no workload of the matrix has a width to"
                        " scale (a name with its width, `x@w8`, keeps it); `optbench list"
                        " workloads` shows which do")
    return found


def programs(cells: list[Cell]) -> list[Program]:
    """Cells grouped by `Cell.program_key`, in the order their first member appears."""
    groups: dict[tuple, list[Cell]] = {}
    for cell in cells:
        groups.setdefault(cell.program_key(), []).append(cell)
    return [tuple(group) for group in groups.values()]


def describe(cells: Sequence[Cell]) -> str:
    """One paragraph on the size of a plan (for `optbench run --dry-run`): cells, compiled
    programs, seeds, and the steps each workload will train, every seed counted, the tuned
    reruns (one per sweep, chosen after its trials) included."""
    cells = list(cells)
    if not cells:
        return "No cells: nothing would train."
    oneshot = [c for c in cells if c.tuning.role != "trial"]
    trials = [c for c in cells if c.tuning.role == "trial"]
    seeds = max((c.seeds for c in oneshot), key=len, default=())  # the matrix's seeds
    sweeps = {(c.workload, c.optimizer, c.schedule, c.steps, c.tuning.budget): c for c in trials}
    steps: dict[str, int] = {}
    for cell, seed_count in [*((c, len(c.seeds)) for c in cells),
                             *((c, len(seeds)) for c in sweeps.values())]:
        steps[cell.workload] = steps.get(cell.workload, 0) + cell.steps * seed_count
    text = f"{_count(len(cells), 'cell')} in {_count(len(programs(cells)), 'compiled program')}"
    if trials:
        per_trial = sorted({len(c.seeds) for c in trials})
        text += (f" ({len(oneshot):,} untuned, {_count(len(trials), 'tuning trial')} on"
                 f" {' or '.join(map(str, per_trial))} seed{'s' if per_trial != [1] else ''}"
                 f" each; then {_count(len(sweeps), 'tuned rerun')}, one per sweep)")
    text += f", {_count(len(seeds), 'seed')} per cell ({_seed_list(seeds)})."
    text += " Steps to train, every seed counted: " + "; ".join(
        f"{workload} {count:,}" for workload, count in steps.items())
    return text + (f"; {sum(steps.values()):,} in all." if len(steps) > 1 else ".")


def describe_programs(cells: Sequence[Cell], shown: int = 40) -> str:
    """The programs a plan compiles, one line each with the cells that share it (a sweep's
    trials, cells differing only in float hyperparameters); the first `shown` of them."""
    groups = programs(list(cells))
    lines = [f"{_count(len(groups), 'compiled program')} (cells on one line share one"
             " program: they compile once and train together):"]
    for index, program in enumerate(groups[:shown], 1):
        first = program[0]
        labels = ", ".join(cell.label for cell in program[:4])
        if len(program) > 4:
            labels += f", and {len(program) - 4} more"
        shared = f"{len(program)} cells: " if len(program) > 1 else ""
        lines.append(f"  {index}. {first.workload} x {shared}{labels}"
                     f" ({_count(len(first.seeds), 'seed')}, {first.steps:,} steps)")
    if len(groups) > shown:
        lines.append(f"  ... and {len(groups) - shown:,} more programs")
    if any(cell.tuning.role == "trial" for cell in cells):
        lines.append("  (the tuned reruns are planned after their trials finish: one more"
                     " program each)")
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _seed_list(seeds: tuple[int, ...]) -> str:
    shown = ", ".join(map(str, seeds[:6]))
    return shown + (f", ..., {seeds[-1]}" if len(seeds) > 6 else "")


def with_layout(cells: list[Cell]) -> list[Cell]:
    """Each cell told how many trials its program holds (part of its identity)."""
    sizes = {key: len(group) for key, group in
             ((program[0].program_key(), program) for program in programs(cells))}
    return [dataclasses.replace(cell, trials_in_program=sizes[cell.program_key()])
            for cell in cells]


def _resolve_optimizer(entry: dict[str, Any], where: str) -> tuple[OptimizerSpec, dict, tuple]:
    overrides = {k: v for k, v in entry.items() if k not in ("name", "search")}
    try:
        spec = optimizers.get(entry["name"])
        return spec, spec.resolve(overrides), tuple(sorted(overrides))
    except RegistryError as exc:
        raise UserError(f"{where}: {exc}") from None
