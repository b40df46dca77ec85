"""TOML text read with one kind of failure.

`tomllib` fails in three ways on hostile text: TOMLDecodeError (bad syntax), a plain
ValueError (an integer of more than 4,300 digits: Python's guard against quadratic int
parsing) and RecursionError (arrays or tables nested a few thousand deep). Every reader of
user-given TOML (matrix files, `--set` values) wants the same thing from all three: one
line saying the text is not TOML it can use.
"""
from __future__ import annotations

import tomllib
from typing import Any

from bench.report.render import one_line


class TomlError(ValueError):
    """Text that is not TOML optbench can read; the message is one line."""


def loads(text: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TomlError(one_line(exc)) from None
    except ValueError as exc:  # an integer too long for int(): the message names the limit
        raise TomlError(f"a number is too long ({' '.join(str(exc).split()[:8])}...)") from None
    except RecursionError:
        raise TomlError("values are nested too deeply") from None
