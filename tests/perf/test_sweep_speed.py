"""A learning-rate sweep as one compiled program against the same trials run separately
(issue: 8 learning rates x 3 seeds on mnist1d-mlp at least 1.3x faster on this CPU, compile
included; the same for mnist1d-cnn). Each side trains STEPS steps per trial and seed, with
its evaluations; the sweep compiles once, the separate runs 24 times."""
import numpy as np
import pytest

import optimizers
from bench.train import engine
import workloads
from tests.perf.interleaved import record_ratio, time_interleaved

STEPS = 500
RATES = [float(r) for r in np.geomspace(1e-3, 1e-1, 8)]
SEEDS = [0, 1, 2]


@pytest.mark.parametrize("workload_name", ["mnist1d-mlp", "mnist1d-cnn"])
def test_sweep_vs_separate_runs(benchmark, workload_name):
    workload = workloads.get(workload_name)
    dataset = workload.load_data()
    spec = optimizers.get("adam")
    rates, seeds, steps = RATES, SEEDS, STEPS
    if benchmark.disabled:  # under `make test`: check it runs, in seconds, not minutes
        rates, seeds, steps = RATES[:2], SEEDS[:1], 20
    kwargs = dict(steps=steps, eval_every=min(250, steps), batch_size=workload.batch_size,
                  probe=False)

    def sweep():
        engine.train_program(workload, dataset, spec, spec.resolve(),
                           [{"learning_rate": r} for r in rates], seeds=seeds, **kwargs)

    def separate():
        for rate in rates:
            for seed in seeds:
                engine.train(workload, dataset, spec, spec.resolve({"learning_rate": rate}),
                             seeds=[seed], **kwargs)

    times = time_interleaved(benchmark, {"sweep": sweep, "separate": separate}, rounds=3,
                             group="sweep-vs-separate")
    record_ratio(benchmark, times, "sweep", "separate")
