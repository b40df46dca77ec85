"""Adding optimizers, end to end, as a user does it: the README walkthrough verbatim, the
three ways to plug in (a file in optimizers/, --plugin or a matrix's `plugins`, an installed
entry point), and every way a plugin can be broken."""
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import ROOT, optbench_here, run_optbench

VENV_BIN = Path(sys.executable).parent
GOOD_PLUGIN = """\
import optax
from optimizers import LogUniform, register

@register("test:clipped_sgd", learning_rate=LogUniform(1e-3, 1.0, default=0.1))
def clipped_sgd(learning_rate: float, max_norm: float = 1.0):
    return optax.chain(optax.clip_by_global_norm(max_norm), optax.sgd(learning_rate))
"""


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """A copy of the source tree, so that files written into optimizers/ stay out of ours."""
    copy = tmp_path_factory.mktemp("checkout") / "optbench"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(
        ".venv", ".git", "results", "__pycache__", ".pytest_cache", ".benchmarks", ".device-cache"))
    return copy


def shell(command: str, cwd: Path, extra_path: str = "") -> subprocess.CompletedProcess:
    """A command line as typed in a terminal, with `optbench` on PATH and `cwd`'s code first."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": os.pathsep.join(p for p in (str(cwd), extra_path) if p)}
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


def readme_walkthrough(start: str = "## Add an optimizer in three steps",
                       end: str = "**Three ways") -> list[str]:
    """The shell commands of the README between `start` and `end`, in order."""
    text = (ROOT / "README.md").read_text()
    section = text.split(start, 1)[1].split(end, 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in textwrap.dedent(block).splitlines()
            if line.strip()]


def test_the_readme_walkthrough_works_verbatim(checkout):
    commands = readme_walkthrough()
    assert [c.split()[1] for c in commands] == ["new-optimizer", "check", "run"]
    for command in commands:
        result = shell(command, checkout)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        if command.startswith("optbench check"):
            assert "conforms: 6 checks pass" in result.stdout
    assert (checkout / "optimizers" / "my_momentum.py").is_file()
    runs = pd.read_parquet(checkout / "results" / "my-momentum" / "runs.parquet")
    assert set(runs.optimizer) == {"my_momentum", "momentum", "adam"}
    assert set(runs.status) == {"done"}
    # the generated test passes too
    result = shell(f"{sys.executable} -m pytest -q -p no:cacheprovider tests/test_my_momentum.py",
                   checkout)
    assert result.returncode == 0, result.stdout[-2000:]


def test_a_plugin_file_loads_from_the_flag_and_from_the_matrix(tmp_path):
    plugin = tmp_path / "my_optimizers.py"
    plugin.write_text(GOOD_PLUGIN)
    listed = run_optbench("list", "optimizers", "--plugin", str(plugin))
    assert listed.returncode == 0, listed.stderr
    assert "test:clipped_sgd" in listed.stdout
    matrix = tmp_path / "matrix.toml"
    matrix.write_text(f'plugins = ["{plugin}"]\nseeds = 1\nsteps = 50\n'
                      f'workloads = ["synthetic-mlp"]\noptimizers = ["test:clipped_sgd"]\n')
    result = run_optbench("run", str(matrix), "--no-report", "--out", str(tmp_path / "out"))
    assert result.returncode == 0, result.stderr
    runs = pd.read_parquet(tmp_path / "out" / "runs.parquet")
    assert list(runs.optimizer) == ["test:clipped_sgd"] and list(runs.status) == ["done"]


def install_package(tmp_path: Path, name: str, group: str, modules: dict[str, str]) -> Path:
    """Install a package `name` whose modules (module name -> source) are each an entry
    point of `group`, into a folder of its own; returns that folder (for PYTHONPATH)."""
    package = tmp_path / name
    (package / "tiny_plugin").mkdir(parents=True)
    points = "\n".join(f'{module} = "tiny_plugin.{module}"' for module in modules)
    (package / "pyproject.toml").write_text(textwrap.dedent(f"""\
        [build-system]
        requires = ["setuptools>=70.1"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "{name}"
        version = "0.1"

        [project.entry-points."{group}"]
        """) + points + "\n")
    (package / "tiny_plugin" / "__init__.py").write_text("")
    for module, source in modules.items():
        (package / "tiny_plugin" / f"{module}.py").write_text(source)
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--no-build-isolation", "--target", str(site), str(package)],
        capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    return site


def test_an_installed_package_is_found_through_its_entry_point(tmp_path):
    site = install_package(tmp_path, "tiny-optbench-plugin", "optbench.optimizers", {
        "tiny": GOOD_PLUGIN.replace("test:", "tiny:"),
        "broken": "import optax\n\nraise ImportError('no gpu_only_lib')\n"})
    assert list(site.glob("tiny_optbench_plugin-0.1.dist-info/entry_points.txt"))

    listed = shell(f"{sys.executable} -m bench.cli list optimizers", ROOT, extra_path=str(site))
    assert "tiny:clipped_sgd" in listed.stdout and "adam" in listed.stdout
    # the broken entry point is one line naming its file and line; the rest loaded; exit 2
    errors = listed.stderr.strip().splitlines()
    assert len(errors) == 1, listed.stderr
    assert "entry point 'broken' (" in errors[0] and "tiny_plugin/broken.py), line 3" in errors[0]
    assert "ImportError: no gpu_only_lib" in errors[0]
    assert listed.returncode == 2

    checked = shell(f"{sys.executable} -m bench.cli check tiny:clipped_sgd", ROOT, extra_path=str(site))
    assert "tiny:clipped_sgd: conforms" in checked.stdout, checked.stdout + checked.stderr


# name -> (plugin source, words its one error line must contain)
BROKEN_PLUGINS = {
    "fails-to-import": ("import optax\nimport numpy\nraise RuntimeError('boom')\n",
                        ["line 3", "failed to load: RuntimeError: boom"]),
    "syntax-error": ("import optax\ndef f(:\n", ["line 2", "SyntaxError"]),
    "registers-nothing": ("import optax\n\nX = 1\n", ["registered no optimizer"]),
    "not-a-transformation": (
        "from optimizers import register\n\n@register('test:not_tx')\n"
        "def not_tx(learning_rate: float = 0.1):\n    return learning_rate * 2\n",
        ["'test:not_tx'", "not_a_transformation.py:3", "returned float, not an optax.GradientTransformation"]),
    # its own tab and colour code shown escaped, not sent to the terminal raw
    "control-characters": ("raise ValueError('bad\\ttab \\x1b[31mred')\n",
                           ["line 1", "failed to load: ValueError: bad\\ttab \\x1b[31mred"]),
    "taken-name": ("import optax\nfrom optimizers import register\n\n"
                   "@register('adam')\ndef adam(learning_rate: float = 0.1):\n"
                   "    return optax.sgd(learning_rate)\n",
                   ["line 4", "optimizer name 'adam' is already taken", "adam.py"]),
}


@pytest.mark.parametrize("case", sorted(BROKEN_PLUGINS))
def test_a_broken_plugin_is_one_line_and_the_others_still_load(case, tmp_path):
    source, words = BROKEN_PLUGINS[case]
    plugin = tmp_path / f"{case.replace('-', '_')}.py"
    plugin.write_text(source)
    result = run_optbench("list", "optimizers", "--plugin", str(plugin))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optbench: error: plugin "), result.stderr
    assert str(plugin) in lines[0]
    for word in words:
        assert word in lines[0]
    assert "optax:adam" in result.stdout and "Traceback" not in result.stderr


def test_a_run_with_a_broken_plugin_runs_the_rest_and_exits_2(tmp_path):
    plugin = tmp_path / "broken.py"
    plugin.write_text(BROKEN_PLUGINS["fails-to-import"][0])
    result = run_optbench("run", "--preset", "smoke", "--optimizers", "sgd", "--plugin",
                          str(plugin), "--no-report", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert set(pd.read_parquet(tmp_path / "out" / "runs.parquet").status) == {"done"}
    assert "broken.py, line 3 failed to load" in result.stderr


def test_a_broken_file_dropped_into_optimizers_is_reported_and_skipped(checkout):
    (checkout / "optimizers" / "half_written.py").write_text(
        "from optimizers import register\n\n@register('half')\ndef half(learning_rate: float = 0.1):\n"
        "    return undefined_name\n")
    try:
        result = shell(f"{sys.executable} -m bench.cli list optimizers", checkout)
    finally:
        (checkout / "optimizers" / "half_written.py").unlink()
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "half_written.py" in lines[0] and "NameError" in lines[0], result.stderr
    assert "adamw" in result.stdout


@pytest.mark.parametrize("name,extra,message", [
    ("My-SGD", [], "must be lower case letters, digits and underscores"),
    ("adam", [], "'adam' is already registered"),
    ("fresh", ["--dir", "/nonexistent/folder"], "folder /nonexistent/folder does not exist"),
])
def test_new_optimizer_refuses_bad_names_and_places(name, extra, message, tmp_path):
    result = optbench_here("new-optimizer", name, "--tests-dir", str(tmp_path), *extra)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_new_optimizer_never_overwrites_without_force(tmp_path):
    args = ["new-optimizer", "fresh", "--dir", str(tmp_path), "--tests-dir", str(tmp_path)]
    assert optbench_here(*args).returncode == 0
    (tmp_path / "fresh.py").write_text("# my edits\n" + (tmp_path / "fresh.py").read_text())
    again = optbench_here(*args)
    assert again.returncode == 2 and "already exists; pass --force" in again.stderr
    assert (tmp_path / "fresh.py").read_text().startswith("# my edits")
    assert optbench_here(*args, "--force").returncode == 0
    assert not (tmp_path / "fresh.py").read_text().startswith("# my edits")


def test_check_exits_1_and_names_the_failing_check(tmp_path):
    plugin = tmp_path / "climbs.py"
    plugin.write_text("import optax\nfrom optimizers import register\n\n"
                      "@register('test:climbs')\ndef climbs(learning_rate: float = 0.1):\n"
                      "    return optax.sgd(-learning_rate)\n")
    result = run_optbench("check", "test:climbs", "--plugin", str(plugin))
    assert result.returncode == 1, result.stderr
    assert "1 of 6 checks failed: quadratic" in result.stdout


def test_check_of_a_name_a_failed_plugin_would_register_is_the_plugins_error_alone(tmp_path):
    """The plugin's failure was followed by "unknown optimizer 'test:broken' (did you mean
    ...)", a second error for a name that plugin defines."""
    plugin = tmp_path / "broken.py"
    plugin.write_text("from optimizers import register\nraise ValueError('half written')\n")
    result = run_optbench("check", "test:broken", "--plugin", str(plugin))
    assert result.returncode == 2 and result.stdout == "", result.stdout
    assert result.stderr.count("\n") == 1 and "broken.py" in result.stderr, result.stderr
    assert "ValueError: half written" in result.stderr and "unknown" not in result.stderr
    # a name that is nobody's is still said, when every plugin loaded
    unknown = run_optbench("check", "test:nobody")
    assert unknown.returncode == 2 and "unknown optimizer 'test:nobody'" in unknown.stderr


