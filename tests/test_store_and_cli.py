import json
from pathlib import Path

import pandas as pd
import pytest

from bench import cli
from bench.runner import schema
from bench.runner.store import RunStore
from bench.runner.results import load
from tests.conftest import optbench_here, run_optbench


def test_run_writes_the_results_folder(smoke_run):
    manifest = json.loads((smoke_run / "manifest.json").read_text())
    assert manifest["schema_version"] == schema.SCHEMA_VERSION
    assert manifest["device"]["platform"] == "cpu"
    assert manifest["versions"]["jax"] and manifest["host"]["cpus"] >= 1
    assert len(manifest["config"]["cells"]) == 2
    results = load(smoke_run)
    runs, curves = results.runs, results.curves
    # the declared columns, then the classifier's own metric: accuracy, per split
    assert list(runs.columns) == schema.names(schema.RUNS) + ["final_test_accuracy",
                                                               "final_val_accuracy"]
    assert list(curves.columns) == schema.names(schema.CURVES) + ["test_accuracy", "val_accuracy"]
    assert len(runs) == 2 * 2  # cells x seeds
    assert set(runs["status"]) == {"done"}
    assert len(curves) == 2 * 2 * 4  # cells x seeds x eval points
    assert not list(smoke_run.rglob("*.tmp"))  # no temporary file left behind


def test_rerun_skips_finished_cells(smoke_run, capsys):
    before = {p.name: p.stat().st_mtime_ns for p in (smoke_run / "cells").glob("*.json")}
    assert cli.main(["run", "--preset", "smoke", "--out", str(smoke_run)]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (smoke_run / "cells").glob("*.json")}
    assert before == after
    assert "2 of 2 cells already finished" in capsys.readouterr().err


def test_no_report_saves_the_results_and_says_how_to_write_the_report(tmp_path):
    out = tmp_path / "my run"
    args = ["run", "--workloads", "rosenbrock-2d", "--optimizers", "adam", "--steps", "20",
            "--seeds", "1", "--no-report", "--out", str(out)]
    first = optbench_here(*args)
    assert first.returncode == 0, first.stderr
    assert len(load(out).runs) == 1
    assert not {"report.html", "report.md", "plots"} & {p.name for p in out.iterdir()}
    assert first.stderr.splitlines()[-1] == (
        f"report: not written (--no-report); `optbench report '{out}'` writes it")  # pastes as is
    assert optbench_here("report", str(out)).returncode == 0
    assert (out / "report.html").is_file() and (out / "plots" / "curves_by_step.png").is_file()
    again = optbench_here(*args)  # an older report is not taken for this run's
    assert again.stderr.splitlines()[-1] == (
        "report: not written (--no-report); the report.html and report.md there predate this"
        f" run; `optbench report '{out}'` writes it")


@pytest.mark.parametrize("name", ["-dash", "line\nbreak", "esc\x1b[31mred", "q'uote\\\ttab"])
def test_the_report_command_pastes_into_a_shell_as_the_folder_it_names(tmp_path, name):
    """A leading dash read as an option, or a control character shown escaped inside '...'
    (another folder's name), made the pasted command fail or name the wrong folder."""
    import shutil
    import subprocess

    from bench.commands import report_command

    command = report_command(Path(name))
    assert command.isprintable() and command.startswith("optbench report ")
    word = command.removeprefix("optbench report ")
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("no bash to paste into")
    pasted = subprocess.run([bash, "-c", f"printf %s {word}"], capture_output=True, text=True,
                            check=True).stdout
    assert Path(pasted) == Path(name) and not pasted.startswith("-")


def test_no_report_names_each_older_report_in_the_folder(tmp_path):
    from bench.commands import no_report_line

    (tmp_path / "report.md").write_text("an older run's")
    assert no_report_line(tmp_path).startswith(
        "report: not written (--no-report); the report.md there predates this run; ")


