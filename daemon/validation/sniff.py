"""What a file is, by its content (docs/folder-convention.md): magic bytes, never the extension.

People rename files ("scan.pdf" that is really a TIFF, an .exe called
"invoice.pdf"), so the extension only tells us what the sender *meant*;
validation compares the two. Everything here reads a bounded head of an
already-open file — the caller opened it with ``fsops.open_below`` — and
for ZIP containers only their tail (zipend.py) and central directory (names,
never contents).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import zipfile
from dataclasses import dataclass, replace
from typing import BinaryIO

from daemon.validation.emptiness import BLANK, BLANK_BYTES, ZEROS, nothing_in
from daemon.validation.zipend import zip_is_whole

HEAD_BYTES = 64 * 1024  # enough for every magic, the ODF mimetype and a CSV sample
# Text is checked for valid UTF-8 beyond the head (a Windows-1252 "ö" on line
# 5000 matters), but only up to this much: sniffing must stay cheap even on a
# huge file that the size rule will reject anyway.
TEXT_SCAN_BYTES = 8 * 1024 * 1024
CSV_SAMPLE_ROWS = 50
CSV_DELIMITERS = (",", ";", "\t")

ODS_MIME = "application/vnd.oasis.opendocument.spreadsheet"


@dataclass(frozen=True)
class FileType:
    kind: str  # a key of _TYPES
    mime: str
    label: str  # for people: "PDF", "TIFF image", "Windows executable", ...
    warning: str | None = None  # e.g. CSV in Windows-1252
    # Text of one field per line: a one-column table once its name says .csv (validate.py).
    one_column: bool = False
    # An "empty" file that has bytes: what they are (BLANK or ZEROS), for its error.
    empty_of: str = ""
    # A ZIP (an XLSX, ODS …) without its end: what a copy that stopped part-way leaves.
    ends_early: bool = False


_TYPES: dict[str, tuple[str, str]] = {
    "pdf": ("application/pdf", "PDF"),
    "tiff": ("image/tiff", "TIFF image"),
    "png": ("image/png", "PNG image"),
    "jpeg": ("image/jpeg", "JPEG image"),
    "gif": ("image/gif", "GIF image"),
    "bmp": ("image/bmp", "BMP image"),
    "webp": ("image/webp", "WebP image"),
    "csv": ("text/csv", "CSV file"),
    "text": ("text/plain", "plain text file"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
             "Excel workbook (XLSX)"),
    "ods": (ODS_MIME, "OpenDocument spreadsheet (ODS)"),
    "docx": ("application/vnd.openxmlformats-officedocument.wordprocessingml.document",
             "Word document (DOCX)"),
    # Office Open XML that is no XLSX or DOCX: Excel and Word refuse them under those
    # names, and macros are not for a customer. Never taken, named for what they are.
    "xlsm": ("application/vnd.ms-excel.sheet.macroEnabled.12",
             "Excel workbook with macros (XLSM)"),
    "xlsb": ("application/vnd.ms-excel.sheet.binary.macroEnabled.12",
             "Excel binary workbook (XLSB)"),
    "docm": ("application/vnd.ms-word.document.macroEnabled.12",
             "Word document with macros (DOCM)"),
    "zip": ("application/zip", "ZIP archive"),
    "exe": ("application/vnd.microsoft.portable-executable", "Windows executable"),
    "elf": ("application/x-executable", "Linux executable"),
    "xml": ("application/xml", "XML document"),
    # Never taken, but common on a clerk's desk: named for what they are, so that the
    # error says how to make a file that is taken, instead of "of unknown type".
    "heic": ("image/heic", "HEIC image (as iPhones save photos)"),
    "ole": ("application/x-ole-storage",
            "Office 97–2003 file (an old .xls, .doc or .ppt, or an Outlook .msg)"),
    "utf16": ("text/plain", "text file in UTF-16 (Excel's \"Unicode Text\")"),
    # A clerk who drags with Alt (Windows) or makes an alias (Mac) drops a pointer to the
    # file, which is worth nothing to a receiver: the error must say so, not "unknown".
    "shortcut": ("application/octet-stream", "shortcut (a link to a file elsewhere)"),
    "unknown": ("application/octet-stream", "file of unknown type"),
    "empty": ("application/octet-stream", "empty file"),
}
IMAGE_KINDS = frozenset({"tiff", "png", "jpeg", "gif", "bmp", "webp"})
# .csv and .txt both promise "some text"; either content kind keeps that promise.
TEXT_KINDS = frozenset({"csv", "text", "xml", "utf16"})


def file_type(kind: str, warning: str | None = None, one_column: bool = False,
              empty_of: str = "", ends_early: bool = False) -> FileType:
    mime, label = _TYPES[kind]
    return FileType(kind, mime, label, warning, one_column, empty_of, ends_early)


_EXTENSIONS: dict[str, str] = {
    "pdf": "pdf", "tif": "tiff", "tiff": "tiff", "png": "png",
    "jpg": "jpeg", "jpeg": "jpeg", "jpe": "jpeg", "gif": "gif", "bmp": "bmp",
    "webp": "webp", "csv": "csv", "txt": "text", "xlsx": "xlsx", "ods": "ods",
    "docx": "docx",
}


def kind_for_extension(name: str) -> str | None:
    """The kind a file name promises (the types table of docs/folder-convention.md), or
    None for unknown/missing.

    ``.csv`` gives "csv" and ``.txt`` gives "text"; validation treats the two
    (and XML) as one family, since either extension agrees with CSV or plain-text
    content.
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    _, dot, ext = base.rpartition(".")
    if not dot:
        return None
    return _EXTENSIONS.get(ext.lower())


