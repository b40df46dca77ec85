"""The command line's habits: `run --dry-run` shows the programs and a time estimate,
`--set KEY=VALUE` changes any matrix key through the matrix parser, `list --json` and
`--filter`, whole preset descriptions, provenance in the manifest, compare's note on runs
that ran differently, and the Dask dashboard's line."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench import cli
from bench.plan import estimate, expand
from bench.plan import matrix as matrix_mod
from bench.runner.environment import provenance
from bench.runner.dask_cluster import dashboard_line
from bench.runner.executors import Limits
from tests.conftest import ROOT, run_optbench

SMOKE = ["--preset", "smoke"]


def optbench(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *argv: str) -> str:
    code, out, err = optbench(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1, (code, out, err)
    assert err.startswith("optbench: error: ") and "Traceback" not in err
    return err.removeprefix("optbench: error: ").strip()


# 1. --dry-run: cells, programs, an estimate and what it rests on.

def test_dry_run_names_each_program_and_estimates_from_the_reference(capsys, tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = optbench(capsys, "run", "--preset", "quick", "--dry-run")
    assert code == 0
    assert "49 cells in 49 compiled programs" in out
    assert "  1. mnist1d-mlp x sgd (3 seeds, 2,000 steps)" in out
    assert "... and 9 more programs" in out  # 40 shown
    assert "Estimated time: about" in out and "for 49 of 49 programs" in out
    assert "Based on: " in out and "reference (quick, 49 cells" in out
    assert "), plus start-up and the report." in out
    assert not list(tmp_path.iterdir())  # nothing written
    code, out, _ = optbench(capsys, "run", "--preset", "quick", "--dry-run", "--no-report")
    assert code == 0 and "), plus start-up." in out  # a run without a report draws none


def test_dry_run_shows_which_cells_share_one_program(capsys, tmp_path):
    path = tmp_path / "sweep.toml"
    path.write_text('workloads = ["synthetic-mlp"]\noptimizers = [\n'
                    '  {name = "optax:adam", learning_rate = 0.001},\n'
                    '  {name = "optax:adam", learning_rate = 0.003},\n  "optax:sgd"]\n')
    code, out, _ = optbench(capsys, "run", str(path), "--dry-run")
    assert code == 0
    assert "3 cells in 2 compiled programs" in out
    assert ("1. synthetic-mlp x 2 cells: optax:adam(learning_rate=0.001),"
            " optax:adam(learning_rate=0.003) (3 seeds, 200 steps)") in out
    # the reference never ran synthetic-mlp: said, not guessed
    assert "Estimated time: unknown: the reference holds none of these workloads" in out


def test_the_estimate_scales_the_reference_by_steps_seeds_and_trials(tmp_path):
    """train = seconds per step per seed x steps x seeds x trials; compile and the rest
    once per program; a workload the reference lacks is unknown."""
    reference = tmp_path / "ref"
    reference.mkdir()
    pd.DataFrame({
        "cell_id": ["a", "a"], "workload": ["synthetic-mlp"] * 2,
        "optimizer": ["optax:adam"] * 2, "steps": [100] * 2, "seeds_in_batch": [2] * 2,
        "trials_in_program": [1] * 2, "train_s": [2.0] * 2, "compile_s": [1.0] * 2,
        "total_s": [3.5] * 2}).to_parquet(reference / "runs.parquet")
    matrix = matrix_mod.from_dict({
        "seeds": 3, "steps": 200, "workloads": ["synthetic-mlp", "synthetic-logreg"],
        "optimizers": [{"name": "optax:adam", "learning_rate": 0.001},
                       {"name": "optax:adam", "learning_rate": 0.01}, "optax:sgd"]},
        name="t", source="test")
    guess = estimate.estimate(expand.programs(expand.cells(matrix)), reference)
    # synthetic-mlp: the adam sweep (2 trials x 3 seeds, exact) and sgd (the workload's median)
    assert guess.train_s == pytest.approx(0.01 * 200 * 3 * 2 + 0.01 * 200 * 3)
    assert guess.compile_s == pytest.approx(2.0) and guess.other_s == pytest.approx(1.0)
    assert (guess.exact, guess.by_workload) == (1, 1)
    assert guess.unknown == ("synthetic-logreg", "synthetic-logreg")
    text = estimate.describe(expand.programs(expand.cells(matrix)), reference)
    assert "Unknown for 2 program(s)" in text and "machine unknown" in text
    assert "unknown" in estimate.describe([], tmp_path / "missing")


# 2. --set KEY=VALUE.

def test_set_changes_top_level_and_nested_keys(capsys):
    code, out, _ = optbench(capsys, "run", *SMOKE, "--dry-run", "--set", "budget=2",
                            "--set", "tuning_seeds=2")
    assert code == 0 and "4 tuning trials on 2 seeds each" in out
    code, out, _ = optbench(capsys, "run", *SMOKE, "--dry-run",
                            "--set", 'schedules=["constant", "warmup_cosine"]')
    assert code == 0 and "4 cells in 4 compiled programs" in out
    code, out, _ = optbench(capsys, "run", *SMOKE, "--dry-run",
                            "--set", "workloads.synthetic-mlp.steps=50",
                            "--set", 'optimizers."optax:adam".learning_rate=0.02')
    assert code == 0 and "synthetic-mlp 200." in out  # 50 steps x 2 seeds x 2 optimizers
    assert "optax:adam(learning_rate=0.02) (2 seeds, 50 steps)" in out
    matrix = matrix_mod.load(None, "smoke", ["seeds=5", "name=renamed", "budget=oneshot"])
    assert matrix.seeds == [0, 1, 2, 3, 4] and matrix.name == "renamed"
    assert matrix.origins["seeds"] == "--set seeds=5"


def test_a_bad_set_is_the_files_error_naming_the_set(capsys, tmp_path):
    """The same parser as a file: the same message, with `--set ...` where the file's
    name would be."""
    for setting, line in [("budget=0", "budget = 0"), ("budgt=1", "budgt = 1"),
                          ("schedules=[]", "schedules = []"),
                          ("steps=true", "steps = true")]:
        path = tmp_path / "m.toml"
        path.write_text(f'workloads = ["synthetic-mlp"]\noptimizers = ["optax:sgd", '
                        f'"optax:adam"]\nseeds = 2\nname = "smoke"\n{line}\n')
        from_file = one_line_error(capsys, "run", str(path), "--dry-run")
        from_set = one_line_error(capsys, "run", *SMOKE, "--dry-run", "--set", setting)
        assert from_set.startswith(f"--set {setting}")
        assert from_set.removeprefix(f"--set {setting}") == \
            from_file.removeprefix(f"matrix {path}"), (from_set, from_file)
    assert "did you mean: budget?" in one_line_error(capsys, "run", *SMOKE, "--dry-run",
                                                     "--set", "budgt=1")


@pytest.mark.parametrize("setting, words", [
    ("workloads.synthetic-mlpp.steps=5", "no workload 'synthetic-mlpp' (did you mean:"
                                         " synthetic-mlp?); its workloads: synthetic-mlp"),
    ("workloads.synthetic-mlp.stepz=5", "unknown key 'stepz' (did you mean: steps?)"),
    ("workloads.synthetic-mlp.steps=-1", "'steps' must be a positive integer; got -1"),
    ('optimizers."optax:adam".lr=0.1', "optimizer 'optax:adam' has no hyperparameter 'lr'"),
    ('optimizers."optax:adam".learning_rate=-1', "learning_rate=-1 is invalid"),
    ("workloads.synthetic-mlp=5", "give workloads.NAME.FIELD=VALUE"),
    ("budget", "not a setting; write KEY=VALUE"),
    ("=3", "no key before '='"),
    ("a b=3", "a b is not a key"),
    ("budget=", "no value after '='"),
    ("budget=[1", "is not a TOML value"),
    ("budget=1\nname=\"x\"", "'budget=1\\nname=\"x\"': a setting is one line of printable"
                               " text, and this holds a control character"),  # no second key
    ("budget=8\t", "holds a control character (shown escaped)"),
    ("budget\n", "not a setting; write KEY=VALUE"),
    ("name=../x", "'name' must be a name"),
])
def test_bad_settings_are_one_line(capsys, setting, words):
    message = one_line_error(capsys, "run", *SMOKE, "--dry-run", "--set", setting)
    assert words in message and message.startswith("--set "), message


def test_a_setting_for_a_workload_only_workloads_names_says_how(capsys):
    """--set applies before --workloads replaces the list, so the workload is not in it yet:
    the message says so and gives a form that works."""
    message = one_line_error(capsys, "run", *SMOKE, "--workloads", "synthetic-logreg",
                             "--dry-run", "--set", "workloads.synthetic-logreg.eval_every=20")
    assert "(--set applies before --workloads; to set eval_every of one you name, give the" \
           " whole list: --set 'workloads=[{name = \"synthetic-logreg\", eval_every = ...}]')" \
           in message
    code, out, _ = optbench(capsys, "run", *SMOKE, "--dry-run", "--set",
                            'workloads=[{name = "synthetic-logreg", eval_every = 20}]')
    assert code == 0 and "synthetic-logreg x " in out


# 3. list --json, --filter, whole preset descriptions.

def test_list_optimizers_json_is_complete_and_filtered(capsys):
    code, out, _ = optbench(capsys, "list", "optimizers", "--json")
    assert code == 0
    rows = json.loads(out)
    by_name = {row["name"]: row for row in rows}
    adam = by_name["adam"]
    assert set(adam) >= {"name", "defaults", "search_space", "reference", "source", "origin"}
    assert adam["defaults"]["learning_rate"] > 0 and adam["reference"] == "optax:adam"
    assert adam["search_space"]["learning_rate"]["kind"] == "log-uniform"
    assert adam["origin"] == "builtin" and adam["source"].endswith("adam.py")
    assert by_name["optax:adam"]["origin"] == "optax"
    assert adam["sha256"] == hashlib.sha256(Path(adam["source"]).read_bytes()).hexdigest()

    code, out, _ = optbench(capsys, "list", "optimizers", "--json", "--filter", "optax:ad*")
    names = [row["name"] for row in json.loads(out)]
    assert names and all(n.startswith("optax:ad") for n in names)
    code, out, _ = optbench(capsys, "list", "optimizers", "--json", "--filter", "LION")
    assert {row["name"] for row in json.loads(out)} == {n for n in by_name if "lion" in n}
    code, out, err = optbench(capsys, "list", "optimizers", "--json", "--filter", "adamm")
    assert code == 0 and json.loads(out) == [] and "did you mean" in err
    assert "--filter is empty" in one_line_error(capsys, "list", "optimizers", "--filter", " ")


def test_list_workloads_filters_and_the_json_holds_the_target(capsys):
    code, out, _ = optbench(capsys, "list", "workloads", "--json", "--filter", "*-2d")
    rows = json.loads(out)
    assert code == 0 and {r["name"] for r in rows} == {
        "rosenbrock-2d", "beale-2d", "saddle-2d", "rastrigin-2d"}
    assert rows[0]["target"]["direction"] == "min" and rows[0]["origin"] == "builtin"
    code, out, _ = optbench(capsys, "list", "workloads", "--filter", "rosen")
    assert "rosenbrock-2d" in out and "beale-2d" not in out


def test_bare_list_names_what_it_can_list(capsys):
    """`optbench list` alone is a newcomer's first try: the error names the three choices,
    not argparse's internal `what`."""
    message = one_line_error(capsys, "list")
    assert "{optimizers,workloads,presets}" in message and " what " not in message


