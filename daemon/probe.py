"""Probes: open a PDF or image once and turn what pypdf and Pillow find into
plain facts. Their exceptions are mapped here and nowhere else, so the
validation rules only ever look at dataclasses.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, UnidentifiedImageError
from pypdf import PdfReader
from pypdf.errors import DependencyError

# Pillow's plugin name per sniffed kind: Image.open is told what we expect,
# so it never tries the other forty plugins on hostile bytes.
_PIL_FORMATS = {"tiff": "TIFF", "png": "PNG", "jpeg": "JPEG", "gif": "GIF", "bmp": "BMP",
                "webp": "WEBP"}

@dataclass(frozen=True)
class PdfFacts:
    pages: int = 0
    encrypted: bool = False
    error: str | None = None  # why pypdf could not open it


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
    error: str | None = None  # why Pillow could not open it
    too_large: str | None = None  # Pillow's decompression-bomb guard tripped


def probe_pdf(fh: BinaryIO) -> PdfFacts:
    """Open with pypdf (non-strict) and count pages; pypdf's errors end here."""
    fh.seek(0)
    try:
        reader = PdfReader(fh, strict=False)
        # pypdf opens owner-password-only PDFs silently (empty user password):
        # ask, and never look further into an encrypted file.
        if reader.is_encrypted:
            return PdfFacts(encrypted=True)
        return PdfFacts(pages=len(reader.pages))
    except DependencyError as exc:
        # pypdf only needs optional crypto packages for AES-encrypted files.
        return PdfFacts(encrypted=True, error=str(exc))
    except RecursionError:
        return PdfFacts(error="pypdf: its object tree loops")
    except Exception as exc:  # noqa: BLE001 — corrupt PDFs raise anything, not just PyPdfError
        return PdfFacts(error=f"pypdf: {exc}" if str(exc) else f"pypdf: {type(exc).__name__}")
    finally:
        fh.seek(0)


# Pillow's bomb limit is a module global: set it to ours only while we hold
# the lock, and turn its warning (between 1× and 2× the limit) into an error.
_PILLOW_LOCK = threading.Lock()


@contextmanager
def pillow_limit(max_pixels: int) -> Iterator[None]:
    """Pillow with MAX_IMAGE_PIXELS = max_pixels and bomb warnings as errors, for this call."""
    with _PILLOW_LOCK, warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def probe_image(fh: BinaryIO, kind: str, max_pixels: int) -> ImageFacts:
    """Sizes and resolutions of every frame, from headers only (nothing is decoded)."""
    fh.seek(0)
    frames: list[Frame] = []
    try:
        with pillow_limit(max_pixels), Image.open(fh, formats=[_PIL_FORMATS[kind]]) as im:
            count = getattr(im, "n_frames", 1) if kind == "tiff" else 1
            for index in range(count):
                if index:
                    im.seek(index)
                frames.append(_frame(im, kind))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's text quotes 2× the limit for the error; say the pixels only.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        return ImageFacts(too_large=f"{int(found[1]):,} pixels" if found else "too large")
    except UnidentifiedImageError:
        return ImageFacts(error="Pillow does not recognise it")
    except Exception as exc:  # noqa: BLE001 — damaged headers raise OSError, ValueError, ...
        return ImageFacts(error=f"Pillow: {exc}" if str(exc) else type(exc).__name__)
    finally:
        fh.seek(0)
    return ImageFacts(frames=tuple(frames))


def _frame(im: Image.Image, kind: str) -> Frame:
    width, height = im.size
    if kind != "tiff":
        dpi = im.info.get("dpi")  # PNG pHYs, JPEG JFIF/EXIF density, in dots per inch
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
