"""Nothing lost, nothing unsafe, never a traceback: the results folder, reports and
comparisons under hostile input (damaged files, links, full disks, odd labels, pooled
cells)."""
import errno
import json
import shutil
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import bench
from bench import cli, commands
from bench.errors import UserError
from bench.report import analysis, compare, report
from bench.runner import files
from bench.runner.store import GENERATION_KEY, RunStore, write_tables
from tests.conftest import optbench_here, run_optbench

SMOKE = ["run", "--preset", "smoke"]  # the matrix of the shared smoke_run
NAN_PLUGIN = '''
import jax, jax.numpy as jnp, optax
from optimizers import register

@register(NAME)
def nan(learning_rate: float = 0.1):
    def update(grads, state, params=None):
        return jax.tree.map(lambda g: g * jnp.nan, grads), state
    return optax.GradientTransformation(lambda p: optax.EmptyState(), update)
'''


def one_line_error(result, *words):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


@pytest.fixture
def run_copy(smoke_run, tmp_path):
    """A private copy of the shared smoke run, cell files included."""
    out = tmp_path / "run"
    shutil.copytree(smoke_run, out)
    return out


# ---- merged tables: one generation, rebuilt from cells/ when they disagree -------------------

def test_a_deleted_curves_table_is_rebuilt_from_the_cells(run_copy, smoke_run):
    (run_copy / "curves.parquet").unlink()
    results = bench.load(run_copy)
    assert len(results.curves) == len(bench.load(smoke_run).curves) > 0
    assert (run_copy / "curves.parquet").exists()  # written back: nobody held the folder


def test_tables_of_two_generations_are_never_mixed(run_copy, tmp_path):
    """A kill between the two renames leaves runs.parquet of an older generation."""
    runs = pd.read_parquet(run_copy / "runs.parquet")
    write_tables(tmp_path, runs[runs["optimizer"] == "optax:sgd"],
                 pd.read_parquet(run_copy / "curves.parquet"), token="older")
    shutil.copy(tmp_path / "runs.parquet", run_copy / "runs.parquet")
    (run_copy / ".runs.parquet.x1.tmp").write_bytes(b"left by a kill")
    results = bench.load(run_copy)
    assert set(results.runs["optimizer"]) == {"optax:sgd", "optax:adam"}
    assert set(results.curves["cell_id"]) == set(results.runs["cell_id"])
    tokens = {pq.read_schema(run_copy / f"{t}.parquet").metadata[GENERATION_KEY] for t in ("runs", "curves")}
    assert len(tokens) == 1
    assert not list(run_copy.glob("*.tmp"))


def test_cells_finished_before_a_kill_are_reported_without_a_merge(run_copy):
    for name in ("runs.parquet", "curves.parquet"):
        (run_copy / name).unlink()
    result = optbench_here("report", str(run_copy))
    assert result.returncode == 0, result.stderr
    assert "no finished cell" not in result.stdout and "optax:adam" in result.stdout


def test_a_foreign_table_in_place_of_runs_is_replaced(run_copy):
    pd.DataFrame({"x": [1, 2]}).to_parquet(run_copy / "runs.parquet")
    assert len(bench.load(run_copy).runs) == 4
    assert "cell_id" in pd.read_parquet(run_copy / "runs.parquet")


DAMAGED_RECORDS = ['{"schema_version": 3, "id": "x"}', '{"schema_version": 1, "id": "x"}', "[]",
                   "null", '{"schema_version": "2", "id": "x"}', "{not json"]


def test_damaged_cell_records_are_set_aside_and_their_cell_rerun(run_copy):
    victim = sorted((run_copy / "cells").glob("*.json"))[0]
    victim.write_text('{"schema_version": 3, "id": %s, "spec": 5}' % json.dumps(victim.stem))
    strays = [run_copy / "cells" / f"{i:016x}.json" for i in range(len(DAMAGED_RECORDS))]
    for stray, text in zip(strays, DAMAGED_RECORDS):
        stray.write_text(text.replace('"x"', json.dumps(stray.stem)))
    result = optbench_here(*SMOKE, "--out", str(run_copy))
    assert result.returncode == 0, result.stderr
    assert "1 of 2 cells already finished; running the rest" in result.stderr
    for damaged in (victim, *strays):
        assert damaged.with_name(damaged.name + ".corrupt").exists()
    assert not any(stray.exists() for stray in strays)
    assert json.loads(victim.read_text())["id"] == victim.stem  # its cell, run again
    (run_copy / "cells" / "notes.json").write_text("not ours")  # not a cell id: left alone
    assert optbench_here(*SMOKE, "--out", str(run_copy)).returncode == 0
    assert (run_copy / "cells" / "notes.json").read_text() == "not ours"
    assert len(bench.load(run_copy).runs["cell_id"].unique()) == 2


