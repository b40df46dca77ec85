"""Reports and comparisons, from the tables alone: what they show, how they survive odd
runs, and that they never run user text as HTML."""
import json
import shutil

import pandas as pd
import pytest

import bench
from bench.report import compare, compare_pages, report
from bench.report.tables import fmt_step_time
from bench.runner.schema import SCHEMA_VERSION
from bench.runner.store import write_tables
from tests.conftest import ROOT, optbench_here, run_optbench


def variant(smoke_run, tmp_path, name, edit_runs=None, edit_curves=None):
    """A copy of the smoke run whose tables `edit_*` changed (the manifest kept), shared as
    tables without their cell files."""
    out = tmp_path / name
    out.mkdir()
    shutil.copy(smoke_run / "manifest.json", out / "manifest.json")
    runs = pd.read_parquet(smoke_run / "runs.parquet")
    curves = pd.read_parquet(smoke_run / "curves.parquet")
    write_tables(out, edit_runs(runs) if edit_runs else runs,
                 edit_curves(curves) if edit_curves else curves, token=name)
    return out


def test_a_run_writes_its_report(smoke_run):
    html = (smoke_run / "report.html").read_text()
    for label in ("optax:sgd", "optax:adam"):
        assert label in html
    assert html.count("data:image/png;base64,") >= 4
    assert "http://" not in html and "https://" not in html and 'src="plots/' not in html
    markdown = (smoke_run / "report.md").read_text()
    images = [line.split("](")[1].rstrip(")") for line in markdown.splitlines() if line.startswith("![")]
    assert images and all((smoke_run / image).is_file() for image in images)
    assert "## synthetic-mlp" in markdown and "How to read this report" in markdown


def test_bench_load_gives_dataframes(smoke_run):
    results = bench.load(smoke_run)
    assert isinstance(results.runs, pd.DataFrame) and isinstance(results.curves, pd.DataFrame)
    assert set(results.runs["optimizer"]) == {"optax:sgd", "optax:adam"}
    assert results.manifest["schema_version"] == SCHEMA_VERSION


def test_names_with_html_are_escaped(smoke_run, tmp_path):
    evil = "<script>alert(1)</script>"
    out = variant(smoke_run, tmp_path, "evil", edit_runs=lambda r: r.assign(
        label=r["label"] + evil, optimizer=r["optimizer"] + evil, workload=r["workload"] + "<b>"))
    report.write(report.build(bench.load(out)))
    page = (out / "report.html").read_text()
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page and "&lt;b&gt;" in page
    cmp = compare.compare([bench.load(smoke_run), bench.load(out)], "final_test_accuracy")
    compare_page = compare_pages.html_page(cmp)
    assert "<script>alert" not in compare_page and "&lt;script&gt;" in compare_page


def test_diverged_and_errored_seeds_are_shown_as_such(smoke_run, tmp_path):
    def edit(runs):
        runs = runs.copy()
        runs.loc[0, "status"] = "diverged"
        runs.loc[1, "status"] = "error"
        return runs
    built = report.build(bench.load(variant(smoke_run, tmp_path, "mixed", edit_runs=edit)))
    assert built.cells["diverged"].sum() == 1 and built.cells["error"].sum() == 1
    assert built.cells["done"].sum() == len(built.results.runs) - 2
    assert any("ended in an error" in note for note in built.notes)
    report.write(built)
    markdown = (built.results.root / "report.md").read_text()
    assert "| 0 / 1 / 1 |" in markdown  # the cell of rows 0 and 1: done / diverged / error


def test_one_seed_one_optimizer_still_reports(smoke_run, tmp_path):
    out = variant(smoke_run, tmp_path, "thin", edit_runs=lambda r: r[(r["seed"] == r["seed"].min())
                                                                     & (r["optimizer"] == "optax:adam")])
    built = report.build(bench.load(out))
    paths = report.write(built)
    assert any("single seed" in n for n in built.notes) and any("Only one optimizer" in n for n in built.notes)
    assert "optax:adam" in paths["html"].read_text()


