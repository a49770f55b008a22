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


@pytest.mark.parametrize("delivery_format", ["bundle", "ubl-embedded"])
def test_an_almost_peppol_customization_id_is_a_warning_of_the_bundle(
        tmp_path: Path, delivery_format: str) -> None:
    """What `check` shows and the daemon puts into the manifest's warnings: the official
    example with its CustomizationID one character off Peppol BIS 3 is a valid bundle
    with the peppol-id-mismatch warning, for either format (ubl-embedded keeps
    pre-flight's warnings); the unchanged example has none."""
    import hashlib

    from einvoice.broken import BASE
    bis3 = b"urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0<"
    settings = Settings(outbox={"path": tmp_path},
                        delivery={"url": "http://127.0.0.1:9/", "format": delivery_format})
    for name, data in (("TYPO.xml", BASE.replace(bis3, bis3[:-2] + b"O<")),
                       ("BASE.xml", BASE)):
        path = tmp_path / name
        path.write_bytes(data)
        inv = InvoiceFile(path, name, len(data), hashlib.sha256(data).hexdigest(), "ubl",
                          ("Snippet1",))
        checked = check_bundle(Bundle(inv, None, (), "e-invoice"), settings)
        assert checked.errors == ()
        codes = [(f.code, f.file) for f in checked.warnings]
        assert codes == ([("peppol-id-mismatch", name)] if name == "TYPO.xml" else [])


def test_an_invoice_file_that_could_not_be_read_is_noted_as_unread_not_as_another_kind(
        tmp_path: Path) -> None:
    """A UBL batch whose ids could not be read (an id twice) has its own error; its
    not-preflighted note says the file could not be read, not that it "is a UBL
    Invoice" which the rules do not check (they check just that)."""
    path = tmp_path / "INV-1.xml"
    path.write_bytes(b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:'
                     b'Invoice-2"><ID>1</ID></Invoice>')
    bundle = Bundle(InvoiceFile(path, "INV-1.xml", 1, "x", "other", (), ids_unknown=True),
                    None, (), "e-invoice")
    settings = Settings(outbox={"path": tmp_path}, delivery={"url": "http://127.0.0.1:9/"})
    [note] = check_bundle(bundle, settings).findings
    assert (note.code, note.severity, note.message) == (
        "not-preflighted", "note", "not checked against the e-invoice rules: the invoice "
        "file could not be read (see its error)")
