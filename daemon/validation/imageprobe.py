"""The image probe: open an image once with Pillow, headers only, and turn what it
finds into plain facts (ImageFacts: each page's size and resolution, why it cannot be
read); Pillow's exceptions are mapped here and nowhere else, so the validation rules
only ever look at dataclasses. Also the one place Pillow's bomb limit is set
(pillow_limit), and what a reader process loads before it says it is ready (warm_up).
PDFs are pdfprobe.py's.
"""

from __future__ import annotations

import importlib
import math
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError

from daemon.errors import library_fault
from daemon.fs.fsops import read_again_later
from daemon.validation.imagetail import (
    GIF_BYTES_PER_STEP,
    JPEG_OVER_GAPS,
    JPEG_OVER_MARKERS,
    MAX_GIF_STEPS,
    MAX_JPEG_HEADER_GAPS,
    MAX_JPEG_MARKERS,
    MAX_PNG_CHUNKS,
    bmp_data_end,
    gif_steps_allowed,
    gif_walk,
    jpeg_walk,
    png_chunks_allowed,
    png_chunks_over,
    png_verified,
    tiff_data_end,
)
from daemon.validation.tiffdirs import (
    MAX_TIFF_ENTRIES,
    UNREADABLE_COMPRESSION,
    directory_entries,
    unreadable_compression,
)

# Pillow's plugin name per sniffed kind: Image.open is told what we expect,
# so it never tries the other forty plugins on hostile bytes.
_PIL_FORMATS = {"tiff": "TIFF", "png": "PNG", "jpeg": "JPEG", "gif": "GIF", "bmp": "BMP",
                "webp": "WEBP"}

# The plugins of those kinds. Image.preinit() loads the common ones on the first
# open; any other kind (TIFF, WebP) makes Pillow import all forty-odd on its first file.
_PIL_PLUGINS = ("BmpImagePlugin", "GifImagePlugin", "JpegImagePlugin", "PngImagePlugin",
                "TiffImagePlugin", "WebPImagePlugin")


def warm_up() -> None:
    """Load now what Pillow loads on its first file (~8 ms for a PNG, JPEG, GIF or
    BMP; ~35 ms for a TIFF or WebP, which makes it import all of its plugins), and
    pypdf, imported on the first PDF (pdfprobe.open_pdf): in a reader process before it says it
    is ready, so that no bundle pays for it."""
    importlib.import_module("pypdf")
    Image.preinit()
    for plugin in _PIL_PLUGINS:
        try:
            importlib.import_module(f"PIL.{plugin}")
        except ImportError:  # a Pillow built without it: loaded (or not) on first use
            pass


@dataclass(frozen=True)
class Frame:
    """One page of an image, from its header only."""

    width: int
    height: int
    x_resolution: float | None = None  # as stored, in `unit`
    y_resolution: float | None = None
    unit: int | None = None  # TIFF ResolutionUnit: None (= inch), 1 none, 2 inch, 3 cm


@dataclass(frozen=True)
class ImageFacts:
    frames: tuple[Frame, ...] = ()
    error: str | None = None  # why Pillow could not open it, in a clerk's words
    # Pillow's own words for it, shortened: for the admin, after the clerk's words (a
    # clerk cannot act on "Unsupported BMP header type (0)"); None where `error` says all.
    detail: str | None = None
    # Pillow's decompression-bomb guard tripped: its pixels ("300,000,000 pixels"); the
    # page it tripped on is the last of `frames` when its header could be read.
    too_large: str | None = None
    too_many_pages: bool = False  # a TIFF of more than MAX_TIFF_PAGES pages (not all read)
    # A TIFF page compressed in a way Pillow cannot read: the page (1: the first) and the
    # compression's name ("JPEG 2000"); `error` says it too.
    compression: tuple[int, str] | None = None
    animation_frames: int = 1  # an animated PNG's frames, as its header declares them


# A scanned document of thousands of pages is not an attachment, but a few KB of
# TIFF can declare that many; reading each header costs time that grows with them.
MAX_TIFF_PAGES = 1000


# Pillow's bomb limit is a module global: set it to ours only while we hold
# the lock, and turn its warning (between 1× and 2× the limit) into an error.
_PILLOW_LOCK = threading.Lock()


@contextmanager
def pillow_limit(max_pixels: int) -> Iterator[None]:
    """Pillow with MAX_IMAGE_PIXELS = max_pixels and bomb warnings as errors, for this
    call."""
    with _PILLOW_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


TRUNCATED = "the file ends before the image does"
DAMAGED = "the file ends before the image does, or its data is damaged"
HOSTILE = "damaged, or made to hold up whoever reads it"
JPEG_WALK_LIMITS = {
    JPEG_OVER_MARKERS: f"over {MAX_JPEG_MARKERS:,} markers, where a camera or scanner "
    "writes a few dozen",
    JPEG_OVER_GAPS: f"over {MAX_JPEG_HEADER_GAPS:,} bytes of padding between the markers "
    "of its headers, where a camera or scanner writes none or a few"}
