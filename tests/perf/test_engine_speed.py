"""The engine's training chunk against two bare `lax.scan` loops of the same model,
optimizer and batch sampling (issue 15: engine >= 0.95x the best bare loop on every
built-in workload, with one seed and with several).

- `bare_args`: the data passed as arguments, as the engine passes it;
- `bare_const`: the data closed over as constants, the best loop a user could write.

The loops are in tests/perf/loops.py. Every side is compiled before timing and each
timed call trains STEPS steps and ends with `block_until_ready`; the sides are interleaved
round by round. Run with `make bench`; extra_info holds each side's steps/s and the median
per-round time ratios engine/bare_args and engine/bare_const.
"""
import statistics

import jax.numpy as jnp
import pytest

import workloads
from tests.perf.interleaved import record_ratio, time_interleaved
from tests.perf.loops import bare_loop, engine_loop

STEPS = 500
WORKLOADS = ["mnist1d-mlp", "mnist1d-cnn", "mnist1d-logreg", "mnist1d-gru", "digits-mlp",
             "digits-cnn"]  # every built-in classification workload that needs no download


def pytest_generate_tests(metafunc):
    """Every workload under `make bench`; under `make test` (benchmarks disabled) only the
    cheapest, to check that the three loops build and run."""
    if "workload_name" in metafunc.fixturenames:
        config = metafunc.config  # pytest-benchmark's own rule for "disabled"
        timed = config.getoption("benchmark_enable") or not config.getoption("benchmark_disable")
        metafunc.parametrize("workload_name", WORKLOADS if timed else ["mnist1d-logreg"])


@pytest.mark.parametrize("seeds", [1, 4])
def test_engine_vs_bare_scan(benchmark, workload_name, seeds):
    """Interleaved round by round: timed in separate tests, the bare side moved by up to 2x
    from one run to the next."""
    workload = workloads.get(workload_name)
    dataset = workload.load_data()
    steps = STEPS if not benchmark.disabled else 5  # under `make test`: that it runs
    sides = {"engine": engine_loop(workload, dataset, 1e-2, steps, seeds),
             "bare_args": bare_loop(workload, dataset, 1e-2, steps, seeds, constant_data=False),
             "bare_const": bare_loop(workload, dataset, 1e-2, steps, seeds, constant_data=True)}
    for train_steps in sides.values():
        losses = train_steps()  # warm-up: first execution pays one-off allocation costs
        assert bool(jnp.all(jnp.isfinite(losses)))
    times = time_interleaved(benchmark, sides, rounds=9, group=f"engine-vs-bare:{seeds}-seed")
    for bare in ("bare_args", "bare_const"):
        record_ratio(benchmark, times, "engine", bare)
    if benchmark.stats is not None:
        benchmark.extra_info.update({f"{side}_steps_per_s": steps / statistics.median(t)
                                     for side, t in times.items()})
