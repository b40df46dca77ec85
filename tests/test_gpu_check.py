"""tools/gpu_check.py --small: the script a GPU session runs once, on its scarce device time,
works end to end here first (every part prints its figures, exit 0)."""
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pandas as pd
import pytest

from tools import gpu_check

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_small_check_prints_every_part(tmp_path, capsys):
    assert gpu_check.main([str(tmp_path / "run"), "--small"]) == 0
    out = capsys.readouterr().out
    for part in ("jax ", "the compiled count is one step's whatever the chunk length", "smoke preset (--small), median over the cells of each workload:",
                 "first run, empty caches: wall", "engine vs bare loops",
                 "sweep gain, 2 rates x 2 seeds", "largest sweep that fits",
                 "mnist1d-mlp: the largest sweep tried that fits: 4 members (the cap)",
                 "--compile-ahead, empty caches: wall", "gpu_check took"):
        assert part in out, part
    assert "synthetic-mlp" in out  # part 2's table has the smoke preset's workload
    assert "failed" not in out and "skipped" not in out
    figures = json.loads((tmp_path / "run" / "gpu_check.json").read_text())
    assert set(figures) >= {"device", "preset", "sweep_gain", "engine_vs_bare", "largest_sweep",
                            "compile_ahead_wall_s"}
    assert [row["members"] for row in figures["largest_sweep"]["mnist1d-mlp"]] == [2, 4]
    assert "synthetic-mlp" in (tmp_path / "run" / "preset.log").read_text()


def test_a_spent_budget_skips_what_is_left_and_says_so(tmp_path, capsys, monkeypatch):
    """The device's minutes are few: past the budget no part starts, each says it was
    skipped, and the figures measured so far are still written."""
    budget = gpu_check.Budget(60)
    budget.start -= 61  # as if a minute had gone by
    monkeypatch.setattr(gpu_check, "Budget", lambda seconds: budget)
    assert gpu_check.main([str(tmp_path / "run"), "--small", "--budget", "60"]) == 0
    out = capsys.readouterr().out
    for name in ("flops check", "preset run", "sweep gain", "engine vs bare", "largest sweep mnist1d-mlp",
                 "compile ahead"):
        assert f"skipped: {name} (the budget of 60 s is spent)" in out
    assert set(json.loads((tmp_path / "run" / "gpu_check.json").read_text())) == {"device"}


def test_only_runs_the_parts_named(tmp_path, capsys):
    assert gpu_check.main([str(tmp_path / "run"), "--small", "--only", "flops,sweep"]) == 0
    out = capsys.readouterr().out
    assert "FLOPs of a 2-member mnist1d-mlp chunk" in out and "sweep gain, 2 rates" in out
    for other in ("smoke preset", "engine vs bare", "largest sweep", "--compile-ahead"):
        assert other not in out
    assert set(json.loads((tmp_path / "run" / "gpu_check.json").read_text())) == {
        "device", "chunk_flops", "sweep_gain"}


def test_a_preset_run_that_finishes_no_cell_is_one_line(tmp_path, capsys):
    """part 2 fails (here: its folder is under a file) and says so; no traceback from
    reading the tables it never wrote."""
    blocker = tmp_path / "file"
    blocker.write_text("not a results folder")
    assert gpu_check.preset_run(str(blocker), True, gpu_check.Budget(None), {}) != 0
    assert "the preset run finished no cell (exit 2): no figures for part 2" in \
        capsys.readouterr().out


@pytest.mark.parametrize("argv", [["--budget"], ["--budget", "x"], ["--budget", "0"],
                                  ["--budget", "nan"], ["--budget", "inf"], ["--only"],
                                  ["--only", "preset,bogus"], ["--only", ","], ["--smal"]])
def test_a_budget_or_parts_that_make_no_sense_are_one_line(argv, capsys):
    assert gpu_check.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu_check: ") and err.endswith("(see `python3 tools/gpu_check.py --help`)\n")
    assert err.count("\n") == 1


