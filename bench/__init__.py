"""optbench: an optimizer comparison benchmark on JAX, Flax and Optax.

The harness runs in one direction: matrix -> cells -> engine -> store -> report.
"""
__version__ = "0.1.0"


def load(path):
    """The tables of a results folder, for notebooks: `.runs`, `.curves` (pandas
    DataFrames, columns in results/README.md) and `.manifest` (a dict). Imports no JAX.

        import bench
        results = bench.load("results/reference")
        results.runs.groupby("label")["final_test_accuracy"].mean()
    """
    from bench.store import load as load_results

    return load_results(path)
