"""How many entries a TIFF's page directories hold, from its headers alone, before Pillow
reads them (probe.py).

Pillow reads every entry of a page's directory (IFD) as it seeks to that page, twice,
and a directory may list 65,535 entries (a BigTIFF's, as many as the file holds). Nothing
stops directories from overlapping: a TIFF of a few hundred KB can chain 1,000 pages
(probe.MAX_TIFF_PAGES) whose directories read the same bytes, 65,535 entries each, some
65 million entries and a minute of CPU for Pillow, where a real page has 10 to 30. The
chain itself is a count and an offset per page: walking it costs two small reads a page.
"""

from __future__ import annotations

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
    size = fh.seek(0, 2)
    fh.seek(0)
    head = fh.read(16)
    orders: dict[bytes, Literal["little", "big"]] = {b"II": "little", b"MM": "big"}
    order = orders.get(head[:2])
    if order is None or len(head) < 8:
        return 0
    version = int.from_bytes(head[2:4], order)
    if version not in (42, 43):
        return 0
    count_size, entry_size, offset_size = _CLASSIC if version == 42 else _BIG
    first = head[4:8] if version == 42 else head[8:16]
    if len(first) < offset_size:
        return 0
    offset = int.from_bytes(first, order)
    seen: set[int] = set()
    total = 0
    while offset and offset not in seen and len(seen) <= max_pages:
        seen.add(offset)
        fh.seek(offset)
        raw = fh.read(count_size)
        if len(raw) < count_size:
            break
        entries = min(int.from_bytes(raw, order),
                      (size - offset - count_size) // entry_size)
        total += entries
        fh.seek(offset + count_size + entries * entry_size)
        raw = fh.read(offset_size)
        if len(raw) < offset_size:
            break
        offset = int.from_bytes(raw, order)
    return total
