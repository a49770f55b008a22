"""A PDF invoice file with a page whose text cannot be read, end to end: `outboxd run` as a
subprocess with its reader processes, the reference receiver on 127.0.0.1, the real
watchdog observer, real SQLite, PDFs made here (docs/folder-convention.md, section 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Env, Receiver
from helpers import pdf_bytes, wait_for, write
from reading.test_invoices import damaged, flate_pdf_pages, text_run

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def drop_pdf(outbox: Path, name: str, data: bytes) -> None:
    """Sidecar (one attachment) first, then the invoice file by a rename, as an ERP does."""
    write(outbox / name / "a.pdf", pdf_bytes())
    write(outbox / f".{name}.pdf.tmp", data).rename(outbox / f"{name}.pdf")


def test_ids_beside_a_damaged_page_quarantine_and_a_damaged_page_alone_goes_with_a_warning(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A PDF of INV-1 and INV-2 whose third page cannot be read went out as the one
    invoice "print" (its stem), none of the three: it is quarantined, its REASON.txt
    naming the page and the ids, as other invoice-file errors are. A PDF whose only page
    cannot be read and holds no id found goes out under its stem, as before, with the
    warning in its manifest."""
    env.write_config(receiver.url, service={"reader_processes": "auto"})
    start_daemon()
    drop_pdf(env.outbox, "print", flate_pdf_pages([
        text_run("Invoice number: INV-1"), text_run("Invoice number: INV-2"),
        damaged("Invoice number: INV-3")]))
    drop_pdf(env.outbox, "INV-8", flate_pdf_pages([damaged("Invoice number: A-1")]))

    wait_for(lambda: len(env.quarantined()) == 1 and len(env.sent_bundles()) == 1,
             what="one bundle quarantined and one sent")
    [quarantined] = env.quarantined()
    assert quarantined.name.startswith("print--")
    reason = (quarantined / "REASON.txt").read_text()
    assert "print.pdf: holds the invoices INV-1, INV-2, but the text of page 3 could not " \
        "be read (pypdf: " in reason
    record = json.loads((quarantined / "reason.json").read_text())
    assert [r["code"] for r in record["reasons"]] == ["pdf-text-unreadable"]
    assert (quarantined / "print.pdf").exists()

    [sent] = env.sent_bundles()
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    assert [i["id"] for i in manifest["invoices"]] == ["INV-8"]
    [warning] = manifest["warnings"]
    assert (warning["code"], warning["file"], warning["invoice_id"]) == (
        "pdf-text-unreadable", "INV-8.pdf", "INV-8")
    assert warning["message"].startswith("the text of page 1 could not be read (pypdf: ")
    [accepted] = receiver.accepted()
    assert accepted["idempotency_key"] == manifest["bundle_id"]


