"""[validation] convert_images (docs/einvoice.md): PNG/JPEG become PDFs for the print channels."""

from __future__ import annotations

import errno
import hashlib
import io
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from helpers import pdf_bytes
from PIL import Image
from pypdf import PdfReader
from swaps import opened_in, swap_for_link

from daemon.bundle import Attachment, Bundle, InvoiceFile
from daemon.configuration.config import ValidationConfig
from daemon.errors import InputError
from daemon.fs import fsops
from daemon.manifest import build_manifest, bundle_id_from_manifest, bundle_id_of
from daemon.validation import convert as convert_module
from daemon.validation.convert import convert, converted_path, image_to_pdf, materialise
from daemon.validation.validate import validate_bundle

MAX_PIXELS = ValidationConfig().max_image_pixels


def image(fmt: str, size: tuple[int, int] = (600, 300), dpi: float | None = 300) -> bytes:
    buf = io.BytesIO()
    kw = {"dpi": (dpi, dpi)} if dpi else {}
    Image.new("RGB", size, (200, 30, 30)).save(buf, fmt, **kw)
    return buf.getvalue()


def bundle_of(tmp_path: Path, files: dict[str, bytes], channel: str) -> Bundle:
    atts = []
    for name, data in files.items():
        path = tmp_path / "INV-1" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        atts.append(Attachment(path, f"INV-1/{name}", name, "INV-1", len(data),
                               hashlib.sha256(data).hexdigest(), "Attachment"))
    inv = InvoiceFile(tmp_path / "INV-1.xml", "INV-1.xml", 10, "0" * 64, "ubl", ("INV-1",))
    return Bundle(inv, tmp_path / "INV-1", tuple(atts), channel)


def page_size(pdf: bytes) -> tuple[float, float]:
    box = PdfReader(io.BytesIO(pdf)).pages[0].mediabox
    return float(box.width), float(box.height)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_conversion_keeps_the_resolution_and_gives_the_same_bytes_every_time(fmt: str) -> None:
    """600 × 300 px at 300 DPI is a 2 × 1 inch page (144 × 72 pt); no dates inside."""
    data = image(fmt)
    pdf = image_to_pdf(data, MAX_PIXELS)
    assert pdf == image_to_pdf(data, MAX_PIXELS)
    assert b"/ID" not in pdf and b"Date" not in pdf  # nothing that changes with the clock
    w, h = page_size(pdf)
    assert w == pytest.approx(144, abs=0.1) and h == pytest.approx(72, abs=0.1)


def test_jpeg_is_embedded_without_reencoding() -> None:
    data = image("JPEG")
    assert data in image_to_pdf(data, MAX_PIXELS)  # the JPEG stream itself, byte for byte


@pytest.mark.parametrize("channel", ["external-print", "original-print"])
def test_images_on_print_channels_are_converted_when_asked(tmp_path: Path, channel: str) -> None:
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, channel),
                        ValidationConfig(convert_images=True))
    assert b.errors == ()
    [att] = b.attachments
    assert att.converted is not None and att.converted.name == "scan.pdf"
    assert att.converted.pages == 1 and att.converted.path is None  # nothing written yet
    assert list((tmp_path / "INV-1").iterdir()) == [tmp_path / "INV-1" / "scan.png"]


def test_an_image_the_converter_fails_on_in_its_own_code_is_said_damaged_not_in_its_words(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The converter failing in its own code (a TypeError inside Pillow or img2pdf): the
    clerk reads that the image is damaged and the fix, not "TypeError: unsupported
    operand …"."""
    def fail(data: bytes, max_pixels: int) -> bytes:
        raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'")

    monkeypatch.setattr(convert_module, "image_to_pdf", fail)
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "original-print"),
                        ValidationConfig(convert_images=True))
    assert [f.line() for f in b.errors] == [
        "INV-1/scan.png: cannot be converted to PDF (the image is damaged, or is not "
        "really an image of its kind) — export it as PDF and put that file in its place"]

def test_without_the_flag_images_on_print_channels_are_errors(tmp_path: Path) -> None:
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "external-print"),
                        ValidationConfig())
    assert [f.code for f in b.errors] == ["type-not-allowed"]


def test_an_image_that_cannot_be_converted_is_to_be_replaced_by_a_pdf(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """conversion-failed names the fix, and that the PDF goes in the image's place (not
    beside it, where the image would still be refused)."""
    def fail(data: bytes, max_pixels: int) -> bytes:
        raise OSError("odd image")  # Pillow's words on a bad file: kept

    monkeypatch.setattr(convert_module, "image_to_pdf", fail)
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "original-print"),
                        ValidationConfig(convert_images=True))
    assert [f.line() for f in b.errors] == [
        "INV-1/scan.png: cannot be converted to PDF (OSError: odd image) — export it as "
        "PDF and put that file in its place"]


