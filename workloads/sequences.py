"""Sequence models: the MNIST-1D authors' GRU, reading a signal one sample per time step."""
from __future__ import annotations

from flax import nnx

from bench.records import Target
from bench.train.data import Dataset
from models import GRU
from workloads.registry import register_workload

# The authors' protocol (Adam 1e-2, batch 100, 6000 steps): 91% test accuracy in the paper,
# 89.1% in their notebook's rerun. Measured here (engine.train, seeds 0-1-2 in one program,
# 2-core CPU): Adam (registered default, lr 1e-2) 0.893 / 0.914 / 0.920 test, validation
# accuracy 0.88 first reached at step 1000 in every seed; plain SGD (lr 0.1) 0.856 / 0.883 /
# 0.856 test, 0.88 reached at steps 5000-5500; optax:adam at lr 1e-3 0.856 / 0.839 / 0.819
# test, 0.88 never reached. Hence the target 0.88: the fast reach it early, the slow
# late or not at all.
_GRU_REFERENCE = "adam: 0.91 test accuracy (3 seeds, 0.89-0.92), 6000 steps"


@register_workload(
    "mnist1d-gru", data="mnist1d", target=Target("val_accuracy", 0.88, "max"),
    batch_size=100, steps=6000, eval_every=250, width=6,
    description="the MNIST-1D authors' GRU: bidirectional, hidden 6, one sample per step"
                " (5,134 parameters)",
    reference=_GRU_REFERENCE)
def _gru(data: Dataset, rngs: nnx.Rngs, width: int):
    """A bidirectional GRU of `width` hidden units over the signal's time steps."""
    time_steps, *features = data.input_shape
    return GRU(data.num_classes, hidden=width, time_steps=time_steps,
               in_features=features[0] if features else 1, rngs=rngs)


_gru.model_class = GRU