def test_an_optimizer_that_raises_is_an_error_cell_and_the_rest_run(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text(
        "import optax\nfrom optimizers import register\n\n"
        "@register('test:broken', learning_rate=0.1)\n"
        "def broken(learning_rate):\n"
        "    def update(g, s, p=None):\n"
        "        raise RuntimeError('update exploded')\n"
        "    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)\n")
    out = tmp_path / "out"
    result = run_optbench("run", "--preset", "smoke", "--optimizers", "test:broken,optax:sgd",
                          "--plugin", str(plugin), "--no-report", "--out", str(out))
    assert result.returncode == 1, result.stderr
    runs = pd.read_parquet(out / "runs.parquet")
    statuses = runs.groupby("optimizer")["status"].agg(set).to_dict()
    assert statuses == {"test:broken": {"error"}, "optax:sgd": {"done"}}
    assert "update exploded" in runs.loc[runs.optimizer == "test:broken", "error"].iloc[0]
    assert set(RunStore(out).finished()) == {runs.loc[runs.optimizer == "optax:sgd", "cell_id"].iloc[0]}


@pytest.mark.parametrize("args,message", [
    (["run", "--workloads", "mnist1d-mpl"], "did you mean: mnist1d-mlp"),
    (["run", "--optimizers", "optax:adamm"], "did you mean: optax:adam"),
    (["run", "--seeds", "two"], "seeds must be a count"),
    (["run", "--steps", "0"], "must be at least 1"),
    (["run", "--preset", "nope"], "unknown preset 'nope'"),
    (["run", "--workloads", "mnist-cnn", "--data-dir", "/nonexistent"], "train-images-idx3-ubyte"),
    (["run", "--workloads", "mnist-cnn"], "pass --data-dir DIR (or set OPTBENCH_DATA)"),
    (["run", "--plugin", "missing.py"], "plugin file missing.py does not exist"),
    (["run", "--cell-timeout", "5"], "--cell-timeout needs --executor processes"),
    (["run", "--executor", "processes", "--compile-ahead"],
     "--compile-ahead needs --executor local"),
    (["run", "--executor", "processes", "--cell-timeout", "0"], "must be more than 0"),
    (["run", "--address", "tcp://localhost:1"], "--address is for --executor dask"),
    (["run", "--executor", "threads"], "invalid choice: 'threads'"),
    (["lst"], "invalid choice"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    result = optbench_here(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_input_is_one_line_on_a_real_processs_stderr():
    """The cases above run in this process; this one is the user's: nothing else (a library's
    warning, a traceback at exit) reaches the terminal."""
    result = run_optbench("run", "--workloads", "mnist1d-mpl")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        "optbench: error: " + result.stderr.split("optbench: error: ", 1)[1].strip()]
    assert "did you mean: mnist1d-mlp" in result.stderr


def test_bad_hyperparameter_in_a_matrix_file(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('workloads = ["synthetic-mlp"]\n'
                    'optimizers = [{ name = "optax:adam", learning_rate = "big" }]\n')
    result = optbench_here("run", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "learning_rate='big' is invalid" in result.stderr


def test_list_commands():
    result = run_optbench("list", "optimizers")
    assert result.returncode == 0 and "optax:schedule_free_adamw" in result.stdout
    result = optbench_here("list", "workloads")
    assert result.returncode == 0 and "mnist1d-cnn" in result.stdout


def test_a_bare_optbench_prints_its_help_and_exits_0(capsys):
    from bench import cli

    assert cli.main([]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: optbench") and "new-workload" in out


def test_version_names_optbench_and_the_libraries_it_runs_with(capsys):
    import importlib.metadata

    from bench import __version__, cli

    with pytest.raises(SystemExit) as exited:
        cli.main(["--version"])
    assert exited.value.code == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith(f"optbench {__version__} (")
    assert f"optax {importlib.metadata.version('optax')}" in out
