"""Adding workloads: a plugin file that registers a workload (and an optimizer beside it),
an installed entry point in the group `optbench.workloads`, every way a workload plugin can
be broken (one line naming the file and line, the rest still loads, exit 2), widths, and
`new-workload`'s refusals."""
import sys

import pandas as pd
import pytest

from tests.conftest import ROOT, optbench_here, run_optbench
from tests.test_plugins import install_package, shell

BOTH = """\
import numpy as np
import jax.numpy as jnp
import optax
from flax import nnx

from models import MLP
from optimizers import LogUniform, register
from workloads import Dataset, Target, register_workload


@register("test:sign_sgd", learning_rate=LogUniform(1e-4, 1.0, default=0.01))
def sign_sgd(learning_rate: float):
    return optax.chain(optax.scale_by_sign(), optax.scale(-learning_rate))


def load(data_dir=None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = (x @ np.arange(1.0, 5.0))[:, None]
    return Dataset("lines", x[:200], y[:200], x[200:250], y[200:250], x[250:], y[250:])


def mse(out, y):
    return jnp.mean(jnp.square(out - y))


@register_workload("test:lines", data=load, loss=mse,
                   metric_sums=lambda out, y: {"loss": jnp.sum(jnp.square(out - y)[:, 0])},
                   metrics={"loss": "min"}, target=Target("val_loss", 0.5, "min"),
                   batch_size=32, steps=60, eval_every=20)
def lines(data, rngs):
    return MLP(4, (8,), 1, rngs=rngs)
"""


