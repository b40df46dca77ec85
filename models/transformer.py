"""A small decoder-only (causal) transformer.

    tokens (batch, seq) int
    h = token_embed[tokens] + position_embed[:seq]               (batch, seq, d_model)
    repeat num_layers times (pre-LayerNorm blocks):
        h = h + attention(LayerNorm(h))       causal multi-head self-attention
        h = h + mlp(LayerNorm(h))             Linear(d_model, d_mlp), ReLU, Linear(d_mlp, d_model)
    logits = unembed(LayerNorm(h))                               (batch, seq, num_outputs)

attention: one Linear(d_model, 3 d_model) (with bias) gives queries, keys and values for
`num_heads` heads of `d_model / num_heads` dimensions; scores q.k / sqrt(head_dim), position i
attends to positions 0..i only (the mask is applied before the softmax, so a later token never
changes an earlier position's output); the heads' outputs are concatenated and projected by
Linear(d_model, d_model) (with bias). The unembedding is Linear(d_model, num_outputs) without
bias. Embeddings are initialised N(0, 0.02^2) (GPT-2), linear layers with Flax's defaults
(LeCun normal kernels, zero biases), LayerNorm to scale 1, bias 0. No dropout: the module's
state is its parameters only.

From the width (d_model) alone: `num_heads = d_model // 32` (at least 1, lowered until it
divides d_model, so heads of 32 dimensions as in Nanda et al. 2023), `d_mlp = 4 d_model`.
Parameters: (vocab + max_len) d + L (12 d^2 + 13 d) + 2 d + d num_outputs
(per block: LayerNorms 4d, attention 4d^2 + 4d, MLP 8d^2 + 5d).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def default_heads(d_model: int) -> int:
    heads = max(1, d_model // 32)
    while d_model % heads:
        heads -= 1
    return heads


class CausalSelfAttention(nnx.Module):
    def __init__(self, d_model: int, num_heads: int, *, rngs: nnx.Rngs):
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nnx.Linear(d_model, 3 * d_model, rngs=rngs)
        self.out = nnx.Linear(d_model, d_model, rngs=rngs)

    def __call__(self, x: jax.Array, last_only: bool = False) -> jax.Array:
        """(batch, seq, d) -> (batch, seq, d); with `last_only`, the last position's output
        alone, (batch, 1, d), computing its query only (it attends to every position)."""
        batch, seq, d_model = x.shape
        heads, head_dim = self.num_heads, d_model // self.num_heads
        kernel, bias = self.qkv.kernel[...], self.qkv.bias[...]
        kv = (x @ kernel[:, d_model:] + bias[d_model:]).reshape(batch, seq, 2, heads, head_dim)
        k, v = kv[:, :, 0], kv[:, :, 1]  # (batch, seq, heads, head_dim)
        queries = x[:, -1:] if last_only else x
        q = (queries @ kernel[:, :d_model] + bias[:d_model]).reshape(
            batch, queries.shape[1], heads, head_dim)
        scores = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(head_dim).astype(x.dtype)
        if not last_only:
            causal = jnp.tril(jnp.ones((seq, seq), dtype=bool))
            scores = jnp.where(causal, scores, jnp.finfo(scores.dtype).min)
        weights = jax.nn.softmax(scores, axis=-1)
        mixed = jnp.einsum("bhqk,bkhd->bqhd", weights, v).reshape(batch, q.shape[1], d_model)
        return self.out(mixed)


class Block(nnx.Module):
    def __init__(self, d_model: int, num_heads: int, d_mlp: int, *, rngs: nnx.Rngs):
        self.norm_attention = nnx.LayerNorm(d_model, rngs=rngs)
        self.attention = CausalSelfAttention(d_model, num_heads, rngs=rngs)
        self.norm_mlp = nnx.LayerNorm(d_model, rngs=rngs)
        self.mlp_in = nnx.Linear(d_model, d_mlp, rngs=rngs)
        self.mlp_out = nnx.Linear(d_mlp, d_model, rngs=rngs)

    def __call__(self, h: jax.Array, last_only: bool = False) -> jax.Array:
        attended = self.attention(self.norm_attention(h), last_only)
        h = (h[:, -1:] if last_only else h) + attended
        return h + self.mlp_out(jax.nn.relu(self.mlp_in(self.norm_mlp(h))))


class Transformer(nnx.Module):
    """Decoder-only transformer: (batch, seq) token ids -> (batch, seq, num_outputs) logits,
    the logits at position i depending on tokens 0..i only. See the module docstring.

    With `last_only`, (batch, num_outputs): the last position's logits alone, the last
    block computing its query, attention output and MLP for that position only (the same
    numbers as the full model's last position, at about half the cost for 3 tokens)."""

    def __init__(self, vocab_size: int, max_len: int, num_outputs: int, *, d_model: int,
                 num_layers: int, num_heads: int | None = None, d_mlp: int | None = None,
                 last_only: bool = False, rngs: nnx.Rngs):
        num_heads = num_heads or default_heads(d_model)
        d_mlp = d_mlp or 4 * d_model
        embed_init = nnx.initializers.normal(0.02)
        self.token_embed = nnx.Embed(vocab_size, d_model, embedding_init=embed_init, rngs=rngs)
        self.position_embed = nnx.Param(embed_init(rngs.params(), (max_len, d_model)))
        self.blocks = nnx.List([Block(d_model, num_heads, d_mlp, rngs=rngs)
                                for _ in range(num_layers)])
        self.norm = nnx.LayerNorm(d_model, rngs=rngs)
        self.unembed = nnx.Linear(d_model, num_outputs, use_bias=False, rngs=rngs)
        self.last_only = last_only

    def __call__(self, tokens: jax.Array) -> jax.Array:
        seq = tokens.shape[1]
        h = self.token_embed(tokens) + self.position_embed[:seq]
        for index, block in enumerate(self.blocks):
            h = block(h, self.last_only and index == len(self.blocks) - 1)
        logits = self.unembed(self.norm(h))
        return logits[:, -1] if self.last_only else logits


def parameter_count(vocab_size: int, max_len: int, num_outputs: int, d_model: int,
                    num_layers: int, d_mlp: int | None = None) -> int:
    """The closed form of the docstring (tests check it against the module)."""
    d, m = d_model, d_mlp or 4 * d_model
    block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * m + m) + (m * d + d)
    return (vocab_size + max_len) * d + num_layers * block + 2 * d + d * num_outputs
