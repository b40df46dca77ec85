"""Flax NNX models for optbench workloads.

Every model is an `nnx.Module` whose only state is its parameters; the engine splits it once
with `nnx.split` and trains the `(graphdef, params)` pair with plain JAX transforms.
"""
from models.cnn import CNN, PatchConv
from models.gru import GRU
from models.linear import Linear, Point
from models.logreg import LogisticRegression
from models.mlp import MLP
from models.transformer import Transformer

__all__ = ["CNN", "GRU", "Linear", "LogisticRegression", "MLP", "PatchConv", "Point",
           "Transformer"]
