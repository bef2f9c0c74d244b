"""The report as a list of blocks, rendered twice: self-contained HTML and Markdown with PNG files.

The HTML opens offline: every picture is a PNG in a `data:image/png;base64,` URI, the CSS is
inline, and nothing (script, font, stylesheet, link) is fetched. The Markdown writes its pictures
as PNG files into a folder next to it and references them relatively.
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from orl.artifacts import atomic_write_bytes

CSS = """
body { font-family: sans-serif; max-width: 1200px; margin: 1em auto; padding: 0 1em;
       color: #222; background: #fff; }
h1 { border-bottom: 2px solid #345; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; }
th { background: #e8eef4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 0.8em 0; } figcaption { color: #555; font-size: 0.9em; }
img { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f4f4f4; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
p.missing { color: #a33; font-style: italic; }
"""


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    """A paragraph; `missing` marks a part of the pipeline that has not run (styled in HTML)."""

    text: str
    missing: bool = False


@dataclass(frozen=True)
class Table:
    """Cells are strings already formatted; `numeric` columns are right-aligned in HTML."""

    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    numeric: tuple[bool, ...] = ()


@dataclass(frozen=True, eq=False)
class Figure:
    """A picture; `name` is its file stem in the Markdown picture folder (unique per report)."""

    name: str
    image: Image.Image
    caption: str


@dataclass(frozen=True)
class Code:
    text: str
    language: str = ""


Block = Heading | Text | Table | Figure | Code


def png_bytes(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _html_table(t: Table) -> str:
    numeric = t.numeric or (False,) * len(t.columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{html.escape(c)}</td>' if num else f"<td>{html.escape(c)}</td>"
            for c, num in zip(row, numeric, strict=True)
        )
        + "</tr>\n"
        for row in t.rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


def _html_block(b: Block) -> str:
    if isinstance(b, Heading):
        return f"<h{b.level}>{html.escape(b.text)}</h{b.level}>"
    if isinstance(b, Text):
        cls = ' class="missing"' if b.missing else ""
        return f"<p{cls}>{html.escape(b.text)}</p>"
    if isinstance(b, Table):
        return _html_table(b)
    if isinstance(b, Figure):
        data = base64.b64encode(png_bytes(b.image)).decode("ascii")
        alt = html.escape(b.caption, quote=True)
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{alt}" '
            f'width="{b.image.width}" height="{b.image.height}">'
            f"<figcaption>{html.escape(b.caption)}</figcaption></figure>"
        )
    return f"<pre>{html.escape(b.text)}</pre>"


def render_html(title: str, blocks: Sequence[Block]) -> str:
    """One self-contained HTML page (no external resource of any kind)."""
    body = "\n".join(_html_block(b) for b in blocks)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n"
        f"<body>\n<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )


# Characters that start Markdown markup anywhere in a line. Backslash escapes for those that
# CommonMark and Python-Markdown both accept; entities for the rest (raw HTML, entities, table
# cells, strikethrough), which every renderer shows as the character itself.
_MD_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "~": "&#126;"}
_MD_SPECIAL = re.compile(r"[\\`*_\[\]#!&<>|~]")
# Markup that only counts at the start of a block: list items ("- ", "+ ", "1. ", "1) ").
_MD_LEADING = re.compile(r"^([-+]|\d{1,9}[.)])(?=\s|$)")


def md_escape(text: str) -> str:
    """`text` as one line of literal Markdown: folder names and data sources are user input, and
    must not become links, raw HTML or formatting."""
    flat = " ".join(text.splitlines()).strip()  # leading spaces would start a code block
    escaped = _MD_SPECIAL.sub(lambda m: _MD_ENTITIES.get(m[0], "\\" + m[0]), flat)
    return _MD_LEADING.sub(lambda m: f"{m[1][:-1]}\\{m[1][-1]}", escaped)


def _md_block(b: Block, files_dir: Path, rel: str) -> str:
    if isinstance(b, Heading):
        return f"{'#' * b.level} {md_escape(b.text)}"
    if isinstance(b, Text):
        return f"*{md_escape(b.text)}*" if b.missing else md_escape(b.text)
    if isinstance(b, Table):
        lines = [
            "| " + " | ".join(md_escape(c) for c in b.columns) + " |",
            "|"
            + "|".join("---:" if n else "---" for n in (b.numeric or [False] * len(b.columns)))
            + "|",
        ]
        lines += ["| " + " | ".join(md_escape(c) for c in row) + " |" for row in b.rows]
        return "\n".join(lines)
    if isinstance(b, Figure):
        atomic_write_bytes(png_bytes(b.image), files_dir / f"{b.name}.png")
        caption = md_escape(b.caption)
        return f"![{caption}]({rel}/{b.name}.png)\n\n{caption}"
    # A fence longer than any backtick run inside keeps the code block closed where it should be.
    fence = "`" * max(3, _longest_backtick_run(b.text) + 1)
    return f"{fence}{b.language}\n{b.text.rstrip()}\n{fence}"


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    return longest


def render_markdown(title: str, blocks: Sequence[Block], files_dir: Path, rel: str) -> str:
    """Markdown text; each Figure is saved as `files_dir/NAME.png` and linked as `rel/NAME.png`."""
    files_dir.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}", *(_md_block(b, files_dir, rel) for b in blocks)]
    return "\n\n".join(parts) + "\n"
