"""The Python API as a notebook uses it: `bench.run` on a dict, a file or a preset with
keyword overrides, silent unless asked, typed one-line exceptions and never SystemExit;
`Results.tidy()` for plotting; the README's notebook example, verbatim."""
import io
import os
import re
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

import bench
from bench.errors import (MatrixError, OptbenchError, RunFailed, RunInterrupted, UserError)
from bench.runner import tidy as tidy_mod
from tests.conftest import ROOT

FAST = {"workloads": ["rosenbrock-2d"], "optimizers": ["adam", {"name": "optax:sgd",
                                                                 "momentum": 0.9}]}
FAILING_PLUGIN = """\
import optax
from optimizers import register


@register("apitest:{name}")
def {name}(learning_rate: float = 0.1):
    def update(updates, state, params=None):
        {body}
    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)
"""


@pytest.fixture(scope="module")
def dict_run(tmp_path_factory):
    """A dict matrix: rosenbrock-2d x (adam, sgd with momentum), one seed, 30 steps."""
    out = tmp_path_factory.mktemp("api") / "dict"
    return bench.run(FAST, out=out, seeds=1, steps=30)


def plugin(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(FAILING_PLUGIN.format(name=name, body=body))
    return str(path)


def test_a_dict_matrix_returns_the_tables_bench_load_gives(dict_run):
    loaded = bench.load(dict_run.root)
    pd.testing.assert_frame_equal(dict_run.runs, loaded.runs)
    pd.testing.assert_frame_equal(dict_run.curves, loaded.curves)
    assert sorted(dict_run.runs["optimizer"]) == ["adam", "optax:sgd"]
    assert set(dict_run.runs["steps"]) == {30} and set(dict_run.runs["seed"]) == {0}
    assert dict_run.manifest["config"]["matrix"]["name"] == "matrix"


def test_a_file_matrix_with_overrides_prints_nothing(tmp_path, capfd):
    matrix = tmp_path / "m.toml"
    matrix.write_text('name = "from-file"\nseeds = 3\n'
                      'workloads = [{ name = "rosenbrock-2d", steps = 1000 }]\n'
                      'optimizers = ["adam"]\n')
    capfd.readouterr()
    results = bench.run(matrix, tmp_path / "out", seeds=(4,), steps=np.int64(20))  # as TOML's
    assert capfd.readouterr() == ("", "")
    # steps= replaces the workload entry's own budget, as `optbench run --steps` does
    assert list(results.runs["steps"]) == [20] and list(results.runs["seed"]) == [4]
    assert results.manifest["config"]["matrix"]["name"] == "from-file"


def test_a_preset_with_overrides_and_the_default_folder(tmp_path, monkeypatch, capfd):
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    results = bench.run(preset="smoke", workloads=["rosenbrock-2d"], optimizers=["adam"],
                        seeds=1, steps=20, name="my <run>")
    assert capfd.readouterr() == ("", "")
    assert results.root.parent == Path("results")
    assert re.fullmatch(r"my_run-\d{8}-\d{6}", results.root.name), results.root.name
    assert list(results.runs["workload"]) == ["rosenbrock-2d"]


def test_verbose_prints_the_cells_and_the_summary(dict_run, capfd):
    capfd.readouterr()
    again = bench.run(FAST, out=dict_run.root, seeds=1, steps=30, verbose=True)  # all saved
    out, err = capfd.readouterr()
    assert "2 of 2 cells already finished" in out + err
    assert "optbench summary" in out + err and f"results: {dict_run.root.resolve()}" in out + err
    pd.testing.assert_frame_equal(again.runs, dict_run.runs)


def test_progress_bars_draw_on_a_terminal_and_nothing_else_when_quiet(dict_run, capfd):
    from bench.plan import expand
    from bench.runner.driver import run_matrix

    plan, cells, _ = bench.api._plan(FAST, None, {"seeds": 1, "steps": 30}, None)
    terminal = io.StringIO()
    console = Console(file=terminal, force_terminal=True, width=100)
    assert run_matrix(plan, cells, dict_run.root, console=console, force=True) == 0
    assert "steps, cells" in terminal.getvalue()  # the run bar's own description
    capfd.readouterr()
    assert run_matrix(plan, expand.cells(plan), dict_run.root, console=Console(quiet=True),
                      force=True) == 0
    assert capfd.readouterr() == ("", "")


def test_progress_off_a_terminal_is_plain_lines(tmp_path, capfd):
    """A script whose stderr is a file or a pipe gets the CLI's plain progress lines, not
    the blank line rich's bars leave there."""
    bench.run({"workloads": ["rosenbrock-2d"], "optimizers": ["adam"]}, out=tmp_path / "r",
              seeds=1, steps=30, progress=True)
    out, err = capfd.readouterr()
    assert out == ""
    assert "progress: compile: rosenbrock-2d x adam" in err.splitlines()


@pytest.mark.parametrize("call,words", [
    (lambda out: bench.run({**FAST, "optimizers": ["adma"]}, out), ["unknown optimizer 'adma'",
                                                                    "did you mean: adam"]),
    (lambda out: bench.run({"workloads": ["rosenbrock-2d"], "optimisers": ["adam"]}, out),
     ["unknown key 'optimisers'", "did you mean: optimizers"]),
    (lambda out: bench.run(FAST, out, optimisers=["adam"]),
     ["unknown keyword 'optimisers'", "did you mean: optimizers"]),
    (lambda out: bench.run(FAST, out, verbos=True), ["did you mean: verbose"]),
    (lambda out: bench.run(FAST, out, seeds=0), ["bench.run(seeds)", "seeds must be at least 1"]),
    (lambda out: bench.run(FAST, out, steps="<b>20</b>"), ["'steps' must be a positive integer"]),
    (lambda out: bench.run({**FAST, "optimizers": [{"name": "adam", "learning_rate": -1}]}, out),
     ["learning_rate=-1 is invalid"]),
    (lambda out: bench.run(FAST, out, workloads=["rosenbrok-2d"]),
     ["bench.run(workloads=...)", "did you mean: rosenbrock-2d"]),
    (lambda out: bench.run(preset="smok", out=out), ["did you mean: smoke"]),
    (lambda out: bench.run(Path("no/such.toml"), out), ["does not exist"]),
    (lambda out: bench.run({**FAST, "plugins": ["no/such.py"]}, out), ["key 'plugins'"]),
    (lambda out: bench.run(42, out), ["a dict in the TOML's shape"]),
    (lambda out: bench.run(FAST, out, preset="smoke"), ["not both"]),
    (lambda out: bench.run({**FAST, 1: 2}, out), ["keys are names", "got the key 1"]),
    (lambda out: bench.run(FAST, out, seeds=range(10**12)), ["at most 1,000 seeds"]),
    (lambda out: bench.run(FAST, out, name="a/b"), ["without / or \\"]),
])
def test_a_bad_matrix_is_a_one_line_matrix_error_before_anything_runs(tmp_path, capfd, call,
                                                                      words):
    capfd.readouterr()
    with pytest.raises(MatrixError) as caught:
        call(tmp_path / "out")
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words), message
    assert isinstance(caught.value, UserError) and isinstance(caught.value, OptbenchError)
    assert not (tmp_path / "out").exists()
    assert capfd.readouterr() == ("", "")


