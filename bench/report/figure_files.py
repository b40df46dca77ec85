"""Where a figure becomes files: the one place that decides their formats.

Every figure of the report (plots.py, curve_plots.py, widths.py, trajectories.py), of
`optbench plot` and of compare.html is saved by `save`, which writes the figure once per
format asked for (PNG, SVG, PDF) and returns the file a page embeds: the PNG when PNG was
asked for, else the SVG, else the PDF (which a browser cannot show inline; the page links
to it). The formats are
set for a block of code with `formats(...)`, not passed through every figure function: the
figures do not care how they are stored.

SVG keeps its text as text (`svg.fonttype: none`), so labels stay searchable and editable;
matplotlib escapes `<`, `&` and `>` in it. PDF embeds TrueType fonts (fonttype 42) rather
than Type 3, which editors read as text. Both leave out the creation date, so the same
figure gives the same file.
"""
from __future__ import annotations

import base64
import contextlib
import html
import difflib
import warnings
from contextvars import ContextVar
from pathlib import Path

from bench.errors import UserError
from bench.runner.files import atomic_write

FORMATS = ("png", "svg", "pdf")
EMBED_ORDER = ("png", "svg", "pdf")  # what a page shows, best first
MIME = {"png": "image/png", "svg": "image/svg+xml", "pdf": "application/pdf"}
DPI = 110
_STYLE = {"svg.fonttype": "none", "svg.hashsalt": "optbench", "pdf.fonttype": 42}
_METADATA = {"svg": {"Date": None}, "pdf": {"CreationDate": None}, "png": {}}
_asked: ContextVar[tuple[str, ...]] = ContextVar("figure_formats", default=("png",))


def parse_formats(text: str | None) -> tuple[str, ...]:
    """`--format png,svg,pdf` as a tuple, each once, in the order given; one line naming
    the valid formats for an unknown or empty one."""
    names = [part.strip().lower() for part in (text or "").split(",") if part.strip()]
    if not names:
        raise UserError(f"--format is empty; give one or more of {', '.join(FORMATS)}"
                        " (comma-separated)")
    for name in names:
        if name not in FORMATS:
            close = difflib.get_close_matches(name, FORMATS, n=1)
            raise UserError(f"unknown format '{name}'" + (f" (did you mean '{close[0]}'?)"
                                                         if close else "")
                            + f"; the formats: {', '.join(FORMATS)}")
    return tuple(dict.fromkeys(names))


def format_of(path: Path) -> str:
    """The format a file name asks for (`curves.svg`: svg); one line when it asks for none."""
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise UserError(f"cannot tell the format of '{path}': give a file name ending in "
                        + ", ".join(f".{f}" for f in FORMATS))
    return suffix


@contextlib.contextmanager
def formats(asked: tuple[str, ...]):
    """Within this block, `save` writes every format of `asked`."""
    token = _asked.set(tuple(asked))
    try:
        yield
    finally:
        _asked.reset(token)


def embedded(asked: tuple[str, ...] | None = None) -> str:
    """The format a page shows of those asked for."""
    asked = asked or _asked.get()
    return next(f for f in EMBED_ORDER if f in asked)


def save(fig, path: Path, **layout) -> Path:
    """Lay out `fig` (tight_layout with `layout`), write it as `path` with the suffix of
    each format asked for (each file written to a temporary name, then renamed), and
    return the path of the one a page embeds."""
    import matplotlib  # here: pages that only embed figures need not load it

    path = Path(path)
    with warnings.catch_warnings():  # very long labels: a cramped figure beats a warning
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout(**layout)
    with matplotlib.rc_context(_STYLE):
        for fmt in _asked.get():
            atomic_write(path.with_suffix(f".{fmt}"), lambda tmp, f=fmt: fig.savefig(
                tmp, dpi=DPI, format=f, metadata=_METADATA[f]))
    return path.with_suffix(f".{embedded()}")


def embed(title: str, path: Path) -> str:
    """A figure inside a page (PNG or SVG as a data URL: the page stays one file); a PDF,
    which browsers do not show inline, as a link to its file (`path` is beside the page or
    in a folder beside it)."""
    fmt = Path(path).suffix.lstrip(".")
    if fmt == "pdf":
        return (f"<p><a href=\"{html.escape(path.parent.name + '/' + path.name)}\">"
                f"{html.escape(title)} (PDF)</a></p>")
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f"<img alt=\"{html.escape(title)}\" src=\"data:{MIME[fmt]};base64,{data}\">"
