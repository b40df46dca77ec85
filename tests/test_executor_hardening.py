"""Executors and plugins under a hostile user: long-lived Dask workers and edited plugins,
malformed scheduler addresses, one plugin named many ways, plugin paths that are not Python
files, Ctrl-C under worker processes, optimizers that hang in `optbench check`, compile time
and --cell-timeout, and errors raised inside jit. Every wait here is on an event the test
controls (a file, a process's exit), never on a sleep."""
from __future__ import annotations

import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, run_optbench

SMOKE = ["--preset", "smoke", "--steps", "20", "--seeds", "1"]


def plugin(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.py"
    path.write_text("import optax\nimport jax\nfrom optimizers import register\n\n" + body)
    return path


SGD = '''
@register("{name}")
def factory(learning_rate: float = 0.1):
    return optax.sgd(learning_rate * {scale})
'''


def statuses(out: Path) -> dict[str, set[str]]:
    return pd.read_parquet(out / "runs.parquet").groupby("optimizer")["status"].agg(set).to_dict()


def wait_for(path: Path, process: subprocess.Popen, limit: float = 300) -> None:
    """Until `path` exists (written by the code under test); fails if the process ends first."""
    deadline = time.monotonic() + limit
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


# 3. One plugin named many ways loads once, in the driver and in workers.

def test_loading_a_plugin_again_by_any_path_is_a_no_op_until_it_changes(tmp_path, monkeypatch):
    from optimizers import plugins, registry

    path = plugin(tmp_path, "twice", SGD.format(name="hx:twice", scale=1))
    (tmp_path / "link.py").symlink_to(path)
    monkeypatch.chdir(tmp_path)
    try:
        names = [plugins.load_plugin_file(p) for p in
                 (path, "twice.py", "link.py", f"../{tmp_path.name}/twice.py")]
        assert names == [["hx:twice"]] * 4
        first = registry.get("hx:twice").factory
        path.write_text(path.read_text().replace("* 1)", "* 2)"))
        assert plugins.load_plugin_file("link.py") == ["hx:twice"]
        assert registry.get("hx:twice").factory is not first  # edited: the new code replaced it
        assert [s.path for s in plugins.loaded_sources()].count(str(path.resolve())) == 1
    finally:
        plugins.unload_plugin(str(path.resolve()))


@pytest.mark.parametrize("executor", ["local", "processes"])
def test_the_same_plugin_from_the_matrix_a_flag_and_a_symlink_runs_cleanly(tmp_path, executor):
    path = plugin(tmp_path, "dup", SGD.format(name="hx:dup", scale=1))
    (tmp_path / "link.py").symlink_to(path)
    matrix = tmp_path / "m.toml"
    matrix.write_text(f'name = "dup"\nseeds = 1\nsteps = 20\nworkloads = ["synthetic-mlp"]\n'
                      f'optimizers = ["hx:dup"]\nplugins = ["{path}"]\n')
    result = subprocess.run(
        [sys.executable, "-m", "bench.cli", "run", str(matrix), "--plugin", "dup.py",
         "--plugin", "link.py", "--plugin", f"../{tmp_path.name}/dup.py",
         "--executor", executor, "--out", str(tmp_path / "out")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr and "error" not in result.stderr
    assert statuses(tmp_path / "out") == {"hx:dup": {"done"}}


# 4. A plugin path that is not a readable .py file: one true line.

def _fifo(tmp_path):
    os.mkfifo(tmp_path / "pipe.py")
    return (tmp_path / "pipe.py", "plugin {p} is a named pipe (FIFO), not a regular file;"
            " expected a Python file (.py)")


def _directory(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "mine.py").write_text("")
    return (tmp_path / "plugins", "plugin {p} is a directory; expected a Python file (.py) that"
            " registers optimizers (it holds mine.py: name each one)")


def _not_python(tmp_path):
    (tmp_path / "notes.txt").write_text("")
    return tmp_path / "notes.txt", "plugin {p} is not a Python file: expected a name ending in .py"


def _dangling_link(tmp_path):
    (tmp_path / "gone.py").symlink_to(tmp_path / "deleted.py")
    return (tmp_path / "gone.py",
            f"plugin {{p}} is a symbolic link to {tmp_path / 'deleted.py'}, which does not exist")


def _unreadable(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    (tmp_path / "secret.py").write_text("")
    (tmp_path / "secret.py").chmod(0)
    return (tmp_path / "secret.py", "plugin file {p} cannot be read (Permission denied);"
            " check its permissions")


@pytest.mark.parametrize("make", [_fifo, _directory, _not_python, _dangling_link, _unreadable])
def test_a_plugin_path_that_is_not_a_python_file_is_one_true_line(make, tmp_path, capsys):
    from bench import cli

    path, message = make(tmp_path)
    assert cli.main(["list", "optimizers", "--plugin", str(path)]) == 2
    assert capsys.readouterr().err == f"optbench: error: {message.format(p=path)}\n"
