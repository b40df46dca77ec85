"""The tuning protocol, all of it: quasi-random trials from each optimizer's search space
(`trial_cells`), selection on the validation split by the workload's target (`select`),
and the selected point rerun with every seed (`tuned_cells`). Test metrics of trials are
never used to choose.

    budget = 8          # in a matrix file: 8 trials per optimizer and workload
    tuning_seeds = 1    # seeds per trial (the selected point reruns with `seeds`)
    optimizers = [{name = "adam", search = {learning_rate = [1e-4, 1e-1]}}]

Points come from a scrambled Halton sequence (scipy.stats.qmc), seeded from the workload
and optimizer names, so the same matrix draws the same points on every machine.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.plan.cells import Cell, Tuning
from bench.records import Target
from optimizers.registry import OptimizerSpec, RegistryError, did_you_mean
from optimizers.space import Choice, Dimension, LogUniform, Uniform

# Without a registered dimension, these are searched on a log scale.
_LOG_SCALE = {"learning_rate", "max_learning_rate", "weight_decay", "eps", "weight_decay_rate"}


class SearchSpaceError(ValueError):
    """A search space that cannot be searched; one line, raised before anything trains."""


def search_space(spec: OptimizerSpec, given: Mapping[str, Any] | None) -> dict[str, Dimension]:
    """The registered space, with the ranges `given` (name -> [low, high] or a list of
    options) replacing or adding dimensions."""
    if given is not None and (not isinstance(given, Mapping) or not given):
        raise SearchSpaceError(
            f"optimizer '{spec.name}': search must be a table of hyperparameter = [low, high]"
            f" (or = [option, ...]), e.g. search = {{learning_rate = [1e-4, 1e-1]}}; got {given!r}")
    space = dict(spec.space)
    for name, value in (given or {}).items():
        if name not in spec.defaults:
            raise SearchSpaceError(
                f"optimizer '{spec.name}' has no hyperparameter {name!r} to search"
                f"{did_you_mean(name, spec.defaults)}; it takes: {', '.join(sorted(spec.defaults))}")
        space[name] = _dimension(spec, name, value, space.get(name))
    if not space:
        raise SearchSpaceError(f"optimizer '{spec.name}' has no search space; give one with"
                               " search = {learning_rate = [low, high]} or use budget = \"oneshot\"")
    return space


def _dimension(spec: OptimizerSpec, name: str, value: Any, registered: Dimension | None) -> Dimension:
    where = f"optimizer '{spec.name}': search range for '{name}'"
    if spec.kind(name) != "number" or isinstance(spec.allowed(name), tuple):
        return _options(spec, name, value, where)
    if (not isinstance(value, list) or len(value) != 2
            or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise SearchSpaceError(f"{where} must be [low, high], two numbers; got {value!r}")
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        raise SearchSpaceError(f"{where} must be finite; got {value!r}")
    if low > high:
        raise SearchSpaceError(f"{where} is inverted: [{value[0]}, {value[1]}]; write [low, high]")
    if low == high:
        raise SearchSpaceError(f"{where} is empty: [{value[0]}, {value[1]}]; give low < high")
    log = isinstance(registered, LogUniform) or (registered is None and name in _LOG_SCALE)
    if log and low <= 0:
        raise SearchSpaceError(f"{where} is searched on a log scale and needs low > 0; got {low:g}")
    for bound in value:  # both ends must be values the optimizer takes
        try:
            spec.check(name, bound)
        except RegistryError as exc:
            raise SearchSpaceError(f"{where} [{value[0]}, {value[1]}] reaches outside the values"
                                   f" it takes: {_detail(spec, exc)}") from None
    default = min(max(float(spec.defaults[name]), low), high) if isinstance(spec.defaults[name], (int, float)) else low
    return LogUniform(low, high, default) if log else Uniform(low, high, default)


def _options(spec: OptimizerSpec, name: str, value: Any, where: str) -> Choice:
    """A list of the values to try, for a hyperparameter that is not a real number (a flag,
    a string, an integer, one of declared options)."""
    kind = {"bool": "values to try, e.g. [true, false]", "str": "strings to try",
            "int": "integers to try, e.g. [5, 10, 20]"}.get(spec.kind(name), "values to try")
    if not isinstance(value, list) or not value:
        raise SearchSpaceError(f"{where} must be a non-empty list of the {kind}; got {value!r}")
    for option in value:
        try:
            spec.check(name, option)
        except RegistryError as exc:
            raise SearchSpaceError(f"{where}: {_detail(spec, exc)}") from None
    if len({(type(v), v) for v in value}) != len(value):
        raise SearchSpaceError(f"{where} repeats an option: {value!r}")
    default = spec.defaults[name]
    return Choice(tuple(value), default=default if default in value else value[0])


def _detail(spec: OptimizerSpec, exc: RegistryError) -> str:
    """The registry's message without its "optimizer 'name': " (the caller says it)."""
    return str(exc).removeprefix(f"optimizer '{spec.name}': ")