@pytest.mark.parametrize("manifest,why", [
    ("[]", "not a JSON object"), ("null", "not a JSON object"),
    ('{"schema_version": "1"}', "schema_version is '1', not a whole number"),
    ('{"schema_version": 3, "config": 5}', "config is not a table"),
    ('{"schema_version": 3, "config": {"cells": [1, 2]}}', "config is not a table"),
])
def test_a_damaged_manifest_is_one_line_naming_repair(run_copy, manifest, why, capsys):
    (run_copy / "manifest.json").write_text(manifest)
    for command in (["report", str(run_copy)], [*SMOKE, "--out", str(run_copy)]):
        assert cli.main(command) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and why in err and f"optbench repair {run_copy}" in err, err


def test_a_refused_open_releases_the_folder_for_this_processs_next_run(run_copy):
    """A notebook that got 'damaged manifest' and repaired it must not then be told the
    folder is in use by itself."""
    (run_copy / "manifest.json").write_text("[]")
    with pytest.raises(UserError, match="optbench repair"):
        RunStore(run_copy).open({}, {})
    files.unlock_folder(files.lock_folder(run_copy))  # free again: no UserError


def test_repair_recovers_a_damaged_manifest_and_the_advised_rerun_resumes(run_copy):
    (run_copy / "manifest.json").write_text("[]")
    repaired = optbench_here("repair", str(run_copy))
    assert repaired.returncode == 0 and "2 cell(s) kept" in repaired.stdout, repaired.stderr
    again = optbench_here(*SMOKE, "--out", str(run_copy))  # the advice works: it resumes
    assert again.returncode == 0, again.stderr
    assert "2 of 2 cells already finished; nothing left to run" in again.stderr, again.stderr


def test_a_deleted_manifest_points_to_repair(run_copy):
    (run_copy / "manifest.json").unlink()
    one_line_error(optbench_here("report", str(run_copy)), f"optbench repair {run_copy}")
    assert optbench_here("repair", str(run_copy)).returncode == 0
    assert len(bench.load(run_copy).runs) == 4


# ---- never pool different cells ---------------------------------------------------------------

def test_a_resume_with_more_seeds_never_pools_the_two_cells(tmp_path):
    out = tmp_path / "run"
    assert optbench_here(*SMOKE, "--optimizers", "optax:sgd", "--seeds", "2", "--out", str(out)).returncode == 0
    resumed = optbench_here(*SMOKE, "--optimizers", "optax:sgd", "--seeds", "3", "--resume",
                           "--out", str(out))
    assert resumed.returncode == 0, resumed.stderr
    cells = analysis.cell_table(bench.load(out).runs)
    assert sorted(cells["seeds"]) == [2, 3]
    assert set(cells["label"]) == {"optax:sgd (seeds 0,1)", "optax:sgd (seeds 0,1,2)"}
    compared = compare.compare([bench.load(out), bench.load(out)], "final_test_accuracy").rows
    assert sorted(compared["seeds_b"]) == [2, 3]
    built = report.build(bench.load(out))
    assert "(seeds 0,1,2)" in report.markdown(built, [], out) and len(built.runs["label"].unique()) == 2


def test_one_workload_at_two_budgets_is_two_cells_everywhere(tmp_path):
    matrix = tmp_path / "m.toml"
    matrix.write_text('name = "budgets"\nseeds = 1\noptimizers = ["optax:sgd"]\n'
                      'workloads = [{name = "synthetic-mlp", steps = 50},'
                      ' {name = "synthetic-mlp", steps = 100}]\n')
    out = tmp_path / "run"
    assert optbench_here("run", str(matrix), "--out", str(out)).returncode == 0
    built = report.build(bench.load(out))
    assert set(built.cells["label"]) == {"optax:sgd (steps 50)", "optax:sgd (steps 100)"}
    assert set(built.runs["label"]) == set(built.cells["label"])  # the plots' labels too


