"""optbench: an optimizer comparison benchmark on JAX, Flax and Optax.

The harness runs in one direction, one stage per subpackage:

    plan/    a matrix -> validated cells, each knowing its program (no training)
    train/   one program: data, workloads, the engine (the JAX side)
    runner/  executors train programs; the driver writes the results folder (store, schema)
    report/  statistics, tables, plots, report and compare from the stored tables (no JAX)

The public API is `load` (read a results folder; imports no JAX) and `run` (run a matrix).
The stage that runs matrices is `runner/`, not `run/`: a subpackage named `run` would
replace the function `bench.run` as soon as anything imported it.
"""
from __future__ import annotations

__version__ = "0.1.0"


def load(path, *, partial: bool = False):
    """The tables of a results folder, for notebooks: `.runs`, `.curves` (pandas
    DataFrames, columns in results/README.md) and `.manifest` (a dict). Imports no JAX.
    `partial=True` adds the cells a run is training now (status `running`, curves up to
    their last chunk); by default only finished cells are read.

        import bench
        results = bench.load("results/reference")
        results.runs.groupby("label")["final_test_accuracy"].mean()
    """
    from bench.runner.store import load as load_results

    return load_results(path, partial=partial)


def run(matrix=None, *, preset: str | None = None, out=None, seeds=None, steps: int | None = None,
        executor: str = "local", force: bool = False, resume: bool = False,
        data_dir: str | None = None, log: list[str] | None = None):
    """Run a matrix (a TOML path, or a preset; default: quick) into `out` and return its
    tables, as `load` gives them. The same checks as `optbench run`: bad input raises
    bench.errors.UserError with a one-line message. `log` (["tensorboard", "mlflow",
    "wandb"]) replaces the matrix's logging backends, as `--log` does.

        results = bench.run(preset="smoke", out="results/smoke")
    """
    from datetime import datetime
    from pathlib import Path

    import optimizers
    from bench.plan import expand
    from bench.plan import matrix as matrix_mod
    from bench.runner.driver import run_matrix

    plan = matrix_mod.with_overrides(matrix_mod.load(matrix, preset), seeds=seeds, steps=steps,
                                     log=log)
    optimizers.load_builtins()
    for plugin in plan.plugins:
        optimizers.load_plugin_file(plugin)
    out = Path(out) if out else Path("results") / f"{plan.name}-{datetime.now():%Y%m%d-%H%M%S}"
    run_matrix(plan, expand.cells(plan, data_dir), out, data_dir=data_dir, force=force,
               resume=resume, executor=executor)
    return load(out)
