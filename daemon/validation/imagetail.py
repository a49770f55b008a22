"""Whether an image file reaches as far as its own structure says, from its headers and
markers only (nothing is decoded): a file cut short (a broken copy or download, a copy
still at work) would print half an image. imageprobe.py asks these once Pillow opened it.
"""

from __future__ import annotations

import io
import operator
import re
from typing import BinaryIO

from PIL import Image, ImageFile

from daemon.fs.fsops import read_again_later


def png_verified(im: Image.Image) -> bool:
    """Pillow walks the chunks to IEND checking each one's CRC; nothing is decompressed."""
    try:
        im.verify()
    except Exception as exc:  # noqa: BLE001 — a cut or damaged chunk raises OSError, ...
        if read_again_later(exc):
            raise  # the share failed a read (a large file is read from it): not the file's
        return False
    return True


# A PNG's chunks, which Pillow reads one at a time in Python (up to its image data when
# it opens it, all of them when png_verified checks them): a 5 MB file of 416,000
# empty chunks took the probe 1.2 s and +45 MB (~15 s at 64 MB). Real PNGs hold a few
# chunks besides their image data, which encoders split into chunks of 8 KB (libpng)
# to 64 KB (Pillow): the limit is 10,000 chunks and one more per KiB of the file
# (~25 ms for a 5 MB file at it).
MAX_PNG_CHUNKS = 10_000
PNG_CHUNKS_PER_KIB = 1


def png_chunks_allowed(size: int) -> int:
    """The most chunks a PNG of `size` bytes may hold."""
    return MAX_PNG_CHUNKS + PNG_CHUNKS_PER_KIB * (size >> 10)


def png_chunks_over(fh: BinaryIO, size: int) -> bool:
    """Whether the PNG of `size` bytes open at `fh` holds more chunks than
    png_chunks_allowed — asked before Pillow opens it; each chunk's header is read, up
    to that limit (its data is skipped: a chunk's length is in its header)."""
    allowed, pos = png_chunks_allowed(size), 8  # after the signature
    for _ in range(allowed + 1):
        fh.seek(pos)
        head = fh.read(8)
        if len(head) < 8 or head[4:] == b"IEND":
            return False  # the end, or a file cut short: Pillow and png_verified decide
        pos += 12 + int.from_bytes(head[:4], "big")
    return True


def tiff_data_end(im: Image.Image) -> int:
    """Where the current page's last strip or tile ends, by its tags."""
    tags = im.tag_v2  # type: ignore[attr-defined]  # TiffImageFile only
    end = 0
    for offsets_tag, counts_tag in ((273, 279), (324, 325)):  # strips, tiles
        offsets, counts = tags.get(offsets_tag), tags.get(counts_tag)
        if offsets is None or counts is None:
            continue
        offsets = offsets if isinstance(offsets, tuple) else (offsets,)
        counts = counts if isinstance(counts, tuple) else (counts,)
        # Without a Python loop: a hostile page may list a million strips.
        end = max(end, max(map(operator.add, offsets, counts), default=0))
    return int(end)


# What a JPEG's walk may step through one at a time. Pillow reads the headers up to the
# first scan in Python, a segment (a marker and its data) at a time, and a byte at a
# time between them (fill bytes, junk); the walk below goes on segment by segment to the
# end of the file. A 5 MB file of 1,250,000 empty APP segments took the probe 3 s and
# +163 MB (Pillow keeps each; 34 s and +2 GB at 64 MB), one of 5 MB of fill bytes
# 2.9 s. Cameras and scanners write a dozen segments or two, a progressive JPEG a few
# dozen more, a large ICC profile one per 64 KB of it; between them nothing, or a few
# fill bytes. At these limits the probe takes ~25 ms for the segments and ~0.6 s for
# the bytes.
MAX_JPEG_MARKERS = 10_000
MAX_JPEG_HEADER_GAPS = 1 << 20  # bytes between segments before the first scan
JPEG_OVER_MARKERS = "markers"
JPEG_OVER_GAPS = "bytes between markers"


