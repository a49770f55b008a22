"""The validation matrix as a clerk meets it (docs/folder-convention.md, "What makes an
attachment invalid"): per channel, legitimate but unusual files, each made here, and
what each error says (the file, the rule broken and the fix)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pikepdf  # img2pdf's own dependency: it writes the AES-256 PDFs pypdf cannot
import pytest
from helpers import office_file, pdf_bytes, pdf_of_objects, ubl_invoice
from PIL import Image, ImageFile, TiffImagePlugin
from pypdf import PdfWriter
from pypdf.generic import DictionaryObject, NameObject, TextStringObject
from validating import Outbox, codes, only, tiff_pages

from daemon.configuration.config import ValidationConfig


@pytest.fixture
def outbox(tmp_path: Path) -> Outbox:
    return Outbox(tmp_path)


class TestText:
    def test_a_refused_text_file_in_windows_1252_gets_no_promise_that_it_is_sent(
            self, outbox: Outbox) -> None:
        """A Windows-1252 .txt on e-invoice (plain text is not allowed by default) is one
        type-not-allowed error, without a warning saying "it is sent as it is"."""
        bundle = outbox.validate("notes.txt", "Leverans till Göteborg\n".encode("cp1252"))
        assert codes(bundle) == ["type-not-allowed"]
        assert "sent as it is" not in " ".join(f.message for f in bundle.findings)

    def test_a_plain_text_file_in_windows_1252_is_told_to_be_saved_as_utf8_not_csv(
            self, outbox: Outbox) -> None:
        """Where plain text is allowed, the Windows-1252 warning of a text file that is no
        CSV says to save it as UTF-8, not as "CSV UTF-8"."""
        cfg = ValidationConfig(allowed_types=["pdf", "text"])
        bundle = outbox.validate("notes.txt", "Leverans till Göteborg\n".encode("cp1252"),
                                 cfg=cfg)
        message = only(bundle, "csv-windows-1252").message
        assert "save it as UTF-8" in message and "CSV" not in message
        assert codes(bundle, "error") == []

    @pytest.mark.parametrize("data", [
        b"Ordernummer\n4711\n4712\n",
        b'"Smith, J"\n"Doe; A"\n',  # a delimiter inside quotes is data
        b"Total\n",
    ], ids=["plain", "quoted-delimiters", "one-cell"])
    def test_a_one_column_csv_is_csv(self, outbox: Outbox, data: bytes) -> None:
        """A .csv of one column (Excel writes no delimiter for it) is CSV on e-invoice,
        sent as text/csv with only the "PDF is recommended" warning."""
        bundle = outbox.validate("orders.csv", data)
        assert codes(bundle) == ["pdf-recommended"]
        assert bundle.attachments[0].content_type == "text/csv"

    @pytest.mark.parametrize("data", [b"datum;timmar;projekt\n", b"datum;timmar",
                                      b"a;b\n1;2\n\n\n"],
                             ids=["one-line", "no-newline", "empty-lines-at-the-end"])
    def test_a_csv_of_one_line_or_with_empty_lines_at_the_end_is_csv(
            self, outbox: Outbox, data: bytes) -> None:
        """One line (a header only, with or without its newline) or empty lines at the
        end: CSV all the same."""
        bundle = outbox.validate("hours.csv", data)
        assert codes(bundle) == ["pdf-recommended"]
        assert bundle.attachments[0].content_type == "text/csv"

    def test_one_column_named_txt_stays_plain_text(self, outbox: Outbox) -> None:
        """The same one-column text named .txt promises no CSV: plain text, refused on
        e-invoice by default."""
        bundle = outbox.validate("orders.txt", b"Ordernummer\n4711\n4712\n")
        assert codes(bundle) == ["type-not-allowed"]
        assert bundle.attachments[0].content_type == "text/plain"

    def test_a_one_column_csv_in_windows_1252_is_csv_with_the_warning(
            self, outbox: Outbox) -> None:
        """A one-column CSV saved in Windows-1252 is CSV, with the encoding warning."""
        bundle = outbox.validate("namn.csv", "Namn\nÅsa\nÖrjan\n".encode("cp1252"))
        assert sorted(codes(bundle)) == ["csv-windows-1252", "pdf-recommended"]
        assert 'save it as "CSV UTF-8"' in only(bundle, "csv-windows-1252").message

    def test_a_csv_whose_lines_do_not_share_a_delimiter_says_why_it_is_no_csv(
            self, outbox: Outbox) -> None:
        """A .csv whose lines use different delimiters is plain text: the error names the
        rule (one delimiter on every line) and the fix, not only "is a plain text file"."""
        bundle = outbox.validate("hours.csv", b"date;hours\n2026-11-02,8\n")
        assert codes(bundle) == ["type-not-allowed"]
        line = only(bundle, "type-not-allowed").line()
        assert line.startswith("INV-1001/hours.csv: is not CSV: its lines do not share one "
                               "delimiter (comma, semicolon or tab)")
        assert "export it again as CSV with the same delimiter on every line" in line

    def test_a_csv_without_a_shared_delimiter_on_print_is_not_told_to_be_csv_again(
            self, outbox: Outbox) -> None:
        """On a channel that takes no CSV (external print) the same file is told the
        channel's fix, PDF: never to export it again as CSV, a type refused there too."""
        bundle = outbox.validate("hours.csv", b"date;hours\n2026-11-02,8\n",
                                 channel="external-print")
        assert only(bundle, "type-not-allowed").message == (
            "is a plain text file; the external-print channel allows PDF, TIFF — export it "
            "as PDF and put that file in its place")


