"""TensorBoard event files, written with tensorboardX (`pip install 'optbench[tensorboard]'`).

    <results>/tensorboard/<workload>/<label>-<cell id>/seed_<seed>/events.out.tfevents.*

One TensorBoard run per cell x seed, so `tensorboard --logdir <results>/tensorboard` lists
them by workload and optimizer, and its run filter selects seeds. Each curves.parquet
column is a scalar of the same name against `step` (float32, as TensorBoard stores
scalars; non-finite values left out, see bench/loggers/rows.py); the cell's parameters and
status are a text summary named `cell`. The cell id in the folder name keeps two cells
with the same label apart (a rerun under changed code, or labels that differ only in
characters a folder name cannot hold); the same cell rerun (`--force`) replaces its
events, as it replaces its cell files.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd
from tensorboardX import SummaryWriter

from bench.loggers import BACKENDS
from bench.loggers import rows as rows_


class Logger:
    def __init__(self):
        self.root = Path(".")

    def open(self, run_dir: Path, manifest: dict[str, Any]) -> None:
        self.root = Path(run_dir) / BACKENDS["tensorboard"].folder

    def cell(self, record: dict[str, Any], runs: pd.DataFrame, curves: pd.DataFrame) -> None:
        first = runs.iloc[0]
        folder = (self.root / rows_.component(str(first["workload"]))
                  / f"{rows_.component(str(first['label']), 80)}-{record['id']}")
        text = json.dumps({"status": rows_.status(runs), **rows_.params(runs)}, indent=1)
        columns = rows_.curve_columns(curves)
        for seed in runs["seed"]:
            curve = curves[curves["seed"] == seed].sort_values("step")
            for old in (folder / f"seed_{seed}").glob("events.out.tfevents.*"):
                old.unlink()  # the cell rerun (--force): TensorBoard would draw both
            # its writer thread takes events from a queue of max_queue (10 by default: each
            # add waits on the thread) and writes them at close
            writer = SummaryWriter(str(folder / f"seed_{seed}"), flush_secs=3600,
                                   max_queue=len(columns) * len(curve) + 2)
            try:
                writer.add_text("cell", f"```\n{text}\n```", 0)
                for column in columns:
                    for step, value in zip(curve["step"], curve[column].to_numpy(dtype=float)):
                        if math.isfinite(value):
                            writer.add_scalar(column, value, int(step))
            finally:
                writer.close()

    def close(self) -> None:
        pass  # each cell's writers are closed when it is logged
