"""The usage sampler's cost to a training step (issue: < 2% of step time). Each round
trains one chunk with the sampler running and one without, back to back, so that drift
hits both; extra_info holds the median per-round ratio. The sampler runs at 0.1 s (what
the engine uses) and at 0.01 s (ten times busier, to show the margin)."""
import pytest

import optimizers
from bench.train import engine, usage
import workloads
from tests.perf.interleaved import record_ratio, time_interleaved

STEPS = 250


@pytest.mark.parametrize("interval_s", [0.1, 0.01])
def test_monitor_on_vs_off(benchmark, interval_s):
    workload = workloads.get("mnist1d-mlp")
    spec = optimizers.get("adam")
    trainer = engine.MemberBatch(workload, workload.load_data(), spec,
                                      spec.resolve(), seeds=[0, 1, 2],
                                      batch_size=workload.batch_size)
    trainer.compile_chunk(STEPS)
    trainer.run_chunk(STEPS)  # warm-up

    def with_sampler():
        with usage.UsageSampler(interval_s):
            trainer.run_chunk(STEPS)

    sides = {"on": with_sampler, "off": lambda: trainer.run_chunk(STEPS)}
    times = time_interleaved(benchmark, sides, rounds=41, group="monitor-cost")
    record_ratio(benchmark, times, "on", "off")
