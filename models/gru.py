"""A (bidirectional) GRU classifier over a sequence, its time loop a `jax.lax.scan`.

The MNIST-1D authors' GRU (Greydanus, 2020, "Scaling down deep learning", arXiv:2011.14439;
`GRUBase` in `notebooks/models.py` of github.com/greydanus/mnist1d) reads the 40 samples of a
signal one scalar per time step with a bidirectional `torch.nn.GRU` of hidden size 6, and
classifies with one linear layer over the concatenated outputs of every time step and both
directions (2 x 6 x 40 = 480 features): `GRU(10, hidden=6, time_steps=40)` here, 5,134
parameters like theirs.

Per direction, with input x_t (in_features), state h_{t-1} (hidden, h_0 = 0), gates in
PyTorch's order (reset r, update z, candidate n) and two biases as PyTorch has them:

    r_t = sigmoid(x_t W_xr + b_xr + h_{t-1} W_hr + b_hr)
    z_t = sigmoid(x_t W_xz + b_xz + h_{t-1} W_hz + b_hz)
    n_t = tanh(x_t W_xn + b_xn + r_t * (h_{t-1} W_hn + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

The backward direction runs the same equations with its own parameters over the reversed
sequence; its output at time t is its state after reading x_{T-1} ... x_t. The read-out is
`logits = concat_t(h^fwd_t, h^bwd_t) W_o + b_o`, time-major then direction then unit, as
PyTorch's `output.reshape(batch, -1)`.

What differs from the authors' model: the read-out is an `nnx.Linear` (LeCun-normal kernel,
zero bias) where PyTorch initialises uniformly in +-1/sqrt(fan_in); the GRU's weights and
biases are initialised as PyTorch does (uniform in +-1/sqrt(hidden)), but from JAX's
generator, so no seed gives PyTorch's numbers. Their training loop (cycling through the
training set in order, batch 100) is the engine's (uniform sampling with replacement), and
the engine trains on 3,600 of the 4,000 training signals (the rest is validation).

Both directions run in the same scan step (parameters stacked on a leading direction axis),
and the input projections of every time step are one product before the scan: only
`h_{t-1} W_h` is sequential. The scan is not unrolled: on this project's 2-core CPU a
training step of the authors' model took 1.2 ms rolled and 2.7 ms with `unroll=8` (which
also compiled 4x slower).
"""
import jax
import jax.numpy as jnp
from flax import nnx

GATES = 3  # reset, update, candidate


class GRU(nnx.Module):
    """`(batch, time_steps[, in_features])` -> `(batch, num_classes)` logits.

    Parameters (D = 2 directions if bidirectional else 1, H = hidden):
    `w_x` (D, in_features, 3H), `w_h` (D, H, 3H), `b_x` and `b_h` (D, 3H), gate blocks in
    the order r, z, n along the last axis; then `readout` (D * H * time_steps -> classes).
    """

    def __init__(self, num_classes: int, *, hidden: int, time_steps: int, in_features: int = 1,
                 bidirectional: bool = True, rngs: nnx.Rngs):
        directions = 2 if bidirectional else 1
        bound = hidden ** -0.5

        def uniform(*shape):  # PyTorch's GRU initialisation
            return nnx.Param(jax.random.uniform(rngs.params(), shape, minval=-bound,
                                                maxval=bound))

        self.w_x = uniform(directions, in_features, GATES * hidden)
        self.w_h = uniform(directions, hidden, GATES * hidden)
        self.b_x = uniform(directions, GATES * hidden)
        self.b_h = uniform(directions, GATES * hidden)
        self.readout = nnx.Linear(directions * hidden * time_steps, num_classes, rngs=rngs)
        self.hidden, self.time_steps, self.in_features = hidden, time_steps, in_features
        self.directions = directions

    def __call__(self, x: jax.Array) -> jax.Array:
        batch = x.shape[0]
        x = x.reshape(batch, self.time_steps, self.in_features)
        # (time, direction, batch, 3H): every step's input projection at once
        inputs = jnp.einsum("bti,dig->tdbg", x, self.w_x[...]) + self.b_x[...][None, :, None]
        if self.directions == 2:  # the backward direction reads the sequence reversed
            inputs = jnp.stack([inputs[:, 0], inputs[::-1, 1]], axis=1)
        w_h, b_h = self.w_h[...], self.b_h[...][:, None]

        def step(h, x_gates):  # h (D, batch, H), x_gates (D, batch, 3H)
            h_gates = jnp.einsum("dbh,dhg->dbg", h, w_h) + b_h
            x_r, x_z, x_n = jnp.split(x_gates, GATES, axis=-1)
            h_r, h_z, h_n = jnp.split(h_gates, GATES, axis=-1)
            r = jax.nn.sigmoid(x_r + h_r)
            z = jax.nn.sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * h_n)
            h = (1 - z) * n + z * h
            return h, h

        h0 = jnp.zeros((self.directions, batch, self.hidden), inputs.dtype)
        _, outputs = jax.lax.scan(step, h0, inputs)  # (time, D, batch, H)
        if self.directions == 2:  # back to forward time for the backward direction
            outputs = jnp.stack([outputs[:, 0], outputs[::-1, 1]], axis=1)
        features = outputs.transpose(2, 0, 1, 3).reshape(batch, -1)  # (batch, time * D * H)
        return self.readout(features)