def test_other_bad_input_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="unknown executor 'bogus'"):
        bench.run(FAST, tmp_path / "out", executor="bogus", seeds=1, steps=20)
    with pytest.raises(UserError, match="out is empty"):
        bench.run(FAST, "", seeds=1, steps=20)
    assert not (tmp_path / "out").exists()


def test_cells_that_error_raise_run_failed_with_the_results(tmp_path, capfd):
    path = plugin(tmp_path, "fails", 'raise RuntimeError("apitest: always fails")')
    capfd.readouterr()
    with pytest.raises(RunFailed) as caught:
        bench.run({**FAST, "optimizers": ["apitest:fails", "adam"], "plugins": [path]},
                  tmp_path / "out", seeds=1, steps=20)
    assert capfd.readouterr() == ("", "")
    message = str(caught.value)
    assert "\n" not in message and "1 of 2 cell(s)" in message
    assert "RuntimeError: apitest: always fails" in message
    runs = caught.value.results.runs.set_index("optimizer")
    assert runs.loc["apitest:fails", "status"] == "error" and runs.loc["adam", "status"] == "done"
    assert "apitest: always fails" in runs.loc["apitest:fails", "error"]


def test_a_sys_exit_mid_run_is_not_system_exit(tmp_path):
    path = plugin(tmp_path, "exits", "import sys; sys.exit(3)")
    with pytest.raises(OptbenchError, match="sys.exit"):
        bench.run({**FAST, "optimizers": ["apitest:exits"], "plugins": [path]},
                  tmp_path / "out", seeds=1, steps=20)