# ---- compare --fail-on-regression -------------------------------------------------------------

def shared_copy(smoke_run, tmp_path, name, edit):
    out = tmp_path / name
    out.mkdir()
    shutil.copy(smoke_run / "manifest.json", out / "manifest.json")
    write_tables(out, edit(pd.read_parquet(smoke_run / "runs.parquet")),
                 pd.read_parquet(smoke_run / "curves.parquet"), token=name)
    return out


@pytest.mark.parametrize("edit,words,allow", [
    (lambda r: r.assign(status="diverged", final_test_accuracy=float("nan")),
     "2 seed(s) not done (2 diverged)", "--allow-failures"),
    (lambda r: r.assign(status=r["status"].where(r["seed"] != r["seed"].min(), "error")),
     "1 seed(s) not done", "--allow-failures"),
    (lambda r: r[r["optimizer"] == "optax:sgd"], "optax:adam: missing (the baseline has it;",
     "--allow-missing"),
])
def test_failed_and_missing_cells_are_regressions_unless_allowed(smoke_run, tmp_path, edit, words, allow):
    new = shared_copy(smoke_run, tmp_path, "new", edit)
    args = ["compare", str(smoke_run), str(new), "--fail-on-regression", "50", "--out", str(tmp_path / "c")]
    failing = optbench_here(*args)
    assert failing.returncode == 1 and words in failing.stderr, failing.stderr
    assert optbench_here(*args, allow).returncode == 0


