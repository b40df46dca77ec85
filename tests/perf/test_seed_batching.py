"""Eight seeds in one vmapped program against the same eight seeds trained one after
another (issue: >= 1.3x on a 2-core CPU for mnist1d-mlp). Compilation is excluded from
both sides and reported apart in extra_info. `make bench` runs it twice: in one CPU device,
and with OPTBENCH_CPU_DEVICES=auto, where the vmapped program's members are split over one
device per core (bench/train/cpu_devices.py)."""
import time

import jax
import pytest

import optimizers
from bench.train import engine
import workloads

SEEDS = list(range(8))
STEPS = 500


def trainers(batched: bool):
    workload = workloads.get("mnist1d-mlp")
    dataset = workload.load_data()
    spec = optimizers.get("adam")
    groups = [SEEDS] if batched else [[seed] for seed in SEEDS]
    made = [engine.MemberBatch(workload, dataset, spec, spec.resolve(), seeds=group,
                                    batch_size=workload.batch_size) for group in groups]
    start = time.perf_counter()
    for trainer in made:
        trainer.compile_chunk(STEPS)
    return made, time.perf_counter() - start


@pytest.mark.parametrize("mode", ["vmap", "sequential"])
def test_eight_seeds_batched_or_one_by_one(benchmark, mode):
    made, compile_s = trainers(batched=mode == "vmap")

    def train_all():
        for trainer in made:
            trainer.run_chunk(STEPS)

    train_all()  # warm-up
    devices = len(jax.devices())  # OPTBENCH_CPU_DEVICES=auto (make bench's second pass)
    benchmark.group = "seeds:mnist1d-mlp" + (f" over {devices} devices" if devices > 1 else "")
    benchmark.pedantic(train_all, rounds=7, iterations=1)
    if benchmark.stats is not None:
        benchmark.extra_info.update(compile_s=compile_s,
                                    seed_steps_per_s=len(SEEDS) * STEPS / benchmark.stats.stats.median)
