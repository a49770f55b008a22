"""Flate behind an ASCII filter (daemon/reading/pdfdamage.py): ReportLab writes every page's
content as `/Filter [/ASCII85Decode /FlateDecode]` by default (rl_config.useA85), and
older writers ASCIIHex before Flate. Only a first filter of Flate was unpacked again, so
such a page of INV-3 whose Flate was cut short, or changed by a byte, went out unsaid
as INV-1, INV-2. The Flate behind the ASCII layer is checked as any other."""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import write

from reading.test_invoices import read
from reading.test_pdfdamage import INVOICES, changed_byte, pdf_pages, stored, unreadable


def a85(packed: bytes) -> tuple[bytes, bytes]:
    return b"/ASCII85Decode", base64.a85encode(packed, adobe=True)[2:]  # no "<~"


def ahx(packed: bytes) -> tuple[bytes, bytes]:
    return b"/ASCIIHexDecode", binascii.hexlify(packed) + b">"


ASCII = {"ascii85": a85, "ascii-hex": ahx}


def pages(ascii: Callable[[bytes], tuple[bytes, bytes]], last: bytes) -> bytes:
    """INV-1, INV-2 and a page of the Flate data `last`, each behind `ascii`."""
    objects = []
    for packed in [zlib.compress(INVOICES[0]), zlib.compress(INVOICES[1]), last]:
        name, data = ascii(packed)
        objects.append(b"<< /Length %d /Filter [%s /FlateDecode] >>\nstream\n"
                       % (len(data), name) + data + b"\nendstream")
    return pdf_pages(objects)


@pytest.mark.parametrize("ascii", ASCII.values(), ids=ASCII.keys())
def test_flate_behind_an_ascii_filter_is_read(tmp_path: Path,
                                             ascii: Callable[[bytes], tuple[bytes, bytes]]
                                             ) -> None:
    found = read(write(tmp_path / "print.pdf", pages(ascii, zlib.compress(INVOICES[2]))))
    assert (found.invoice_ids, found.warnings) == (("INV-1", "INV-2", "INV-3"), ())


@pytest.mark.parametrize("ascii", ASCII.values(), ids=ASCII.keys())
def test_flate_cut_short_behind_an_ascii_filter_is_a_page_not_read(
        tmp_path: Path, ascii: Callable[[bytes], tuple[bytes, bytes]]) -> None:
    data = pages(ascii, stored(INVOICES[2])[:30])
    assert "the text of page 3 could not be read (its compressed content is cut short)" \
        in unreadable(data, tmp_path)


def test_a_changed_byte_behind_ascii85_is_a_page_not_read(tmp_path: Path) -> None:
    data = pages(a85, changed_byte(INVOICES[2]))
    assert "the text of page 3 could not be read (its compressed content does not match " \
        "its checksum)" in unreadable(data, tmp_path)


def test_a_stream_with_an_empty_list_of_filters_is_read(tmp_path: Path) -> None:
    """`/Filter []` is a stream without filters, its bytes as they are, which pypdf reads
    as such: the look for Flate asked for the first of no filters, and page 3 of such a
    file was a page not read (list index out of range), the file of three invoices
    refused."""
    objects = [zlib.compress(INVOICES[0]), zlib.compress(INVOICES[1]), INVOICES[2]]
    filters = [b"/FlateDecode", b"/FlateDecode", b"[]"]
    data = pdf_pages([b"<< /Length %d /Filter %s >>\nstream\n" % (len(packed), name) + packed
                      + b"\nendstream" for packed, name in zip(objects, filters, strict=True)])
    found = read(write(tmp_path / "print.pdf", data))
    assert (found.invoice_ids, found.warnings) == (("INV-1", "INV-2", "INV-3"), ())
