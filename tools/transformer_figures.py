"""The figures the transformer workloads' docstrings quote, measured on this machine.

    PYTHONPATH=. python3 tools/transformer_figures.py grok adamw 1e-3 1.0 --seeds 0 1 2
    PYTHONPATH=. python3 tools/transformer_figures.py grok adam 1e-3 --seeds 0 1 2
    PYTHONPATH=. python3 tools/transformer_figures.py lm adam 1e-3 --seeds 0 1

grok: trains modadd-transformer full batch (seeds vmapped in one program, as the engine
does) and prints, per seed, the first step (checked every 100) at which training and
validation accuracy reach 0.99, or "-" if not within the budget.
lm: trains synthetic-lm through the engine and prints per seed the final and best
validation excess loss (nats per token) and the seconds per seed.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import optimizers
import workloads
from bench.train import engine, programs


def hyperparameters(name: str, learning_rate: float, weight_decay: float | None):
    spec = optimizers.get(name)
    values = {"learning_rate": learning_rate}
    if weight_decay is not None:
        values["weight_decay"] = weight_decay
    return spec, spec.resolve(values)


def grok(args) -> None:
    workload = workloads.get(args.workload)
    data = workload.load_data()
    spec, hparams = hyperparameters(args.optimizer, args.learning_rate, args.weight_decay)
    steps, every = args.steps or workload.steps, 100
    transformation = programs.build_transformation(spec, hparams, injected=False,
                                                   schedule=None, steps=steps)
    graphdef, params = programs.init_params(workload, data, args.seeds)
    state = jax.vmap(transformation.tx.init)(params)
    keys = programs.data_keys(args.seeds)
    chunk = programs.make_train_chunk(workload, graphdef, transformation, workload.batch_size)
    run = jax.jit(jax.vmap(lambda p, s, k: chunk(p, s, k, data.x_train, data.y_train, every)))

    def accuracy(p, x, y):
        return (jnp.argmax(nnx.merge(graphdef, p)(x), -1) == y).mean()

    evaluate = jax.jit(jax.vmap(lambda p: (accuracy(p, data.x_train, data.y_train),
                                           accuracy(p, data.x_val, data.y_val))))
    first = {seed: {"train": None, "val": None} for seed in args.seeds}
    start = time.perf_counter()
    for step in range(every, steps + 1, every):
        params, state, keys, _ = run(params, state, keys)
        train, val = (np.asarray(a) for a in evaluate(params))
        for i, seed in enumerate(args.seeds):
            for split, value in (("train", train[i]), ("val", val[i])):
                if first[seed][split] is None and value >= 0.99:
                    first[seed][split] = step
        print(f"step {step:5d} {time.perf_counter() - start:6.0f}s  train acc"
              f" {np.round(train, 3)}  val acc {np.round(val, 3)}", flush=True)
    seconds = (time.perf_counter() - start) / len(args.seeds)
    print(f"{args.workload} {args.optimizer} lr={args.learning_rate} wd={args.weight_decay}"
          f" ({steps} steps, {seconds:.0f} s per seed incl. compile):")
    for seed, steps_at in first.items():
        print(f"  seed {seed}: train acc >= 0.99 at step {steps_at['train'] or '-'},"
              f" val acc >= 0.99 at step {steps_at['val'] or '-'}")


def lm(args) -> None:
    workload = workloads.get(args.workload)
    spec, hparams = hyperparameters(args.optimizer, args.learning_rate, args.weight_decay)
    result = engine.train(workload, workload.load_data(), spec, hparams,
                          steps=args.steps or workload.steps, eval_every=workload.eval_every,
                          batch_size=workload.batch_size, seeds=args.seeds, probe=False)
    curves = result.curves
    print(f"{args.workload} {args.optimizer} lr={args.learning_rate} wd={args.weight_decay}:"
          f" train {result.timings.train_s / len(args.seeds):.0f} s per seed"
          f" (compile {result.timings.compile_s:.0f} s)")
    for seed in args.seeds:
        mine = curves["seed"] == seed
        excess, steps = curves["val_excess_loss"][mine], curves["step"][mine]
        best = int(np.argmin(excess))
        print(f"  seed {seed}: val_excess_loss final {excess[-1]:.4f}, best {excess[best]:.4f}"
              f" (step {steps[best]}); val_loss final {curves['val_loss'][mine][-1]:.4f};"
              f" val_accuracy final {curves['val_accuracy'][mine][-1]:.4f}")
        marks = [i for i, step in enumerate(steps) if step % 500 == 0]
        print("    val_excess_loss by step:", ", ".join(f"{steps[i]}: {excess[i]:.4f}"
                                                      for i in marks))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["grok", "lm"])
    parser.add_argument("optimizer")
    parser.add_argument("learning_rate", type=float)
    parser.add_argument("weight_decay", type=float, nargs="?")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=0, help="default: the workload's")
    parser.add_argument("--workload", default="")
    args = parser.parse_args()
    args.workload = args.workload or {"grok": "modadd-transformer", "lm": "synthetic-lm"}[args.what]
    (grok if args.what == "grok" else lm)(args)


if __name__ == "__main__":
    main()
