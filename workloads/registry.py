"""The workload registry: what a workload declares, and the names it is found by.

A workload is everything one training problem needs, declared once:

- its data: a `Dataset` (train / validation / test splits), from a loader `(data_dir) -> Dataset`
  or the name of a built-in dataset (`bench/train/data.py`);
- its model: a factory `(data, rngs) -> nnx.Module`, or `(data, rngs, width)` when the
  workload declares a `width` (then `<name>@w<width>` builds it at another width);
- its loss `(outputs, targets) -> scalar`, the mean over a batch: what the optimizer minimises;
- its metrics: `metric_sums(outputs, targets) -> {name: the metric summed over the examples}`
  and, per metric, which way is better ("min", "max", or None for a value that is recorded
  but never a score, such as a position). Every workload has a "loss" metric;
- its target: a validation metric, a value and a direction;
- its default batch size, step budget and evaluation cadence. A batch size as large as the
  training set means full-batch steps (the whole set every step, no sampling).

Built-in workloads live in `workloads/*.py`; plugins register more with `@register_workload`
from a file given by `--plugin`, or from an entry point in the group `optbench.workloads`.
"""
from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import jax
import jax.numpy as jnp
import optax

from bench.errors import UserError
from bench.records import Target
from bench.train.data import Dataset
from optimizers.registry import RegistryError, did_you_mean

