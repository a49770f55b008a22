"""The rules on one attachment (docs/folder-convention.md): what a rule looks at
(``AttachmentCheck``: the attachment, its content type, the facts the probes found)
and the rules themselves, plain callables ``(check, cfg) -> Iterable[Finding]`` that
only look at those facts. Which rules a channel runs, and in which order, is
``validate.RULES``; a new rule is a function here and one entry there.

Every message says the rule and the fix; ``Finding.line()`` prefixes the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from daemon.bundle import Attachment, Finding, Severity
from daemon.configuration.config import ValidationConfig
from daemon.sizes import limit_words, size_words
from daemon.validation import convert
from daemon.validation.emptiness import what_is_empty
from daemon.validation.filetypes import IMAGE_KINDS, TEXT_KINDS, FileType, file_type
from daemon.validation.imageprobe import DAMAGED_OTHERWISE, MAX_TIFF_PAGES, Frame, ImageFacts
from daemon.validation.pdfprobe import PdfFacts
from daemon.validation.textkind import INVOICE_LABEL

TARGET_DPI = 300.0
DPI_TOLERANCE = 0.5  # "rounds to 300": 299.5–300.5, so 118.11 px/cm passes
# The clerk must replace the refused file, not add a second one beside it.
IN_ITS_PLACE = "put that file in its place"

# Never allowed, whatever allowed_types says (config only knows KNOWN_TYPES anyway).
NEVER_ALLOWED = frozenset({"exe", "elf", "zip", "xml", "shortcut", "unknown", "empty", "heic",
                           "ole", "utf16", "xlsm", "xlsb", "docm"})


@dataclass(frozen=True)
class AttachmentCheck:
    """Everything a rule may look at: the attachment, its content type and probe facts."""

    attachment: Attachment
    filetype: FileType
    ext_kind: str | None  # what the extension promises, None if unknown/missing
    channel: str
    invoice_sha256: str
    invoice_name: str
    pdf: PdfFacts | None = None
    image: ImageFacts | None = None
    extra: dict[str, object] = field(default_factory=dict)  # facts of later probes

    @property
    def kind(self) -> str:
        return self.filetype.kind

    @property
    def empty(self) -> bool:
        return self.attachment.size == 0 or self.kind == "empty"

    def finding(self, code: str, message: str, severity: Severity = "error") -> Finding:
        a = self.attachment
        return Finding(code, a.rel, message, severity, invoice_id=a.invoice_id)


Rule = Callable[[AttachmentCheck, ValidationConfig], Iterable[Finding]]


# ------------------------------------------------------------------ helpers

def allowed_kinds(channel: str, cfg: ValidationConfig) -> frozenset[str]:
    """The content kinds a channel accepts (the rules table of docs/folder-convention.md)."""
    if channel == "external-print":
        kinds = {"pdf", "tiff"}
    elif channel == "original-print":
        kinds = {"pdf"}
    else:
        kinds = set(cfg.allowed_types)
    if cfg.convert_images and channel in convert.PRINT_CHANNELS:
        kinds |= convert.CONVERTIBLE  # converted to PDF after the rules (convert.py)
    return frozenset(kinds - NEVER_ALLOWED)


def _a(label: str) -> str:
    # "an XML document": the letter X is spoken with a vowel.
    return ("an " if label[:1].lower() in "aeiox" else "a ") + label


def _short(kind: str) -> str:
    return {"text": "plain text", "jpeg": "JPEG", "tiff": "TIFF"}.get(kind, kind.upper())


def _pages(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> "pages 1–3, 5"; [2] -> "page 2"."""
    runs: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [0]:
        if n == prev + 1:
            prev = n
            continue
        runs.append(str(start) if start == prev else f"{start}–{prev}")
        start = prev = n
    return ("page " if len(numbers) == 1 else "pages ") + ", ".join(runs)


def _dpi(value: float | None, unit: int | None) -> float | None:
    # 0/0 is NaN in a TIFF's rational and x/0 is infinite: no resolution, as for 0.
    if value is None or not math.isfinite(value) or value <= 0:
        return None
    return value * 2.54 if unit == 3 else value


def _fmt(dpi: float) -> str:
    """The DPI as people read it, never rounded into 299.5–300.5: 117.9 px/cm is
    299.466 DPI, which must not read "299.5" (a resolution that passes)."""
    if abs(dpi - round(dpi)) < 0.05:
        return f"{dpi:.0f}"
    for digits in (1, 2):
        shown = f"{dpi:.{digits}f}"
        if abs(float(shown) - TARGET_DPI) > DPI_TOLERANCE:
            return shown
    return f"{dpi:.3f}"


