"""Content types by magic bytes (docs/folder-convention.md, What makes an attachment invalid)."""

from __future__ import annotations

import io
import zipfile

import pytest
from PIL import Image
from pypdf import PdfWriter

from daemon.validation.sniff import sniff


def image_bytes(fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), "white").save(buf, fmt, **kw)
    return buf.getvalue()


def pdf_bytes() -> bytes:
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def zip_bytes(entries: dict[str, bytes], compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def kind(data: bytes) -> str:
    return sniff(io.BytesIO(data)).kind


class TestMagic:
    @pytest.mark.parametrize("fmt,expected", [
        ("PNG", "png"), ("JPEG", "jpeg"), ("GIF", "gif"), ("BMP", "bmp"),
        ("WEBP", "webp"), ("TIFF", "tiff"),
    ])
    def test_images_are_known_by_their_signature(self, fmt: str, expected: str) -> None:
        """Each image format Pillow writes is recognised by its magic bytes."""
        assert kind(image_bytes(fmt)) == expected

    def test_big_endian_tiff(self) -> None:
        """Motorola-order TIFF ("MM\\0*") is a TIFF too."""
        assert kind(b"MM\x00*" + b"\x00" * 100) == "tiff"

    def test_pdf(self) -> None:
        """A PDF written by pypdf is a PDF with the PDF MIME type and label."""
        ft = sniff(io.BytesIO(pdf_bytes()))
        assert (ft.kind, ft.mime, ft.label) == ("pdf", "application/pdf", "PDF")

    def test_pdf_header_may_follow_junk_within_1024_bytes(self) -> None:
        """Like Acrobat, a %PDF- header after up to 1024 bytes of junk still counts."""
        assert kind(b"\x1b%-12345X@PJL\n" * 20 + pdf_bytes()) == "pdf"

    def test_pdf_header_after_1024_bytes_does_not_count(self) -> None:
        """Past the first 1024 bytes a %PDF- is just some bytes in another file."""
        assert kind(b"\x00\x01" * 600 + pdf_bytes()) != "pdf"

    def test_windows_executable(self) -> None:
        """MZ followed by a binary DOS header is a Windows executable."""
        ft = sniff(io.BytesIO(b"MZ" + b"\x00" * 200))
        assert (ft.kind, ft.label) == ("exe", "Windows executable")

    def test_elf(self) -> None:
        """\\x7fELF is a Linux executable."""
        assert kind(b"\x7fELF\x02\x01\x01" + b"\x00" * 100) == "elf"

    def test_empty(self) -> None:
        """Zero bytes is its own kind, so the empty-file rule can name it."""
        assert kind(b"") == "empty"

    def test_binary_garbage_is_unknown(self) -> None:
        """Bytes that are no known format and no text are unknown, as octet-stream."""
        ft = sniff(io.BytesIO(bytes(range(256)) * 4))
        assert (ft.kind, ft.mime) == ("unknown", "application/octet-stream")

    def test_text_starting_with_bm_or_mz_is_not_an_image_or_program(self) -> None:
        """Two-letter magics need their binary header: "BMW;…" CSV stays CSV."""
        assert kind(b"BMW;320i;2019\nAudi;A4;2020\n") == "csv"
        assert kind(b"MZ Ltd,Stockholm\nAB Co,Malmo\n") == "csv"

    def test_position_is_reset(self) -> None:
        """sniff leaves the file at offset 0 so the next reader starts at the beginning."""
        fh = io.BytesIO(pdf_bytes())
        sniff(fh)
        assert fh.tell() == 0


class TestZipContainers:
    def test_xlsx(self) -> None:
        """[Content_Types].xml with an xl/ folder is an Excel workbook."""
        data = zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<w/>"})
        ft = sniff(io.BytesIO(data))
        assert ft.kind == "xlsx"
        assert ft.mime == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

    def test_docx(self) -> None:
        """[Content_Types].xml with a word/ folder is a Word document."""
        data = zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<d/>"})
        assert kind(data) == "docx"

    def test_ods_by_stored_mimetype_first(self) -> None:
        """An ODS (stored mimetype entry first, as ODF requires) is an ODS."""
        data = zip_bytes({"mimetype": b"application/vnd.oasis.opendocument.spreadsheet",
                          "content.xml": b"<c/>"}, zipfile.ZIP_STORED)
        ft = sniff(io.BytesIO(data))
        assert (ft.kind, ft.mime) == ("ods", "application/vnd.oasis.opendocument.spreadsheet")

    def test_ods_with_mimetype_elsewhere(self) -> None:
        """A sloppy ODS whose mimetype entry is not first is still found via the directory."""
        data = zip_bytes({"content.xml": b"<c/>",
                          "mimetype": b"application/vnd.oasis.opendocument.spreadsheet"})
        assert kind(data) == "ods"

    def test_a_mimetype_entry_that_unpacks_past_256_bytes_is_never_read(self) -> None:
        """A mimetype entry declaring more than 256 bytes (a few KB of Flate can unpack to
        gigabytes) is not unpacked to look for the ODS type: this one, the ODS type and
        1,000 spaces, stays a plain zip."""
        data = zip_bytes({"content.xml": b"<c/>",
                          "mimetype": b"application/vnd.oasis.opendocument.spreadsheet"
                                      + b" " * 1000})
        assert kind(data) == "zip"

    def test_odt_is_just_a_zip(self) -> None:
        """Another ODF type (a text document) is not a spreadsheet: plain zip."""
        data = zip_bytes({"mimetype": b"application/vnd.oasis.opendocument.text"},
                         zipfile.ZIP_STORED)
        assert kind(data) == "zip"

    def test_plain_and_damaged_zip(self) -> None:
        """Any other ZIP, or a truncated one, is a ZIP archive."""
        assert kind(zip_bytes({"a.txt": b"x"})) == "zip"
        assert kind(zip_bytes({"xl/a.xml": b"x"})[:40]) == "zip"


def test_a_zip_whose_mimetype_entry_is_damaged_is_told_as_a_zip() -> None:
    """An ODS-like archive whose mimetype entry (not first, so read through the
    directory) no longer matches its checksum: reading it fails, and the file is said
    to be a ZIP archive, as a damaged container is — no error escapes the sniff."""
    ods = b"application/vnd.oasis.opendocument.spreadsheet"
    data = bytearray(zip_bytes({"content.xml": b"<c/>", "mimetype": ods},
                               zipfile.ZIP_STORED))
    at = data.index(ods)
    data[at:at + 11] = b"APPLICATION"  # the bytes changed, the CRC-32 kept
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf, pytest.raises(zipfile.BadZipFile):
        zf.read("mimetype")
    assert kind(bytes(data)) == "zip"


def test_a_zip_directory_the_share_fails_to_give_is_raised_not_taken_for_a_plain_zip(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The share fails (EIO) the read of an XLSX's central directory: that is the
    share's fault, raised as it is (the bundle is read again later). Taken as a damaged
    container, the workbook was "a ZIP", which its .xlsx name contradicts: an error
    that held or quarantined a good file."""
    import errno
    import os

    from daemon.validation import sniff as sniff_module

    def share_fails(*_: object, **__: object) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), "INV-1/book.xlsx")
    data = zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<w/>"})
    assert kind(data) == "xlsx"
    monkeypatch.setattr(sniff_module.zipfile, "ZipFile", share_fails)
    with pytest.raises(OSError) as raised:
        kind(data)
    assert raised.value.errno == errno.EIO