def test_the_report_of_an_interrupted_run_says_its_cells_are_not_all_there(smoke_run, tmp_path):
    """The report of a run stopped by Ctrl-C showed its finished cells as the whole run
    ('Only one optimizer' where the matrix had two)."""
    out = variant(smoke_run, tmp_path, "cut", edit_runs=lambda r: r[r["optimizer"] == "optax:sgd"])
    assert not [n for n in report.build(bench.load(out)).notes if "interrupted" in n]
    manifest = json.loads((out / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps({**manifest, "state": "interrupted"}))
    built = report.build(bench.load(out))
    assert built.notes[0].startswith("This run was interrupted with 1 of its 2 planned cells"
                                     " finished: the others are missing")
    report.write(built)
    assert "This run was interrupted" in (out / "report.md").read_text()
    whole = variant(smoke_run, tmp_path, "whole")  # stopped after its last cell was saved
    (whole / "manifest.json").write_text(json.dumps({**manifest, "state": "interrupted"}))
    assert report.build(bench.load(whole)).notes[0].startswith(
        "This run was interrupted after its planned cells had finished")


def test_a_run_with_no_finished_cell_reports_that(tmp_path, smoke_run):
    out = tmp_path / "empty"
    out.mkdir()
    shutil.copy(smoke_run / "manifest.json", out / "manifest.json")
    result = optbench_here("report", str(out))
    assert result.returncode == 0, result.stderr
    assert "no finished cell" in result.stdout
    assert "no finished cell" in (out / "report.html").read_text()


def test_compare_same_run_has_no_difference_and_exits_0(smoke_run, tmp_path):
    result = optbench_here("compare", str(smoke_run), str(smoke_run), "--fail-on-regression", "1",
                          "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "compare.md").is_file() and (tmp_path / "compare.html").is_file()
    rows = compare.compare([bench.load(smoke_run)] * 2, "final_test_accuracy").rows
    assert (rows["diff"] == 0).all() and not rows["significant"].any()
    assert (rows["speed_ratio"] == 1).all()


@pytest.mark.parametrize("edit,metric,words", [
    # the default metric: the target's metric (accuracy, higher is better) on the test split
    (lambda r: r.assign(final_test_accuracy=r["final_test_accuracy"] * 0.9), "target",
     "final_test_accuracy"),
    (lambda r: r.assign(final_test_accuracy=r["final_test_accuracy"] * 0.9), "final_test_accuracy",
     "final_test_accuracy"),
    # a loss is better when lower: an increase is the regression
    (lambda r: r.assign(final_test_loss=r["final_test_loss"] * 1.5), "final_test_loss",
     "final_test_loss"),
])
def test_fail_on_regression_exits_1_naming_the_cell(smoke_run, tmp_path, edit, metric, words):
    worse = variant(smoke_run, tmp_path, "worse", edit_runs=edit)
    result = optbench_here("compare", str(smoke_run), str(worse), "--fail-on-regression", "5",
                          "--metric", metric, "--out", str(tmp_path / "cmp"))
    assert result.returncode == 1, result.stderr
    assert "regression: worse: synthetic-mlp x optax:" in result.stderr and words in result.stderr
    # within the threshold it passes
    assert optbench_here("compare", str(smoke_run), str(worse), "--fail-on-regression", "60",
                        "--metric", metric, "--out", str(tmp_path / "cmp")).returncode == 0


def test_a_loss_that_falls_is_no_regression(smoke_run, tmp_path):
    """Which way is better comes from the declaration: a lower loss is an improvement."""
    better = variant(smoke_run, tmp_path, "better",
                     edit_runs=lambda r: r.assign(final_test_loss=r["final_test_loss"] * 0.5))
    result = optbench_here("compare", str(smoke_run), str(better), "--fail-on-regression", "5",
                          "--metric", "final_test_loss", "--out", str(tmp_path / "cmp"))
    assert result.returncode == 0, result.stderr


def test_cells_in_one_run_only_are_listed(smoke_run, tmp_path):
    fewer = variant(smoke_run, tmp_path, "fewer", edit_runs=lambda r: r[r["optimizer"] == "optax:sgd"])
    cmp = compare.compare([bench.load(smoke_run), bench.load(fewer)], "final_test_accuracy")
    assert list(cmp.rows["label"]) == ["optax:sgd"]
    assert cmp.only_in == [(smoke_run.name, "synthetic-mlp", "optax:adam")]
    assert "Cells in some runs only" in compare_pages.markdown(cmp)


def test_compare_welch_difference_matches_the_seeds(smoke_run, tmp_path):
    shifted = variant(smoke_run, tmp_path, "shifted", edit_runs=lambda r: r.assign(
        final_test_accuracy=r["final_test_accuracy"] + 0.01 * (r["seed"] + 1)))
    rows = compare.compare([bench.load(smoke_run), bench.load(shifted)], "final_test_accuracy").rows
    seeds = pd.read_parquet(smoke_run / "runs.parquet")["seed"].unique()
    assert rows["diff"].tolist() == pytest.approx([0.01 * (seeds + 1).mean()] * len(rows))


@pytest.mark.parametrize("args,message", [
    (["compare", "results/reference"], "at least two results folders"),
    (["compare", "results/reference", "results/reference", "--metric", "accuracy"], "unknown metric 'accuracy'"),
    (["compare", "results/reference", "results/reference", "--fail-on-regression", "x"], "not a number"),
    (["report", "results/nope"], "is not an optbench results folder"),
])
def test_bad_report_and_compare_input_is_one_line(args, message):
    result = optbench_here(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_the_shipped_reference_run_is_small_and_compares(tmp_path):
    reference = ROOT / "results" / "reference"
    size = sum(p.stat().st_size for p in reference.rglob("*") if p.is_file())
    assert size < 1_000_000
    manifest = json.loads((reference / "manifest.json").read_text())
    assert manifest["config"]["matrix"]["name"] == "quick"
    result = run_optbench("compare", str(reference), str(reference), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    runs = bench.load(reference).runs
    # sgd and momentum diverge on Rosenbrock and Beale at their defaults: a result
    assert runs["label"].nunique() == 7 and set(runs["status"]) == {"done", "diverged"}
    diverged = runs[runs.status == "diverged"]
    assert set(diverged.workload) <= {"rosenbrock-2d", "beale-2d"}
    assert {"mnist1d-gru", "rosenbrock-2d", "saddle-2d"} <= set(runs.workload)


@pytest.mark.parametrize("args, text", [
    ((0.912, 0.905, 0.919), "0.912 [0.905, 0.919]"),
    ((7.8e-13, 5.1e-13, 1.05e-12), "7.80e-13 [5.10e-13, 1.05e-12]"),  # a suboptimality
    ((1.2e-3, -1e-3, 3.4e-3), "1.20e-03 [-1.00e-03, 3.40e-03]"),
    ((0.0, 0.0, 0.0), "0.000 [0.000, 0.000]"),                      # exactly zero stays fixed
    ((851.888, -5593.185, 7296.961), "851.888 [-5593.185, 7296.961]"),
    ((2.5e6,), "2.50e+06"),
    ((float("nan"),), "—"),
])
def test_interval_keeps_significant_figures_of_small_and_large_means(args, text):
    from bench.report.render import interval
    assert interval(*args) == text
    # compare's difference: the interval, not the mean near zero, sets the scale
    assert interval(8e-4, -5e-3, 6.6e-3, digits=4, sign=True) == "+0.0008 [-0.0050, +0.0066]"


@pytest.mark.parametrize("seconds, text", [
    (2.6e-5, "26 µs"), (0.0993, "99.3 ms"), (0.1228, "123 ms"), (1.234, "1.23 s"),
    (float("nan"), "—"),
])
def test_step_time_is_written_in_a_unit_that_keeps_it_short(seconds, text):
    from bench.report.tables import fmt_step_time
    assert fmt_step_time(seconds) == text


def test_only_a_minimised_target_metric_spanning_decades_gets_a_log_axis():
    from bench.records import Target
    from bench.report.curve_plots import log_axis
    suboptimality = pd.Series([1.0, 1e-3, 1e-12])
    accuracy = pd.Series([0.006, 0.02, 0.3])  # grokking: chance is 1%
    assert log_axis(suboptimality, Target("val_suboptimality", 1e-3, "min"))
    assert not log_axis(pd.Series([0.5, 0.3, 0.2]), Target("val_loss", 0.1, "min"))
    assert not log_axis(accuracy, Target("val_accuracy", 0.99, "max"))


def test_an_update_share_over_100_percent_is_explained_not_just_shown(smoke_run, tmp_path):
    """On an H200 the MNIST-1D MLP's update share read 146%: its 44 us steps are shorter
    than the probe's own call overhead. The report says so instead of leaving a share
    above the whole."""
    def edit(runs, share=1.46):
        runs = runs.copy()
        runs["update_share"] = 0.4  # the smoke run's own shares are measured: a loaded machine
        runs.loc[runs["optimizer"] == "optax:adam", "update_share"] = share  # read over 100%
        return runs
    built = report.build(bench.load(variant(smoke_run, tmp_path, "share", edit_runs=edit)))
    [note] = [n for n in built.notes if "over 100%" in n]
    step = built.runs.drop_duplicates("cell_id")
    step = step.loc[step["optimizer"] == "optax:adam", "step_time_median_s"].median()
    assert f"is over 100% on synthetic-mlp (steps of {fmt_step_time(step)}): not a measurement." \
        in note and "'Step time vs SGD', where shown" in note
    plain = report.build(bench.load(variant(smoke_run, tmp_path, "plain",
                                            edit_runs=lambda runs: edit(runs, 0.99))))
    assert not [n for n in plain.notes if "over 100%" in n]


def test_the_update_share_note_escapes_the_names_it_gives_and_reads_any_column(smoke_run, tmp_path):
    """The note names workloads: from a shared or edited table they can hold markup, which
    must show as text in report.html and report.md. A share that is NaN, text or missing
    (a table from before the probe) is no share over 100%, and no error."""
    evil = "<img src=x onerror=alert(1)>*w*"

    def edit(runs):
        runs = runs.copy()
        runs["workload"] = runs["workload"] + evil
        runs["update_share"] = 1.46
        return runs
    out = variant(smoke_run, tmp_path, "evil-share", edit_runs=edit)
    built = report.build(bench.load(out))
    assert [n for n in built.notes if "over 100% on synthetic-mlp" + evil in n]
    report.write(built)
    page, markdown = (out / "report.html").read_text(), (out / "report.md").read_text()
    assert "<img src=x" not in page and "over 100% on synthetic-mlp&lt;img src=x" in page
    assert "over 100% on synthetic-mlp\\<img src=x onerror=alert(1)\\>\\*w\\*" in markdown
    runs = bench.load(smoke_run).runs
    for column in (float("nan"), "1.5x", None):
        assert report._update_share_note(runs.assign(update_share=column)) == []
    assert report._update_share_note(runs.drop(columns="update_share")) == []
    assert report._update_share_note(runs.assign(update_share=float("inf")))
