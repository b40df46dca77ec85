"""Logging a run where researchers already look: TensorBoard, MLflow, Weights & Biases.

Each backend is an optional extra (`pip install 'optbench[mlflow]'`) and one module here,
imported only when a run turns it on (`log = ["mlflow"]` in a matrix, or `--log mlflow`):
importing optbench never imports them. They write under the results folder, offline.

A backend is a class with three methods, called by the driver (bench/runner/driver.py)
through `bench.loggers.fanout.Loggers`, which keeps one failing backend from costing a
result:

    open(run_dir, manifest)     once, after the results folder's manifest is written
    cell(record, runs, curves)  after each cell's files are written: the cell record and
                                the runs / curves rows the store wrote (pandas DataFrames)
    close()                     once, at the end (also after Ctrl-C)

This module names the backends and nothing else, so the matrix can check names without
importing a backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # the matrix imports this module to check names: no pandas for that
    import pandas as pd


@dataclass(frozen=True)
class Backend:
    module: str   # bench.loggers.<module>, which holds the class `Logger`
    package: str  # what to pip install, for the message when it is missing
    extra: str    # optbench's extra that installs it
    folder: str   # where it writes, inside the results folder


BACKENDS: dict[str, Backend] = {
    "tensorboard": Backend("to_tensorboard", "tensorboardX", "tensorboard", "tensorboard"),
    "mlflow": Backend("to_mlflow", "mlflow-skinny", "mlflow", "mlruns"),
    "wandb": Backend("to_wandb", "wandb", "wandb", "wandb"),
}


class Logger(Protocol):
    def open(self, run_dir: Path, manifest: dict[str, Any]) -> None: ...

    def cell(self, record: dict[str, Any], runs: pd.DataFrame, curves: pd.DataFrame) -> None:
        ...

    def close(self) -> None: ...
