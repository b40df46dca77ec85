"""Train one program: every member (trial x seed) in one compiled program, steps in
`lax.scan` chunks.

`train_program` reads as the sequence it runs, in two parts. `prepare_program`: put the
data on the device, build the transformation, initialise the members, place them on the
devices, compile every executable the program runs. `train_prepared`: per chunk of
`eval_every` steps exactly one call, one `block_until_ready` and one timestamp, with
evaluation between chunks on its own clock, then the update probe. An executor may prepare
the next program while this one trains. Compilation is AOT (`lower().compile()`) and
timed apart. Nothing here touches files.
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from bench.records import CellResult, ProgramEvent, SeedRecord, Status, Timings, Usage
from bench.train import compile_cache, cpu_devices, programs, update_probe, usage
from bench.train.flops import count_flops
from bench.train.data import Dataset
from workloads.registry import Workload
from optimizers.registry import OptimizerSpec

compile_cache.configure()  # before this process compiles anything: JAX decides once
# before its CPU backend starts (a worker process's first program); run_matrix said in the
# run's own process where the variable overrides XLA_FLAGS, once for every worker
cpu_devices.configure(say_flag=False)

if TYPE_CHECKING:
    from bench.plan.schedules import Schedule

ChunkCallback = Callable[[ProgramEvent], None]  # the program's phases and each chunk's rows

# Training data of at most this many bytes is compiled into the training program as
# constants. Passed in, XLA threads the data through the training loop's state, which costs
# a tiny model a few percent: digits-mlp (331 KB of data), one seed, trained at 0.935x the
# bare loop that closes over its data and at 1.001x as constants (2-core CPU, 1000 steps a
# chunk, median of 15 interleaved rounds); MNIST-1D (640 KB) was the same either way.
# Larger data stays an argument: a constant is copied into each executable and each entry
# of the compile cache.
CONSTANT_DATA_BYTES = 512 * 1024


class MemberBatch:
    """Every member (trial x seed, trial-major) of one program: parameters, optimizer states
    and sampling keys, the data on the device, and the executables that advance and
    evaluate them. Each step of setting it up is a method of its own, run in order."""

    def __init__(self, workload: Workload, dataset: Dataset, optimizer: OptimizerSpec,
                 hparams: Mapping[str, Any], *, seeds: Sequence[int], batch_size: int,
                 trials: Sequence[Mapping[str, float]] | None = None,
                 schedule: Schedule | None = None, steps: int = 0, shard: bool = True):
        """With `trials` (float hyperparameter overrides), the optimizer runs under
        inject_hyperparams and each member's state carries its trial's values, so a whole
        sweep is one program. A `schedule` over `steps` scales the optimizer's updates."""
        self.timings, self.usage = Timings(), Usage(trials_in_program=len(trials or [None]))
        self.members = [seed for _ in (trials or [None]) for seed in seeds]
        self._put_data_on_device(dataset)
        self.transformation = programs.build_transformation(
            optimizer, hparams, injected=bool(trials), schedule=schedule, steps=steps)
        self._init_members(workload, dataset, trials, len(seeds))
        self._place_members(shard)
        self.chunk = programs.make_train_chunk(workload, self.graphdef, self.transformation,
                                                batch_size)
        self._executables: dict[int, Any] = {}  # chunk length -> executable
        self.chunk_lowerings: dict[int, Any] = {}  # chunk length -> its lowering (FLOPs)
        _, self._evaluate = self._compile(
            jax.vmap(programs.make_evaluate(workload, self.graphdef, self.transformation),
                     in_axes=(0, 0, None)), self.params, self.opt_state, self.splits)

    def _put_data_on_device(self, dataset: Dataset) -> None:
        clock = time.perf_counter()
        self.x_train, self.y_train = jax.device_put((dataset.x_train, dataset.y_train))
        self.splits = jax.device_put({"val": (dataset.x_val, dataset.y_val),
                                      "test": (dataset.x_test, dataset.y_test)})
        jax.block_until_ready((self.x_train, self.y_train, self.splits))
        self.examples = {"val": len(dataset.y_val), "test": len(dataset.y_test)}
        self.timings.data_s = time.perf_counter() - clock

    def _init_members(self, workload: Workload, dataset: Dataset, trials, seeds: int) -> None:
        self.graphdef, self.params = programs.init_params(workload, dataset, self.members)
        self.opt_state = jax.vmap(self.transformation.tx.init)(self.params)
        if trials:
            self.opt_state = self.transformation.with_trial_values(self.opt_state, trials, seeds)
        self.keys = programs.data_keys(self.members)
        self.usage.param_bytes = tree_bytes(self.params) // len(self.members)
        self.usage.param_count = sum(leaf.size for leaf in jax.tree.leaves(self.params)) \
            // len(self.members)
        self.usage.state_bytes = tree_bytes(self.opt_state) // len(self.members)

    def _place_members(self, allowed: bool) -> None:
        """Split the member axis over as many local devices as divide it evenly, the data
        replicated on each; XLA partitions the vmapped program accordingly. One device (or
        `allowed=False`) leaves everything where it is."""
        devices = jax.devices()
        count = max(d for d in range(1, len(devices) + 1) if len(self.members) % d == 0) \
            if allowed else 1
        self.usage.devices = count
        if count == 1:
            return
        mesh = Mesh(np.array(devices[:count]), ("members",))
        split, whole = NamedSharding(mesh, PartitionSpec("members")), NamedSharding(mesh, PartitionSpec())
        self.params, self.opt_state, self.keys = jax.device_put(
            (self.params, self.opt_state, self.keys), split)
        self.x_train, self.y_train, self.splits = jax.device_put(
            (self.x_train, self.y_train, self.splits), whole)

    def _compile(self, fn, *args, **jit_kwargs):
        hits, clock = compile_cache.hit_count(), time.perf_counter()
        lowered = jax.jit(fn, **jit_kwargs).lower(*args)
        executable = lowered.compile()
        seconds = time.perf_counter() - clock
        if compile_cache.hit_count() > hits:  # loaded from the persistent cache: no compile
            self.timings.compile_cached_s += seconds
            self.usage.compile_cache_hits += 1
        else:
            self.timings.compile_s += seconds
        self.usage.compiles += 1
        return lowered, executable

    def compile_chunk(self, length: int):
        """The executable for `length` steps; compiled once per length (a ragged last
        chunk adds one). Training data of at most CONSTANT_DATA_BYTES is compiled into it
        as constants, larger data is passed in (`_chunk_data`)."""
        if length not in self._executables:
            if self._chunk_data():
                fn = _over_members(lambda p, s, k, x, y: self.chunk(p, s, k, x, y, length),
                                   len(self.members), in_axes=(0, 0, 0, None, None))
            else:
                x, y = self.x_train, self.y_train  # the placed arrays, closed over
                fn = _over_members(lambda p, s, k: self.chunk(p, s, k, x, y, length),
                                   len(self.members), in_axes=(0, 0, 0))
            self.chunk_lowerings[length], self._executables[length] = self._compile(
                fn, self.params, self.opt_state, self.keys, *self._chunk_data(),
                donate_argnums=(0, 1, 2))
        return self._executables[length]

    def _chunk_data(self) -> tuple:
        """The training data as the chunk's arguments: none where it is small enough to be
        the program's constants (CONSTANT_DATA_BYTES)."""
        size = self.x_train.nbytes + self.y_train.nbytes
        return () if size <= CONSTANT_DATA_BYTES else (self.x_train, self.y_train)

    def run_chunk(self, length: int) -> np.ndarray:
        """Train `length` steps; returns the (members, length) minibatch losses."""
        executable = self.compile_chunk(length)
        clock = time.perf_counter()
        self.params, self.opt_state, self.keys, losses = executable(
            self.params, self.opt_state, self.keys, *self._chunk_data())
        jax.block_until_ready((self.params, self.opt_state, losses))
        elapsed = time.perf_counter() - clock
        self.timings.chunk_seconds.append(elapsed)
        self.timings.chunk_steps.append(length)
        self.timings.train_s += elapsed
        return np.asarray(losses)

    def evaluate(self) -> dict[str, np.ndarray]:
        """'<split>_<metric>' -> one float64 per member: the device's sums (integer counts
        for accuracy) divided by the split's example count on the host."""
        clock = time.perf_counter()
        sums = jax.device_get(self._evaluate(self.params, self.opt_state, self.splits))
        self.timings.eval_s += time.perf_counter() - clock
        return {name: np.asarray(total, dtype=np.float64) / self.examples[name.split("_")[0]]
                for name, total in sums.items()}


