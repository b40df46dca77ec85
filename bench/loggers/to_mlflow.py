"""MLflow runs in a local file store, written with mlflow-skinny
(`pip install 'optbench[mlflow]'`).

    <results>/mlruns/          tracking URI file:<results>/mlruns, experiment = the matrix name

One MLflow run per cell: its parameters (workload, optimizer, schedule, steps, seeds, every
hyperparameter ...), its curves as metrics per step (`seed_<seed>/<column>` and the mean
over seeds as `<column>`, bench/loggers/rows.py), the runs.parquet figures as summary
metrics, tags (`optbench.cell_id`, `optbench.status`), and as artifacts its rows of
runs.parquet and curves.parquet and its cell record (tables/, cell.json). A cell with a
seed that errored or timed out ends FAILED, any other FINISHED.

MLflow 3 keeps the file store only on request (MLFLOW_ALLOW_FILE_STORE=true, set here; set
it too when reading: `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri
<results>/mlruns`). Its telemetry is turned off (MLFLOW_DISABLE_TELEMETRY): nothing here
reaches the network.
"""
from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

# before mlflow is imported: it reads them when its store and telemetry start
os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"

from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from bench.loggers import BACKENDS  # noqa: E402
from bench.loggers import rows as rows_  # noqa: E402

BATCH = 1000  # MLflow's limit of metrics in one log_batch call


class Logger:
    def __init__(self):
        self.client: MlflowClient | None = None
        self.experiment_id = ""
        self.root = Path(".")

    def open(self, run_dir: Path, manifest: dict[str, Any]) -> None:
        self.root = Path(run_dir)
        store = (self.root / BACKENDS["mlflow"].folder).resolve()
        self.client = MlflowClient(tracking_uri=store.as_uri())
        name = str(manifest.get("config", {}).get("matrix", {}).get("name") or self.root.name)
        found = self.client.get_experiment_by_name(name)
        self.experiment_id = (found.experiment_id if found is not None
                              else self.client.create_experiment(name))

    def cell(self, record: dict[str, Any], runs: pd.DataFrame, curves: pd.DataFrame) -> None:
        end_ms = _ms(record["finished"])
        start_ms = end_ms - int(1000 * float(record["timings"].get("total_s") or 0))
        tags = {"optbench.cell_id": record["id"], "optbench.label": str(runs.iloc[0]["label"]),
                "optbench.status": rows_.status(runs),
                "optbench.results": str(self.root.resolve())}
        run = self.client.create_run(self.experiment_id, start_time=start_ms, tags=tags,
                                     run_name=rows_.run_name(runs))
        run_id = run.info.run_id
        params = [Param(k, str(v)) for k, v in rows_.params(runs).items()]
        metrics = [Metric(k, v, end_ms, step) for step, values in rows_.steps(curves)
                   for k, v in values.items()]
        steps_trained = int(record["steps_trained"])
        metrics += [Metric(k, v, end_ms, steps_trained) for k, v in rows_.summary(runs).items()]
        self.client.log_batch(run_id, params=params)
        for start in range(0, len(metrics), BATCH):
            self.client.log_batch(run_id, metrics=metrics[start:start + BATCH])
        with tempfile.TemporaryDirectory(prefix="optbench-mlflow-") as tmp:
            tables = Path(tmp) / "tables"
            tables.mkdir()
            runs.to_parquet(tables / "runs.parquet", index=False)
            curves.to_parquet(tables / "curves.parquet", index=False)
            (Path(tmp) / "cell.json").write_text(json.dumps(record, indent=1, default=str))
            self.client.log_artifacts(run_id, tmp)
        self.client.set_terminated(run_id, "FAILED" if rows_.failed(runs) else "FINISHED",
                                   end_time=end_ms)

    def close(self) -> None:
        self.client = None


def _ms(iso: str) -> int:
    """An ISO time with its zone, as MLflow's milliseconds since the epoch."""
    return int(datetime.fromisoformat(iso).timestamp() * 1000)
