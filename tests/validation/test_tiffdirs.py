"""A TIFF's page directories counted from its headers before Pillow reads them."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image
from validating import Outbox, image_bytes, only, tiff_pages

from daemon.validation.imageprobe import probe_image
from daemon.validation.tiffdirs import MAX_TIFF_ENTRIES, directory_entries

# A page Pillow can set up (4 × 4 grey, one strip at the file's start): width, height,
# bits, compression, photometric, strip offset, samples, rows per strip, strip size.
_PAGE_TAGS = ((256, 4), (257, 4), (258, 8), (259, 1), (262, 1), (273, 0), (277, 1),
              (278, 4), (279, 16))


def overlapping_directories(entries: int, pages: int) -> bytes:
    """A classic TIFF of `pages` page directories of `entries` entries each, laid 12 bytes
    apart so that all read one grid of entries (directory j's entry m is directory
    j+m's first): some 12 × (entries + pages) bytes for entries × pages entries. Each
    entry's last two bytes are the next directory's count; after the grid, one entry per
    directory holds the next directory's offset where that directory's entries end."""
    cells = [struct.pack("<HHIHH", tag, 3, 1, value, entries)
             for tag, value in (_PAGE_TAGS[k % len(_PAGE_TAGS)] for k in range(entries))]
    for j in range(pages):
        following = 8 + 12 * (j + 1) if j < pages - 1 else 0
        cells.append(struct.pack("<IIHH", following, 0, 0, entries))
    return b"II*\x00" + struct.pack("<IH", 8, entries) + b"".join(cells) + b"\x80" * 16


def test_a_tiff_whose_directories_list_more_entries_than_pages_hold_is_unreadable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """60 overlapping page directories of 2,000 entries each (120,000, past
    MAX_TIFF_ENTRIES; 1,000 pages of 65,535 would take Pillow a minute) are refused as
    image-unreadable, naming the entries and the fix, before Pillow reads any of them."""
    data = overlapping_directories(2000, 60)
    assert len(data) < 30_000

    def not_opened(*_: object, **__: object) -> None:
        raise AssertionError("Pillow read the directories of a hostile TIFF")
    monkeypatch.setattr(Image, "open", not_opened)
    bundle = Outbox(tmp_path).validate("scan.tif", data, channel="external-print")
    message = only(bundle, "image-unreadable").message
    assert "120,000 entries" in message and "save or export the image again" in message


def test_a_tiff_whose_directories_list_exactly_the_limit_is_read() -> None:
    """MAX_TIFF_ENTRIES is the most a TIFF's directories may list, that many included:
    50 pages of 2,000 entries are read (50 pages, no error)."""
    data = overlapping_directories(2000, 50)
    assert directory_entries(io.BytesIO(data), 1000) == MAX_TIFF_ENTRIES
    facts = probe_image(io.BytesIO(data), "tiff", 89_478_485)
    assert (facts.error, len(facts.frames)) == (None, 50)


def test_pillow_reads_the_overlapping_directories_as_pages() -> None:
    """The reproducer above is what it says: Pillow sets up each of its directories as a
    page (so without the count it would read all of their entries)."""
    with Image.open(io.BytesIO(overlapping_directories(20, 5))) as im:
        assert im.size == (4, 4) and getattr(im, "n_frames", 1) == 5


def test_a_real_multi_page_tiff_is_counted_as_pillow_reads_it() -> None:
    """Three pages of Pillow's: the sum of each page's entries, far under the limit."""
    data = tiff_pages((300, 300), (300, 300), None)
    with Image.open(io.BytesIO(data)) as im:
        expected = 0
        for page in range(3):
            im.seek(page)
            expected += len(im.tag_v2)  # type: ignore[attr-defined]
    assert directory_entries(io.BytesIO(data), 1000) == expected < MAX_TIFF_ENTRIES


def test_a_bigtiff_is_counted_too() -> None:
    """A BigTIFF (8-byte counts and offsets) is walked as Pillow reads it."""
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "TIFF", big_tiff=True)
    with Image.open(io.BytesIO(buf.getvalue())) as im:
        expected = len(im.tag_v2)  # type: ignore[attr-defined]
    assert directory_entries(io.BytesIO(buf.getvalue()), 1000) == expected > 0


def test_the_walk_ends_at_a_loop_the_page_limit_and_the_file_end() -> None:
    """A directory pointing back to the first is read once; past max_pages + 1
    directories nothing more is counted; a count larger than the file holds counts what
    it holds, as Pillow's read stops at the end of the file."""
    looped = bytearray(overlapping_directories(9, 3))
    last_pointer = 8 + 2 + 12 * (9 + 2)  # the third directory's next offset
    looped[last_pointer:last_pointer + 4] = struct.pack("<I", 8)
    assert directory_entries(io.BytesIO(bytes(looped)), 1000) == 27
    assert directory_entries(io.BytesIO(overlapping_directories(9, 50)), 3) == 4 * 9
    lying = b"II*\x00" + struct.pack("<IH", 8, 65535) + b"\0" * 120
    assert directory_entries(io.BytesIO(lying), 1000) == 10


@pytest.mark.parametrize("data", [b"", b"II*\x00", b"MM\x00*\xff\xff\xff\xff",
                                  image_bytes("PNG"), b"II\x2b\x00\x08\x00"])
def test_a_header_that_is_no_tiffs_counts_nothing(data: bytes) -> None:
    """Too short, an offset beyond the file, not a TIFF: 0, and Pillow says what it is."""
    assert directory_entries(io.BytesIO(data), 1000) == 0



def test_a_compression_written_as_a_long_is_named_as_one_written_as_a_short(
        tmp_path: Path) -> None:
    """The Compression tag is a SHORT, but a writer may store it as a LONG (TIFF readers
    take either): JPEG 2000 so written is named as such, with the fix, not "Pillow does
    not recognise it"."""
    data = bytearray(tiff_pages((300.0, 300.0)))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for n in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * n
        if struct.unpack_from("<H", data, entry)[0] == 259:
            struct.pack_into("<HHII", data, entry, 259, 4, 1, 34712)
    bundle = Outbox(tmp_path).validate("scan.tif", bytes(data), channel="external-print")
    assert only(bundle, "image-unreadable").message.startswith(
        "is not a readable TIFF image (it is compressed as JPEG 2000, which outboxd cannot "
        "read)")
