"""The validation matrix as a clerk meets it (docs/folder-convention.md, "What makes an
attachment invalid"): per channel, legitimate but unusual files, each made here, and
what each error says (the file, the rule broken and the fix)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from validating import Outbox, codes, only, tiff_pages

from daemon.config import ValidationConfig


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
            "put that file here")

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
            "original-print channel allows PDF — export it as PDF and put that file here")

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
                                "put that file here")


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
            "PDF, and put that file here")
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