def test_check_shows_what_an_optimizer_raised_escaped(tmp_path):
    """The detail column printed a raised message's colour codes raw (and its tab as
    spaces): what the optimizer raised recoloured the terminal, not shown."""
    plugin = tmp_path / "colours.py"
    plugin.write_text("import optax\nfrom optimizers import register\n\n"
                      "@register('test:colours')\ndef colours(learning_rate: float = 0.1):\n"
                      "    def init(params):\n"
                      "        raise ValueError('bad\\ttab \\x1b[31mred')\n"
                      "    return optax.GradientTransformation(init, optax.sgd(0.1).update)\n")
    result = run_optbench("check", "test:colours", "--plugin", str(plugin))
    assert result.returncode == 1, result.stderr
    assert "\x1b" not in result.stdout and "\t" not in result.stdout
    assert "raised ValueError: bad\\ttab \\x1b[31mred" in result.stdout, result.stdout


def test_the_workload_walkthrough_works_verbatim_and_ranks_by_a_loss_target(checkout):
    """A regression workload with a loss target (lower is better), from the generated
    template: it trains, and every stage takes the direction from its target."""
    commands = readme_walkthrough("## Add a workload", "**The protocol.**")
    assert [c.split()[1] for c in commands] == ["new-workload", "run"]
    for command in commands:
        result = shell(command, checkout)
        assert result.returncode == 0, f"{command}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    assert (checkout / "workloads" / "my_regression.py").is_file()
    out = checkout / "results" / "my-regression"
    runs = pd.read_parquet(out / "runs.parquet")
    assert set(runs.workload) == {"my-regression", "my-regression@w128"}
    # (SGD at its default learning rate may diverge at width 128: a result, not a failure)
    assert "done" in set(runs.status) <= {"done", "diverged"}
    assert set(runs.target_direction) == {"min"}
    assert "final_val_abs_error" in runs and "final_val_accuracy" not in runs
    # the report ranks by the final validation loss, lowest first
    report = (out / "report.md").read_text()
    for workload, group in runs.groupby("workload"):
        means = group.groupby("label")["final_val_loss"].mean().sort_values()
        table = report.split(f"## {workload}\n", 1)[1].split("\n## ", 1)[0]
        ranked = [line.split("|")[2].strip() for line in table.splitlines()  # '=1': tied
                  if line.startswith("| ") and line.split("|")[1].strip().lstrip("=")[:1].isdigit()]
        means = means.dropna()  # a diverged cell has no rank ('—')
        assert ranked == list(means.index), (workload, ranked, means)
    # reaching a loss target means going below it
    reached = runs[runs.target_step.notna()]
    assert len(reached) and (reached.best_target <= reached.target_value).all()
    missed = runs[runs.target_step.isna() & (runs.status == "done")]
    assert (missed.best_target > missed.target_value).all()
    result = shell(f"{sys.executable} -m pytest -q -p no:cacheprovider tests/test_my_regression.py",
                   checkout)
    assert result.returncode == 0, result.stdout[-2000:]