def _over_members(fn, members: int, in_axes):
    """`fn` of one member applied to every member: vmapped, or for a lone member run on it
    directly (its axis dropped on the way in and put back on the way out). Measured on the
    2-core CPU, time of a size-1 vmap over this: mnist1d-gru 1.11, mnist1d-mlp 1.03,
    mnist1d-logreg 0.95, mnist1d-cnn 0.93, digits-cnn 0.84 (XLA lays convolutions out faster
    with a batch axis); kept because with it every workload is within 5% of a bare loop."""
    if members > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def lone(*args):
        inner = [jax.tree.map(lambda leaf: leaf[0], arg) if axis == 0 else arg
                 for arg, axis in zip(args, in_axes)]
        return jax.tree.map(lambda leaf: leaf[None], fn(*inner))
    return lone


@dataclasses.dataclass
class PreparedProgram:
    """A program ready to train: its members initialised, every executable it will run
    compiled (each chunk length, evaluation, the update probe), its FLOPs counted."""

    batch: MemberBatch
    steps: int
    eval_every: int
    seeds: list[int]
    trials: int
    probe: Any | None  # the compiled update probe, or None when not probing
    prepare_s: float  # wall-clock of the preparation (data on the device to the probe compiled)


def chunk_lengths(steps: int, eval_every: int) -> list[int]:
    """The distinct chunk lengths `steps` trains in: eval_every, and a ragged last one."""
    return sorted({min(eval_every, steps), steps % eval_every or min(eval_every, steps)},
                  reverse=True)


