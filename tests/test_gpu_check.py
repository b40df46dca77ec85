"""tools/gpu_check.py --small: the script a GPU session runs once, on its scarce device time,
works end to end here first (every part prints its figures, exit 0)."""
import json

import numpy as np
import pytest

from tools import gpu_check


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
                                  ["--only", "preset,bogus"]])
def test_a_budget_or_parts_that_make_no_sense_are_a_usage_line(argv, capsys):
    assert gpu_check.main(argv) == 2
    assert capsys.readouterr().err.startswith("usage: ")



def _out_dir(kind: str, tmp_path) -> str:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    return {"a file": str(blocker), "under a file": str(blocker / "run"),
            "a dangling link": str(tmp_path / "dangling"), "empty": "",
            "a NUL": "run\x00"}[kind]


@pytest.mark.parametrize("kind", ["a file", "under a file", "a dangling link", "empty", "a NUL"])
def test_an_out_dir_that_cannot_be_made_is_one_line(kind, tmp_path, capsys):
    """Before any part spends device time: one line on stderr and exit 2, no traceback."""
    assert gpu_check.main([_out_dir(kind, tmp_path), "--small"]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("gpu_check: cannot use ") and " as OUT_DIR: " in captured.err
    assert captured.err.count("\n") == 1 and not captured.out


def test_a_budget_of_any_size_bounds_the_runs_without_overflowing(tmp_path, capsys):
    """`--budget 1e9` is accepted as 'no real bound'; subprocess refuses a timeout that
    large (OverflowError), which failed the preset and compile-ahead parts."""
    code, _ = gpu_check.optbench_run(["--preset", "no-such-preset"], str(tmp_path / "run"),
                                     str(tmp_path / "cache"), gpu_check.Budget(1e9))
    assert code == 2  # optbench's own usage error, from the process that ran
    assert "optbench run exited 2" in capsys.readouterr().out


def test_the_figures_file_is_strict_json(tmp_path, monkeypatch):
    """A figure that came out NaN or infinite (a zero wall clock, a failed count) is null
    in gpu_check.json, which any JSON reader then reads (json.dump wrote a bare NaN)."""
    def flops_check(figures):
        figures["chunk_flops"] = {"ratio": float("nan"), "peak": float("inf"), "count": np.int64(3)}
    monkeypatch.setattr(gpu_check, "flops_check", flops_check)
    assert gpu_check.main([str(tmp_path / "run"), "--small", "--only", "flops"]) == 0
    text = (tmp_path / "run" / "gpu_check.json").read_text()
    assert json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))[
        "chunk_flops"] == {"ratio": None, "peak": None, "count": 3}
    assert [p.name for p in (tmp_path / "run").iterdir()] == ["gpu_check.json"]  # no temp file


def test_ctrl_c_keeps_the_figures_measured_so_far(tmp_path, capsys, monkeypatch):
    """Device minutes are scarce: a Ctrl-C in one part skips the rest, writes what the
    parts before it measured and exits 130, in a line and not a traceback."""
    def flops_check(figures):
        figures["chunk_flops"] = {"ratio": 1.0}

    def sweep_gain(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(gpu_check, "flops_check", flops_check)
    monkeypatch.setattr(gpu_check, "sweep_gain", sweep_gain)
    assert gpu_check.main([str(tmp_path / "run"), "--small", "--only", "flops,sweep,engine"]) == 130
    captured = capsys.readouterr()
    assert "sweep gain interrupted: the parts after it are skipped" in captured.out
    assert "engine vs bare" not in captured.out and "Traceback" not in captured.err
    assert json.loads((tmp_path / "run" / "gpu_check.json").read_text())["chunk_flops"] == {
        "ratio": 1.0}
