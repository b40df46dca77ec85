"""The shape of the house: readers of results never import JAX, importing a module changes
nothing outside it, the CLI offers the executors the table holds, and the column schema is
the one results/README.md documents."""
import subprocess
import sys

from bench.runner import schema
from tests.conftest import ROOT

READERS = """
import sys, bench
from bench.report import compare, report, summary, watch
from bench.runner.executors import EXECUTORS
results = bench.load({run!r})
bench.load({run!r}, partial=True)
watch.progress_note(bench.runner.store.RunStore({run!r}))
report.write(report.build(results), {out!r})
summary.summary_table(results.runs)
compare.compare([results, results], "final_test_accuracy")
assert "jax" not in sys.modules, "jax was imported"
print(sorted(EXECUTORS))
"""


def test_reading_and_reporting_results_never_import_jax(smoke_run, tmp_path):
    code = READERS.format(run=str(smoke_run), out=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "report.html").is_file()
    assert result.stdout.strip() == "['dask', 'local', 'processes']"


SIDE_EFFECTS = """
import os, matplotlib
backend, rc, mask = matplotlib.get_backend(), dict(matplotlib.rcParams), os.umask(0o027)
import bench.runner.store, bench.runner.results, bench.report.plots, bench.report.report, optimizers.plugins, bench.cli
assert os.umask(0o027) == 0o027, "the umask changed on import"
assert matplotlib.get_backend() == backend, "the backend changed on import"
changed = [k for k, v in matplotlib.rcParams.items() if rc[k] != v]
assert not changed, f"rcParams changed on import: {changed[:5]}"
print("ok")
"""


def test_importing_changes_nothing_outside_the_module():
    result = subprocess.run([sys.executable, "-c", SIDE_EFFECTS], cwd=ROOT, capture_output=True,
                            text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_cli_offers_the_executor_table():
    from bench.cli import build_parser
    from bench.runner.executors import EXECUTORS

    run = next(a for a in build_parser()._subparsers._group_actions[0].choices["run"]._actions
               if a.dest == "executor")
    assert list(run.choices) == list(EXECUTORS)


def test_results_readme_holds_the_schema_verbatim():
    """Adding a column is one line in bench/runner/schema.py (and regenerating the README with
    `python -m bench.runner.schema`): this test fails until both agree."""
    readme = (ROOT / "results" / "README.md").read_text()
    assert schema.markdown(schema.RUNS) in readme
    assert schema.markdown(schema.CURVES) in readme


def test_the_store_writes_exactly_the_declared_columns(smoke_run):
    import bench

    results = bench.load(smoke_run)
    # the declared columns, then the workload's own metrics (a classifier's accuracy)
    assert list(results.runs.columns) == schema.names(schema.RUNS) + ["final_test_accuracy",
                                                                      "final_val_accuracy"]
    assert list(results.curves.columns) == schema.names(schema.CURVES) + ["test_accuracy",
                                                                          "val_accuracy"]
    declared = {c.name: c.dtype for c in schema.RUNS}
    assert str(results.runs["trial"].dtype) == "Int64" and declared["trial"] == "int or null"


def test_an_undeclared_column_is_refused():
    import pytest

    with pytest.raises(schema.SchemaError, match="not declared"):
        schema.frame([{"cell_id": "x", "seed": 0, "surprise": 1}], "curves")
    # a metric column is named by the pattern of its table only
    with pytest.raises(schema.SchemaError, match="not declared"):
        schema.frame([{"cell_id": "x", "seed": 0, "final_val_accuracy": 1.0}], "curves")


def test_every_usage_and_timing_field_has_a_column():
    """The engine's records are copied into the table by name: a field without a column
    (or a column without a field) would vanish silently."""
    from dataclasses import fields

    from bench.records import Timings, Usage

    usage_columns = set(schema.names(schema.RUNS, "usage"))
    assert {f.name for f in fields(Usage)} == usage_columns
    timing_fields = {f.name for f in fields(Timings)} - {"chunk_seconds", "chunk_steps"}
    assert timing_fields | {"step_time_median_s", "step_time_iqr_s", "steps_per_s"} \
        == set(schema.names(schema.RUNS, "timings"))


def test_a_folder_written_before_a_column_was_added_reads_with_it_empty():
    import pandas as pd

    from bench.runner import schema

    declared = schema.names(schema.RUNS)
    older = [c for c in declared if c not in schema.ADDED_LATER["runs"]]
    assert schema.has_layout("runs", older + ["final_val_accuracy"])
    assert not schema.has_layout("runs", [c for c in declared if c != "compile_cache_hits"])
    table = schema.completed(pd.DataFrame({c: [] for c in older}), "runs")
    assert list(table.columns) == declared
    assert str(table["compile_cache_hits"].dtype) == "Int64"