# Why Pillow refused an image when nothing more precise is known (a cut, a TIFF
# compression, its directories): Pillow's reasons ("cannot identify image file",
# "Unsupported BMP header type (0)") are its parser's, which a clerk cannot act on; the
# fix is the same for all of them. The rule says it naming the kind (attachment_rules).
DAMAGED_OTHERWISE = "the file is damaged, or is not really an image of its kind"
# How much of Pillow's words `detail` keeps: enough for the admin to search for them.
_DETAIL_CHARS = 100


def probe_image(fh: BinaryIO, kind: str, max_pixels: int) -> ImageFacts:
    """Sizes and resolutions of every frame, from headers only (nothing is decoded),
    and whether the image data of a PNG, JPEG or TIFF reaches as far as its headers
    say: a file cut short (a broken copy or download) would print half an image."""
    size = fh.seek(0, 2)
    fh.seek(0)
    frames: list[Frame] = []
    try:
        if kind == "tiff" and (entries := directory_entries(fh, MAX_TIFF_PAGES)) > \
                MAX_TIFF_ENTRIES:
            return ImageFacts(error=f"its page directories list {entries:,} entries, far "
                              "more than the pages of an image hold")
        reaches_end, refused = _walked(fh, kind, size)
        if refused is not None:
            return ImageFacts(error=refused)
        fh.seek(0)
        with pillow_limit(max_pixels):  # its warning filters end with it
            if kind == "tiff":
                # A TIFF cut short at a page boundary: Pillow only warns about the
                # page directory it could not read (the first one already inside
                # Image.open), and stops there, with fewer pages.
                warnings.filterwarnings("error", "(Truncated File Read|Corrupt EXIF data)",
                                        UserWarning)
            with Image.open(fh, formats=[_PIL_FORMATS[kind]]) as im:
                # Page by page, not n_frames: that walks every page first, however many.
                while True:
                    frames.append(probe_frame(im, kind))
                    if kind == "tiff" and tiff_data_end(im) > size or \
                            kind == "bmp" and bmp_data_end(im, fh) > size:
                        return ImageFacts(error=TRUNCATED)
                    if kind != "tiff":
                        break
                    if len(frames) > MAX_TIFF_PAGES:
                        return ImageFacts(too_many_pages=True)
                    try:
                        im.seek(len(frames))
                    except EOFError:
                        break
                # An APNG declares its frames in its header (acTL): nothing is decoded.
                animation = int(getattr(im, "n_frames", 1)) if kind == "png" else 1
                if kind == "png" and not png_verified(im):
                    return ImageFacts(error=DAMAGED)
        if not reaches_end:
            return ImageFacts(error=TRUNCATED)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's text quotes 2× the limit for the error; say the pixels only.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        oversized = _header_only(fh, kind, len(frames), max_pixels)
        return ImageFacts(frames=tuple(frames) + ((oversized,) if oversized else ()),
                          too_large=f"{int(found[1]):,} pixels" if found else "too large")
    except UserWarning:  # only the TIFF warnings made errors above
        return ImageFacts(error=TRUNCATED)
    except Exception as exc:  # noqa: BLE001 — damaged headers raise OSError, ValueError, ...
        if read_again_later(exc):
            raise  # the share failed a read under Pillow: its fault, never "damaged"
        # Pillow refuses a TIFF compression it does not know as an image it does not
        # recognise (the first page), or a KeyError naming the number (a later one).
        if kind == "tiff" and (packed := unreadable_compression(fh, MAX_TIFF_PAGES)):
            page, name = packed
            where = "it is" if page == 1 else f"page {page} is"
            return ImageFacts(error=f"{where} compressed as {name}{UNREADABLE_COMPRESSION}",
                              compression=packed)
        return ImageFacts(error=DAMAGED_OTHERWISE, detail=_pillows_words(exc))
    finally:
        fh.seek(0)
    return ImageFacts(frames=tuple(frames), animation_frames=animation)


def _walked(fh: BinaryIO, kind: str, size: int) -> tuple[bool, str | None]:
    """What the walk of a JPEG, GIF or PNG of `size` bytes finds before Pillow opens it
    (imagetail.py): whether it reaches its end, and why it is refused unopened (None: it
    is not), where it holds more than Pillow, or the walk, should step through."""
    if kind == "jpeg":
        walked = jpeg_walk(fh)
        if isinstance(walked, str):
            return True, f"it holds {JPEG_WALK_LIMITS[walked]}: {HOSTILE}"
        return walked, None
    if kind == "gif":
        reaches = gif_walk(fh, size)
        if reaches is None:
            return True, (f"it holds over {gif_steps_allowed(size):,} blocks "
                          f"({MAX_GIF_STEPS:,} and one more per {GIF_BYTES_PER_STEP} bytes "
                          "of the file), where an image's data needs one per 255 bytes "
                          f"and each frame of an animation a few: {HOSTILE}")
        return reaches, None
    if kind == "png" and png_chunks_over(fh, size):
        return True, (f"it holds over {png_chunks_allowed(size):,} chunks ({MAX_PNG_CHUNKS:,} "
                      f"and one more per KiB of the file), where an image holds a few and "
                      f"its data: {HOSTILE}")
    return True, None