def test_compare_against_a_run_with_no_cells_is_one_line(smoke_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(smoke_run / "manifest.json", empty / "manifest.json")
    one_line_error(optbench_here("compare", str(smoke_run), str(empty)), "holds no finished cell")


# ---- links, locks, unwritable places ----------------------------------------------------------

def test_links_in_a_results_folder_are_replaced_never_written_through(run_copy, tmp_path):
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    for name in (".lock", "report.html", "report.md", "runs.parquet"):
        (run_copy / name).unlink(missing_ok=True)
        (run_copy / name).symlink_to(target)
    result = optbench_here(*SMOKE, "--out", str(run_copy))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "keep me"
    assert not (run_copy / "report.html").is_symlink() and not (run_copy / "runs.parquet").is_symlink()


def test_a_linked_folder_inside_a_results_folder_is_refused(run_copy, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.rmtree(run_copy / "plots")
    (run_copy / "plots").symlink_to(elsewhere)
    one_line_error(optbench_here("report", str(run_copy)), "is a symbolic link")
    assert not list(elsewhere.iterdir())


@pytest.mark.parametrize("command,words", [
    (lambda f: [*SMOKE, "--out", str(f)], "is a file, not a results folder"),
    (lambda f: ["report", "results/reference", "--out", str(f)], "is a file, not a folder"),
    (lambda f: ["compare", "results/reference", "results/reference", "--out", str(f)], "is a file"),
    (lambda f: ["report", "results/reference", "--out", "/proc/optbench"], "cannot create folder"),
])
def test_outputs_that_cannot_be_written_are_one_line(tmp_path, command, words):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    one_line_error(optbench_here(*command(a_file)), words)


def test_a_full_disk_mid_run_is_one_line_and_keeps_the_cells_saved(tmp_path, monkeypatch, capsys):
    real_write_cell, calls = RunStore.write_cell, []

    def write_cell(self, cell, result):
        calls.append(cell.id)
        if len(calls) == 2:
            files.atomic_write(self.cells_dir / "x", lambda tmp: _raise(OSError(errno.ENOSPC, "No space left on device")))
        return real_write_cell(self, cell, result)

    monkeypatch.setattr(RunStore, "write_cell", write_cell)
    out = tmp_path / "run"
    assert cli.main([*SMOKE, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "No space left on device" in err and "the 1 cell(s) saved before it are kept" in err
    assert len(list((out / "cells").glob("*.json"))) == 1 and not list(out.rglob("*.tmp"))
    monkeypatch.setattr(RunStore, "write_cell", real_write_cell)
    assert cli.main([*SMOKE, "--out", str(out)]) == 0  # the same command finishes the rest
    assert "1 of 2 cells already finished" in capsys.readouterr().err


def test_a_report_in_a_read_only_folder_is_one_line(run_copy, monkeypatch, capsys):
    real = files.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):
        if Path(dir).resolve().is_relative_to(run_copy.resolve()):
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(files.tempfile, "mkstemp", read_only)
    assert cli.main(["report", str(run_copy)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Read-only file system" in err and "--out DIR" in err


def _raise(exc):
    raise exc


# ---- bad flags, names and data ----------------------------------------------------------------

@pytest.mark.parametrize("args,words", [
    (["--resume", "--force"], "contradict"),
    (["--out", ""], "--out is empty"),
    (["--seeds", ""], "seeds"),
    (["--optimizers", ","], "--optimizers"),
    (["--workloads", " , "], "--workloads"),
])
def test_contradictory_or_empty_flags_are_refused(args, words):
    one_line_error(optbench_here(*SMOKE, *args), words)


def test_dry_run_sizes_the_matrix_and_writes_nothing(tmp_path):
    result = optbench_here("run", "--preset", "quick", "--dry-run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "49 cells in 49 compiled programs" in result.stdout
    assert not list(tmp_path.iterdir())


def test_a_matrix_name_never_becomes_a_path():
    assert commands.folder_name("../../evil") == "evil"
    assert commands.folder_name("/etc/passwd") == "etc_passwd"
    assert commands.folder_name("..") == "run" and "/" not in commands.folder_name("a/b\\c")


def test_damaged_data_stops_the_run_before_any_cell_trains(tmp_path):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (folder / stem).write_bytes(b"\x00\x00\x08\x03garbage")
    matrix = tmp_path / "m.toml"
    matrix.write_text('name = "late"\nseeds = 1\nsteps = 20\noptimizers = ["optax:sgd"]\n'
                      'workloads = ["synthetic-mlp", "mnist-cnn"]\n')
    out = tmp_path / "run"
    one_line_error(optbench_here("run", str(matrix), "--data-dir", str(tmp_path / "data"),
                                "--out", str(out)), "truncated")
    assert not out.exists()


# ---- labels are data everywhere; a run where everything diverged still reports -----------------

def test_odd_labels_and_all_diverged_seeds_still_run_and_report(tmp_path):
    label = "my:[/red] $x$ <b>|pipe"  # rich markup, mathtext, HTML and a markdown table
    plugin = tmp_path / "nan.py"
    plugin.write_text(f"NAME = {label!r}\n" + NAN_PLUGIN)
    matrix = tmp_path / "m.toml"
    matrix.write_text(f'name = "odd"\nseeds = 2\nsteps = 50\nworkloads = ["synthetic-mlp"]\n'
                      f'plugins = [{json.dumps(str(plugin))}]\noptimizers = [{json.dumps(label)}]\n')
    out = tmp_path / "run"
    result = run_optbench("run", str(matrix), "--no-report", "--out", str(out))  # reported below
    assert result.returncode == 0, result.stderr
    assert label in result.stderr
    reported = optbench_here("report", str(out))
    assert reported.returncode == 0 and "Traceback" not in reported.stderr, reported.stderr
    assert "warning" not in reported.stderr, reported.stderr
    assert set(bench.load(out).runs["status"]) == {"diverged"}
    html = (out / "report.html").read_text()
    assert "my:[/red] $x$ &lt;b&gt;|pipe" in html
    assert r"my:[/red] \$x\$ \<b\>\|pipe" in (out / "report.md").read_text()
    assert (out / "plots" / "curves_by_step.png").stat().st_size > 0


# ---- second round of hostile input: incomplete cells, foreign folders, API ---------------------

@pytest.mark.parametrize("damage", [
    lambda cell: cell.with_suffix(".parquet").unlink(),  # its curves gone
    lambda cell: pd.read_parquet(cell.with_suffix(".parquet")).query("seed == seed.min()")
    .to_parquet(cell.with_suffix(".parquet")),  # one seed's curves gone
    lambda cell: cell.write_text(cell.read_text().replace('"label": "', '"label": 12345, "x": "')),
    lambda cell: cell.write_text(cell.read_text().replace('"metric": "val_accuracy"', '"metric": "nosuch"')),
])
def test_an_incomplete_or_mistyped_cell_is_never_counted_finished(run_copy, damage):
    cell = sorted((run_copy / "cells").glob("*.json"))[0]
    damage(cell)
    assert len(bench.load(run_copy).runs["cell_id"].unique()) == 1  # left out, not NaN rows
    result = optbench_here(*SMOKE, "--out", str(run_copy))
    assert result.returncode == 0 and "1 of 2 cells already finished" in result.stderr, result.stderr


def test_cells_without_a_manifest_are_not_taken_for_an_empty_folder(run_copy):
    (run_copy / "manifest.json").unlink()
    one_line_error(optbench_here(*SMOKE, "--optimizers", "optax:sgd", "--out", str(run_copy)),
                   f"optbench repair {run_copy}")


def test_repair_touches_no_folder_that_is_not_a_results_folder(tmp_path):
    foreign = tmp_path / "f"
    (foreign / "cells").mkdir(parents=True)
    (foreign / "cells" / "data.json").write_text('{"a": 1}')
    one_line_error(optbench_here("repair", str(foreign)), "holds no optbench cell file")
    assert sorted(p.name for p in foreign.rglob("*")) == ["cells", "data.json"]


@pytest.mark.parametrize("field,value", [("device", "gpu"), ("host", None), ("versions", [1])])
def test_mistyped_manifest_fields_are_one_line(run_copy, field, value):
    manifest = json.loads((run_copy / "manifest.json").read_text())
    (run_copy / "manifest.json").write_text(json.dumps({**manifest, field: value}))
    one_line_error(optbench_here("report", str(run_copy)), f"its {field} is not a table")


def test_bench_run_still_works_after_the_package_was_used(tmp_path, smoke_run):
    bench.load(smoke_run)  # imports the runner stage; `bench.run` must stay the function
    assert callable(bench.run)
    results = bench.run(preset="smoke", steps=20, out=tmp_path / "api")
    assert len(results.runs) == 4
    with pytest.raises(UserError, match="unknown executor 'bogus'"):
        bench.run(preset="smoke", steps=20, out=tmp_path / "api2", executor="bogus")
    assert not (tmp_path / "api2").exists()


def test_a_plugin_that_exits_is_a_load_failure(tmp_path):
    plugin = tmp_path / "exits.py"
    plugin.write_text("import sys\nsys.exit(3)\n")
    result = run_optbench("list", "optimizers", "--plugin", str(plugin))
    assert result.returncode == 2 and "exits.py" in result.stderr and "Traceback" not in result.stderr


def test_time_limits_are_bounded():
    one_line_error(run_optbench("check", "adam", "--timeout", "inf"), "at most 604800")


def test_run_folders_started_in_one_second_never_collide(tmp_path):
    first = commands.new_folder(tmp_path, "quick")
    first.mkdir()
    second = commands.new_folder(tmp_path, "quick")
    assert second != first and second.name.startswith(first.name)


def test_terminal_text_never_carries_control_characters():
    from bench.report.render import printable
    assert printable("a\x1b[31mred\nb") == "a\\x1b[31mred\\nb"


@pytest.mark.parametrize("name", ["a\nb.toml", "a\tb.toml", "a  b.toml"])
def test_a_path_in_an_error_is_shown_as_it_is_not_with_its_breaks_made_spaces(tmp_path, name):
    """Every one-line error joined a message's words with single spaces: a file named
    'a<newline>b.toml' was shown as 'a b.toml', a file that is not there."""
    (tmp_path / name).write_text("x = [\n")
    result = run_optbench("run", str(tmp_path / name), "--dry-run")
    shown = str(tmp_path / name).replace("\n", "\\n").replace("\t", "\\t")
    one_line_error(result, f"matrix file {shown} is not valid TOML")


def test_the_target_line_keeps_its_value_when_the_first_cell_diverged(tmp_path, monkeypatch):
    """The curves figure read the target from its first row, whose values were masked after
    a divergence: `sgd` (first by name) diverging on rosenbrock-2d labelled it "target nan"."""
    from bench.report import curve_plots, figure_files, report

    out = tmp_path / "run"
    result = optbench_here("run", "--workloads", "rosenbrock-2d", "--optimizers", "adam,sgd",
                           "--steps", "20", "--seeds", "1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    built = report.build(bench.load(out))
    assert (built.runs.set_index("optimizer").status == "diverged").to_dict() == {
        "adam": False, "sgd": True}
    figures = []
    monkeypatch.setattr(figure_files, "save", lambda fig, path, **_: figures.append(fig) or path)
    curve_plots.curves(built.runs, built.results.curves, tmp_path, "step")
    labels = [ax.get_ylabel() for ax in figures[0].axes]
    assert "val loss (dashed: target 0.001)" in labels, labels
