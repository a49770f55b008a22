"""The demo's sample builders make what they claim, read by the daemon's own readers."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image
from pypdf import PdfReader

from daemon.actions import samples
from daemon.configuration.config import DEFAULT_PDF_ID_PATTERN
from daemon.reading.invoices import read_invoice_file

OFFICIAL = Path(__file__).resolve().parents[1] / "fixtures" / "peppol" / "base-example.xml"


def test_peppol_invoice_changes_only_the_invoice_number(tmp_path: Path) -> None:
    """The packaged Peppol example is the official file; only its own cbc:ID changes."""
    original = OFFICIAL.read_bytes()
    made = samples.peppol_invoice("INV-9")
    assert made.replace(b"<cbc:ID>INV-9</cbc:ID>", b"<cbc:ID>Snippet1</cbc:ID>", 1) == original
    path = tmp_path / "a.xml"
    path.write_bytes(made)
    assert read_invoice_file(path, "a.xml", DEFAULT_PDF_ID_PATTERN).invoice_ids == ("INV-9",)


def test_peppol_batch_holds_each_invoice_in_order(tmp_path: Path) -> None:
    path = tmp_path / "b.xml"
    path.write_bytes(samples.peppol_batch(["B-1", "B-2", "B-3"]))
    read = read_invoice_file(path, "b.xml", DEFAULT_PDF_ID_PATTERN)
    assert read.format == "ubl" and read.invoice_ids == ("B-1", "B-2", "B-3")


def test_text_pdf_id_is_found_by_the_default_pattern(tmp_path: Path) -> None:
    path = tmp_path / "scan.pdf"
    path.write_bytes(samples.text_pdf(["ACME  Fakturanummer: INV-3001  Summa 10,00"]))
    assert read_invoice_file(path, "scan.pdf", DEFAULT_PDF_ID_PATTERN).invoice_ids == \
        ("INV-3001",)


def test_encrypted_pdf_opens_without_password_yet_is_encrypted() -> None:
    reader = PdfReader(io.BytesIO(samples.encrypted_pdf("x")))
    assert reader.is_encrypted and reader.decrypt("") and len(reader.pages) == 1


def test_tiff_scan_has_the_resolution_asked_for() -> None:
    with Image.open(io.BytesIO(samples.tiff_scan(200, pages=2))) as img:
        assert img.format == "TIFF" and getattr(img, "n_frames", 1) == 2
        assert tuple(round(float(v)) for v in img.info["dpi"]) == (200, 200)