def draw(space: Mapping[str, Dimension], trials: int, seed: int) -> list[dict[str, Any]]:
    """`trials` points of the space, quasi-random and reproducible from `seed`."""
    names = sorted(space)
    from scipy.stats import qmc  # here: scipy.stats costs ~0.5-1 s to import, every command

    units = qmc.Halton(d=len(names), scramble=True, seed=seed).random(trials)
    points = []
    for row in units:
        point = {}
        for name, u in zip(names, row):
            dim = space[name]
            if isinstance(dim, LogUniform):
                point[name] = float(np.exp(np.log(dim.low) + u * (np.log(dim.high) - np.log(dim.low))))
            elif isinstance(dim, Uniform):
                point[name] = float(dim.low + u * (dim.high - dim.low))
            else:
                point[name] = dim.options[min(int(u * len(dim.options)), len(dim.options) - 1)]
        points.append({k: _round(v) for k, v in point.items()})
    return points


def _round(value: Any) -> Any:
    """4 significant digits: labels stay readable and the values are what the labels say."""
    return float(f"{value:.4g}") if isinstance(value, float) else value


def stream_seed(*names: str) -> int:
    return int.from_bytes(hashlib.sha256("|".join(names).encode()).digest()[:4], "little")


def trial_cells(base: Cell, spec: OptimizerSpec, entry: Mapping[str, Any], budget: int,
                tuning_seeds: int) -> list[Cell]:
    """`budget` quasi-random points of the optimizer's search space, as cells of `base`
    trained with its first `tuning_seeds` seeds. What the matrix set stays set."""
    fixed = {k: v for k, v in entry.items() if k not in ("name", "search")}
    given = entry.get("search")
    both = sorted(set(fixed) & set(given)) if isinstance(given, Mapping) else []
    if both:
        raise SearchSpaceError(f"optimizer '{spec.name}': {both[0]!r} is both set"
                               f" ({both[0]} = {fixed[both[0]]!r}) and searched; drop one")
    space = {k: d for k, d in search_space(spec, given).items() if k not in fixed}
    if not space:
        raise SearchSpaceError(f"optimizer '{spec.name}': the matrix sets every hyperparameter"
                               f" of its search space ({', '.join(sorted(fixed))}), so there is"
                               " nothing to tune; search one (search = {name = [low, high]})"
                               " or use budget = \"oneshot\"")
    points = draw(space, budget, stream_seed(base.workload, base.label))
    trials = []
    for index, point in enumerate(points):
        try:
            hparams = spec.resolve({**fixed, **point})
        except RegistryError as exc:
            raise SearchSpaceError(f"trial {index} of {base.label}: {exc}") from None
        trials.append(dataclasses.replace(
            base, hparams=tuple(sorted(hparams.items())), overrides=tuple(sorted({*fixed, *point})),
            seeds=base.seeds[:tuning_seeds], tuning=Tuning("trial", index, budget)))
    return trials


def select(finals: Mapping[Cell, Sequence[float]], target: Target) -> Cell | None:
    """The best trial: the best mean final value of the workload's target metric over its
    seeds that finished (`finals`: trial -> those values); ties go to the earlier trial.
    None when no trial finished."""
    best, best_mean = None, math.nan
    for trial in sorted(finals, key=lambda c: c.tuning.trial):
        values = [v for v in finals[trial] if math.isfinite(v)]
        mean = float(np.mean(values)) if values else math.nan
        if target.better(mean, best_mean):
            best, best_mean = trial, mean
    return best


def tuned_cells(trials: Sequence[Cell], seeds: tuple[int, ...],
                finals: Mapping[str, Sequence[float]]) -> list[Cell]:
    """For each sweep (same workload, optimizer, budget, schedule), its best trial as a
    `tuned` cell with every seed of the matrix. `finals`: trial id -> the final target
    metric of each of its seeds that finished."""
    sweeps: dict[tuple, list[Cell]] = {}
    for trial in trials:
        key = (trial.workload, trial.optimizer, trial.steps, trial.schedule, trial.tuning.budget)
        sweeps.setdefault(key, []).append(trial)
    chosen = []
    for members in sweeps.values():
        winner = select({t: finals.get(t.id, []) for t in members}, members[0].target)
        if winner is not None:
            chosen.append(dataclasses.replace(
                winner, seeds=seeds, trials_in_program=1,
                tuning=Tuning("tuned", winner.tuning.trial, winner.tuning.budget)))
    return chosen