def test_one_file_registers_an_optimizer_and_a_workload_that_run_together(tmp_path):
    plugin = tmp_path / "both.py"
    plugin.write_text(BOTH)
    listed = run_optbench("list", "workloads", "--plugin", str(plugin))
    assert listed.returncode == 0, listed.stderr
    assert "test:lines" in listed.stdout and "generated" in listed.stdout
    result = run_optbench("run", "--plugin", str(plugin), "--workloads", "test:lines",
                          "--optimizers", "test:sign_sgd,sgd", "--seeds", "1", "--steps", "60",
                          "--no-report", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    assert set(runs.optimizer) == {"test:sign_sgd", "sgd"} and set(runs.status) == {"done"}
    assert set(runs.target_direction) == {"min"} and list(runs.columns)[-2:] != ["final_test_accuracy"]
    # the plugin's file is part of each cell's identity, by its content
    cells = [pd.read_json(p, typ="series") for p in (tmp_path / "out" / "cells").glob("*.json")]
    assert all("plugin:both.py" in cell["code"] for cell in cells)


# name -> (plugin source, words its one error line must contain)
BROKEN = {
    "wrong-direction": (
        "from workloads import Target, register_workload\n\n"
        "@register_workload('test:w', data='synthetic', target=Target('val_accuracy', 0.9, 'min'),\n"
        "                   batch_size=8, steps=10, eval_every=5)\n"
        "def w(data, rngs):\n    return None\n",
        ["line 3", "accuracy is better when maximised; the target says min"]),
    "no-loss-metric": (
        "from workloads import Target, register_workload\n\n"
        "@register_workload('test:w', data='synthetic', metrics={'mse': 'min'},\n"
        "                   target=Target('val_mse', 0.1, 'min'), batch_size=8, steps=10, eval_every=5)\n"
        "def w(data, rngs):\n    return None\n",
        ["line 3", "metrics must include 'loss'"]),
    "taken-workload": (
        "from workloads import Target, register_workload\n\n"
        "@register_workload('mnist1d-mlp', data='synthetic', target=Target('val_accuracy', 0.9),\n"
        "                   batch_size=8, steps=10, eval_every=5)\n"
        "def w(data, rngs):\n    return None\n",
        ["line 3", "workload 'mnist1d-mlp' is registered already", "classifiers.py"]),
    "bad-name": (
        "from workloads import Target, register_workload\n\n"
        "@register_workload('../up', data='synthetic', target=Target('val_accuracy', 0.9),\n"
        "                   batch_size=8, steps=10, eval_every=5)\n"
        "def w(data, rngs):\n    return None\n",
        ["line 3", "no path separators"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_workload_plugin_is_one_line_and_the_others_still_load(case, tmp_path):
    source, words = BROKEN[case]
    plugin = tmp_path / f"{case.replace('-', '_')}.py"
    plugin.write_text(source)
    result = run_optbench("list", "workloads", "--plugin", str(plugin))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optbench: error: plugin "), result.stderr
    assert str(plugin) in lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "mnist1d-mlp" in result.stdout and "Traceback" not in result.stderr


def test_a_workload_entry_point_is_found_when_installed(tmp_path):
    site = install_package(tmp_path, "tiny-workload-plugin", "optbench.workloads",
                           {"lines": BOTH.replace("test:", "tiny:")})
    listed = shell(f"{sys.executable} -m bench.cli list workloads", ROOT, extra_path=str(site))
    assert listed.returncode == 0, listed.stderr
    assert "tiny:lines" in listed.stdout and "mnist1d-mlp" in listed.stdout


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """The CLI in this process (a subprocess costs seconds of imports per case): its exit
    code, stdout and stderr."""
    from bench import cli as command_line

    code = command_line.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("argv,message", [
    (["--workloads", "mnist1d-logreg@w64"], "mnist1d-logreg has no width to scale"),
    (["--workloads", "mnist1d-mlp@w0"], "width 0 of mnist1d-mlp is out of range"),
    (["--workloads", "mnist1d-mlp@w99999999"], "out of range"),
    (["--workloads", "mnist1d-mpl@w64"], "unknown workload 'mnist1d-mpl@w64'"),
])
def test_a_bad_width_is_one_line(argv, message, capsys):
    code, _, err = cli(capsys, "run", *argv, "--optimizers", "sgd", "--dry-run")
    assert code == 2 and err.count("\n") == 1, err
    assert message in err, err


@pytest.mark.parametrize("widths,message", [
    ("[]", "widths must be a list of 1 to 64 integers"),
    ("[32, 32]", "repeat a width"),
    ("[0]", "from 1 to 65,536"),
    ("[true]", "integers"),
    ('"64"', "widths must be a list"),
])
def test_bad_widths_in_a_matrix_are_one_line(widths, message, tmp_path, capsys):
    matrix = tmp_path / "m.toml"
    matrix.write_text(f'workloads = ["synthetic-mlp"]\noptimizers = ["sgd"]\nwidths = {widths}\n')
    code, _, err = cli(capsys, "run", str(matrix), "--dry-run")
    assert code == 2 and err.count("\n") == 1, err
    assert message in err, err


def test_widths_expand_only_workloads_with_a_width(tmp_path, capsys):
    matrix = tmp_path / "m.toml"
    matrix.write_text('seeds = 1\nworkloads = ["synthetic-mlp", "synthetic-logreg"]\n'
                      'optimizers = ["sgd"]\nwidths = [8, 16]\n')
    code, out, err = cli(capsys, "run", str(matrix), "--dry-run")
    assert code == 0, err
    assert "3 cells" in out, out
    only_logreg = tmp_path / "l.toml"
    only_logreg.write_text('workloads = ["synthetic-logreg"]\noptimizers = ["sgd"]\nwidths = [8]\n')
    code, _, err = cli(capsys, "run", str(only_logreg), "--dry-run")
    assert code == 2 and "no workload of the matrix has a width" in err


@pytest.mark.parametrize("name,message", [
    ("My-Task", "must be lower case letters, digits, '-' and '_'"),
    ("mnist1d-mlp", "'mnist1d-mlp' is already registered"),
    ("a/b", "must be lower case"),
    ("registry", "reserves"),
    ("x" * 80, "characters long"),
])
def test_new_workload_refuses_bad_names(name, message, tmp_path):
    result = optbench_here("new-workload", name, "--dir", str(tmp_path), "--tests-dir", str(tmp_path))
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert message in result.stderr, result.stderr
    assert not list(tmp_path.iterdir())


def test_new_workload_never_overwrites_a_file_it_did_not_write(tmp_path):
    (tmp_path / "mine.py").write_text("# my own file\n")
    result = optbench_here("new-workload", "mine", "--dir", str(tmp_path), "--tests-dir", str(tmp_path),
                          "--force")
    assert result.returncode == 2 and "never overwritten" in result.stderr
    assert (tmp_path / "mine.py").read_text() == "# my own file\n"
    assert not (tmp_path / "test_mine.py").exists()
