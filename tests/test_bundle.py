"""The data a bundle is made of (daemon/bundle.py): findings as the journal keeps them
and back, findings by severity, attachments grouped by invoice, and what is sent for a
converted image."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.bundle import (
    Attachment,
    Bundle,
    Conversion,
    Finding,
    InvoiceFile,
    findings_of,
    reasons_of,
)


def bundle_of(tmp_path: Path, invoice_ids: tuple[str, ...], attachments: tuple[Attachment, ...],
              findings: tuple[Finding, ...] = ()) -> Bundle:
    invoice = InvoiceFile(tmp_path / "batch-1.xml", "batch-1.xml", 10, "0" * 64, "ubl",
                          invoice_ids)
    return Bundle(invoice, tmp_path / "batch-1", attachments, "e-invoice", findings)


def attachment(tmp_path: Path, invoice_id: str, name: str,
               converted: Conversion | None = None) -> Attachment:
    return Attachment(tmp_path / "batch-1" / invoice_id / name, f"batch-1/{invoice_id}/{name}",
                      name, invoice_id, 3, "1" * 64, "Attachment", content_type="image/png",
                      converted=converted)


def test_reasons_kept_by_the_journal_read_back_as_the_same_findings() -> None:
    """reasons_of() gives the journal's plain dicts (code, file, message, invoice_id: null
    for the whole file) and findings_of() makes the same findings of them again, in
    order; a row of an older version, without invoice_id, reads as one for no invoice."""
    findings = [Finding("pdf-encrypted", "INV-1/a.pdf", "is encrypted — send it unlocked"),
                Finding("empty-file", "B/X_2/b.pdf", "is empty", invoice_id="X:2")]
    reasons = reasons_of(findings)
    assert reasons[0] == {"code": "pdf-encrypted", "file": "INV-1/a.pdf",
                          "message": "is encrypted — send it unlocked", "invoice_id": None}
    assert reasons[1]["invoice_id"] == "X:2"
    assert findings_of(reasons) == findings
    assert findings_of([{"code": "c", "file": "f", "message": "m"}]) == [Finding("c", "f", "m")]


def test_errors_and_warnings_split_the_findings_by_severity_and_a_note_is_neither(
        tmp_path: Path) -> None:
    """A bundle's errors are its error findings, its warnings its warning findings; a note
    (for `outboxd check` only) counts as neither."""
    error = Finding("empty-file", "a.pdf", "is empty")
    warning = Finding("unattached", "batch-1.xml", "has no attachment", "warning")
    note = Finding("not-preflighted", "batch-1.xml", "not checked", "note")
    b = bundle_of(tmp_path, ("INV-1",), (), (note, error, warning))
    assert b.errors == (error,)
    assert b.warnings == (warning,)


def test_with_findings_appends_and_leaves_the_bundle_it_came_from_as_it_was(
        tmp_path: Path) -> None:
    """with_findings() is a new bundle with the findings added after the ones it had."""
    first = Finding("empty-file", "a.pdf", "is empty")
    more = Finding("unattached", "batch-1.xml", "has no attachment", "warning")
    b = bundle_of(tmp_path, ("INV-1",), (), (first,))
    assert b.with_findings([more]).findings == (first, more)
    assert b.findings == (first,)


def test_attachments_are_grouped_by_invoice_and_an_invoice_without_one_is_unattached(
        tmp_path: Path) -> None:
    """attachments_of(id) is that invoice's attachments in their order; unattached_ids are
    the invoice ids (in the file's order) that have none."""
    a1, a2 = attachment(tmp_path, "INV-1", "a.png"), attachment(tmp_path, "INV-1", "b.png")
    c = attachment(tmp_path, "INV-3", "c.png")
    b = bundle_of(tmp_path, ("INV-1", "INV-2", "INV-3", "INV-4"), (a1, c, a2))
    assert b.attachments_of("INV-1") == (a1, a2)
    assert b.attachments_of("INV-2") == ()
    assert b.unattached_ids == ("INV-2", "INV-4")


def test_a_converted_image_is_sent_as_its_pdf_once_written_and_never_before(
        tmp_path: Path) -> None:
    """An attachment converted for print is sent as the PDF (its name, type, size, hash);
    before the PDF is written into the work folder, asking what is sent is an error, not
    the image sent in its place."""
    plain = attachment(tmp_path, "INV-1", "scan.png")
    assert plain.sent == ("scan.png", plain.path, "image/png", 3, "1" * 64)
    pdf = Conversion("scan.pdf", 900, "2" * 64, 1, "image/png")
    pending = attachment(tmp_path, "INV-1", "scan.png", converted=pdf)
    with pytest.raises(RuntimeError, match="not written"):
        _ = pending.sent
    written = attachment(tmp_path, "INV-1", "scan.png",
                         converted=Conversion("scan.pdf", 900, "2" * 64, 1, "image/png",
                                              tmp_path / "work" / "scan.pdf"))
    assert written.sent == ("scan.pdf", tmp_path / "work" / "scan.pdf", "application/pdf",
                            900, "2" * 64)
