"""The driver's one handle on the logging backends a run turned on.

Results come first: a backend is called only after a cell's files are written, with the
rows read back from them, and a backend that raises (a full disk, its own bug) is one
warning line and is off for the rest of the run; the run, and every result, goes on.
Its package is imported when `Loggers` is made, before the results folder is opened, so
a missing package is one line (naming the extra to install) before anything trains.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.errors import UserError
from bench.loggers import BACKENDS, Logger
from bench.report.render import one_line, printable
from bench.runner import schema
from bench.runner.cell_files import read_cell
from bench.runner.files import make_folder


class Loggers:
    def __init__(self, names: list[str], where: str = "log",
                 warn: Callable[[str], None] | None = None):
        """Import each backend; a missing or broken package is a UserError naming the
        extra that installs it. `warn` prints a warning line (default: to stderr)."""
        self._warn = warn or (lambda line: print(line, file=sys.stderr))
        self._active: dict[str, Logger] = {}
        for name in names:
            backend = BACKENDS[name]  # names were checked with the matrix
            install = f"pip install 'optbench[{backend.extra}]'"
            try:
                module = importlib.import_module(f"bench.loggers.{backend.module}")
            except ImportError as exc:
                raise UserError(f"{where}: logging to {name} needs the package"
                                f" {backend.package}, which cannot be imported ({_reason(exc)}):"
                                f" {install}") from None
            except Exception as exc:  # noqa: BLE001  a broken install fails on import
                raise UserError(f"{where}: cannot import {backend.package} for logging to"
                                f" {name} ({_reason(exc)}); reinstall it: {install}") from None
            self._active[name] = module.Logger()
        self._root = Path(".")

    def check(self, root: Path) -> None:
        """A UserError when a backend's folder in `root` is a link or a file, before the
        results folder is opened: a backend would write through the link, outside the
        results folder, or fail on the file after the first cell. Creates nothing."""
        for name in self._active:
            folder = Path(root) / BACKENDS[name].folder
            if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
                kind = "a symbolic link" if folder.is_symlink() else "a file"
                raise UserError(f"logging to {name}: {printable(folder)} is {kind}; optbench"
                                " writes its logs only into a folder of its own there:"
                                " remove it or choose another --out")

    def open(self, root: Path, manifest: dict[str, Any]) -> None:
        self._root = root
        self.check(root)  # again: the folder could have changed since
        for name in self._active:
            make_folder(Path(root) / BACKENDS[name].folder)
        for name, logger in list(self._active.items()):
            self._call(name, "open", lambda lg=logger: lg.open(root, manifest))

    def cell(self, cells_dir: Path, cell_id: str) -> None:
        """Log a finished cell from its files, as the store wrote them."""
        if not self._active:
            return
        stored = read_cell(cells_dir / f"{cell_id}.json")
        if stored is None:  # unreadable already: the store sets it aside, and it reruns
            return
        runs = schema.frame(stored.rows, "runs")  # typed as in runs.parquet
        for name, logger in list(self._active.items()):
            self._call(name, "cell", lambda lg=logger: lg.cell(stored.record, runs, stored.curves))

    def close(self) -> None:
        for name, logger in list(self._active.items()):
            self._call(name, "close", logger.close)
        self._active.clear()

    def _call(self, name: str, what: str, call) -> None:
        """call(); when it raises, one warning line and the backend is off from now on."""
        try:
            call()
        except Exception as exc:  # noqa: BLE001  whatever a backend raises, results go on
            logger = self._active.pop(name)
            if what != "close":
                try:  # let it release what it holds (files, a W&B service); it may fail again
                    logger.close()
                except Exception:  # noqa: BLE001
                    pass
            self._warn(f"optbench: warning: logging to {name} failed ({_reason(exc)}) and is"
                       f" off for the rest of this run; the results are saved in"
                       f" {printable(self._root)}")


def _reason(exc: BaseException) -> str:
    text = one_line(exc)
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