ZIP_KINDS = frozenset({"xlsx", "ods", "docx"})


def sniff(fh: BinaryIO, deep: bool = True) -> FileType:
    """The content type of an open, seekable binary file; leaves the position at 0.

    `deep=False`: magic bytes only, a ZIP's central directory is not read (a file that
    is refused for its size anyway could hold millions of entries), so any ZIP is "zip"."""
    fh.seek(0)
    head = fh.read(HEAD_BYTES)
    try:
        return _sniff(fh, head, deep)
    finally:
        fh.seek(0)


def _sniff(fh: BinaryIO, head: bytes, deep: bool = True) -> FileType:
    if not head:
        return file_type("empty")
    if not head.strip(b"\0") and _rest_only(fh, head, b"\0", deep):
        return file_type("empty", empty_of=ZEROS)
    kind = _binary_magic(head)
    if kind == "zip" and deep:
        # zipfile (_zip_kind) reads the end record again: a few dozen bytes just read,
        # about 2 µs of a sniff's 30, not worth a file object that serves it from here.
        if not zip_is_whole(fh):
            # Its directory is not there to say what it is: only an ODS says so in its
            # first bytes; validate.py takes it for what its extension says otherwise.
            return file_type("ods" if _ods_by_head(head) else "zip", ends_early=True)
        return file_type(_zip_kind(fh, head))
    if kind:
        return file_type(kind)
    if _is_pdf(head, kind):
        return file_type("pdf")
    if head.removeprefix(b"\xef\xbb\xbf").lstrip().startswith(_URL_SHORTCUT):
        return file_type("shortcut")
    if _is_utf16_text(head):
        whole = len(head) < HEAD_BYTES
        return file_type("empty", empty_of=BLANK) if whole and nothing_in(head) else \
            file_type("utf16")
    return _text_kind(fh, head, deep)


def is_pdf(head: bytes) -> bool:
    """PDF by its first 1024 bytes, by the rule attachments are sniffed with."""
    return _is_pdf(head, _binary_magic(head))