def test_a_run_prints_its_folder_and_report_as_absolute_paths(capsys, tmp_path, monkeypatch):
    """`make run` ends with both paths; a relative report path would not open from
    another folder, and the results line beside it is absolute."""
    monkeypatch.chdir(tmp_path)
    code, _, err = optbench(capsys, "run", "--workloads", "rosenbrock-2d", "--optimizers",
                            "adam", "--steps", "20", "--seeds", "1", "--out", "mine")
    assert code == 0
    assert f"report: {tmp_path.resolve() / 'mine' / 'report.html'}" in err, err[-400:]


def test_list_presets_prints_each_whole_comment_header(capsys):
    code, out, _ = optbench(capsys, "list", "presets")
    assert code == 0
    text = " ".join(out.split())  # the console wraps long lines
    for path in sorted((ROOT / "bench" / "plan" / "presets").glob("*.toml")):
        header = []
        for line in path.read_text().splitlines():
            if not line.startswith("#"):
                break
            header.append(line.lstrip("#").strip())
        assert len(header) >= 1
        for line in header:
            assert " ".join(line.split()) in text, (path.name, line)
    code, out, _ = optbench(capsys, "list", "presets", "--json", "--filter", "grok*")
    [grokking] = json.loads(out)
    assert "Power et al. 2022" in grokking["description"]  # the header's second line


