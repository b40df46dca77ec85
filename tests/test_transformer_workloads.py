"""The transformer model and its two workloads: modadd-transformer (grokking) and
synthetic-lm (a language model whose best loss is known exactly)."""
import itertools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import optimizers
import workloads
from bench.train import engine
from models import Transformer
from models.transformer import parameter_count
from workloads import modadd, synthetic_lm
from workloads.synthetic_lm import MarkovProcess


def count(model) -> int:
    return sum(x.size for x in jax.tree.leaves(nnx.split(model)[1]))


@pytest.fixture(scope="module")
def small():
    return Transformer(11, 8, 7, d_model=32, num_layers=2, rngs=nnx.Rngs(0))


def test_changing_a_later_token_never_changes_earlier_logits(small):
    tokens = jax.random.randint(jax.random.key(1), (4, 8), 0, 11)
    # one call (a batch of another size may round differently): block 0 the sequences,
    # block k + 1 the same sequences with token k changed
    changed = [tokens.at[:, k].set((tokens[:, k] + 1) % 11) for k in range(8)]
    logits, *others = small(jnp.concatenate([tokens, *changed])).reshape(9, 4, 8, 7)
    for position, other in enumerate(others):
        np.testing.assert_array_equal(other[:, :position], logits[:, :position])
        assert not np.allclose(other[:, position], logits[:, position])


