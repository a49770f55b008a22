"""The e-invoice package's API for a read bundle (daemon/einvoice/__init__.py):
preflight_bundle, which looks only at UBL invoice files and notes the others."""

from __future__ import annotations

from pathlib import Path

from helpers import pdf_bytes


def test_pdf_bundle_is_not_preflighted(tmp_path: Path) -> None:
    from daemon.bundle import Bundle, InvoiceFile
    from daemon.einvoice import preflight_bundle
    path = tmp_path / "INV-1.pdf"
    path.write_bytes(pdf_bytes())
    bundle = Bundle(InvoiceFile(path, "INV-1.pdf", 1, "x", "pdf", ("INV-1",)), None, (),
                    "e-invoice")
    checked = preflight_bundle(bundle, "error")
    assert checked.errors == () and checked.warnings == ()
    assert [(f.code, f.severity) for f in checked.findings] == [("not-preflighted", "note")]
    assert preflight_bundle(bundle, "off") is bundle
