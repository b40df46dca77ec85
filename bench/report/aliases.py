"""Short names for the report's figures and tables, and the key that maps them back.

A tuning trial's label carries every hyperparameter it drew (`adam(trial 4: b1=0.9371,
b2=0.9761, learning_rate=0.002879)`): as a tick label it squeezes a plot into a sliver. The
report shows an alias instead (`adam·t4`, `adam·tuned`, `adam·2`) and prints a key table
with each alias's full label and hyperparameters. Short labels (`adam`, `sgd (steps 150)`)
stay as they are, so a run without tuning reads exactly as before.
"""
from __future__ import annotations

import json

import pandas as pd

from bench.report import analysis
from bench.report.render import Table

MAX_LABEL = 24  # characters: longer labels get an alias


def assign(runs: pd.DataFrame) -> pd.DataFrame:
    """`runs` with labels made distinct per cell (analysis.label_cells), then each `label`
    replaced by its alias and the original kept in `full_label`: what the report and the
    terminal summary show. Aliases are distinct per workload."""
    if not len(runs) or "full_label" in runs:
        return runs
    runs = analysis.label_cells(runs)
    cells = runs.drop_duplicates("cell_id").set_index("cell_id")
    aliases = pd.Series({cell_id: _alias(row) for cell_id, row in cells.iterrows()}, dtype=object)
    aliases = _number_long_oneshots(cells, aliases)
    counts: dict[tuple[str, str], int] = {}
    taken = set(zip(cells["workload"], aliases))
    for cell_id, alias in aliases.items():  # a clash gets a free ·2, ·3 ... in the order cells come
        key = (cells.at[cell_id, "workload"], alias)
        counts[key] = counts.get(key, 0) + 1
        n = counts[key]
        while n > 1 and (key[0], f"{alias}·{n}") in taken:
            n += 1
        if n > 1:
            aliases[cell_id] = f"{alias}·{n}"
            taken.add((key[0], aliases[cell_id]))
            counts[key] = n
    return runs.assign(full_label=runs["label"], label=runs["cell_id"].map(aliases))


def _base(row) -> str:
    schedule = str(row.get("schedule", "constant") or "constant")
    return str(row["optimizer"]) + ("" if schedule == "constant" else "@" + schedule.split("(")[0])


def _alias(row) -> str:
    role, label = row.get("role", "oneshot"), str(row["label"])
    if role == "trial" and pd.notna(row.get("trial")):
        return f"{_base(row)}·t{int(row['trial'])}"
    if role == "tuned":
        return f"{_base(row)}·tuned"
    # an optimizer's own name is as short as a name of it gets: only what follows is cut
    return label if len(label) <= MAX_LABEL or label == _base(row) else ""  # numbered below


def _number_long_oneshots(cells: pd.DataFrame, aliases: pd.Series) -> pd.Series:
    """A long untuned label becomes its optimizer and a number, one number per distinct
    label across workloads (the same cell spec keeps its alias everywhere)."""
    aliases = aliases.copy()
    numbers: dict[str, str] = {}
    taken = set(aliases)
    for cell_id in aliases[aliases == ""].index:
        label = str(cells.at[cell_id, "label"])
        if label not in numbers:
            n = 1
            while f"{_base(cells.loc[cell_id])}·{n}" in taken:
                n += 1
            numbers[label] = f"{_base(cells.loc[cell_id])}·{n}"
            taken.add(numbers[label])
        aliases[cell_id] = numbers[label]
    return aliases


def hyperparameters(hparams_json) -> str:
    """'b1=0.937, learning_rate=0.00288' from the stored JSON; the text itself if not JSON."""
    try:
        values = json.loads(hparams_json)
    except (TypeError, ValueError):
        return str(hparams_json)
    if not isinstance(values, dict):
        return str(hparams_json)
    return ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in sorted(values.items()))


def key_table(cells: pd.DataFrame) -> Table | None:
    """alias -> full label and every hyperparameter, for each cell shown under an alias."""
    if not len(cells) or "full_label" not in cells:
        return None
    renamed = cells[cells["label"] != cells["full_label"]]
    if not len(renamed):
        return None
    order = {"oneshot": 0, "tuned": 1, "trial": 2}
    renamed = renamed.assign(_role=renamed["role"].map(order).fillna(3),
                             _trial=renamed.get("trial", pd.Series(0, index=renamed.index)))
    renamed = renamed.sort_values(["workload", "optimizer", "_role", "_trial", "label"])
    rows = [[(r["label"], None), (r["workload"], None), (r["role"], None),
             (r["full_label"], None), (hyperparameters(r["hparams"]), None)]
            for r in renamed.to_dict("records")]
    return Table(["alias", "workload", "role", "full label", "every hyperparameter"], rows,
                 title="Key: the short names in the plots and tables")
