"""optbench: an optimizer comparison benchmark on JAX, Flax and Optax.

The harness runs in one direction, one stage per subpackage:

    plan/    a matrix -> validated cells, each knowing its program (no training)
    train/   one program: data, workloads, the engine (the JAX side)
    runner/  executors train programs; the driver writes the results folder (store, schema)
    report/  statistics, tables, plots, report and compare from the stored tables (no JAX)

The public API is `load` (read a results folder; imports no JAX) and `run` (run a matrix,
bench/api.py); `Results.tidy()` joins the tables for plotting. Exceptions: bench/errors.py.
The stage that runs matrices is `runner/`, not `run/`: a subpackage named `run` would
replace the function `bench.run` as soon as anything imported it.
"""
from __future__ import annotations

from bench.api import run  # imports no JAX until called

__version__ = "0.1.0"
__all__ = ["load", "run"]


def load(path, *, partial: bool = False):
    """The tables of a results folder, for notebooks: `.runs`, `.curves` (pandas
    DataFrames, columns in results/README.md) and `.manifest` (a dict). Imports no JAX.
    `partial=True` adds the cells a run is training now (status `running`, curves up to
    their last chunk); by default only finished cells are read.

        import bench
        results = bench.load("results/reference")
        results.runs.groupby("label")["final_test_accuracy"].mean()
    """
    from bench.runner.results import load as load_results

    return load_results(path, partial=partial)
