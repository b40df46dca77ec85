"""Figures as files: `optbench report --format`, `optbench plot` and compare.html's
highlights and curves. Every run here is cut from the shipped reference run (tables only,
no training), some with names a user could give that are markup."""
import json
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pandas as pd
import pytest

import bench
from bench import cli
from bench.report import compare, compare_pages, plots, report
from bench.runner.store import write_tables
from tests.conftest import ROOT

REFERENCE = ROOT / "results" / "reference"
MARKUP = "li<&>on"  # a label that is markup in SVG and HTML
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-"}


def cut(out, edit_runs=None, edit_curves=None):
    """A results folder holding the reference run's tables as `edit_*` changed them."""
    out.mkdir(parents=True)
    shutil.copy(REFERENCE / "manifest.json", out / "manifest.json")
    runs = pd.read_parquet(REFERENCE / "runs.parquet")
    curves = pd.read_parquet(REFERENCE / "curves.parquet")
    runs = edit_runs(runs) if edit_runs else runs
    curves = curves[curves["cell_id"].isin(set(runs["cell_id"]))]
    write_tables(out, runs, edit_curves(curves) if edit_curves else curves, token=out.name)
    return out


def _small(runs):
    """Two workloads (one a 2-D function) x three optimizers, lion renamed to markup."""
    runs = runs[runs["workload"].isin(["mnist1d-mlp", "beale-2d"])
                & runs["optimizer"].isin(["adam", "sgd", "lion"])]
    return runs.assign(**{c: runs[c].replace("lion", MARKUP) for c in ("optimizer", "label")})


def _sweep(runs):
    """mnist1d-mlp x adam and sgd as tuning trials at two widths and three learning rates
    (adam's b1 varies with them): enough for the learning-rate, width and tuning-curve
    figures."""
    base = runs[(runs["workload"] == "mnist1d-mlp") & runs["optimizer"].isin(["adam", "sgd"])]
    parts = []
    for width in (64, 128):
        for trial, rate in enumerate((1e-3, 3e-3, 1e-2)):
            hparams = [json.dumps({**json.loads(h), "learning_rate": rate,
                                   **({"b1": 0.8 + 0.05 * trial} if o == "adam" else {})})
                       for h, o in zip(base["hparams"], base["optimizer"])]
            parts.append(base.assign(
                cell_id=base["cell_id"] + f"-w{width}-{trial}", workload=f"mnist1d-mlp@w{width}",
                match_key=base["match_key"] + f"-w{width}-{trial}", hparams=hparams,
                role="trial", trial=trial,
                final_val_accuracy=base["final_val_accuracy"] - abs(trial - 1) * 0.05))
    return pd.concat(parts, ignore_index=True)


def _sweep_curves(curves):
    ids = curves["cell_id"]
    return pd.concat([curves.assign(cell_id=ids + f"-w{w}-{t}") for w in (64, 128)
                      for t in range(3)], ignore_index=True)


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    return cut(tmp_path_factory.mktemp("export") / "small", _small)


@pytest.fixture(scope="module")
def sweep_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "sweep"
    out.mkdir()
    shutil.copy(REFERENCE / "manifest.json", out / "manifest.json")
    runs = _sweep(pd.read_parquet(REFERENCE / "runs.parquet"))
    curves = pd.read_parquet(REFERENCE / "curves.parquet")
    base_ids = {cell.rsplit("-w", 1)[0] for cell in runs["cell_id"]}
    write_tables(out, runs, _sweep_curves(curves[curves["cell_id"].isin(base_ids)]), token="sweep")
    return out


def optbench(capsys, *args):
    """The CLI in this process (no interpreter start per call): exit code, stdout, stderr."""
    code = cli.main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_valid(path, fmt):
    data = path.read_bytes()
    if fmt == "svg":
        ElementTree.fromstring(data)  # raises on anything but well-formed XML
    else:
        assert data.startswith(MAGIC[fmt]), (path, data[:8])


# ---- optbench report --format -------------------------------------------------------------

def test_report_writes_every_figure_in_every_format_asked(small_run, tmp_path, capsys):
    code, _, err = optbench(capsys, "report", small_run, "--out", tmp_path,
                            "--format", "png,svg,pdf")
    assert code == 0, err
    plots_dir = tmp_path / "plots"
    stems = {p.stem for p in plots_dir.iterdir()}
    assert {"curves_by_step", "trajectories", "final_metric", "heatmap"} <= stems
    for stem in stems:
        for fmt in ("png", "svg", "pdf"):
            assert_valid(plots_dir / f"{stem}.{fmt}", fmt)
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == len(stems)  # PNG asked: PNG embedded
    assert "image/svg+xml" not in page


def test_svg_keeps_names_as_text_and_markup_as_text(small_run, tmp_path):
    report.write(report.build(bench.load(small_run)), tmp_path, ("svg",))
    svg = ElementTree.parse(tmp_path / "plots" / "curves_by_step.svg")
    texts = {"".join(e.itertext()).strip() for e in svg.iter() if e.tag.endswith("text")}
    assert MARKUP in texts and "mnist1d-mlp" in texts  # text, not glyph outlines
    assert not list((tmp_path / "plots").glob("*.png"))  # only what was asked
    page = (tmp_path / "report.html").read_text()
    assert "data:image/svg+xml;base64," in page and "data:image/png" not in page