def test_an_interrupt_before_any_cell_finished_says_so(tmp_path):
    """As `optbench run` says it: not '0 finished cell(s) saved ... to finish the rest'."""
    path = plugin(tmp_path, "interrupts_at_once", "raise KeyboardInterrupt")
    with pytest.raises(RunInterrupted) as caught:
        bench.run({**FAST, "optimizers": ["apitest:interrupts_at_once"], "plugins": [path]},
                  tmp_path / "out", seeds=1, steps=20)
    assert str(caught.value) == ("interrupted before any cell finished; run the same call"
                                 " again to start again")
    assert caught.value.results.runs.empty


def test_an_interrupted_force_rerun_counts_only_its_own_cells(tmp_path):
    path = plugin(tmp_path, "interrupts_first", "raise KeyboardInterrupt")
    bench.run({**FAST, "optimizers": ["adam"]}, tmp_path / "out", seeds=1, steps=20)
    with pytest.raises(RunInterrupted) as caught:
        bench.run({**FAST, "optimizers": ["apitest:interrupts_first"], "plugins": [path]},
                  tmp_path / "out", seeds=1, steps=20, force=True)
    # nothing of this run to lose: the same call starts it again (resume=True would too)
    assert str(caught.value) == ("interrupted before any cell of this run finished; the 1"
                                 " cell(s) saved there by an earlier run are kept; run the"
                                 " same call again to start again")


def test_an_interrupted_force_rerun_of_the_same_matrix_names_what_resume_keeps(tmp_path):
    """resume=True, the one suggestion, never retrains the earlier run's cells that the
    force=True rerun was asked to: stopped before its first cell, it trained nothing at all.
    Cell files touched into the future (copied with their times, a clock that was ahead)
    were counted as this run's."""
    flag = tmp_path / "stop"
    path = plugin(tmp_path, "stops", f"import os\n        if os.path.exists({str(flag)!r}):"
                  " raise KeyboardInterrupt\n        return updates, state")
    matrix = {**FAST, "optimizers": ["adam", "apitest:stops"], "plugins": [path]}
    bench.run(matrix, tmp_path / "out", seeds=1, steps=20)
    future = time.time() + 86400
    for cell in (tmp_path / "out" / "cells").iterdir():
        os.utime(cell, (future, future))
    flag.write_text("")
    with pytest.raises(RunInterrupted) as caught:
        bench.run({**matrix, "optimizers": ["apitest:stops", "adam"]}, tmp_path / "out",
                  seeds=1, steps=20, force=True)
    assert str(caught.value) == ("interrupted before any cell of this run finished; the 2"
                                 " cell(s) saved there by an earlier run are kept; run the"
                                 " same call again to start again")
    with pytest.raises(RunInterrupted) as caught:
        bench.run(matrix, tmp_path / "out", seeds=1, steps=20, force=True)
    assert str(caught.value) == (
        f"interrupted: 1 finished cell(s) saved in {tmp_path / 'out'}; the 1 cell(s) saved"
        " there by an earlier run are kept; call again with resume=True in place of"
        " force=True to train only the missing cells (keeping those 1 as they are), or run"
        " the same call again to retrain every cell")


def test_an_interrupt_raises_run_interrupted_with_the_finished_cells(tmp_path):
    path = plugin(tmp_path, "interrupts", "raise KeyboardInterrupt")
    with pytest.raises(RunInterrupted) as caught:
        bench.run({**FAST, "optimizers": ["adam", "apitest:interrupts"], "plugins": [path]},
                  tmp_path / "out", seeds=1, steps=20)
    assert isinstance(caught.value, KeyboardInterrupt)
    assert str(caught.value).startswith(f"interrupted: 1 finished cell(s) saved in {tmp_path}")
    assert list(caught.value.results.runs["optimizer"]) == ["adam"]


