"""What a cell costs: timings that add up, one compilation per chunk length, optimizer
state sizes worked out by hand, and a monitor that records what it cannot measure."""
import dataclasses
import json
from dataclasses import asdict, fields
import math
import sys

import jax
import numpy as np
import pytest

import optimizers
from bench.train import data, engine, flops, usage
import workloads
from bench.records import Usage
from bench.runner.tables import usage_columns

# mnist1d-mlp: 40 -> 100 -> 100 -> 10 with biases, float32
MLP_PARAMS = (40 * 100 + 100) + (100 * 100 + 100) + (100 * 10 + 10)


def train(name="adam", workload="mnist1d-mlp", steps=500, eval_every=250, seeds=(0, 1), **kw):
    w = workloads.get(workload)
    spec = optimizers.get(name)
    return engine.train(w, w.load_data(), spec, spec.resolve(), steps=steps,
                        eval_every=eval_every, batch_size=w.batch_size, seeds=list(seeds), **kw)


def test_timings_add_up_to_the_cells_wall_clock():
    t = train().timings
    parts = (t.data_s + t.setup_s + t.compile_s + t.compile_cached_s + t.train_s + t.eval_s
             + t.probe_s)
    assert parts <= t.total_s
    assert t.total_s - parts <= 0.03 * t.total_s + 0.02, vars(t)
    # compiled, or loaded from the session's compilation cache (an earlier test compiled it)
    assert t.compile_s + t.compile_cached_s > 0
    assert t.train_s > 0 and t.eval_s > 0 and t.probe_s > 0


@pytest.mark.parametrize("steps,eval_every,expected", [(750, 250, 2), (700, 250, 3)])
def test_one_compilation_per_chunk_length_plus_eval(steps, eval_every, expected):
    assert train(steps=steps, eval_every=eval_every).usage.compiles == expected


def test_nothing_compiles_while_chunks_run():
    w = workloads.get("mnist1d-mlp")
    spec = optimizers.get("adam")
    trainer = engine.MemberBatch(w, w.load_data(), spec, spec.resolve(),
                                      seeds=[0, 1], batch_size=w.batch_size)
    trainer.compile_chunk(100)
    trainer.evaluate()
    compiles = []
    jax.monitoring.register_event_duration_secs_listener(
        lambda event, seconds, **_: compiles.append(event)
        if event == "/jax/core/compile/backend_compile_duration" else None)
    for _ in range(4):
        trainer.run_chunk(100)
        trainer.evaluate()
    assert compiles == []


@pytest.mark.parametrize("name,expected", [
    ("sgd", 0),                              # no state
    ("momentum", 4 * MLP_PARAMS),            # one velocity per parameter
    ("adam", 2 * 4 * MLP_PARAMS + 4),        # two moments and an int32 step count
    ("optax:adam", 2 * 4 * MLP_PARAMS + 4),
])
def test_state_bytes_match_a_hand_count(name, expected):
    usage = train(name, steps=250).usage
    assert usage.param_bytes == 4 * MLP_PARAMS
    assert usage.state_bytes == expected


def test_flops_per_step_is_of_the_order_of_a_hand_count():
    usage = train("sgd", workload="mnist1d-logreg", steps=250).usage
    forward = 2 * 40 * 10 * 100  # one (100 x 40) @ (40 x 10) matmul per step
    assert 2 * forward <= usage.flops_per_step <= 10 * forward


@pytest.mark.parametrize("seeds", [[0], [0, 1, 2]])
def test_flops_read_off_the_chunk_are_one_members_single_step(seeds):
    """The reference: one member's single step, lowered on its own, as a user would count it."""
    w = workloads.get("mnist1d-cnn")
    spec = optimizers.get("adam")
    batch = engine.MemberBatch(w, w.load_data(), spec, spec.resolve(), seeds=seeds,
                               batch_size=w.batch_size)
    batch.compile_chunk(50)
    flops.count_flops(batch)
    one = jax.tree.map(lambda x: x[0], (batch.params, batch.opt_state, batch.keys))
    step = jax.jit(lambda p, s, k, x, y: batch.chunk(p, s, k, x, y, 1)).lower(
        *one, batch.x_train, batch.y_train)
    assert batch.usage.flops_per_step == pytest.approx(step.cost_analysis()["flops"], rel=0.005)


def test_flops_come_from_the_compiled_chunk_where_the_lowering_counts_none(monkeypatch):
    """The GPU plugin's lowerings have no cost analysis (None; seen on an H200, where MFU
    was missing from every cell): the compiled chunk's count stands in, one step's worth."""
    w = workloads.get("mnist1d-mlp")
    spec = optimizers.get("adam")
    batch = engine.MemberBatch(w, w.load_data(), spec, spec.resolve(), seeds=[0, 1],
                               batch_size=w.batch_size)
    batch.compile_chunk(50)
    reference = batch.chunk_lowerings[50].cost_analysis()["flops"] / 2
    monkeypatch.setattr(type(batch.chunk_lowerings[50]), "cost_analysis", lambda self: None)
    flops.count_flops(batch)
    assert "flops" not in batch.usage.missing
    assert batch.usage.flops_per_step == pytest.approx(reference, rel=0.01)


