"""Where optimizers and workloads come from: the Optax catalogue, files in optimizers/ and
workloads/, plugin files given by path (one file may register both), and installed
packages' entry points (groups `optbench.optimizers` and `optbench.workloads`).

A plugin that fails to load is reported in one line naming its file (and line), and the
other optimizers still load. A plugin file is loaded once per process and content: the same
file named twice (by another relative path, through a symlink) loads once, and a file
edited since it was loaded replaces its old code. Worker processes get the driver's plugin
files as bytes (`PluginSource`) and load those, never their own copy of the file.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import importlib.util
import linecache
import os
import pkgutil
import stat
import sys
import traceback
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from optimizers import registry

ENTRY_POINT_GROUP = "optbench.optimizers"
WORKLOAD_ENTRY_POINT_GROUP = "optbench.workloads"
# per package: the modules that are machinery, never loaded as plugins (a workload file
# called space.py is a workload: one skipped set for both packages hid it without a word)
_INFRASTRUCTURE = {"optimizers": {"registry", "space", "plugins", "optax_catalogue", "conformance",
                                  "check_process"},
                   "workloads": {"registry"}}
_OPTIMIZER_HINT = 'decorate a factory with @optimizers.register("name", ...)'
_WORKLOAD_HINT = 'decorate a model factory with @workloads.register_workload("name", ...)'


class _Registries:
    """The names in both registries, as ('optimizer' | 'workload', name) pairs: what a
    plugin added is the difference of two snapshots."""

    @staticmethod
    def snapshot() -> set[tuple[str, str]]:
        from workloads import registry as workload_registry

        return ({("optimizer", n) for n in registry.names()}
                | {("workload", n) for n in workload_registry.names()})

    @staticmethod
    def remove(entries) -> None:
        from workloads import registry as workload_registry

        for kind, name in entries:
            (registry if kind == "optimizer" else workload_registry).unregister(name)

    @staticmethod
    def check(entries) -> None:
        """Every optimizer added must build from its defaults."""
        for kind, name in sorted(entries):
            if kind == "optimizer":
                registry.get(name).resolve()
_builtin_errors: list[str] | None = None  # None until the built-ins are loaded


@dataclass(frozen=True)
class PluginSource:
    """A plugin file as it was loaded: its resolved path and its bytes."""

    path: str
    code: bytes = field(repr=False)
    digest: str = field(init=False)  # sha256 of `code`, hex

    def __post_init__(self):
        object.__setattr__(self, "digest", hashlib.sha256(self.code).hexdigest())


# path -> (source, the (kind, name) pairs it registered)
_loaded: dict[str, tuple[PluginSource, tuple[tuple[str, str], ...]]] = {}


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
    for package, hint in (("optimizers", _OPTIMIZER_HINT), ("workloads", _WORKLOAD_HINT)):
        package_dir = Path(__file__).parents[1] / package
        for module in pkgutil.iter_modules([str(package_dir)]):
            if module.name in _INFRASTRUCTURE[package] or module.name.startswith("_"):
                continue
            _guarded(package_dir / f"{module.name}.py",
                     lambda name=f"{package}.{module.name}": importlib.import_module(name),
                     hint=f"{hint}; name helper modules in {package}/ with a leading underscore")
    for group in (ENTRY_POINT_GROUP, WORKLOAD_ENTRY_POINT_GROUP):
        for entry_point in importlib.metadata.entry_points(group=group):
            path = _entry_point_file(entry_point)
            _guarded(path, entry_point.load, label=f"entry point '{entry_point.name}' ({path})")
    return tuple(_builtin_errors)


def check_plugin_path(path: str | Path) -> Path:
    """The resolved path of a readable .py file; otherwise RegistryError saying, in one
    line, what `path` is instead (missing, a directory, a pipe, another kind of file...)."""
    text = str(path)
    if not text.strip():
        raise registry.RegistryError("a plugin path is empty; expected a Python file (.py)")
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise registry.RegistryError(f"plugin {path} is a symbolic link to"
                                         f" {os.readlink(path)}, which does not exist")
        raise registry.RegistryError(f"plugin file {path} does not exist")
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.py"))[:3]
        example = f" (it holds {', '.join(inside)}: name each one)" if inside else ""
        raise registry.RegistryError(f"plugin {path} is a directory; expected a Python file (.py)"
                                     f" that registers optimizers{example}")
    if not path.is_file():
        raise registry.RegistryError(f"plugin {path} is {_kind(path)}, not a regular file;"
                                     " expected a Python file (.py)")
    if path.suffix != ".py" and path.resolve().suffix != ".py":
        raise registry.RegistryError(f"plugin {path} is not a Python file: expected a name ending"
                                     " in .py")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise registry.RegistryError(f"plugin file {path} cannot be read ({exc.strerror});"
                                     " check its permissions") from None
    return path.resolve()


def load_plugin_file(path: str | Path) -> list[str]:
    """Import one plugin file; return the optimizer and workload names it registered. Loading the same
    file again (by any path to it) returns the same names, unless its content changed:
    then the new code replaces the old.

    Raises registry.RegistryError (one line naming the file, and the line where Python
    gives one) when the file is not a readable .py file, fails to import, registers
    nothing, or registers a factory that does not build a GradientTransformation from its
    defaults.
    """
    resolved = check_plugin_path(path)
    try:
        code = resolved.read_bytes()
    except OSError as exc:
        raise registry.RegistryError(f"plugin file {path} cannot be read"
                                     f" ({exc.strerror})") from None
    return load_plugin_source(PluginSource(str(resolved), code), label=str(path))


def load_plugin_source(source: PluginSource, label: str | None = None) -> list[str]:
    """Register the optimizers and workloads of `source` (a plugin file's bytes, from this process or a
    driver's), unless this content of that path is loaded already."""
    load_builtins()
    known = _loaded.get(source.path)
    if known is not None and known[0].digest == source.digest:
        return [name for _, name in known[1]]
    if known is not None:  # edited since it was loaded: its new code replaces the old
        unload_plugin(source.path)
    module_name = _module_name(source)

    def load():
        text = importlib.util.decode_source(source.code)
        # tracebacks and inspect show the code that ran, even if the file changes later
        linecache.cache[source.path] = (len(text), None, text.splitlines(True), source.path)
        module = types.ModuleType(module_name)
        module.__file__ = source.path
        sys.modules[module_name] = module
        exec(compile(source.code, source.path, "exec"), module.__dict__)  # noqa: S102

    try:
        added = _load_checked(Path(source.path), load, label)
    except registry.RegistryError:
        _forget(source)
        raise
    _loaded[source.path] = (source, tuple(added))
    return [name for _, name in added]


def unload_plugin(path: str) -> None:
    """Forget a loaded plugin file: its optimizers and workloads leave the registries."""
    source, added = _loaded.pop(path)
    _Registries.remove(added)
    _forget(source)


def _module_name(source: PluginSource) -> str:
    key = f"{source.path}\0{source.digest}".encode()
    return f"optbench_plugin_{hashlib.sha256(key).hexdigest()[:16]}"


def _forget(source: PluginSource) -> None:
    sys.modules.pop(_module_name(source), None)
    linecache.cache.pop(source.path, None)


def loaded_sources() -> tuple[PluginSource, ...]:
    """Every plugin file loaded in this process, once each: what workers must load."""
    return tuple(source for source, _ in _loaded.values())


def sync_plugins(sources: Sequence[PluginSource]) -> None:
    """Make this process's plugins exactly `sources` (a driver's), for a worker that
    outlives runs: plugins the driver no longer has are unloaded (their names may now
    belong to another file), edited ones reloaded, new ones loaded."""
    wanted = {source.path: source for source in sources}
    for path, (source, _) in list(_loaded.items()):
        if wanted.get(path) is None or wanted[path].digest != source.digest:
            unload_plugin(path)
    for source in wanted.values():
        load_plugin_source(source)


def _kind(path: Path) -> str:
    mode = path.stat().st_mode
    for test, kind in ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return kind
    return "not a file"


def _load_checked(path: Path, load, label: str | None = None,
                  hint: str = f"{_OPTIMIZER_HINT}, or {_WORKLOAD_HINT}") -> list[tuple[str, str]]:
    """Run `load`; every optimizer it added must build from its defaults. On any failure the
    added names are removed again and one RegistryError line says what went wrong where.
    Returns the (kind, name) pairs it added."""
    label = label or str(path)
    before = _Registries.snapshot()
    try:
        load()
        added = sorted(_Registries.snapshot() - before)
        _Registries.check(added)
    except (Exception, SystemExit) as exc:  # a plugin that calls sys.exit() fails to load
        _Registries.remove(_Registries.snapshot() - before)
        raise registry.RegistryError(_describe_failure(path, label, exc)) from None
    if not added:
        raise registry.RegistryError(f"plugin {label} registered no optimizer or workload; {hint}")
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