def _pillows_words(exc: Exception) -> str | None:
    """Pillow's reason, on one line and cut short (it may quote bytes of the file); None
    where Pillow failed in its own code ("Pillow: unsupported operand type(s) for +…"
    told a clerk nothing): its words then go to the log only (errors.library_fault)."""
    if library_fault(exc):
        from daemon import logs
        logs.get().info("Pillow failed in its own code on an image, which is said to be "
                        "damaged", error=f"{type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:_DETAIL_CHARS * 4]}")
        return None
    if isinstance(exc, UnidentifiedImageError):
        # Its text goes on with the repr of the file object: nothing for anyone.
        return "Pillow: cannot identify image file"
    words = " ".join((str(exc) or type(exc).__name__).split())
    if len(words) > _DETAIL_CHARS:
        words = words[:_DETAIL_CHARS - 1] + "…"
    return f"Pillow: {words}"


def _header_only(fh: BinaryIO, kind: str, page: int, max_pixels: int) -> Frame | None:
    """Page `page` (0: the first) as its header describes it, past Pillow's guard: it
    stops Image.open before the image's width and height can be asked, and people fix an
    image by its size, not by its pixel count. The guard stands in Image.open, so the
    format's own class is made here directly; the limit itself is never lifted, as
    Image.MAX_IMAGE_PIXELS is one for every thread of the process (a read on another
    thread meanwhile would decode a bomb). Nothing is decoded (no load()): making the
    image and seeking read headers only."""
    fh.seek(0)
    try:
        with pillow_limit(max_pixels):
            factory = Image.OPEN[_PIL_FORMATS[kind]][0]
            with factory(fh, "") as im:
                if page:
                    im.seek(page)
                return probe_frame(im, kind)
    except Exception:  # noqa: BLE001 — then the pixel count alone is said
        return None
    finally:
        fh.seek(0)


# EXIF's tags of a JPEG's resolution (those of a TIFF page, in the JPEG's APP1 segment).
_EXIF_X, _EXIF_Y, _EXIF_UNIT = 0x011A, 0x011B, 0x0128


def _jpeg_frame(im: Image.Image) -> Frame:
    """A JPEG's resolution as the file states it: its JFIF header's density when that
    has a unit (1 inch, 2 centimetre), else its EXIF X and Y resolution under EXIF's
    unit, read as a TIFF page's (missing: inch; 1: none; 3: centimetre). Not Pillow's
    info["dpi"]: it takes EXIF's x for both, and says 72 DPI for a file whose EXIF
    holds no resolution or no unit (a phone's photo of 300 × 600 DPI, one of 300 DPI
    without a unit tag, one of none would all be misjudged for print)."""
    width, height = im.size
    unit, density = im.info.get("jfif_unit"), im.info.get("jfif_density")
    if unit in (1, 2) and isinstance(density, tuple) and len(density) == 2:
        return Frame(width, height, float(density[0]), float(density[1]), 2 if unit == 1 else 3)
    try:
        exif = im.getexif()
        x, y, exif_unit = exif.get(_EXIF_X), exif.get(_EXIF_Y), exif.get(_EXIF_UNIT)
        if x is None or y is None:
            return Frame(width, height)
        return Frame(width, height, float(x), float(y),
                     int(exif_unit) if exif_unit is not None else None)
    except Exception:  # noqa: BLE001 — damaged EXIF states no resolution that can be used
        return Frame(width, height)


def frame_dpi(frame: Frame) -> tuple[float, float] | None:
    """The frame's x and y resolution in dots per inch; None when it states none usable
    (no tags, 0, no unit or an unknown one)."""
    if frame.unit not in (None, 2, 3) or frame.x_resolution is None or \
            frame.y_resolution is None:
        return None
    scale = 2.54 if frame.unit == 3 else 1.0
    x, y = frame.x_resolution * scale, frame.y_resolution * scale
    if not (math.isfinite(x) and math.isfinite(y)) or x <= 0 or y <= 0:
        return None
    return x, y


def probe_frame(im: Image.Image, kind: str) -> Frame:
    """The open image's current page as its header describes it."""
    width, height = im.size
    if kind == "jpeg":
        return _jpeg_frame(im)
    if kind != "tiff":
        dpi = im.info.get("dpi")  # PNG pHYs (per metre), in dots per inch
        if isinstance(dpi, tuple) and len(dpi) == 2:
            try:
                return Frame(width, height, float(dpi[0]), float(dpi[1]), 2)
            except (TypeError, ValueError):
                pass
        return Frame(width, height)
    tags = im.tag_v2  # type: ignore[attr-defined]  # TiffImageFile only

    def number(tag: int) -> float | None:
        value = tags.get(tag)
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError, ZeroDivisionError):
            return None

    unit = tags.get(296)
    return Frame(width, height, number(282), number(283), int(unit) if unit is not None else None)
