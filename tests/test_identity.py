"""One definition of each thing: a cell's identity covers its code and its program layout,
compare never pools different cells, accuracy is exact, and the terminal and the report
say the same time to target."""
import re

import jax.numpy as jnp
import numpy as np
import pandas as pd

import bench
import optimizers
from bench.plan import expand, matrix
from bench.report import analysis, compare
from bench.runner.results import load
from bench.train import data, engine
import workloads
from tests.conftest import ROOT, optbench_here, run_optbench

PLUGIN = """import optax
from optimizers import register

@register("test:plain_sgd", learning_rate=0.1)
def plain_sgd(learning_rate):
    return optax.sgd(learning_rate{extra})
"""


def test_editing_a_plugin_reruns_its_cells_and_says_which_file_changed(tmp_path):
    plugin = tmp_path / "plug.py"
    plugin.write_text(PLUGIN.format(extra=""))
    out = tmp_path / "run"
    args = ["run", "--no-report", "--preset", "smoke", "--steps", "50", "--optimizers",
            "test:plain_sgd,optax:sgd",
            "--plugin", str(plugin), "--out", str(out)]
    assert run_optbench(*args).returncode == 0
    first = set(p.stem for p in (out / "cells").glob("*.json"))
    again = run_optbench(*args)
    assert "2 of 2 cells already finished" in again.stderr  # unchanged code: nothing reruns
    plugin.write_text(PLUGIN.format(extra=", momentum=0.5"))  # the update rule changes
    edited = run_optbench(*args)
    assert edited.returncode == 0, edited.stderr
    assert "rerunning synthetic-mlp x test:plain_sgd: plugin:plug.py changed" in edited.stderr
    assert "1 of 2 cells already finished" in edited.stderr  # optax:sgd's code did not change
    results = load(out)
    new_id = results.runs.loc[results.runs["optimizer"] == "test:plain_sgd", "cell_id"].unique()
    assert len(new_id) == 1 and new_id[0] not in first  # the new version supersedes the old
    assert first < set(p.stem for p in (out / "cells").glob("*.json"))  # whose files stay
    assert any("rerun under changed code" in note for note in results.notes)
    old_curves = pd.read_parquet(next(out.glob(f"cells/{(first - {*results.runs.cell_id}).pop()}.parquet")))
    assert old_curves["val_loss"].iloc[-1] != results.curves.loc[
        results.curves["cell_id"] == new_id[0], "val_loss"].iloc[-1]  # new numbers


def test_a_cells_id_covers_its_optimizer_workload_model_and_engine_code():
    cell = expand.cells(matrix.from_dict({"seeds": 1, "workloads": ["mnist1d-cnn"],
                                          "optimizers": ["adam"]}, name="m", source="m"))[0]
    assert {"optimizers/adam.py", "models/cnn.py", "workloads/registry.py", "workloads/classifiers.py",
            "bench/train/data.py", "bench/train/engine.py", "bench/train/programs.py"} \
        <= set(dict(cell.code))
    assert set(cell.record()["versions"]) == {"jax", "jaxlib", "flax", "optax"}


def layouts(tmp_path, name, optimizers_toml):
    path = tmp_path / f"{name}.toml"
    path.write_text(f'name = "{name}"\nseeds = 2\nsteps = 100\nworkloads = ["synthetic-mlp"]\n'
                    f"optimizers = {optimizers_toml}\n")
    out = tmp_path / name
    result = optbench_here("run", str(path), "--no-report", "--out", str(out))
    assert result.returncode == 0, result.stderr
    return out


def test_a_program_layout_is_part_of_the_identity_so_compare_never_mixes_layouts(tmp_path):
    swept = layouts(tmp_path, "swept", '["optax:adam", {name = "optax:adam", learning_rate = 0.003}]')
    alone = layouts(tmp_path, "alone", '[{name = "optax:adam", learning_rate = 0.003}]')
    a, b = load(swept).runs, load(alone).runs
    label = "optax:adam(learning_rate=0.003)"
    assert a.loc[a["label"] == label, "trials_in_program"].iloc[0] == 2
    assert b["trials_in_program"].iloc[0] == 1
    assert set(a["cell_id"]).isdisjoint(b["cell_id"]) and set(a["match_key"]).isdisjoint(b["match_key"])
    comparison = compare.compare([load(swept), load(alone)], "final_test_accuracy")
    assert comparison.rows.empty and ("alone", "synthetic-mlp", label) in comparison.only_in