def test_images_on_the_e_invoice_channel_are_never_converted(tmp_path: Path) -> None:
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "e-invoice"),
                        ValidationConfig(convert_images=True))
    assert b.attachments[0].converted is None


def test_external_print_still_needs_300_dpi_for_a_converted_image(tmp_path: Path) -> None:
    b = validate_bundle(bundle_of(tmp_path, {"a.png": image("PNG", dpi=72),
                                             "b.jpg": image("JPEG", dpi=None)},
                                  "external-print"), ValidationConfig(convert_images=True))
    messages = sorted(f.line() for f in b.errors)
    # One picture, not "page 1" of something.
    assert messages[0].startswith("INV-1/a.png: is 72 DPI; external print needs 300")
    assert messages[1].startswith("INV-1/b.jpg: has no resolution; external print needs 300")
    assert all(a.converted is None for a in b.attachments)


def test_an_image_without_a_resolution_is_a_page_at_96_dpi(tmp_path: Path) -> None:
    """On original print an image that states no resolution is taken at 96 DPI, as a
    screen shows it (folder-convention.md): 960 × 480 px is a 10 × 5 inch page."""
    b = validate_bundle(bundle_of(tmp_path, {"shot.png": image("PNG", (960, 480), None)},
                                  "original-print"), ValidationConfig(convert_images=True))
    assert b.errors == ()
    w, h = page_size(image_to_pdf(image("PNG", (960, 480), None), MAX_PIXELS))
    assert w == pytest.approx(720, abs=0.1) and h == pytest.approx(360, abs=0.1)


def test_converted_name_avoids_a_pdf_of_the_same_name(tmp_path: Path) -> None:
    from helpers import pdf_bytes
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG"), "Scan.pdf": pdf_bytes()},
                                  "original-print"), ValidationConfig(convert_images=True))
    assert {a.original_name: a.converted.name for a in b.attachments if a.converted} == {
        "scan.png": "scan.png.pdf"}


def test_two_images_of_one_stem_are_sent_under_two_names(tmp_path: Path) -> None:
    """scan.png and scan.jpg would both become scan.pdf (one converted file written over
    the other): each keeps its own name instead, and their PDFs lie apart."""
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG"), "scan.jpg": image("JPEG")},
                                  "external-print"), ValidationConfig(convert_images=True))
    assert not b.errors
    assert {a.original_name: a.converted.name for a in b.attachments if a.converted} == {
        "scan.png": "scan.png.pdf", "scan.jpg": "scan.jpg.pdf"}
    assert len({converted_path(tmp_path / "w", a) for a in b.attachments}) == 2


def test_converted_name_avoids_a_name_that_folds_the_same(tmp_path: Path) -> None:
    """'a b.png' would go out as 'a_b.pdf' with safe_filenames, beside a file 'a_b.pdf':
    it becomes 'a b.png.pdf' instead."""
    from helpers import pdf_bytes
    b = validate_bundle(bundle_of(tmp_path, {"a b.png": image("PNG"), "a_b.pdf": pdf_bytes()},
                                  "original-print"), ValidationConfig(convert_images=True))
    assert {a.original_name: a.converted.name for a in b.attachments if a.converted} == {
        "a b.png": "a b.png.pdf"}


def test_names_at_the_file_systems_limit_still_give_paths_that_can_be_written(
        tmp_path: Path) -> None:
    """A 252-byte image name whose PDF name moves to NAME.pdf (256 bytes), in a
    sidecar whose own name fills NAME_MAX with '.converted' added: every component of
    the converted path fits in 255 bytes, so the PDF can be written (before, the bundle
    retried forever with 'File name too long')."""
    from helpers import pdf_bytes
    long_png = "s" * 248 + ".png"
    b = validate_bundle(bundle_of(tmp_path, {long_png: image("PNG"), "s" * 248 + ".pdf":
                                             pdf_bytes()}, "original-print"),
                        ValidationConfig(convert_images=True))
    att = next(a for a in b.attachments if a.converted)
    assert att.converted.name.endswith(".pdf") and len(att.converted.name.encode()) <= 255
    long_sidecar = replace(att, rel="S" * 250 + "/" + long_png)
    path = converted_path(tmp_path / "w", long_sidecar)
    assert all(len(part.encode()) <= 255 for part in path.parts)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"%PDF")  # the file system takes it


def test_converted_pdf_over_the_size_limit_is_an_error(tmp_path: Path) -> None:
    noisy = Image.effect_noise((400, 400), 90).convert("RGB")
    buf = io.BytesIO()
    noisy.save(buf, "PNG", dpi=(300, 300))
    b = validate_bundle(bundle_of(tmp_path, {"noise.png": buf.getvalue()}, "original-print"),
                        ValidationConfig(convert_images=True,
                                         max_attachment_bytes=len(buf.getvalue()) + 10))
    assert [f.code for f in b.errors] == ["too-large"]
    assert "converts to a PDF of" in b.errors[0].message


