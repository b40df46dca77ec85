"""One renderer: a `Table` becomes markdown, HTML or a terminal table here, and nowhere
else; `interval` is the one way a mean and its interval are written; `page` wraps HTML in
the report's stylesheet and script (package data in static/).

Every string is data: HTML is escaped, markdown pipes are escaped, and terminal cells are
rich `Text`, never parsed as markup, so a label like `my:[/red]` shows as it is.
"""
from __future__ import annotations

import html
import math
import re
import shlex
from dataclasses import dataclass, field
from importlib import resources

from rich.table import Table as RichTable
from rich.text import Text

Cell = tuple[str, float | None]  # (text, sort key: numeric cells sort by it in HTML)


@dataclass
class Table:
    header: list[str]
    rows: list[list[Cell]] = field(default_factory=list)
    title: str = ""
    row_classes: list[str] = field(default_factory=list)  # HTML only: a CSS class per row


def interval(mean: float, low: float = math.nan, high: float = math.nan, *, digits: int = 3,
             sign: bool = False) -> str:
    """'0.912 [0.905, 0.919]'; the mean alone without an interval; '—' without a mean.

    Numbers too small for `digits` decimals to show two significant figures (a
    suboptimality of 7.8e-13, an excess loss near 0) or of a million and more are written
    in scientific notation: '7.80e-13 [5.10e-13, 1.05e-12]', never '0.000 [0.000, 0.000]'.
    The largest of the three decides, so a difference near zero with a wide interval stays
    '+0.0008 [-0.0050, +0.0066]'."""
    if not _finite(mean):
        return "—"
    scale = max(abs(v) for v in (mean, low, high) if _finite(v))
    scientific = scale != 0 and not 10.0 ** (1 - digits) <= scale < 1e6
    fmt = f"{'+' if sign else ''}.{digits - 1 if scientific else digits}{'e' if scientific else 'f'}"
    if not (_finite(low) and _finite(high)):
        return f"{mean:{fmt}}"
    return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def printable(text) -> str:
    """`text` safe for a terminal: control characters (an escape sequence in a path, a line
    break in an exception's message) shown as Python escapes, never sent raw."""
    return "".join(c if c.isprintable() else _escape(c) for c in str(text))


def one_line(text, longest: int | None = None) -> str:
    """A message (an exception's, with a path or a value in it) on one line that says what it
    says: surrounding whitespace dropped, a control character shown escaped where it stands
    (`printable`: a line break in a path is `\\n`; made a space, it named another path), and
    a word longer than `longest` characters (a pasted value, echoed back) cut short."""
    shown = printable(str(text).strip())
    if longest is None:
        return shown
    return " ".join(w if len(w) <= longest else f"{w[:longest - 3]}..." for w in shown.split(" "))


def _escape(c: str) -> str:
    """A character that cannot be shown raw, as the escape Python and bash both read: a byte
    of a name that is not UTF-8 (kept by Python as a surrogate, U+DC80-U+DCFF) as that byte,
    \\xff, not as the surrogate \\udcff, which names no byte of the file."""
    if "\udc80" <= c <= "\udcff":
        return f"\\x{ord(c) - 0xDC00:02x}"
    return repr(c)[1:-1]


def shell_word(path) -> str:
    """`path` as one shell word that names it exactly and prints safely. A leading dash would
    be read as an option, so it gets ./ (Path drops one given); a control character (a line
    break, an escape sequence) cannot be sent raw, and shown escaped inside '...' it would
    name another folder, so such a path is quoted as bash's $'...', which decodes escapes."""
    text = str(path)
    if text.startswith("-"):
        text = f"./{text}"
    if text.isprintable():
        return shlex.quote(text)
    return "$'" + "".join(map(_ansi_c_escape, text)) + "'"


def _ansi_c_escape(c: str) -> str:
    """One character inside bash's $'...'."""
    if c in "\\'":
        return "\\" + c
    return c if c.isprintable() else _escape(c)  # \n, \x1b, \u2028, \xff: escapes bash reads back