Direction = Literal["min", "max"]
Loader = Callable[[str | None], Dataset]  # (data_dir) -> Dataset
MetricSums = Callable[[jax.Array, jax.Array], Mapping[str, jax.Array]]
MAX_WIDTH = 65_536
MAX_NAME = 100  # characters of a registered name (`@w<width>` comes on top)
_NAME = re.compile(r"[a-z0-9][a-z0-9._+:-]*")  # ':' for a plugin's namespace, as optimizers


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy over every prediction of the batch (a token axis too)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def classification_sums(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Per example: cross-entropy (float32) and whether the prediction is right (int32),
    summed over the batch. Predictions over a token axis are averaged within an example."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = jnp.argmax(logits, -1) == labels
    if losses.ndim == 1:
        return {"loss": losses.sum(), "accuracy": jnp.sum(correct, dtype=jnp.int32)}
    return {"loss": losses.reshape(len(losses), -1).mean(1).sum(),
            "accuracy": correct.reshape(len(correct), -1).mean(1).sum()}


CLASSIFICATION_METRICS: dict[str, Direction] = {"loss": "min", "accuracy": "max"}


@dataclass(frozen=True)
class Landscape:
    """A 2-D objective the report can draw: `function(x, y)` on NumPy arrays, the region to
    draw, and its minimisers (drawn as stars). Workloads with a landscape record their
    position as the metrics `x` and `y`."""

    function: Callable[[Any, Any], Any]
    bounds: tuple[tuple[float, float], tuple[float, float]]
    minima: tuple[tuple[float, float], ...] = ()
    log_levels: bool = True  # contour levels on a log scale (valleys spanning decades)


@dataclass(frozen=True)
class Workload:
    name: str
    data: Loader | str
    model: Callable[..., Any]
    target: Target  # on a validation metric: `val_<metric>`
    batch_size: int
    steps: int
    eval_every: int
    description: str = ""
    loss: Callable[[jax.Array, jax.Array], jax.Array] = cross_entropy
    metric_sums: MetricSums = classification_sums
    metrics: Mapping[str, Direction | None] = field(
        default_factory=lambda: dict(CLASSIFICATION_METRICS))
    width: int | None = None  # the model's width, where it takes one
    landscape: Landscape | None = None
    reference: str = ""  # a measured figure for the README's workload table
    source: str = ""  # the file that registered it (its digest is part of a cell's id)
    base: str = ""  # for `<name>@w<width>`: the registered name

    def __post_init__(self):
        problems = _problems(self)
        if problems:
            name = self.name if not isinstance(self.name, str) or len(self.name) <= 60 \
                else f"{self.name[:57]}..."
            raise RegistryError(f"workload {name!r}: {problems[0]}")

    @property
    def dataset_key(self) -> str:
        """What a process caches the loaded data under."""
        return self.data if isinstance(self.data, str) else f"workload:{self.base or self.name}"

    def load_data(self, data_dir: str | None = None) -> Dataset:
        from bench.train import data

        if isinstance(self.data, str):
            return data.load(self.data, data_dir)
        try:
            dataset = self.data(data_dir)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - a plugin's loader: one line, never a traceback
            raise UserError(f"workload {self.name}: its data loader{_where(exc, self.data)}"
                            f" raised {type(exc).__name__}: {_first_line(exc)}") from None
        if not isinstance(dataset, Dataset):
            raise UserError(f"workload {self.name}: its data loader returned"
                            f" {type(dataset).__name__}, not a Dataset")
        return dataset

    def check_data(self, data_dir: str | None = None) -> None:
        """Raise UserError now if the data cannot be loaded later (built-in datasets only:
        a loader runs when the first cell needs it)."""
        from bench.train import data

        if isinstance(self.data, str):
            data.check_available(self.data, data_dir)

    def build_model(self, dataset: Dataset, rngs):
        from flax import nnx

        model = self.model(dataset, rngs) if self.width is None else \
            self.model(dataset, rngs, self.width)
        if not isinstance(model, nnx.Module):
            raise WorkloadError(f"workload {self.name}: its model factory returned"
                                f" {type(model).__name__}, not a flax.nnx.Module")
        return model

    def checked_loss(self, outputs, targets) -> jax.Array:
        """`loss`, refusing (while tracing) anything but a real scalar."""
        value = self.loss(outputs, targets)
        shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
        if shape != () or dtype is None or not jnp.issubdtype(dtype, jnp.floating):
            raise WorkloadError(f"workload {self.name}: its loss returned"
                                f" {_described(value)}; expected a float scalar (the batch mean)")
        return value

    def checked_sums(self, outputs, targets) -> dict[str, jax.Array]:
        """`metric_sums`, refusing (while tracing) anything but one real scalar per declared
        metric: an undeclared or missing metric would make the tables disagree with
        `metrics`."""
        sums = self.metric_sums(outputs, targets)
        if not isinstance(sums, Mapping):
            raise WorkloadError(f"workload {self.name}: its metric_sums returned"
                                f" {type(sums).__name__}; expected a dict of"
                                f" {', '.join(self.metrics)}")
        if set(sums) != set(self.metrics):
            missing = sorted(set(map(str, self.metrics)) - set(map(str, sums)))
            extra = sorted(map(str, set(sums) - set(self.metrics)))
            raise WorkloadError(f"workload {self.name}: its metric_sums returned"
                                f" {', '.join(map(repr, map(str, sums))) or 'nothing'}; its metrics are"
                                f" {', '.join(map(repr, self.metrics))}"
                                + (f" (missing {', '.join(missing)})" if missing else "")
                                + (f" (not declared: {', '.join(extra)})" if extra else ""))
        for name, value in sums.items():
            shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
            if shape != () or dtype is None or not (jnp.issubdtype(dtype, jnp.floating)
                                                    or jnp.issubdtype(dtype, jnp.integer)):
                raise WorkloadError(f"workload {self.name}: its metric_sums gave {name!r} as"
                                    f" {_described(value)}; expected a real scalar (the sum"
                                    " over the examples)")
        return dict(sums)

    @property
    def model_class(self) -> type | None:
        return getattr(self.model, "model_class", None)

    def at_width(self, width: int) -> Workload:
        if self.width is None:
            raise UserError(f"workload {self.name} has no width to scale; workloads that do:"
                            f" {', '.join(n for n in names() if _registry[n].width) or 'none'}")
        if not 1 <= width <= MAX_WIDTH:
            raise UserError(f"width {width if width <= MAX_WIDTH else 'over ' + str(MAX_WIDTH)}"
                            f" of {self.name} is out of range; expected 1 to {MAX_WIDTH}")
        base = self.base or self.name
        return replace(self, name=f"{base}@w{width}", width=width, base=base)


class WorkloadError(TypeError):
    """A workload's model, loss or metrics broke their contract: the cell fails with this
    line (a plugin's bug, found while tracing), the run goes on."""


def _described(value) -> str:
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is None:
        return type(value).__name__
    return f"an array of shape {tuple(shape)} and dtype {dtype}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def _where(exc: BaseException, function) -> str:
    """' (file, line N)': the deepest frame of the traceback in the function's file."""
    import traceback

    file = getattr(getattr(function, "__code__", None), "co_filename", None)
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if file and f.filename == file]
    return f" ({file}, line {frames[-1].lineno})" if frames else ""


