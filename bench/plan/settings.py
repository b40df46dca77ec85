"""`--set KEY=VALUE`: one matrix key changed from the command line, the value read as a
TOML value, so that a setting says what a line of the matrix file would say:

    --set budget=8                          budget = 8
    --set 'schedules=["constant","cosine"]' schedules = ["constant", "cosine"]
    --set workloads.mnist1d-mlp.steps=500   {name = "mnist1d-mlp", steps = 500}
    --set 'optimizers."optax:adam".learning_rate=0.01'

KEY is a TOML key (dotted for nested ones: `workloads.NAME.FIELD` and
`optimizers.NAME.FIELD` change every entry of that name). A VALUE that is not TOML but a
bare word is taken as text (`--set budget=oneshot`). Only the shape is checked here; the
matrix parser (bench/plan/matrix.py) checks the result exactly as it checks a file.
"""
from __future__ import annotations

import copy
from typing import Any

from bench.errors import UserError
from bench.plan import toml_text
from bench.report.render import one_line
from optimizers.registry import did_you_mean

ENTRY_KEYS = ("workloads", "optimizers")  # lists of entries addressed by name
_FORM = ("write KEY=VALUE, e.g. --set budget=8, --set 'schedules=[\"constant\",\"cosine\"]'"
         " or --set workloads.mnist1d-mlp.steps=500")


def parse(text: str) -> tuple[list[str], Any]:
    """'a.b=1' -> (['a', 'b'], 1); UserError in one line when it is not KEY=VALUE."""
    where = f"--set {_shown(text)}"
    if isinstance(text, str) and "=" in text and not text.isprintable():
        # refused (no second key smuggled in on a new line), but it is KEY=VALUE: "not a
        # setting; write KEY=VALUE" sent whoever wrote `budget=8<newline>` looking for a typo
        raise UserError(f"{where}: a setting is one line of printable text, and this holds"
                        f" a control character (shown escaped); {_FORM}")
    if not isinstance(text, str) or "=" not in text:
        raise UserError(f"{where}: not a setting; {_FORM}")
    key, value = (part.strip() for part in text.split("=", 1))
    if not key:
        raise UserError(f"{where}: no key before '='; {_FORM}")
    try:  # the key alone, as TOML reads it (quotes allowed: optimizers."optax:adam".b1)
        table = toml_text.loads(f"{key} = 0")
    except toml_text.TomlError:
        raise UserError(f"{where}: {_shown(key)} is not a key; {_quoted_hint(key) or _FORM}"
                        ) from None
    path = []
    while isinstance(table, dict) and len(table) == 1:
        name, table = next(iter(table.items()))
        path.append(name)
    return path, _value(value, where)


def _quoted_hint(key: str) -> str | None:
    """`optimizers.optax:adam.b1` fails as a TOML key (a bare key holds no ':'): the form
    that works, with the entry's name quoted."""
    top, _, rest = key.partition(".")
    name, _, field = rest.rpartition(".")
    if top not in ENTRY_KEYS or not name or not field or '"' in key or "'" in key:
        return None
    return f"quote a name that holds ':' or other signs: {top}.\"{name}\".{field}=VALUE"


def apply(raw: dict[str, Any], text: str) -> tuple[dict[str, Any], str]:
    """A copy of the parsed matrix `raw` with the setting applied, and the top-level key it
    changed."""
    path, value = parse(text)
    where = f"--set {_shown(text)}"
    raw = copy.deepcopy(raw)
    top = path[0]
    if top in ENTRY_KEYS and len(path) > 1:
        if len(path) != 3:
            raise UserError(f"{where}: give {top}.NAME.FIELD=VALUE (e.g. --set"
                            f" {_EXAMPLE[top]}), or {top}=[...] for the whole list")
        _set_in_entries(raw, top, path[1], path[2], value, where)
    else:
        for name in reversed(path[1:]):  # a nested table, for the parser to judge
            value = {name: value}
        raw[top] = value
    return raw, top


_EXAMPLE = {"workloads": "workloads.mnist1d-mlp.steps=500",
            "optimizers": "optimizers.adam.learning_rate=0.01"}


def _set_in_entries(raw: dict, top: str, name: str, field: str, value: Any, where: str) -> None:
    entries = raw.get(top)
    entries = [entries] if isinstance(entries, (str, dict)) else entries
    if not isinstance(entries, list):
        return  # the parser says what is wrong with the list itself
    names = [e if isinstance(e, str) else e.get("name") if isinstance(e, dict) else None
             for e in entries]
    if name not in names:
        present = [n for n in dict.fromkeys(names) if isinstance(n, str)]
        # --set applies before --workloads / --optimizers replace the list, so a name given
        # only there is not in it yet: say how to set a field of one anyway
        raise UserError(f"{where}: the matrix has no {top[:-1]} {name!r}"
                        f"{did_you_mean(name, present)}; its {top}: {', '.join(present)}"
                        f" (--set applies before --{top}; to set {field} of one you name, give"
                        f" the whole list: --set '{top}=[{{name = \"{name}\", {field} = ...}}]')")
    if field == "name":
        raise UserError(f"{where}: a {top[:-1]}'s name is how --set finds it; to change the"
                        f" list, give {top}=[...]")
    raw[top] = [({"name": e} if isinstance(e, str) else e) | {field: value}
                if n == name else e for e, n in zip(entries, names)]


def _value(text: str, where: str) -> Any:
    """A TOML value; a bare word (no quotes or brackets) that is not one is text."""
    if not text:
        raise UserError(f"{where}: no value after '='; {_FORM}")
    try:
        table = toml_text.loads(f"v = {text}")
    except toml_text.TomlError as exc:
        if text[0] in "[{\"'" or any(c in text for c in "=[]{}\"'#"):
            raise UserError(f"{where}: {_shown(text)} is not a TOML value: "
                            f"{one_line(exc)}") from None
        return text
    if set(table) != {"v"}:  # more than one value smuggled in: never a second key
        raise UserError(f"{where}: {_shown(text)} is not one TOML value")
    return table["v"]


def _shown(text: Any) -> str:
    shown = text if isinstance(text, str) and text.isprintable() else repr(text)
    return shown if len(shown) <= 80 else shown[:77] + "..."
