"""Image and signal classifiers: the MNIST-1D authors' models and protocol, sklearn digits,
MNIST / Fashion-MNIST from files, and seconds-long synthetic ones for tests."""
from __future__ import annotations

import math

from flax import nnx

from bench.records import Target
from bench.train.data import Dataset
from models import CNN, MLP, LogisticRegression
from workloads.registry import register_workload


def _flat_size(data: Dataset) -> int:
    return math.prod(data.input_shape)


def _accuracy(value: float) -> Target:
    return Target("val_accuracy", value, "max")


def _mlp(depth: int, residual: bool = False):
    """An MLP of `depth` hidden layers of `width` units."""
    def make(data: Dataset, rngs: nnx.Rngs, width: int):
        return MLP(_flat_size(data), (width,) * depth, data.num_classes, residual=residual,
                   rngs=rngs)
    make.model_class = MLP
    return make


def _logreg(data: Dataset, rngs: nnx.Rngs):
    return LogisticRegression(_flat_size(data), data.num_classes, rngs=rngs)


_logreg.model_class = LogisticRegression


def _cnn(channels, kernels, strides):
    """A CNN whose layers' channels scale with `width` (the first layer's channel count)."""
    def make(data: Dataset, rngs: nnx.Rngs, width: int):
        shape = data.input_shape if len(data.input_shape) > 1 else (*data.input_shape, 1)
        scaled = tuple(max(1, round(c * width / channels[0])) for c in channels)
        return CNN(shape, data.num_classes, channels=scaled, kernels=kernels, strides=strides,
                   rngs=rngs)
    make.model_class = CNN
    return make


def _register(name, data, model, description, *, width, batch_size, steps, eval_every,
              target, reference=""):
    register_workload(name, data=data, target=target, batch_size=batch_size, steps=steps,
                      eval_every=eval_every, description=description, width=width,
                      reference=reference)(model)


# The MNIST-1D authors' models and protocol (batch 100, 6000 steps).
_register("mnist1d-mlp", "mnist1d", _mlp(2, residual=True),
          "the MNIST-1D authors' MLP 40-100-100-10 (residual second layer)", width=100,
          batch_size=100, steps=6000, eval_every=250, target=_accuracy(0.60))
_register("mnist1d-cnn", "mnist1d", _cnn((25, 25, 25), (5, 3, 3), (2, 2, 2)),
          "1-D CNN, 3 conv layers of 25 channels (5,210 parameters), on MNIST-1D", width=25,
          batch_size=100, steps=6000, eval_every=250, target=_accuracy(0.85))
_register("mnist1d-logreg", "mnist1d", _logreg, "logistic regression on MNIST-1D", width=None,
          batch_size=100, steps=6000, eval_every=250, target=_accuracy(0.25))
_register("digits-mlp", "digits", _mlp(1), "MLP 64-64-10 on sklearn digits (8x8)", width=64,
          batch_size=64, steps=1500, eval_every=250, target=_accuracy(0.95))
_register("digits-cnn", "digits", _cnn((16, 32), (3, 3), (1, 2)),
          "2-D CNN (16, 32 channels) on sklearn digits (8x8)", width=16,
          batch_size=64, steps=1500, eval_every=250, target=_accuracy(0.97))
_register("mnist-cnn", "mnist", _cnn((16, 32), (3, 3), (2, 2)),
          "2-D CNN (16, 32 channels, stride 2) on MNIST; needs --data-dir", width=16,
          batch_size=128, steps=3000, eval_every=500, target=_accuracy(0.98))
_register("fashion-mnist-mlp", "fashion-mnist", _mlp(2),
          "MLP 784-256-256-10 on Fashion-MNIST; needs --data-dir", width=256,
          batch_size=128, steps=3000, eval_every=500, target=_accuracy(0.85))
# Seconds to train: for tests and smoke runs.
_register("synthetic-mlp", "synthetic", _mlp(1), "MLP on 4 Gaussian blobs (tests)", width=32,
          batch_size=32, steps=200, eval_every=50, target=_accuracy(0.9))
_register("synthetic-logreg", "synthetic", _logreg, "logistic regression on 4 Gaussian blobs",
          width=None, batch_size=32, steps=200, eval_every=50, target=_accuracy(0.9))
