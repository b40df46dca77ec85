"""tools/perf_ratios.py: each `make bench` figure beside its goal, from a bench.json."""
import json

from tools import perf_ratios


def bench(group, param, median, **info):
    return {"group": group, "param": param, "stats": {"median": median}, "extra_info": info}


def pair(sides, a, b):
    return {"sides": sides, "a_median_s": a, "b_median_s": b, "ratio_median": a / b}


REPORT = {"benchmarks": [
    bench("engine-vs-bare:1-seed", "mnist1d-mlp-1", 1.0,
          pairs=[pair("engine/bare_args", 1.0, 1.0), pair("engine/bare_const", 1.0, 0.9)]),
    bench("sweep-vs-separate", "mnist1d-cnn", 1.0, pairs=[pair("sweep/separate", 1.0, 2.0)]),
    bench("seeds:mnist1d-mlp", "vmap", 1.0), bench("seeds:mnist1d-mlp", "sequential", 1.2),
    bench("overhead", None, 0.0, first_wall_s=100.0, first_train_s=75.0, rerun_wall_s=80.0,
          rerun_train_s=60.0, first_overhead_share=0.25, rerun_overhead_share=0.25,
          **{f"{run}_{c}": 1.0 for run in ("first", "rerun") for c in
             ("compile_s", "compile_cached_s", "setup_s", "probe_s", "eval_s")},
          compile_cold_s=40.0, compile_cache_hit_s=4.0),
]}


def test_each_figure_is_printed_with_its_goal_and_verdict(tmp_path, capsys):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(REPORT))
    perf_ratios.main(str(path))
    lines = capsys.readouterr().out.splitlines()
    line = {key: next(l for l in lines if key in l) for key in
            ("bare_args", "bare_const", "sweep/separate", "vmap/sequential", "first run",
             "rerun ", "from the cache")}
    assert "speed 1.00x" in line["bare_args"] and "meets" in line["bare_args"]
    assert "speed 0.90x" in line["bare_const"] and "MISSES" in line["bare_const"]
    assert "speed 2.00x" in line["sweep/separate"] and "goal >= 1.30x  meets" in line["sweep/separate"]
    assert "speed 1.20x" in line["vmap/sequential"] and "MISSES" in line["vmap/sequential"]
    assert "25.0%" in line["first run"] and "goal < 30%  meets" in line["first run"]
    assert "goal < 15%  MISSES" in line["rerun "]
    assert "0.10x the time" in line["from the cache"] and "meets" in line["from the cache"]
