"""The HTML pieces of the status page (statuspage.py): its style, escaping, tables and
lists. Everything shown passes through `text()`, so every name is escaped and none can
widen the page past the window."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from daemon.names import escaped_controls

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em}
.when{color:#666;margin:0 0 1em}
.counts{display:flex;flex-wrap:wrap;gap:.6em;padding:0;list-style:none}
.counts li{border:1px solid #ccc;border-radius:6px;padding:.4em .8em;background:#f7f7f7}
.counts b{font-size:1.3em;display:block}
section{margin-top:1.6em}
h2{font-size:1.15em;border-bottom:2px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.3em .6em;border-bottom:1px solid #eee}
th{background:#fafafa}
td.name{white-space:nowrap}
td.err{color:#a40000}
p.none{color:#888}
code{background:#f2f2f2;padding:0 .2em}
""".strip()

# A run of characters without a space longer than this (a 250-character file name, a
# receipt id of 256) may break every RUN characters: unbroken, it widened its table's
# column past the window, and every other column with it.
RUN = 30
_LONG_RUN = re.compile(rf"\S{{{RUN + 1},}}")
# Of a file's invoice ids, the page names this many: a file of 3,000 invoices made its
# row 3,000 lines high (and its "How to release" name 3,000 folders).
SHOWN_IDS = 20


def text(value: object) -> str:
    """A value as HTML text: escaped, with a place to break in each long run.

    Control characters (a receiver's answer may hold NULs and escape sequences) are
    not allowed in an HTML document and would reach a terminal that shows the file:
    shown as \\xNN, as `outboxd status` and REASON.txt show them. <wbr> adds no
    character: a name copied from the page is the name."""
    plain = escaped_controls("" if value is None else str(value))
    parts: list[str] = []
    end = 0
    for run in _LONG_RUN.finditer(plain):
        parts.append(html.escape(plain[end:run.start()], quote=True))
        word = run.group()
        parts.append("<wbr>".join(html.escape(word[i:i + RUN], quote=True)
                                  for i in range(0, len(word), RUN)))
        end = run.end()
    parts.append(html.escape(plain[end:], quote=True))
    return "".join(parts)


def _cell(index: int, content: str) -> str:
    # The first column names a file or folder: kept on one line (Räkning-Mars.xml broken
    # at its hyphen reads as two names), unless it is too long for any window.
    if index == 0 and "<wbr>" not in content:
        return f'<td class="name">{content}</td>'
    return f"<td>{content}</td>"


def table(headers: Sequence[str], rows: list[list[str]]) -> str:
    """rows hold already-escaped HTML cells."""
    if not rows:
        return '<p class="none">None.</p>'
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(_cell(i, c) for i, c in enumerate(r)) + "</tr>"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def lines(items: Sequence[str]) -> str:
    return "<br>".join(text(i) for i in items)


def shown(items: Sequence[str]) -> tuple[Sequence[str], str]:
    """The first SHOWN_IDS of `items`, and what to say of the rest ("" for none)."""
    more = len(items) - SHOWN_IDS
    return (items[:SHOWN_IDS], f"… and {more} more") if more > 0 else (items, "")


def ids(items: Sequence[str]) -> str:
    """Invoice ids, one a line: the first SHOWN_IDS, then how many more."""
    first, rest = shown(items)
    return lines([*first, rest] if rest else first)


def section(key: str, title: str, content: str) -> str:
    return f'<section id="{key}"><h2>{text(title)}</h2>\n{content}</section>'