def prepare_program(workload: Workload, dataset: Dataset, optimizer: OptimizerSpec,
                    hparams: Mapping[str, Any], trials: Sequence[Mapping[str, float]] | None,
                    *, steps: int, eval_every: int, batch_size: int, seeds: Sequence[int],
                    schedule: Schedule | None = None, probe: bool = True) -> PreparedProgram:
    """Everything before the first training step. Touches no clock but its own, so it may
    run in another thread while a previous program trains (bench/runner/local.py)."""
    start = time.perf_counter()
    batch = MemberBatch(workload, dataset, optimizer, hparams, seeds=seeds, batch_size=batch_size,
                        trials=trials, schedule=schedule, steps=steps)
    for length in chunk_lengths(steps, eval_every):
        batch.compile_chunk(length)
    count_flops(batch)  # from a chunk's own lowering
    timings = batch.timings
    # initialising parameters and optimizer state, placing them, reading the FLOP count
    timings.setup_s = (time.perf_counter() - start - timings.data_s - timings.compile_s
                       - timings.compile_cached_s)
    executable = update_probe.compile_probe(batch) if probe else None
    return PreparedProgram(batch, steps, eval_every, list(seeds), len(trials or [None]),
                           executable, time.perf_counter() - start)


def train_prepared(prepared: PreparedProgram, on_chunk: ChunkCallback | None = None,
                   sample_interval_s: float = 0.1) -> list[CellResult]:
    """Train a prepared program; one CellResult per trial. Timings and usage are the
    program's, shared by its trials; total_s is its preparation plus this, never the time
    it waited between the two."""
    start = time.perf_counter()
    batch, steps, seeds = prepared.batch, prepared.steps, prepared.seeds
    report = on_chunk or (lambda event: None)
    report(ProgramEvent("train", 0, steps))  # compiled: training starts (a time limit's clock)
    timings = batch.timings
    records = [SeedRecord(seed, Status.DONE) for seed in batch.members]
    curves = CurveRows(batch.members)
    done = 0
    with usage.UsageSampler(sample_interval_s) as sampler:
        while done < steps:
            length = min(prepared.eval_every, steps - done)
            losses = batch.run_chunk(length)
            report(ProgramEvent("eval", done + length, steps))
            metrics = batch.evaluate()
            mark_divergence(records, losses, metrics["val_loss"], done)
            done += length
            curves.add(done, timings.train_s, losses, metrics)
            report(ProgramEvent("train", done, steps, curves.last_by_trial(len(seeds))))
            if all(r.status is Status.DIVERGED for r in records):
                break  # nothing left to learn from this program
    batch.usage = dataclasses.replace(batch.usage, **sampler.summary(),
                                      missing={**batch.usage.missing, **sampler.missing})
    _record_memory(batch.usage)
    if prepared.probe is not None and any(r.status is not Status.DIVERGED for r in records):
        update_probe.time_probe(batch, prepared.probe)
    timings.total_s = prepared.prepare_s + time.perf_counter() - start
    return [CellResult(seeds=records[t * len(seeds):(t + 1) * len(seeds)],
                       curves=curves.of_trial(t, len(seeds)), timings=timings,
                       steps_trained=done, usage=batch.usage)
            for t in range(prepared.trials)]


