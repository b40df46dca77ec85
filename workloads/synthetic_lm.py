"""A language model whose best possible loss is known exactly.

The text is sampled from a random but fixed order-2 Markov chain over `VOCAB` = 16 tokens:
for every context (a, b) the next token's distribution P(. | a, b) is drawn once, from
`PROCESS_SEED`, as 0.999 Dirichlet(`ALPHA` = 0.25, ..., 0.25) + 0.001 uniform (sparse-ish:
a few likely tokens per context; the uniform floor makes every transition possible, so the
chain is irreducible and aperiodic). Each sequence has `SEQ_LEN` + 1 = 33 tokens and starts
from the chain's stationary distribution over pairs, pi(a, b) (the solution of
pi(b, c) = sum_a pi(a, b) P(c | a, b)), so it is stationary throughout.

The model (a decoder-only transformer, `models.Transformer`, 2 layers) reads tokens
0..31 and predicts tokens 1..32; at position t it has seen tokens 0..t. Every position is
scored, and the best possible prediction is known exactly at each:

- position 0 (one token of context): P(x1 | x0) = pi(x0, x1) / pi1(x0), expected loss
  H(X1 | X0) = H(pi) - H(pi1), where pi1 is pi's marginal;
- positions t >= 1: P(x_{t+1} | x_0..x_t) = P(x_{t+1} | x_{t-1}, x_t) (order 2), expected
  loss the entropy rate h = sum_{a,b} pi(a, b) H(P(. | a, b)).

All of it is computed in float64 from the transition table (`MarkovProcess`). For this
process: h = ENTROPY_RATE = 1.7406 nats per token (log 16 = 2.7726 for a uniform guess),
H(X1 | X0) = 2.6386 nats, so the best expected loss per sequence (the mean over its 32
positions) is OPTIMAL_LOSS = (H(X1|X0) + 31 h) / 32 = 1.7686 nats, and the best expected
accuracy BAYES_ACCURACY = 0.3788 (figures to 4 decimals; tests check them).

The dataset's targets are whole sequences (33 tokens; inputs are the first 32), so the
metrics can look up the exact conditional probability of every target token:

- loss: the model's cross-entropy per token in nats, averaged over the 32 positions of a
  sequence (summed over sequences; the host divides by their number);
- excess_loss: per sequence, the mean over its positions of the model's cross-entropy minus
  the true process's own (-log P(token | context)) on the same tokens: the empirical KL
  divergence from the true conditionals. Its expectation is exactly loss - OPTIMAL_LOSS
  (and, on positions >= 1, loss - h), without the sampling noise of the split's own
  empirical entropy; the true process's predictions score 0 exactly;
- accuracy: the fraction of positions whose most likely token is right (the true process's
  own predictions reach BAYES_ACCURACY).
"""
from __future__ import annotations

import functools

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from bench.records import Target
from bench.train.data import Dataset
from models import Transformer
from workloads.registry import register_workload

VOCAB = 16
ALPHA = 0.25
FLOOR = 1e-3  # weight of the uniform distribution mixed into every context's
PROCESS_SEED = 0
DATA_SEED = 1
SEQ_LEN = 32  # the model's input length; sequences hold SEQ_LEN + 1 tokens
SPLITS = {"train": 16384, "val": 2048, "test": 2048}
WIDTH = 64  # d_model: 2 heads of 32, MLP 256
LAYERS = 2


