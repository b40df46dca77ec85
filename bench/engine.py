"""Train one cell: all seeds in one compiled program, steps in `lax.scan` chunks.

Per chunk of `eval_every` steps the host does exactly one call, one `block_until_ready`
and one timestamp; evaluation runs between chunks on its own clock. Compilation is AOT
(`lower().compile()`) and timed apart. Nothing here touches files.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bench.data import Dataset
from bench import monitor, schedules
from bench.records import CURVE_COLUMNS, CellResult, SeedRecord, Status, Timings, Usage
from bench.workloads import Workload
from optimizers.registry import OptimizerSpec, extra_update_args

ChunkCallback = Callable[[int, int], None]  # (steps done, total steps)


def init_params(workload: Workload, dataset: Dataset, seeds: Sequence[int]):
    """(graphdef, params stacked over seeds). Seed s initialises from fold_in(key(s), 0)."""
    states = []
    graphdef = None
    for seed in seeds:
        rngs = nnx.Rngs(params=jax.random.fold_in(jax.random.key(seed), 0))
        graphdef, state = nnx.split(workload.model(dataset, rngs))
        states.append(state)
    return graphdef, jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def data_keys(seeds: Sequence[int]) -> jax.Array:
    """Per-seed keys for minibatch sampling, independent of the init keys."""
    return jnp.stack([jax.random.fold_in(jax.random.key(s), 1) for s in seeds])


def make_loss_fn(graphdef) -> Callable:
    def loss_fn(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss_fn


def make_train_chunk(graphdef, tx: optax.GradientTransformation, batch_size: int,
                     needs: frozenset[str] = frozenset()) -> Callable:
    """chunk(params, opt_state, key, x_train, y_train, length) for one seed; vmap it over seeds."""
    loss_fn = make_loss_fn(graphdef)

    def step(carry, _, x_train, y_train):
        params, opt_state, key = carry
        key, batch_key = jax.random.split(key)
        index = jax.random.randint(batch_key, (batch_size,), 0, x_train.shape[0])
        x, y = x_train[index], y_train[index]
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        extra = extra_update_args(needs, value=loss, grad=grads,
                                  value_fn=lambda p: loss_fn(p, x, y))
        updates, opt_state = tx.update(grads, opt_state, params, **extra)
        return (optax.apply_updates(params, updates), opt_state, key), loss

    def chunk(params, opt_state, key, x_train, y_train, length: int):
        carry, losses = jax.lax.scan(lambda c, _: step(c, _, x_train, y_train),
                                     (params, opt_state, key), length=length)
        return (*carry, losses)

    return chunk


def make_evaluate(graphdef, eval_params) -> Callable:
    def metrics(model, x, y):
        logits = model(x)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        return loss, jnp.mean(jnp.argmax(logits, -1) == y)

    def evaluate(params, opt_state, x_val, y_val, x_test, y_test):
        if eval_params is not None:
            params = eval_params(opt_state, params)
        model = nnx.merge(graphdef, params)
        return (*metrics(model, x_val, y_val), *metrics(model, x_test, y_test))

    return evaluate


class SeedBatchTrainer:
    """The compiled state of one cell: parameters, optimizer state and data keys for all
    seeds, and the executables that advance and evaluate them."""

    def __init__(self, workload: Workload, dataset: Dataset, optimizer: OptimizerSpec,
                 hparams: Mapping[str, Any], *, seeds: Sequence[int], batch_size: int,
                 trials: Sequence[Mapping[str, float]] | None = None,
                 schedule: Mapping[str, Any] | None = None, steps: int = 0,
                 shard: bool = True):
        """With `trials` (float hyperparameter overrides), every trial x seed is one member
        of the vmapped batch, trial-major: the optimizer runs under inject_hyperparams and
        each member's state carries its trial's values, so a whole sweep is one program.
        A `schedule` (bench/schedules.py) over `steps` scales the optimizer's updates.
        With several local devices, the members are split across them (`shard`)."""
        self.timings = Timings()
        clock = time.perf_counter()
        device_data = jax.device_put((dataset.x_train, dataset.y_train, dataset.x_val,
                                      dataset.y_val, dataset.x_test, dataset.y_test))
        jax.block_until_ready(device_data)
        self.x_train, self.y_train, *self.eval_data = device_data
        self.timings.data_s = time.perf_counter() - clock

        self.needs = optimizer.needs
        self.members = members = [seed for _ in (trials or [None]) for seed in seeds]
        tx = optimizer.build_injected(hparams) if trials else optimizer.build(hparams)
        self.tx = schedules.apply(tx, schedule or {}, steps)
        scheduled = self.tx is not tx  # then the optimizer's state is the chain's first
        graphdef, self.params = init_params(workload, dataset, members)
        self.opt_state = jax.vmap(self.tx.init)(self.params)
        if trials:
            own = self.opt_state[0] if scheduled else self.opt_state
            own = with_trial_values(own, trials, len(seeds))
            self.opt_state = (own, *self.opt_state[1:]) if scheduled else own
        self.keys = data_keys(members)
        self.usage = Usage(param_bytes=tree_bytes(self.params) // len(members),
                           state_bytes=tree_bytes(self.opt_state) // len(members),
                           trials_in_program=len(trials or [None]))
        self._shard(len(members), shard)
        eval_params = optimizer.eval_params
        if (trials or scheduled) and eval_params is not None:  # its own state is inside

            def eval_params(state, params, inner=eval_params):
                state = state[0] if scheduled else state
                return inner(state.inner_state if trials else state, params)
        self._chunk = make_train_chunk(graphdef, self.tx, batch_size, optimizer.needs)
        self._executables: dict[int, Any] = {}  # chunk length -> executable
        self._evaluate = self._compile(
            jax.vmap(make_evaluate(graphdef, eval_params),
                     in_axes=(0, 0, None, None, None, None)),
            self.params, self.opt_state, *self.eval_data)

    def _shard(self, members: int, allowed: bool) -> None:
        """Split the member axis (trials x seeds) over as many local devices as divide it
        evenly, the data replicated on each; XLA partitions the vmapped program accordingly.
        One device (or `allowed=False`) leaves everything where it is."""
        devices = jax.devices()
        count = max(d for d in range(1, len(devices) + 1) if members % d == 0) if allowed else 1
        self.usage.devices = count
        if count == 1:
            return
        mesh = Mesh(np.array(devices[:count]), ("members",))
        split = NamedSharding(mesh, PartitionSpec("members"))
        whole = NamedSharding(mesh, PartitionSpec())
        self.params, self.opt_state, self.keys = jax.device_put(
            (self.params, self.opt_state, self.keys), split)
        self.x_train, self.y_train, *self.eval_data = jax.device_put(
            (self.x_train, self.y_train, *self.eval_data), whole)

    def _compile(self, fn, *args, **jit_kwargs):
        clock = time.perf_counter()
        executable = jax.jit(fn, **jit_kwargs).lower(*args).compile()
        self.timings.compile_s += time.perf_counter() - clock
        self.usage.compiles += 1
        return executable

    def count_flops(self) -> None:
        """FLOPs of one train step of one seed, from XLA's cost analysis of the lowered
        (not compiled) step: a scan's body is counted once, so the chunk is no use here."""
        one = jax.tree.map(lambda x: x[0], (self.params, self.opt_state, self.keys))
        try:
            lowered = jax.jit(lambda p, s, k, x, y: self._chunk(p, s, k, x, y, 1)).lower(
                *one, self.x_train, self.y_train)
            self.usage.flops_per_step = float(lowered.cost_analysis()["flops"])
        except Exception as exc:  # noqa: BLE001  backends without cost analysis
            self.usage.missing["flops"] = f"no cost analysis: {type(exc).__name__}"
        device = jax.devices()[0]
        self.usage.peak_flops = monitor.peak_flops(device.device_kind)
        if self.usage.peak_flops is None:
            self.usage.missing["mfu"] = f"peak FLOP/s unknown for {device.device_kind!r}"

    def probe_update(self, steps: int = 10, repeats: int = 3) -> None:
        """Time the optimizer update (and apply_updates) alone on this cell's parameter
        shapes, all seeds vmapped as in training, on a quadratic stand-in objective (so
        that optimizers needing the loss value or function get them). Compile and timing
        go to timings.probe_s, apart from the training clocks."""
        clock = time.perf_counter()
        tx, needs = self.tx, self.needs

        def quadratic(p):
            return 0.5 * sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(p))

        def run(params, state):
            def step(carry, _):
                params, state = carry
                value, grads = jax.value_and_grad(quadratic)(params)
                extra = extra_update_args(needs, value=value, grad=grads, value_fn=quadratic)
                updates, state = tx.update(grads, state, params, **extra)
                return (optax.apply_updates(params, updates), state), None
            return jax.lax.scan(step, (params, state), length=steps)[0]

        executable = jax.jit(jax.vmap(run)).lower(self.params, self.opt_state).compile()
        carry = executable(self.params, self.opt_state)  # warm-up
        jax.block_until_ready(carry)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            carry = executable(*carry)
            jax.block_until_ready(carry)
            times.append((time.perf_counter() - start) / steps)
        self.usage.update_s = float(np.median(times))
        self.timings.probe_s += time.perf_counter() - clock

    def compile_chunk(self, length: int):
        """The executable for `length` steps; compiled once per length (a ragged last
        chunk adds one)."""
        if length not in self._executables:
            chunk = self._chunk
            fn = jax.vmap(lambda p, s, k, x, y: chunk(p, s, k, x, y, length),
                          in_axes=(0, 0, 0, None, None))
            self._executables[length] = self._compile(
                fn, self.params, self.opt_state, self.keys, self.x_train, self.y_train,
                donate_argnums=(0, 1, 2))
        return self._executables[length]

    def run_chunk(self, length: int) -> np.ndarray:
        """Train `length` steps; returns the (seeds, length) minibatch losses."""
        executable = self.compile_chunk(length)
        clock = time.perf_counter()
        self.params, self.opt_state, self.keys, losses = executable(
            self.params, self.opt_state, self.keys, self.x_train, self.y_train)
        jax.block_until_ready((self.params, self.opt_state, losses))
        elapsed = time.perf_counter() - clock
        self.timings.chunk_seconds.append(elapsed)
        self.timings.chunk_steps.append(length)
        self.timings.train_s += elapsed
        return np.asarray(losses)

    def evaluate(self) -> np.ndarray:
        """(4, seeds): validation loss, validation accuracy, test loss, test accuracy."""
        clock = time.perf_counter()
        metrics = np.asarray(jax.device_get(
            self._evaluate(self.params, self.opt_state, *self.eval_data)))
        self.timings.eval_s += time.perf_counter() - clock
        return metrics


