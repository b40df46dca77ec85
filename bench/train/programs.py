"""The pure functions a program compiles, and the transformation it trains with.

Every builder here returns plain JAX functions of one member (one trial x seed); the engine
vmaps them over the members and compiles them. Nothing here runs anything or keeps state.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from bench.train.data import Dataset
from optimizers.registry import OptimizerSpec, extra_update_args
from workloads.registry import Workload, WorkloadError

if TYPE_CHECKING:
    from bench.plan.schedules import Schedule

OPTIMIZER, SCHEDULE = "optimizer", "schedule"  # the names of the parts of the transformation


@dataclass(frozen=True)
class Transformation:
    """The optimizer as a program trains it: `named_chain(("optimizer", tx), ("schedule",
    multiplier))`, where tx runs under optax.inject_hyperparams when the program sweeps
    float hyperparameters. Its state is looked up by name, never by position."""

    tx: optax.GradientTransformationExtraArgs
    injected: bool
    own_eval_params: Callable[[Any, Any], Any] | None  # the optimizer's, on its own state
    needs: frozenset[str]

    def optimizer_state(self, state):
        """The optimizer's own state, out of the chain (and out of inject_hyperparams)."""
        own = state[OPTIMIZER]
        return optax.tree_utils.tree_get(own, "inner_state") if self.injected else own

    def eval_params(self, state, params):
        """The parameters to evaluate: the optimizer's evaluation point (schedule-free
        methods), or the training iterate."""
        if self.own_eval_params is None:
            return params
        return self.own_eval_params(self.optimizer_state(state), params)

    def with_trial_values(self, state, trials: Sequence[Mapping[str, float]], seeds: int):
        """The vmapped state with each member's injected hyperparameters set to its trial's
        values (members are trial-major: trial t owns members t*seeds ... +seeds-1)."""
        own = state[OPTIMIZER]
        hyperparams = dict(optax.tree_utils.tree_get(own, "hyperparams"))
        for name in trials[0]:
            current = hyperparams[name]
            values = [float(trial[name]) for trial in trials for _ in range(seeds)]
            hyperparams[name] = jnp.asarray(values, dtype=current.dtype).reshape(current.shape)
        state = type(state)(state)  # named_chain's OrderedDict: scan needs the same type back
        state[OPTIMIZER] = optax.tree_utils.tree_set(own, hyperparams=hyperparams)
        return state


def build_transformation(optimizer: OptimizerSpec, hparams: Mapping[str, Any], *,
                         injected: bool, schedule: Schedule | None,
                         steps: int) -> Transformation:
    tx = optimizer.build_injected(hparams) if injected else optimizer.build(hparams)
    parts = [(OPTIMIZER, tx)]
    multiplier = schedule_multiplier(schedule, steps)
    if multiplier is not None:
        parts.append((SCHEDULE, optax.scale_by_schedule(multiplier)))
    return Transformation(optax.named_chain(*parts), injected, optimizer.eval_params,
                          optimizer.needs)


def schedule_multiplier(schedule: Schedule | None, steps: int) -> Callable | None:
    """The optax schedule with peak 1 over `steps` (bench/plan/schedules.py), or None for
    constant."""
    if schedule is None or schedule.constant:
        return None
    fractions = dict(schedule.fractions)
    warmup = int(round(fractions["warmup"] * steps))
    if schedule.name == "warmup_cosine":
        return optax.warmup_cosine_decay_schedule(0.0, 1.0, warmup_steps=warmup,
                                                  decay_steps=steps, end_value=0.0)
    decay = int(round(fractions["decay"] * steps))
    return optax.join_schedules(
        [optax.linear_schedule(0.0, 1.0, max(warmup, 1)), optax.constant_schedule(1.0),
         optax.linear_schedule(1.0, 0.0, max(decay, 1))],
        boundaries=[warmup, steps - decay])


INIT, DATA = 0, 1  # what each seed's key is folded with: its parameters, its minibatches


def seed_key(seed, purpose: int) -> jax.Array:
    """fold_in(key(seed), purpose): the one definition of a seed's keys (`seed` a Python
    int, or a traced uint32 when the seeds are vmapped: the same bits)."""
    return jax.random.fold_in(jax.random.key(seed), purpose)


def init_key(seed: int) -> jax.Array:
    """The key seed `seed` initialises its parameters from (the model factory's
    `rngs.params`)."""
    return seed_key(seed, INIT)


