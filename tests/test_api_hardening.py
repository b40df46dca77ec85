"""The issue-14 features under hostile input: TOML and JSON that crash their parsers
(an integer of thousands of digits, values nested thousands deep), `bench.run` given a
list that holds itself, pasted values echoed back in error lines, and logging backends
whose folder is a link or a file. No training: each case fails before a cell runs."""
from __future__ import annotations

import json
import shutil

import pytest

import bench
from bench import api, cli
from bench.errors import MatrixError, UserError
from bench.loggers.fanout import Loggers
from bench.plan import settings
from bench.runner.files import read_json
from tests.conftest import ROOT

HUGE_INT = "9" * 5000  # past Python's 4,300-digit limit on int(): tomllib raises ValueError
DEEP = "[" * 5000 + "]" * 5000  # past the recursion limit of tomllib and json
SMOKE = ["run", "--preset", "smoke", "--dry-run"]
MATRIX = {"workloads": ["synthetic-mlp"], "optimizers": ["optax:adam"]}


def one_line_error(capsys, *argv: str) -> str:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and err.count("\n") == 1, (code, out, err[:500])
    assert err.startswith("optbench: error: ") and "internal error" not in err
    return err.removeprefix("optbench: error: ").strip()


# ---- TOML a parser chokes on: one line, not "internal error" ------------------------------

@pytest.mark.parametrize("value", [HUGE_INT, DEEP], ids=["huge-int", "deep"])
def test_a_matrix_file_the_toml_parser_chokes_on_is_one_line(capsys, tmp_path, value):
    path = tmp_path / "m.toml"
    path.write_text(f'workloads = ["synthetic-mlp"]\noptimizers = ["optax:adam"]\nbudget = {value}\n')
    message = one_line_error(capsys, "run", str(path), "--dry-run")
    assert "not valid TOML" in message and len(message) < 400


@pytest.mark.parametrize("setting", [f"budget={HUGE_INT}", f"budget={DEEP}",
                                     f"workloads={DEEP}", "a." * 3000 + "b=1"],
                         ids=["huge-int", "deep-value", "deep-list", "deep-key"])
def test_a_set_the_toml_parser_chokes_on_is_one_short_line(capsys, setting):
    message = one_line_error(capsys, *SMOKE, "--set", setting)
    assert message.startswith("--set") and len(message) < 800  # the pasted value cut short


def test_settings_parse_raises_user_error_for_a_huge_integer_in_a_list():
    with pytest.raises(UserError, match="too long"):
        settings.parse(f"seeds=[{HUGE_INT}]")


def test_a_json_file_nested_thousands_deep_reads_as_bad_json(tmp_path):
    (tmp_path / "manifest.json").write_text(DEEP)
    with pytest.raises(ValueError, match="nested too deeply"):
        read_json(tmp_path / "manifest.json")


def test_a_results_folder_whose_manifest_is_nested_thousands_deep_is_one_line(capsys, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ROOT / "results" / "reference", run)
    (run / "manifest.json").write_text(DEEP)
    one_line_error(capsys, "report", str(run))


# ---- a pasted value echoed back: the line stays readable ---------------------------------

def test_an_argument_of_thousands_of_characters_is_echoed_cut_short(capsys):
    message = one_line_error(capsys, *SMOKE, "--steps", HUGE_INT)
    assert "is not an integer" in message and len(message) < 400 and "..." in message


# ---- bench.run with Python values TOML cannot hold ----------------------------------------

def test_bench_run_refuses_a_list_that_holds_itself_before_training(tmp_path):
    seeds: list = [0]
    seeds.append(seeds)
    with pytest.raises(MatrixError, match="nested too deeply"):
        bench.run(MATRIX, out=tmp_path / "out", seeds=seeds)
    assert not (tmp_path / "out").exists()


