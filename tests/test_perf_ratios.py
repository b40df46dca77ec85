"""tools/perf_ratios.py: each `make bench` figure beside its goal, from a bench.json."""
import json

import pytest

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
    bench("monitor-cost", 0.1, 1.0, pairs=[pair("on/off", 1.01, 1.0)], start_stop_ms=0.84),
    bench("overhead", None, 0.0, first_wall_s=100.0, first_train_s=75.0, rerun_wall_s=80.0,
          rerun_train_s=60.0, first_overhead_share=0.25, rerun_overhead_share=0.25,
          **{f"{run}_{c}": 1.0 for run in ("first", "rerun") for c in
             ("compile_s", "compile_cached_s", "setup_s", "probe_s", "eval_s")},
          compile_cold_s=40.0, compile_cache_hit_s=4.0, same_code_judged=46,
          same_code_beyond_noise=32, same_code_regressions_15=1, same_code_ratio_min=0.84,
          same_code_ratio_max=1.8),
]}


def test_each_figure_is_printed_with_its_goal_and_verdict(tmp_path, capsys):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(REPORT))
    perf_ratios.main(str(path))
    lines = capsys.readouterr().out.splitlines()
    line = {key: next(l for l in lines if key in l) for key in
            ("bare_args", "bare_const", "sweep/separate", "vmap/sequential", "first run",
             "rerun ", "from the cache", "on/off", "starting and stopping", "same code")}
    assert "speed 1.00x" in line["bare_args"] and "meets" in line["bare_args"]
    assert "speed 0.90x" in line["bare_const"] and "MISSES" in line["bare_const"]
    assert "speed 2.00x" in line["sweep/separate"] and "goal >= 1.30x  meets" in line["sweep/separate"]
    assert "speed 1.20x" in line["vmap/sequential"] and "MISSES" in line["vmap/sequential"]
    assert "25.0%" in line["first run"] and "goal < 30%  meets" in line["first run"]
    assert "goal < 15%  MISSES" in line["rerun "]
    assert "0.10x the time" in line["from the cache"] and "meets" in line["from the cache"]
    assert " 1.010x the time  goal <= 1.02x  meets" in line["on/off"]
    assert "at 0.1 s" in line["starting and stopping"] and "0.84 ms" in line["starting and stopping"]
    assert line["same code"].endswith(
        "46 cells judged, 32 read faster or slower beyond the chunks' noise, speed ratios"
        " 0.84-1.80x; --fail-on-regression 15 flags 1  goal 0  MISSES")


PARTIAL = {"benchmarks": [
    {"group": "seeds:x", "param": "vmap", "stats": {"median": 0.0}},  # no extra_info
    {"group": "seeds:x", "param": "sequential", "stats": {"median": 0.0}, "extra_info": None},
    {"group": "engine-vs-bare:1", "param": "p", "extra_info": {"pairs": [
        {"sides": "engine/bare", "a_median_s": 0.0, "b_median_s": 0.0, "ratio_median": 0.0},
        {}, "not a pair"]}},
    {"group": "overhead", "param": None, "extra_info": {"first_overhead_share": 0.2,
                                                        "compile_cold_s": 0.0}},
    "not a benchmark",
]}


def test_a_partial_report_prints_what_it_can_and_never_divides_by_zero(tmp_path, capsys):
    """Zero medians, a benchmark without extra_info, pairs and overhead figures missing:
    each raised (ZeroDivisionError, AttributeError, KeyError) before."""
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(PARTIAL))
    assert perf_ratios.main(str(path)) == 0
    out = capsys.readouterr().out
    assert "overhead share, first run   20.0%" in out and "goal < 30%  meets" in out
    assert "compile from the cache  ? s vs 0.0 s compiling (?x the time)" in out
    assert out.count("no ratio (a median missing or zero)") == 3  # 2 pairs + vmap/sequential


@pytest.mark.parametrize("content,code,says", [
    ("{\"benchmarks\": []}", 0, "holds no benchmarks"),
    ("{}", 2, "not a pytest-benchmark report"),
    ("[1, 2]", 2, "not a pytest-benchmark report"),
    ("not json", 2, "cannot read"),
])
def test_an_empty_or_foreign_file_is_one_line(tmp_path, capsys, content, code, says):
    path = tmp_path / "bench.json"
    path.write_text(content)
    assert perf_ratios.main(str(path)) == code
    captured = capsys.readouterr()
    assert says in captured.err and len(captured.err.strip().splitlines()) == 1
    assert perf_ratios.main(str(tmp_path / "missing.json")) == 2


@pytest.mark.parametrize("start_stop", [
    "\"0.84\"", "NaN", "null", "-5", "[1, 2]", "{\"ms\": 1}", "true", "Infinity",
    "1" + "0" * 400,  # an integer JSON reads whole: turning it into a float overflowed
])
def test_a_malformed_start_stop_time_prints_no_line_for_it_and_the_rest_as_ever(
        tmp_path, capsys, start_stop):
    report = json.dumps(REPORT).replace("\"start_stop_ms\": 0.84",
                                        f"\"start_stop_ms\": {start_stop}")
    report = report.replace("\"first_wall_s\": 100.0", "\"first_wall_s\": 1" + "0" * 400)
    path = tmp_path / "bench.json"
    path.write_text(report)
    assert perf_ratios.main(str(path)) == 0
    out = capsys.readouterr().out
    assert "starting and stopping" not in out  # a negative time or none at all: no figure
    assert "monitor-cost[0.1]" in out and "overhead share, rerun" in out


def test_a_huge_start_stop_time_is_one_short_figure(tmp_path, capsys):
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(REPORT).replace("\"start_stop_ms\": 0.84",
                                               "\"start_stop_ms\": 1e300"))
    assert perf_ratios.main(str(path)) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if "starting and stopping" in l]
    assert len(line) == 1 and "took 1e+300 ms" in line[0]


@pytest.mark.parametrize("value", ["1e300", "-3"])
def test_huge_or_negative_overhead_figures_print_short_and_never_as_counts(
        tmp_path, capsys, value):
    """Overhead figures hand-edited to 1e300 printed 300 digits (a wall, a share, a speed
    ratio); a negative count of cells read as one ('flags -3  goal 0  MISSES') and a
    negative speed ratio as a spread."""
    info = REPORT["benchmarks"][-1]["extra_info"]
    edited = {**info, **{key: value for key in info if key in (
        "same_code_beyond_noise", "same_code_regressions_15", "same_code_ratio_min",
        "same_code_ratio_max", "first_wall_s", "first_overhead_share", "compile_cache_hit_s")}}
    report = {"benchmarks": [{**REPORT["benchmarks"][-1], "extra_info": edited},
                             bench("sweep-vs-separate", "x", 1.0, pairs=[{
                                 "sides": "s/t", "a_median_s": 1.0, "b_median_s": 1.0,
                                 "ratio_median": value}])]}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps(report).replace(f'"{value}"', value))
    assert perf_ratios.main(str(path)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) < 250 for line in lines), max(lines, key=len)
    same = next(line for line in lines if "same code" in line)
    if value == "-3":
        assert same.endswith("46 cells judged, ? read faster or slower beyond the chunks'"
                             " noise; --fail-on-regression 15 flags ?  goal 0  ?")
    else:
        assert "speed ratios 1e+300-1e+300x" in same and "flags 1e+300" in same
