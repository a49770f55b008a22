"""The e-invoice package's API for a read bundle (daemon/einvoice/__init__.py):
check_bundle, what the daemon runs on each bundle (finish.evaluate), pre-flights only
UBL invoice files and notes the others."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import pdf_bytes

from daemon.bundle import Bundle, InvoiceFile
from daemon.configuration.config import Settings
from daemon.einvoice import check_bundle


@pytest.mark.parametrize("delivery_format", ["bundle", "ubl-embedded"])
def test_pdf_bundle_is_not_preflighted(tmp_path: Path, delivery_format: str) -> None:
    """A PDF invoice file gets a not-preflighted note and nothing else (the rules read
    only UBL); with [einvoice] preflight = "off" not even that. Under ubl-embedded it is
    the not-ubl error besides."""
    path = tmp_path / "INV-1.pdf"
    path.write_bytes(pdf_bytes())
    bundle = Bundle(InvoiceFile(path, "INV-1.pdf", 1, "x", "pdf", ("INV-1",)), None, (),
                    "e-invoice")

    def settings(preflight: str) -> Settings:
        return Settings(outbox={"path": tmp_path}, einvoice={"preflight": preflight},
                        delivery={"url": "http://127.0.0.1:9/", "format": delivery_format})

    checked = check_bundle(bundle, settings("error"))
    embedded = delivery_format == "ubl-embedded"
    assert checked.warnings == ()
    assert [(f.code, f.severity) for f in checked.findings] == [
        ("not-preflighted", "note")] + ([("not-ubl", "error")] if embedded else [])
    off = check_bundle(bundle, settings("off"))
    assert [f.code for f in off.findings] == (["not-ubl"] if embedded else [])