def test_pdf_only_is_linked_from_the_pages(small_run, tmp_path):
    report.write(report.build(bench.load(small_run)), tmp_path, ("pdf",))
    assert "<a href=\"plots/heatmap.pdf\">" in (tmp_path / "report.html").read_text()
    assert "(plots/heatmap.pdf)" in (tmp_path / "report.md").read_text()


@pytest.mark.parametrize("value,words", [
    ("jpg", "unknown format 'jpg'"), ("png,gif", "unknown format 'gif'"),
    (",", "--format is empty")])
def test_a_bad_format_is_one_line_naming_the_valid_ones(small_run, tmp_path, capsys, value, words):
    code, _, err = optbench(capsys, "report", small_run, "--out", tmp_path, "--format", value)
    assert code == 2 and err.count("\n") == 1 and words in err and "png, svg, pdf" in err, err
    assert not (tmp_path / "report.html").exists()


# ---- optbench plot --------------------------------------------------------------------------

SMALL_KINDS = ["curves", "trajectories", "final-metric", "time-to-target", "step-time",
               "state-memory", "performance-profile", "heatmap"]
SWEEP_KINDS = ["lr-sensitivity", "lr-and-others", "best-lr-by-width", "tuning-curves"]


def test_every_report_figure_is_a_kind():
    assert plots.kinds() == SMALL_KINDS + SWEEP_KINDS


@pytest.mark.parametrize("kind", SMALL_KINDS + SWEEP_KINDS)
def test_plot_draws_each_kind_and_prints_its_path(small_run, sweep_run, tmp_path, capsys, kind):
    run = sweep_run if kind in SWEEP_KINDS else small_run
    out = tmp_path / f"{kind}.svg"
    code, stdout, err = optbench(capsys, "plot", run, "--kind", kind, "--out", out)
    assert code == 0, err
    assert stdout.strip() == str(out)
    assert_valid(out, "svg")
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # no scratch left behind


def test_plot_selects_workloads_and_optimizers_and_takes_metric_and_axis(small_run, tmp_path,
                                                                         capsys):
    out = tmp_path / "one.pdf"
    code, _, err = optbench(capsys, "plot", small_run, "--kind", "curves", "--workloads",
                            "mnist1d-mlp", "--optimizers", f"adam,{MARKUP}", "--metric",
                            "val_loss", "--x", "time", "--out", out)
    assert code == 0, err
    assert_valid(out, "pdf")
    svg = tmp_path / "one.svg"
    assert optbench(capsys, "plot", small_run, "--kind", "curves", "--workloads", "mnist1d-mlp",
                    "--optimizers", "adam", "--metric", "val_loss", "--out", svg)[0] == 0
    texts = {"".join(e.itertext()).strip() for e in ElementTree.parse(svg).iter()}
    assert "val loss" in texts and "adam" in texts
    assert MARKUP not in texts and "sgd" not in texts and "beale-2d" not in texts


def test_plot_writes_into_the_run_by_default_and_into_a_folder_given(small_run, tmp_path,
                                                                     capsys):
    code, stdout, _ = optbench(capsys, "plot", small_run, "--kind", "heatmap")
    assert code == 0 and stdout.strip() == str(small_run / "plots" / "plot-heatmap.png")
    assert_valid(small_run / "plots" / "plot-heatmap.png", "png")
    code, stdout, _ = optbench(capsys, "plot", small_run, "--kind", "curves", "--x", "time",
                               "--out", tmp_path)
    assert code == 0 and stdout.strip() == str(tmp_path / "plot-curves-by-time.png")


@pytest.mark.parametrize("args,words", [
    (["--kind", "curvs"], "unknown kind 'curvs' (did you mean 'curves'?); the kinds: curves,"),
    (["--kind", "curves", "--workloads", "mnist1d-mpl"],
     "no workload 'mnist1d-mpl' (did you mean 'mnist1d-mlp'?); it holds: beale-2d, mnist1d-mlp"),
    (["--kind", "curves", "--optimizers", "adam,adamw"],
     f"no optimizer 'adamw' (did you mean 'adam'?); it holds: adam, {MARKUP}, sgd"),
    (["--kind", "curves", "--optimizers", ","], "--optimizers is empty"),
    (["--kind", "curves", "--metric", "val_acc"], "(did you mean 'val_accuracy'?)"),
    (["--kind", "curves", "--metric", "val_accuracy"], "beale-2d record(s) no val_accuracy"),
    (["--kind", "heatmap", "--x", "time"], "--x applies to --kind curves only"),
    (["--kind", "curves", "--x", "epoch"], "--x takes step or time"),
    (["--kind", "heatmap", "--out", "figure.jpg"], "give a file name ending in .png, .svg, .pdf"),
    (["--kind", "lr-sensitivity"], "nothing to draw"),
])
def test_plot_bad_input_is_one_line(small_run, capsys, args, words):
    code, _, err = optbench(capsys, "plot", small_run, *args)
    assert code == 2 and err.count("\n") == 1 and words in err, err