def check_memory(workload: Workload, dataset: Dataset, seeds: Sequence[int]) -> None:
    """Refuse, in one line and before allocating anything, a model whose parameters,
    gradients and optimizer state (about 4x the parameters, per seed) cannot fit in the
    memory free now: a width such as `mnist1d-mlp@w65536` (17 GB of parameters) would
    otherwise have the machine kill the process. Shapes come from `nnx.eval_shape`; a
    factory that cannot be traced abstractly is not checked."""
    try:
        abstract = nnx.eval_shape(lambda: workload.build_model(dataset, nnx.Rngs(params=init_key(0))))
        need = 4 * len(seeds) * sum(leaf.size * leaf.dtype.itemsize
                                    for leaf in jax.tree.leaves(nnx.state(abstract)))
        free = _free_bytes()
    except Exception:  # noqa: BLE001 - the guard only ever refuses what it can measure
        return
    if free is not None and need > free:
        raise WorkloadError(f"workload {workload.name}: its parameters, gradients and"
                            f" optimizer state for {len(seeds)} seed(s) need about"
                            f" {need / 2**30:.1f} GiB; the device has {free / 2**30:.1f} GiB"
                            " free (a smaller width, or fewer seeds)")


def _free_bytes() -> int | None:
    device = jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    if device.platform == "cpu":
        import psutil

        return int(psutil.virtual_memory().available)
    return None


# From this many members on, the members are initialised in one vmapped build. Below it,
# one build per member is quicker: a vmapped build compiles each of its operations anew
# for every member count (2.5-4 s on the 2-core CPU), while a build costs about 9 ms per
# member here and 30 ms on an H200 (1024 members: 33 s). Both give the same bits.
VMAPPED_INIT_FROM = 256


def init_params(workload: Workload, dataset: Dataset, seeds: Sequence[int]):
    """(graphdef, params stacked over seeds). Seed s initialises from `init_key(s)`."""
    check_memory(workload, dataset, seeds)
    if _vmapped(seeds):
        try:
            return _init_vmapped(workload, dataset, seeds)
        except Exception:  # noqa: BLE001 - built one by one instead, which raises its own error
            # a model that cannot be traced (numpy values, `.item()`, a plugin that checks
            # its inputs' types) builds as it always did; a broken one fails there, as it
            # would below VMAPPED_INIT_FROM, with its own error and not a tracer's
            pass
    states = []
    graphdef = None
    for seed in seeds:
        rngs = nnx.Rngs(params=init_key(seed))
        graphdef, state = nnx.split(workload.build_model(dataset, rngs))
        states.append(state)
    return graphdef, jax.tree.map(lambda *leaves: jnp.stack(leaves), *states)


def _vmapped(seeds: Sequence[int]) -> bool:
    """Whether `seeds` are built in one vmapped call: many, and each a uint32 (what
    `jax.random.key` makes of a traced seed is what it makes of that Python int)."""
    return len(seeds) >= VMAPPED_INIT_FROM and all(0 <= seed < 2**32 for seed in seeds)


def _seed_keys(seeds: Sequence[int], purpose: int) -> jax.Array:
    return jax.vmap(lambda seed: seed_key(seed, purpose))(jnp.asarray(seeds, dtype=jnp.uint32))


def _init_vmapped(workload: Workload, dataset: Dataset, seeds: Sequence[int]):
    graphdefs = []  # the graphdef of the very build that made the parameters (static)

    def build(key):
        graphdef, state = nnx.split(workload.build_model(dataset, nnx.Rngs(params=key)))
        graphdefs.append(graphdef)
        return state

    params = jax.vmap(build)(_seed_keys(seeds, INIT))
    return graphdefs[-1], params


def data_keys(seeds: Sequence[int]) -> jax.Array:
    """Per-seed keys for minibatch sampling, independent of the init keys."""
    if _vmapped(seeds):
        return _seed_keys(seeds, DATA)
    return jnp.stack([seed_key(s, DATA) for s in seeds])


def make_loss_fn(workload: Workload, graphdef) -> Callable:
    def loss_fn(params, x, y):
        return workload.checked_loss(nnx.merge(graphdef, params)(x), y)
    return loss_fn


def make_train_chunk(workload: Workload, graphdef, transformation: Transformation,
                     batch_size: int) -> Callable:
    """chunk(params, opt_state, key, x_train, y_train, length) for one member. A batch as
    large as the training set is the training set: full-batch steps, no sampling."""
    loss_fn = make_loss_fn(workload, graphdef)
    tx, needs = transformation.tx, transformation.needs

    def step(carry, _, x_train, y_train):
        params, opt_state, key = carry
        if batch_size >= x_train.shape[0]:  # shapes are static: decided while tracing
            x, y = x_train, y_train
        else:
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


def make_evaluate(workload: Workload, graphdef, transformation: Transformation) -> Callable:
    """evaluate(params, opt_state, splits) for one member -> {"<split>_<metric>": the metric
    summed over the split's examples}; the host divides by the example count."""

    def evaluate(params, opt_state, splits: Mapping[str, tuple[jax.Array, jax.Array]]):
        model = nnx.merge(graphdef, transformation.eval_params(opt_state, params))
        return {f"{split}_{name}": value for split, (x, y) in splits.items()
                for name, value in workload.checked_sums(model(x), y).items()}

    return evaluate