# 4. Provenance in the manifest.

def test_provenance_of_a_file_and_of_a_preset(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('workloads = ["rosenbrock-2d"]\noptimizers = ["adam"]\n')
    matrix = matrix_mod.load(path, None, ["seeds=1"])
    found = provenance(matrix, "processes", Limits(workers=3), ["--set seeds=1"])
    assert found["matrix"] == {"source": "file", "path": str(path.resolve()),
                               "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert found["overrides"] == ["--set seeds=1"]
    assert found["executor"] == {"name": "processes", "workers": 3, "address": None,
                                 "compile_ahead": False}  # local only

    preset = provenance(matrix_mod.load(None, "smoke"), "dask",
                        Limits(address="tcp://10.0.0.5:8786"))
    smoke = ROOT / "bench" / "plan" / "presets" / "smoke.toml"
    assert preset["matrix"] == {"source": "preset", "preset": "smoke",
                                "sha256": hashlib.sha256(smoke.read_bytes()).hexdigest()}
    assert preset["executor"]["workers"] is None  # an existing scheduler's own


def test_a_run_named_by_flags_records_flags_its_plugins_and_the_machine(tmp_path):
    plugin = tmp_path / "habit_plugin.py"
    plugin.write_text("import optax\nfrom optimizers import register\n\n"
                      "@register('habits:sgd')\ndef habits_sgd(learning_rate: float = 0.01):\n"
                      "    return optax.sgd(learning_rate)\n")
    out = tmp_path / "run"
    result = run_optbench("run", "--workloads", "rosenbrock-2d", "--optimizers", "habits:sgd",
                          "--steps", "20", "--seeds", "1", "--plugin", str(plugin),
                          "--no-report", "--out", str(out))
    assert result.returncode == 0, result.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["matrix"]["source"] == "flags"  # never "preset:quick"
    found = manifest["provenance"]
    assert found["matrix"] == {"source": "flags", "defaults": "preset:quick"}
    assert found["overrides"] == ["--workloads rosenbrock-2d", "--optimizers habits:sgd",
                                  "--seeds 1", "--steps 20"]
    assert found["plugins"] == [{"path": str(plugin.resolve()),
                                 "sha256": hashlib.sha256(plugin.read_bytes()).hexdigest()}]
    assert found["executor"] == {"name": "local", "workers": 1, "address": None,
                                 "compile_ahead": False}  # opt-in: --compile-ahead
    host = manifest["host"]
    assert isinstance(host["cpu_model"], str) and host["cpu_model"]
    assert host["cores"] >= 1 and len(host["load_average"]) == 3


# 5. compare says when runs ran differently.

def _copy_reference(tmp_path: Path, name: str, **changes) -> Path:
    folder = tmp_path / name
    shutil.copytree(ROOT / "results" / "reference", folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    for key, value in changes.items():
        manifest[key] = {**manifest.get(key, {}), **value}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_compare_notes_a_different_executor_and_machine_and_old_manifests(capsys, tmp_path):
    old = _copy_reference(tmp_path, "old")
    manifest = json.loads((old / "manifest.json").read_text())  # made before these fields were
    for key in ("cpu_model", "cores"):                          # recorded
        manifest["host"].pop(key)
    manifest["provenance"].pop("executor")
    (old / "manifest.json").write_text(json.dumps(manifest))
    new = _copy_reference(tmp_path, "new", host={"cpu_model": "<b>Fast</b> CPU", "cores": 64},
                          provenance={"executor": {"name": "processes", "workers": 4}})
    code, out, _ = optbench(capsys, "compare", str(old), str(new), "--out",
                            str(tmp_path / "cmp"))
    assert code == 0
    note = " ".join(out.split())
    assert "The runs ran differently:" in note
    assert ("Speed ratios between different machines (CPU model: old unknown vs new <b>Fast</b>"
            " CPU; cores: old unknown vs new 64) measure the machines too.") in note
    for part in ("executor: old unknown vs new processes", "workers: old unknown vs new 4"):
        assert part in note
    assert "device:" not in note  # the same device: not named
    assert "executor: old unknown vs new processes" in (tmp_path / "cmp" / "compare.md").read_text()
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert "&lt;b&gt;Fast&lt;/b&gt; CPU" in html and "<b>Fast</b>" not in html


def test_compare_of_runs_set_up_alike_has_no_such_note(capsys, tmp_path):
    same = {"host": {"cpu_model": "X", "cores": 2},
            "provenance": {"executor": {"name": "local", "workers": 1}}}
    a, b = _copy_reference(tmp_path, "a", **same), _copy_reference(tmp_path, "b", **same)
    code, out, _ = optbench(capsys, "compare", str(a), str(b), "--out", str(tmp_path / "c"))
    assert code == 0 and "ran differently" not in out


# 6. The Dask dashboard's line.

class _Client:
    def __init__(self, link):
        self._link = link

    @property
    def dashboard_link(self):
        if isinstance(self._link, Exception):
            raise self._link
        return self._link


def test_the_dask_dashboard_line_gives_the_url_or_says_why_not(monkeypatch):
    from bench.runner import dask_cluster

    link = "http://127.0.0.1:40123/status"
    monkeypatch.setattr(dask_cluster, "dashboard_installed", lambda: True)
    assert dashboard_line(_Client(link), own_cluster=True) == f"Dask dashboard: {link}"
    assert "serves no dashboard" in dashboard_line(_Client(KeyError("dashboard")),
                                                   own_cluster=False)
    monkeypatch.setattr(dask_cluster, "dashboard_installed", lambda: False)
    # Dask still gives a link without bokeh, to a page asking for it: not a dashboard
    assert "needs bokeh" in dashboard_line(_Client(link), own_cluster=True)
    assert dashboard_line(_Client(link), own_cluster=False) == f"Dask dashboard: {link}"


def test_output_into_a_closed_pipe_is_not_an_error():
    """`optbench list presets | head -1`: the reader left; nothing to report, no traceback.
    Plain output exits 0; a rich table exits 1, rich's own choice (also silent)."""
    import os
    import subprocess
    import sys

    def into_closed_pipe(*argv: str) -> subprocess.CompletedProcess:
        read, write = os.pipe()
        os.close(read)  # closed before the command writes a byte: every write fails, always
        try:
            return subprocess.run([sys.executable, "-m", "bench.cli", *argv], cwd=ROOT,
                                  stdout=write, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
        finally:
            os.close(write)

    plain = into_closed_pipe("list", "presets", "--json")
    assert (plain.returncode, plain.stderr) == (0, "")
    table = into_closed_pipe("list", "presets")
    assert (table.returncode, table.stderr) == (1, "")


def test_list_json_marks_a_plugins_optimizer_with_its_file(tmp_path):
    plugin = ROOT / "tests" / "plugins" / "gate.py"
    result = run_optbench("list", "optimizers", "--json", "--filter", "test:gate",
                          "--plugin", str(plugin))
    assert result.returncode == 0, result.stderr
    [row] = json.loads(result.stdout)
    assert row["origin"] == "plugin" and Path(row["source"]) == plugin.resolve()
    assert row["sha256"] == hashlib.sha256(plugin.read_bytes()).hexdigest()


@pytest.mark.parametrize("variable, value", [("JAX_ENABLE_X64", "maybe"),
                                             ("JAX_COMPILATION_CACHE_MAX_SIZE", "1GB")])
def test_a_jax_variable_jax_refuses_is_one_line_not_a_traceback(variable, value):
    """JAX reads its JAX_* variables when it is imported and raises ValueError on a value it
    cannot read: every command, `optbench list` included, ended in a traceback."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "bench.cli", "list", "optimizers"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), variable: value})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1 and done.stderr.startswith("optbench: error: ")
    assert repr(value) in done.stderr or f'"{value}"' in done.stderr
    assert "unset it" in done.stderr
