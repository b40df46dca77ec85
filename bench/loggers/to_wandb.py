"""Weights & Biases runs, offline, written with wandb (`pip install 'optbench[wandb]'`).

    <results>/wandb/offline-run-<time>-<id>/run-<id>.wandb

One W&B run per cell, always in offline mode whatever WANDB_MODE says (nothing reaches the
network; `wandb sync <results>/wandb/offline-run-*` uploads them later, if you wish):
project = the matrix name, group = the workload, job type = the tuning role; config = the
cell's parameters (bench/loggers/rows.py); history = its curves against `step`
(`seed_<seed>/<column>` and the mean as `<column>`); summary = the runs.parquet figures and
the status. Console capture, system statistics, git and code saving are off.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import wandb

from bench.loggers import rows as rows_

PROJECT_LIMIT = 128  # characters W&B allows in a project name


class Logger:
    def __init__(self):
        self.root = Path(".")
        self.project = "optbench"

    def open(self, run_dir: Path, manifest: dict[str, Any]) -> None:
        self.root = Path(run_dir)
        name = str(manifest.get("config", {}).get("matrix", {}).get("name") or self.root.name)
        self.project = rows_.component(name, PROJECT_LIMIT)

    def cell(self, record: dict[str, Any], runs: pd.DataFrame, curves: pd.DataFrame) -> None:
        first = runs.iloc[0]
        settings = wandb.Settings(mode="offline", silent=True, console="off",
                                  x_disable_stats=True, x_disable_meta=True,
                                  x_disable_machine_info=True, x_disable_viewer=True,
                                  x_save_requirements=False, disable_git=True, save_code=False)
        run = wandb.init(dir=str(self.root), project=self.project, name=rows_.run_name(runs),
                         group=rows_.component(str(first["workload"])),
                         job_type=str(first["role"]), config=rows_.params(runs),
                         settings=settings, reinit="create_new")
        try:
            for step, values in rows_.steps(curves):
                run.log(values, step=step)
            run.summary.update({**rows_.summary(runs), "status": rows_.status(runs)})
        finally:
            run.finish(exit_code=1 if rows_.failed(runs) else 0)

    def close(self) -> None:
        if wandb.run is None:  # stop the W&B service this run started, unless a run of yours is on
            wandb.teardown()
