"""Per-attachment validation for the bundle's channel (docs/folder-convention.md).

Two layers, so rules plug in and stay pure:

* *probes* (``pdfprobe.py``, ``imageprobe.py``) open the content once (pypdf, Pillow) and turn
  what they find — the libraries' exceptions included — into plain facts on
  an ``AttachmentCheck``;
* *rules* (``attachment_rules.py``) are plain callables ``(check, cfg) ->
  Iterable[Finding]`` that only look at those facts. ``RULES`` here lists them
  per channel; a new rule is a function there and one entry here.
"""

from __future__ import annotations

import io
from dataclasses import replace
from typing import BinaryIO

from daemon.bundle import Attachment, Bundle, Finding
from daemon.configuration.config import ValidationConfig
from daemon.errors import InputError
from daemon.fs.fsops import open_below
from daemon.fs.fsread import read_bounded
from daemon.reading.readonce import kept_read
from daemon.validation import convert
from daemon.validation.attachment_rules import (
    AttachmentCheck,
    Rule,
    animated_image,
    copy_of_invoice,
    csv_encoding,
    empty_file,
    extension_mismatch,
    image_readable,
    pdf_readable,
    pdf_recommended,
    tiff_resolution,
    too_large,
    type_not_allowed,
    zip_whole,
)
from daemon.validation.filetypes import (
    IMAGE_KINDS,
    ZIP_KINDS,
    FileType,
    file_type,
    kind_for_extension,
)
from daemon.validation.imageprobe import ImageFacts, probe_image
from daemon.validation.pdfprobe import PdfFacts, probe_pdf
from daemon.validation.sniff import sniff

# An attachment up to this size (and max_attachment_bytes) is read into memory once for
# sniffing and probing; a larger limit in the configuration must not mean larger buffers.
MAX_IN_MEMORY = 64 << 20


# Order is the order of the findings: the mismatch explains best what is wrong
# ("content is a Windows executable, not a PDF"), so it comes before the type.
COMMON_RULES: tuple[Rule, ...] = (empty_file, too_large, extension_mismatch, type_not_allowed,
                                  zip_whole, pdf_readable, image_readable, copy_of_invoice)
RULES: dict[str, tuple[Rule, ...]] = {
    "e-invoice": COMMON_RULES + (pdf_recommended, csv_encoding),
    "external-print": COMMON_RULES + (tiff_resolution, animated_image),
    "original-print": COMMON_RULES + (animated_image,),
}


# -------------------------------------------------------------- entry point

def check_attachment(att: Attachment, bundle: Bundle, cfg: ValidationConfig,
                     cache: convert.KeyOwners | None = None
                     ) -> tuple[Attachment, list[Finding]]:
    """Open once, sniff, probe, run the channel's rules; the attachment comes back annotated.
    Within readonce.keeping_reads, from the bytes matching read and hashed, not opened.
    What is logged meanwhile names the file (a library's own failure on it, said to the
    clerk only as "damaged", is logged for the admin)."""
    from daemon import logs
    with logs.about_file(att.rel):
        return _checked(att, bundle, cfg, cache)


def _checked(att: Attachment, bundle: Bundle, cfg: ValidationConfig,
             cache: convert.KeyOwners | None) -> tuple[Attachment, list[Finding]]:
    named = kind_for_extension(att.original_name)
    data = kept_read(att.path)
    if data is not None:
        # Closed at once: pypdf's reader is a reference cycle holding its stream (and
        # the copy of the bytes pypdf makes of it) until a full garbage collection,
        # which made a bundle of many large PDFs cost a reader memory by the file.
        with io.BytesIO(data) as kept:
            filetype, pdf, image = _content(kept, att, named, cfg)
    else:
        try:
            fh = open_below(*att.where, att.rel)
        except InputError as exc:
            return att, [Finding(exc.code, exc.file, exc.message, "error", att.invoice_id)]
        with fh:
            src: BinaryIO = fh
            in_memory = min(cfg.max_attachment_bytes, MAX_IN_MEMORY)
            if att.size <= in_memory:
                # One read into memory: pypdf and the sniffer then seek and read in
                # small steps on a BytesIO instead of a buffered file.
                data = read_bounded(fh, in_memory)
                src = io.BytesIO(data) if data is not None else fh
            with src:  # closed at once, as above
                filetype, pdf, image = _content(src, att, named, cfg)
    check = AttachmentCheck(att, filetype, named,
                            bundle.channel, bundle.invoice_file.sha256,
                            bundle.invoice_file.name, pdf=pdf, image=image)
    rules = RULES.get(bundle.channel, COMMON_RULES)
    findings = [f for rule in rules for f in rule(check, cfg)]
    pages: int | None = att.pages
    if pdf is not None and not pdf.encrypted and pdf.error is None:
        pages = pdf.pages
    elif filetype.kind == "tiff" and image is not None and image.frames:
        pages = len(image.frames)
    att = replace(att, content_type=filetype.mime, pages=pages)
    if convert.wanted(filetype.kind, bundle.channel, cfg.convert_images) and not any(
            f.severity == "error" for f in findings):
        att, findings = convert.checked(att, bundle, cfg, findings,
                                        {} if cache is None else cache)
    return att, findings


def _content(src: BinaryIO, att: Attachment, named: str | None, cfg: ValidationConfig
             ) -> tuple[FileType, PdfFacts | None, ImageFacts | None]:
    """What the attachment open at `src` is, sniffed, and what the probes found in it."""
    # A file over the size limit is refused anyway: nothing in it is parsed (a
    # hostile PDF for pypdf, a ZIP directory of millions, a TIFF of many pages).
    within = att.size <= cfg.max_attachment_bytes
    filetype = sniff(src, deep=within)
    if filetype.one_column and named == "csv":
        # A one-column table has no delimiter to share; its .csv name says it is one.
        filetype = file_type("csv", filetype.warning)
    if (not within or filetype.ends_early) and filetype.kind == "zip" and named in ZIP_KINDS:
        # Its directory was not read (or is not there yet: a copy still at work): taken
        # for what its extension says, so that the size, or the missing end, is the one
        # error reported.
        filetype = file_type(named, ends_early=filetype.ends_early)
    if filetype.kind == "pdf" and within:
        return filetype, probe_pdf(src), None
    if filetype.kind in IMAGE_KINDS and within:
        return filetype, None, probe_image(src, filetype.kind, cfg.max_image_pixels)
    return filetype, None, None


def validate_bundle(bundle: Bundle, cfg: ValidationConfig) -> Bundle:
    """The bundle with sniffed content types, page counts and every finding appended.

    The channel is ``bundle.channel`` (attachments.toml may override the
    configured one for this bundle), never ``cfg.channel``.
    """
    checked: list[Attachment] = []
    findings: list[Finding] = []
    cache: convert.KeyOwners = {}
    for att in bundle.attachments:
        annotated, found = check_attachment(att, bundle, cfg, cache)
        checked.append(annotated)
        findings.extend(found)
    return replace(bundle, attachments=tuple(checked)).with_findings(findings)
