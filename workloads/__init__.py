"""The workload registry and its built-in entries.

    import workloads
    workload = workloads.get("mnist1d-mlp")      # or "mnist1d-mlp@w256": another width
    dataset = workload.load_data()

A plugin file registers more with `@workloads.register_workload(...)` (see
`optbench new-workload NAME` for a template).
"""
from bench.records import Target
from bench.train.data import Dataset
from workloads.registry import (
    CLASSIFICATION_METRICS, Landscape, Workload, classification_sums, cross_entropy,
    register_workload,
)


def get(name: str) -> Workload:
    from optimizers.plugins import load_builtins

    load_builtins()
    from workloads import registry

    return registry.get(name)


def names() -> list[str]:
    from optimizers.plugins import load_builtins

    load_builtins()
    from workloads import registry

    return registry.names()


__all__ = [
    "CLASSIFICATION_METRICS", "Dataset", "Landscape", "Target", "Workload",
    "classification_sums", "cross_entropy", "get", "names", "register_workload",
]
