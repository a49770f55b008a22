"""`[delivery] format = "ubl-embedded"` end to end (docs/einvoice.md): the real daemon and
receiver."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import OUTBOXD, Env, Receiver, journal_since
from einvoice.broken import BIS_4A, EXAMPLES, body, outside_en16931, with_id
from helpers import Page, drop_bundle, pdf_bytes, ubl_invoice, wait_for, write
from lxml import etree
from PIL import Image

from daemon.einvoice import preflight

# Bundles settle in 0.1 s (conftest.quick_settle): they come whole.
pytestmark = pytest.mark.usefixtures("quick_settle")

NS = {"cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
      "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"}
# The daemon checks each document it builds with the e-invoice rules; here on its own
# threads (reader_processes = 0: what is built does not depend on where), which loads the
# rules once instead of in each of two reader processes.
EMBEDDED = {"delivery": {"format": "ubl-embedded"}, "policy": {"unattached": "send"},
            "service": {"reader_processes": 0}}


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


def stored_documents(receiver: Receiver) -> dict[str, bytes]:
    folder = receiver.store / "documents"
    return {p.stem: p.read_bytes() for p in folder.glob("*.xml")} if folder.exists() else {}


def embedded(doc: bytes) -> dict[str, tuple[bytes, str, str]]:
    """filename -> (decoded bytes, mimeCode, DocumentDescription)."""
    out = {}
    for ref in etree.fromstring(doc).findall("cac:AdditionalDocumentReference", NS):
        obj = ref.find("cac:Attachment/cbc:EmbeddedDocumentBinaryObject", NS)
        if obj is not None:
            out[obj.get("filename")] = (base64.b64decode(obj.text), obj.get("mimeCode"),
                                        ref.findtext("cbc:DocumentDescription", namespaces=NS))
    return out


def only_inserted(doc: bytes, original: bytes) -> bool:
    """doc is original with one block inserted somewhere, every other byte unchanged."""
    p = 0
    while p < len(original) and doc[p] == original[p]:
        p += 1
    return doc[p + len(doc) - len(original):] == original[p:]


def kept_documents(folder: Path) -> dict[str, bytes]:
    """The documents outboxd kept in a work folder or archive entry (NAME.embedded/), by
    file name; every file there, a temp one included."""
    return {p.name: p.read_bytes() for p in (folder / "batch.embedded").iterdir()}


def assert_entry_keeps_what_was_sent(archived: Path, receiver: Receiver) -> None:
    """The archive entry holds each document byte for byte as the receiver stored it,
    under the name its receipt gives, its SHA-256 the receipt's Idempotency-Key."""
    receipt = json.loads((archived / "receipt.json").read_text())
    listed = receipt["response"]["body"]["documents"]
    kept = kept_documents(archived)
    assert sorted(kept) == sorted(d["name"] for d in listed)
    docs = stored_documents(receiver)
    for d in listed:
        data = kept[d["name"]]
        assert hashlib.sha256(data).hexdigest() == d["idempotency_key"]
        assert data == docs[d["idempotency_key"]]


def test_bundle_arrives_as_one_xml_document_with_its_attachments_inside(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url, **EMBEDDED)
    start_daemon()
    invoice, pdf, image = ubl_invoice("INV-1"), pdf_bytes(2), png()
    toml = b'[files."timesheet.pdf"]\ntype = "Timesheet"\nnote = "Hours for October"\n'
    drop_bundle(env.outbox, "INV-1", {"timesheet.pdf": pdf, "photo.png": image,
                                      "attachments.toml": toml}, invoice)
    [archived] = wait_for(env.sent_bundles, what="the bundle sent")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    [(key, doc)] = stored_documents(receiver).items()
    assert key == hashlib.sha256(doc).hexdigest()
    assert only_inserted(doc, invoice)
    assert embedded(doc) == {"timesheet.pdf": (pdf, "application/pdf", "Hours for October"),
                             "photo.png": (image, "image/png", "Attachment")}
    assert preflight(doc, "INV-1.xml").errors == ()  # XSD and every rule, same artefacts
    [request] = receiver.requests()
    assert request["idempotency_key"] == key and request["status"] == 201
    receipt = json.loads((archived / "receipt.json").read_text())
    [entry] = receipt["response"]["body"]["documents"]
    assert entry["idempotency_key"] == key and entry["invoice_id"] == "INV-1"
    assert entry["receipt_id"] == receipt["response"]["receipt_id"]


def test_credit_note_is_sent_with_its_attachment_inside(env: Env, receiver: Receiver,
                                                        start_daemon) -> None:
    env.write_config(receiver.url, **EMBEDDED)
    start_daemon()
    note = with_id((EXAMPLES / "base-creditnote-correction.xml").read_bytes(), "CN-7")
    drop_bundle(env.outbox, "CN-7", {"reason.pdf": pdf_bytes()}, note)
    wait_for(lambda: stored_documents(receiver), what="the credit note")
    [doc] = stored_documents(receiver).values()
    assert only_inserted(doc, note) and set(embedded(doc)) == {"reason.pdf"}
    assert preflight(doc, "CN-7.xml").errors == ()


