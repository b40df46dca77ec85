"""tools/gpu_check.py --small: the script a GPU session runs once, on its scarce device time,
works end to end here first (every part prints its figures, exit 0)."""
from tools import gpu_check


def test_small_check_prints_every_part(tmp_path, capsys):
    assert gpu_check.main([str(tmp_path / "run"), "--small"]) == 0
    out = capsys.readouterr().out
    for part in ("jax ", "smoke preset (--small), median over the cells of each workload:",
                 "engine vs bare loops", "sweep gain, 2 rates x 2 seeds", "largest sweep that"
                 " fits", "mnist1d-mlp: the largest sweep tried that fits: 4 members (the cap)",
                 "gpu_check took"):
        assert part in out, part
    assert "synthetic-mlp" in out  # part 2's table has the smoke preset's workload


def test_a_preset_run_that_finishes_no_cell_is_one_line(tmp_path, capsys):
    """part 2 fails (here: its --out is a file) and says so; no traceback from reading
    the tables it never wrote."""
    blocker = tmp_path / "file"
    blocker.write_text("not a results folder")
    assert gpu_check.quick_preset(str(blocker), small=True) != 0
    assert "the preset run finished no cell (exit 2): no figures for part 2" in \
        capsys.readouterr().out
