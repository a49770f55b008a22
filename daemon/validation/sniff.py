"""What a file is, by its content (docs/folder-convention.md): magic bytes, never the extension.

People rename files ("scan.pdf" that is really a TIFF, an .exe called
"invoice.pdf"), so the extension only tells us what the sender *meant*;
validation compares the two. Everything here reads a bounded head of an
already-open file — the caller opened it with ``fsops.open_below`` — and
for ZIP containers only their tail (zipend.py) and central directory (names,
never contents). A file no magic names is handed to textkind.py; the kinds, their
MIME types and names for people are filetypes.py's.
"""

from __future__ import annotations

import zipfile
from typing import BinaryIO

from daemon.fs.fsops import read_again_later
from daemon.validation.emptiness import ZEROS
from daemon.validation.filetypes import HEAD_BYTES, ODS_MIME, FileType, file_type
from daemon.validation.textkind import rest_only, text_kind
from daemon.validation.zipend import zip_is_whole


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
    if not head.strip(b"\0") and rest_only(fh, head, b"\0", deep):
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
    return text_kind(fh, head, deep)


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
            NotImplementedError, RuntimeError) as exc:
        if read_again_later(exc):
            raise  # the share failed a read (a large file is read from it): not the file's
        # A damaged container is still "a ZIP", which is what we report.
    return "zip"


def _ods_by_head(head: bytes) -> bool:
    # ODF puts an uncompressed "mimetype" entry first, so the type is readable
    # straight from the head (what libmagic does) without touching zipfile.
    return head[30:38] == b"mimetype" and head[38:38 + len(ODS_MIME)] == ODS_MIME.encode()
