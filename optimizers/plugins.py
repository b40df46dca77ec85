"""Where optimizers come from: the Optax catalogue, files in this package, plugin files
given by path, and installed packages' entry points (group `optbench.optimizers`).

A plugin that fails to load is reported in one line naming its file (and line), and the
other optimizers still load.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import pkgutil
import sys
import traceback
from pathlib import Path

from optimizers import registry

ENTRY_POINT_GROUP = "optbench.optimizers"
_INFRASTRUCTURE = {"registry", "space", "plugins", "optax_catalogue", "conformance"}
_builtin_errors: list[str] | None = None  # None until the built-ins are loaded


def load_builtins() -> tuple[str, ...]:
    """Register the Optax catalogue, optimizers/*.py and entry points, once per process.
    Returns one line per file or entry point that failed to load (and was skipped); the
    same lines on every call."""
    global _builtin_errors
    if _builtin_errors is not None:
        return tuple(_builtin_errors)
    _builtin_errors = []
    from optimizers.optax_catalogue import register_catalogue

    register_catalogue()
    package_dir = Path(__file__).parent
    for module in pkgutil.iter_modules([str(package_dir)]):
        if module.name in _INFRASTRUCTURE or module.name.startswith("_"):
            continue
        _guarded(package_dir / f"{module.name}.py",
                 lambda name=module.name: importlib.import_module(f"optimizers.{name}"),
                 hint="name helper modules in optimizers/ with a leading underscore")
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        path = _entry_point_file(entry_point)
        _guarded(path, entry_point.load, label=f"entry point '{entry_point.name}' ({path})")
    return tuple(_builtin_errors)


def load_plugin_file(path: str | Path) -> list[str]:
    """Import one plugin file; return the optimizer names it registered.

    Raises registry.RegistryError (one line naming the file, and the line where Python
    gives one) when the file is missing, fails to import, registers nothing, or registers
    a factory that does not build a GradientTransformation from its defaults.
    """
    load_builtins()
    path = Path(path)
    if not path.is_file():
        raise registry.RegistryError(f"plugin file {path} "
                                     + ("is not a regular file" if path.exists() else "does not exist"))
    module_name = f"optbench_plugin_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None:
        raise registry.RegistryError(f"plugin {path} is not a Python file (.py)")

    def load():
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)

    return _load_checked(path, load)


def _load_checked(path: Path, load, label: str | None = None,
                  hint: str = "decorate a factory with @optimizers.register(\"name\", ...)") -> list[str]:
    """Run `load`; every optimizer it added must build from its defaults. On any failure the
    added names are removed again and one RegistryError line says what went wrong where."""
    label = label or str(path)
    before = set(registry.names())
    try:
        load()
        added = sorted(set(registry.names()) - before)
        for name in added:
            registry.get(name).resolve()
    except Exception as exc:
        for name in set(registry.names()) - before:
            registry.unregister(name)
        raise registry.RegistryError(_describe_failure(path, label, exc)) from None
    if not added:
        raise registry.RegistryError(f"plugin {label} registered no optimizer; {hint}")
    return added


def _guarded(path: Path, load, label: str | None = None, **kwargs) -> None:
    try:
        _load_checked(path, load, label, **kwargs)
    except registry.RegistryError as exc:
        _builtin_errors.append(str(exc))


def _entry_point_file(entry_point) -> Path:
    try:
        found = importlib.util.find_spec(entry_point.module)
    except (ImportError, ValueError):
        found = None
    return Path(found.origin) if found and found.origin else Path(entry_point.value)


def _describe_failure(path: Path, label: str, exc: BaseException) -> str:
    line = ""
    if isinstance(exc, SyntaxError) and exc.lineno:
        line = f", line {exc.lineno}"
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if Path(f.filename).resolve() == path.resolve()]
        if frames:
            line = f", line {frames[-1].lineno}"
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, registry.RegistryError):  # already says what is wrong
        return f"plugin {label}{line}: {message}"
    return f"plugin {label}{line} failed to load: {type(exc).__name__}: {message}"