def test_tidy_has_one_row_per_curve_point_and_a_column_per_hyperparameter(dict_run):
    table = dict_run.tidy()
    assert len(table) == len(dict_run.curves)
    hparams = ["accumulator_dtype", "b1", "b2", "eps", "eps_root", "learning_rate", "momentum",
               "nesterov"]
    curve_columns = [c for c in dict_run.curves.columns if c not in ("cell_id", "seed")]
    assert list(table.columns) == [*tidy_mod.DESCRIBED, *curve_columns, *hparams, "cell_id"]
    for name in ("b1", "eps", "learning_rate", "momentum"):
        assert table[name].dtype == "float64", name
    assert str(table["nesterov"].dtype) == "boolean"
    by_optimizer = table.groupby("optimizer")
    assert by_optimizer["momentum"].first().isna().to_dict() == {"adam": True,
                                                                  "optax:sgd": False}
    sgd = table[table["optimizer"] == "optax:sgd"]
    assert set(sgd["momentum"]) == {0.9} and set(sgd["label"]) == {"optax:sgd(momentum=0.9)"}
    # each row holds its own cell's values
    for (cell, seed), rows in table.groupby(["cell_id", "seed"]):
        run = dict_run.runs[(dict_run.runs.cell_id == cell) & (dict_run.runs.seed == seed)]
        assert len(run) == 1 and set(rows["workload"]) == {run["workload"].item()}
        assert list(rows["step"]) == list(dict_run.curves[dict_run.curves.cell_id == cell]["step"])


def test_tidy_types_hyperparameters_and_renames_one_named_like_a_column():
    runs = pd.DataFrame({
        "cell_id": ["a", "b", "c"], "seed": [0, 0, 0], "workload": ["w"] * 3,
        "optimizer": ["x", "y", "z"], "label": ["x", "y", "z"], "schedule": ["constant"] * 3,
        "role": ["oneshot"] * 3, "status": ["done", "diverged", "done"],
        "hparams": ['{"lr": 1, "step": 3, "k": 2, "flag": true, "kind": "a", "m": null}',
                    '{"lr": 0.5, "step": 4, "k": 5, "flag": false, "kind": null}',
                    '{"lr": 2, "step": 5, "k": 1, "kind": "b", "m": null}'],
    })
    curves = pd.DataFrame({"cell_id": ["c", "a", "a", "b"], "seed": [0, 0, 0, 0],
                           "step": [1, 1, 2, 1], "val_loss": [0.1, 0.2, 0.3, 0.4]})
    table = tidy_mod.tidy(runs, curves)
    assert list(table["cell_id"]) == ["c", "a", "a", "b"]  # curves' rows, in their order
    assert list(table.columns) == [*tidy_mod.DESCRIBED, "step", "val_loss", "flag", "k", "kind",
                                   "lr", "m", "hparam_step", "cell_id"]
    assert table["lr"].dtype == "float64" and table["k"].dtype == "int64"
    assert table["m"].dtype == "float64" and table["m"].isna().all()  # null wherever set
    assert table["hparam_step"].tolist() == [5, 3, 3, 4] and table["step"].tolist() == [1, 1, 2, 1]
    assert str(table["flag"].dtype) == "boolean" and table["flag"].isna().tolist()[0]
    assert table["kind"].tolist() == ["b", "a", "a", None]
    assert list(table["status"]) == ["done", "done", "done", "diverged"]


def test_tidy_of_a_run_with_no_finished_cells_is_empty():
    from bench.runner import schema

    empty = tidy_mod.tidy(schema.frame([], "runs"), schema.frame([], "curves"))
    assert len(empty) == 0 and list(empty.columns) == [
        *tidy_mod.DESCRIBED, "step", "train_seconds", "train_loss", "val_loss", "test_loss",
        "cell_id"]


def test_results_readme_lists_the_tidy_columns():
    readme = (ROOT / "results" / "README.md").read_text()
    assert ", ".join(f"`{c}`" for c in tidy_mod.DESCRIBED) + ": as in runs.parquet" in readme


def readme_notebook_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("### From a notebook", 1)[1].split("\n##", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 1
    return textwrap.dedent(blocks[0])


def test_the_readme_notebook_example_runs_verbatim(tmp_path, monkeypatch, capsys):
    import matplotlib

    matplotlib.use("Agg")  # no display here; a notebook has its own backend
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(readme_notebook_block(), "README.md", "exec"), namespace)
    curves = namespace["curves"]
    assert set(curves["optimizer"]) == {"adam", "sgd"} and set(curves["seed"]) == {0}
    assert curves["step"].max() == 300 and curves["val_accuracy"].notna().all()
    assert (tmp_path / "results" / "notebook" / "runs.parquet").is_file()
    assert "val_accuracy" in capsys.readouterr().out  # its print