# the library calls behind `optbench plot` and compare's pages (the `optbench` command
# itself loads the optimizer registry, hence Optax and JAX, before it parses anything)
NO_JAX = """
import sys
import bench
from pathlib import Path
from bench.report import compare, compare_pages, one_figure
results = bench.load({run!r})
one_figure.plot(one_figure.select(results, ["mnist1d-mlp"], None), "curves", Path({out!r}))
compare_pages.write(compare.compare([results, results]), Path({cmp!r}))
assert "jax" not in sys.modules, "jax was imported"
"""


def test_plot_and_compare_pages_never_import_jax(small_run, tmp_path):
    code = NO_JAX.format(run=str(small_run), out=str(tmp_path / "c.png"), cmp=str(tmp_path / "cmp"))
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert_valid(tmp_path / "c.png", "png")
    assert list((tmp_path / "cmp").glob("curves-*.png"))
    assert (tmp_path / "cmp" / "compare.html").is_file()


# ---- compare.html ---------------------------------------------------------------------------

def _worse(runs):
    """adam on mnist1d-mlp 20% less accurate."""
    runs = _small(runs).copy()
    adam = (runs["workload"] == "mnist1d-mlp") & (runs["optimizer"] == "adam")
    runs.loc[adam, "final_test_accuracy"] *= 0.8
    return runs


def _twice_as_slow(curves):
    """sgd on mnist1d-mlp twice as slow: each of its 8 chunks took twice as long."""
    runs = pd.read_parquet(REFERENCE / "runs.parquet")
    sgd = set(runs.loc[(runs["workload"] == "mnist1d-mlp") & (runs["optimizer"] == "sgd"),
                       "cell_id"])
    seconds = curves["train_seconds"]
    return curves.assign(train_seconds=seconds.where(~curves["cell_id"].isin(sgd), 2 * seconds))


def _rows(page: str, css: str) -> list[str]:
    return [row for row in page.split("<tr")[1:] if row.startswith(f" class=\"{css}\"")]


def test_compare_html_marks_regressions_and_shows_each_workloads_curves(small_run, tmp_path,
                                                                      capsys):
    worse = cut(tmp_path / "worse", _worse, _twice_as_slow)
    out = tmp_path / "cmp"
    code, _, err = optbench(capsys, "compare", small_run, worse, "--fail-on-regression", "5",
                            "--out", out)
    assert code == 1 and err.count("regression: ") == 2, err
    page = (out / "compare.html").read_text()
    marked = _rows(page, "regression")
    assert len(marked) == 2  # the rows `regressions` flagged, and no other
    assert "mnist1d-mlp" in marked[0] and "mnist1d-mlp" in marked[1]
    assert "speed 0.50x [" in marked[0] + marked[1] and ", slower" in marked[0] + marked[1]
    assert all("▲ regression:" in row for row in marked)  # a written marker, not colour alone
    assert "class=legend" in page and "more than 5%" in page
    images = sorted(p.name for p in out.glob("curves-*.png"))
    assert len(images) == 2 and all(p.startswith(("curves-01-", "curves-02-")) for p in images)
    assert page.count("data:image/png;base64,") == 2
    assert all(f"]({name})" in (out / "compare.md").read_text() for name in images)
    assert "▲ regression" in (out / "compare.md").read_text()


def test_compare_html_marks_at_the_default_threshold_without_the_flag(small_run, tmp_path,
                                                                     capsys):
    slightly = cut(tmp_path / "slightly", lambda r: _small(r).assign(
        final_test_accuracy=_small(r)["final_test_accuracy"] * 0.95))
    assert optbench(capsys, "compare", small_run, slightly, "--out", tmp_path / "a")[0] == 0
    assert not _rows((tmp_path / "a" / "compare.html").read_text(), "regression")  # 5% < 10%
    assert optbench(capsys, "compare", small_run, slightly, "--fail-on-regression", "2",
                    "--out", tmp_path / "b")[0] == 1
    assert _rows((tmp_path / "b" / "compare.html").read_text(), "regression")


def test_compare_html_marks_a_missing_cell_unless_allowed(small_run, tmp_path):
    fewer = cut(tmp_path / "fewer", lambda r: _small(r)[_small(r)["optimizer"] != "sgd"])
    comparison = compare.compare([bench.load(small_run), bench.load(fewer)])
    page = compare_pages.html_page(comparison, compare_pages.Flags(10.0))
    assert len(_rows(page, "regression")) == 2 and "missing from a later run" in page
    allowed = compare_pages.html_page(comparison, compare_pages.Flags(10.0, allow_missing=True))
    assert not _rows(allowed, "regression")


def test_compare_lists_rows_by_workload_then_label(small_run):
    """Not by match key, a hash: a comparison read as the report lists cells."""
    results = bench.load(small_run)
    rows = compare.compare([results, results]).rows
    order = list(zip(rows["workload"], rows["label"]))
    assert len(order) == 6 and order == sorted(order)