def train(workload: Workload, dataset: Dataset, optimizer: OptimizerSpec,
          hparams: Mapping[str, Any], *, steps: int, eval_every: int, batch_size: int,
          seeds: Sequence[int], on_chunk: ChunkCallback | None = None,
          probe: bool = True, sample_interval_s: float = 0.1,
          schedule: Mapping[str, Any] | None = None) -> CellResult:
    """Train one cell: its seeds in one compiled program."""
    return train_sweep(workload, dataset, optimizer, hparams, None, steps=steps,
                       eval_every=eval_every, batch_size=batch_size, seeds=seeds,
                       on_chunk=on_chunk, probe=probe, sample_interval_s=sample_interval_s,
                       schedule=schedule)[0]


def train_sweep(workload: Workload, dataset: Dataset, optimizer: OptimizerSpec,
                hparams: Mapping[str, Any], trials: Sequence[Mapping[str, float]] | None, *,
                steps: int, eval_every: int, batch_size: int, seeds: Sequence[int],
                on_chunk: ChunkCallback | None = None, probe: bool = True,
                sample_interval_s: float = 0.1,
                schedule: Mapping[str, Any] | None = None) -> list[CellResult]:
    """Train every trial x seed in one compiled program; one CellResult per trial (one for
    `trials=None`). The timings and usage are the program's, shared by its trials."""
    start = time.perf_counter()
    seeds = list(seeds)
    trainer = SeedBatchTrainer(workload, dataset, optimizer, hparams, seeds=seeds,
                               batch_size=batch_size, trials=trials, schedule=schedule,
                               steps=steps)
    trainer.compile_chunk(min(eval_every, steps))
    trainer.count_flops()
    timings = trainer.timings
    # initialising parameters and state, and tracing the step for its FLOP count
    timings.setup_s = time.perf_counter() - start - timings.data_s - timings.compile_s
    members = trainer.members
    records = [SeedRecord(seed, Status.DONE) for seed in members]
    rows: dict[str, list] = {c: [] for c in CURVE_COLUMNS}
    done = 0
    with monitor.UsageSampler(sample_interval_s) as sampler:
        while done < steps:
            length = min(eval_every, steps - done)
            losses = trainer.run_chunk(length)
            metrics = trainer.evaluate()
            _mark_divergence(records, losses, metrics[0], done)
            done += length
            for i, seed in enumerate(members):
                values = (seed, done, trainer.timings.train_s, float(np.mean(losses[i])),
                          *map(float, metrics[:, i]))
                for column, value in zip(CURVE_COLUMNS, values):
                    rows[column].append(value)
            if on_chunk is not None:
                on_chunk(done, steps)
            if all(r.status is Status.DIVERGED for r in records):
                break  # nothing left to learn from this cell
    usage = trainer.usage
    for key, value in sampler.summary().items():
        if hasattr(usage, key):
            setattr(usage, key, value)
    usage.missing.update(sampler.missing)
    usage.peak_device_bytes, why = monitor.device_memory_peak()
    if why:
        usage.missing["peak_device_bytes"] = why
    if probe and any(r.status is not Status.DIVERGED for r in records):
        trainer.probe_update()
    usage.peak_rss_bytes = monitor.host_rss_peak()
    trainer.timings.total_s = time.perf_counter() - start
    # rows come chunk by chunk, members in order within each: row r is member r % M
    trial_of_row = np.arange(len(rows["step"])) % len(members) // len(seeds)
    results = []
    for t in range(len(trials or [None])):
        curves = {c: np.asarray(v)[trial_of_row == t] for c, v in rows.items()}
        results.append(CellResult(seeds=records[t * len(seeds):(t + 1) * len(seeds)],
                                  curves=curves, timings=trainer.timings, steps_trained=done,
                                  usage=usage))
    return results