class TestEmptyFiles:
    """A file with bytes but nothing in them is as empty to the clerk as one of 0 bytes:
    each kind gets the one empty-file error, saying what its bytes are and to export or
    copy it again, not "lines do not share one delimiter" or "a file of unknown type"."""

    @pytest.mark.parametrize("name,data", [
        ("hours.csv", b"\r\n\r\n  \r\n"),
        ("hours.csv", b"\xef\xbb\xbf\n"),  # a byte-order mark and a line break
        ("hours.csv", b"\xff\xfe" + " \r\n".encode("utf-16-le")),  # "Unicode Text"
        ("hours.csv", b"\n" * 70_000),  # past the head the sniffer reads first
        ("notes.txt", b"  \n\t\n"),
        ("data.xml", b"\n\n"),
        ("data.json", b"  "),
    ], ids=["csv", "csv-bom", "csv-utf16", "csv-long", "txt", "xml", "json"])
    def test_a_file_of_blank_lines_and_spaces_is_empty(self, outbox: Outbox, name: str,
                                                       data: bytes) -> None:
        """Blank lines and spaces only (an export of no rows), on a channel that takes
        plain text too: empty-file alone, with its size and the fix."""
        bundle = outbox.validate(name, data, cfg=ValidationConfig(
            allowed_types=["pdf", "csv", "text"]))
        assert codes(bundle) == ["empty-file"]
        assert only(bundle, "empty-file").line() == (
            f"INV-1001/{name}: is empty ({len(data):,} bytes: blank lines and spaces, no "
            "text) — export or copy the file again and put the complete file in its place")

    @pytest.mark.parametrize("size", [1, 4096, 70_000])
    def test_a_file_of_zero_bytes_only_is_empty(self, outbox: Outbox, size: int) -> None:
        """A scan.pdf whose bytes are all zero (a copy that set the file's size and never
        wrote it): empty-file, not "content is a file of unknown type, not a PDF"."""
        bundle = outbox.validate("scan.pdf", b"\0" * size)
        assert codes(bundle) == ["empty-file"]
        assert only(bundle, "empty-file").message == (
            f"is empty ({size:,} byte{'s' * (size > 1)}: all zero, as a copy that did not "
            "finish leaves a file) — export or copy the file again and put the complete "
            "file in its place")

    def test_data_after_blank_lines_or_zero_bytes_is_no_empty_file(self,
                                                                   outbox: Outbox) -> None:
        """Blank lines, or zero bytes, at the start of a file that holds more further on
        (past the first 64 KiB read) do not make it empty."""
        blank_first = outbox.validate("hours.csv", b"\n" * 70_000 + b"a;b\n1;2\n")
        zeros_first = outbox.validate("data.bin", b"\0" * 70_000 + b"\x01")
        assert "empty-file" not in codes(blank_first) + codes(zeros_first)


class TestTiffResolution:
    @pytest.mark.parametrize("per_cm,shown", [
        (117.9, "page 1 is 299.47 DPI (117.9 pixels per centimetre)"),
        (118.31, "page 1 is 300.51 DPI (118.31 pixels per centimetre)"),
    ])
    def test_a_resolution_just_outside_300_is_not_shown_as_one_inside(
            self, outbox: Outbox, per_cm: float, shown: str) -> None:
        """117.9 px/cm is 299.466 DPI, outside 299.5–300.5: the message shows enough
        decimals not to read "299.5 DPI" (which would pass), and the value as stored."""
        data = tiff_pages(None, tiffinfo={296: 3, 282: per_cm, 283: per_cm})
        bundle = outbox.validate("scan.tif", data, channel="external-print")
        assert only(bundle, "tiff-resolution").message.startswith(shown + "; external print")

    def test_118_pixels_per_centimetre_rounds_to_300(self, outbox: Outbox) -> None:
        """118 px/cm is 299.72 DPI, which rounds to 300: no finding."""
        data = tiff_pages(None, tiffinfo={296: 3, 282: 118.0, 283: 118.0})
        assert outbox.validate("scan.tif", data, channel="external-print").findings == ()


