"""Where the look for damaged Flate (daemon/reading/pdfdamage.py) draws its lines: what
a writer leaves that pypdf reads whole is read, and what pypdf reads nothing of, or
other text than was written, is a page not read (pdf-text-unreadable) — each case
beside pages of INV-1 and INV-2 whose checksums are right, as most writers' are."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest

from reading.test_pdfdamage import INVOICES, ids, pages_of, pdf_pages, stored, stream, unreadable

CHECKSUM = zlib.adler32(INVOICES[2]).to_bytes(4, "big")


def third(packed: bytes) -> bytes:
    """A page file of INV-1, INV-2 and page 3 of the Flate data `packed`."""
    return pdf_pages(pages_of(*INVOICES[:2]) + [stream(packed)])


def test_an_empty_compressed_content_is_a_blank_page_read(tmp_path: Path) -> None:
    """A page whose Flate content is empty (/Length 0): a blank page, which pypdf reads
    as one, loses nothing — not "does not begin as Flate data does"."""
    assert ids(third(b""), tmp_path) == ("INV-1", "INV-2")


HEADERS = {
    # (0x79 << 8 | 0x18) % 31 == 0: its check holds, but method 9 is none zlib knows.
    "method-not-deflate": b"\x79\x18",
    "check-wrong": b"\x78\x00",
    "none": b"",
}


@pytest.mark.parametrize("header", HEADERS.values(), ids=HEADERS.keys())
def test_flate_data_without_zlibs_header_is_a_page_not_read(tmp_path: Path, header: bytes
                                                             ) -> None:
    """The deflate data of INV-3 whole, behind two bytes that are no zlib header (or
    none): zlib refuses it from its start and pypdf's recovery reads no text of it."""
    packed = header + zlib.compress(INVOICES[2])[2:]
    assert "the text of page 3 could not be read (its compressed content does not begin " \
        "as Flate data does)" in unreadable(third(packed), tmp_path)


def test_blanks_counted_after_data_flushed_but_never_finished_are_read(tmp_path: Path
                                                                      ) -> None:
    """Any of PDF's blanks after the empty block a flush ends with (here a space, then
    ends of line: to zlib the start of a stored block whose lengths disagree): pypdf
    cuts them off and reads the text whole."""
    packer = zlib.compressobj()
    packed = packer.compress(INVOICES[2]) + packer.flush(zlib.Z_SYNC_FLUSH) + b" \r\n\r\n"
    assert ids(third(packed), tmp_path) == ("INV-1", "INV-2", "INV-3")


def test_a_checksum_a_few_stray_bytes_after_the_data_is_right(tmp_path: Path) -> None:
    """Six stray blanks before the checksum (a writer's ends of line counted in /Length):
    the checksum is found and right, beside the right ones of pages 1 and 2."""
    packed = stored(INVOICES[2], checksum=b"\r\n\r\n\r\n" + CHECKSUM)
    assert ids(third(packed), tmp_path) == ("INV-1", "INV-2", "INV-3")


def test_a_checksum_right_in_its_first_two_bytes_alone_is_wrong(tmp_path: Path) -> None:
    """Three bytes of a checksum are what proves it (a checksum may be cut short of its
    last byte): one whose third byte differs is a changed byte, beside right ones."""
    packed = stored(INVOICES[2], checksum=CHECKSUM[:2] + bytes([CHECKSUM[2] ^ 0x01])
                    + CHECKSUM[3:])
    assert "the text of page 3 could not be read (its compressed content does not match " \
        "its checksum)" in unreadable(third(packed), tmp_path)