def _problems(w: Workload) -> list[str]:
    found = []
    # a registered name is plain; only `at_width` makes `<base>@w<width>` (never a plugin,
    # whose '@w...' would shadow the width syntax or smuggle markup past this check)
    base = w.base or w.name
    if not isinstance(base, str) or not _NAME.fullmatch(base) or len(base) > MAX_NAME \
            or (w.base and w.name != f"{w.base}@w{w.width}"):
        found.append(f"a workload name is 1 to {MAX_NAME} lowercase letters, digits and . _ + - :,"
                     " starting with a letter or digit (no spaces, no path separators, no"
                     " '@': `<name>@w<width>` is how a width is asked for)")
    if "loss" not in w.metrics:
        found.append("its metrics must include 'loss' (the loss summed over the examples)")
    for key, value in (("batch_size", w.batch_size), ("steps", w.steps), ("eval_every", w.eval_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            found.append(f"{key} must be a positive integer, not {value!r}")
    if w.width is not None and (not isinstance(w.width, int) or isinstance(w.width, bool)
                                or not 1 <= w.width <= MAX_WIDTH):
        found.append(f"width must be an integer from 1 to {MAX_WIDTH} or None, not {w.width!r}")
    for name, direction in w.metrics.items():
        if direction not in ("min", "max", None):
            found.append(f"metric {name!r}: direction must be 'min', 'max' or None, not {direction!r}")
        if not re.fullmatch(r"[a-z][a-z0-9_]*", str(name)):
            found.append(f"metric name {name!r}: lowercase letters, digits and _ only")
    if not isinstance(w.target, Target):
        found.append("its target must be a Target(metric, value, direction)")
        return found
    split, _, metric = w.target.metric.partition("_")
    if split != "val" or metric not in w.metrics:
        found.append(f"the target must be a validation metric (val_{'|val_'.join(w.metrics)}),"
                     f" not {w.target.metric!r}")
    elif w.target.direction != w.metrics[metric]:
        found.append(f"{metric} is better when {w.metrics[metric]}imised; the target says"
                     f" {w.target.direction}")
    if not math.isfinite(w.target.value):
        found.append(f"the target value must be finite, not {w.target.value}")
    return found


_registry: dict[str, Workload] = {}


def register_workload(name: str, *, data: Loader | str, target: Target, batch_size: int,
                      steps: int, eval_every: int, **fields) -> Callable:
    """Decorate a model factory: `@register_workload("name", data=..., target=..., ...)`.
    `fields` are the other `Workload` fields (loss, metric_sums, metrics, width, landscape,
    description, reference)."""

    def decorator(model):
        source = inspect.getsourcefile(model) or ""
        register(Workload(name, data, model, target, batch_size, steps, eval_every,
                          source=source, **fields))
        return model

    return decorator


def register(workload: Workload) -> Workload:
    if workload.name in _registry:
        raise RegistryError(f"workload {workload.name!r} is registered already"
                            f" ({_registry[workload.name].source or 'built in'})")
    if not workload.source:
        workload = replace(workload, source=inspect.getsourcefile(workload.model) or "")
    _registry[workload.name] = workload
    return workload


def unregister(name: str) -> None:
    _registry.pop(name, None)


def names() -> list[str]:
    return sorted(_registry)


def get(name: str) -> Workload:
    """The workload `name`, or `<name>@w<width>` for a registered workload with a width."""
    if name in _registry:
        return _registry[name]
    base, at, width = name.rpartition("@w")
    if at and base in _registry:
        # one spelling per width: `@w064` would be a second name (and cell) for `@w64`
        if not re.fullmatch(r"0|[1-9][0-9]*", width):
            raise UserError(f"workload '{name}': the width after '@w' must be a whole number"
                            f" from 1 to {MAX_WIDTH} without leading zeros, e.g. {base}@w64")
        return _registry[base].at_width(int(width) if len(width) <= 9 else MAX_WIDTH + 1)
    raise UserError(f"unknown workload '{name}'{did_you_mean(name, _registry)};"
                    " see `optbench list workloads`")