def test_a_converted_pdf_of_exactly_the_size_limit_is_taken(tmp_path: Path) -> None:
    """max_attachment_bytes is the most a converted PDF may be, that size included."""
    png = image("PNG")
    limit = len(image_to_pdf(png, MAX_PIXELS))
    assert len(png) <= limit
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": png}, "original-print"),
                        ValidationConfig(convert_images=True, max_attachment_bytes=limit))
    assert b.errors == ()
    assert b.attachments[0].converted is not None
    assert b.attachments[0].converted.size == limit


def test_manifest_records_the_conversion_and_the_receiver_can_recompute_the_id(
        tmp_path: Path) -> None:
    png = image("PNG")
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": png}, "external-print"),
                        ValidationConfig(convert_images=True))
    work = tmp_path  # the bundle's own folder, as a claimed bundle's work folder
    atts = materialise(b.attachments, work, MAX_PIXELS)
    [att] = atts
    assert att.converted.path == converted_path(work, att) == work / "INV-1.converted" / "scan.pdf"
    pdf = att.converted.path.read_bytes()
    manifest = build_manifest(b)
    [entry] = manifest["invoices"][0]["attachments"]
    assert entry["name"] == "scan.pdf" and entry["original_name"] == "scan.png"
    assert entry["sha256"] == hashlib.sha256(pdf).hexdigest() and entry["size"] == len(pdf)
    assert entry["content_type"] == "application/pdf"
    assert entry["converted_from"] == {"name": "scan.png", "size": len(png),
                                       "sha256": hashlib.sha256(png).hexdigest(),
                                       "content_type": "image/png"}
    assert bundle_id_from_manifest(manifest) == bundle_id_of(b) == manifest["bundle_id"]
    # Writing again (a crash, a retry) leaves the same file.
    assert materialise(b.attachments, work, MAX_PIXELS) == atts


def test_a_conversion_half_written_before_a_kill_leaves_no_temp_file_to_archive(
        tmp_path: Path) -> None:
    """A kill inside the write of a converted PDF left its temp file in NAME.converted/
    (the name write_atomic gives it); the attempt after the restart writes the PDF and
    drops the temp file, so the folder that goes into the archive holds the PDF only."""
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "external-print"),
                        ValidationConfig(convert_images=True))
    folder = tmp_path / "INV-1.converted"
    folder.mkdir()
    (folder / ".scan.pdf.tmp-0123456789ab").write_bytes(b"%PDF-half")
    [att] = materialise(b.attachments, tmp_path, MAX_PIXELS)
    assert sorted(p.name for p in folder.iterdir()) == ["scan.pdf"]
    assert hashlib.sha256(att.converted.path.read_bytes()).hexdigest() == att.converted.sha256


def test_an_image_under_a_raised_pixel_limit_is_converted_whatever_pillows_own_limit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[validation] max_image_pixels raised past twice Pillow's own limit (admins of large
    scans): an image that passes the limit is converted and written at delivery too, not
    refused by Pillow's default as a "decompression bomb" (before: conversion-failed).
    Pillow's default stands here at 1,000 pixels for its real 89 million, the image at
    2,500 (over twice it), the configured limit at 10,000."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    cfg = ValidationConfig(convert_images=True, max_image_pixels=10_000)
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG", (50, 50)),
                                             "photo.jpg": image("JPEG", (50, 50))},
                                  "original-print"), cfg)
    assert b.errors == ()
    assert all(a.converted is not None for a in b.attachments)
    written = materialise(b.attachments, tmp_path, cfg.max_image_pixels)
    assert all(a.converted and a.converted.path and a.converted.path.is_file()
               for a in written)
    assert Image.MAX_IMAGE_PIXELS == 1000  # Pillow's own limit is left as it was


