"""Named workloads: a dataset, a model, an objective (loss, metrics, target), a batch size,
a step budget and an eval cadence.

A workload owns its objective. The engine trains on `loss`; evaluation sums `metrics` over
the examples of a split on the device (counts stay integers) and divides by the number of
examples on the host in float64, so 240 correct out of 400 is exactly 0.6. Every stage
downstream takes the direction of "better" from the `Target`, never from a metric's name.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from bench.errors import UserError
from bench.records import Direction, Target
from bench.train.data import Dataset
from models import CNN, MLP, LogisticRegression
from optimizers.registry import did_you_mean

ModelFactory = Callable[[Dataset, nnx.Rngs], nnx.Module]
# (logits, labels) -> {metric name: the metric summed over the examples}
MetricSums = Callable[[jax.Array, jax.Array], dict[str, jax.Array]]


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy over the batch: the training loss of classifiers."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def classification_sums(logits: jax.Array, labels: jax.Array) -> dict[str, jax.Array]:
    """Summed cross-entropy (float32) and the number of correct predictions (int32)."""
    return {"loss": optax.softmax_cross_entropy_with_integer_labels(logits, labels).sum(),
            "accuracy": jnp.sum(jnp.argmax(logits, -1) == labels, dtype=jnp.int32)}


# The metrics every classification workload reports, and which way is better.
CLASSIFICATION_METRICS: dict[str, Direction] = {"loss": "min", "accuracy": "max"}


@dataclass(frozen=True)
class Workload:
    name: str
    dataset: str
    model: ModelFactory
    description: str
    batch_size: int
    steps: int
    eval_every: int
    target: Target  # on a validation metric: `val_<metric>`
    loss: Callable[[jax.Array, jax.Array], jax.Array] = cross_entropy
    metric_sums: MetricSums = classification_sums
    metrics: dict[str, Direction] = field(default_factory=lambda: dict(CLASSIFICATION_METRICS))

    def __post_init__(self):
        split, _, metric = self.target.metric.partition("_")
        if split != "val" or metric not in self.metrics:
            raise ValueError(f"workload {self.name}: the target must be a validation metric"
                             f" (val_{'|val_'.join(self.metrics)}), not {self.target.metric!r}")
        if self.target.direction != self.metrics[metric]:
            raise ValueError(f"workload {self.name}: {metric} is better when"
                             f" {self.metrics[metric]}imised; the target says otherwise")


def _flat_size(data: Dataset) -> int:
    return math.prod(data.input_shape)


def _mlp(hidden, residual=False):
    def make(data: Dataset, rngs: nnx.Rngs):
        return MLP(_flat_size(data), hidden, data.num_classes, residual=residual, rngs=rngs)
    make.model_class = MLP
    return make


def _logreg(data: Dataset, rngs: nnx.Rngs):
    return LogisticRegression(_flat_size(data), data.num_classes, rngs=rngs)


_logreg.model_class = LogisticRegression


def _cnn(channels, kernels, strides):
    def make(data: Dataset, rngs: nnx.Rngs):
        shape = data.input_shape if len(data.input_shape) > 1 else (*data.input_shape, 1)
        return CNN(shape, data.num_classes, channels=channels, kernels=kernels,
                   strides=strides, rngs=rngs)
    make.model_class = CNN
    return make


def _accuracy(value: float) -> Target:
    return Target("val_accuracy", value, "max")


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    # The MNIST-1D authors' models and protocol (batch 100, 6000 steps).
    Workload("mnist1d-mlp", "mnist1d", _mlp((100, 100), residual=True),
             "the MNIST-1D authors' MLP 40-100-100-10 (residual second layer)",
             batch_size=100, steps=6000, eval_every=250, target=_accuracy(0.60)),
    Workload("mnist1d-cnn", "mnist1d", _cnn((25, 25, 25), (5, 3, 3), (2, 2, 2)),
             "1-D CNN, 3 conv layers of 25 channels (5,210 parameters), on MNIST-1D",
             batch_size=100, steps=6000, eval_every=250, target=_accuracy(0.85)),
    Workload("mnist1d-logreg", "mnist1d", _logreg, "logistic regression on MNIST-1D",
             batch_size=100, steps=6000, eval_every=250, target=_accuracy(0.25)),
    Workload("digits-mlp", "digits", _mlp((64,)), "MLP 64-64-10 on sklearn digits (8x8)",
             batch_size=64, steps=1500, eval_every=250, target=_accuracy(0.95)),
    Workload("digits-cnn", "digits", _cnn((16, 32), (3, 3), (1, 2)),
             "2-D CNN (16, 32 channels) on sklearn digits (8x8)",
             batch_size=64, steps=1500, eval_every=250, target=_accuracy(0.97)),
    Workload("mnist-cnn", "mnist", _cnn((16, 32), (3, 3), (2, 2)),
             "2-D CNN (16, 32 channels, stride 2) on MNIST; needs --data-dir",
             batch_size=128, steps=3000, eval_every=500, target=_accuracy(0.98)),
    Workload("fashion-mnist-mlp", "fashion-mnist", _mlp((256, 256)),
             "MLP 784-256-256-10 on Fashion-MNIST; needs --data-dir",
             batch_size=128, steps=3000, eval_every=500, target=_accuracy(0.85)),
    # Seconds to train: for tests and smoke runs.
    Workload("synthetic-mlp", "synthetic", _mlp((32,)), "MLP on 4 Gaussian blobs (tests)",
             batch_size=32, steps=200, eval_every=50, target=_accuracy(0.9)),
    Workload("synthetic-logreg", "synthetic", _logreg, "logistic regression on 4 Gaussian blobs",
             batch_size=32, steps=200, eval_every=50, target=_accuracy(0.9)),
]}


def get(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UserError(f"unknown workload '{name}'{did_you_mean(name, WORKLOADS)};"
                        " see `optbench list workloads`") from None


def names() -> list[str]:
    return sorted(WORKLOADS)