class TestFilesOfOtherKinds:
    """Files a clerk has but no channel takes: the error says what the file is (not "a
    file of unknown type") and how to make one that is taken."""

    def test_an_iphone_photo_is_named_as_such(self, outbox: Outbox) -> None:
        """A HEIC photo (what an iPhone saves) is refused as a HEIC image, with the fix."""
        heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(200)
        bundle = outbox.validate("IMG_1234.HEIC", heic)
        assert codes(bundle) == ["type-not-allowed"]
        assert only(bundle, "type-not-allowed").line() == (
            "INV-1001/IMG_1234.HEIC: is a HEIC image (as iPhones save photos); the e-invoice "
            "channel allows CSV, JPEG, ODS, PDF, PNG, XLSX — export it as JPEG or PDF and "
            "put that file in its place")

    @pytest.mark.parametrize("declared", [True, False], ids=["declared", "no-declaration"])
    def test_an_invoice_put_into_a_sidecar_is_told_to_be_moved_out_as_an_invoice(
            self, outbox: Outbox, declared: bool) -> None:
        """A clerk puts INV-1002.xml into INV-1001/ instead of beside it: "is an XML
        document … export it as PDF" sent them to turn an invoice into an attachment.
        It is named an invoice, and the fix says to move it into the outbox (where it is
        an invoice file of its own), or export it as PDF if it is an attachment."""
        xml = ubl_invoice("INV-1002")
        if not declared:
            xml = xml.split(b"?>", 1)[1]
        bundle = outbox.validate("INV-1002.xml", xml)
        assert codes(bundle) == ["type-not-allowed"]
        assert only(bundle, "type-not-allowed").message == (
            "is an invoice in XML (UBL or Svefaktura), the kind of file outboxd sends as an "
            "invoice file; the e-invoice channel allows CSV, JPEG, ODS, PDF, PNG, XLSX — if "
            "it is an invoice to send, move it out of this folder into the outbox itself, "
            "where it is sent as an invoice of its own (its attachments go into a folder "
            "named like it without .xml); if it is meant as an attachment, export it as PDF "
            "and put that file in its place")

    def test_other_xml_is_still_an_xml_document(self, outbox: Outbox) -> None:
        bundle = outbox.validate("order.xml", b'<?xml version="1.0"?>\n<Order><Id>7</Id>'
                                 b"</Order>\n")
        assert only(bundle, "type-not-allowed").message.startswith(
            "is an XML document; the e-invoice channel allows")

    @pytest.mark.parametrize("name", ["hours.xls", "letter.doc"])
    def test_an_office_97_2003_file_is_named_as_such(self, outbox: Outbox,
                                                      name: str) -> None:
        """An old Excel or Word file (OLE2 compound file) is refused as an Office
        97–2003 file; on original print the fix is PDF."""
        ole = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)
        bundle = outbox.validate(name, ole, channel="original-print")
        assert codes(bundle) == ["type-not-allowed"]
        assert only(bundle, "type-not-allowed").message == (
            "is an Office 97–2003 file (an old .xls, .doc or .ppt, or an Outlook .msg); the "
            "original-print channel allows PDF — export it as PDF and put that file in its place")

    @pytest.mark.parametrize(("name", "fix"), [
        ("hours.xls", "open it in Excel and save it as an Excel Workbook (.xlsx), or export "
                      "it as PDF, and put that file in its place"),
        ("letter.DOC", "export it as PDF and put that file in its place"),
        ("mail.msg", "export it as PDF and put that file in its place")])
    def test_an_office_97_2003_file_on_e_invoice_is_told_the_format_its_program_saves(
            self, outbox: Outbox, name: str, fix: str) -> None:
        """On e-invoice, which takes XLSX by default: an old .xls is told to be saved as
        .xlsx (two clicks in Excel), not only "export it as PDF"; an old .doc keeps the
        PDF advice, DOCX not being one of the default six, and so does an Outlook .msg."""
        ole = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)
        bundle = outbox.validate(name, ole, channel="e-invoice")
        assert codes(bundle) == ["type-not-allowed"]
        assert only(bundle, "type-not-allowed").message.endswith(" — " + fix)

    def test_an_old_word_file_is_told_to_be_saved_as_docx_where_docx_is_allowed(
            self, outbox: Outbox) -> None:
        """With DOCX among [validation] allowed_types, an old .doc is told to be saved as
        .docx in Word, not only to be exported as PDF."""
        ole = bytes.fromhex("d0cf11e0a1b11ae1") + bytes(504)
        cfg = ValidationConfig(allowed_types=["pdf", "docx"])
        bundle = outbox.validate("letter.doc", ole, cfg=cfg)
        assert only(bundle, "type-not-allowed").message.endswith(
            " — open it in Word and save it as a Word Document (.docx), or export it as "
            "PDF, and put that file in its place")

    @pytest.mark.parametrize("name", ["hours.csv", "hours.txt"])
    def test_text_in_utf16_is_told_to_be_saved_as_utf8(self, outbox: Outbox,
                                                       name: str) -> None:
        """Excel's "Unicode Text" (UTF-16 with a byte-order mark) is one error saying to
        save it as CSV UTF-8, not an extension mismatch with "a file of unknown type"."""
        data = "datum\ttimmar\n2026-11-02\t8\n".encode("utf-16")
        bundle = outbox.validate(name, data)
        assert codes(bundle) == ["type-not-allowed"]
        message = only(bundle, "type-not-allowed").message
        assert message.startswith("is a text file in UTF-16 (Excel's \"Unicode Text\");")
        assert message.endswith('— save it again as "CSV UTF-8", or export it as PDF, and '
                                "put that file in its place")


def apng(frames: int, dpi: tuple[int, int] = (300, 300)) -> bytes:
    """An animated PNG (APNG) of `frames` frames."""
    images = [Image.new("RGB", (32, 32), (40 * n, 0, 0)) for n in range(frames)]
    buf = io.BytesIO()
    images[0].save(buf, "PNG", save_all=True, append_images=images[1:], dpi=dpi)
    return buf.getvalue()


class TestConvertedImages:
    @pytest.mark.parametrize("channel", ["external-print", "original-print"])
    def test_an_animated_png_is_not_printed_as_its_first_frame_alone(
            self, outbox: Outbox, channel: str) -> None:
        """With convert_images, an APNG of 3 frames would become a PDF of its first
        frame, the others silently left out: an error that says so, and no conversion."""
        cfg = ValidationConfig(convert_images=True)
        bundle = outbox.validate("anim.png", apng(3), channel=channel, cfg=cfg)
        assert codes(bundle) == ["image-animated"]
        assert only(bundle, "image-animated").line() == (
            "INV-1001/anim.png: is an animated PNG of 3 frames; printed, it would show only "
            "its first — save the picture you mean as a PNG of one frame, or export it as "
            "PDF, and put that file in its place")
        assert bundle.attachments[0].converted is None

    def test_an_animated_png_on_e_invoice_goes_as_it_is(self, outbox: Outbox) -> None:
        """On e-invoice an APNG is a PNG like any other (the receiver gets the file)."""
        bundle = outbox.validate("anim.png", apng(3))
        assert codes(bundle) == ["pdf-recommended"]

    def test_a_png_of_one_frame_is_converted(self, outbox: Outbox) -> None:
        """A PNG written as an APNG of one frame is no animation: it is converted."""
        bundle = outbox.validate("one.png", apng(1), channel="external-print",
                                 cfg=ValidationConfig(convert_images=True))
        assert bundle.findings == () and bundle.attachments[0].converted is not None


