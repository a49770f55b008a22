"""An XLSX, DOCX or ODS cut short — what a copy that stalled longer than settle_seconds
leaves — is told from a whole one by its tail alone: the end-of-central-directory record
where the ZIP format puts it, and a central directory that fits before it
(docs/folder-convention.md, section 4; docs/codes.md, zip-unreadable)."""

from __future__ import annotations

import io
import struct
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from helpers import office_file  # noqa: E402

from daemon.validation.sniff import sniff  # noqa: E402
from daemon.validation.zipend import zip_is_whole  # noqa: E402

OFFICE = ("xlsx", "docx", "ods")


def _cuts(data: bytes) -> dict[str, bytes]:
    """Where a stalled copy may leave an office file: mid-data, inside the central
    directory, one byte short of the end, and sized first with its tail still zeros."""
    directory = data.rfind(b"PK\x01\x02")
    return {"half": data[:len(data) // 2],
            "in-the-directory": data[:directory + 10],
            "one-byte-short": data[:-1],
            "sized-first": data[:len(data) * 2 // 3] + bytes(len(data) - len(data) * 2 // 3)}


class CountingReader(io.BytesIO):
    """A BytesIO that counts the bytes read from it."""

    read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        chunk = super().read(size)
        self.read_bytes += len(chunk)
        return chunk


@pytest.mark.parametrize("kind", OFFICE)
def test_a_whole_office_file_is_whole_and_keeps_its_kind(kind: str) -> None:
    """A whole XLSX, DOCX, ODS: its end is found, and it is sniffed as before."""
    data = office_file(kind)
    assert zip_is_whole(io.BytesIO(data))
    filetype = sniff(io.BytesIO(data))
    assert (filetype.kind, filetype.ends_early) == (kind, False)


@pytest.mark.parametrize("cut", ["half", "in-the-directory", "one-byte-short", "sized-first"])
@pytest.mark.parametrize("kind", OFFICE)
def test_an_office_file_cut_short_ends_early_whatever_its_first_bytes_say(
        kind: str, cut: str) -> None:
    """Cut anywhere, an office file ends early; an ODS, whose first bytes name it, stays
    an ODS (before, a cut ODS was taken as whole), the others a ZIP archive, which
    validate.py takes for what the extension says."""
    data = _cuts(office_file(kind))[cut]
    assert not zip_is_whole(io.BytesIO(data))
    filetype = sniff(io.BytesIO(data))
    assert filetype.ends_early
    assert filetype.kind == ("ods" if kind == "ods" else "zip")


def test_a_zip_with_the_longest_comment_is_whole() -> None:
    """The end record may stand 65,535 bytes of comment before the end: still whole,
    still an XLSX."""
    data = office_file("xlsx", comment=b"x" * 0xFFFF)
    assert zip_is_whole(io.BytesIO(data))
    filetype = sniff(io.BytesIO(data))
    assert (filetype.kind, filetype.ends_early) == ("xlsx", False)


def test_a_zip_cut_inside_its_comment_ends_early() -> None:
    """A comment shorter than its record says: the file was cut in its last bytes."""
    data = office_file("xlsx", comment=b"made by the ERP")
    assert not zip_is_whole(io.BytesIO(data[:-3]))


def test_a_zip_whose_directory_does_not_fit_before_its_end_ends_early() -> None:
    """An end record whose directory would start before the file does (or run past the
    end record) is no whole ZIP."""
    data = bytearray(office_file("docx"))
    end = data.rfind(b"PK\x05\x06")
    entries, size, offset = struct.unpack_from("<HII", data, end + 10)
    longer = data.copy()
    struct.pack_into("<I", longer, end + 12, end + 1)  # longer than all before it
    assert not zip_is_whole(io.BytesIO(bytes(longer)))
    later = data.copy()
    struct.pack_into("<I", later, end + 16, offset + 1)  # would run into the end record
    assert not zip_is_whole(io.BytesIO(bytes(later)))
    moved = data.copy()
    struct.pack_into("<I", moved, end + 12, size - 4)  # does not begin as a directory
    struct.pack_into("<I", moved, end + 16, offset + 4)
    assert not zip_is_whole(io.BytesIO(bytes(moved)))
    assert zip_is_whole(io.BytesIO(bytes(data)))


def test_bytes_before_the_archive_do_not_make_it_end_early() -> None:
    """A stub before the archive (a self-extractor's) shifts its offsets; it is whole."""
    assert zip_is_whole(io.BytesIO(b"MZ stub" * 100 + office_file("xlsx")))


def test_a_zip64_end_is_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    """An archive closed by ZIP64 records (what a writer uses past 4 GiB or 65,535
    entries; here forced small) is whole; with its ZIP64 locator gone, it is not."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 16)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/workbook.xml", "<workbook/>")
    data = buf.getvalue()
    assert b"PK\x06\x06" in data and b"PK\x06\x07" in data
    assert zip_is_whole(io.BytesIO(data))
    assert sniff(io.BytesIO(data)).kind == "xlsx"
    locator = data.rfind(b"PK\x06\x07")
    without = data[:locator] + data[locator + 20:]  # the end record, its locator gone
    assert not zip_is_whole(io.BytesIO(without))


@pytest.mark.parametrize("whole", [True, False], ids=["whole", "cut"])
def test_only_the_tail_of_a_large_office_file_is_read(whole: bool) -> None:
    """Sniffing a 4 MB workbook, whole or cut, reads its head and tail (and, whole, the
    directory), never the rest: the cost per file stays the same however large."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
        zf.writestr("xl/media/image1.png", bytes(range(256)) * 16_000)
        zf.writestr("xl/workbook.xml", "<workbook/>")
    data = buf.getvalue() if whole else buf.getvalue()[:3_000_000]
    fh = CountingReader(data)
    filetype = sniff(fh)
    assert filetype.ends_early is not whole
    assert fh.read_bytes < 300_000 < len(data)


def test_an_empty_archive_is_whole() -> None:
    """A ZIP of no entries (its end record alone, 22 bytes: what a program writes for
    an empty folder zipped) is whole, not a copy cut short: nothing to point at."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w"):
        pass
    assert len(buf.getvalue()) == 22
    assert zip_is_whole(io.BytesIO(buf.getvalue()))


def test_a_zip64_locator_without_its_end_record_ends_early(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ZIP64's locator before the end record, but the ZIP64 end record it needs before
    the locator damaged, or the file too short to hold one: ends early, as zipfile
    cannot read its directory either."""
    monkeypatch.setattr(zipfile, "ZIP64_LIMIT", 16)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("[Content_Types].xml", "<Types/>")
    data = bytearray(buf.getvalue())
    record = data.rfind(b"PK\x06\x06")
    data[record:record + 4] = b"XXXX"
    assert not zip_is_whole(io.BytesIO(bytes(data)))
    locator = data[data.rfind(b"PK\x06\x07"):]
    assert not zip_is_whole(io.BytesIO(bytes(locator)))  # nothing before the locator
