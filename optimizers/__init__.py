"""The optimizer registry and its built-in entries.

    import optimizers
    spec = optimizers.get("optax:adam")
    tx = spec.build(spec.resolve({"learning_rate": 3e-4}))
"""
from optimizers import registry
from optimizers.plugins import load_builtins, load_plugin_file
from optimizers.registry import OptimizerSpec, RegistryError, register, register_factory
from optimizers.space import Choice, LogUniform, Uniform


def get(name: str) -> OptimizerSpec:
    load_builtins()
    return registry.get(name)


def names() -> list[str]:
    load_builtins()
    return registry.names()


__all__ = [
    "Choice", "LogUniform", "OptimizerSpec", "RegistryError", "Uniform", "get",
    "load_builtins", "load_plugin_file", "names", "register", "register_factory",
]