def test_a_misspelt_part_names_the_close_one(capsys):
    assert gpu_check.main(["--only", "flops,presets"]) == 2
    assert "unknown part 'presets' (did you mean 'preset'?)" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_the_usage_and_the_parts_and_runs_nothing(flag, tmp_path, capsys):
    """--help was a usage error (exit 2), after importing JAX for nothing."""
    assert gpu_check.main([str(tmp_path / "run"), flag, "--small"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python3 tools/gpu_check.py [-h] [--small] [--budget SECONDS]")
    for part in gpu_check.PARTS:
        assert f"{part}: " in out, part
    assert "jax[cuda13]" in out and "--budget SECONDS" in out
    assert not (tmp_path / "run").exists()


def test_without_its_dependencies_help_works_and_a_run_is_one_line(tmp_path):
    """A GPU machine not set up yet: --help still answers, a run names what is missing
    instead of a traceback (and, run as a script, it needs no PYTHONPATH)."""
    hide_jax = ("import runpy, sys; sys.modules['jax'] = None; sys.argv = sys.argv[1:];"
                " runpy.run_path(sys.argv[0], run_name='__main__')")
    script = os.path.join(ROOT, "tools", "gpu_check.py")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    def run(*args):
        return subprocess.run([sys.executable, "-c", hide_jax, script, *args], cwd=tmp_path,
                              env=env, capture_output=True, text=True)

    helped = run("--help")
    assert helped.returncode == 0 and "usage: python3 tools/gpu_check.py" in helped.stdout
    refused = run(str(tmp_path / "run"), "--small")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.startswith("gpu_check: import of jax halted") or \
        refused.stderr.startswith("gpu_check: No module named")
    assert refused.stderr.count("\n") == 1 and "jax[cuda13]" in refused.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.skipif(jax.devices()[0].platform != "cpu", reason="needs a CPU-only JAX")
def test_the_full_check_on_a_cpu_is_refused_in_one_line(tmp_path, capsys):
    """JAX without CUDA on a GPU machine falls back to the CPU: the full check would spend
    the device's minutes measuring the host (and try 65,536-member sweeps in its memory)."""
    assert gpu_check.main([str(tmp_path / "run"), "--only", "flops"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu_check: JAX sees no accelerator") and "--small" in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("where", ["a file", "under a file", "a dangling link", "empty",
                                   "a NUL"])
def test_an_out_dir_that_cannot_be_a_folder_is_one_line(where, tmp_path, capsys):
    """Before any part spends device time: one line on stderr and exit 2, no traceback."""
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    out = {"a file": str(blocker), "under a file": str(blocker / "run"),
           "a dangling link": str(tmp_path / "dangling"), "empty": "", "a NUL": "run\x00"}[where]
    assert gpu_check.main([out, "--small"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"gpu_check: cannot make the folder {out!r}")
    assert captured.err.count("\n") == 1 and not captured.out


def test_a_budget_of_any_size_bounds_the_runs_without_overflowing(tmp_path, capsys):
    """`--budget 1e9` is accepted as 'no real bound'; subprocess refuses a timeout that
    large (OverflowError), which failed the preset and compile-ahead parts."""
    code, _ = gpu_check.optbench_run(["--preset", "no-such-preset"], str(tmp_path / "run"),
                                     gpu_check.Budget(1e9))
    assert code == 2  # optbench's own usage error, from the process that ran
    assert "optbench run exited 2" in capsys.readouterr().out


def test_the_figures_file_is_strict_json(tmp_path, monkeypatch):
    """A figure that came out NaN or infinite (a zero wall clock, a failed count) is null
    in gpu_check.json, which any JSON reader then reads (json.dump wrote a bare NaN)."""
    def flops_check(figures):
        figures["chunk_flops"] = {"ratio": float("nan"), "peak": float("inf"),
                                  "count": np.int64(3)}
    monkeypatch.setattr(gpu_check, "flops_check", flops_check)
    assert gpu_check.main([str(tmp_path / "run"), "--small", "--only", "flops"]) == 0
    text = (tmp_path / "run" / "gpu_check.json").read_text()
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))[
        "chunk_flops"] == {"ratio": None, "peak": None, "count": 3}
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["gpu_check.json"]  # no temp file


def test_a_second_check_into_the_same_folder_measures_a_first_run_again(tmp_path, capsys,
                                                                        monkeypatch):
    """The runs' compilation caches were OUT_DIR/cache-*: a second check into the same
    folder loaded every program from them and still printed 'first run, empty caches';
    and a results folder keeps an earlier matrix's cells beside a --force run's."""
    runs = {}
    for run, optimizers in (("first", "adam,sgd"), ("second", "adam")):
        monkeypatch.setattr(gpu_check, "SMALL_PRESET", [
            "--workloads", "rosenbrock-2d" if run == "first" else "rosenbrock-2d,beale-2d",
            "--optimizers", optimizers, "--steps", "20", "--seeds", "1", "--no-report"])
        assert gpu_check.preset_run(str(tmp_path), True, gpu_check.Budget(None), {}) == 0
        runs[run] = pd.read_parquet(tmp_path / "preset" / "runs.parquet")
    second = runs["second"]
    again = second[second["workload"] == "rosenbrock-2d"].iloc[0]  # compiled in the first too
    assert again["compile_cache_hits"] == 0 and again["compile_s"] > 0  # a fresh cache
    assert set(zip(second["workload"], second["optimizer"])) == {  # the first's sgd cell gone
        ("rosenbrock-2d", "adam"), ("beale-2d", "adam")}
    assert "first run, empty caches: wall" in capsys.readouterr().out


def test_ctrl_c_keeps_the_figures_measured_so_far(tmp_path, capsys, monkeypatch):
    """The figures went to gpu_check.json only at the end: a Ctrl-C on the device's last
    minute lost them all (and printed a traceback)."""
    def interrupted(*args):
        args[-1]["sweep_gain"] = {"members": 4}  # what the part measured before the key
        raise KeyboardInterrupt

    monkeypatch.setattr(gpu_check, "sweep_gain", interrupted)
    assert gpu_check.main([str(tmp_path / "run"), "--small", "--only", "sweep,engine"]) == 130
    captured = capsys.readouterr()
    assert captured.err.startswith("interrupted after ") and "Traceback" not in captured.err
    assert "engine vs bare" not in captured.out
    assert json.loads((tmp_path / "run" / "gpu_check.json").read_text())["sweep_gain"] == {
        "members": 4}
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["gpu_check.json"]