def test_compare_keeps_schedules_and_roles_apart(tmp_path):
    path = tmp_path / "m.toml"
    path.write_text('name = "m"\nseeds = 1\nsteps = 60\nbudget = 2\nworkloads = ["synthetic-mlp"]\n'
                    'optimizers = ["optax:sgd"]\n'
                    'schedules = ["constant", {name = "wsd", warmup = 0.1, decay = 0.3}]\n')
    out = tmp_path / "run"
    assert optbench_here("run", str(path), "--no-report", "--out", str(out)).returncode == 0
    results = load(out)
    comparison = compare.compare([results, results], "final_val_accuracy")
    # oneshot, two trials and tuned, under each schedule: every cell its own row, 1 seed each
    cells = results.runs.groupby(["schedule", "role", "trial"], dropna=False).ngroups
    assert len(comparison.rows) == cells == len(results.runs) == 2 * 4
    assert set(comparison.rows["seeds_a"]) == {1} and set(comparison.rows["seeds_b"]) == {1}


def test_an_accuracy_of_exactly_k_over_n_meets_a_target_of_k_over_n():
    # 240 of 400 correct is 0.6 exactly when counted as integers and divided in float64;
    # the float32 mean of the 0/1 vector on the device (what the engine used to store) is
    # 0.59999996, which misses the target
    labels = np.zeros(400, dtype=np.int32)
    labels[:160] = 1  # a model that always says 0 is right on 240
    logits = np.zeros((400, 2), dtype=np.float32)
    logits[:, 0] = 1.0
    sums = workloads.classification_sums(logits, labels)
    accuracy = np.float64(sums["accuracy"]) / 400
    assert str(sums["accuracy"].dtype) == "int32" and accuracy == 0.6
    assert float(jnp.mean(jnp.argmax(logits, -1) == labels)) < 0.6
    target = workloads.get("mnist1d-mlp").target
    assert target.value == 0.6 and target.reached(np.array([accuracy]))[0]


def test_the_engine_reports_accuracy_as_a_ratio_of_integers():
    w = workloads.get("synthetic-mlp")
    spec = optimizers.get("optax:sgd")
    d = w.load_data()
    result = engine.train(w, d, spec, spec.resolve(), steps=20, eval_every=10,
                          batch_size=w.batch_size, seeds=[0, 1])
    for split, size in (("val", len(d.y_val)), ("test", len(d.y_test))):
        accuracy = result.curves[f"{split}_accuracy"]
        assert accuracy.dtype == np.float64
        np.testing.assert_array_equal(accuracy * size, np.round(accuracy * size))


def test_the_terminal_summary_and_the_report_agree_on_time_to_target(smoke_run):
    results = bench.load(smoke_run)
    cells = analysis.cell_table(results.runs)
    terminal = optbench_here("report", str(smoke_run)).stdout
    report_md = (smoke_run / "report.md").read_text()
    rerun = optbench_here("run", "--preset", "smoke", "--no-report", "--out", str(smoke_run))
    for row in cells.itertuples():
        steps = "not reached" if not np.isfinite(row.target_step) else f"{row.target_step:,.0f}"
        line = next(line for line in report_md.splitlines()
                    if re.match(rf"\| =?[\d.]+ \| {re.escape(row.label)} \|", line))  # "=1": tied
        assert f"| {steps} |" in line
        summary_row = next(line for line in rerun.stdout.splitlines()
                           if re.search(rf"│ {re.escape(row.label)}\s+│", line))
        assert f"│ {steps} " in summary_row
    assert "AlgoPerf score" in terminal


def test_the_stored_time_to_target_is_the_reports_interpolated_crossing(smoke_run):
    results = bench.load(smoke_run)
    for row in results.runs.itertuples():
        curve = results.curves[(results.curves["cell_id"] == row.cell_id)
                               & (results.curves["seed"] == row.seed)]
        step, _ = analysis.crossing(curve, analysis.target_of(results.runs.loc[row.Index]))
        assert (np.isnan(step) and np.isnan(row.target_step)) or step == row.target_step


def test_a_workload_declares_its_target_direction():
    for workload in (workloads.get(n) for n in workloads.names()):
        metric = workload.target.metric.removeprefix("val_")
        assert workload.metrics[metric] == workload.target.direction
    runs = pd.read_parquet(ROOT / "results" / "reference" / "runs.parquet")
    # accuracy targets on the classifiers, loss targets on the 2-D functions
    assert set(runs["target_direction"]) == {"max", "min"}
    by_workload = runs.drop_duplicates("workload").set_index("workload")["target_direction"]
    assert by_workload["mnist1d-gru"] == "max" and by_workload["rosenbrock-2d"] == "min"
