"""What text a file holds, by its content (docs/folder-convention.md): UTF-8 or
Windows-1252 (with a warning), or UTF-16 after its byte-order mark; CSV by a delimiter its
lines share, one column, plain text, XML, an invoice or a web page by their start; blank.

sniff.py hands over a file no magic bytes named, with the head it read; the UTF-8 check
and the blank check go on past the head, but only up to TEXT_SCAN_BYTES.
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
from dataclasses import replace
from typing import BinaryIO

from daemon.validation.emptiness import BLANK, BLANK_BYTES, nothing_in
from daemon.validation.filetypes import HEAD_BYTES, FileType, file_type

# Text is checked for valid UTF-8 beyond the head (a Windows-1252 "ö" on line
# 5000 matters), but only up to this much: sniffing must stay cheap even on a
# huge file that the size rule will reject anyway.
TEXT_SCAN_BYTES = 8 * 1024 * 1024
CSV_SAMPLE_ROWS = 50
CSV_DELIMITERS = (",", ";", "\t")

_ALLOWED_CONTROLS = frozenset("\t\n\r\f\x1a")  # \x1a: DOS end-of-file in old exports


def text_kind(fh: BinaryIO, head: bytes, deep: bool = True) -> FileType:
    """What text the open file whose first bytes are `head` holds: "unknown" when it is no
    text. Reads past the head only when `deep`, as `sniff` does."""
    if _is_utf16_text(head):
        whole = len(head) < HEAD_BYTES
        return file_type("empty", empty_of=BLANK) if whole and nothing_in(head) else \
            file_type("utf16")
    truncated = len(head) == HEAD_BYTES
    decoded = _decode(fh, head, truncated)
    if decoded is None:
        return file_type("unknown")
    text, encoding = decoded
    if not text.replace("\x1a", "").strip() and rest_only(fh, head, BLANK_BYTES, deep):
        return file_type("empty", empty_of=BLANK)
    if any(ch < " " and ch not in _ALLOWED_CONTROLS for ch in text):
        return file_type("unknown")  # NULs and friends: binary data that happens to decode
    if truncated:
        # Drop the line the head cut in two; a line may end in "\r" alone (old Mac CSV).
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[:cut] if cut > 0 else text
    kind = "xml" if text.lstrip().startswith("<?xml") else (
        "csv" if _is_csv(text) else "text")
    warning = None
    if encoding == "cp1252" and kind in ("csv", "text"):
        warning = "is in Windows-1252, not UTF-8"
    found = file_type(kind, warning, kind == "text" and _one_column(text))
    if kind in ("xml", "text") and text.lstrip().startswith("<") \
            and any(ns in text for ns in _INVOICE_NAMESPACES):
        # Named for what it is: an invoice put into a sidecar by mistake, whose fix is to
        # move it out as an invoice file, not "export it as PDF" (attachment_rules.py).
        return replace(found, label=INVOICE_LABEL)
    if kind == "text" and text.lstrip()[:15].lower().startswith(_HTML_STARTS):
        # Still text to the rules; only named for what the clerk would see: a portal's
        # page saved under .pdf (a login or an error page) is no "plain text file".
        return replace(found, label=HTML_LABEL)
    return found


# The namespaces of the invoice documents outboxd reads as invoice files (docs/
# folder-convention.md, section 2): UBL Invoice and CreditNote, and Svefaktura.
_INVOICE_NAMESPACES = ("urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
                       "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2",
                       "urn:sfti:documents:BasicInvoice:1:0")
INVOICE_LABEL = "invoice in XML (UBL or Svefaktura), the kind of file outboxd sends as an " \
    "invoice file"

# How a web page starts (a browser's "save as" and portals' error pages alike).
_HTML_STARTS = ("<!doctype html", "<html")
HTML_LABEL = "web page (HTML), as a browser saves it"


def rest_only(fh: BinaryIO, head: bytes, allowed: bytes, deep: bool) -> bool:
    """The file past `head` holds only bytes of `allowed` (true when the head is all of
    it). Read only when `deep`, and up to TEXT_SCAN_BYTES: false when not known."""
    if len(head) < HEAD_BYTES:
        return True
    if not deep:
        return False
    fh.seek(HEAD_BYTES)
    remaining = TEXT_SCAN_BYTES - HEAD_BYTES
    while remaining > 0:
        chunk = fh.read(min(HEAD_BYTES, remaining))
        if not chunk:
            return True
        if chunk.translate(None, allowed):
            return False
        remaining -= len(chunk)
    return False


def _is_utf16_text(head: bytes) -> bool:
    """Text in UTF-16 after its byte-order mark, as Excel's "Unicode Text" saves it."""
    if not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return False
    sample = head[:len(head) & ~1]  # whole code units; the head may end inside one
    try:
        text = sample.decode("utf-16", "strict")
    except UnicodeDecodeError:
        # The head may also end between the two halves of a surrogate pair.
        try:
            text = sample[:-2].decode("utf-16", "strict")
        except UnicodeDecodeError:
            return False
    return not any(ch < " " and ch not in _ALLOWED_CONTROLS for ch in text)


def _decode(fh: BinaryIO, head: bytes, truncated: bool) -> tuple[str, str] | None:
    """(text of the head, "utf-8" | "cp1252"), or None if it is not text in either."""
    start = 3 if head.startswith(codecs.BOM_UTF8) else 0
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        text = decoder.decode(head[start:], final=not truncated)
        if truncated:
            _utf8_rest_ok(fh, decoder)
        return text, "utf-8"
    except UnicodeDecodeError:
        pass
    if start:  # a UTF-8 BOM followed by invalid UTF-8 is damaged, not Windows-1252
        return None
    try:
        # Python's cp1252 refuses the five undefined bytes (0x81, 0x8D, ...),
        # which rules out most binary data.
        return head.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return None


def _utf8_rest_ok(fh: BinaryIO, decoder: codecs.IncrementalDecoder) -> None:
    """Continue the UTF-8 check past the head (bounded); raises UnicodeDecodeError."""
    fh.seek(HEAD_BYTES)
    remaining = TEXT_SCAN_BYTES - HEAD_BYTES
    while remaining > 0:
        chunk = fh.read(min(HEAD_BYTES, remaining))
        if not chunk:
            decoder.decode(b"", final=True)
            return
        decoder.decode(chunk)
        remaining -= len(chunk)


def _is_csv(text: str) -> bool:
    """Every non-empty line of a sample holds one and the same delimiter.

    The field counts may differ: a time sheet's totals row, or an export that
    drops trailing empty fields, is still CSV to the person who made it."""
    for delimiter in CSV_DELIMITERS:
        rows = 0
        try:
            # The csv module, not str.split: quoted fields may hold the delimiter.
            # newline="": lines end at "\r" alone too, as Excel for Mac's "CSV
            # (Macintosh)" writes them.
            for row in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
                if not row or all(not cell.strip() for cell in row):
                    continue
                if len(row) < 2:
                    rows = 0  # a line without this delimiter: not CSV by it
                    break
                rows += 1
                if rows >= CSV_SAMPLE_ROWS:
                    break
        except csv.Error:
            continue
        if rows:
            return True
    return False


def _one_column(text: str) -> bool:
    """No line of a sample holds a second field by any delimiter (quoted ones are data):
    what Excel writes for a sheet of one column. It has no delimiter to share, so
    only the name .csv tells it from any other text."""
    for delimiter in CSV_DELIMITERS:
        try:
            rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
            if any(len(row) > 1 for row in itertools.islice(rows, CSV_SAMPLE_ROWS)):
                return False
        except csv.Error:
            return False
    return bool(text.strip())
