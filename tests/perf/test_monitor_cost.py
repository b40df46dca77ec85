"""The usage sampler's cost to a training step (issue: < 2% of step time). Each round
trains one chunk with the sampler running and one without, back to back, so that drift
hits both; extra_info holds the median per-round ratio. The sampler runs at 0.1 s (what
the engine uses) and at 0.01 s (ten times busier, to show the margin)."""
import statistics
import time

import pytest

import optimizers
from bench import data, engine, monitor, workloads

STEPS = 250


@pytest.mark.parametrize("interval_s", [0.1, 0.01])
def test_monitor_on_vs_off(benchmark, interval_s):
    workload = workloads.get("mnist1d-mlp")
    spec = optimizers.get("adam")
    trainer = engine.SeedBatchTrainer(workload, data.load(workload.dataset), spec,
                                      spec.resolve(), seeds=[0, 1, 2],
                                      batch_size=workload.batch_size)
    trainer.compile_chunk(STEPS)
    trainer.run_chunk(STEPS)  # warm-up
    times = {"on": [], "off": []}

    def both():
        start = time.perf_counter()
        trainer.run_chunk(STEPS)
        times["off"].append(time.perf_counter() - start)
        with monitor.UsageSampler(interval_s):
            start = time.perf_counter()
            trainer.run_chunk(STEPS)
            times["on"].append(time.perf_counter() - start)

    benchmark.group = "monitor-cost"
    benchmark.pedantic(both, rounds=41, iterations=1)
    if benchmark.stats is not None:
        ratios = [on / off for on, off in zip(times["on"], times["off"])]
        benchmark.extra_info.update(sides="monitor on/off", ratio_median=statistics.median(ratios),
                                    a_median_s=statistics.median(times["on"]),
                                    b_median_s=statistics.median(times["off"]))