def test_an_image_over_the_pixel_limit_is_never_decoded_at_delivery(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An image swapped in the processing folder for one over [validation]
    max_image_pixels (a bomb after its validation), of the same size (bytes after the
    end of the shorter, as one grown is refused before it is read at all): its bytes are
    not the ones checked, so it is refused before it is decoded, a processing-damaged
    error naming the file. And were those its checked bytes, the conversion at delivery
    still decodes under the configured limit only."""
    cfg = ValidationConfig(convert_images=True, max_image_pixels=10_000)
    small, bomb = image("PNG", (50, 50)), image("PNG", (300, 300))
    size = max(len(small), len(bomb))
    small, bomb = small.ljust(size, b"\0"), bomb.ljust(size, b"\0")
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": small}, "original-print"), cfg)
    assert b.errors == ()
    (tmp_path / "INV-1" / "scan.png").write_bytes(bomb)
    with pytest.raises(InputError) as caught:
        materialise(b.attachments, tmp_path, cfg.max_image_pixels)
    assert caught.value.code == "processing-damaged" and caught.value.file == "INV-1/scan.png"
    assert "is not the file that was checked" in caught.value.message
    as_checked = [replace(a, sha256=hashlib.sha256(bomb).hexdigest()) for a in b.attachments]
    with pytest.raises(InputError) as caught:
        materialise(as_checked, tmp_path, cfg.max_image_pixels)
    assert caught.value.code == "processing-damaged" and caught.value.file == "INV-1/scan.png"
    assert "[validation] max_image_pixels = 10,000" in caught.value.message


def test_an_image_written_into_in_the_work_folder_is_not_the_file_that_was_checked(
        tmp_path: Path) -> None:
    """At delivery (materialise), an image grown in the processing folder since its
    check (bytes appended after its end, which the decoder never looks at): it is read
    only up to the size it was checked at, as the other re-reads of a claimed bundle
    (the multipart parts, ubl-embedded) read theirs, and the bundle is
    processing-damaged, "is not the file that was checked". Read whole, it gave the
    PDF validated and was sent as checked, however large it had grown."""
    cfg = ValidationConfig(convert_images=True)
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "external-print"),
                        cfg)
    assert b.errors == ()
    with (tmp_path / "INV-1" / "scan.png").open("ab") as fh:
        fh.write(b"\0" * 4096)
    with pytest.raises(InputError) as caught:
        materialise(b.attachments, tmp_path, cfg.max_image_pixels)
    assert (caught.value.code, caught.value.file) == ("processing-damaged", "INV-1/scan.png")
    # Said once, in the words of the read that found it (not "(it changed …)" added).
    assert caught.value.message == (
        "is not the file that was checked: it was changed or replaced while the bundle "
        "was being sent — check it, then move the bundle back into the outbox")
    assert not (tmp_path / "INV-1.converted" / "scan.pdf").exists()


def test_an_image_replaced_after_its_pdf_was_written_is_not_hidden_by_that_pdf(
        tmp_path: Path) -> None:
    """Within one running daemon: an attempt wrote the converted PDF into the work folder
    (and its POST failed), then the PNG was replaced in the processing folder. The next
    attempt does not keep the old PDF because it still holds the hash the bundle names
    (it would post the old picture and archive the new one in sent/ as if it went out):
    the image, changed after its PDF was written, is converted again and the bundle is
    processing-damaged, naming the image — as the same case is after a restart."""
    cfg = ValidationConfig(convert_images=True)
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "external-print"),
                        cfg)
    assert b.errors == ()
    [att] = materialise(b.attachments, tmp_path, cfg.max_image_pixels)
    assert att.converted is not None and att.converted.path is not None
    pdf = att.converted.path
    new = tmp_path / "INV-1" / "new.png"
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), (30, 200, 30)).save(buf, "PNG", dpi=(300, 300))
    new.write_bytes(buf.getvalue())
    os.replace(new, tmp_path / "INV-1" / "scan.png")
    # A file system's clock ticks coarsely: touched until the replacement is seen as
    # later than the PDF (the outcome polled for, with a deadline; no sleep).
    deadline = time.monotonic() + 10
    while os.stat(tmp_path / "INV-1" / "scan.png").st_ctime_ns <= pdf.stat().st_ctime_ns:
        assert time.monotonic() < deadline, "the image's ctime never passed the PDF's"
        os.utime(tmp_path / "INV-1" / "scan.png")
    with pytest.raises(InputError) as caught:
        materialise(b.attachments, tmp_path, cfg.max_image_pixels)
    assert (caught.value.code, caught.value.file) == ("processing-damaged", "INV-1/scan.png")


def test_a_pdf_written_after_its_image_is_kept_without_converting_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The image untouched since its PDF was written: the next attempt keeps that PDF
    as it is (the image is not decoded again)."""
    cfg = ValidationConfig(convert_images=True)
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "external-print"),
                        cfg)
    written = materialise(b.attachments, tmp_path, cfg.max_image_pixels)

    def never(*_: Any) -> bytes:
        raise AssertionError("converted again")
    monkeypatch.setattr(convert_module, "image_to_pdf", never)
    assert materialise(b.attachments, tmp_path, cfg.max_image_pixels) == written