def train_program(workload: Workload, dataset: Dataset, optimizer: OptimizerSpec,
                  hparams: Mapping[str, Any], trials: Sequence[Mapping[str, float]] | None, *,
                  steps: int, eval_every: int, batch_size: int, seeds: Sequence[int],
                  schedule: Schedule | None = None, on_chunk: ChunkCallback | None = None,
                  probe: bool = True, sample_interval_s: float = 0.1) -> list[CellResult]:
    """Prepare and train every trial x seed in one compiled program; one CellResult per
    trial (one for `trials=None`, the optimizer built plainly)."""
    if on_chunk:
        on_chunk(ProgramEvent("compile", 0, steps))
    prepared = prepare_program(workload, dataset, optimizer, hparams, trials, steps=steps,
                               eval_every=eval_every, batch_size=batch_size, seeds=seeds,
                               schedule=schedule, probe=probe)
    return train_prepared(prepared, on_chunk, sample_interval_s)


class CurveRows:
    """One row per member per evaluation: seed, step, train seconds, the chunk's mean
    minibatch loss, and each evaluated metric."""

    def __init__(self, members: Sequence[int]):
        self.members = np.asarray(members)
        self.chunks: list[dict[str, np.ndarray]] = []

    def add(self, step: int, train_seconds: float, losses: np.ndarray,
            metrics: Mapping[str, np.ndarray]) -> None:
        n = len(self.members)
        self.chunks.append({"member": np.arange(n), "seed": self.members,
                            "step": np.full(n, step), "train_seconds": np.full(n, train_seconds),
                            "train_loss": losses.mean(axis=1, dtype=np.float64), **metrics})

    def of_trial(self, trial: int, seeds: int) -> dict[str, np.ndarray]:
        if not self.chunks:
            return {}
        rows = {c: np.concatenate([chunk[c] for chunk in self.chunks]) for c in self.chunks[0]}
        return _trial_rows(rows, trial, seeds)

    def last_by_trial(self, seeds: int) -> tuple[dict[str, np.ndarray], ...]:
        """The last evaluation's rows, one mapping per trial (what a chunk event carries)."""
        last = dict(self.chunks[-1])
        return tuple(_trial_rows(dict(last), t, seeds) for t in range(len(self.members) // seeds))


def _trial_rows(rows: dict[str, np.ndarray], trial: int, seeds: int) -> dict[str, np.ndarray]:
    """The rows of one trial (members are trial-major), without the member column."""
    mine = rows.pop("member") // seeds == trial
    return {c: values[mine] for c, values in rows.items()}


def _record_memory(record: Usage) -> None:
    record.peak_device_bytes, why = usage.device_memory_peak()
    if why:
        record.missing["peak_device_bytes"] = why
    record.peak_rss_bytes = usage.host_rss_peak()


def tree_bytes(tree) -> int:
    return int(sum(leaf.nbytes for leaf in jax.tree.leaves(tree)))


def mark_divergence(records: list[SeedRecord], losses: np.ndarray, val_loss: np.ndarray,
                    steps_before: int) -> None:
    """A member diverges at the first step whose training loss is not finite."""
    for i, record in enumerate(records):
        if record.status is Status.DIVERGED:
            continue
        bad = np.flatnonzero(~np.isfinite(losses[i]))
        if bad.size:
            record.status, record.diverged_step = Status.DIVERGED, steps_before + int(bad[0]) + 1
        elif not np.isfinite(val_loss[i]):
            record.status, record.diverged_step = Status.DIVERGED, steps_before + losses.shape[1]


def train(workload: Workload, dataset: Dataset, optimizer: OptimizerSpec,
          hparams: Mapping[str, Any], **kwargs) -> CellResult:
    """Train one cell (its seeds, the optimizer built plainly) as a program of its own."""
    return train_program(workload, dataset, optimizer, hparams, None, **kwargs)[0]