def jpeg_walk(fh: BinaryIO) -> bool | str:
    """Whether the JPEG's segments and scans lead from its start to an end-of-image
    marker inside the file (False: it is cut short); or, where the walk steps through
    more than its limits above allow, which one (JPEG_OVER_MARKERS, JPEG_OVER_GAPS) —
    asked before Pillow opens it, so that such a file reaches neither Pillow's loop nor
    the rest of this one. What follows that marker (a phone's trailer, a second image)
    is not read; bytes between segments are skipped, as decoders do. Read a window at a
    time. Only a JPEG held in memory is walked to its end (validate.MAX_IN_MEMORY, 64
    MiB): of one larger (an admin's max_attachment_bytes above that), only the headers
    Pillow reads, up to its first scan, and its end is not judged here (True), rather
    than read whole (or mapped: a share user shortening it meanwhile would end the
    process with SIGBUS)."""
    whole = isinstance(fh, io.BytesIO)
    pos = 2  # after SOI, which the sniffer found
    markers = gaps = 0
    in_headers = True
    while True:
        fh.seek(pos)
        window = fh.read(_WINDOW)
        ff = window.find(b"\xff")
        found = _NOT_FF.search(window, ff + 1) if ff >= 0 else None  # fill FFs skipped
        if found is None:
            if len(window) < _WINDOW:
                return not whole
            # The last byte may be the FF of the next marker.
            gaps += len(window) - 1 if in_headers else 0
            pos += len(window) - 1
            if gaps > MAX_JPEG_HEADER_GAPS:
                return JPEG_OVER_GAPS
            continue
        markers += 1
        gaps += found.start() - 1 if in_headers else 0
        if markers > MAX_JPEG_MARKERS or gaps > MAX_JPEG_HEADER_GAPS:
            return JPEG_OVER_MARKERS if markers > MAX_JPEG_MARKERS else JPEG_OVER_GAPS
        code = window[found.start()]
        pos += found.end()
        if code == 0xD9:  # EOI
            return True
        if code == 0x00 or 0xD0 <= code <= 0xD7 or code == 0x01:  # no length follows
            continue
        fh.seek(pos)
        length = fh.read(2)
        if len(length) < 2:
            return not whole
        pos += int.from_bytes(length, "big")
        if code == 0xDA:  # SOS: entropy-coded data runs to the next real marker
            if not whole:
                return True  # where Pillow stops
            in_headers = False
            pos = _scan_end(fh, pos)
            if pos < 0:
                return False


def _scan_end(fh: BinaryIO, pos: int) -> int:
    """Where the entropy-coded data from `pos` ends (the FF of the next real marker),
    or -1 where the file ends first. Windows grow: a progressive JPEG's scans are many
    and short, a baseline one's one and long."""
    size = _WINDOW
    while True:
        fh.seek(pos)
        window = fh.read(size)
        found = _JPEG_SCAN_END.search(window)
        if found is not None:
            return pos + found.start()
        if len(window) < size:
            return -1
        pos += len(window) - 1  # an FF at its end is told by the byte after it
        size = min(size * 4, _SCAN_WINDOW)


# Windows of a JPEG's walk: between segments, and through a scan's data.
_WINDOW = 1 << 12
_SCAN_WINDOW = 1 << 22
_NOT_FF = re.compile(rb"[^\xff]")
# The end of a scan: an FF that is neither a stuffed FF 00 nor a restart marker.
_JPEG_SCAN_END = re.compile(rb"\xff(?=[^\x00\xd0-\xd7])")