class TestFoldersSwappedForLinks:
    """A folder on the way to an image, or to its PDF in the work folder, swapped for a
    link to an outside folder holding files of the same names: nothing outside is
    opened, converted or written (inotify on the outside folder is the witness)."""

    @pytest.fixture
    def outside(self, tmp_path: Path) -> Path:
        folder = tmp_path / "outside"
        folder.mkdir()
        (folder / "scan.png").write_bytes(image("PNG", (80, 80)))
        return folder

    def test_an_image_is_converted_only_from_its_own_folder(
            self, tmp_path: Path, outside: Path) -> None:
        """The sidecar swapped after the image was checked: its conversion is an error
        naming the link and the fix, the outside image never read."""
        b = bundle_of(tmp_path, {"scan.png": image("PNG")}, "external-print")
        swap_for_link(tmp_path / "INV-1", outside)
        with opened_in(outside) as opened:
            att, pdf, problems = convert(b.attachments[0], set(), MAX_PIXELS)
        assert opened == []
        assert pdf is None and att.converted is None
        [f] = problems
        assert (f.code, f.file, f.invoice_id) == ("symlink", "INV-1/scan.png", "INV-1")
        assert "lies in INV-1, which is a symbolic link" in f.message

    def test_an_image_swapped_in_the_work_folder_is_never_converted_from_outside(
            self, tmp_path: Path, outside: Path) -> None:
        """At delivery (materialise), the claimed sidecar swapped for a link: the bundle is
        processing-damaged (quarantined, the link named), the outside image never read."""
        b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "external-print"),
                            ValidationConfig(convert_images=True))
        assert b.errors == ()
        swap_for_link(tmp_path / "INV-1", outside)
        with opened_in(outside) as opened, pytest.raises(InputError) as caught:
            materialise(b.attachments, tmp_path, MAX_PIXELS)
        assert opened == []
        assert (caught.value.code, caught.value.file) == ("processing-damaged", "INV-1/scan.png")
        assert "lies in INV-1, which is a symbolic link" in caught.value.message

    def test_a_pdf_folder_that_is_a_link_is_neither_read_nor_written(
            self, tmp_path: Path, outside: Path) -> None:
        """NAME.converted/ in the work folder made a link to an outside folder that holds
        a scan.pdf with the very bytes validated: it is not taken for the PDF written
        before (nor read), and nothing is written there; an OSError naming the folder,
        which delivery shows and tries again."""
        png = image("PNG")
        b = validate_bundle(bundle_of(tmp_path, {"scan.png": png}, "external-print"),
                            ValidationConfig(convert_images=True))
        (outside / "scan.pdf").write_bytes(image_to_pdf(png, MAX_PIXELS))
        work = tmp_path
        (work / "INV-1.converted").symlink_to(outside)
        with opened_in(outside) as opened, pytest.raises(OSError) as caught:
            materialise(b.attachments, work, MAX_PIXELS)
        assert opened == []
        assert caught.value.filename == "INV-1.converted"
        assert sorted(p.name for p in outside.iterdir()) == ["scan.pdf", "scan.png"]


class TestTheWorkFolderHeld:
    """materialise reaches the work folder only from the processing folder, by its
    descriptor: it neither recreates one that vanished nor follows a link put there."""

    def test_a_work_folder_that_vanished_is_not_made_again(self, tmp_path: Path) -> None:
        """The work folder moved away (by hand, a share gone) before the delivery wrote
        its PDF: an OSError naming it (the delivery waits and tries again), and no empty
        work folder holding a lone PDF appears in processing."""
        bundle_dir = tmp_path / "claimed"
        bundle_dir.mkdir()
        b = validate_bundle(bundle_of(bundle_dir, {"scan.png": image("PNG")},
                                      "external-print"), ValidationConfig(convert_images=True))
        os.rename(bundle_dir, tmp_path / "moved-away")
        with pytest.raises(FileNotFoundError) as caught:
            materialise(b.attachments, bundle_dir, MAX_PIXELS)
        assert caught.value.filename == str(bundle_dir)
        assert not os.path.lexists(bundle_dir)

    def test_an_image_outside_the_work_folder_given_is_refused_not_read_by_its_path(
            self, tmp_path: Path) -> None:
        """A bundle whose image lies elsewhere than the work folder materialise is given
        (our bug: delivery always passes the bundle's own): an OSError naming both paths,
        the image never opened by its own path (which a link in its folder's place
        would lead anywhere), and nothing written into the work folder."""
        bundle_dir = tmp_path / "elsewhere"
        bundle_dir.mkdir()
        b = validate_bundle(bundle_of(bundle_dir, {"scan.png": image("PNG")},
                                      "external-print"), ValidationConfig(convert_images=True))
        work = tmp_path / "work"
        work.mkdir()
        with opened_in(bundle_dir / "INV-1") as opened, pytest.raises(OSError) as caught:
            materialise(b.attachments, work, MAX_PIXELS)
        assert opened == []
        assert not isinstance(caught.value, InputError)  # no fault of the bundle's
        assert caught.value.filename == str(bundle_dir / "INV-1" / "scan.png")
        assert caught.value.filename2 == str(work)
        assert "INV-1/scan.png: the image lies outside the work folder" in str(caught.value)
        assert os.listdir(work) == []

    def test_a_work_folder_swapped_for_a_link_is_neither_read_nor_written(
            self, tmp_path: Path) -> None:
        """The work folder itself swapped for a link to a folder holding the same image:
        nothing there is read and no PDF is written there; an OSError naming the work
        folder and the fix."""
        bundle_dir = tmp_path / "claimed"
        bundle_dir.mkdir()
        b = validate_bundle(bundle_of(bundle_dir, {"scan.png": image("PNG")},
                                      "external-print"), ValidationConfig(convert_images=True))
        outside = tmp_path / "outside"
        (outside / "INV-1").mkdir(parents=True)
        (outside / "INV-1" / "scan.png").write_bytes((bundle_dir / "INV-1" / "scan.png")
                                                     .read_bytes())
        swap_for_link(bundle_dir, outside)
        with opened_in(outside) as opened, opened_in(outside / "INV-1") as inside, \
                pytest.raises(OSError) as caught:
            materialise(b.attachments, bundle_dir, MAX_PIXELS)
        assert opened == [] and inside == []
        assert caught.value.filename == str(bundle_dir)
        assert "put the bundle's folder itself back" in str(caught.value)
        assert sorted(os.listdir(outside)) == ["INV-1"]
        assert os.listdir(outside / "INV-1") == ["scan.png"]


