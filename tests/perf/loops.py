"""The training loops the engine is measured against (tests/perf/test_engine_speed.py,
tools/gpu_check.py): a bare `lax.scan` loop a user would write, and the engine's own chunk.

- `bare_loop(..., constant_data=False)`: the data passed as arguments, as the engine passes it;
- `bare_loop(..., constant_data=True)`: the data closed over as constants, the best loop a
  user could write (XLA may specialise on it).

With several seeds the bare loop vmaps its step over the seeds' parameters, optimizer states
and keys, as a user batching seeds would. Each returns a function that trains `steps` steps
and ends with `block_until_ready`, compiled before it is returned.
"""
import jax
import jax.numpy as jnp
import optax
from flax import nnx

import optimizers
from bench.train import engine


def bare_loop(workload, dataset, learning_rate, steps, seeds: int, constant_data: bool):
    """The ~30-line reference: Adam, uniform minibatches, no harness; vmapped over `seeds`
    when there are several."""
    graphdef, params = nnx.split(workload.build_model(dataset, nnx.Rngs(params=jax.random.key(0))))
    tx = optax.adam(learning_rate)
    x_train, y_train = jnp.asarray(dataset.x_train), jnp.asarray(dataset.y_train)

    def loss_fn(params, x, y):
        logits = nnx.merge(graphdef, params)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    def run(params, opt_state, key, x_train, y_train):
        def step(carry, _):
            params, opt_state, key = carry
            key, batch_key = jax.random.split(key)
            index = jax.random.randint(batch_key, (workload.batch_size,), 0, x_train.shape[0])
            loss, grads = jax.value_and_grad(loss_fn)(params, x_train[index], y_train[index])
            updates, opt_state = tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state, key), loss

        return jax.lax.scan(step, (params, opt_state, key), length=steps)

    carry = (params, tx.init(params), jax.random.key(1))
    if seeds > 1:
        run = jax.vmap(run, in_axes=(0, 0, 0, None, None))
        carry = (*jax.tree.map(lambda x: jnp.stack([x] * seeds), carry[:2]),
                 jax.random.split(jax.random.key(1), seeds))
    if constant_data:
        fn = lambda p, s, k: run(p, s, k, x_train, y_train)  # noqa: E731
        data = ()
    else:
        fn, data = run, (x_train, y_train)
    compiled = jax.jit(fn, donate_argnums=(0, 1)).lower(*carry, *data).compile()
    state = {"carry": carry}

    def train_steps():
        carry, losses = compiled(*state["carry"], *data)
        jax.block_until_ready((carry, losses))
        state["carry"] = carry
        return losses

    return train_steps


def engine_loop(workload, dataset, learning_rate, steps, seeds: int):
    spec = optimizers.get("optax:adam")
    trainer = engine.MemberBatch(workload, dataset, spec,
                                 spec.resolve({"learning_rate": learning_rate}),
                                 seeds=list(range(seeds)), batch_size=workload.batch_size)
    trainer.compile_chunk(steps)
    return lambda: trainer.run_chunk(steps)