def _is_pdf(head: bytes, magic: str | None) -> bool:
    # Acrobat accepts a PDF header anywhere in the first 1024 bytes (printer job
    # headers, mail litter); so do we — but only after exact magics, so a PNG that
    # happens to contain "%PDF-" stays a PNG.
    return magic == "pdf" or (magic is None and b"%PDF-" in head[:1024])


_LNK = bytes.fromhex("4c0000000114020000000000c000000000000046")
_OLE2 = bytes.fromhex("d0cf11e0a1b11ae1")  # the compound file of Office 97–2003
# The major brands of HEIF images (ISO/IEC 23008-12), what an iPhone's camera writes.
_HEIF_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1",
                          b"msf1"})
# A Windows Internet or file shortcut (.url) is text that opens with this section.
_URL_SHORTCUT = b"[InternetShortcut]"


def _binary_magic(head: bytes) -> str | None:
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "gif"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):  # + = BigTIFF
        return "tiff"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x7fELF"):
        return "elf"
    if head.startswith(_OLE2):
        return "ole"
    if head[4:8] == b"ftyp" and head[8:12] in _HEIF_BRANDS:
        return "heic"
    if head.startswith(_LNK) or head.startswith(b"book\x00\x00\x00\x00mark\x00\x00\x00\x00"):
        return "shortcut"  # a Windows .lnk (header size, then its class id), a Mac alias
    # "BM" and "MZ" are two printable letters: a CSV starting "BMW;…" or
    # "MZ Ltd,…" must not become an image or a program. Both real headers
    # carry binary fields right after, so demand them.
    if head.startswith(b"BM") and len(head) >= 18 and \
            int.from_bytes(head[14:18], "little") in (12, 40, 52, 56, 64, 108, 124):
        return "bmp"
    if head.startswith(b"MZ") and b"\x00" in head[2:64]:
        return "exe"
    return None


def _zip_kind(fh: BinaryIO, head: bytes) -> str:
    """xlsx / docx / ods by the names in the central directory; else plain zip."""
    if _ods_by_head(head):
        return "ods"
    try:
        fh.seek(0)
        with zipfile.ZipFile(fh) as zf:
            infos = zf.infolist()
            names = {i.filename for i in infos}
            if "[Content_Types].xml" in names:
                if any(n.startswith("xl/") for n in names):
                    if "xl/vbaProject.bin" in names:
                        return "xlsm"
                    return "xlsb" if "xl/workbook.bin" in names else "xlsx"
                if any(n.startswith("word/") for n in names):
                    return "docm" if "word/vbaProject.bin" in names else "docx"
            mimetype = next((i for i in infos if i.filename == "mimetype"), None)
            # Reading this one tiny entry is bounded; any other entry is never read.
            if mimetype is not None and mimetype.file_size <= 256:
                if zf.read(mimetype).strip() == ODS_MIME.encode():
                    return "ods"
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError,
            NotImplementedError, RuntimeError):
        # A damaged container is still "a ZIP", which is what we report.
        pass
    return "zip"


def _ods_by_head(head: bytes) -> bool:
    # ODF puts an uncompressed "mimetype" entry first, so the type is readable
    # straight from the head (what libmagic does) without touching zipfile.
    return head[30:38] == b"mimetype" and head[38:38 + len(ODS_MIME)] == ODS_MIME.encode()


# ---------------------------------------------------------------- text / CSV

_ALLOWED_CONTROLS = frozenset("\t\n\r\f\x1a")  # \x1a: DOS end-of-file in old exports


def _text_kind(fh: BinaryIO, head: bytes, deep: bool = True) -> FileType:
    truncated = len(head) == HEAD_BYTES
    decoded = _decode(fh, head, truncated)
    if decoded is None:
        return file_type("unknown")
    text, encoding = decoded
    if not text.replace("\x1a", "").strip() and _rest_only(fh, head, BLANK_BYTES, deep):
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


def _rest_only(fh: BinaryIO, head: bytes, allowed: bytes, deep: bool) -> bool:
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