# ------------------------------------------------- unusual files that must pass as they do

def pdf_of_size(size: int) -> bytes:
    """A one-page PDF of exactly `size` bytes (a stream of padding, xref right)."""
    def build(pad: int) -> bytes:
        return pdf_of_objects([b"<< /Type /Catalog /Pages 2 0 R >>",
                               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>",
                               b"<< /Length %d >>\nstream\n" % pad + bytes(pad)
                               + b"\nendstream"])
    pad = size - len(build(0))
    while len(data := build(pad)) != size:  # the /Length's digits grow with the pad
        pad -= len(data) - size
    return data


def pikepdf_saved(data: bytes, **save: object) -> bytes:
    """`data` saved again by pikepdf (qpdf) with `save`'s options."""
    with pikepdf.open(io.BytesIO(data)) as pdf:
        buf = io.BytesIO()
        pdf.save(buf, **save)  # type: ignore[arg-type]
        return buf.getvalue()


def tiff(mode: str = "L", **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (64, 64), 1 if mode == "1" else 200).save(buf, "TIFF", **save)
    return buf.getvalue()


CHANNELS = ["e-invoice", "external-print", "original-print"]


class TestPdfMatrix:
    @pytest.mark.parametrize("channel", CHANNELS)
    @pytest.mark.parametrize("user", ["", "secret"], ids=["owner-only", "user-password"])
    def test_aes_256_encryption_is_refused_on_every_channel(
            self, outbox: Outbox, channel: str, user: str) -> None:
        """An AES-256 PDF (what Acrobat writes today) is pdf-encrypted, whether or not it
        opens without a password, with the fix; pypdf's optional crypto is not needed."""
        data = pikepdf_saved(pdf_bytes(), encryption=pikepdf.Encryption(
            user=user, owner="o", R=6))
        bundle = outbox.validate("locked.pdf", data, channel=channel)
        assert codes(bundle) == ["pdf-encrypted"]
        assert "save a copy without password" in only(bundle, "pdf-encrypted").message

    @pytest.mark.parametrize("make", [
        lambda: pdf_of_size(2000),
        lambda: pikepdf_saved(pdf_bytes(3), linearize=True),
        lambda: pikepdf_saved(pdf_bytes(3),
                              object_stream_mode=pikepdf.ObjectStreamMode.generate),
        lambda: incremental_update(),
        lambda: pdf_bytes(3).replace(b"startxref\n", b"startxref\n9", 1),
        lambda: pdf_a(),
        lambda: pdf_with(javascript=True),
        lambda: pdf_with(embedded=True),
    ], ids=["hand-made", "linearised", "xref-stream", "incremental", "broken-startxref",
            "pdf-a", "javascript", "embedded-file"])
    @pytest.mark.parametrize("channel", CHANNELS)
    def test_a_pdf_pypdf_opens_non_strict_passes_every_channel(
            self, outbox: Outbox, make: Callable[[], bytes], channel: str) -> None:
        """Linearised ("fast web view"), with a cross-reference stream, with an
        incremental update, or with a wrong startxref that pypdf recovers from: a PDF
        that pypdf opens (non-strict) with pages passes, with its page count."""
        bundle = outbox.validate("doc.pdf", make(), channel=channel)
        assert bundle.findings == ()
        assert bundle.attachments[0].content_type == "application/pdf"
        assert bundle.attachments[0].pages is not None and bundle.attachments[0].pages >= 1

    @pytest.mark.parametrize("channel", ["e-invoice", "external-print", "original-print"])
    def test_exactly_five_million_bytes_passes_and_one_more_is_too_large(
            self, outbox: Outbox, channel: str) -> None:
        """Under the default max_attachment_bytes, a PDF of 5,000,000 bytes passes and
        one of 5,000,001 is too-large, naming both sizes and the fix, on every channel
        (the rules table's "same" for the print channels). Both sizes are said in bytes
        too: "5.0 MB" against "at most 5 MB" alone reads as within the limit."""
        assert outbox.validate("at.pdf", pdf_of_size(5_000_000), channel=channel).findings == ()
        bundle = outbox.validate("over.pdf", pdf_of_size(5_000_001), channel=channel)
        assert codes(bundle) == ["too-large"]
        assert only(bundle, "too-large").message.startswith(
            "is 5.0 MB (5,000,001 bytes); at most 5 MB (5,000,000 bytes) is taken "
            "([validation] "
            "max_attachment_bytes) — compress it")

    @pytest.mark.parametrize("name", ["SCAN.PDF", "scan", "scan.Pdf"])
    def test_the_extension_is_compared_without_case_and_may_be_missing(
            self, outbox: Outbox, name: str) -> None:
        """A PDF named .PDF, .Pdf or without extension is a PDF by its content."""
        bundle = outbox.validate(name, pdf_bytes(), channel="original-print")
        assert bundle.findings == ()

    @pytest.mark.parametrize("junk", [b"\r\n", b"\xef\xbb\xbf", b"\x1b%-12345X@PJL\r\n" * 40],
                             ids=["blank-line", "byte-order-mark", "printer-job-header"])
    def test_bytes_before_the_pdf_header_within_1024_are_a_pdf_sent_as_it_is(
            self, outbox: Outbox, junk: bytes) -> None:
        """folder-convention.md's decision: a %PDF- header within the first 1024 bytes
        (a blank line or a byte-order mark an ERP writes first, a printer's job header)
        is a PDF, as Acrobat takes it; the file is sent unchanged."""
        data = junk + pdf_bytes(2)
        bundle = outbox.validate("scan.pdf", data, channel="original-print")
        assert bundle.findings == ()
        assert (bundle.attachments[0].content_type, bundle.attachments[0].pages) == (
            "application/pdf", 2)
        assert bundle.attachments[0].size == len(data)

    def test_a_pdf_header_past_1024_bytes_makes_no_pdf(self, outbox: Outbox) -> None:
        """Further in, the bytes are another file that holds a PDF: the .pdf name does
        not agree with the content, with the fix."""
        bundle = outbox.validate("scan.pdf", b"x" * 2000 + pdf_bytes())
        assert codes(bundle) == ["extension-mismatch", "type-not-allowed"]
        assert only(bundle, "extension-mismatch").message.startswith(
            "content is a plain text file, not a PDF — export it as PDF")


    @pytest.mark.parametrize("page", [
        b"<!DOCTYPE html>\n<html><body>Session expired</body></html>\n",
        b"\n  <HTML><HEAD><TITLE>404</TITLE></HEAD></HTML>\n",
    ], ids=["doctype", "upper-case-tag"])
    def test_a_web_page_saved_as_pdf_is_named_a_web_page(
            self, outbox: Outbox, page: bytes) -> None:
        """A portal's login or error page saved under .pdf is told as what the clerk would
        see in a browser, not "a plain text file"; the rules and fixes are as for text."""
        bundle = outbox.validate("invoice-copy.pdf", page)
        assert codes(bundle) == ["extension-mismatch", "type-not-allowed"]
        assert only(bundle, "extension-mismatch").message == (
            "content is a web page (HTML), as a browser saves it, not a PDF — export it as "
            "PDF and put that file in its place")
        assert only(bundle, "type-not-allowed").message.startswith(
            "is a web page (HTML), as a browser saves it; the e-invoice channel allows ")