def sort_key(value: float) -> float:
    """Missing values sort last."""
    return float(value) if _finite(value) else 1e300


# what formats text in a table cell; an underscore inside a word (learning_rate) does not
MARKDOWN_SPECIAL = re.compile(r"([\\|*`<>$~]|\](?=\()|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9]))")


def markdown_text(text: str) -> str:
    """`text` shown verbatim in markdown: formatting characters backslash-escaped (as
    CommonMark allows for any ASCII punctuation), line breaks as spaces."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).splitlines()))


def markdown(table: Table) -> list[str]:
    cell = markdown_text
    lines = [f"**{cell(table.title)}**", ""] if table.title else []
    return lines + (["| " + " | ".join(map(cell, table.header)) + " |", "|" + "---|" * len(table.header)]
                    + ["| " + " | ".join(cell(text) for text, _ in row) + " |" for row in table.rows])


# where a figure's spread begins ('0.912 [0.905, 0.919]', '77 µs (IQR 1 µs)'), and where
# a word on it follows ('1.00x [0.98, 1.01], within noise')
SPREAD = re.compile(r" (?=[\[(])|(?<=\],) ")


def _figure(text: str) -> str:
    """A numeric cell's HTML: the figure, then its spread (an interval, an IQR) and any
    word on it each on a line of their own, so that a table of them fits a page's width
    instead of scrolling."""
    figure, *spread = SPREAD.split(str(text), maxsplit=2)
    return html.escape(figure) + "".join(f" <span class=spread>{html.escape(part)}</span>"
                                         for part in spread)


def html_table(table: Table) -> str:
    """A sortable table: cells with a numeric key sort by it (data-sort), others as text."""
    e = html.escape
    text_columns = {i for i in range(len(table.header))
                    if table.rows and all(row[i][1] is None for row in table.rows if i < len(row))}
    head = "".join(f"<th title=\"click to sort\"{' class=label' if i in text_columns else ''}>"
                   f"{e(h)}</th>" for i, h in enumerate(table.header))
    classes = table.row_classes or [""] * len(table.rows)
    body = "".join(
        (f"<tr class=\"{e(css)}\">" if css else "<tr>") + "".join(f"<td data-sort=\"{key:.12g}\">{_figure(text)}</td>" if key is not None
                         else f"<td class=label>{e(text)}</td>" for text, key in row) + "</tr>"
        for row, css in zip(table.rows, classes))
    caption = f"<caption>{e(table.title)}</caption>" if table.title else ""
    return (f"<div class=scroll><table class=sortable>{caption}<thead><tr>{head}</tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


# a column is never narrower than its longest word up to this: a hyperparameter value
# (`learning_rate=0.0007409)`) stays whole where the width allows, not folded mid-number
WHOLE_WORD = 26


def terminal(table: Table) -> RichTable:
    rich = RichTable(title=_text(table.title) if table.title else None)
    for i, h in enumerate(table.header):
        words = [len(w) for row in table.rows for w in row[i][0].split()] or [0]
        rich.add_column(_text(h), overflow="fold",  # wrap, never cut a label short
                        min_width=min(max(words), WHOLE_WORD))
    for row in table.rows:
        rich.add_row(*(_text(text) for text, _ in row))
    return rich


def _text(text: str) -> Text:
    """A cell for the terminal: its line breaks kept, every other control character shown
    escaped (a label from a shared or edited results folder may hold an escape sequence,
    which rich would send raw)."""
    return Text("\n".join(printable(line) for line in str(text).split("\n")))


def page(title: str, body: list[str]) -> str:
    """A self-contained HTML page (no network): the report's CSS and sorting script inline."""
    static = resources.files("bench.report") / "static"
    return ("<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(title)}</title>\n<style>\n{(static / 'report.css').read_text()}"
            "</style></head><body>\n" + "\n".join(body)
            + f"\n<script>\n{(static / 'report.js').read_text()}</script></body></html>\n")


def _finite(value) -> bool:
    try:
        return math.isfinite(value)
    except TypeError:
        return False