def test_last_only_is_the_full_models_last_position(small):
    tokens = jax.random.randint(jax.random.key(2), (5, 6), 0, 11)
    last = Transformer(11, 8, 7, d_model=32, num_layers=2, last_only=True, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(last(tokens), small(tokens)[:, -1], rtol=1e-5, atol=1e-5)


def test_parameter_count_and_state_is_parameters_only(small):
    assert count(small) == parameter_count(11, 8, 7, d_model=32, num_layers=2)
    assert all(isinstance(v, nnx.Param) for _, v in nnx.iter_graph(small)
               if isinstance(v, nnx.Variable))


def test_modadd_data_holds_every_pair_once_with_its_sum():
    data = modadd.modular_addition()
    p = modadd.P
    x = np.concatenate([data.x_train, data.x_val, data.x_test])
    y = np.concatenate([data.y_train, data.y_val, data.y_test])
    assert len(data.x_train) == modadd.TRAIN_SIZE == round(modadd.TRAIN_FRACTION * p * p)
    assert abs(len(data.x_val) - len(data.x_test)) <= 1
    assert len({(a, b) for a, b, _ in x}) == p * p == len(x)
    np.testing.assert_array_equal(x[:, 2], p)
    np.testing.assert_array_equal(y, (x[:, 0] + x[:, 1]) % p)
    np.testing.assert_array_equal(modadd.modular_addition().x_train, data.x_train)  # fixed


def test_width_variant_builds_that_d_model():
    workload = workloads.get("modadd-transformer@w32")
    data = modadd.modular_addition()
    model = workload.build_model(data, nnx.Rngs(0))
    assert model.token_embed.embedding.shape == (modadd.P + 1, 32)
    assert count(model) == parameter_count(modadd.P + 1, 3, modadd.P, d_model=32, num_layers=1)
    assert model(jnp.asarray(data.x_val[:3])).shape == (3, modadd.P)
    assert workloads.get("modadd-transformer").batch_size == len(data.x_train)  # full batch
    lm = workloads.get("synthetic-lm@w32").build_model(None, nnx.Rngs(0))
    assert lm.token_embed.embedding.shape == (synthetic_lm.VOCAB, 32)


def tiny_process(seed=3, vocab=3) -> MarkovProcess:
    return MarkovProcess.random(vocab, alpha=0.7, floor=0.05, seed=seed)


def block_entropy(process: MarkovProcess, length: int) -> float:
    """H(X_0..X_{length-1}) by enumerating every sequence."""
    if length == 1:
        return float(-np.sum(process.single * np.log(process.single)))
    total = 0.0
    for seq in itertools.product(range(process.vocab), repeat=length):
        p = process.pair[seq[0], seq[1]]
        for a, b, c in zip(seq, seq[1:], seq[2:]):
            p *= process.cond[a, b, c]
        total -= p * np.log(p)
    return total


def test_entropy_rate_equals_a_brute_force_block_entropy_difference():
    process = tiny_process()
    h = [block_entropy(process, n) for n in (1, 2, 5, 6)]
    # stationary order 2: H(X_n | X_0..X_{n-1}) is the entropy rate for every n >= 2
    assert h[3] - h[2] == pytest.approx(process.entropy_rate, rel=1e-10)
    assert h[1] - h[0] == pytest.approx(process.first_entropy, rel=1e-10)
    assert process.optimal_loss(5) == pytest.approx(h[3] / 5 - h[0] / 5, rel=1e-10)


def test_entropy_rate_closed_forms():
    p = np.array([0.5, 0.25, 0.125, 0.125])
    iid = MarkovProcess(np.broadcast_to(p, (4, 4, 4)))
    assert iid.entropy_rate == pytest.approx(1.75 * np.log(2))
    assert iid.first_entropy == pytest.approx(1.75 * np.log(2))
    # a two-state chain that ignores x_{t-1}: stationary (t, s) / (s + t) in closed form
    s, t = 0.1, 0.3
    q = np.array([[1 - s, s], [t, 1 - t]])
    two_state = MarkovProcess(np.broadcast_to(q, (2, 2, 2)))
    binary = lambda r: -(r * np.log(r) + (1 - r) * np.log(1 - r))
    assert two_state.entropy_rate == pytest.approx((t * binary(s) + s * binary(t)) / (s + t))
    np.testing.assert_allclose(two_state.single, [t / (s + t), s / (s + t)])


def test_the_workloads_entropy_rate_matches_a_monte_carlo_estimate():
    process = synthetic_lm.process()
    tokens = process.sample(6000, 40, np.random.default_rng(123))
    surprise = -process.log_probs(tokens)
    later, first = surprise[:, 1:], surprise[:, 0]
    se = later.mean(1).std() / np.sqrt(len(later))
    assert abs(later.mean() - synthetic_lm.ENTROPY_RATE) < 5 * se
    assert abs(first.mean() - process.first_entropy) < 5 * first.std() / np.sqrt(len(first))
    # the figures the docstring records
    for value in (synthetic_lm.ENTROPY_RATE, process.first_entropy, synthetic_lm.OPTIMAL_LOSS,
                  synthetic_lm.BAYES_ACCURACY):
        assert f"{value:.4f}" in synthetic_lm.__doc__


def true_logits(sequences: np.ndarray) -> np.ndarray:
    process = synthetic_lm.process()
    first = process.first[sequences[:, 0]][:, None]
    later = process.cond[sequences[:, :-2], sequences[:, 1:-1]]
    return np.log(np.concatenate([first, later], axis=1))


def test_the_true_process_has_zero_excess_loss():
    data = synthetic_lm.synthetic_text()
    sequences = data.y_val
    assert data.x_val.shape == (len(sequences), synthetic_lm.SEQ_LEN)
    np.testing.assert_array_equal(data.x_val, sequences[:, :-1])
    sums = synthetic_lm.lm_sums(jnp.asarray(true_logits(sequences), jnp.float32),
                                jnp.asarray(sequences))
    n = len(sequences)
    assert abs(float(sums["excess_loss"]) / n) < 1e-5
    empirical = -synthetic_lm.process().log_probs(sequences).mean()
    assert float(sums["loss"]) / n == pytest.approx(empirical, rel=1e-5)
    # and the expectation of that loss is the exact optimum (sampling noise only)
    assert abs(float(sums["loss"]) / n - synthetic_lm.OPTIMAL_LOSS) < 0.02
    # a uniform prediction's excess loss is log V minus the true log loss
    uniform = synthetic_lm.lm_sums(jnp.zeros((n, synthetic_lm.SEQ_LEN, synthetic_lm.VOCAB)),
                                   jnp.asarray(sequences))
    assert float(uniform["excess_loss"]) / n == pytest.approx(
        np.log(synthetic_lm.VOCAB) - empirical, rel=1e-5)


def test_the_entropy_rate_is_in_the_description_and_reference():
    workload = workloads.get("synthetic-lm")
    assert f"{synthetic_lm.ENTROPY_RATE:.4f}" in workload.description
    assert workload.target.metric == "val_excess_loss" and workload.target.direction == "min"
    assert re.search(r"[0-9]", workload.reference)
    assert workloads.get("modadd-transformer").target.metric == "val_accuracy"


def test_a_short_run_lowers_the_validation_loss():
    workload = workloads.get("synthetic-lm@w32")
    spec = optimizers.get("adam")
    result = engine.train(workload, workload.load_data(), spec,
                          spec.resolve({"learning_rate": 3e-3}), steps=40, eval_every=20,
                          batch_size=32, seeds=[0], probe=False)
    val_loss, excess = result.curves["val_loss"], result.curves["val_excess_loss"]
    assert np.all(np.isfinite(val_loss)) and val_loss[-1] < val_loss[0]
    assert np.all(excess > 0) and excess[-1] < excess[0]
    # (modadd-transformer's validation loss rises while it memorises: the budget runs in
    # tools/transformer_figures.py show it grok)
