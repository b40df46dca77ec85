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
_INFRASTRUCTURE = {"registry", "space", "plugins", "optax_catalogue"}
_loaded = False
# One line per plugin that failed to load, kept so the CLI can show them.
load_errors: list[str] = []


def load_builtins() -> None:
    """Register the Optax catalogue, optimizers/*.py and entry points, once per process."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    from optimizers.optax_catalogue import register_catalogue

    register_catalogue()
    package_dir = Path(__file__).parent
    for module in pkgutil.iter_modules([str(package_dir)]):
        if module.name in _INFRASTRUCTURE or module.name.startswith("_"):
            continue
        _guarded(package_dir / f"{module.name}.py",
                 lambda name=module.name: importlib.import_module(f"optimizers.{name}"))
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        _guarded(Path(entry_point.value), entry_point.load)


def load_plugin_file(path: str | Path) -> list[str]:
    """Import one plugin file; return the optimizer names it registered.

    Raises registry.RegistryError (one line) when the file is missing, fails to import or
    registers nothing.
    """
    load_builtins()
    path = Path(path)
    if not path.is_file():
        raise registry.RegistryError(f"plugin file {path} does not exist")
    before = set(registry.names())
    module_name = f"optbench_plugin_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except registry.RegistryError as exc:
        raise registry.RegistryError(f"plugin {path}: {exc}") from None
    except Exception as exc:
        raise registry.RegistryError(_describe_failure(path, exc)) from None
    added = sorted(set(registry.names()) - before)
    if not added:
        raise registry.RegistryError(f"plugin {path} registered no optimizer; decorate a factory"
                                     " with @optimizers.register(\"name\", ...)")
    return added


def _guarded(path: Path, load) -> None:
    try:
        load()
    except Exception as exc:
        load_errors.append(_describe_failure(path, exc))


def _describe_failure(path: Path, exc: BaseException) -> str:
    line = ""
    if isinstance(exc, SyntaxError) and exc.lineno:
        line = f", line {exc.lineno}"
    else:
        frames = [f for f in traceback.extract_tb(exc.__traceback__)
                  if Path(f.filename).resolve() == path.resolve()]
        if frames:
            line = f", line {frames[-1].lineno}"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"plugin {path}{line} failed to load: {type(exc).__name__}: {message}"
