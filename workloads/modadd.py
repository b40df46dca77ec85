"""Grokking: modular addition a + b mod p with a one-layer transformer.

The setup of Power et al. 2022 ("Grokking: generalization beyond overfitting on small
algorithmic datasets", arXiv 2201.02177) as Nanda et al. 2023 ("Progress measures for
grokking via mechanistic interpretability", arXiv 2301.05217) train it: every pair (a, b),
0 <= a, b < p, is the 3-token input "a b =" (token p is "="), and the model predicts
(a + b) mod p at the last position. A fixed, seeded fraction of the p^2 pairs is the
training set; the other pairs are split in half into validation and test. Training is
full batch (the whole training set every step). Loss and accuracy are on the answer token
only (the logits at the "=" position, over the p residues).

With AdamW at learning rate 1e-3 and weight decay 1.0 the model fits the training set by
step 200-300 and generalises (validation accuracy >= 0.99) at steps 700-1400 (seeds 0-2);
Adam at the same learning rate fits it as fast and stays near 0.49 validation accuracy (to
step 3000 for seed 0, 2000 for seed 1). Measured with `tools/transformer_figures.py grok`
on this project's 2-core CPU, about 0.09 s per full-batch step (one seed, no other load), so
the default 2000 steps take about 3 minutes per seed.
"""
from __future__ import annotations

import numpy as np
from flax import nnx

from bench.records import Target
from bench.train.data import Dataset
from models import Transformer
from workloads.registry import register_workload

P = 97
TRAIN_FRACTION = 0.5
SPLIT_SEED = 0
WIDTH = 64  # d_model: 2 heads of 32, MLP 256 (Nanda et al. 2023: 128, 4 heads, 512)
TRAIN_SIZE = int(round(TRAIN_FRACTION * P * P))


def modular_addition(data_dir=None, p: int = P, train_fraction: float = TRAIN_FRACTION,
                     seed: int = SPLIT_SEED) -> Dataset:
    """All p^2 pairs as "a b =" token triples, labels (a + b) mod p; a seeded permutation
    puts round(train_fraction p^2) of them in train, the rest half in validation, half in
    test."""
    a, b = (g.ravel() for g in np.meshgrid(np.arange(p), np.arange(p), indexing="ij"))
    x = np.stack([a, b, np.full_like(a, p)], axis=1)
    y = (a + b) % p
    order = np.random.default_rng(seed).permutation(p * p)
    n_train = int(round(train_fraction * p * p))
    n_val = (p * p - n_train) // 2
    train, val, test = np.split(order, [n_train, n_train + n_val])
    return Dataset("modadd", x[train], y[train], x[val], y[val], x[test], y[test],
                   num_classes=p)


REFERENCE = ("AdamW (lr 1e-3, weight decay 1.0): train accuracy >= 0.99 at step 200-300,"
             " validation accuracy >= 0.99 at steps 1400, 1300, 700 (seeds 0, 1, 2);"
             " Adam (lr 1e-3): train accuracy >= 0.99 at step 300, validation accuracy"
             " stays near 0.49 (seed 0 to step 3000, seed 1 to 2000)")


@register_workload(
    "modadd-transformer", data=modular_addition, target=Target("val_accuracy", 0.99, "max"),
    batch_size=TRAIN_SIZE, steps=2000, eval_every=100, width=WIDTH,
    description=f"grokking: (a + b) mod {P}, 1-layer transformer (d_model {WIDTH}), "
                f"{TRAIN_FRACTION:.0%} of the pairs for training, full batch",
    reference=REFERENCE)
def modadd_transformer(data: Dataset, rngs: nnx.Rngs, width: int):
    return Transformer(P + 1, 3, P, d_model=width, num_layers=1, last_only=True, rngs=rngs)


modadd_transformer.model_class = Transformer
