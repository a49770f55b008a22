"""The invisible format characters of a line shown to people (Unicode category Cf: the
zero-width space and joiners, U+FEFF, the soft hyphen, the tags of U+E0000…) as codes,
so that "INV-1" and "INV-1" + U+200B no longer look like one id on the status page, in
`outboxd status`, REASON.txt and NAME.errors.txt; and control characters and
bidirectional controls as codes wherever a text from the share, an invoice or a receiver
is shown (escaped_controls, for_terminal): the one way outboxd shows such characters."""

from __future__ import annotations

import functools
import re
import threading
import unicodedata


def escape(char: str) -> str:
    """`char` as Python writes it in a string: \\xNN, \\uNNNN, or \\UNNNNNNNN."""
    code = ord(char)
    return (f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}" if code <= 0xFFFF
            else f"\\U{code:08x}")


_BEYOND_BMP = re.compile("[\U00010000-\U0010ffff]")


_BUILDING = threading.Lock()


def _format_characters() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """_built's tables, built by one thread: the delivery workers, the loop and the page
    meet the first name beyond ASCII at once in a burst, and functools.cache alone let
    each build them (six builds of a daemon's first burst, ~10 ms of CPU each)."""
    with _BUILDING:
        return _built()


@functools.cache
def _built() -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Every format character beyond ASCII as a regex: (those up to U+FFFF, all of them).
    Built at the first line that is not ASCII, from the Unicode tables Python has:
    Unicode puts them in planes 0, 1 and 14 only, and a look at all 17 would add 0.1 s
    to a command. Ranges, not single characters, and the planes beyond the first only
    for a line that has a character there: a name of the page's 20,000 rows with an
    "ä" in it takes 5 µs so, 40 µs as a class of 163 single characters."""
    codes = [c for plane in (range(0x80, 0x20000), range(0xE0000, 0xE1000)) for c in plane
             if unicodedata.category(chr(c)) == "Cf"]
    ranges: list[list[int]] = []
    for c in codes:
        if ranges and ranges[-1][1] == c - 1:
            ranges[-1][1] = c
        else:
            ranges.append([c, c])
    classes = [f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges]
    bmp = "".join(cls for cls, (a, _b) in zip(classes, ranges, strict=True) if a <= 0xFFFF)
    return re.compile(f"[{bmp}]"), re.compile(f"[{''.join(classes)}]")


def _pictograph(text: str, i: int) -> bool:
    # Emoji and the symbols an emoji sequence joins (♀ ⚕ ✈), a variation selector after one.
    c = ord(text[i]) if 0 <= i < len(text) else 0
    return 0x1F000 <= c <= 0x1FAFF or 0x2600 <= c <= 0x27BF or c == 0xFE0F


def _shown(text: str, m: re.Match[str]) -> str:
    """One format character as its code, except where a person sees what it does: a
    zero-width joiner between two emoji (👨‍👩‍👧 is one picture, a name the page has
    always shown whole) and the tags that make the black flag a region's (England's)."""
    c, i = m[0], m.start()
    if c == "\u200d" and _pictograph(text, i - 1) and _pictograph(text, i + 1):
        return c
    if "\U000e0020" <= c <= "\U000e007f":
        start = i
        while start > 0 and "\U000e0020" <= text[start - 1] <= "\U000e007f":
            start -= 1
        if start > 0 and text[start - 1] == "\U0001f3f4":
            return c
    return escape(c)


def format_characters_shown(text: str) -> str:
    """`text` with its format characters as codes (escape), but those _shown keeps."""
    bmp, every = _format_characters()
    rx = every if _BEYOND_BMP.search(text) else bmp
    return rx.sub(lambda m: _shown(text, m), text)


# The invisible characters that reorder what follows them on screen (Unicode's
# bidirectional marks, embeddings, overrides and isolates): "INV\u202elmx.pdf" shows as
# "INVfdp.xml", a PDF posing as an invoice XML. Not control characters to `bad-name`
# (docs/folder-convention.md, section 1: such a name is used, not refused), but never
# shown raw.
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
# For a terminal, also C1 (U+0080–U+009F: U+009B starts an escape sequence in some).
# U+2028 and U+2029 end a line to Python's splitlines, JavaScript and log viewers built
# on them (as U+0085, a C1): raw in a log record, a name cuts it in two, and its second
# part may pose as a record of its own. A lone surrogate (a byte of a name that is not
# UTF-8, as os.fsdecode gives it: 0xFF as U+DCFF) cannot be written as UTF-8: the line
# would be lost. Shown as Python writes it, \udcff: as \xff, the byte 0x85 would look
# like the character U+0085, \x85, and two different names like one.
_TERMINAL_CONTROL = re.compile(
    rf"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}\u2028\u2029\ud800-\udfff]")


def controls_escaped(text: str) -> str:
    """`text` with its control characters, bidirectional controls, line and paragraph
    separators and undecodable bytes as codes only: a name as the journal keeps it
    (names.printable)."""
    return _TERMINAL_CONTROL.sub(lambda m: escape(m[0]), text)


def escaped_controls(text: str) -> str:
    """A line for a terminal, a log, a page or a paper (REASON.txt, NAME.errors.txt) with
    every control character as \\xNN, each undecodable byte as \\udcNN, the line and paragraph
    separators and every invisible format character (a bidirectional control, a
    zero-width space …) as \\uNNNN (\\UNNNNNNNN beyond U+FFFF): what the share, an
    invoice (its ids) or a receiver (its answer) put into it can neither break the line,
    nor send escape sequences to the terminal that shows it, nor show a name's letters
    in another order than they are, nor make two ids look the same ("INV-1" and "INV-1"
    + U+200B); only a joiner inside an emoji and a flag's tags are kept (_shown). For
    people only: the journal and `status --json` keep the format characters other than
    the bidirectional controls as they are (names.printable)."""
    shown = controls_escaped(text)
    return shown if shown.isascii() else format_characters_shown(shown)


def for_terminal(text: str) -> str:
    """A command's message of one or more lines, each as escaped_controls makes it: the
    names and invoice ids in it come from the share and from invoices."""
    return "\n".join(escaped_controls(line) for line in text.split("\n"))


def _json_code(char: str) -> str:
    code = ord(char)
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    code -= 0x10000  # beyond U+FFFF, JSON writes the UTF-16 pair
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def json_escaped(text: str) -> str:
    """A JSON value as json.dumps(…, ensure_ascii=False) wrote it, with the characters
    escaped_controls shows as codes written as JSON's own \\uNNNN instead: for scripts
    (`outboxd status --json`) each value stays exactly the name or id it is, and the JSON
    text, on a terminal or through a reader that splits lines at U+2028, can neither
    drive the terminal nor break a line nor hide a character. Not for a whole document:
    its own line breaks are no part of a value."""
    if text.isascii() and text.isprintable():
        return text
    text = _TERMINAL_CONTROL.sub(lambda m: _json_code(m[0]), text)
    return text if text.isascii() else _format_characters()[1].sub(
        lambda m: _json_code(m[0]), text)