def test_bench_run_refuses_a_dict_nested_thousands_deep(tmp_path):
    deep: dict = {}
    for _ in range(5000):
        deep = {"name": "optax:adam", "b1": deep}
    with pytest.raises(MatrixError):
        bench.run(MATRIX, out=tmp_path / "out", optimizers=[deep])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", [{"synthetic-mlp"}, (w for w in ["synthetic-mlp"]), None],
                         ids=["set", "generator", "none"])
def test_bench_run_names_the_type_it_cannot_use_as_a_list(tmp_path, value):
    with pytest.raises(MatrixError, match="must be a list"):
        api._plan(dict(MATRIX), None, {"workloads": value}, None)


# ---- logging backends: their folder a link or a file --------------------------------------

@pytest.fixture
def finished_run(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(ROOT / "results" / "reference", run)
    return run


@pytest.mark.parametrize("backend,folder", [("tensorboard", "tensorboard"),
                                            ("mlflow", "mlruns"), ("wandb", "wandb")])
def test_a_backend_folder_that_is_a_link_is_refused_and_nothing_is_written_through_it(
        finished_run, tmp_path, backend, folder):
    outside = tmp_path / "outside"
    outside.mkdir()
    (finished_run / folder).symlink_to(outside)
    loggers = Loggers([backend])
    with pytest.raises(UserError, match=f"logging to {backend}: .* symbolic link"):
        loggers.check(finished_run)
    with pytest.raises(UserError, match="symbolic link"):
        loggers.open(finished_run, {})
    assert list(outside.iterdir()) == []


def test_a_backend_folder_that_is_a_file_is_refused_before_the_run_opens(capsys, finished_run):
    (finished_run / "tensorboard").write_text("mine")
    manifest = (finished_run / "manifest.json").read_text()
    message = one_line_error(capsys, "run", "--preset", "smoke", "--out", str(finished_run),
                             "--force", "--log", "tensorboard")
    assert "logging to tensorboard" in message and "is a file" in message
    assert (finished_run / "tensorboard").read_text() == "mine"
    assert (finished_run / "manifest.json").read_text() == manifest  # the run never opened
    assert json.loads(manifest)  # and the finished results are still there
    assert len(bench.load(finished_run).runs) > 0


def test_a_backend_folder_that_is_a_folder_is_created_and_used(tmp_path):
    Loggers(["tensorboard"]).check(tmp_path)  # missing: fine, nothing created
    assert list(tmp_path.iterdir()) == []


# ---- bench.load and bench.run given what is not a folder's path ---------------------------

@pytest.mark.parametrize("root", [None, 3, b"results/reference", ["results/reference"], "",
                                  "x" * 5000], ids=["none", "int", "bytes", "list", "empty",
                                                    "name-too-long"])
def test_bench_load_refuses_what_is_not_a_folder_path_with_a_user_error(root):
    for partial in (False, True):
        with pytest.raises(UserError):
            bench.load(root, partial=partial)


@pytest.mark.parametrize("keyword,value", [("out", 3), ("out", b"x"), ("out", ["x"]),
                                           ("out", "bad\0name"), ("data_dir", 3),
                                           ("out", "x" * 5000)],
                         ids=["int", "bytes", "list", "nul", "data-dir-int", "name-too-long"])
def test_bench_run_refuses_an_out_or_data_dir_that_is_not_a_path_before_training(
        tmp_path, monkeypatch, keyword, value):
    monkeypatch.chdir(tmp_path)  # the default out, results/<name>-<time>, would land here
    with pytest.raises(UserError):
        bench.run(MATRIX, seeds=1, steps=30, **{keyword: value})
    assert list(tmp_path.iterdir()) == []


def test_a_set_key_with_an_unquoted_optimizer_name_says_how_to_quote_it(capsys):
    message = one_line_error(capsys, *SMOKE, "--set", "optimizers.optax:adam.learning_rate=0.1")
    assert 'optimizers."optax:adam".learning_rate=VALUE' in message


def test_a_watch_interval_too_short_to_mean_anything_is_refused(capsys):
    message = one_line_error(capsys, "report", str(ROOT / "results" / "reference"), "--watch",
                             "--interval", "1e-300")
    assert "--interval must be at least" in message