def _per_cm(frame: Frame) -> str:
    """" (117.9 pixels per centimetre)" for a resolution stored per centimetre, so the
    clerk recognises the figure their scanner shows; "" for one stored per inch."""
    if frame.unit != 3 or frame.x_resolution is None or frame.y_resolution is None:
        return ""
    x, y = f"{frame.x_resolution:g}", f"{frame.y_resolution:g}"
    return f" ({x if x == y else f'{x} × {y}'} pixels per centimetre)"


# -------------------------------------------------------------------- rules

def empty_file(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    size, filled = check.attachment.size, check.filetype.empty_of
    if check.empty and (not size or not filled):
        yield check.finding("empty-file", "is empty (0 bytes) — the copy probably failed; "
                            "put the complete file in its place")
    elif check.empty:
        yield check.finding("empty-file", f"is empty ({what_is_empty(size, filled)}) — "
                            "export or copy the file again and put the complete file in "
                            "its place")


def too_large(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    size, limit = check.attachment.size, cfg.max_attachment_bytes
    if size > limit:
        yield check.finding("too-large", f"is {size_words(size)}; at most "
                            f"{limit_words(limit, over=size)} is taken ([validation] "
                            "max_attachment_bytes) — compress it, scan at a lower colour "
                            "depth, or split it into several files")


def _refused_fix(check: AttachmentCheck, allowed: frozenset[str], listed: bool) -> str:
    """What to do with a file whose content the channel does not take: one fix, said by
    type-not-allowed and, for a misnamed file, by extension-mismatch too, so that the
    two lines never give the clerk two different fixes (or a type the channel refuses).
    `listed`: the message has just listed the types the channel allows."""
    if check.kind == "shortcut":
        return ("copy the file itself here (on Windows drag it without holding Alt; on a "
                "Mac copy the original, not an alias) and remove the shortcut")
    if check.filetype.label == INVOICE_LABEL:
        # Most likely an invoice put into another invoice's folder: "export it as PDF"
        # would send it as that invoice's attachment and never as an invoice.
        return ("if it is an invoice to send, move it out of this folder into the outbox "
                "itself, where it is sent as an invoice of its own (its attachments go into "
                "a folder named like it without .xml); if it is meant as an attachment, "
                f"export it as PDF and {IN_ITS_PLACE}")
    lower_name = check.attachment.rel.lower()
    fix = "export it as PDF" if "pdf" in allowed else "convert it to one of those"
    if check.kind == "heic" and "jpeg" in allowed:
        fix = "export it as JPEG or PDF"
    elif check.kind == "utf16" and "csv" in allowed:
        fix = 'save it again as "CSV UTF-8", or export it as PDF,'
    elif check.kind in ("xlsm", "xlsb") and "xlsx" in allowed:
        fix = "save it as an Excel Workbook (.xlsx, which keeps no macros) or export it as PDF"
    elif check.kind == "docm" and "docx" in allowed:
        fix = "save it as a Word Document (.docx, which keeps no macros) or export it as PDF"
    elif check.kind == "ole" and "xlsx" in allowed and lower_name.endswith((".xls", ".xlt")):
        # Opened in Excel, an old workbook saves as .xlsx in two clicks: easier than a PDF.
        fix = "open it in Excel and save it as an Excel Workbook (.xlsx), or export it as PDF,"
    elif check.kind == "ole" and "docx" in allowed and lower_name.endswith((".doc", ".dot")):
        fix = "open it in Word and save it as a Word Document (.docx), or export it as PDF,"
    elif "pdf" not in allowed and not listed:
        names = ", ".join(_short(k) for k in sorted(allowed)) or "nothing"
        fix = f"convert it to one of {names}"
    return f"{fix} and {IN_ITS_PLACE}"


def type_not_allowed(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    if check.empty:
        return
    allowed = allowed_kinds(check.channel, cfg)
    if check.kind in allowed:
        return
    names = ", ".join(_short(k) for k in sorted(allowed)) or "nothing"
    if check.kind == "shortcut":
        fix = _refused_fix(check, allowed, listed=True)
        yield check.finding("type-not-allowed", f"is {_a(check.filetype.label)}, not the "
                            f"file itself; the receiver could not open it — {fix}")
        return
    if check.kind == "text" and check.ext_kind == "csv" and "csv" in allowed:
        # Named .csv, so the clerk believes it is CSV: say why it is not.
        yield check.finding("type-not-allowed",
                            f"is not CSV: its lines do not share one delimiter (comma, "
                            f"semicolon or tab), so it is {_a(check.filetype.label)}; the "
                            f"{check.channel} channel allows {names} — export it again as "
                            "CSV with the same delimiter on every line, or as PDF, and "
                            f"{IN_ITS_PLACE}")
        return
    yield check.finding("type-not-allowed",
                        f"is {_a(check.filetype.label)}; the {check.channel} channel allows "
                        f"{names} — {_refused_fix(check, allowed, listed=True)}")


def extension_mismatch(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    promised = check.ext_kind
    if promised is None or check.empty or check.kind == promised:
        return
    if promised in TEXT_KINDS and check.kind in TEXT_KINDS:
        return  # .csv / .txt: either agrees with CSV or text content
    wanted = file_type(promised).label
    allowed = allowed_kinds(check.channel, cfg)
    export = f"export the document as {_short(promised)} and {IN_ITS_PLACE}"
    if check.kind not in allowed:
        # type-not-allowed follows: the same fix, the channel's (a ZIP named .docx on
        # e-invoice must not be told "export it as DOCX", a type that channel refuses).
        fix = _refused_fix(check, allowed, listed=False)
    elif promised not in allowed:
        fix = "rename it to match its content"
    elif check.kind in IMAGE_KINDS or check.kind in ("pdf", "csv", "xlsx", "ods", "docx"):
        fix = f"rename it to match its content, or {export}"
    else:
        fix = export
    yield check.finding("extension-mismatch",
                        f"content is {_a(check.filetype.label)}, not {_a(wanted)} — {fix}")


def zip_whole(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    """An XLSX, DOCX, ODS (any ZIP) without the end every such file closes with: sent,
    no program could open it, and a copy still at work leaves just this (cutshort.py)."""
    if check.filetype.ends_early:
        yield check.finding("zip-unreadable", f"is {_a(check.filetype.label)} that ends "
                            "early: the list of its contents that every such file ends "
                            "with is missing, as when a copy stops before the end — copy "
                            f"or save the file again and {IN_ITS_PLACE}")


def pdf_readable(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    if check.pdf is not None and (problem := check.pdf.problem()) is not None:
        yield check.finding(*problem)


def image_readable(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    facts = check.image
    if facts is None:
        return
    limit = cfg.max_image_pixels
    said = (f"the limit is {limit:,} pixels ([validation] max_image_pixels, which an "
            "administrator can raise)")
    fix = f"{said} — scan it at a lower resolution or scale it down, or save it as PDF"
    if facts.too_large is not None and not any(f.width * f.height > limit
                                               for f in facts.frames):
        # Its header could not be read again: the pixel count Pillow gave is all there is.
        yield check.finding("image-too-large", f"is an image of {facts.too_large}; {fix}")
        return
    if facts.too_many_pages:
        yield check.finding("image-too-large", f"has more than {MAX_TIFF_PAGES:,} pages, "
                            "more than outboxd reads in one attachment — split it into "
                            "several files or save it as PDF")
        return
    if facts.compression is not None:
        # "Save it again" would save it the same way: the fix is another compression.
        fix = ("save it again as a TIFF without compression or with LZW or JPEG "
               "compression, or as PDF," if check.kind in allowed_kinds(check.channel, cfg)
               else "export it as PDF")
        yield check.finding("image-unreadable", f"is not a readable "
                            f"{check.filetype.label} ({facts.error}) — {fix} and "
                            f"{IN_ITS_PLACE}")
        return
    if facts.error == DAMAGED_OTHERWISE:
        label, said = check.filetype.label, f" ({facts.detail})" if facts.detail else ""
        yield check.finding("image-unreadable", f"is not a readable {label}: the file is "
                            f"damaged, or is not really a {label}{said} — save or export "
                            "the image again from the program that made it, or scan the "
                            "paper again")
        return
    if facts.error is not None:
        yield check.finding("image-unreadable", f"is not a readable "
                            f"{check.filetype.label} ({facts.error}) — save or export the "
                            "image again")
        return
    several = len(facts.frames) > 1
    for number, frame in enumerate(facts.frames, 1):
        pixels = frame.width * frame.height
        if pixels > limit:
            where = f"page {number} is" if several else "is"
            yield check.finding("image-too-large", f"{where} {frame.width:,} × "
                                f"{frame.height:,} = {pixels:,} pixels; "
                                f"{_at_300(check, cfg, frame, said) or fix}")


def _at_300(check: AttachmentCheck, cfg: ValidationConfig, frame: Frame, said: str
            ) -> str | None:
    """The fix for a page over max_image_pixels that external print takes at its very
    resolution (an A0 plan at 300 DPI): fewer pixels would break tiff-resolution, so
    "scan it at a lower resolution" is no fix there. None for any other page."""
    if check.channel != "external-print" or (
            check.kind != "tiff" and not convert.wanted(check.kind, check.channel,
                                                        cfg.convert_images)):
        return None
    x, y = _dpi(frame.x_resolution, frame.unit), _dpi(frame.y_resolution, frame.unit)
    if frame.unit not in (None, 2, 3) or x is None or y is None or \
            not all(abs(v - TARGET_DPI) <= DPI_TOLERANCE for v in (x, y)):
        return None
    return (f"{said} — external print needs it at {TARGET_DPI:.0f} DPI, at which a page "
            "this large cannot have fewer pixels: save it as PDF")


def tiff_resolution(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    """Every page 300 DPI, x and y; the unit is explicit or (missing) inch."""
    facts = check.image
    converting = convert.wanted(check.kind, check.channel, cfg.convert_images)
    if (check.kind != "tiff" and not converting) or facts is None or facts.error or \
            facts.too_large:
        return
    fix = f"external print needs {TARGET_DPI:.0f} DPI — rescan or export at 300 DPI"
    problems: dict[str, list[int]] = {}  # what is wrong -> pages, so 40 bad pages = 1 line
    for number, frame in enumerate(facts.frames, 1):
        x, y = _dpi(frame.x_resolution, frame.unit), _dpi(frame.y_resolution, frame.unit)
        if frame.unit == 1:
            what = "has a resolution without a unit (ResolutionUnit 1)"
        elif frame.unit not in (None, 2, 3):
            what = f"has an unknown resolution unit ({frame.unit})"
        elif x is None and y is None:
            what = "has no resolution"
        elif x is None or y is None:
            what = _one_axis(frame, missing_x=x is None)
        elif all(abs(v - TARGET_DPI) <= DPI_TOLERANCE for v in (x, y)):
            continue
        elif abs(x - y) <= DPI_TOLERANCE:
            what = f"is {_fmt(x)} DPI{_per_cm(frame)}"
        else:
            what = f"is {_fmt(x)} × {_fmt(y)} DPI{_per_cm(frame)}"
        problems.setdefault(what, []).append(number)
    for what, numbers in problems.items():
        verb = what if len(numbers) == 1 else what.replace("is ", "are ", 1).replace(
            "has ", "have ", 1)
        # A PNG or JPEG (converted for print) is one picture, not "page 1".
        where = f"{_pages(numbers)} " if check.kind == "tiff" else ""
        yield check.finding("tiff-resolution", f"{where}{verb}; {fix}")


def _one_axis(frame: Frame, missing_x: bool) -> str:
    """A page that states one resolution and not the other: "has no resolution" sent the
    clerk to a scanner setting that was set, for a tag the program left out (or 0)."""
    stated, missing = ("vertical", "horizontal") if missing_x else ("horizontal", "vertical")
    tag, value = ("XResolution", frame.x_resolution) if missing_x else \
        ("YResolution", frame.y_resolution)
    why = f"{tag} is missing" if value is None else f"{tag} is {value:g}"
    return f"has a {stated} resolution but no {missing} one ({why})"


def animated_image(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    """An animated PNG converted for print: the PDF would hold its first frame alone."""
    facts = check.image
    if facts is not None and facts.animation_frames > 1 and \
            convert.wanted(check.kind, check.channel, cfg.convert_images):
        yield check.finding("image-animated", f"is an animated PNG of "
                            f"{facts.animation_frames} frames; printed, it would show only "
                            "its first — save the picture you mean as a PNG of one frame, "
                            f"or export it as PDF, and {IN_ITS_PLACE}")


def pdf_recommended(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    broken = check.filetype.ends_early or (
        check.image is not None and (check.image.error or check.image.too_large))
    if check.kind != "pdf" and not check.empty and not broken and \
            check.kind in allowed_kinds(check.channel, cfg):
        yield check.finding("pdf-recommended", f"is {_a(check.filetype.label)}; PDF is "
                            "recommended for e-invoice attachments — export it as PDF if "
                            "you can", severity="warning")


def csv_encoding(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    # Only for a file the channel takes: one refused is not "sent as it is".
    if check.filetype.warning and check.kind in ("csv", "text") and \
            check.kind in allowed_kinds(check.channel, cfg):
        save_as = '"CSV UTF-8"' if check.kind == "csv" else "UTF-8"
        yield check.finding("csv-windows-1252", f"{check.filetype.warning}; it is sent as it "
                            f"is — save it as {save_as} so that every receiver reads "
                            "its characters right", severity="warning")


def copy_of_invoice(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
    if not check.empty and check.attachment.sha256 == check.invoice_sha256:
        yield check.finding("copy-of-invoice", f"is byte-identical to the invoice file "
                            f"{check.invoice_name}; a copy of the invoice is not an "
                            "attachment — remove it or put the intended document here")