def with_trial_values(opt_state, trials: Sequence[Mapping[str, float]], seeds: int):
    """The vmapped inject_hyperparams state with each member's hyperparameters set to its
    trial's values (members are trial-major: trial t owns members t*seeds ... +seeds-1)."""
    hyperparams = dict(opt_state.hyperparams)
    for name in trials[0]:
        current = hyperparams[name]
        values = [float(trial[name]) for trial in trials for _ in range(seeds)]
        hyperparams[name] = jnp.asarray(values, dtype=current.dtype).reshape(current.shape)
    return opt_state._replace(hyperparams=hyperparams)


def tree_bytes(tree) -> int:
    return int(sum(leaf.nbytes for leaf in jax.tree.leaves(tree)))


def _mark_divergence(records: list[SeedRecord], losses: np.ndarray, val_loss: np.ndarray,
                     steps_before: int) -> None:
    """A seed diverges at the first step whose training loss is not finite."""
    for i, record in enumerate(records):
        if record.status is Status.DIVERGED:
            continue
        bad = np.flatnonzero(~np.isfinite(losses[i]))
        if bad.size:
            record.status, record.diverged_step = Status.DIVERGED, steps_before + int(bad[0]) + 1
        elif not np.isfinite(val_loss[i]):
            record.status, record.diverged_step = Status.DIVERGED, steps_before + losses.shape[1]