def test_two_invoices_split_in_two_and_a_503_resends_only_the_first(
        env: Env, start_receiver, start_daemon) -> None:
    receiver = start_receiver("--fail-first", "503")
    env.write_config(receiver.url, **EMBEDDED)
    start_daemon()
    one, two = with_id(ubl_invoice("A-1"), "A-1"), ubl_invoice("B-2")
    batch = b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>\n' + body(one) + body(two) + \
        b"</Batch>\n"
    write(env.outbox / "batch" / "A-1" / "a.pdf", pdf_bytes())
    write(env.outbox / "batch" / "B-2" / "b.pdf", pdf_bytes(3))
    write(env.outbox / "batch.xml", batch)
    [archived] = wait_for(env.sent_bundles, what="the batch sent")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    docs = stored_documents(receiver)
    assert len(docs) == 2
    by_id = {etree.fromstring(d).findtext("cbc:ID", namespaces=NS): d for d in docs.values()}
    assert set(embedded(by_id["A-1"])) == {"a.pdf"} and set(embedded(by_id["B-2"])) == {"b.pdf"}
    prolog = b'<?xml version="1.0" encoding="UTF-8"?>\n'
    assert only_inserted(by_id["A-1"], prolog + body(one))
    assert only_inserted(by_id["B-2"], prolog + body(two))
    key_a, key_b = (hashlib.sha256(by_id[i]).hexdigest() for i in ("A-1", "B-2"))
    assert [(r["idempotency_key"], r["status"]) for r in receiver.requests()] == [
        (key_a, 503), (key_b, 201), (key_a, 201)]
    receipt = json.loads((archived / "receipt.json").read_text())
    assert [d["idempotency_key"] for d in receipt["response"]["body"]["documents"]] == [
        key_a, key_b]
    for doc in docs.values():
        assert preflight(doc, "x.xml").errors == ()
    assert_entry_keeps_what_was_sent(archived, receiver)


