"""Whether a file holds anything at all (`empty-file`), for invoice files (invoices.py)
and attachments (sniff.py, textkind.py, attachment_rules.py, `attach`) alike, and how its
error says so."""

from __future__ import annotations

import codecs
import re

# A file with bytes but nothing in them is empty to the person who opens it: an export of
# no rows (a blank line, a byte-order mark), or a copy that reserved the file's size and
# never filled it (zero bytes). Told as empty, not as text without a delimiter or a file
# of unknown type.
BLANK = "blank lines and spaces, no text"
ZEROS = "all zero, as a copy that did not finish leaves a file"
BLANK_BYTES = b" \t\r\n\f\v\x1a"  # \x1a: DOS end-of-file in old exports


def what_is_empty(size: int, empty_of: str) -> str:
    """"5 bytes: blank lines and spaces, no text", for the error of an empty file."""
    return f"{size:,} byte{'s' * (size != 1)}: {empty_of}"


# Searched, not stripped or translated: each search stops at the first byte with
# something in it, the first of nearly every file, where those would scan (and copy) the
# whole of a 5 MB invoice at every read.
_NOT_ZERO = re.compile(rb"[^\0]")
_NOT_BLANK = re.compile(b"[^" + re.escape(BLANK_BYTES) + b"]")
_ONE_BLANK = b"[" + re.escape(BLANK_BYTES) + b"]"
_BLANK_UTF16 = {codecs.BOM_UTF16_LE: re.compile(b"(?:" + _ONE_BLANK + b"\0)*"),
                codecs.BOM_UTF16_BE: re.compile(b"(?:\0" + _ONE_BLANK + b")*")}


def nothing_in(data: bytes) -> str:
    """BLANK or ZEROS when the whole content `data` holds nothing (blanks after a UTF-8 or
    UTF-16 byte-order mark, or without one; or zero bytes only), else ""."""
    if data and _NOT_ZERO.search(data) is None:
        return ZEROS
    if (blank_utf16 := _BLANK_UTF16.get(data[:2])) is not None:
        # An empty sheet saved as Excel's "Unicode Text".
        return BLANK if blank_utf16.fullmatch(data, 2) else ""
    if _NOT_BLANK.search(data, 3 if data.startswith(codecs.BOM_UTF8) else 0) is None:
        return BLANK
    return ""
