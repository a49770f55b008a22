"""The HTML pieces of the status page (statuspage.py): its style, escaping, tables and
lists. Everything shown passes through `text()`, so every name is escaped and none can
widen the page past the window."""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from daemon.invisible import escaped_controls
from daemon.names import first_of

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .2em}
.when{color:#666;margin:0 0 1em}
.counts{display:flex;flex-wrap:wrap;gap:.6em;padding:0;list-style:none}
.counts li{border:1px solid #ccc;border-radius:6px;padding:.4em .8em;background:#f7f7f7}
.counts b{font-size:1.3em;display:block}
.counts a{color:inherit;text-decoration:none}
section{margin-top:1.6em}
h2{font-size:1.15em;border-bottom:2px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.3em .6em;border-bottom:1px solid #eee}
th{background:#fafafa}
td.name{white-space:nowrap}
td.err{color:#a40000}
.warn{color:#7a4d00}
p.none{color:#888}
code{background:#f2f2f2;padding:0 .2em}
.stopped{border:2px solid #a40000;background:#fff4f4;padding:.6em 1em;font-size:1.1em}
""".strip()
WRITTEN_MARK = "<!--written-->"  # marks a page as outboxd's (statuspage.reconfigure)

# A run of characters without a space longer than this (a 250-character file name, a
# receipt id of 256) may break every RUN characters: unbroken, it widened its table's
# column past the window, and every other column with it.
RUN = 30
# Only the spaces a browser breaks at end a run: a name of short words joined by
# no-break spaces (U+00A0) is as unbreakable as one word.
_LONG_RUN = re.compile(rf"[^ \t\n\r\f]{{{RUN + 1},}}")
_REGIONAL = range(0x1F1E6, 0x1F200)  # two make one flag
# Of a file's invoice ids, the page names this many: a file of 3,000 invoices made its
# row 3,000 lines high (and its "How to release" name 3,000 folders).
SHOWN_IDS = 20
# Of a sent bundle's warnings, the page says this many (a line each), then how many more.
WARNINGS_SHOWN = 3


def text(value: object) -> str:
    """A value as HTML text: escaped, with a place to break in each long run.

    Control characters (a receiver's answer may hold NULs and escape sequences) are
    not allowed in an HTML document and would reach a terminal that shows the file:
    shown as \\xNN, as `outboxd status` and REASON.txt show them; bidirectional controls,
    which would show a name's letters reordered (a spoof), and the other invisible
    format characters (a zero-width space: two ids that look the same), as \\uNNNN.
    <wbr> adds no character: a name copied from the page is the name. The breaks are
    placed in the plain text, which is escaped after: none falls inside an entity
    (&amp;)."""
    plain = escaped_controls("" if value is None else str(value))
    if len(plain) <= RUN:  # most values: no run to break (a render of 20,000 rows)
        return html.escape(plain, quote=True)
    # NUL marks each break: escaped_controls left none in `plain`, and html.escape
    # leaves it be.
    marked = _LONG_RUN.sub(lambda run: "\0".join(_pieces(run.group())), plain)
    return html.escape(marked, quote=True).replace("\0", "<wbr>")


# What escaped_controls shows for an invisible character: read as one, never broken.
_ESCAPE = re.compile(r"\\(?:x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})")


def _pieces(word: str) -> list[str]:
    """`word` cut about every RUN characters, never inside what shows as one character,
    nor inside the escape (\\x1b, \\u202e) that stands for an invisible one."""
    escapes = [m.span() for m in _ESCAPE.finditer(word)] if "\\" in word else []
    pieces: list[str] = []
    start = 0
    while start < len(word):
        cut = start + RUN
        while cut < len(word) and (_joined(word, cut)
                                   or any(a < cut < b for a, b in escapes)):
            cut += 1
        pieces.append(word[start:cut])
        start = cut
    return pieces


def _joined(word: str, i: int) -> bool:
    """Whether word[i] belongs to the character before it on screen: a break there split
    a letter from its accent in a Mac's names (NFD: "a" + U+0308 for "ä"), a Korean
    syllable into its letters, or an emoji sequence into its parts."""
    c, before = ord(word[i]), ord(word[i - 1])
    if unicodedata.category(word[i]) in ("Mn", "Mc", "Me"):  # accents, variation selectors
        return True
    if 0x200D in (c, before):  # zero-width joiner: 👨‍👩‍👧
        return True
    if 0x1F3FB <= c <= 0x1F3FF or 0xE0020 <= c <= 0xE007F:  # skin tones, flag tags
        return True
    if 0x1160 <= c <= 0x11FF or 0xD7B0 <= c <= 0xD7FF:  # a Hangul syllable's vowel, final
        return True
    if c in _REGIONAL and before in _REGIONAL:  # the second half of a flag
        pairs = 0
        while i - 1 - pairs >= 0 and ord(word[i - 1 - pairs]) in _REGIONAL:
            pairs += 1
        return pairs % 2 == 1
    return False


def _first(content: str) -> str:
    # The first column names a file or folder: kept on one line (Räkning-Mars.xml broken
    # at its hyphen reads as two names), unless it is too long for any window.
    if "<wbr>" not in content:
        return f'<td class="name">{content}</td>'
    return f"<td>{content}</td>"


def table(headers: Sequence[str], rows: list[list[str]]) -> str:
    """rows hold already-escaped HTML cells."""
    if not rows:
        return '<p class="none">None.</p>'
    head = "".join(f"<th>{text(h)}</th>" for h in headers)
    # One join per row (a page of 20,000 rows renders in a fifth of a second).
    body = "".join(f"<tr>{_first(r[0])}<td>" + "</td><td>".join(r[1:]) + "</td></tr>"
                   if len(r) > 1 else f"<tr>{_first(r[0])}</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def lines(items: Sequence[str]) -> str:
    return "<br>".join(text(i) for i in items)


def warned(warnings: Sequence[str]) -> str:
    """A sent bundle's warnings under its ids (HTML): the first WARNINGS_SHOWN, then how
    many more receipt.json holds; "" for none."""
    if not warnings:
        return ""
    first, rest = first_of(warnings, WARNINGS_SHOWN)
    more = [f"{rest}: receipt.json in its folder in sent/ lists them"] if rest else []
    return ('<br><span class="warn">Sent with '
            f'{"a warning" if len(warnings) == 1 else "warnings"}:<br>'
            + lines([*first, *more]) + "</span>")


def shown(items: Sequence[str]) -> tuple[Sequence[str], str]:
    """The first SHOWN_IDS of `items`, and what to say of the rest ("" for none)."""
    return first_of(items, SHOWN_IDS)


def ids(items: Sequence[str]) -> str:
    """Invoice ids, one a line: the first SHOWN_IDS, then how many more."""
    first, rest = shown(items)
    return lines([*first, rest] if rest else first)


def section(key: str, title: str, content: str) -> str:
    return f'<section id="{key}"><h2>{text(title)}</h2>\n{content}</section>'


# How every page outboxd writes begins (the title's first word included, stopped or not):
# a root file named like another daemon's page is taken for one only if it begins so
# (scan.py); a clerk's file of such a name is reported, not silently ignored.
PAGE_START = ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
              '<meta http-equiv="refresh" content="10"><title>outboxd')


def _minute_up(at: datetime) -> datetime:
    """`at` in UTC, rounded up to the whole minute: the page names the due time to the
    minute, and cut down (a write due at 12:05:40 named "by 12:05") a running daemon's
    page read as old for up to a minute before its next write came, and the clerk was
    told to call the admin for nothing."""
    at = at.astimezone(UTC)
    whole = at.replace(second=0, microsecond=0)
    return whole if whole == at else whole + timedelta(minutes=1)


# How a page written at a clean stop begins (its title says STOPPED).
STOPPED_START = PAGE_START + " STOPPED"


def _stopped_banner(at: datetime, others: Sequence[str]) -> str:
    """What a page written at a clean stop says first. Where other daemons share the
    outbox (`others`: their pages, not stopped), "nothing is sent until it runs again"
    is untrue, and the clerk was sent to the admin while the others went on sending."""
    since = f'{at.strftime("%H:%M")} UTC ({at.strftime("%Y-%m-%d")})'
    if not others:
        return (f"<b>outboxd is stopped since {since}.</b> Nothing is sent until it runs "
                "again. Nothing is lost: what is in the outbox stays there, and what is "
                "listed below waits. Tell the admin.")
    pages = ", ".join(f"<code>{text(o)}</code>" for o in others)
    one = len(others) == 1
    return (f"<b>The outboxd that writes this page is stopped since {since}.</b> "
            f"{'Another outboxd shares' if one else 'Other outboxd daemons share'} this "
            f"outbox and {'writes' if one else 'write'} {pages}: while "
            f"{'it runs' if one else 'they run'}, what is put into the outbox is still "
            f"sent — look at {'that page' if one else 'those pages'}. What this page lists "
            "as being sent or retrying waits for this outboxd; nothing is lost. Tell the "
            "admin.")


def page(body: str, written_at: datetime, stopped_at: datetime | None = None,
         due: datetime | None = None, others: Sequence[str] = (), host: str = "",
         daemon: str = "") -> str:
    """The whole page around a rendered body, with the time it was written; with
    `stopped_at`, first of all that outboxd is stopped since then (a clean stop), in
    the time zone of the page's other times (UTC), and, with `others` (the pages of
    other daemons on the outbox that are not stopped), that they go on sending; with
    `due`, the time by which a running outboxd writes it again, whatever changes
    (statuspage.HEARTBEAT); with `host` and `daemon` (HOST-OWNER, as the daemon's
    files on the share are named), whose page it is: with several daemons on one
    outbox, each writes its own, and a page that named none was no one's view."""
    stamp = written_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    whose = f" on {text(host)} (daemon {text(daemon)})" if host else ""
    later = ""
    if due is not None:
        by = _minute_up(due).strftime("%H:%M UTC (%Y-%m-%d)")
        later = (f' <span class="due">outboxd writes it again by {by}, even when nothing '
                 "changed: if this line still shows this time after then, outboxd is not "
                 "running (or is stuck) and the lists below are old — tell the admin.</span>")
    title, banner = "outboxd — outbox status", ""
    if stopped_at is not None:
        title = "outboxd STOPPED — outbox status"
        banner = (f'<p class="stopped">{_stopped_banner(stopped_at.astimezone(UTC), others)}'
                  "</p>\n")
    return (f"{PAGE_START}{title.removeprefix('outboxd')}</title>"
            f"<style>{STYLE}</style></head>\n<body>\n<h1>Outbox status</h1>\n{banner}"
            f"<p class=\"when\">Written {WRITTEN_MARK}{text(stamp)} by outboxd{whose}; this page "
            f"reloads every 10 seconds.{later}</p>\n"
            f"{body}\n</body></html>\n")