def test_a_file_with_a_swedish_name_goes_in_under_its_plain_name(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """The real daemon under the default safe_filenames: 'Tidrapport oktober å.pdf'
    reaches the receiver inside the document as 'Tidrapport_oktober_a.pdf' (cbc:ID and
    filename), as its multipart part would be named; the file in sent/ keeps its name."""
    env.write_config(receiver.url, **EMBEDDED)
    start_daemon()
    pdf = pdf_bytes()
    drop_bundle(env.outbox, "INV-S", {"Tidrapport oktober å.pdf": pdf}, ubl_invoice("INV-S"))
    [archived] = wait_for(env.sent_bundles, what="the bundle sent")
    [doc] = stored_documents(receiver).values()
    assert embedded(doc) == {"Tidrapport_oktober_a.pdf": (pdf, "application/pdf",
                                                          "Attachment")}
    [ref] = etree.fromstring(doc).findall("cac:AdditionalDocumentReference", NS)
    assert ref.findtext("cbc:ID", namespaces=NS) == "Tidrapport_oktober_a.pdf"
    assert [p.name for p in archived.rglob("*.pdf")] == ["Tidrapport oktober å.pdf"]


def test_a_tiff_on_this_channel_is_an_error(env: Env, receiver: Receiver,
                                            start_daemon) -> None:
    env.write_config(receiver.url, validation={"allowed_types": ["pdf", "tiff"]}, **EMBEDDED)
    start_daemon()
    buf = io.BytesIO()
    Image.new("L", (10, 10)).save(buf, "TIFF", dpi=(300, 300))
    drop_bundle(env.outbox, "INV-T", {"scan.tif": buf.getvalue()}, ubl_invoice("INV-T"))
    [q] = wait_for(env.quarantined, what="the bundle quarantined")
    reason = (q / "REASON.txt").read_text()
    assert "INV-T/scan.tif" in reason and "Peppol allows only" in reason
    assert receiver.requests() == []


@pytest.mark.usefixtures("quick_page")
def test_a_cii_invoice_is_said_to_be_one_in_reason_txt_and_on_the_status_page(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A UN/CEFACT CII invoice under ubl-embedded: REASON.txt and the clerks' status page
    said it "is not a UBL Invoice/CreditNote (other)" — an internal word, no kind and no
    way out. Both say what the file is and how to send it (a UBL export, or format =
    "bundle"), as `outboxd check` does; nothing is posted."""
    env.write_config(receiver.url, **EMBEDDED)
    write(env.outbox / "CII-1.xml",
          b'<?xml version="1.0" encoding="UTF-8"?>\n<rsm:CrossIndustryInvoice xmlns:rsm='
          b'"urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100">'
          b"<rsm:ExchangedDocument/></rsm:CrossIndustryInvoice>\n")
    said = "CII-1.xml: is a UN/CEFACT CII invoice (CrossIndustryInvoice"
    checked = subprocess.run([*OUTBOXD, "check", "-c", str(env.config),
                              str(env.outbox / "CII-1.xml")], capture_output=True, text=True,
                             timeout=120)
    assert checked.returncode == 1 and said in checked.stdout, checked.stdout
    start_daemon()
    [q] = wait_for(env.quarantined, what="the CII invoice quarantined")
    reason = (q / "REASON.txt").read_text()
    assert said in reason and "(other)" not in reason
    assert 'format = "bundle" to send the file as it is' in reason
    page_file = env.outbox / "outboxd-status.html"

    def on_page() -> str:
        return Page(page_file.read_text()).text.get("quarantined", "") \
            if page_file.exists() else ""

    def on_page_or_another_day() -> bool:
        # The page lists the bundles quarantined on the day it is written (UTC): a run
        # across midnight looks at the reason only if it was quarantined that day. The
        # folder is in quarantine/ a moment before the journal says so: no row yet is
        # "not yet", not a failure.
        if "CII-1--" in on_page():
            return True
        since = journal_since(env, "quarantined")
        return bool(since) and since[0][:10] != datetime.now(UTC).date().isoformat()

    wait_for(on_page_or_another_day, what="the quarantine on the page")
    if "CII-1--" in on_page():
        assert said in on_page() and "(other)" not in on_page()
    assert receiver.requests() == []


def test_directory_transport_writes_one_file_per_invoice(env: Env, start_daemon,
                                                         tmp_path: Path) -> None:
    target = tmp_path / "handoff"
    env.write_config("http://127.0.0.1:9/unused", delivery={
        "format": "ubl-embedded", "transport": "directory", "target": str(target)},
        policy={"unattached": "send"}, service=EMBEDDED["service"])
    start_daemon()
    batch = b"<Batch>" + body(ubl_invoice("A-1")) + body(ubl_invoice("B-2")) + b"</Batch>"
    write(env.outbox / "batch" / "B-2" / "b.pdf", pdf_bytes())
    write(env.outbox / "batch.xml", batch)
    wait_for(env.sent_bundles, what="the batch sent")
    files = {p.name: p.read_bytes() for p in target.iterdir()}
    assert set(files) == {"batch--A-1.xml", "batch--B-2.xml"}
    assert set(embedded(files["batch--B-2.xml"])) == {"b.pdf"}
    assert embedded(files["batch--A-1.xml"]) == {}


def test_an_invoice_outside_en16931_without_its_issue_date_is_never_sent(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A UBL 2.1 invoice whose CustomizationID names no EN 16931 rules (Peppol BIS 4A)
    and lacks cbc:IssueDate was embedded and POSTed unchecked. Every built document is
    checked against the UBL 2.1 schema: that one is quarantined with the schema error
    and never posted, while the same invoice with its issue date is sent."""
    env.write_config(receiver.url, **EMBEDDED)
    start_daemon()
    good = outside_en16931(ubl_invoice("OK-1"), BIS_4A)
    bad = outside_en16931(ubl_invoice("BAD-1"), BIS_4A).replace(
        b"  <cbc:IssueDate>2026-11-02</cbc:IssueDate>\n", b"")
    assert b"IssueDate" not in bad and b"IssueDate" in good
    drop_bundle(env.outbox, "BAD-1", {"a.pdf": pdf_bytes()}, bad)
    drop_bundle(env.outbox, "OK-1", {"a.pdf": pdf_bytes(2)}, good)
    [q] = wait_for(env.quarantined, what="BAD-1 quarantined")
    [sent] = wait_for(env.sent_bundles, what="OK-1 sent")
    assert q.name.startswith("BAD-1--") and sent.name.startswith("OK-1--")
    reason = (q / "REASON.txt").read_text()
    assert "BAD-1.xml: invoice BAD-1 breaks [UBL-XSD] Element 'cbc:DueDate'" in reason
    assert "cbc:IssueDate" in reason and "correct the invoice in the ERP" in reason
    [doc] = stored_documents(receiver).values()
    assert etree.fromstring(doc).findtext("cbc:ID", namespaces=NS) == "OK-1"
    assert set(embedded(doc)) == {"a.pdf"}
    assert len(receiver.requests()) == 1


def test_a_bundle_set_to_a_print_channel_still_goes_as_one_multipart_bundle(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """format = "ubl-embedded" is for the e-invoice channel only: a bundle whose
    attachments.toml sets channel = "external-print" reaches the receiver as one
    multipart bundle (STORE/BUNDLE_ID/ with its manifest and files, keyed by the bundle
    id), not as a UBL document; an e-invoice bundle beside it is still embedded."""
    env.write_config(receiver.url, **EMBEDDED)
    start_daemon()
    printed, pdf = ubl_invoice("P-1"), pdf_bytes(2)
    drop_bundle(env.outbox, "P-1", {"scan.pdf": pdf,
                                    "attachments.toml": b'channel = "external-print"\n'},
                printed)
    drop_bundle(env.outbox, "E-1", {"a.pdf": pdf_bytes(1)}, ubl_invoice("E-1"))
    wait_for(lambda: len(env.sent_bundles()) == 2
             and all((b / "receipt.json").exists() for b in env.sent_bundles()),
             what="both bundles sent, each with its receipt.json")
    receipts = {b.name.split("--")[0]: json.loads((b / "receipt.json").read_text())
                for b in env.sent_bundles()}
    manifest = receipts["P-1"]["manifest"]
    assert manifest["channel"] == "external-print"
    stored = receiver.store / manifest["bundle_id"]
    assert (stored / "P-1.xml").read_bytes() == printed
    assert json.loads((stored / "manifest.json").read_text()) == manifest
    [att] = manifest["invoices"][0]["attachments"]
    assert att["original_name"] == "scan.pdf" and att["sha256"] == hashlib.sha256(pdf).hexdigest()
    [doc] = stored_documents(receiver).values()
    assert etree.fromstring(doc).findtext("cbc:ID", namespaces=NS) == "E-1"
    keys = sorted(r["idempotency_key"] for r in receiver.accepted())
    assert keys == sorted([manifest["bundle_id"], hashlib.sha256(doc).hexdigest()])


def test_a_batch_killed_between_its_documents_posts_none_twice_but_under_its_own_key(
        env: Env, start_receiver, start_daemon) -> None:
    """SIGKILL in the middle of a batch of five: A answered 409 (to be tried again), B
    stored by the receiver but its answer held, C-E not yet posted. The restarted daemon
    posts every document at most once more and only under its own key: the receiver
    stores each of the five once (B's repeat answered 200 with B's first receipt), the
    receipt lists all five with the receiver's receipts, and nothing is left in
    processing or quarantined."""
    import signal

    receiver = start_receiver("--fail-first", "409", "--hold-first", "60", process=True)
    env.write_config(receiver.url, **EMBEDDED)
    daemon = start_daemon()
    ids = ("K-1", "K-2", "K-3", "K-4", "K-5")
    for n, i in enumerate(ids):
        write(env.outbox / "batch" / i / f"{i}.pdf", pdf_bytes(n + 1))
    write(env.outbox / "batch.xml", b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>\n'
          + b"".join(body(ubl_invoice(i)) for i in ids) + b"</Batch>\n")
    wait_for(lambda: [r for r in receiver.requests() if r["status"] == 201],
             what="the second document stored, its answer held")
    daemon.stop(signal.SIGKILL)
    assert [r["status"] for r in receiver.requests()] == [409, 201]
    assert env.sent_bundles() == [] and env.quarantined() == []
    [work] = list(env.processing.iterdir())  # nothing lost
    assert (work / "batch.xml").is_file()
    # Each document posted was kept whole before its POST: B, which the receiver stored,
    # is in the work folder with the bytes it has.
    kept = kept_documents(work)
    assert {hashlib.sha256(d).hexdigest() for d in kept.values()} == {
        r["idempotency_key"] for r in receiver.requests()}

    start_daemon()
    [archived] = wait_for(env.sent_bundles, what="the batch sent after the restart")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    docs = stored_documents(receiver)
    assert len(docs) == len(ids)
    assert all(key == hashlib.sha256(doc).hexdigest() for key, doc in docs.items())
    requests = receiver.requests()
    assert {r["idempotency_key"] for r in requests} == set(docs)  # no other key
    for key in docs:
        statuses = [r["status"] for r in requests if r["idempotency_key"] == key]
        assert statuses.count(201) == 1 and set(statuses) <= {200, 201, 409}, statuses
    held_key = next(r["idempotency_key"] for r in requests if r["status"] == 201)
    assert [r["status"] for r in requests if r["idempotency_key"] == held_key] == [201, 200]
    receipt = json.loads((archived / "receipt.json").read_text())
    listed = receipt["response"]["body"]["documents"]
    assert [d["invoice_id"] for d in listed] == list(ids)
    folder = receiver.store / "documents"
    assert {d["idempotency_key"]: d["receipt_id"] for d in listed} == {
        key: json.loads((folder / f"{key}.response.json").read_text())["receipt_id"]
        for key in docs}
    assert list(env.processing.iterdir()) == [] and env.quarantined() == []
    assert_entry_keeps_what_was_sent(archived, receiver)  # once each, no temp left
