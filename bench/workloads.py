"""Named workloads: a dataset, a model, a loss, a batch size, a step budget, an eval
cadence and a target on a validation metric (the point time-to-target is measured at)."""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from flax import nnx

from bench.data import Dataset
from bench.errors import UserError
from optimizers.registry import did_you_mean
from models import CNN, MLP, LogisticRegression

ModelFactory = Callable[[Dataset, nnx.Rngs], nnx.Module]


@dataclass(frozen=True)
class Workload:
    name: str
    dataset: str
    model: ModelFactory
    description: str
    batch_size: int
    steps: int
    eval_every: int
    target_metric: str  # a validation metric recorded in the curves
    target_value: float  # reached when the metric is >= this (accuracy) ...
    loss: str = "cross_entropy"

    @property
    def target_higher_is_better(self) -> bool:
        return not self.target_metric.endswith("loss")


def _flat_size(data: Dataset) -> int:
    return math.prod(data.input_shape)


def _mlp(hidden):
    def make(data: Dataset, rngs: nnx.Rngs):
        return MLP(_flat_size(data), hidden, data.num_classes, rngs=rngs)
    return make


def _logreg(data: Dataset, rngs: nnx.Rngs):
    return LogisticRegression(_flat_size(data), data.num_classes, rngs=rngs)


def _cnn(channels, kernels, strides):
    def make(data: Dataset, rngs: nnx.Rngs):
        shape = data.input_shape if len(data.input_shape) > 1 else (*data.input_shape, 1)
        return CNN(shape, data.num_classes, channels=channels, kernels=kernels,
                   strides=strides, rngs=rngs)
    return make


WORKLOADS: dict[str, Workload] = {w.name: w for w in [
    # The MNIST-1D authors' models and protocol (batch 100, 6000 steps).
    Workload("mnist1d-mlp", "mnist1d", _mlp((100, 100)), "MLP 40-100-100-10 on MNIST-1D",
             batch_size=100, steps=6000, eval_every=250, target_metric="val_accuracy",
             target_value=0.60),
    Workload("mnist1d-cnn", "mnist1d", _cnn((25, 25, 25), (5, 3, 3), (2, 2, 2)),
             "1-D CNN, 3 conv layers of 25 channels (5,210 parameters), on MNIST-1D",
             batch_size=100, steps=6000, eval_every=250, target_metric="val_accuracy",
             target_value=0.85),
    Workload("mnist1d-logreg", "mnist1d", _logreg, "logistic regression on MNIST-1D",
             batch_size=100, steps=6000, eval_every=250, target_metric="val_accuracy",
             target_value=0.25),
    Workload("digits-mlp", "digits", _mlp((64,)), "MLP 64-64-10 on sklearn digits (8x8)",
             batch_size=64, steps=1500, eval_every=250, target_metric="val_accuracy",
             target_value=0.95),
    Workload("digits-cnn", "digits", _cnn((16, 32), (3, 3), (1, 2)),
             "2-D CNN (16, 32 channels) on sklearn digits (8x8)",
             batch_size=64, steps=1500, eval_every=250, target_metric="val_accuracy",
             target_value=0.97),
    Workload("mnist-cnn", "mnist", _cnn((16, 32), (3, 3), (2, 2)),
             "2-D CNN (16, 32 channels, stride 2) on MNIST; needs --data-dir",
             batch_size=128, steps=3000, eval_every=500, target_metric="val_accuracy",
             target_value=0.98),
    Workload("fashion-mnist-mlp", "fashion-mnist", _mlp((256, 256)),
             "MLP 784-256-256-10 on Fashion-MNIST; needs --data-dir",
             batch_size=128, steps=3000, eval_every=500, target_metric="val_accuracy",
             target_value=0.85),
    # Seconds to train: for tests and smoke runs.
    Workload("synthetic-mlp", "synthetic", _mlp((32,)), "MLP on 4 Gaussian blobs (tests)",
             batch_size=32, steps=200, eval_every=50, target_metric="val_accuracy",
             target_value=0.9),
    Workload("synthetic-logreg", "synthetic", _logreg, "logistic regression on 4 Gaussian blobs",
             batch_size=32, steps=200, eval_every=50, target_metric="val_accuracy",
             target_value=0.9),
]}


def get(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise UserError(f"unknown workload '{name}'{did_you_mean(name, WORKLOADS)};"
                        " see `optbench list workloads`") from None


def names() -> list[str]:
    return sorted(WORKLOADS)