def test_a_page_pypdf_reads_only_in_part_without_a_word_quarantines_the_ids_beside_it(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A PDF of INV-1 and INV-2 whose page of INV-3 has compressed content one byte of
    which changed (pypdf unpacks it without an error and reads no text there), and one
    whose list of pages names an object the file does not hold (pypdf leaves that page
    out), and one whose page of INV-3 shows its text in a font the file does not hold
    (pypdf reads "\ufffd" for each character), each with a folder of attachments for
    INV-1 and INV-2: all were sent as the invoices INV-1 and INV-2, INV-3 lost without a
    word. All are quarantined, REASON.txt saying which page and why; nothing is sent."""
    from reading.test_pdfdamage import INVOICES, changed_byte, pages_of, pdf_pages, stream
    env.write_config(receiver.url, service={"reader_processes": "auto"})
    start_daemon()
    for name, data in {
            "flate": pdf_pages(pages_of(*INVOICES[:2]) + [stream(changed_byte(INVOICES[2]))]),
            "kids": pdf_pages(pages_of(*INVOICES), kids=b"5 0 R 7 0 R 9 1 R"),
            "font": pdf_pages(pages_of(*INVOICES), resources={
                2: b"/Resources << /Font << /F1 99 0 R >> >>"})}.items():
        for invoice in ("INV-1", "INV-2"):
            write(env.outbox / name / invoice / "a.pdf", pdf_bytes())
        write(env.outbox / f".{name}.pdf.tmp", data).rename(env.outbox / f"{name}.pdf")

    wait_for(lambda: len(env.quarantined()) == 3 or env.sent_bundles(),
             what="all three bundles quarantined, or one sent")
    assert env.sent_bundles() == [] and receiver.accepted() == []
    reasons = {q.name.split("--")[0]: (q / "REASON.txt").read_text() for q in env.quarantined()}
    assert "flate.pdf: holds the invoices INV-1, INV-2, but the text of page 3 could not " \
        "be read (its compressed content does not match its checksum)" in reasons["flate"]
    assert "kids.pdf: holds the invoices INV-1, INV-2, but its list of pages could not be " \
        "read (the entry after page 2 is not in the file)" in reasons["kids"]
    assert "font.pdf: holds the invoices INV-1, INV-2, but the text of page 3 could not " \
        "be read (the font /F1 it shows text in is not in the file)" in reasons["font"]


def test_a_writer_whose_every_checksum_is_wrong_sends_its_invoices_under_their_ids(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A PDF of INV-1, INV-2 and INV-3 whose every compressed stream has its checksum
    written wrong (as jsPDF 1.x writes them; all of the data unpacks), with a folder of
    attachments per invoice: each page was taken for one not read, the file for one
    invoice under its file name, and the bundle quarantined (its folders named no
    invoice of it). It goes out as the three invoices, each with its attachment, and
    no warning."""
    from reading.test_pdfdamage import INVOICES, pdf_pages, stream, wrong_sum
    env.write_config(receiver.url, service={"reader_processes": "auto"})
    start_daemon()
    for invoice in ("INV-1", "INV-2", "INV-3"):
        write(env.outbox / "jspdf" / invoice / "a.pdf", pdf_bytes())
    data = pdf_pages([stream(wrong_sum(content)) for content in INVOICES])
    write(env.outbox / ".jspdf.pdf.tmp", data).rename(env.outbox / "jspdf.pdf")

    wait_for(lambda: env.sent_bundles() or env.quarantined(), what="the bundle archived")
    assert env.quarantined() == []
    [sent] = env.sent_bundles()
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    assert [(i["id"], [a["name"] for a in i["attachments"]])
            for i in manifest["invoices"]] == [
        ("INV-1", ["a.pdf"]), ("INV-2", ["a.pdf"]), ("INV-3", ["a.pdf"])]
    assert manifest["warnings"] == []


def test_a_filled_pdf_form_goes_out_with_the_number_typed_into_its_field(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A filled invoice template: INV-1 in page 1's text, INV-2 typed into a form field
    on page 2 (filled with pypdf's writer), a folder of attachments for each. It went
    out as the one invoice INV-1, INV-2's folder matched to none; it goes out as both,
    each with its attachment."""
    from reading.test_pdffields import template
    env.write_config(receiver.url, service={"reader_processes": "auto"})
    start_daemon()
    for invoice in ("INV-1", "INV-2"):
        write(env.outbox / "form" / invoice / f"{invoice}-timesheet.pdf", pdf_bytes())
    data = template((1, "number", "Invoice number: INV-2", {}))
    write(env.outbox / ".form.pdf.tmp", data).rename(env.outbox / "form.pdf")

    wait_for(lambda: env.sent_bundles() or env.quarantined(),
             what="the filled form sent, or quarantined")
    assert env.quarantined() == []
    [sent] = env.sent_bundles()
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    assert [(i["id"], [a["name"] for a in i["attachments"]]) for i in manifest["invoices"]] \
        == [("INV-1", ["INV-1-timesheet.pdf"]), ("INV-2", ["INV-2-timesheet.pdf"])]
    assert manifest["warnings"] == []