def pdf_with(javascript: bool = False, embedded: bool = False) -> bytes:
    """A PDF that runs JavaScript when opened, or carries a file inside: outboxd's rules
    are what a receiver can open and print, not what else a PDF holds
    (docs/folder-convention.md), so either passes as any PDF."""
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    if javascript:
        writer.add_open_action(DictionaryObject({
            NameObject("/S"): NameObject("/JavaScript"),
            NameObject("/JS"): TextStringObject("app.alert('Invoice');")}))
    if embedded:
        writer.add_attachment("hours.csv", b"date;hours\n2026-11-02;8\n")
    buf = io.BytesIO()
    writer.write(buf)
    assert (b"/JavaScript" in buf.getvalue()) == javascript
    assert (b"/EmbeddedFiles" in buf.getvalue()) == embedded
    return buf.getvalue()


def pdf_a() -> bytes:
    """A PDF that declares PDF/A-2b conformance in its XMP metadata, as archives write."""
    with pikepdf.open(io.BytesIO(pdf_bytes(2))) as pdf:
        with pdf.open_metadata(set_pikepdf_as_editor=False) as meta:
            meta["pdfaid:part"] = "2"
            meta["pdfaid:conformance"] = "B"
        buf = io.BytesIO()
        pdf.save(buf)
    assert b"pdfaid" in buf.getvalue()
    return buf.getvalue()


def incremental_update() -> bytes:
    """A PDF saved once more with an incremental update appended (a signed or
    annotated PDF is saved so): a second xref section and %%EOF."""
    base = pdf_bytes(1)
    writer = PdfWriter(io.BytesIO(base), incremental=True)
    writer.add_blank_page(595, 842)
    buf = io.BytesIO()
    writer.write(buf)
    assert buf.getvalue().startswith(base)
    return buf.getvalue()


class TestTiffMatrix:
    @pytest.mark.parametrize("mode,compression", [
        ("L", "tiff_lzw"), ("RGB", "jpeg"), ("1", "group4"), ("L", "tiff_adobe_deflate"),
        ("L", "packbits"),
    ])
    def test_compressed_tiffs_at_300_dpi_pass_external_print(
            self, outbox: Outbox, mode: str, compression: str) -> None:
        """LZW, JPEG, CCITT G4 (black and white scans), Deflate and PackBits TIFFs are
        TIFFs; their resolution is read from the tags, nothing is decoded."""
        data = tiff(mode, compression=compression, dpi=(300, 300))
        bundle = outbox.validate("scan.tif", data, channel="external-print")
        assert bundle.findings == ()
        assert bundle.attachments[0].pages == 1

    def test_bigtiff_passes_external_print(self, outbox: Outbox) -> None:
        """A BigTIFF ("II+", 64-bit offsets) at 300 DPI is a TIFF like any other."""
        data = tiff(big_tiff=True, dpi=(300, 300))
        assert data[:4] == b"II+\x00"
        assert outbox.validate("big.tif", data, channel="external-print").findings == ()

    def test_a_rational_resolution_is_read_as_its_value(self, outbox: Outbox) -> None:
        """XResolution 3000/10 is 300 DPI."""
        value = TiffImagePlugin.IFDRational(3000, 10)
        data = tiff(tiffinfo={296: 2, 282: value, 283: value})
        assert outbox.validate("s.tif", data, channel="external-print").findings == ()

    @pytest.mark.parametrize("name", ["SCAN.TIF", "scan.tiff", "Scan.TIFF"])
    def test_tiff_extensions_in_any_case(self, outbox: Outbox, name: str) -> None:
        """.TIF and .tiff, in any case, promise a TIFF."""
        data = tiff(dpi=(300, 300))
        assert outbox.validate(name, data, channel="external-print").findings == ()

    def test_a_tiff_named_pdf_is_an_extension_mismatch_with_the_fix(
            self, outbox: Outbox) -> None:
        """A TIFF named .pdf contradicts its name, even where TIFF is allowed."""
        bundle = outbox.validate("scan.pdf", tiff(dpi=(300, 300)), channel="external-print")
        assert codes(bundle) == ["extension-mismatch"]
        assert only(bundle, "extension-mismatch").line() == (
            "INV-1001/scan.pdf: content is a TIFF image, not a PDF — rename it to match its "
            "content, or export the document as PDF and put that file in its place")

    def test_a_tiff_on_e_invoice_is_refused_by_the_default_types(
            self, outbox: Outbox) -> None:
        """TIFF is none of the six Peppol types: on e-invoice it is type-not-allowed."""
        bundle = outbox.validate("scan.tif", tiff(dpi=(300, 300)))
        assert codes(bundle) == ["type-not-allowed"]
        assert "the e-invoice channel allows CSV, JPEG, ODS, PDF, PNG, XLSX" in \
            only(bundle, "type-not-allowed").message


