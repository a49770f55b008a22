"""The status page's HTML pieces (daemon/report/pagehtml.py): every name escaped, and a place
to break in a long run that never splits what shows as one character."""

from __future__ import annotations

import html
import re
import unicodedata
from datetime import UTC, datetime, timedelta

from daemon.report.pagehtml import RUN, page, text


def breaks_inside(shown: str, code: str) -> list[str]:
    """The pieces of `shown` that end at a <wbr> falling inside an escape the regular
    expression `code` matches (in the text with the breaks taken out)."""
    joined = shown.replace("<wbr>", "")
    escapes = [m.span() for m in re.finditer(code, joined)]
    split, at = [], 0
    for piece in shown.split("<wbr>")[:-1]:
        at += len(piece)
        if any(a < at < b for a, b in escapes):
            split.append(piece)
    return split


def test_a_long_name_breaks_only_between_the_characters_a_clerk_sees() -> None:
    """A Mac writes "Räkning" as "a" + U+0308 (NFD), Korean names as their letters, and an
    emoji family as three faces joined by U+200D: a <wbr> every RUN code points fell
    between a letter and its accent mark (shown apart, as a dotted circle, where the line
    broke) or inside an emoji. Each break now comes after a whole character; the text
    with the breaks taken out is the name, and no piece is much longer than RUN."""
    names = {
        "nfd": unicodedata.normalize("NFD", "aÅÄÖåäö" * 10) + ".xml",
        "hangul": unicodedata.normalize("NFD", "한국어송장파일" * 10) + ".xml",
        "family": "x" + "👨\u200d👩\u200d👧" * 20 + ".xml",
        "skin": "x" + "👍🏽" * 40 + ".xml",
        "flags": "x" + "🇸🇪" * 40 + ".xml",
        "keycap": "x" + "1\ufe0f\u20e3" * 30 + ".xml",
    }
    for kind, name in names.items():
        shown = text(name)
        assert "<wbr>" in shown, kind
        assert html.unescape(shown.replace("<wbr>", "")) == name, kind
        pieces = shown.split("<wbr>")
        for piece in pieces[1:]:
            first = piece[0]
            assert unicodedata.category(first) not in ("Mn", "Mc", "Me"), (kind, piece)
            assert first not in "\u200d\U0001f3fd" and not 0x1160 <= ord(first) <= 0x11FF, \
                (kind, piece)
        for piece in pieces[:-1]:
            assert not piece.endswith("\u200d"), (kind, piece)
        # A flag is two regional indicators: every piece holds whole pairs.
        if kind == "flags":
            assert all(len(p) % 2 == 0 for p in pieces[1:-1]), pieces
        assert max(len(p) for p in pieces) <= RUN + 2, (kind, pieces)


def test_names_are_escaped_and_no_break_falls_inside_an_entity() -> None:
    """&, <, > and quotes in a long name are escaped whole: a break never splits
    "&amp;" (which would show as "&am" and "p;"), and the escaped text is the name."""
    name = "Faktura&<\"'>" * 20 + ".xml"
    shown = text(name)
    assert "<" not in shown.replace("<wbr>", "") and '"' not in shown
    assert html.unescape(shown.replace("<wbr>", "")) == name
    for piece in shown.split("<wbr>"):
        assert piece.count("&") == piece.count(";"), piece


def test_a_name_of_words_joined_by_no_break_spaces_can_break_too() -> None:
    """Words joined by U+00A0 (a no-break space, as some programs put in names) never
    break in a browser: such a name of 200 characters widened the page as one word did.
    Only the spaces a browser breaks at end a run."""
    name = "Rechnung\u00a0" * 25 + "März.xml"
    shown = text(name)
    assert "<wbr>" in shown
    assert html.unescape(shown.replace("<wbr>", "")) == name
    short = "Rechnung März 2026 Kunde Müller GmbH und Co KG Filiale Nord.xml"
    assert text(short) == html.escape(short)  # spaces break it already: left as it is


def test_a_name_with_bidirectional_controls_shows_them_as_escapes_never_split() -> None:
    """A right-to-left override in a name ("INV" + U+202E + "lmx.pdf") would show it
    reversed on the page ("INVfdp.xml"): it is shown as \\u202e instead, like the other
    bidirectional controls, and no break falls inside an escape (\\u20 on one line,
    2e on the next), wherever the cut every RUN characters would land."""
    assert text("INV\u202elmx.pdf") == "INV\\u202elmx.pdf"
    for lead in range(RUN):
        name = "x" * lead + "\u202e\u2066\x1b\u200f" * 12 + ".xml"
        shown = text(name)
        assert not any(c in shown for c in "\u202e\u2066\x1b\u200f")
        assert "<wbr>" in shown
        joined = shown.replace("<wbr>", "")
        assert joined == "x" * lead + "\\u202e\\u2066\\x1b\\u200f" * 12 + ".xml"
        assert breaks_inside(shown, r"\\(u....|x..)") == [], lead


def test_format_characters_show_as_codes_and_a_long_code_is_never_split() -> None:
    """A zero-width space in a name shows as \\u200b (INV-1 and INV-1 + U+200B read
    apart), a format character beyond U+FFFF as \\UNNNNNNNN; no break falls inside
    either code, wherever the cut every RUN characters would land."""
    assert text("INV-1\u200b") == "INV-1\\u200b"
    for lead in range(RUN):
        name = "x" * lead + "\u200b\U000e0001\ufeff" * 12 + ".xml"
        shown = text(name)
        joined = shown.replace("<wbr>", "")
        assert joined == "x" * lead + "\\u200b\\U000e0001\\ufeff" * 12 + ".xml"
        assert breaks_inside(shown, r"\\(U[0-9a-f]{8}|u....)") == [], lead


def test_the_time_the_next_write_is_due_is_named_rounded_up_to_the_minute() -> None:
    """The page names the minute by which outboxd writes it again. Cut down, a write due
    at 12:05:40 was named "by 12:05", and for 40 s a running daemon's page said it was
    old and to tell the admin; rounded up it is "by 12:06". A due time on the minute
    stays as it is."""
    written = datetime(2031, 5, 6, 12, 0, 40, tzinfo=UTC)
    late = page("", written, due=written + timedelta(minutes=5))
    assert "writes it again by 12:06 UTC (2031-05-06)" in late
    assert "again by 00:00 UTC (2031-05-07)" in page("", datetime(
        2031, 5, 6, 23, 55, tzinfo=UTC), due=datetime(2031, 5, 7, 0, 0, tzinfo=UTC))
    assert "again by 00:00 UTC (2031-05-07)" in page("", datetime(
        2031, 5, 6, 23, 55, 0, 1, tzinfo=UTC), due=datetime(2031, 5, 6, 23, 59, 0, 1,
                                                           tzinfo=UTC))