@pytest.mark.parametrize("lowered,compiled,counted", [
    ({"bytes accessed": 1e6}, {"flops": 4e3}, 2e3),  # a lowering's analysis without FLOPs
    ({"flops": -1.0}, [{"flops": 4e3}], 2e3),  # no count, then an older JAX's list
    ({"flops": float("nan")}, None, None), (None, [], None), (None, {"flops": 0.0}, None),
    (None, {"flops": "many"}, None)])
def test_only_a_real_flop_count_makes_an_mfu(lowered, compiled, counted, monkeypatch):
    """An analysis that holds no count (missing, negative, zero, NaN, not a number) is
    passed over for the compiled chunk's; where neither counts, FLOPs and MFU are missing,
    never a negative or NaN MFU."""
    w = workloads.get("synthetic-mlp")
    spec = optimizers.get("adam")
    batch = engine.MemberBatch(w, w.load_data(), spec, spec.resolve(), seeds=[0, 1],
                               batch_size=w.batch_size)
    executable = batch.compile_chunk(10)
    monkeypatch.setattr(type(batch.chunk_lowerings[10]), "cost_analysis", lambda self: lowered)
    monkeypatch.setattr(type(executable), "cost_analysis", lambda self: compiled)
    flops.count_flops(batch)
    assert batch.usage.flops_per_step == counted
    assert ("flops" in batch.usage.missing) == (counted is None)


def test_update_share_and_utilisation_are_recorded():
    usage = train("adam", steps=250).usage
    assert usage.update_s > 0 and usage.cpu_util_mean is not None and usage.peak_rss_bytes > 0


def test_on_the_cpu_what_cannot_be_measured_is_recorded_as_missing():
    usage = train("sgd", steps=250).usage
    if jax.devices()[0].platform != "cpu":
        pytest.skip("this machine has an accelerator")
    assert usage.peak_device_bytes is None and "memory_stats" in usage.missing["peak_device_bytes"]
    assert usage.device_util_mean is None and "no NVIDIA GPU" in usage.missing["device_util"]
    assert usage.peak_flops is None and "peak FLOP/s unknown" in usage.missing["mfu"]


def test_nvml_that_fails_to_load_is_missing_not_a_crash(monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    sampler = usage.UsageSampler(interval_s=0.01)
    assert sampler._open_nvml("gpu") is None
    assert "NVML unavailable" in sampler.missing["device_util"]


def test_psutil_missing_leaves_cpu_figures_empty(monkeypatch):
    monkeypatch.setitem(sys.modules, "psutil", None)
    with usage.UsageSampler(interval_s=0.01) as sampler:
        pass
    summary = sampler.summary()
    assert summary["cpu_util_mean"] is None and summary["rss_sampled_peak_bytes"] is None
    assert "psutil unavailable" in sampler.missing["cpu"]


def test_the_sampler_samples_while_work_runs():
    with usage.UsageSampler(interval_s=0.01) as sampler:
        np.linalg.svd(np.random.default_rng(0).normal(size=(600, 600)))
    assert sampler.summary()["usage_samples"] >= 2 and sampler.summary()["cpu_util_mean"] > 0


def test_peak_table_finds_common_gpus():
    assert usage.peak_flops("NVIDIA H100 80GB HBM3") == 494.7e12
    assert usage.peak_flops("NVIDIA H100 PCIe") == 378e12
    assert usage.peak_flops("cpu") is None


def test_derived_columns_and_a_record_with_nothing_measured():
    measured = {**asdict(Usage()), "param_bytes": 100, "state_bytes": 200, "update_s": 0.00025,
                "flops_per_step": 1e6, "peak_flops": 1e12, "missing": {"x": "why"}}
    record = {"timings": {"train_s": 2.0, "step_time_median_s": 0.001}, "steps_trained": 1000,
              "seeds": [{}, {}], "usage": measured}
    columns = usage_columns(record)
    assert columns["state_to_param"] == 2.0 and columns["update_share"] == 0.25
    assert columns["achieved_flops_per_s"] == 1e6 * 2 * 1000 / 2.0
    assert columns["mfu"] == pytest.approx(1e9 / 1e12)
    assert json.loads(columns["missing"]) == {"x": "why"}
    nothing = usage_columns({"timings": {"train_s": 1.0}, "steps_trained": 10, "seeds": [{}],
                             "usage": asdict(Usage())})
    assert math.isnan(nothing["state_bytes"]) and math.isnan(nothing["mfu"])


def test_the_sampler_summary_is_copied_into_usage_by_field_name():
    with usage.UsageSampler(interval_s=0.01) as sampler:
        pass
    summary = sampler.summary()
    assert set(summary) <= {f.name for f in fields(Usage)}  # a renamed key would fail here
    assert dataclasses.replace(Usage(), **summary).usage_samples == summary["usage_samples"]
