"""Logging to TensorBoard, MLflow and W&B (bench/loggers/): one tiny run with all three on,
read back with each one's own reader and compared with curves.parquet; then the ways it
can go wrong (an unknown name, a package missing, a backend failing mid-run)."""
import glob
import json
import math
import os
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest

from bench import cli
from bench.loggers import rows as rows_
from bench.plan import matrix as matrix_mod
from bench.errors import UserError
from bench.runner.results import load
from tests.conftest import ROOT, run_optbench

MATRIX = """
name = "logs <b>&:x"
seeds = 2
steps = 30
workloads = ["rosenbrock-2d"]
optimizers = ["optax:adam", "optax:sgd"]   # optax:sgd diverges here: its values are NaN
log = ["tensorboard", "mlflow", "wandb"]
"""
TINY = ["run", "--workloads", "rosenbrock-2d", "--optimizers", "optax:adam,optax:sgd",
        "--seeds", "1", "--steps", "30"]


@pytest.fixture(scope="module")
def logged(tmp_path_factory):
    """One run with all three backends on (from the matrix key), shared by the tests."""
    folder = tmp_path_factory.mktemp("logged")
    (folder / "m.toml").write_text(MATRIX)
    out = folder / "out"
    result = run_optbench("run", str(folder / "m.toml"), "--no-report", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stderr, result.stderr
    return out


def finite_curve(curves, cell_id, seed, column):
    """[(step, value)] of a stored curve, without its non-finite values (as logged)."""
    curve = curves[(curves.cell_id == cell_id) & (curves.seed == seed)].sort_values("step")
    return [(int(s), float(v)) for s, v in zip(curve.step, curve[column]) if math.isfinite(v)]


def test_tensorboard_event_files_hold_the_curves(logged):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    results = load(logged)
    columns = rows_.curve_columns(results.curves)
    assert {"val_loss", "test_loss", "train_loss", "train_seconds"} <= set(columns)
    for row in results.runs.itertuples():
        [folder] = glob.glob(str(logged / "tensorboard" / row.workload / f"*-{row.cell_id}"
                                 / f"seed_{row.seed}"))
        events = EventAccumulator(folder, size_guidance={"scalars": 0})
        events.Reload()
        for column in columns:
            expected = finite_curve(results.curves, row.cell_id, row.seed, column)
            got = events.Scalars(column) if column in events.Tags()["scalars"] else []
            assert [e.step for e in got] == [step for step, _ in expected], column
            # TensorBoard stores scalars as float32
            assert [e.value for e in got] == [float(np.float32(v)) for _, v in expected]
        [text] = events.Tensors("cell/text_summary")  # the parameters, as text
        assert f'"cell_id": "{row.cell_id}"' in text.tensor_proto.string_val[0].decode()
    diverged = results.runs[results.runs.status == "diverged"]
    assert len(diverged), "the run should have a diverged seed, to check NaN is left out"


def test_mlflow_runs_hold_params_metrics_and_tables(logged, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow.tracking import MlflowClient

    results = load(logged)
    client = MlflowClient(tracking_uri=(logged / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("logs <b>&:x")
    found = {run.data.tags["optbench.cell_id"]: run
             for run in client.search_runs([experiment.experiment_id])}
    assert set(found) == set(results.runs.cell_id)
    for cell_id, cell_runs in results.runs.groupby("cell_id"):
        run = found[cell_id]
        first = cell_runs.iloc[0]
        assert run.info.run_name == f"{first.workload} x {first.label}"
        assert run.info.status == "FINISHED"  # diverged is a result, not a failure
        params = run.data.params
        assert (params["optimizer"], params["workload"], params["seeds"]) == (
            first.optimizer, first.workload, "0,1")
        for name, value in json.loads(first.hparams).items():
            assert params[name] == str(value)
        for seed in cell_runs.seed:
            for column in rows_.curve_columns(results.curves):
                history = client.get_metric_history(run.info.run_id, f"seed_{seed}/{column}")
                got = sorted((m.step, m.value) for m in history)
                assert got == finite_curve(results.curves, cell_id, seed, column)
        mean = client.get_metric_history(run.info.run_id, "val_loss")
        by_step = results.curves[results.curves.cell_id == cell_id].groupby("step")["val_loss"]
        expected = {s: v.mean() for s, v in by_step if np.isfinite(v).all()}
        assert {m.step: m.value for m in mean} == pytest.approx(expected, rel=1e-12)
        # the cell's own rows, as artifacts
        folder = client.download_artifacts(run.info.run_id, "tables", str(tmp_path / cell_id))
        curves = pd.read_parquet(f"{folder}/curves.parquet")
        stored = results.curves[results.curves.cell_id == cell_id].reset_index(drop=True)
        pd.testing.assert_frame_equal(curves.reset_index(drop=True), stored)
        assert list(pd.read_parquet(f"{folder}/runs.parquet").seed) == list(cell_runs.seed)


def wandb_records(path):
    """The protobuf records of a W&B .wandb file: LevelDB's log format (32 KiB blocks of
    chunks with a 7-byte header: checksum, length, type) after a 7-byte ':W&B' header."""
    from wandb.proto import wandb_internal_pb2

    data = open(path, "rb").read()
    assert data[:4] == b":W&B"
    position, pending = 7, b""
    while position + 7 <= len(data):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header: padding
            position += 32768 - position % 32768
            continue
        _, length, kind = struct.unpack("<IHB", data[position:position + 7])
        if kind == 0 and length == 0:
            break
        pending += data[position + 7:position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # FULL, LAST
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


def test_wandb_offline_runs_hold_config_and_history(logged):
    results = load(logged)
    files = sorted(glob.glob(str(logged / "wandb" / "offline-run-*" / "run-*.wandb")))
    assert len(files) == results.runs.cell_id.nunique()
    seen = set()
    for path in files:
        config, history, exit_code = {}, {}, None
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
                assert record.run.project == "logs__b___x"  # the matrix name, made safe
            elif kind == "history":
                items = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                         for i in record.history.item}
                history[items["_step"]] = items
            elif kind == "exit":
                exit_code = record.exit.exit_code
        cell_id = config["cell_id"]
        seen.add(cell_id)
        assert exit_code == 0
        cell_runs = results.runs[results.runs.cell_id == cell_id]
        assert config["optimizer"] == cell_runs.optimizer.iloc[0]
        for seed in cell_runs.seed:
            for column in rows_.curve_columns(results.curves):
                key = f"seed_{seed}/{column}"
                got = [(step, items[key]) for step, items in sorted(history.items())
                       if key in items]
                assert got == finite_curve(results.curves, cell_id, seed, column)
    assert seen == set(results.runs.cell_id)


def test_unknown_backend_is_one_line_with_close_matches(tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main([*TINY, "--log", "tensorbord,mlflow", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["optbench: error: --log: unknown logging backend 'tensorbord' (did you mean:"
                   " tensorboard?); backends: tensorboard, mlflow, wandb"]
    assert not out.exists()
    (tmp_path / "m.toml").write_text('workloads = ["rosenbrock-2d"]\noptimizers = ["adam"]\n'
                                     'log = ["MLflow"]\n')
    assert cli.main(["run", str(tmp_path / "m.toml"), "--out", str(out)]) == 2
    assert "key 'log': unknown logging backend 'MLflow' (did you mean: mlflow?)" in \
        capsys.readouterr().err


@pytest.mark.parametrize("value,message", [
    ([], "--log names no backend"),
    (["tensorboard", "<b>"], "unknown logging backend '<b>'"),
])
def test_bad_log_flags_are_refused(value, message):
    plan = matrix_mod.load(preset="smoke")
    with pytest.raises(UserError, match=message):
        matrix_mod.with_overrides(plan, log=value)


def test_log_flag_replaces_the_matrix_key_and_none_turns_it_off(tmp_path):
    (tmp_path / "m.toml").write_text('workloads = ["rosenbrock-2d"]\noptimizers = ["adam"]\n'
                                     'log = ["wandb", "mlflow", "wandb"]\n')
    plan = matrix_mod.load(tmp_path / "m.toml")
    assert plan.log == ["wandb", "mlflow"]
    assert matrix_mod.with_overrides(plan, log=["tensorboard"]).log == ["tensorboard"]
    assert matrix_mod.with_overrides(plan, log=["none"]).log == []
    with pytest.raises(UserError, match="log must be a list of backend names"):
        matrix_mod.from_dict({"workloads": ["a"], "optimizers": ["b"], "log": 5}, name="m",
                             source="m.toml")


@pytest.mark.parametrize("dry_run", [[], ["--dry-run"]])
def test_a_missing_package_is_one_line_naming_the_extra_before_training(tmp_path, capsys,
                                                                        monkeypatch, dry_run):
    # an uninstalled package, as Python sees it: importing it, or any module of it, raises
    # ImportError (an earlier test in this process may have imported it)
    for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")] + ["mlflow"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "bench.loggers.to_mlflow", raising=False)
    out = tmp_path / "out"
    assert cli.main([*TINY, *dry_run, "--log", "tensorboard,mlflow", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "optbench: error: --log: logging to mlflow needs the package mlflow-skinny, which"
        " cannot be imported")
    assert err[0].endswith(": pip install 'optbench[mlflow]'")
    assert not out.exists()  # refused before the results folder was made: nothing trained


def test_a_backend_failing_mid_run_is_one_warning_and_loses_nothing(tmp_path, capsys,
                                                                   monkeypatch):
    from bench.loggers import to_tensorboard

    calls = []

    def disk_full(self, record, runs, curves):
        calls.append(record["id"])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(to_tensorboard.Logger, "cell", disk_full)
    out = tmp_path / "out"
    assert cli.main([*TINY, "--log", "tensorboard,mlflow", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert warnings == [f"optbench: warning: logging to tensorboard failed (OSError: [Errno 28]"
                        f" No space left on device) and is off for the rest of this run; the"
                        f" results are saved in {out}"]
    assert len(calls) == 1  # off after its failure
    results = load(out)
    assert len(results.runs) == 2 and set(results.runs.status) == {"done", "diverged"}
    # the other backend logged every cell
    runs_dirs = [p for p in (out / "mlruns").glob("*/*") if (p / "meta.yaml").exists()]
    assert len(runs_dirs) == 2


def test_importing_optbench_imports_no_backend():
    code = textwrap.dedent("""
        import sys
        import bench, bench.cli, bench.commands, bench.runner.driver, bench.loggers.fanout
        print(sorted(m for m in ("tensorboardX", "tensorboard", "mlflow", "wandb")
                     if m in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == "[]"
