"""`[validation] convert_images` (docs/einvoice.md): PNG/JPEG → PDF for the print channels.

img2pdf wraps the image in a one-page PDF without re-encoding it (a JPEG is
embedded as it is; PNG pixels are copied losslessly), and sizes the page from
the image's own resolution, so a 300-DPI scan stays a 300-DPI page.

Where the PDF lives (outboxd's own choice; docs/einvoice.md tells users):

* before the claim nothing is written: validation converts in memory, checks
  the PDF like any other PDF attachment and records its name, size and hash
  on the attachment (``Attachment.converted``), so the bundle id, computed
  before and after the claim, already names what will be sent;
* after the claim, ``materialise`` writes the PDF into the processing work
  folder, in ``NAME.converted/`` beside the sidecar ``NAME/``, keeping the
  sidecar's layout (``batch-42.converted/INV-2001/scan.pdf``). That folder
  travels with the bundle to sent/ (or quarantine/), so the original and the
  converted file are archived side by side.

Both run in a reader process (readers.py), never in the daemon's own: a
9000 × 9000 PNG takes some 300 MB to decode, and the delivery workers could
convert several at once. The image is converted twice (before the claim there
is nowhere to keep the PDF: nothing is written into the outbox, and a cache
beside it would hold a PDF for every version read, claimed or not).

The conversion is deterministic (no dates in the PDF) for one Pillow and zlib, so a
crash between the claim and the delivery gives the same bytes, hash and bundle id
again; across an upgrade it may not, and a PDF written before the restart is kept
when it is still the bytes the row's bundle id names (delivery/beforepost.py).
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image

from daemon.bundle import Attachment, Bundle, Conversion, Finding, below
from daemon.configuration.config import ValidationConfig
from daemon.delivery.parts import read_checked
from daemon.errors import InputError, UnconvertibleImage, library_fault
from daemon.fs.fsops import open_below
from daemon.fs.fsread import holds_hash
from daemon.fs.fswrite import held_path, make_folders_below, write_atomic
from daemon.fs.temps import drop_unfinished
from daemon.fs.workfolder import hold_folder
from daemon.manifest import sent_keys
from daemon.names import converted_folder, fit_name
from daemon.reading.readonce import kept_read
from daemon.sizes import limit_words, size_words
from daemon.validation.imageprobe import frame_dpi, pillow_limit, probe_frame
from daemon.validation.pdfprobe import open_pdf

PRINT_CHANNELS = frozenset({"external-print", "original-print"})
CONVERTIBLE = frozenset({"png", "jpeg"})

# Per invoice id: each key under which an attachment could reach a receiver
# (manifest.sent_keys of its name and of its PDF name) → the names that have it.
KeyOwners = dict[str, dict[str, set[str]]]


def wanted(kind: str, channel: str, convert_images: bool) -> bool:
    return convert_images and channel in PRINT_CHANNELS and kind in CONVERTIBLE


def image_to_pdf(data: bytes, max_pixels: int) -> bytes:
    """One page per image, its resolution kept, no dates (the same bytes every time).
    Under [validation] max_image_pixels, as the image was validated: Pillow's own
    default (89 million) would refuse an image that a raised limit let through, and
    an image swapped in after its validation must not be decoded past the limit."""
    import img2pdf
    with pillow_limit(max_pixels):
        with Image.open(io.BytesIO(data)) as im:
            layout, rotation = _jpeg_layout(im, img2pdf), _rotation(im, img2pdf)
        # The internal engine: pikepdf's writer stamps a time-based /ID into the file,
        # which would change the hash (and the bundle id) between two conversions.
        try:
            out: bytes = img2pdf.convert(data, nodate=True, engine=img2pdf.Engine.internal,
                                         layout_fun=layout, rotation=rotation)
        except img2pdf.AlphaChannelError:
            # Its own words ("Refusing to work with multiple >8bit channels") and advice
            # (ImageMagick's convert -depth 8) are for whoever runs img2pdf, not a clerk.
            raise UnconvertibleImage("it holds transparency at 16 bits per colour, which "
                                     "outboxd cannot put into a PDF without loss — save it "
                                     "as a PNG of 8 bits per colour, or export it as "
                                     "PDF") from None
    return out


_ORIENTATION = 0x0112  # EXIF's, as a camera turns a photo (1–8)
_MIRRORED = frozenset({2, 4, 5, 7})


def _rotation(im: Image.Image, img2pdf: Any) -> Any:
    """How img2pdf turns the page: by the image's EXIF orientation (its own reading,
    /Rotate on the page), except that a value outside 1–8 (0, "unknown", as some cameras
    write) says nothing — a viewer shows such an image as stored, img2pdf refused it —
    and an orientation that mirrors the image, which a page cannot show, is refused in
    words a clerk can act on (img2pdf's own told them to run it with --rotation)."""
    try:
        value = im.getexif().get(_ORIENTATION)
        orientation = None if value is None else int(value)
    except Exception:  # noqa: BLE001 — damaged EXIF or an odd value: it says nothing
        orientation = 0
    if orientation in _MIRRORED:
        raise UnconvertibleImage(f"its EXIF orientation ({orientation}) shows it mirrored, "
                                 "and a PDF page can be turned but not mirrored — save the "
                                 "image again upright, or export it as PDF")
    if orientation is not None and not 1 <= orientation <= 8:
        return img2pdf.Rotation.none
    return img2pdf.Rotation.auto


# The resolution an image that states none is taken at (docs/folder-convention.md).
DEFAULT_DPI = 96.0


def _jpeg_layout(im: Image.Image, img2pdf: Any) -> Any:
    """For a JPEG whose resolution img2pdf would take from Pillow's info["dpi"] wrongly
    (EXIF's x for y too, 72 DPI made up for EXIF without a resolution or a unit), the
    page sized at the resolution validation read (imageprobe.py); else img2pdf's own layout
    (the bytes of every other conversion stay as they were)."""
    if im.format != "JPEG":
        return img2pdf.default_layout_fun
    stated = frame_dpi(probe_frame(im, "jpeg")) or (DEFAULT_DPI, DEFAULT_DPI)
    pillows = im.info.get("dpi")
    if isinstance(pillows, tuple) and tuple(map(float, pillows)) == stated:
        return img2pdf.default_layout_fun
    return img2pdf.get_fixed_dpi_layout_fun(stated)


def pdf_name(original_name: str) -> str:
    return PurePosixPath(original_name).stem + ".pdf"


def converted_name(att: Attachment, taken: set[str]) -> str:
    """``scan.png`` → ``scan.pdf``; ``scan.png.pdf`` when another attachment of the
    invoice could go out as scan.pdf too (`taken`: manifest.sent_keys of the names, and
    of the PDF names, of the other attachments; those of scan.pdf's keys are enough).
    The second form is as distinct as the original names are, which matching has made
    sure of."""
    name = pdf_name(att.original_name)
    if sent_keys(name) & taken:
        name = att.original_name + ".pdf"
    return fit_name(name)  # 'NAME.pdf' is 4 bytes longer than a name that fit


def convert(att: Attachment, taken: set[str], max_pixels: int
            ) -> tuple[Attachment, bytes | None, list[Finding]]:
    """Convert in memory; the attachment comes back with ``converted`` set (path None).

    An OSError reading the image (no descriptors left, a share gone) is raised: the
    machine's fault, read again later, never a finding that would stop the bundle."""
    try:
        data = _read_image(att)
    except InputError as exc:  # a link or a FIFO put where the image was checked
        return att, None, [Finding(exc.code, exc.file, exc.message, "error", att.invoice_id)]
    try:
        pdf = image_to_pdf(data, max_pixels)
    except UnconvertibleImage as exc:
        return att, None, [Finding("conversion-failed", att.rel, f"cannot be converted to "
                                   f"PDF: {exc}, and put that file in its place", "error",
                                   att.invoice_id)]
    except Exception as exc:  # noqa: BLE001 - img2pdf/PIL raise many kinds on odd images
        return att, None, [Finding("conversion-failed", att.rel, f"cannot be converted to PDF "
                                   f"{_why_not(exc)}— export it as "
                                   "PDF and put that file in its place", "error",
                                   att.invoice_id)]
    with io.BytesIO(pdf) as fh:
        reader, facts = open_pdf(fh)
        page = _page_cm(reader)
    if facts.error is not None or not facts.pages:
        return att, None, [Finding("conversion-failed", att.rel, f"converts to an unreadable "
                                   f"PDF ({facts.detail or facts.error}) — export it as PDF and "
                                   "put that file in its place", "error", att.invoice_id)]
    conv = Conversion(name=converted_name(att, taken), size=len(pdf),
                      sha256=hashlib.sha256(pdf).hexdigest(), pages=facts.pages,
                      original_content_type=att.content_type, page_cm=page)
    return replace(att, converted=conv), pdf, []


def _page_cm(reader: Any) -> tuple[float, float] | None:
    """The first page's width and height in cm as a viewer shows it (its /UserUnit, which
    img2pdf sets for a page over 200 inches, and /Rotate counted); None if it cannot be
    read. A clerk sees it in `check`: an image saved without a resolution is a page at
    96 DPI, a large scan a poster."""
    try:
        page = reader.pages[0]
        unit = float(page.get("/UserUnit", 1))
        width, height = (float(page.mediabox.width) * unit, float(page.mediabox.height) * unit)
        if int(page.get("/Rotate", 0)) % 180:
            width, height = height, width
        return (width / 72 * 2.54, height / 72 * 2.54)
    except Exception:  # noqa: BLE001 - only what check shows: never stops a conversion
        return None


def _owners(bundle: Bundle, invoice_id: str, cache: KeyOwners) -> dict[str, set[str]]:
    if invoice_id not in cache:
        owners: dict[str, set[str]] = {}
        for a in bundle.attachments_of(invoice_id):
            for n in (a.original_name, pdf_name(a.original_name)):
                for key in sent_keys(n):
                    owners.setdefault(key, set()).add(a.original_name)
        cache[invoice_id] = owners
    return cache[invoice_id]


def checked(att: Attachment, bundle: Bundle, cfg: ValidationConfig,
            findings: list[Finding], cache: KeyOwners) -> tuple[Attachment, list[Finding]]:
    """Convert the image in memory; the PDF is what the size rule judges and what is sent."""
    # Another image of the same stem (scan.jpg beside scan.png) would become scan.pdf
    # too, and a scan.pdf or scan_.pdf may be there already: either, and the name moves.
    # The keys are indexed once a bundle: a sidecar of many images stays linear.
    owners = _owners(bundle, att.invoice_id, cache)
    taken = {key for key in sent_keys(pdf_name(att.original_name))
             if owners.get(key, set()) - {att.original_name}}
    att, _, problems = convert(att, taken, cfg.max_image_pixels)
    conv = att.converted
    if conv is not None and conv.size > cfg.max_attachment_bytes:
        problems.append(Finding("too-large", att.rel, "converts to a PDF of "
                                f"{size_words(conv.size)}; at most "
                                f"{limit_words(cfg.max_attachment_bytes, over=conv.size)} is taken "
                                "([validation] max_attachment_bytes) — scale the image down "
                                "or export it as a smaller PDF", "error", att.invoice_id))
    return att, findings + problems


def converted_path(work_dir: Path, att: Attachment) -> Path:
    """``INV-1/scan.png`` → ``WORK/INV-1.converted/scan.pdf`` (rel starts with the sidecar)."""
    assert att.converted is not None
    parts = PurePosixPath(att.rel).parts
    return work_dir.joinpath(converted_folder(parts[0]), *parts[1:-1], att.converted.name)


def materialise(atts: tuple[Attachment, ...], work_dir: Path,
                max_pixels: int, within: Path | None = None) -> tuple[Attachment, ...]:
    """Write each conversion into the claimed work folder (once) and point it there.

    InputError when the image in the work folder is refused (a link, a FIFO) or no
    longer gives the validated PDF (the bundle is damaged there); OSError from reading
    the image or writing the PDF (no descriptors left, a full disk, a share gone, a link
    where a folder on its way belongs): that is the environment, and worth another try.
    An image that does not lie in work_dir is refused (OSError naming both), never read
    by its own path."""
    out: list[Attachment] = []
    if not any(att.converted for att in atts):
        return atts
    # The work folder opened from the processing folder, never through a link, and never
    # made: one that vanished (moved away by hand, a share gone) is not recreated empty
    # to hold a lone PDF, and a link put in its place is not followed. Either is an
    # OSError naming it: the delivery says so and tries again later.
    work = hold_folder(work_dir, within=within)  # `within`: the outbox (hold_folder)
    try:
        root = held_path(work)
        for att in atts:
            if att.converted and att.where[0] != work_dir:
                # Our bug: read by its own path, the image would be opened through
                # whatever link stands in its folder's place (the work folder is held
                # against exactly that). Said and tried again; nothing read or written.
                raise OSError(errno.EINVAL, f"{att.rel}: the image lies outside the work "
                              "folder it is converted in", str(att.path), None,
                              str(work_dir))
        for att in atts:
            conv = att.converted
            if conv is None:
                out.append(att)
                continue
            target = converted_path(work_dir, att)
            folder, _, name = below(target, att.rel)[1].rpartition("/")
            # Its folders made and opened from the work folder held, never through a link
            # (NotADirectoryError naming one that is, an OSError: said and tried again):
            # the PDF is read, and written, in the very folder held (held_path).
            held = make_folders_below(root, folder.split("/"))
            try:
                if not _pdf_kept(held, name, att, root):
                    pdf = _convert_again(att, conv, max_pixels, root)
                    # A kill inside an earlier attempt's write left its temp file beside
                    # the target; it would travel into the archive with the folder.
                    drop_unfinished(held_path(held), [name])
                    write_atomic(held_path(held) / name, pdf)
            finally:
                os.close(held)
            out.append(replace(att, converted=replace(conv, path=target)))
    finally:
        os.close(work)
    return tuple(out)


def _pdf_kept(held: int, name: str, att: Attachment, work: Path) -> bool:
    """Whether the PDF an earlier attempt wrote (`name` in the folder open at `held`) is
    still the one to send: the bytes the bundle id names, written after its image last
    changed (fsread.changed_since). An image replaced in processing between two attempts
    of one process is so converted again and found changed, as after a restart
    (delivery/beforepost.py), not hidden by the old PDF. In any doubt (the image a link,
    gone), converted again, which says what is wrong. `work`: the work folder held."""
    assert att.converted is not None
    try:
        with open_below(work, att.rel) as image:
            return holds_hash(held, name, att.rel, att.converted.sha256, image)
    except (OSError, InputError):
        return False


def _convert_again(att: Attachment, conv: Conversion, max_pixels: int, work: Path) -> bytes:
    """The image of a claimed bundle converted again: the PDF validated, or InputError
    (an OSError reading it is raised as it is: tried again, as a failed write is).
    `work`: the work folder held (held_path) that the image lies in, read below it."""
    try:
        data = _read_image(att, work)
    except InputError as exc:  # a link or a FIFO where the image was checked
        if exc.code == "processing-damaged":  # written into since: says so itself
            raise
        raise InputError("processing-damaged", exc.file, f"{exc.message} (it changed in "
                         "the processing folder)") from None
    try:
        pdf = image_to_pdf(data, max_pixels)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own text quotes twice the limit for its error: say ours.
        raise InputError("processing-damaged", att.rel, f"has more pixels than "
                         f"[validation] max_image_pixels = {max_pixels:,} allows, "
                         "unlike when it was validated (it changed in the processing "
                         "folder) — check it and move the bundle back to the "
                         "outbox") from None
    except Exception as exc:  # noqa: BLE001 - img2pdf/PIL on odd bytes
        raise InputError("processing-damaged", att.rel, f"cannot be converted again "
                         f"in the processing folder ({exc}) — check it and move the "
                         "bundle back to the outbox") from None
    if hashlib.sha256(pdf).hexdigest() != conv.sha256:
        raise InputError("processing-damaged", att.rel, "gives another PDF than when "
                         "it was validated (it changed in the processing folder) — "
                         "check it and move the bundle back to the outbox")
    return pdf


def materialise_bundle(bundle: Bundle, work_dir: Path, max_pixels: int,
                       within: Path | None = None) -> Bundle:
    """The claimed bundle with its conversions written into work_dir (`materialise`)."""
    return replace(bundle, attachments=materialise(bundle.attachments, work_dir, max_pixels,
                                                   within))


def unconverted(bundle: Bundle) -> Bundle:
    """The bundle as matched, before any conversion: what ``assemble`` alone gives."""
    if not any(a.converted for a in bundle.attachments):
        return bundle
    return replace(bundle, attachments=tuple(replace(a, converted=None)
                                             for a in bundle.attachments))


def _read_image(att: Attachment, work: Path | None = None) -> bytes:
    """The image's bytes, opened below its bundle's folder (InputError for a link or a
    FIFO there). Read apart from the conversion, whose catch-all would take an OSError
    of the machine (EMFILE, EIO) for a fault of the image and stop the bundle for it.
    Within finish.evaluate, the bytes matching hashed and validation probed (readonce):
    converted is then what was checked, and the image is not opened a second time.
    At delivery (`work`: the work folder held), read as every re-read of a claimed
    bundle's file is (parts.read_checked): within the size it was checked at."""
    if work is not None:
        return read_checked(att, work)
    if (kept := kept_read(att.path)) is not None:
        return kept
    with open_below(*att.where, att.rel) as fh:
        return fh.read()


def _why_not(exc: Exception) -> str:
    """The library's words for a conversion it failed, in brackets and followed by a
    space; none where it failed in its own code (errors.library_fault: "TypeError:
    unsupported operand …" told a clerk nothing), whose words go to the log only."""
    words = f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
    if not library_fault(exc):
        return f"({words}) "
    from daemon import logs
    logs.get().info("converting an image to PDF failed in the library's own code",
                    error=words)
    return "(the image is damaged, or is not really an image of its kind) "