def refuse_opening(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    """os.open of `name` (from its folder's descriptor) fails with `code`, as it does
    when the process has no descriptor left (EMFILE) or the share is gone (EIO)."""
    real = os.open

    def refuse(path: Any, flags: int, *args: Any, dir_fd: int | None = None) -> int:
        if path == name:
            raise OSError(code, os.strerror(code), path)
        return real(path, flags, *args, dir_fd=dir_fd)
    monkeypatch.setattr(fsops.os, "open", refuse)


class TestTheMachinesFaults:
    """No descriptors left or a share gone while the image is read is the machine's
    fault, not the image's: raised as the OSError it is (the bundle is read again, or
    its delivery tried again, later), never a finding that holds or quarantines it."""

    @pytest.mark.parametrize("code", [errno.EMFILE, errno.EIO])
    def test_an_image_that_cannot_be_opened_at_validation_is_no_finding(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """At validation (convert): the OSError, not conversion-failed."""
        b = bundle_of(tmp_path, {"scan.png": image("PNG")}, "external-print")
        refuse_opening(monkeypatch, "scan.png", code)
        with pytest.raises(OSError) as caught:
            convert(b.attachments[0], set(), MAX_PIXELS)
        assert not isinstance(caught.value, InputError)
        assert caught.value.errno == code

    @pytest.mark.parametrize("code", [errno.EMFILE, errno.EIO])
    def test_an_image_that_cannot_be_opened_at_delivery_is_retried_not_damaged(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """At delivery (materialise): the OSError, which delivery retries, not
        processing-damaged, which quarantines a good bundle; no PDF is written."""
        b = validate_bundle(bundle_of(tmp_path, {"scan.png": image("PNG")}, "external-print"),
                            ValidationConfig(convert_images=True))
        assert b.errors == ()
        refuse_opening(monkeypatch, "scan.png", code)
        with pytest.raises(OSError) as caught:
            materialise(b.attachments, tmp_path, MAX_PIXELS)
        assert not isinstance(caught.value, InputError)
        assert caught.value.errno == code
        assert not (tmp_path / "work" / "INV-1.converted" / "scan.pdf").exists()


@pytest.mark.parametrize("tags,size", [
    ({0x011A: 300.0, 0x011B: 300.0}, (144, 72)),  # EXIF without a unit: inch, 2 × 1 inch
    ({0x011A: 300.0, 0x011B: 600.0, 0x0128: 2}, (144, 36)),
    ({0x0110: "Phone"}, (450, 225)),  # no resolution: 96 DPI, as documented
    # A resolution without an absolute unit (1) or of 0 says none: 96 DPI too.
    ({0x011A: 300.0, 0x011B: 300.0, 0x0128: 1}, (450, 225)),
    ({0x011A: 0.0, 0x011B: 0.0, 0x0128: 2}, (450, 225)),
], ids=["exif-no-unit", "exif-x-y-differ", "exif-without-resolution", "exif-unit-none",
        "exif-zero"])
def test_a_jpeg_page_has_the_size_its_exif_resolution_gives(
        tags: dict[int, Any], size: tuple[int, int]) -> None:
    """The page is sized at the resolution validation read, not at the 72 DPI Pillow
    makes up (a 600 × 300 photo of 300 DPI became a page of 8 × 4 inches)."""
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), "white").save(buf, "JPEG", exif=exif)
    w, h = page_size(image_to_pdf(buf.getvalue(), MAX_PIXELS))
    assert (w, h) == (pytest.approx(size[0], abs=0.1), pytest.approx(size[1], abs=0.1))


def without_jfif(jpeg: bytes) -> bytes:
    """`jpeg` without its JFIF header (APP0), as a camera or phone writes a JPEG: its
    resolution, if any, is in its EXIF data alone."""
    out, i = bytearray(jpeg[:2]), 2
    while jpeg[i + 1] != 0xDA:  # the segments up to the scan
        length = int.from_bytes(jpeg[i + 2:i + 4], "big")
        if jpeg[i + 1] != 0xE0:
            out += jpeg[i:i + 2 + length]
        i += 2 + length
    return bytes(out + jpeg[i:])


def jpeg_with(tags: dict[int, Any], size: tuple[int, int] = (600, 300), *,
              jfif_dpi: tuple[int, int] | None = None) -> bytes:
    """A JPEG with these EXIF tags; with a JFIF header only where `jfif_dpi` is given."""
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    buf = io.BytesIO()
    kw = {"dpi": jfif_dpi} if jfif_dpi else {}
    Image.new("RGB", size, "white").save(buf, "JPEG", exif=exif, **kw)
    return buf.getvalue() if jfif_dpi else without_jfif(buf.getvalue())


@pytest.mark.parametrize("data", [
    image("JPEG", dpi=None), without_jfif(image("JPEG", dpi=None)), image("JPEG"),
    image("JPEG", (600, 300), 72), image("PNG", dpi=None), image("PNG"),
    jpeg_with({0x0112: 6}, jfif_dpi=(300, 600)),
], ids=["jpeg-no-resolution", "jpeg-no-jfif-no-exif", "jpeg-jfif-300", "jpeg-jfif-72",
        "png-no-phys", "png-300", "jpeg-jfif-300x600-rotated"])
def test_a_conversion_gives_the_bytes_it_gave_before_jpeg_resolutions_were_read(
        data: bytes) -> None:
    """An image whose resolution Pillow read rightly, or that states none (taken at 96
    DPI, img2pdf's default), gives the very PDF img2pdf's own layout made before
    outboxd read a JPEG's resolution itself: the PDF's hash is in the bundle id, and
    the same files dropped again after an upgrade must be the duplicate they are."""
    import img2pdf
    before = img2pdf.convert(data, nodate=True, engine=img2pdf.Engine.internal)
    assert image_to_pdf(data, MAX_PIXELS) == before


@pytest.mark.parametrize("orientation,rotate", [(6, 90), (8, 270), (3, 180)])
def test_a_rotated_jpeg_of_unequal_resolutions_keeps_each_on_its_own_side(
        orientation: int, rotate: int) -> None:
    """EXIF's x resolution is along the stored image's width, y along its height,
    whatever its orientation: the page is laid out as stored (600 px at 300 DPI by
    300 px at 600 DPI: 2 × 0.5 inch) and turned by /Rotate as the orientation says,
    so a photo of 300 × 600 DPI turned a quarter shows 0.5 × 2 inch, not squashed."""
    data = jpeg_with({0x011A: 300.0, 0x011B: 600.0, 0x0128: 2, 0x0112: orientation})
    page = PdfReader(io.BytesIO(image_to_pdf(data, MAX_PIXELS))).pages[0]
    assert (float(page.mediabox.width), float(page.mediabox.height)) == (
        pytest.approx(144, abs=0.1), pytest.approx(36, abs=0.1))
    assert page.get("/Rotate") == rotate


@pytest.mark.parametrize("orientation", [2, 4, 5, 7])
def test_a_mirrored_jpeg_is_refused_in_words_a_clerk_can_act_on(
        tmp_path: Path, orientation: int) -> None:
    """A photo whose EXIF orientation mirrors it (some front cameras write one) cannot
    be shown so on a PDF page, which can only be turned: conversion-failed says that
    and the fix, not img2pdf's advice to run it with --rotation=ifvalid."""
    data = jpeg_with({0x011A: 300.0, 0x011B: 300.0, 0x0128: 2, 0x0112: orientation})
    b = validate_bundle(bundle_of(tmp_path, {"photo.jpg": data}, "original-print"),
                        ValidationConfig(convert_images=True))
    assert [f.line() for f in b.errors] == [
        f"INV-1/photo.jpg: cannot be converted to PDF: its EXIF orientation ({orientation}) "
        "shows it mirrored, and a PDF page can be turned but not mirrored — save the "
        "image again upright, or export it as PDF, and put that file in its place"]


@pytest.mark.parametrize("orientation", [0, 9, 65535])
def test_a_jpeg_whose_orientation_is_no_orientation_is_converted_as_stored(
        orientation: int) -> None:
    """An EXIF orientation outside 1–8 (0: "unknown", as some cameras write) says
    nothing; image viewers show such a photo as stored, and so does its PDF page."""
    data = jpeg_with({0x011A: 300.0, 0x011B: 300.0, 0x0128: 2, 0x0112: orientation})
    page = PdfReader(io.BytesIO(image_to_pdf(data, MAX_PIXELS))).pages[0]
    assert page.get("/Rotate") in (None, 0)
    assert (float(page.mediabox.width), float(page.mediabox.height)) == (
        pytest.approx(144, abs=0.1), pytest.approx(72, abs=0.1))


def png_16_bit(color_type: int, size: tuple[int, int] = (20, 10)) -> bytes:
    """A PNG of 16 bits a sample (Pillow writes none with transparency): 6 is RGBA,
    4 grey with alpha, 2 RGB; 300 DPI."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data))
    samples = {6: 4, 4: 2, 2: 3}[color_type]
    width, height = size
    rows = b"".join(b"\0" + b"\x80\x00" * samples * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, color_type, 0, 0, 0))
            + chunk(b"pHYs", struct.pack(">IIB", 11811, 11811, 1))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("color_type", [6, 4])
def test_a_png_with_transparency_at_16_bits_is_refused_in_words_a_clerk_can_act_on(
        tmp_path: Path, color_type: int) -> None:
    """img2pdf refuses transparency at more than 8 bits a sample (a 16-bit export from an
    image editor): conversion-failed says what the picture holds and how to save it, not
    img2pdf's "AlphaChannelError: Refusing to work with multiple >8bit channels"."""
    b = validate_bundle(bundle_of(tmp_path, {"logo.png": png_16_bit(color_type)},
                                  "original-print"), ValidationConfig(convert_images=True))
    assert [f.line() for f in b.errors] == [
        "INV-1/logo.png: cannot be converted to PDF: it holds transparency at 16 bits per "
        "colour, which outboxd cannot put into a PDF without loss — save it as a PNG of "
        "8 bits per colour, or export it as PDF, and put that file in its place"]


def test_a_png_of_16_bits_without_transparency_is_converted(tmp_path: Path) -> None:
    b = validate_bundle(bundle_of(tmp_path, {"scan.png": png_16_bit(2)}, "original-print"),
                        ValidationConfig(convert_images=True))
    assert b.errors == () and b.attachments[0].converted is not None


def test_a_bundle_of_an_image_and_a_pdf_keeps_the_pdf_as_it_is_at_delivery(
        tmp_path: Path) -> None:
    """An image converted beside a PDF attachment in one bundle: at delivery
    (materialise) the PDF is handed on as it was checked, in its place among the
    attachments, never dropped or rewritten, and only the image's PDF is written."""
    contract = pdf_bytes()
    b = validate_bundle(bundle_of(tmp_path, {"contract.pdf": contract, "scan.png": image("PNG"),
                                             "z.pdf": contract}, "external-print"),
                        ValidationConfig(convert_images=True))
    assert b.errors == ()
    written = materialise(b.attachments, tmp_path, MAX_PIXELS)
    assert [a.original_name for a in written] == ["contract.pdf", "scan.png", "z.pdf"]
    assert written[0] == b.attachments[0] and written[2] == b.attachments[2]
    assert written[1].converted is not None and written[1].converted.path is not None
    assert written[1].converted.path.is_file()
    assert sorted(p.name for p in (tmp_path / "INV-1.converted").iterdir()) == ["scan.pdf"]
    assert (tmp_path / "INV-1" / "contract.pdf").read_bytes() == contract


@pytest.mark.parametrize("orientation", [6, 8])
def test_a_photo_turned_a_quarter_is_said_as_a_viewer_shows_its_page(
        tmp_path: Path, orientation: int) -> None:
    """The page size `check` shows for a converted photo (Conversion.page_cm) is the page
    as a viewer shows it: a JPEG of 600 × 300 px at 300 DPI whose EXIF orientation turns
    it a quarter is a page of 1 × 2 inch (2.54 × 5.08 cm), not the 2 × 1 inch it is
    laid out at before its /Rotate."""
    data = jpeg_with({0x011A: 300.0, 0x011B: 300.0, 0x0128: 2, 0x0112: orientation})
    b = validate_bundle(bundle_of(tmp_path, {"photo.jpg": data}, "original-print"),
                        ValidationConfig(convert_images=True))
    assert b.errors == ()
    [att] = b.attachments
    assert att.converted is not None and att.converted.page_cm is not None
    assert att.converted.page_cm == (pytest.approx(2.54, abs=0.01),
                                     pytest.approx(5.08, abs=0.01))
