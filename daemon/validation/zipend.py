"""Whether a ZIP-based file (XLSX, DOCX, ODS …) is whole, by its tail alone.

A ZIP is written front to back and closed by its central directory (the list of its
entries) and the end-of-central-directory record (EOCD) after it, at the very end of
the file. A copy that stalled mid-file has written neither yet, while its first bytes
already say "ZIP", even "ODS". So a ZIP is whole only when an EOCD sits where the ZIP
format puts it — in the last 22 bytes plus at most a 65,535-byte comment — and the
directory it points to lies within the file before it. Only that tail is read (64 KiB
and a few dozen bytes, a ZIP64 end record and the directory's first 4 bytes among
them): never the entries, never the whole file, so the cost per file stays negligible.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

_EOCD = b"PK\x05\x06"
_EOCD_SIZE = 22
_MAX_COMMENT = 0xFFFF
_ZIP64_LOCATOR = b"PK\x06\x07"
_ZIP64_LOCATOR_SIZE = 20
_ZIP64_EOCD = b"PK\x06\x06"
_ZIP64_EOCD_SIZE = 56
_CENTRAL_ENTRY = b"PK\x01\x02"


def zip_is_whole(fh: BinaryIO) -> bool:
    """True when the open, seekable ZIP `fh` ends with its end record and its central
    directory fits before it; False for one cut short (or sized first and filled up to
    somewhere). The position is left anywhere: the caller seeks."""
    size = fh.seek(0, 2)
    start = max(0, size - _EOCD_SIZE - _MAX_COMMENT)
    fh.seek(start)
    tail = fh.read(size - start)
    # The last signature, as zipfile takes it: a comment should not hold one.
    at = tail.rfind(_EOCD)
    record = tail[at:at + _EOCD_SIZE] if at >= 0 else b""
    if len(record) != _EOCD_SIZE:
        return False
    entries, cd_size, cd_offset, comment = struct.unpack("<10xHIIH", record)
    return at + _EOCD_SIZE + comment <= len(tail) and _directory_fits(
        fh, start + at, entries, cd_size, cd_offset)


def _directory_fits(fh: BinaryIO, eocd_at: int, entries: int, cd_size: int,
                    cd_offset: int) -> bool:
    """The central directory the EOCD at `eocd_at` describes lies within the file before
    it (before ZIP64's records, where a ZIP64 locator precedes the EOCD, as zipfile
    reads it) and begins as one does."""
    end = eocd_at
    if _has_zip64_locator(fh, eocd_at):
        found = _zip64_directory(fh, eocd_at)
        if found is None:
            return False
        entries, cd_size, cd_offset, end = found
    if cd_size > end or cd_offset > end - cd_size:
        return False  # a directory longer than the file holds before its end record
    if entries == 0 and cd_size == 0:
        return True  # an empty archive: nothing to point at
    # Bytes before the archive (a self-extractor's stub) shift every offset alike, so the
    # directory is the cd_size bytes right before its end record, as zipfile reads it.
    fh.seek(end - cd_size)
    return fh.read(4) == _CENTRAL_ENTRY


def _has_zip64_locator(fh: BinaryIO, eocd_at: int) -> bool:
    if eocd_at < _ZIP64_LOCATOR_SIZE:
        return False
    fh.seek(eocd_at - _ZIP64_LOCATOR_SIZE)
    return fh.read(4) == _ZIP64_LOCATOR


def _zip64_directory(fh: BinaryIO, eocd_at: int) -> tuple[int, int, int, int] | None:
    """(entries, directory size, directory offset, where the ZIP64 end record starts)
    from the ZIP64 end record before the locator before the EOCD, or None when it is
    not there whole."""
    # Like the directory, the ZIP64 end record lies right before its locator.
    record_at = eocd_at - _ZIP64_LOCATOR_SIZE - _ZIP64_EOCD_SIZE
    if record_at < 0:
        return None
    fh.seek(record_at)
    record = fh.read(_ZIP64_EOCD_SIZE)
    if not record.startswith(_ZIP64_EOCD):
        return None
    entries, cd_size, cd_offset = struct.unpack("<32xQQQ", record)
    return entries, cd_size, cd_offset, record_at