class MarkovProcess:
    """A stationary order-2 Markov chain given by its transition table
    `cond[a, b, c] = P(x_{t+1} = c | x_{t-1} = a, x_t = b)` (float64, rows summing to 1)."""

    def __init__(self, cond: np.ndarray):
        cond = np.asarray(cond, dtype=np.float64)
        vocab = cond.shape[0]
        if cond.shape != (vocab, vocab, vocab) or not np.allclose(cond.sum(-1), 1.0):
            raise ValueError("cond must be (V, V, V) with rows summing to 1")
        self.cond, self.vocab = cond, vocab
        self.pair = self._stationary_pairs()  # pi(a, b)
        self.single = self.pair.sum(0)  # pi1(b), the marginal of either token
        self.first = self.pair / self.single[:, None]  # P(x1 = c | x0 = b) = pi(b, c) / pi1(b)

    @classmethod
    def random(cls, vocab: int, alpha: float, floor: float, seed: int) -> MarkovProcess:
        rng = np.random.default_rng(seed)
        drawn = rng.dirichlet(np.full(vocab, alpha), size=(vocab, vocab))
        return cls((1 - floor) * drawn + floor / vocab)

    def _stationary_pairs(self) -> np.ndarray:
        """Solve pi M = pi, sum(pi) = 1 for the chain on pairs (a, b) -> (b, c)."""
        v = self.vocab
        m = np.zeros((v * v, v * v))
        for a in range(v):
            for b in range(v):
                m[a * v + b, b * v:(b + 1) * v] = self.cond[a, b]
        system = np.vstack([m.T - np.eye(v * v), np.ones((1, v * v))])
        rhs = np.zeros(v * v + 1)
        rhs[-1] = 1.0
        pi, *_ = np.linalg.lstsq(system, rhs, rcond=None)
        if pi.min() < -1e-12 or not np.allclose(pi @ m, pi, atol=1e-12):
            raise ValueError("no unique stationary distribution")
        pi = np.clip(pi, 0.0, None)
        return (pi / pi.sum()).reshape(v, v)

    @property
    def entropy_rate(self) -> float:
        """h = sum_{a,b} pi(a, b) H(P(. | a, b)), nats per token."""
        return float(np.sum(self.pair * _entropy(self.cond)))

    @property
    def first_entropy(self) -> float:
        """H(X1 | X0) = sum_b pi1(b) H(P(x1 | x0 = b)), nats."""
        return float(np.sum(self.single * _entropy(self.first)))

    def optimal_loss(self, positions: int) -> float:
        """The best expected mean loss over positions 0..positions-1 (see the docstring)."""
        return (self.first_entropy + (positions - 1) * self.entropy_rate) / positions

    def bayes_accuracy(self, positions: int) -> float:
        first = float(np.sum(self.single * self.first.max(-1)))
        later = float(np.sum(self.pair * self.cond.max(-1)))
        return (first + (positions - 1) * later) / positions

    def sample(self, count: int, length: int, rng: np.random.Generator) -> np.ndarray:
        """(count, length) stationary sequences."""
        v = self.vocab
        tokens = np.empty((count, length), dtype=np.int64)
        start = rng.choice(v * v, size=count, p=self.pair.ravel())
        tokens[:, 0], tokens[:, 1] = start // v, start % v
        cumulative = np.cumsum(self.cond, axis=-1)
        for t in range(2, length):
            row = cumulative[tokens[:, t - 2], tokens[:, t - 1]]
            tokens[:, t] = np.minimum((rng.random((count, 1)) > row).sum(-1), v - 1)
        return tokens

    def log_probs(self, tokens: np.ndarray) -> np.ndarray:
        """(n, length) sequences -> (n, length - 1): log P(token t+1 | tokens 0..t)."""
        first = np.log(self.first[tokens[:, 0], tokens[:, 1]])[:, None]
        later = np.log(self.cond[tokens[:, :-2], tokens[:, 1:-1], tokens[:, 2:]])
        return np.concatenate([first, later], axis=1)


def _entropy(p: np.ndarray) -> np.ndarray:
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


@functools.cache
def process() -> MarkovProcess:
    return MarkovProcess.random(VOCAB, ALPHA, FLOOR, PROCESS_SEED)


ENTROPY_RATE = process().entropy_rate
OPTIMAL_LOSS = process().optimal_loss(SEQ_LEN)
BAYES_ACCURACY = process().bayes_accuracy(SEQ_LEN)


def synthetic_text(data_dir=None) -> Dataset:
    """Inputs: tokens 0..31 of each sequence; targets: the whole 33-token sequence."""
    rng = np.random.default_rng(DATA_SEED)
    splits = {name: process().sample(count, SEQ_LEN + 1, rng) for name, count in SPLITS.items()}
    parts = [part for name in SPLITS for part in (splits[name][:, :-1], splits[name])]
    return Dataset("synthetic-text", *parts, num_classes=VOCAB)


def _true_log_probs(sequences):
    """(n, SEQ_LEN + 1) int sequences -> (n, SEQ_LEN) float32 exact log-probabilities."""
    proc = process()
    first = jnp.asarray(np.log(proc.first), jnp.float32)
    later = jnp.asarray(np.log(proc.cond), jnp.float32)
    s = sequences
    return jnp.concatenate([first[s[:, 0], s[:, 1]][:, None],
                            later[s[:, :-2], s[:, 1:-1], s[:, 2:]]], axis=1)


def lm_loss(logits, sequences):
    """Mean cross-entropy per token over the batch (every position)."""
    return optax.softmax_cross_entropy_with_integer_labels(logits, sequences[:, 1:]).mean()


def lm_sums(logits, sequences):
    targets = sequences[:, 1:]
    losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)  # (n, SEQ_LEN)
    correct = jnp.argmax(logits, -1) == targets
    return {"loss": losses.mean(1).sum(),
            "excess_loss": (losses + _true_log_probs(sequences)).mean(1).sum(),
            "accuracy": correct.mean(1).sum()}


REFERENCE = (f"entropy rate {ENTROPY_RATE:.4f} nats/token; val excess loss at the default 3000"
             " steps (seed 0): Adam lr 3e-3 0.043 (0.051 at step 2000), Lion lr 3e-4 0.038;"
             " Adam lr 1e-3 0.053 at step 2000")


@register_workload(
    "synthetic-lm", data=synthetic_text, target=Target("val_excess_loss", 0.05, "min"),
    batch_size=64, steps=3000, eval_every=100, width=WIDTH, loss=lm_loss, metric_sums=lm_sums,
    metrics={"loss": "min", "excess_loss": "min", "accuracy": "max"},
    description=(f"language model on an order-2 Markov chain over {VOCAB} tokens (entropy rate"
                 f" {ENTROPY_RATE:.4f} nats), {LAYERS}-layer transformer (d_model {WIDTH}),"
                 f" {SEQ_LEN} positions; excess_loss = loss - the exact optimum"),
    reference=REFERENCE)
def synthetic_lm(data: Dataset, rngs: nnx.Rngs, width: int):
    return Transformer(VOCAB, SEQ_LEN, VOCAB, d_model=width, num_layers=LAYERS, rngs=rngs)


synthetic_lm.model_class = Transformer
