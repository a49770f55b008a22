"""The kinds of content a file can be (docs/folder-convention.md): each kind's MIME type
and its name for people, the families the rules treat alike, and the kind a file's
extension promises. What a file *is* is told by sniff.py (magic bytes, containers) and
textkind.py (text); validation compares it with what its name promises."""

from __future__ import annotations

from dataclasses import dataclass

HEAD_BYTES = 64 * 1024  # enough for every magic, the ODF mimetype and a CSV sample

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
