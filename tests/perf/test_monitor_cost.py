"""The usage sampler's cost to a training step (issue: < 2% of step time). Each round
trains one chunk with the sampler running and one without, back to back, so that drift
hits both; extra_info holds the median per-round ratio. As in the engine, whose training
clock runs inside `run_chunk` only, the chunk is timed with the sampler already running:
its thread's start and its last sample (about a millisecond, once per program, outside
every step time) are timed apart and recorded as `start_stop_ms`. The sampler runs at
0.1 s (what the engine uses) and at 0.01 s (ten times busier, to show the margin)."""
import statistics
import time

import pytest

import optimizers
from bench.train import engine, usage
import workloads
from tests.perf.interleaved import SelfTimed, record_ratio, time_interleaved

STEPS = 500  # ~0.25 s: a few samples fall inside a chunk even at 0.1 s


@pytest.mark.parametrize("interval_s", [0.1, 0.01])
def test_monitor_on_vs_off(benchmark, interval_s):
    workload = workloads.get("mnist1d-mlp")
    spec = optimizers.get("adam")
    trainer = engine.MemberBatch(workload, workload.load_data(), spec,
                                      spec.resolve(), seeds=[0, 1, 2],
                                      batch_size=workload.batch_size)
    trainer.compile_chunk(STEPS)
    trainer.run_chunk(STEPS)  # warm-up
    start_stop = []

    def with_sampler() -> float:
        entered = time.perf_counter()
        with usage.UsageSampler(interval_s):
            start = time.perf_counter()
            trainer.run_chunk(STEPS)
            chunk = time.perf_counter() - start
        start_stop.append(time.perf_counter() - entered - chunk)
        return chunk

    sides = {"on": SelfTimed(with_sampler), "off": lambda: trainer.run_chunk(STEPS)}
    times = time_interleaved(benchmark, sides, rounds=41, group="monitor-cost")
    record_ratio(benchmark, times, "on", "off",
                 start_stop_ms=1e3 * statistics.median(start_stop))
