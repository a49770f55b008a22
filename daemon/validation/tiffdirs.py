"""What a TIFF's page directories hold, from its headers alone: how many entries, before
Pillow reads them, and a compression Pillow cannot read, once it has refused the file
(imageprobe.py).

Pillow reads every entry of a page's directory (IFD) as it seeks to that page, twice,
and a directory may list 65,535 entries (a BigTIFF's, as many as the file holds). Nothing
stops directories from overlapping: a TIFF of a few hundred KB can chain 1,000 pages
(imageprobe.MAX_TIFF_PAGES) whose directories read the same bytes, 65,535 entries each, some
65 million entries and a minute of CPU for Pillow, where a real page has 10 to 30. The
chain itself is a count and an offset per page: walking it costs two small reads a page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import BinaryIO, Literal

# All pages' directories together: 1,000 pages of 100 entries, several times what a
# scanner or fax writes, and about 0.2 s for Pillow to read (twice).
MAX_TIFF_ENTRIES = 100_000

# (count size, entry size, offset size) of a classic TIFF and of a BigTIFF.
_CLASSIC = (2, 12, 4)
_BIG = (8, 20, 8)


def directory_entries(fh: BinaryIO, max_pages: int) -> int:
    """The entries the first `max_pages` + 1 page directories of the TIFF open at `fh`
    declare, each count cut to what the file holds after it, as Pillow's read stops at
    the file's end. The chain ends where Pillow's does: a next offset of 0, one already
    seen (a loop), or one with no directory in the file. 0 for a header that is no TIFF's
    (Pillow says why). The position is left anywhere: the caller seeks."""
    # The counts alone: reading the entries of 1,000 overlapping directories is what
    # this guards against.
    return sum(entries for _, _, entries, _ in _directories(fh, max_pages))


# TIFF compressions Pillow does not read (TiffImagePlugin.COMPRESSION_INFO lists those it
# does), by the names people know them by: what a scanner, a fax or an archive writes.
_COMPRESSION_NAMES = {9: "JBIG", 10: "JBIG", 33003: "JPEG 2000", 33005: "JPEG 2000",
                      34661: "JBIG", 34712: "JPEG 2000", 34715: "JBIG2",
                      34892: "lossy JPEG (DNG)", 50002: "JPEG XL"}


# How a page so compressed is said (imageprobe.py), and known again (cutshort.py): no copy at
# work leaves one.
UNREADABLE_COMPRESSION = ", which outboxd cannot read"


def unreadable_compression(fh: BinaryIO, max_pages: int) -> tuple[int, str] | None:
    """The first page (1: the first) of the TIFF open at `fh`, among its first `max_pages`
    + 1, whose Compression tag names a compression Pillow cannot read, and that
    compression in words ("JPEG 2000", "compression 34999"); None when every page's is
    one it reads, or the file is no TIFF. Pillow only says that it does not recognise
    such a file. Asked once Pillow has refused the file, and after directory_entries
    has bounded the entries read here."""
    from PIL.TiffImagePlugin import COMPRESSION_INFO
    for page, (order, entry_size, _, read) in enumerate(_directories(fh, max_pages), 1):
        value = _short_tag(read(), order, entry_size, _COMPRESSION)
        if value is not None and value not in COMPRESSION_INFO:
            return page, _COMPRESSION_NAMES.get(value, f"compression {value}")
    return None


_COMPRESSION = 259
_SHORT, _LONG = 3, 4


def _short_tag(raw: bytes, order: Literal["little", "big"], size: int, tag: int
               ) -> int | None:
    """A SHORT or LONG tag's first value in one directory's entries (`raw`, each `size`
    bytes: 12 in a classic TIFF, 20 in a BigTIFF), None if it is not there."""
    for at in range(0, len(raw) - size + 1, size):
        if int.from_bytes(raw[at:at + 2], order) != tag:
            continue
        kind = int.from_bytes(raw[at + 2:at + 4], order)
        value = raw[at + size - (8 if size == 20 else 4):]
        if kind == _SHORT:
            return int.from_bytes(value[:2], order)
        if kind == _LONG:
            return int.from_bytes(value[:4], order)
        return None
    return None


def _directories(fh: BinaryIO, max_pages: int
                 ) -> Iterator[tuple[Literal["little", "big"], int, int, Callable[[], bytes]]]:
    """Each page directory of the chain: the byte order, the size of an entry, its
    entries (their count cut to what the file holds) and how to read them, while it is
    the one yielded."""
    size = fh.seek(0, 2)
    fh.seek(0)
    head = fh.read(16)
    orders: dict[bytes, Literal["little", "big"]] = {b"II": "little", b"MM": "big"}
    order = orders.get(head[:2])
    if order is None or len(head) < 8:
        return
    version = int.from_bytes(head[2:4], order)
    if version not in (42, 43):
        return
    count_size, entry_size, offset_size = _CLASSIC if version == 42 else _BIG
    first = head[4:8] if version == 42 else head[8:16]
    if len(first) < offset_size:
        return
    offset = int.from_bytes(first, order)
    seen: set[int] = set()
    while offset and offset not in seen and len(seen) <= max_pages:
        seen.add(offset)
        fh.seek(offset)
        raw = fh.read(count_size)
        if len(raw) < count_size:
            return
        entries = min(int.from_bytes(raw, order),
                      (size - offset - count_size) // entry_size)
        start = offset + count_size

        def read(start: int = start, entries: int = entries) -> bytes:
            fh.seek(start)
            return fh.read(entries * entry_size)
        yield order, entry_size, entries, read
        fh.seek(start + entries * entry_size)
        raw = fh.read(offset_size)
        if len(raw) < offset_size:
            return
        offset = int.from_bytes(raw, order)