def bmp_data_end(im: ImageFile.ImageFile, fh: BinaryIO) -> int:
    """Where a BMP's pixels end, by its header: uncompressed rows are all the same
    length, padded to 4 bytes, but the last row needs only its pixels (writers that
    leave out its padding make files Pillow reads whole). 0 for a compressed (RLE)
    one, whose end only decoding finds. `fh`: the file Pillow opened (its header's bit
    depth, which Pillow does not keep, gives a row's length without the padding)."""
    tile = im.tile[0] if im.tile else None
    if tile is None or tile.codec_name != "raw" or not isinstance(tile.args, tuple) or \
            len(tile.args) < 2 or tile.extents is None:
        return 0
    left, top, right, bottom = tile.extents
    stride, rows = abs(int(tile.args[1])), bottom - top
    if rows <= 0:
        return int(tile.offset)
    bits = _bmp_bits(fh)
    last = min(stride, ((right - left) * bits + 7) // 8) if bits else stride
    return int(tile.offset) + stride * (rows - 1) + last


def _bmp_bits(fh: BinaryIO) -> int:
    """A BMP's bits per pixel, from its info header (an OS/2 one of 12 bytes has it
    elsewhere); 0 if the header cannot be read."""
    at = fh.tell()
    try:
        fh.seek(14)
        header = fh.read(16)
    finally:
        fh.seek(at)
    if len(header) < 16:
        return 0
    where = 10 if int.from_bytes(header[:4], "little") == 12 else 14
    return int.from_bytes(header[where:where + 2], "little")


# A GIF's blocks and sub-blocks, each read one at a time in Python: by Pillow up to the
# first image when it opens it (keeping each comment), by gif_walk to the trailer. A 5 MB
# file of 1,000,000 empty comments took the probe 0.5 s and +168 MB (~2 GB at 64 MB).
# An image's data comes in sub-blocks of 255 bytes, and each frame of an animation adds
# four blocks or so (of 40 bytes for a frame that changes a few pixels): the limit is
# 10,000 steps and one more per 32 bytes of the file (an animation of 3,600 such frames).
MAX_GIF_STEPS = 10_000
GIF_BYTES_PER_STEP = 32


def gif_steps_allowed(size: int) -> int:
    """The most blocks and sub-blocks a GIF of `size` bytes may hold."""
    return MAX_GIF_STEPS + size // GIF_BYTES_PER_STEP


def gif_walk(fh: BinaryIO, size: int) -> bool | None:
    """Whether the GIF's blocks, each image's colour table and data sub-blocks
    included, lead from its header to its trailer inside the file (False: it is cut
    short), or None when they are more than gif_steps_allowed — asked before Pillow
    opens it. A file that ends between two blocks without it is cut short too (an
    animation's later frames missing), as a JPEG without its end marker is. What
    follows the trailer is not read. As with a JPEG's end (jpeg_walk), only a GIF held
    in memory is judged (True for one read from its file), but any is counted."""
    whole = isinstance(fh, io.BytesIO)
    at = _ByteAt(fh)
    pos = 13 + _colour_table(at, 10)  # header and logical screen descriptor
    steps = gif_steps_allowed(size)
    while (introducer := at(pos)) >= 0:
        if introducer == 0x3B:  # trailer
            return True
        if introducer == 0x21:  # extension: label, then sub-blocks
            pos += 2
        elif introducer == 0x2C:  # image: descriptor, colour table, LZW code size
            if at(pos + 9) < 0:
                return not whole
            pos += 10 + _colour_table(at, pos + 9) + 1
        else:  # not a GIF block: damaged, or the zeros of a copy that sized it first
            return not whole
        while (length := at(pos)) > 0:  # sub-blocks, up to the empty one
            pos += length + 1
            steps -= 1
            if steps < 0:
                return None
        steps -= 1
        if steps < 0:
            return None
        pos += 1  # the empty one; a file ending before it leaves the loop, not at a trailer
    return not whole


class _ByteAt:
    """The byte at a position of a file (-1 past its end), read a window at a time:
    a walk goes forward in small steps."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._start = 0
        self._window = fh.getvalue() if isinstance(fh, io.BytesIO) else b""

    def __call__(self, pos: int) -> int:
        index = pos - self._start
        if not 0 <= index < len(self._window):
            if isinstance(self._fh, io.BytesIO):
                return -1
            self._fh.seek(pos)
            self._start, self._window, index = pos, self._fh.read(1 << 16), 0
            if not self._window:
                return -1
        return self._window[index]


def _colour_table(at: _ByteAt, flags_at: int) -> int:
    """The bytes of the colour table the flags byte at `flags_at` declares."""
    flags = at(flags_at)
    return 3 << ((flags & 7) + 1) if flags > 0 and flags & 0x80 else 0