class TestImageMatrix:
    @pytest.mark.parametrize("fmt,mode,name", [
        ("JPEG", "CMYK", "print.jpg"), ("PNG", "I;16", "deep.png"), ("JPEG", "RGB", "a.jpe"),
        ("JPEG", "RGB", "A.JPG"),
    ], ids=["cmyk-jpeg", "16-bit-png", "jpe", "upper-case"])
    def test_unusual_images_go_to_e_invoice_with_the_pdf_warning(
            self, outbox: Outbox, fmt: str, mode: str, name: str) -> None:
        """A CMYK JPEG, a 16-bit PNG, a JPEG named .jpe or .JPG: allowed on e-invoice,
        with only the "PDF is recommended" warning."""
        data = image_of(fmt, mode)
        bundle = outbox.validate(name, data)
        assert codes(bundle) == ["pdf-recommended"]
        assert only(bundle, "pdf-recommended").severity == "warning"

    @pytest.mark.parametrize("fmt,mode", [("JPEG", "CMYK"), ("PNG", "I;16")])
    def test_unusual_images_at_300_dpi_are_converted_for_external_print(
            self, outbox: Outbox, fmt: str, mode: str) -> None:
        """With convert_images, a CMYK JPEG and a 16-bit PNG at 300 DPI become one-page
        PDFs for external print."""
        bundle = outbox.validate("scan." + fmt.lower(), image_of(fmt, mode, dpi=(300, 300)),
                                 channel="external-print",
                                 cfg=ValidationConfig(convert_images=True))
        assert bundle.findings == ()
        conv = bundle.attachments[0].converted
        assert conv is not None and conv.pages == 1

    @pytest.mark.parametrize("tags,message", [
        ({0x011A: 300.0, 0x011B: 300.0}, None),
        ({0x011A: 300.0, 0x011B: 600.0, 0x0128: 2}, "is 300 × 600 DPI"),
        ({0x0110: "Phone"}, "has no resolution"),
    ], ids=["exif-no-unit", "exif-x-y-differ", "exif-without-resolution"])
    def test_a_jpeg_for_external_print_is_judged_by_the_resolution_its_exif_states(
            self, outbox: Outbox, tags: dict[int, object], message: str | None) -> None:
        """A photo whose EXIF says 300 DPI without a unit tag (inch, as a TIFF's) passes;
        one of 300 × 600 DPI, or whose EXIF states no resolution, is told so — before,
        all three were "72 DPI", a figure none of them holds."""
        exif = Image.Exif()
        for tag, value in tags.items():
            exif[tag] = value
        buf = io.BytesIO()
        Image.new("RGB", (16, 16), "white").save(buf, "JPEG", exif=exif)
        bundle = outbox.validate("photo.jpg", buf.getvalue(), channel="external-print",
                                 cfg=ValidationConfig(convert_images=True))
        if message is None:
            assert bundle.findings == ()
            return
        assert only(bundle, "tiff-resolution").message == (
            f"{message}; external print needs 300 DPI — rescan or export at 300 DPI")

    @pytest.mark.parametrize("fmt,name", [("GIF", "a.gif"), ("BMP", "a.bmp"),
                                          ("WEBP", "a.webp")])
    def test_gif_bmp_and_webp_are_outside_the_default_types(
            self, outbox: Outbox, fmt: str, name: str) -> None:
        """GIF, BMP and WebP are known images but none of the six: type-not-allowed on
        e-invoice, naming the allowed ones and the fix."""
        bundle = outbox.validate(name, image_of(fmt, "RGB"))
        assert codes(bundle) == ["type-not-allowed"]
        assert only(bundle, "type-not-allowed").message.endswith(
            "the e-invoice channel allows CSV, JPEG, ODS, PDF, PNG, XLSX — export it as PDF "
            "and put that file in its place")


def image_of(fmt: str, mode: str, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (32, 32)).save(buf, fmt, **save)
    return buf.getvalue()


