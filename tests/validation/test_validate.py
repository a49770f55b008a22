"""Per-attachment validation for each channel (docs/folder-convention.md)."""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import io
import json
import os
import signal
import struct
import threading
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import pdf_bytes
from PIL import Image, ImageFile, TiffImagePlugin
from pypdf import PdfWriter
from swaps import opened_in, swap_for_link
from validating import (
    INVOICE,
    Outbox,
    codes,
    image_bytes,
    only,
    pdf_carrying,
    pdf_unpacking_to,
    png_claiming,
    tiff_claiming,
    tiff_compressed,
    tiff_pages,
)

from daemon.bundle import Bundle, Finding
from daemon.configuration.config import ValidationConfig
from daemon.reading import readonce
from daemon.validation import imageprobe, sniff, validate
from daemon.validation.attachment_rules import AttachmentCheck
from daemon.validation.validate import RULES, validate_bundle


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path)


class TestGoodFiles:
    def test_pdf_passes_and_gets_type_and_pages(self, outbox: Outbox) -> None:
        """A 3-page PDF passes every channel and carries its MIME type and page count."""
        for channel in RULES:
            bundle = outbox.validate("timesheet.pdf", pdf_bytes(3), channel=channel)
            assert bundle.findings == ()
            att = bundle.attachments[0]
            assert (att.content_type, att.pages) == ("application/pdf", 3)

    def test_other_bundle_fields_are_kept(self, outbox: Outbox) -> None:
        """Validation appends findings; existing findings and the invoice stay as they were."""
        outbox.write("a.pdf", pdf_bytes())
        earlier = Finding("unattached-invoice", "INV-1001.xml", "x — y", "warning")
        bundle = outbox.bundle("a.pdf").with_findings([earlier])
        out = validate_bundle(bundle, ValidationConfig())
        assert out.findings == (earlier,)
        assert out.invoice_file == bundle.invoice_file and out.sidecar == bundle.sidecar

    def test_multi_page_300_dpi_tiff_for_external_print(self, outbox: Outbox) -> None:
        """A 3-page TIFF at 300 DPI passes external print; pages is the frame count."""
        bundle = outbox.validate("scan.tif", tiff_pages((300, 300), (300, 300), (300, 300)),
                                 channel="external-print")
        assert bundle.findings == ()
        att = bundle.attachments[0]
        assert (att.content_type, att.pages) == ("image/tiff", 3)

    def test_centimetre_resolution_converts_to_300_dpi(self, outbox: Outbox) -> None:
        """118.11 px/cm (ResolutionUnit 3) is 300 DPI."""
        data = tiff_pages(None, tiffinfo={296: 3, 282: 118.11, 283: 118.11})
        assert outbox.validate("scan.tif", data, channel="external-print").findings == ()

    @pytest.mark.parametrize("rational", [(0, 0), (300, 0)], ids=["nan", "infinite"])
    def test_a_resolution_that_is_not_a_number_is_no_resolution(
            self, outbox: Outbox, rational: tuple[int, int]) -> None:
        """A rational of 0/0 (NaN) or 300/0 (infinite) is reported as "has no resolution"
        with the fix, instead of failing the whole bundle with a ValueError."""
        value = TiffImagePlugin.IFDRational(*rational)
        data = tiff_pages(None, tiffinfo={296: 2, 282: value, 283: value})
        bundle = outbox.validate("scan.tif", data, channel="external-print")
        assert "has no resolution" in only(bundle, "tiff-resolution").message

    def test_a_tiff_of_more_pages_than_outboxd_reads_is_refused(
            self, outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
        """A TIFF past MAX_TIFF_PAGES (1,000; 3 here) is image-too-large with the fix,
        after reading one page more than the limit, not all of them; one at the limit
        passes."""
        monkeypatch.setattr(imageprobe, "MAX_TIFF_PAGES", 3)
        at_limit = outbox.validate("three.tif", tiff_pages(*[(300, 300)] * 3),
                                   channel="external-print")
        assert at_limit.findings == ()
        over = outbox.validate("four.tif", tiff_pages(*[(300, 300)] * 4),
                               channel="external-print")
        finding = only(over, "image-too-large")
        assert "pages" in finding.message and "split it" in finding.message

    def test_a_zip_over_the_size_limit_is_refused_for_its_size_alone(
            self, outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
        """An .xlsx over max_attachment_bytes is too-large; its central directory (which
        could list millions of entries) is not read, and no type error is added for it."""
        def no_central_directory(*_: object) -> str:
            raise AssertionError("the central directory of an oversized ZIP was read")
        monkeypatch.setattr(sniff, "_zip_kind", no_central_directory)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            z.writestr("[Content_Types].xml", "x")
            z.writestr("xl/workbook.xml", "y" * 5000)
        bundle = outbox.validate("sheet.xlsx", buf.getvalue(),
                                 cfg=ValidationConfig(max_attachment_bytes=100))
        assert codes(bundle, "error") == ["too-large"]

    def test_missing_unit_means_inch(self, outbox: Outbox) -> None:
        """Resolution tags without ResolutionUnit are read as dots per inch."""
        data = tiff_pages(None, tiffinfo={282: 300.0, 283: 300.0})
        assert outbox.validate("scan.tif", data, channel="external-print").findings == ()

    def test_channel_comes_from_the_bundle_not_the_config(self, outbox: Outbox) -> None:
        """A per-bundle channel override wins over [validation] channel."""
        cfg = ValidationConfig(channel="original-print")
        bundle = outbox.validate("scan.tif", tiff_pages((300, 300)), channel="external-print",
                                 cfg=cfg)
        assert bundle.findings == ()


class TestAlwaysErrors:
    def test_empty_file(self, outbox: Outbox) -> None:
        """A 0-byte file is one empty-file error, not a pile of follow-up errors."""
        bundle = outbox.validate("notes.pdf", b"")
        assert codes(bundle) == ["empty-file"]
        only(bundle, "empty-file")

    def test_a_file_emptied_after_it_was_listed_is_told_as_0_bytes(
            self, outbox: Outbox) -> None:
        """A file matched at 12 bytes and found empty when read (a copy that started over):
        its error says 0 bytes as the file now is, never "12 bytes: " with nothing after."""
        path = outbox.write("notes.pdf", pdf_bytes()[:12])
        bundle = outbox.bundle("notes.pdf")
        path.write_bytes(b"")
        found = validate_bundle(bundle, ValidationConfig())
        assert only(found, "empty-file").message == (
            "is empty (0 bytes) — the copy probably failed; put the complete file in its "
            "place")

    def test_exactly_the_size_limit_is_allowed(self, outbox: Outbox) -> None:
        """Size == max_attachment_bytes passes; one byte more is too-large with both sizes."""
        data = pdf_bytes()
        cfg = ValidationConfig(max_attachment_bytes=len(data))
        assert outbox.validate("a.pdf", data, cfg=cfg).findings == ()
        cfg = ValidationConfig(max_attachment_bytes=len(data) - 1)
        bundle = outbox.validate("a.pdf", data, cfg=cfg)
        message = only(bundle, "too-large").message
        assert f"{len(data):,}" in message and f"{len(data) - 1:,}" in message
        assert bundle.attachments[0].pages is None, "an over-size PDF is not parsed"

    @pytest.mark.parametrize("name,data,kind,pages", [
        ("a.pdf", pdf_bytes(3), "application/pdf", 3),
        ("s.tif", tiff_pages((300, 300), (300, 300)), "image/tiff", 2),
    ])
    def test_larger_than_memory_is_validated_the_same(
            self, outbox: Outbox, monkeypatch: pytest.MonkeyPatch, name: str, data: bytes,
            kind: str, pages: int) -> None:
        """An attachment within max_attachment_bytes but over what is read into memory is
        sniffed and probed from the file, with the same type, pages and findings."""
        in_memory = outbox.validate(name, data, channel="external-print")
        monkeypatch.setattr(validate, "MAX_IN_MEMORY", len(data) - 1)
        from_file = outbox.validate(name, data, channel="external-print")
        assert from_file == in_memory
        assert (from_file.attachments[0].content_type, from_file.attachments[0].pages,
                from_file.findings) == (kind, pages, ())

    @pytest.mark.parametrize(("name", "data"), [
        ("a.pdf", pdf_bytes(100)),
        ("s.png", b""),  # made below: noise, which does not compress
    ])
    def test_a_share_failing_while_a_large_attachment_is_probed_is_no_finding(
            self, outbox: Outbox, monkeypatch: pytest.MonkeyPatch, name: str,
            data: bytes) -> None:
        """An attachment over what is read into memory is probed from the file, so the
        share can fail (EIO) under pypdf or Pillow: that is the share's fault, raised as
        it is (the bundle is read again later), never a pdf-unreadable or
        image-unreadable error that quarantines a good file "damaged"."""
        import errno

        from daemon.fs import namedreads
        if not data:
            data = _noise_png()
        monkeypatch.setattr(validate, "MAX_IN_MEMORY", len(data) - 1)
        real_sniff, real_read = validate.sniff, namedreads._readinto
        failing = [False]

        def sniffed(*args: Any, **kw: Any) -> Any:
            found = real_sniff(*args, **kw)
            failing[0] = True  # the share goes away once the type is known
            return found

        def share_fails(fh: Any, buffer: Any) -> int | None:
            if failing[0] and getattr(fh, "shown", "").endswith(name):
                raise OSError(errno.EIO, os.strerror(errno.EIO))  # as read(2): no name
            return real_read(fh, buffer)
        monkeypatch.setattr(validate, "sniff", sniffed)
        monkeypatch.setattr(namedreads, "_readinto", share_fails)
        with pytest.raises(OSError) as raised:
            outbox.validate(name, data)
        assert raised.value.errno == errno.EIO
        assert raised.value.filename == f"INV-1001/{name}"

    def test_a_damaged_pdf_of_exactly_the_size_limit_is_still_read_and_refused(
            self, outbox: Outbox) -> None:
        """A file of exactly max_attachment_bytes is within the limit: it is parsed like
        any other, so a damaged PDF of that size is pdf-unreadable, not sent unread."""
        data = b"%PDF-1.7\n" + b"\x00garbage" * 50
        cfg = ValidationConfig(max_attachment_bytes=len(data))
        assert codes(outbox.validate("broken.pdf", data, cfg=cfg)) == ["pdf-unreadable"]

    def test_an_empty_attachment_beside_an_empty_invoice_is_empty_not_a_copy(
            self, outbox: Outbox) -> None:
        """Two failed exports have the same (empty) bytes: the attachment is told it is
        empty, never "byte-identical to the invoice file — remove it"."""
        outbox.write("notes.pdf", b"")
        bundle = outbox.bundle("notes.pdf")
        empty = dataclasses.replace(bundle.invoice_file, size=0,
                                    sha256=hashlib.sha256(b"").hexdigest())
        found = validate_bundle(dataclasses.replace(bundle, invoice_file=empty),
                                ValidationConfig())
        assert codes(found) == ["empty-file"]

    def test_exe_named_pdf(self, outbox: Outbox) -> None:
        """A Windows executable named .pdf contradicts its extension and is never allowed."""
        bundle = outbox.validate("invoice-copy.pdf", b"MZ" + b"\x00" * 512)
        assert set(codes(bundle)) == {"extension-mismatch", "type-not-allowed"}
        message = only(bundle, "extension-mismatch").message
        assert message.startswith("content is a Windows executable, not a PDF — export")
        assert bundle.attachments[0].content_type != "application/pdf"

    def test_pdf_named_tif(self, outbox: Outbox) -> None:
        """A PDF named .tif is an extension mismatch (folder-convention.md's own example)."""
        bundle = outbox.validate("scan.tif", pdf_bytes(), channel="external-print")
        assert codes(bundle) == ["extension-mismatch"]
        assert "not a TIFF image" in only(bundle, "extension-mismatch").message

    def test_txt_holding_csv_is_no_mismatch(self, outbox: Outbox) -> None:
        """.txt and .csv promise CSV or text: either content keeps the promise."""
        bundle = outbox.validate("hours.txt", b"a;b\n1;2\n")
        assert "extension-mismatch" not in codes(bundle)
        assert bundle.attachments[0].content_type == "text/csv"

    def test_unknown_extension_lets_content_decide(self, outbox: Outbox) -> None:
        """An unknown or missing extension is no error by itself."""
        assert codes(outbox.validate("scan.dat", pdf_bytes())) == []
        assert codes(outbox.validate("scan", pdf_bytes())) == []

    @pytest.mark.parametrize("name,data", [
        ("timesheet.pdf - Shortcut.lnk",
         bytes.fromhex("4c0000000114020000000000c000000000000046") + bytes(60)),
        ("timesheet.pdf alias", b"book\x00\x00\x00\x00mark\x00\x00\x00\x00" + bytes(40)),
        ("Contract.url", b"[InternetShortcut]\r\nURL=file:///C:/Contracts/contract.pdf\r\n"),
        # Saved by an editor with a byte-order mark and a blank line first: still a shortcut.
        ("Offer.url", b"\xef\xbb\xbf\r\n[InternetShortcut]\r\nURL=file:///C:/offer.pdf\r\n"),
    ], ids=["windows-lnk", "mac-alias", "windows-url", "url-after-bom-and-blank-line"])
    def test_shortcut_is_refused_as_a_shortcut(self, outbox: Outbox, name: str,
                                               data: bytes) -> None:
        """A Windows shortcut or a Mac alias dropped in place of the file is refused with
        what it is and the fix (copy the file itself), not as "a file of unknown type" to
        "export as PDF"; it is never sent."""
        bundle = outbox.validate(name, data)
        assert codes(bundle) == ["type-not-allowed"]
        message = only(bundle, "type-not-allowed").message
        assert "is a shortcut (a link to a file elsewhere), not the file itself" in message
        assert "copy the file itself here" in message
        assert "export it as PDF" not in message

    def test_copy_of_invoice(self, outbox: Outbox) -> None:
        """An attachment byte-identical to the invoice file is refused."""
        bundle = outbox.validate("invoice.xml", INVOICE)
        assert "copy-of-invoice" in codes(bundle)
        assert "INV-1001.xml" in only(bundle, "copy-of-invoice").message

    def test_fifo_gives_a_finding_and_does_not_hang(self, outbox: Outbox) -> None:
        """A FIFO named x.pdf is reported, never opened for a blocking read."""
        os.mkfifo(outbox.root / "INV-1001" / "x.pdf")

        def hung(signum: int, frame: object) -> None:
            raise TimeoutError("validation blocked on a FIFO")

        previous = signal.signal(signal.SIGALRM, hung)
        signal.alarm(5)  # a hang fails this test instead of stalling the suite
        try:
            bundle = outbox.validate("x.pdf")
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
        assert codes(bundle) == ["not-a-file"]
        assert "FIFO" in only(bundle, "not-a-file").message

    def test_symlink_gives_a_finding(self, outbox: Outbox, tmp_path: Path) -> None:
        """A symbolic link is reported and never followed, even to a good PDF."""
        target = tmp_path / "elsewhere.pdf"
        target.write_bytes(pdf_bytes())
        (outbox.root / "INV-1001" / "link.pdf").symlink_to(target)
        bundle = outbox.validate("link.pdf")
        assert codes(bundle) == ["symlink"]
        only(bundle, "symlink")

    def test_a_sidecar_swapped_for_a_link_after_matching_is_never_followed(
            self, outbox: Outbox, tmp_path: Path) -> None:
        """The sidecar swapped for a link to an outside folder holding a good PDF of the
        same name, between matching and validation: the file is opened from the outbox
        with each folder on its way never followed, so the outside PDF is never opened
        or parsed; the attachment's finding names the link and the fix (and the swap
        changed the snapshot, so the bundle is read again)."""
        outbox.write("a.pdf", pdf_bytes())
        bundle = outbox.bundle("a.pdf")
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "a.pdf").write_bytes(pdf_bytes(3))
        swap_for_link(outbox.root / "INV-1001", outside)
        with opened_in(outside) as opened:
            checked = validate_bundle(bundle, ValidationConfig())
        assert opened == []
        assert codes(checked) == ["symlink"]
        f = only(checked, "symlink")
        assert f.file == "INV-1001/a.pdf" and f.invoice_id == "INV-1001"
        assert "lies in INV-1001, which is a symbolic link" in f.message
        assert checked.attachments[0].pages is None

    def test_each_attachment_is_judged_on_its_own(self, outbox: Outbox) -> None:
        """One bad file does not hide another's findings or spoil a good one."""
        outbox.write("good.pdf", pdf_bytes(2))
        outbox.write("empty.pdf", b"")
        outbox.write("prog.pdf", b"MZ" + b"\x00" * 100)
        bundle = validate_bundle(outbox.bundle("good.pdf", "empty.pdf", "prog.pdf"),
                                 ValidationConfig())
        by_file = {f.file: f.code for f in bundle.findings}
        assert "INV-1001/good.pdf" not in by_file
        assert by_file["INV-1001/empty.pdf"] == "empty-file"
        assert [a.pages for a in bundle.attachments] == [2, None, None]


class TestChannels:
    @pytest.mark.parametrize("channel,name,data", [
        ("original-print", "scan.tif", tiff_pages((300, 300))),
        ("external-print", "photo.png", image_bytes("PNG")),
        ("e-invoice", "anim.gif", image_bytes("GIF")),
        ("e-invoice", "letter.docx", None),
    ])
    def test_type_not_allowed(self, outbox: Outbox, channel: str, name: str,
                              data: bytes | None) -> None:
        """Each channel refuses the formats its row of the rules table (folder-convention.md)
        does not list."""
        if data is None:
            import zipfile
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w") as zf:
                zf.writestr("[Content_Types].xml", "<Types/>")
                zf.writestr("word/document.xml", "<d/>")
            data = buf.getvalue()
        bundle = outbox.validate(name, data, channel=channel)
        assert codes(bundle, "error") == ["type-not-allowed"]
        assert channel in only(bundle, "type-not-allowed").message

    def test_allowed_types_is_configurable(self, outbox: Outbox) -> None:
        """e-invoice follows [validation] allowed_types."""
        cfg = ValidationConfig(allowed_types=["pdf", "gif"])
        assert codes(outbox.validate("anim.gif", image_bytes("GIF"), cfg=cfg), "error") == []
        cfg = ValidationConfig(allowed_types=["pdf"])
        assert codes(outbox.validate("p.png", image_bytes("PNG"), cfg=cfg)) == \
            ["type-not-allowed"]

    def test_allowed_types_holds_for_images_also_with_convert_images(
            self, outbox: Outbox) -> None:
        """convert_images turns PNG and JPEG into PDF on the print channels only: on
        e-invoice a PNG that allowed_types does not list is still refused, never let
        through because print would convert it."""
        cfg = ValidationConfig(allowed_types=["pdf"], convert_images=True)
        assert codes(outbox.validate("p.png", image_bytes("PNG"), cfg=cfg)) == \
            ["type-not-allowed"]

    def test_e_invoice_non_pdf_is_a_warning(self, outbox: Outbox) -> None:
        """A PNG is fine for e-invoice, with a "PDF is recommended" warning."""
        bundle = outbox.validate("photo.png", image_bytes("PNG"))
        assert codes(bundle, "error") == []
        assert only(bundle, "pdf-recommended").severity == "warning"
        assert bundle.attachments[0].content_type == "image/png"
        assert bundle.attachments[0].pages is None, "pages are a PDF's or a TIFF's only"

    def test_windows_1252_csv_is_a_warning(self, outbox: Outbox) -> None:
        """A CSV in Windows-1252 is sent, with a warning and PDF recommended."""
        bundle = outbox.validate("hours.csv", "namn;ort\nÅsa;Göteborg\n".encode("cp1252"))
        assert sorted(codes(bundle, "warning")) == ["csv-windows-1252", "pdf-recommended"]
        assert codes(bundle, "error") == []
        assert "Windows-1252" in only(bundle, "csv-windows-1252").message


class TestPdf:
    def test_encrypted_with_empty_user_password(self, outbox: Outbox) -> None:
        """An owner-password-only PDF opens silently in pypdf but is still refused."""
        bundle = outbox.validate("locked.pdf", pdf_bytes(encrypt=True))
        assert codes(bundle) == ["pdf-encrypted"]
        assert bundle.attachments[0].pages is None

    def test_no_pages(self, outbox: Outbox) -> None:
        """A PDF with an empty page tree is refused."""
        buf = io.BytesIO()
        PdfWriter().write(buf)
        assert codes(outbox.validate("blank.pdf", buf.getvalue())) == ["pdf-no-pages"]

    @pytest.mark.parametrize("data", [
        b"%PDF-1.7\n" + b"\x00garbage" * 50,
        pdf_bytes()[:60],
    ])
    def test_unreadable(self, outbox: Outbox, data: bytes) -> None:
        """Something with a PDF header that pypdf cannot open is pdf-unreadable."""
        bundle = outbox.validate("broken.pdf", data)
        assert codes(bundle) == ["pdf-unreadable"]
        assert "pypdf" in only(bundle, "pdf-unreadable").message


class TestImages:
    def test_unreadable_image_says_damaged_in_plain_words_then_pillows_and_the_fix(
            self, outbox: Outbox) -> None:
        """A PNG signature followed by garbage is image-unreadable: the clerk reads
        "damaged, or not really a PNG image" and what to do, Pillow's words after them in
        parentheses for the admin — not Pillow's words alone."""
        bundle = outbox.validate("p.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64)
        assert codes(bundle, "error") == ["image-unreadable"]
        assert only(bundle, "image-unreadable").message == (
            "is not a readable PNG image: the file is damaged, or is not really a PNG "
            "image (Pillow: cannot identify image file) — save or export the image again "
            "from the program that made it, or scan the paper again")
        bundle = outbox.validate("j.jpg", b"\xff\xd8\xff\xe0" + b"\x00" * 64)
        assert only(bundle, "image-unreadable").message.startswith(
            "is not a readable JPEG image: the file is damaged, or is not really a JPEG "
            "image (Pillow: cannot identify image file) — save or export")

    @pytest.mark.parametrize("channel", ["e-invoice", "external-print", "original-print"])
    def test_a_jpeg_of_a_million_markers_is_image_unreadable_on_every_channel(
            self, outbox: Outbox, channel: str) -> None:
        """A JPEG within the size limit made of 1,240,000 empty APP segments (Pillow read
        them for 3 s, holding 160 MB) is probed on every channel, and refused naming
        the file, the limit and the fix, as an unreadable image."""
        buf = io.BytesIO()
        Image.effect_noise((64, 48), 60).convert("RGB").save(buf, "JPEG")
        data = b"\xff\xd8" + b"\xff\xe5\x00\x02" * 1_240_000 + buf.getvalue()[2:]
        assert len(data) <= ValidationConfig().max_attachment_bytes
        bundle = outbox.validate("scan.jpg", data, channel=channel)
        finding = only(bundle, "image-unreadable")
        assert (finding.file, finding.severity) == ("INV-1001/scan.jpg", "error")
        assert finding.message == (
            "is not a readable JPEG image (it holds over 10,000 markers, where a camera or "
            "scanner writes a few dozen: damaged, or made to hold up whoever reads it) — "
            "save or export the image again")

    def test_an_image_cut_short_is_image_unreadable(self, outbox: Outbox) -> None:
        """A PNG whose file ends inside its image data names the file and the fix."""
        buf = io.BytesIO()
        Image.effect_noise((200, 200), 60).save(buf, "PNG", dpi=(300, 300))
        bundle = outbox.validate("p.png", buf.getvalue()[:buf.tell() // 2])
        assert codes(bundle, "error") == ["image-unreadable"]
        finding = only(bundle, "image-unreadable")
        assert "ends before the image does" in finding.message
        assert "save or export the image again" in finding.message

    @pytest.mark.parametrize(("compressions", "said"), [
        ((34712,), "it is compressed as JPEG 2000"),
        ((34661,), "it is compressed as JBIG"),
        ((1, 34712), "page 2 is compressed as JPEG 2000"),
        ((34999,), "it is compressed as compression 34999"),
    ], ids=["jpeg-2000", "jbig", "second-page", "unknown"])
    def test_a_tiff_compressed_as_pillow_cannot_read_names_the_compression_and_the_fix(
            self, outbox: Outbox, compressions: tuple[int, ...], said: str) -> None:
        """A TIFF page compressed as JPEG 2000 or JBIG (or any compression Pillow does not
        read) is image-unreadable naming the page's compression and another to save it
        with, not "Pillow does not recognise it" or a KeyError's number; on a channel that
        refuses TIFF, the fix is that channel's (PDF)."""
        data = tiff_compressed(*compressions)
        bundle = outbox.validate("scan.tif", data, channel="external-print")
        assert [(f.code, f.message) for f in bundle.findings] == [(
            "image-unreadable", f"is not a readable TIFF image ({said}, which outboxd cannot "
            "read) — save it again as a TIFF without compression or with LZW or JPEG "
            "compression, or as PDF, and put that file in its place")]
        bundle = outbox.validate("scan.tif", data, channel="original-print")
        assert only(bundle, "image-unreadable").message.endswith(
            "which outboxd cannot read) — export it as PDF and put that file in its place")

    def test_too_many_pixels_per_config(self, outbox: Outbox) -> None:
        """width × height over max_image_pixels is an error naming the size."""
        cfg = ValidationConfig(max_image_pixels=100)
        bundle = outbox.validate("p.png", image_bytes("PNG", (20, 20)), cfg=cfg)
        assert codes(bundle, "error") == ["image-too-large"]

    def test_exactly_max_image_pixels_is_allowed(self, outbox: Outbox) -> None:
        """docs/folder-convention.md, section 3: only a width × height that exceeds
        max_image_pixels is an error; an image of exactly that many pixels passes."""
        cfg = ValidationConfig(max_image_pixels=400)
        assert codes(outbox.validate("p.png", image_bytes("PNG", (20, 20)), cfg=cfg),
                     "error") == []
        assert codes(outbox.validate("q.png", image_bytes("PNG", (20, 21)), cfg=cfg),
                     "error") == ["image-too-large"]

    def test_bomb_header_is_refused_without_decoding(self, outbox: Outbox) -> None:
        """A 100 000 × 100 000 PNG header is refused from the header alone, quickly."""
        bundle = outbox.validate("bomb.png", png_claiming(100_000, 100_000))
        assert codes(bundle, "error") == ["image-too-large"]

    @pytest.mark.parametrize("name,data,channel", [
        ("bomb.png", png_claiming(40_000, 30_000), "e-invoice"),
        ("bomb.tif", tiff_claiming(40_000, 30_000), "external-print"),
    ], ids=["png", "tiff"])
    def test_an_image_over_twice_the_limit_is_told_by_its_width_and_height(
            self, outbox: Outbox, monkeypatch: pytest.MonkeyPatch, name: str, data: bytes,
            channel: str) -> None:
        """Past twice max_image_pixels Pillow's guard stops before the size can be asked:
        the header is read again with the guard lifted, so that the error says the
        image's width × height (what a clerk scans or saves smaller) and the key an
        administrator can raise; no pixel is decoded for it."""
        def no_decoding(self: object) -> None:
            raise AssertionError("pixels were decoded")
        monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
        monkeypatch.setattr(Image.Image, "load", no_decoding)
        bundle = outbox.validate(name, data, channel=channel)
        assert codes(bundle, "error") == ["image-too-large"]
        # The TIFF is at 300 DPI, which external print needs: it is told to go as PDF.
        fix = ("scan it at a lower resolution or scale it down, or save it as PDF"
               if channel == "e-invoice" else "external print needs it at 300 DPI, at "
               "which a page this large cannot have fewer pixels: save it as PDF")
        assert only(bundle, "image-too-large").line() == (
            f"INV-1001/{name}: is 40,000 × 30,000 = 1,200,000,000 pixels; the limit is "
            "89,478,485 pixels ([validation] max_image_pixels, which an administrator can "
            f"raise) — {fix}")
        assert Image.MAX_IMAGE_PIXELS == 89_478_485  # the guard is back in place

    def test_a_tiff_too_large_is_told_its_size_not_its_resolution_as_well(
            self, outbox: Outbox) -> None:
        """A TIFF past Pillow's guard on external print at 72 DPI: one image-too-large,
        no tiff-resolution beside it (a page it could not read whole is not judged by
        its resolution tags)."""
        bundle = outbox.validate("plan.tif", tiff_claiming(40_000, 30_000, dpi=72),
                                 channel="external-print")
        assert codes(bundle) == ["image-too-large"]

    def test_reading_a_bombs_size_never_lifts_the_limit_another_thread_decodes_under(
            self, outbox: Outbox, monkeypatch: pytest.MonkeyPatch) -> None:
        """Pillow's limit (Image.MAX_IMAGE_PIXELS) is one for every thread, and the
        daemon reads on threads when it has no reader processes. While the width and
        height of an image far over the limit are read, the limit stays in place: an
        image opened on another thread meanwhile is still refused as a bomb (with the
        limit lifted for that read, it was opened, ready to be decoded)."""
        bomb = png_claiming(40_000, 30_000)
        factory, accept = Image.OPEN["PNG"]
        reader = threading.current_thread()
        meanwhile: list[str] = []

        def open_a_bomb_elsewhere() -> None:
            try:
                Image.open(io.BytesIO(bomb)).close()
                meanwhile.append("opened")
            except Image.DecompressionBombError:
                meanwhile.append("refused")

        def watched(fp: object, filename: object = "") -> object:
            if threading.current_thread() is reader:  # each time validation makes one
                other = threading.Thread(target=open_a_bomb_elsewhere)
                other.start()
                other.join()
            return factory(fp, filename)

        monkeypatch.setitem(Image.OPEN, "PNG", (watched, accept))
        bundle = outbox.validate("bomb.png", bomb)
        assert only(bundle, "image-too-large").message.startswith(
            "is 40,000 × 30,000 = 1,200,000,000 pixels")
        assert len(meanwhile) >= 2  # the open that tripped the guard, and the size's read
        assert meanwhile == ["refused"] * len(meanwhile)

    def test_just_over_default_limit_is_an_error_not_a_warning(self, outbox: Outbox) -> None:
        """Between 1× and 2× Pillow's limit Pillow only warns; we refuse."""
        bundle = outbox.validate("big.png", png_claiming(10_000, 9_000))
        assert codes(bundle, "error") == ["image-too-large"]

    def test_pillow_global_limit_is_left_alone(self, outbox: Outbox) -> None:
        """A custom limit is applied for the call only; Pillow's global is restored."""
        before = Image.MAX_IMAGE_PIXELS
        outbox.validate("p.png", image_bytes("PNG", (20, 20)),
                        cfg=ValidationConfig(max_image_pixels=100))
        assert Image.MAX_IMAGE_PIXELS == before

    def test_multi_page_tiff_checks_every_page(self, outbox: Outbox) -> None:
        """A later page over the limit is found, naming the page."""
        buf = io.BytesIO()
        Image.new("L", (8, 8)).save(buf, "TIFF", dpi=(300, 300), save_all=True,
                                    append_images=[Image.new("L", (30, 30))])
        bundle = outbox.validate("s.tif", buf.getvalue(), channel="external-print",
                                 cfg=ValidationConfig(max_image_pixels=100))
        assert "page 2" in only(bundle, "image-too-large").message


class TestTiffResolution:
    def test_one_low_page(self, outbox: Outbox) -> None:
        """Page 2 at 200 DPI gives folder-convention.md's example message."""
        bundle = outbox.validate("scan.tif", tiff_pages((300, 300), (200, 200), (300, 300)),
                                 channel="external-print")
        assert only(bundle, "tiff-resolution").line() == (
            "INV-1001/scan.tif: page 2 is 200 DPI; external print needs 300 DPI — "
            "rescan or export at 300 DPI")

    def test_pages_with_the_same_problem_share_one_finding(self, outbox: Outbox) -> None:
        """Many pages with the same resolution give one line listing them."""
        data = tiff_pages((200, 200), (200, 200), (300, 300), (200, 200))
        message = only(outbox.validate("s.tif", data, channel="external-print"),
                       "tiff-resolution").message
        assert message.startswith("pages 1–2, 4 are 200 DPI")

    def test_x_and_y_both_count(self, outbox: Outbox) -> None:
        """300 × 150 DPI fails: both axes must be 300."""
        bundle = outbox.validate("s.tif", tiff_pages((300, 150)), channel="external-print")
        assert "300 × 150 DPI" in only(bundle, "tiff-resolution").message

    def test_x_and_y_that_round_alike_are_told_as_one_figure(self, outbox: Outbox) -> None:
        """150 × 150.4 DPI reads "is 150 DPI": two figures the tolerance cannot tell apart
        are one resolution to the clerk, not "150 × 150.4"."""
        bundle = outbox.validate("s.tif", tiff_pages((150, 150.4)), channel="external-print")
        assert only(bundle, "tiff-resolution").message.startswith("page 1 is 150 DPI;")

    @pytest.mark.parametrize(("tags", "said"), [
        ({282: 300.0}, "has a horizontal resolution but no vertical one (YResolution is "
                       "missing)"),
        ({283: 300.0}, "has a vertical resolution but no horizontal one (XResolution is "
                       "missing)"),
        ({282: 300.0, 283: 0.0}, "has a horizontal resolution but no vertical one "
                                 "(YResolution is 0)"),
        ({}, "has no resolution"),
    ], ids=["no-y", "no-x", "y-zero", "neither"])
    def test_a_page_that_states_one_resolution_says_which_is_missing(
            self, outbox: Outbox, tags: dict[int, float], said: str) -> None:
        """XResolution without YResolution (or the other way, or one of 0) names the one
        that is missing, not "has no resolution"."""
        buf = io.BytesIO()
        Image.new("L", (8, 8)).save(buf, "TIFF", tiffinfo=tags)
        bundle = outbox.validate("s.tif", buf.getvalue(), channel="external-print")
        assert only(bundle, "tiff-resolution").message == (
            f"page 1 {said}; external print needs 300 DPI — rescan or export at 300 DPI")

    def test_rounding_tolerance(self, outbox: Outbox) -> None:
        """299.6 rounds to 300 and passes; 299.4 does not."""
        assert outbox.validate("a.tif", tiff_pages((299.6, 300.4)),
                               channel="external-print").findings == ()
        assert codes(outbox.validate("b.tif", tiff_pages((299.4, 300)),
                                     channel="external-print")) == ["tiff-resolution"]

    def test_the_ends_of_the_tolerance_pass_and_just_past_them_fail(
            self, outbox: Outbox) -> None:
        """docs/folder-convention.md, section 3: the resolution must round to 300,
        299.5–300.5 DPI both ends included; 300.6 fails."""
        assert outbox.validate("a.tif", tiff_pages((299.5, 300.5), (300.5, 299.5)),
                               channel="external-print").findings == ()
        assert codes(outbox.validate("b.tif", tiff_pages((300, 300.6)),
                                     channel="external-print")) == ["tiff-resolution"]

    def test_no_resolution_tags(self, outbox: Outbox) -> None:
        """A TIFF without resolution tags fails."""
        bundle = outbox.validate("s.tif", tiff_pages(None), channel="external-print")
        assert "no resolution" in only(bundle, "tiff-resolution").message

    def test_unit_without_absolute_measure(self, outbox: Outbox) -> None:
        """ResolutionUnit 1 (no absolute unit) fails even at "300"."""
        data = tiff_pages(None, tiffinfo={296: 1, 282: 300.0, 283: 300.0})
        bundle = outbox.validate("s.tif", data, channel="external-print")
        assert "ResolutionUnit 1" in only(bundle, "tiff-resolution").message

    def test_resolution_only_matters_for_external_print(self, outbox: Outbox) -> None:
        """On e-invoice a 72 DPI TIFF is judged by allowed types, not resolution."""
        cfg = ValidationConfig(allowed_types=["pdf", "tiff"])
        bundle = outbox.validate("s.tif", tiff_pages((72, 72)), cfg=cfg)
        assert "tiff-resolution" not in codes(bundle)


class TestRulesPlugIn:
    def test_a_rule_is_a_plain_callable(self, outbox: Outbox,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        """Adding a callable to a channel's tuple makes it run with the sniffed facts."""
        seen: list[AttachmentCheck] = []

        def spy(check: AttachmentCheck, cfg: ValidationConfig) -> Iterator[Finding]:
            seen.append(check)
            yield check.finding("spy", "was seen — nothing to do", "warning")

        monkeypatch.setitem(RULES, "e-invoice", RULES["e-invoice"] + (spy,))
        bundle = outbox.validate("a.pdf", pdf_bytes(2))
        assert codes(bundle) == ["spy"]
        (check,) = seen
        assert (check.kind, check.ext_kind, check.pdf and check.pdf.pages) == ("pdf", "pdf", 2)


@pytest.mark.parametrize("kept", [True, False], ids=["kept-by-matching", "opened-here"])
def test_validating_many_large_pdfs_holds_about_one_at_a_time(tmp_path: Path, kept: bool
                                                              ) -> None:
    """Memory while a sidecar of many large PDFs is validated stays about one file's
    worth, however many there are and whenever the garbage collector runs: pypdf's
    reader is a reference cycle that keeps its stream, and a copy of each 4.9 MB
    attachment held until a full collection made a reader of 400 such files peak
    ~140 MB above its idle size (and keep most of it)."""
    size, count = 1 << 20, 12
    outbox = Outbox(tmp_path)
    names = [f"scan-{n:02d}.pdf" for n in range(count)]
    for name in names:
        outbox.write(name, pdf_carrying(size))
    bundle = outbox.bundle(*names)
    gc.collect()
    gc.disable()  # a full collection may come late: what is validated must not wait for it
    tracemalloc.start()
    try:
        if kept:
            with readonce.keeping_reads(readonce.KEPT_BYTES):
                for att in bundle.attachments:
                    readonce.keep(att.path, att.path.read_bytes())
                checked = validate_bundle(bundle, ValidationConfig())
        else:
            checked = validate_bundle(bundle, ValidationConfig())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert codes(checked) == [] and [a.pages for a in checked.attachments] == [1] * count
    held_by_matching = count * size if kept else 0
    assert peak - held_by_matching < 4 * size, f"{peak / size:.1f} files' worth at the peak"


def test_a_pdf_that_unpacks_past_the_limit_is_unreadable_naming_the_limit(
        tmp_path: Path) -> None:
    """A PDF of some 80 KB whose page tree is packed into 80 MB (pypdf stops at 75 MB):
    pdf-unreadable, and the clerk reads what the file does and the limit in words,
    not pypdf's "Limit reached while decompressing. 899062 bytes remaining."."""
    data = pdf_unpacking_to(80_000_000)
    assert len(data) < 200_000
    finding = only(Outbox(tmp_path).validate("bomb.pdf", data), "pdf-unreadable")
    assert "unpacks to more than 75,000,000 bytes" in finding.message
    assert "pypdf" not in finding.message and "remaining" not in finding.message


@pytest.mark.parametrize("dpi,fix", [
    ((300, 300), "external print needs it at 300 DPI, at which a page this large cannot "
                 "have fewer pixels: save it as PDF"),
    ((299.5, 300.5), "external print needs it at 300 DPI, at which a page this large "
                     "cannot have fewer pixels: save it as PDF"),
    ((600, 600), "scan it at a lower resolution or scale it down, or save it as PDF"),
], ids=["300", "ends-of-the-tolerance", "600"])
def test_a_page_too_large_at_300_dpi_is_not_told_to_be_scanned_at_less_on_external_print(
        outbox: Outbox, dpi: tuple[int, int], fix: str) -> None:
    """An A0 plan scanned at 300 DPI (9933 × 14043) is over max_image_pixels. On external
    print the fix "scan it at a lower resolution or scale it down" sent the clerk into
    tiff-resolution instead (300 DPI is the rule there): such a page is told to go as
    PDF, or the limit to be raised. A page at another resolution keeps the usual fix,
    which rescanning at 300 DPI may well meet."""
    cfg = ValidationConfig(max_image_pixels=100)
    bundle = outbox.validate("plan.tif", tiff_pages(dpi), channel="external-print", cfg=cfg)
    assert only(bundle, "image-too-large").line() == (
        "INV-1001/plan.tif: is 16 × 16 = 256 pixels; the limit is 100 pixels ([validation] "
        f"max_image_pixels, which an administrator can raise) — {fix}")


def test_a_page_too_large_at_300_without_a_unit_keeps_the_usual_fix(outbox: Outbox) -> None:
    """A page over max_image_pixels stating 300 × 300 with ResolutionUnit 1 (no absolute
    unit) is not at 300 DPI: it keeps the usual fix, not "external print needs it at
    300 DPI … save it as PDF"."""
    cfg = ValidationConfig(max_image_pixels=100)
    data = tiff_pages(None, tiffinfo={296: 1, 282: 300.0, 283: 300.0})
    bundle = outbox.validate("plan.tif", data, channel="external-print", cfg=cfg)
    assert only(bundle, "image-too-large").message.endswith(
        "— scan it at a lower resolution or scale it down, or save it as PDF")


def _tiff_second_page_claiming(width: int, height: int) -> bytes:
    """A two-page TIFF at 300 DPI whose first page is whole and small and whose second
    page's header claims width × height (its strip would never hold them)."""
    data = bytearray(tiff_pages((300.0, 300.0), (300.0, 300.0)))
    first = struct.unpack_from("<I", data, 4)[0]
    entries = struct.unpack_from("<H", data, first)[0]
    ifd = struct.unpack_from("<I", data, first + 2 + 12 * entries)[0]
    for n in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * n
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in (256, 257):  # ImageWidth, ImageLength: as LONGs
            struct.pack_into("<HHII", data, entry, tag, 4, 1, width if tag == 256 else height)
    return bytes(data)


def test_a_tiff_whose_second_page_is_too_large_is_told_that_pages_size(
        outbox: Outbox) -> None:
    """A scan whose first page is small and whose second claims 40,000 × 30,000 pixels
    (past Pillow's guard): one image-too-large naming that page and its width × height,
    not the first page's."""
    bundle = outbox.validate("scan.tif", _tiff_second_page_claiming(40_000, 30_000),
                             channel="external-print")
    assert codes(bundle, "error") == ["image-too-large"]
    assert only(bundle, "image-too-large").message.startswith(
        "page 2 is 40,000 × 30,000 = 1,200,000,000 pixels; the limit is 89,478,485")


def test_a_tiff_of_a_resolution_unit_tiff_has_not_is_told_its_unit(outbox: Outbox) -> None:
    """ResolutionUnit 4 (TIFF knows 1 none, 2 inch, 3 centimetre): "300" says nothing a
    printer can use, so external print refuses it, naming the unit and the fix, not as
    300 DPI nor as a page without a resolution."""
    data = tiff_pages(None, tiffinfo={296: 4, 282: 300.0, 283: 300.0})
    bundle = outbox.validate("s.tif", data, channel="external-print")
    assert only(bundle, "tiff-resolution").message == (
        "page 1 has an unknown resolution unit (4); external print needs 300 DPI — rescan "
        "or export at 300 DPI")


def test_plain_text_named_as_a_pdf_is_told_to_be_exported_as_pdf(outbox: Outbox) -> None:
    """A file named .pdf holding plain text, on a channel that allows both (allowed_types
    = ["pdf", "text"]): extension-mismatch saying what it holds and to export the
    document as PDF — text is not told to be renamed, as an image or a spreadsheet is
    (a .pdf of text is an export that went wrong, not a file misnamed)."""
    cfg = ValidationConfig(allowed_types=["pdf", "text"])
    bundle = outbox.validate("notes.pdf", b"Hours worked in October: 37.5\n", cfg=cfg)
    message = only(bundle, "extension-mismatch").message
    assert message.startswith("content is ") and ", not a PDF" in message
    assert message.endswith("— export the document as PDF and put that file in its place")
    assert "rename" not in message


# ------------------------------------------------- a library's own failure, logged

def _json_lines_of(emit: Callable[[], object]) -> list[dict[str, Any]]:
    """Each line `emit` logs, as the daemon writes it under JSON logging."""
    from daemon import logs
    from daemon.configuration.config import LogConfig
    out = io.StringIO()
    logs.configure(LogConfig(format="json", level="info"), out)
    try:
        emit()
    finally:
        logs.configure()
    return [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]


def _fails(*_: object, **__: object) -> None:
    raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'")


@pytest.mark.parametrize(("name", "channel", "where"), [
    ("scan.pdf", "e-invoice", "pdf"), ("scan.png", "e-invoice", "image"),
    ("scan.png", "original-print", "conversion")])
def test_a_librarys_own_failure_on_an_attachment_is_logged_naming_the_file(
        outbox: Outbox, monkeypatch: pytest.MonkeyPatch, name: str, channel: str,
        where: str) -> None:
    """pypdf, Pillow or the converter failing in its own code on an attachment: the clerk
    reads "damaged", and the library's words go to the log for the admin — on a line
    that names the file (INV-1001/scan.pdf). Without it the line said "pypdf failed in
    its own code" of no file, and the admin could not tell which of the day's bundles."""
    from daemon.validation import convert, pdfobjects
    if where == "pdf":
        data = pdf_bytes()
        monkeypatch.setattr(pdfobjects, "IndexedReader", _fails)
    elif where == "image":
        data = image_bytes("PNG")
        monkeypatch.setattr(imageprobe.Image, "open", _fails)
    else:
        data = image_bytes("PNG")
        monkeypatch.setattr(convert, "image_to_pdf", _fails)
    found: list[Bundle] = []
    lines = _json_lines_of(lambda: found.append(outbox.validate(
        name, data, channel=channel, cfg=ValidationConfig(convert_images=True))))
    assert [f.file for f in found[0].errors] == [f"INV-1001/{name}"]
    [line] = [e for e in lines if "in its own code" in e["event"]
              or "in the library's own code" in e["event"]]
    assert line["file"] == f"INV-1001/{name}" and line["error"].startswith("TypeError")


def _noise_png() -> bytes:
    """A PNG of random grey pixels: some 40 KB, more than one buffered read."""
    buf = io.BytesIO()
    Image.frombytes("L", (200, 200), os.urandom(200 * 200)).save(buf, "PNG")
    return buf.getvalue()