def zip_of(entries: dict[str, str], stored_first: tuple[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        if stored_first:  # ODF: the mimetype entry first and stored, as the standard says
            zf.writestr(zipfile.ZipInfo(stored_first[0]), stored_first[1],
                        compress_type=zipfile.ZIP_STORED)
        for name, text in entries.items():
            zf.writestr(name, text)
    return buf.getvalue()


XLSX = zip_of({"[Content_Types].xml": "<Types/>", "_rels/.rels": "<Relationships/>",
               "xl/workbook.xml": "<workbook/>", "xl/worksheets/sheet1.xml": "<worksheet/>"})
ODS = zip_of({"content.xml": "<c/>", "META-INF/manifest.xml": "<m/>"},
             ("mimetype", "application/vnd.oasis.opendocument.spreadsheet"))
DOCX = zip_of({"[Content_Types].xml": "<Types/>", "word/document.xml": "<document/>"})
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class TestOfficeMatrix:
    @pytest.mark.parametrize("name,data", [("hours.xlsx", XLSX), ("hours.ods", ODS)])
    def test_spreadsheets_go_to_e_invoice_and_not_to_print(
            self, outbox: Outbox, name: str, data: bytes) -> None:
        """XLSX and ODS are among the six: e-invoice takes them with the PDF warning; the
        print channels refuse them with "export it as PDF"."""
        assert codes(outbox.validate(name, data)) == ["pdf-recommended"]
        for channel in ("external-print", "original-print"):
            bundle = outbox.validate(name, data, channel=channel)
            assert codes(bundle) == ["type-not-allowed"]
            assert only(bundle, "type-not-allowed").message.endswith(
                "— export it as PDF and put that file in its place")

    def test_a_plain_zip_named_xlsx_is_no_workbook(self, outbox: Outbox) -> None:
        """A ZIP without a workbook inside, named .xlsx: its content contradicts the name
        and a ZIP archive is never an attachment."""
        bundle = outbox.validate("hours.xlsx", zip_of({"hours.csv": "a;b\n"}))
        assert codes(bundle) == ["extension-mismatch", "type-not-allowed"]
        assert only(bundle, "extension-mismatch").message == (
            "content is a ZIP archive, not an Excel workbook (XLSX) — export it as PDF and "
            "put that file in its place")

    def test_a_plain_zip_named_docx_on_e_invoice_gets_one_fix_the_channel_takes(
            self, outbox: Outbox) -> None:
        """A ZIP named .docx on e-invoice (which takes no DOCX): both of its lines give the
        channel's one fix, export as PDF; neither tells the clerk to make a DOCX."""
        bundle = outbox.validate("letter.docx", zip_of({"letter.txt": "Dear"}))
        assert codes(bundle) == ["extension-mismatch", "type-not-allowed"]
        assert [f.line() for f in bundle.findings] == [
            "INV-1001/letter.docx: content is a ZIP archive, not a Word document (DOCX) — "
            "export it as PDF and put that file in its place",
            "INV-1001/letter.docx: is a ZIP archive; the e-invoice channel allows CSV, JPEG, "
            "ODS, PDF, PNG, XLSX — export it as PDF and put that file in its place"]
        assert "as DOCX" not in bundle.findings[0].message

    def test_a_pdf_named_for_a_type_the_channel_refuses_is_told_to_be_renamed_only(
            self, outbox: Outbox) -> None:
        """A PDF named .docx on e-invoice: renaming it is the fix; exporting a DOCX (which
        that channel refuses) is not offered."""
        bundle = outbox.validate("letter.docx", pdf_bytes())
        assert codes(bundle) == ["extension-mismatch"]
        assert only(bundle, "extension-mismatch").message == (
            "content is a PDF, not a Word document (DOCX) — rename it to match its content")

    def test_a_misnamed_file_on_a_channel_without_pdf_lists_what_it_takes(
            self, outbox: Outbox) -> None:
        """Where allowed_types has no PDF, a ZIP named .png is told the types the channel
        takes, on the mismatch line too, which has no list before its fix."""
        cfg = ValidationConfig(allowed_types=["png", "jpeg"])
        bundle = outbox.validate("photo.png", zip_of({"a.txt": "a"}), cfg=cfg)
        assert codes(bundle) == ["extension-mismatch", "type-not-allowed"]
        assert only(bundle, "extension-mismatch").message == (
            "content is a ZIP archive, not a PNG image — convert it to one of JPEG, PNG and "
            "put that file in its place")
        assert only(bundle, "type-not-allowed").message.endswith(
            "allows JPEG, PNG — convert it to one of those and put that file in its place")

    def test_a_docx_on_e_invoice_is_refused_with_the_fix_and_taken_once_allowed(
            self, outbox: Outbox) -> None:
        """DOCX is no Peppol type: refused on e-invoice with the fix; allowed_types may
        add it."""
        bundle = outbox.validate("letter.docx", DOCX)
        assert only(bundle, "type-not-allowed").line() == (
            "INV-1001/letter.docx: is a Word document (DOCX); the e-invoice channel allows "
            "CSV, JPEG, ODS, PDF, PNG, XLSX — export it as PDF and put that file in its place")
        cfg = ValidationConfig(allowed_types=["pdf", "docx"])
        assert codes(outbox.validate("letter.docx", DOCX, cfg=cfg)) == ["pdf-recommended"]

    @pytest.mark.parametrize("name,entries,label", [
        ("hours.xlsm", {"xl/workbook.xml": "<w/>", "xl/vbaProject.bin": "macros"},
         "an Excel workbook with macros (XLSM)"),
        ("hours.xlsb", {"xl/workbook.bin": "binary"}, "an Excel binary workbook (XLSB)"),
        ("letter.docm", {"word/document.xml": "<d/>", "word/vbaProject.bin": "macros"},
         "a Word document with macros (DOCM)"),
    ], ids=["xlsm", "xlsb", "docm"])
    def test_office_files_with_macros_or_binary_are_not_taken_for_xlsx_or_docx(
            self, outbox: Outbox, name: str, entries: dict[str, str], label: str) -> None:
        """A macro workbook or a binary workbook is no XLSX: Excel does not open it under
        that name, and it must not go out as the XLSX content type. It is refused for
        what it is, with the fix."""
        data = zip_of({"[Content_Types].xml": "<Types/>", **entries})
        cfg = ValidationConfig(allowed_types=["pdf", "xlsx", "docx"])
        bundle = outbox.validate(name, data, cfg=cfg)
        assert codes(bundle) == ["type-not-allowed"]
        assert only(bundle, "type-not-allowed").message.startswith(f"is {label}; ")
        assert bundle.attachments[0].content_type != XLSX_TYPE

    def test_a_macro_workbook_named_xlsx_contradicts_its_name(self, outbox: Outbox) -> None:
        """An .xlsm renamed .xlsx is an extension mismatch, told to be saved as XLSX."""
        data = zip_of({"[Content_Types].xml": "<Types/>", "xl/workbook.xml": "<w/>",
                       "xl/vbaProject.bin": "macros"})
        bundle = outbox.validate("hours.xlsx", data)
        assert codes(bundle) == ["extension-mismatch", "type-not-allowed"]
        assert only(bundle, "extension-mismatch").message == (
            "content is an Excel workbook with macros (XLSM), not an Excel workbook (XLSX) "
            "— save it as an Excel Workbook (.xlsx, which keeps no macros) or export it as "
            "PDF and put that file in its place")


class TestOfficeFilesCutShort:
    """An office file a stalled copy left half-written: one finding, zip-unreadable,
    which cutshort.py gives the grace (test_cutshort.py)."""

    @pytest.mark.parametrize("name", ["hours.xlsx", "letter.docx", "hours.ods"])
    def test_an_office_file_cut_short_is_zip_unreadable_and_nothing_else(
            self, outbox: Outbox, name: str) -> None:
        """A cut XLSX, DOCX or ODS (a type the channel takes) is zip-unreadable alone: not
        "a ZIP archive, not an Excel workbook", not "export it as PDF" (a copy still at
        work is no wrong type), and an ODS is no longer judged valid and sent broken.
        Whole, the same file passes."""
        kind = name.rsplit(".", 1)[1]
        whole = office_file(kind)
        cfg = ValidationConfig(allowed_types=["pdf", "xlsx", "ods", "docx"])
        bundle = outbox.validate(name, whole[:len(whole) // 2], cfg=cfg)
        assert codes(bundle) == ["zip-unreadable"]
        assert only(bundle, "zip-unreadable").message.endswith(
            "that ends early: the list of its contents that every such file ends with is "
            "missing, as when a copy stops before the end — copy or save the file again "
            "and put that file in its place")
        assert codes(outbox.validate(name, whole, cfg=cfg)) == ["pdf-recommended"]

    def test_the_message_names_what_the_file_is(self, outbox: Outbox) -> None:
        """The line names the file and its type as its name says, the rule and the fix."""
        data = office_file("xlsx")
        bundle = outbox.validate("hours.xlsx", data[:-1])
        assert [f.line() for f in bundle.findings] == [
            "INV-1001/hours.xlsx: is an Excel workbook (XLSX) that ends early: the list of "
            "its contents that every such file ends with is missing, as when a copy stops "
            "before the end — copy or save the file again and put that file in its place"]
        assert bundle.attachments[0].content_type == XLSX_TYPE

    @pytest.mark.parametrize("name,expected", [
        ("hours.zip", ["type-not-allowed", "zip-unreadable"]),
        ("hours", ["type-not-allowed", "zip-unreadable"]),
        ("scan.pdf", ["extension-mismatch", "type-not-allowed", "zip-unreadable"]),
    ])
    def test_a_cut_zip_not_named_as_an_office_file_keeps_its_type_errors(
            self, outbox: Outbox, name: str, expected: list[str]) -> None:
        """Cut before its directory says what it is, a ZIP named .zip, nothing or .pdf is
        a ZIP archive, which no channel takes: its type errors stay beside zip-unreadable
        (so the bundle is quarantined at once; a cut ODS says what it is in its first
        bytes and needs no name)."""
        data = office_file("xlsx")
        assert codes(outbox.validate(name, data[:len(data) // 2])) == expected
        ods = office_file("ods")
        assert codes(outbox.validate("hours", ods[:len(ods) // 2])) == ["zip-unreadable"]


class TestNothingDecoded:
    @pytest.mark.parametrize("fmt,name,channel", [
        ("PNG", "big.png", "e-invoice"), ("JPEG", "big.jpg", "e-invoice"),
        ("TIFF", "big.tif", "external-print"),
    ])
    def test_sizes_and_resolutions_come_from_headers_without_decoding_pixels(
            self, outbox: Outbox, monkeypatch: pytest.MonkeyPatch, fmt: str, name: str,
            channel: str) -> None:
        """A complete image is judged (pixels, resolution, over the limit or not) without
        one pixel decoded: memory stays that of the headers, whatever the image's size."""
        data = image_of(fmt, "L", dpi=(300, 300))

        def no_decoding(self: object) -> None:
            raise AssertionError("pixels were decoded")
        monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
        ok = outbox.validate(name, data, channel=channel)
        assert codes(ok, "error") == []
        over = outbox.validate(name, data, channel=channel,
                               cfg=ValidationConfig(max_image_pixels=100))
        assert codes(over) == ["image-too-large"]
        assert "is 32 × 32 = 1,024 pixels; the limit is 100 pixels ([validation] " \
            "max_image_pixels" in only(over, "image-too-large").message
