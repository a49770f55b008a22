"""Delivery of ubl-embedded documents (docs/einvoice.md): one request per document, progress
kept."""

from __future__ import annotations

import hashlib
import json
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import Receiver
from delivery.test_answer_deadline import NEVER, assert_timed_out, processing_without_end
from helpers import pdf_bytes
from lxml import etree
from rawreceiver import RawReceiver

from daemon import __version__
from daemon.bundle import Bundle
from daemon.configuration.config import DeliveryConfig, Settings
from daemon.delivery.answers import BODY_LIMIT, web_page_warning
from daemon.delivery.finish import Finisher
from daemon.einvoice.artefacts import mime_codes
from daemon.einvoice.embed import documents_for
from daemon.einvoice.transport import EmbeddedDeliverer, document_key
from daemon.errors import InputError, Paused, Retryable
from daemon.journal import Journal, parse_iso
from daemon.manifest import bundle_id_of

from .broken import BASE, body, with_id
from .test_embed import NS, bundle_of

# Tests of how one answer is classified, or of a request's shape, give the deliverer an
# httpx.MockTransport at this address (nothing listens on the discard port, and nothing
# is sent there). Everything that goes further (the journal, the Finisher, what is sent
# again, the papers) posts to the reference receiver on 127.0.0.1.
NOWHERE = "http://127.0.0.1:9/docs"


def batch_bundle(tmp_path: Path, ids: tuple[str, ...] = ("A", "B")):  # noqa: ANN201
    data = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>\n'
            + b"".join(body(with_id(BASE, i)) for i in ids) + b"</Batch>\n")
    return bundle_of(tmp_path, data, {}, ids=ids)


def keys_of(bundle: Bundle) -> dict[str, str]:
    """invoice id -> the Idempotency-Key (sha256) of its document, as posted."""
    return {d.invoice_id: document_key(d)
            for d in documents_for(bundle, mime_codes(), safe_filenames=True).documents}


def posts(receiver: Receiver, keys: dict[str, str]) -> list[tuple[str, int]]:
    """(invoice, status) of each POST the receiver logged, in order."""
    invoice_of = {k: i for i, k in keys.items()}
    return [(invoice_of[r["idempotency_key"]], r["status"]) for r in receiver.requests()]


def stored(receiver: Receiver) -> dict[str, str]:
    """Idempotency-Key -> receipt id of each document the receiver stored."""
    folder = receiver.store / "documents"
    out = {}
    for answer in folder.glob("*.response.json"):
        key = answer.name.removesuffix(".response.json")
        assert (folder / f"{key}.xml").is_file()
        out[key] = json.loads(answer.read_text())["receipt_id"]
    return out


def restarted(journal: Journal) -> Journal:
    """The journal as a restarted daemon finds it: closed, opened again from its file."""
    journal.close()
    return Journal(journal.path)


def test_each_document_is_posted_as_xml_keyed_by_its_sha256(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"receipt_id": f"r{len(seen)}"})

    d = EmbeddedDeliverer(DeliveryConfig(url=NOWHERE, format="ubl-embedded"),
                          httpx.MockTransport(handler))
    receipt = d.deliver(batch_bundle(tmp_path), {"bundle_id": "b" * 64})
    assert len(seen) == 2
    for r in seen:
        assert r.headers["Content-Type"] == "application/xml"
        assert r.headers["Idempotency-Key"] == hashlib.sha256(r.content).hexdigest()
        assert r.headers["X-Outboxd-Bundle-Id"] == "b" * 64
        # Its length said, not chunked (receivers of one XML document expect it).
        assert r.headers["Content-Length"] == str(len(r.content))
        assert "Transfer-Encoding" not in r.headers
    docs = receipt.body["documents"]
    assert [(x["invoice_id"], x["receipt_id"], x["name"]) for x in docs] == [
        ("A", "r1", "INV--A.xml"), ("B", "r2", "INV--B.xml")]
    assert receipt.receipt_id == "r1, r2"


def test_each_document_carries_the_user_agent_and_the_bearer_token_of_a_bundle_post(
        tmp_path: Path) -> None:
    """The other headers of a bundle's POST go with every document's too: User-Agent
    outboxd/VERSION, and Authorization: Bearer TOKEN from `token` or from `token_file`
    (surrounding whitespace stripped); without either, no Authorization."""
    token_file = tmp_path / "token"
    token_file.write_text("  from-file\n", encoding="utf-8")
    cases: list[tuple[dict[str, Any], str | None]] = [
        ({"token": "s3cret"}, "Bearer s3cret"),
        ({"token_file": token_file}, "Bearer from-file"),
        ({}, None)]
    for n, (extra, expected) in enumerate(cases):
        seen: list[httpx.Request] = []

        def handler(request: httpx.Request, seen: list[httpx.Request] = seen) -> httpx.Response:
            seen.append(request)
            return httpx.Response(201, json={"receipt_id": f"r{len(seen)}"})

        d = EmbeddedDeliverer(DeliveryConfig(url=NOWHERE, format="ubl-embedded", **extra),
                              httpx.MockTransport(handler))
        folder = tmp_path / str(n)
        folder.mkdir()
        d.deliver(batch_bundle(folder), {"bundle_id": "b" * 64})
        d.close()
        assert len(seen) == 2
        assert [r.headers["User-Agent"] for r in seen] == [f"outboxd/{__version__}"] * 2
        assert [r.headers.get("Authorization") for r in seen] == [expected] * 2


def test_the_receipt_ids_of_a_file_of_many_invoices_are_joined_up_to_a_limit(
        tmp_path: Path) -> None:
    """60 documents, each given a 60-character receipt id: the bundle's receipt id (the
    journal's, the `bundle sent` log line's, the status page's) keeps the ids that fit in
    about BODY_LIMIT characters and says how many more there are; receipt.json's
    documents keep every one. (Joined whole, a file of thousands of invoices made a log
    line longer than journald keeps as one.)"""
    ids = tuple(f"I{n:02}" for n in range(60))

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(201, json={"receipt_id": "R" * 50 + hashlib.sha256(
            request.content).hexdigest()[:10]})

    d = EmbeddedDeliverer(DeliveryConfig(url=NOWHERE, format="ubl-embedded"),
                          httpx.MockTransport(handler))
    receipt = d.deliver(batch_bundle(tmp_path, ids), {"bundle_id": "b" * 64})
    every = [x["receipt_id"] for x in receipt.body["documents"]]
    assert len(every) == 60 and len(set(every)) == 60
    assert receipt.receipt_id is not None and len(receipt.receipt_id) <= BODY_LIMIT + 40
    fit = (BODY_LIMIT + 2) // 62  # each id and its ", "
    assert receipt.receipt_id == (", ".join(every[:fit])
                                  + f" … and {60 - fit} more (all in receipt.json)")


def test_a_retry_resends_only_the_documents_not_yet_accepted(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """A 503 on the first document: the second goes anyway; the retry sends the first only.
    What was accepted is in the journal, so this holds across a restart too."""
    receiver = start_receiver("--fail-first", "503")
    journal = Journal(tmp_path / "j.sqlite3")
    bid = "c" * 64
    row = journal.create("INV.xml", "delivering", bundle_id=bid)
    bundle = batch_bundle(tmp_path)
    keys = keys_of(bundle)
    cfg = DeliveryConfig(url=receiver.url, format="ubl-embedded")
    d = EmbeddedDeliverer(cfg)
    d.bind_journal(journal)
    with pytest.raises(Retryable) as caught:
        d.deliver(bundle, {"bundle_id": bid})
    d.close()
    assert caught.value.status == 503
    assert posts(receiver, keys) == [("A", 503), ("B", 201)]
    assert list(journal.accepted_documents(bid)) == [keys["B"]]
    journal.transition(row, "retrying")
    journal = restarted(journal)
    again = EmbeddedDeliverer(cfg)  # a restarted daemon: what it knows is in the journal
    again.bind_journal(journal)
    receipt = again.deliver(bundle, {"bundle_id": bid})
    again.close()
    journal.close()
    assert posts(receiver, keys) == [("A", 503), ("B", 201), ("A", 201)]
    receipts = stored(receiver)
    assert sorted(receipts) == sorted(keys.values())
    assert [(x["invoice_id"], x["idempotency_key"], x["receipt_id"])
            for x in receipt.body["documents"]] == [
        (i, keys[i], receipts[keys[i]]) for i in ("A", "B")]


def test_a_document_an_earlier_version_got_accepted_under_another_key_is_not_sent_again(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """A bundle being sent when outboxd was upgraded: the receiver took invoice B's
    document, built by the earlier version, and the rest waits for a retry. The new
    version builds B's document from the same files with other bytes (before f57bb15 a
    batch with a byte order mark lost its XML declaration in each document), so under
    another key: looked up by key alone, B went to the receiver a second time, as a new
    document. The same bundle (its id covers the invoice file and the attachments) holds
    one document per invoice id: B is taken as accepted, A alone is posted."""
    receiver = start_receiver()
    journal = Journal(tmp_path / "j.sqlite3")
    bid = "c" * 64
    journal.create("INV.xml", "retrying", bundle_id=bid)
    bundle = batch_bundle(tmp_path)
    keys = keys_of(bundle)
    earlier = {"invoice_id": "B", "name": "INV--B.xml", "idempotency_key": "e" * 64,
               "size": 100, "status": 201, "body": {"receipt_id": "r-B"}, "receipt_id": "r-B"}
    journal.accept_document(bid, "e" * 64, earlier)
    d = EmbeddedDeliverer(DeliveryConfig(url=receiver.url, format="ubl-embedded"))
    d.bind_journal(journal)
    receipt = d.deliver(bundle, {"bundle_id": bid})
    d.close()
    journal.close()
    assert posts(receiver, keys) == [("A", 201)]
    assert sorted(stored(receiver)) == [keys["A"]]
    assert [(x["invoice_id"], x["receipt_id"]) for x in receipt.body["documents"]] == [
        ("A", stored(receiver)[keys["A"]]), ("B", "r-B")]


def test_directory_transport_writes_one_file_per_invoice_once(tmp_path: Path) -> None:
    target = tmp_path / "target"
    target.mkdir()
    d = EmbeddedDeliverer(DeliveryConfig(transport="directory", target=target,
                                         format="ubl-embedded"))
    bundle = batch_bundle(tmp_path)
    first = d.deliver(bundle, {"bundle_id": "d" * 64})
    assert sorted(p.name for p in target.iterdir()) == ["INV--A.xml", "INV--B.xml"]
    assert [x["status"] for x in first.body["documents"]] == [201, 201]
    second = d.deliver(bundle, {"bundle_id": "d" * 64})  # same bytes there: already delivered
    assert [x["status"] for x in second.body["documents"]] == [200, 200]


def test_a_document_of_an_invoice_id_that_is_a_windows_device_name_keeps_that_id_in_its_name(
        tmp_path: Path) -> None:
    """TARGET/NAME--INVOICEID.xml: the id CON stands in the file name as it is (INV--CON.xml
    is a name Windows takes), not as the folder a clerk makes for its attachments (CON_),
    which would write it under another name than the one earlier versions wrote."""
    target = tmp_path / "target"
    target.mkdir()
    d = EmbeddedDeliverer(DeliveryConfig(transport="directory", target=target,
                                         format="ubl-embedded"))
    d.deliver(batch_bundle(tmp_path, ("CON", "nul.txt")), {"bundle_id": "d" * 64})
    assert sorted(p.name for p in target.iterdir()) == ["INV--CON.xml", "INV--nul.txt.xml"]


@pytest.mark.parametrize(("safe_filenames", "sent"), [
    (True, "Tidrapport_oktober_a.pdf"), (False, "Tidrapport oktober å.pdf")],
    ids=["folded", "as-is"])
def test_the_document_delivered_names_its_file_as_safe_filenames_says(
        tmp_path: Path, safe_filenames: bool, sent: str) -> None:
    """The deliverer builds each document under the [delivery] safe_filenames it was
    configured with: 'Tidrapport oktober å.pdf' is written into TARGET's document as
    'Tidrapport_oktober_a.pdf' (cbc:ID and filename) by default, as it is on disk with
    safe_filenames = false."""
    target = tmp_path / "target"
    target.mkdir()
    d = EmbeddedDeliverer(DeliveryConfig(transport="directory", target=target,
                                         format="ubl-embedded", safe_filenames=safe_filenames))
    bundle = bundle_of(tmp_path, BASE, {"Tidrapport oktober å.pdf": (
        "Snippet1", pdf_bytes(), "application/pdf")})
    d.deliver(bundle, {"bundle_id": "e" * 64})
    [written] = target.iterdir()
    [ref] = etree.fromstring(written.read_bytes()).findall(
        "cac:AdditionalDocumentReference", NS)
    obj = ref.find("cac:Attachment/cbc:EmbeddedDocumentBinaryObject", NS)
    assert (ref.findtext("cbc:ID", namespaces=NS), obj.get("filename")) == (sent, sent)


def test_a_document_of_a_very_long_invoice_id_is_written_under_a_name_that_fits(
        tmp_path: Path) -> None:
    """A 300-character cbc:ID would make INV--ID.xml too long for the file system (and
    the bundle retry forever): the name is cut and tagged, and a second delivery finds
    the same file there."""
    target = tmp_path / "target"
    target.mkdir()
    d = EmbeddedDeliverer(DeliveryConfig(transport="directory", target=target,
                                         format="ubl-embedded"))
    long_id = "A" * 300
    bundle = batch_bundle(tmp_path, ids=(long_id, "B"))
    first = d.deliver(bundle, {"bundle_id": "e" * 64})
    names = sorted(p.name for p in target.iterdir())
    assert len(names) == 2 and "INV--B.xml" in names
    assert all(len(n.encode()) <= 217 and n.endswith(".xml") for n in names)
    assert [x["status"] for x in first.body["documents"]] == [201, 201]
    second = d.deliver(bundle, {"bundle_id": "e" * 64})
    assert [x["status"] for x in second.body["documents"]] == [200, 200]


Handler = Callable[[httpx.Request], httpx.Response]


def by_invoice(answers: dict[str, list[httpx.Response]], posted: list[str]) -> Handler:
    """A receiver that answers each invoice's document from its own list, in turn, and
    notes which invoice each POST carried."""
    def handler(request: httpx.Request) -> httpx.Response:
        [invoice] = [i for i in answers if f"<cbc:ID>{i}</cbc:ID>".encode() in request.content]
        posted.append(invoice)
        return answers[invoice].pop(0)
    return handler


def embedded(handler: Handler) -> EmbeddedDeliverer:
    return EmbeddedDeliverer(DeliveryConfig(url=NOWHERE, format="ubl-embedded"),
                             httpx.MockTransport(handler))


def slow_down(seconds: str, status: int = 429) -> httpx.Response:
    return httpx.Response(status, text="come back later", headers={"Retry-After": seconds})


def test_a_document_answered_by_a_web_page_gets_the_warning_naming_its_invoice(
        tmp_path: Path) -> None:
    """ubl-embedded: B's document answered 200 with a portal's HTML page, A's with the
    operator's JSON. The bundle's receipt (the documents' answers) gets the web-page
    warning that a bundle's POST gets, naming B's invoice; JSON answers get none."""
    page = "<!DOCTYPE html><html><body>Sign in to the Wi-Fi</body></html>"
    d = embedded(by_invoice({"A": [httpx.Response(201, json={"receipt_id": "r-A"})],
                             "B": [httpx.Response(200, text=page)]}, []))
    receipt = d.deliver(batch_bundle(tmp_path), {"bundle_id": "b" * 64})
    said = web_page_warning(receipt.as_dict())
    assert said is not None
    assert said.startswith("the answer (HTTP 200) to the document of invoice B was a web page")
    assert "ask the operator whether it has the bundle" in said
    d = embedded(by_invoice({"A": [httpx.Response(201, json={"receipt_id": "r-A"})],
                             "B": [httpx.Response(201, json={"receipt_id": "r-B"})]}, []))
    (tmp_path / "json").mkdir()
    assert web_page_warning(d.deliver(batch_bundle(tmp_path / "json"),
                                      {"bundle_id": "c" * 64}).as_dict()) is None


def test_the_bundle_waits_for_the_largest_retry_after_any_document_was_given(
        tmp_path: Path) -> None:
    """A 503 without Retry-After on A, a 429 with Retry-After: 3600 on B: the bundle's
    error carries B's hour (each document's answer counts), not A's nothing, and names both."""
    posted: list[str] = []
    d = embedded(by_invoice({"A": [httpx.Response(503, text="busy")],
                             "B": [slow_down("3600")]}, posted))
    with pytest.raises(Retryable) as caught:
        d.deliver(batch_bundle(tmp_path), {"bundle_id": "b" * 64})
    assert caught.value.retry_after == 3600
    assert caught.value.status == 429
    assert "invoice A" in str(caught.value) and "invoice B" in str(caught.value)


def test_a_retry_after_over_24_hours_counts_as_24_hours(tmp_path: Path) -> None:
    """The bundle's floor is capped like every Retry-After (over 24 h counts as 24 h)."""
    d = embedded(by_invoice({"A": [httpx.Response(502)], "B": [slow_down("999999", 503)]},
                            []))
    with pytest.raises(Retryable) as caught:
        d.deliver(batch_bundle(tmp_path), {"bundle_id": "b" * 64})
    assert caught.value.retry_after == 86400


def test_after_the_receiver_asks_for_time_the_rest_of_the_bundle_waits(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """A accepted, then a 429 with Retry-After on B: C is not posted in this attempt. The
    next attempt (a restarted daemon) posts B and C only; A is in the journal."""
    receiver = start_receiver("--fail-first", "pass,429:3600")
    journal = Journal(tmp_path / "j.sqlite3")
    bid = "c" * 64
    row = journal.create("INV.xml", "delivering", bundle_id=bid)
    bundle = batch_bundle(tmp_path, ("A", "B", "C"))
    keys = keys_of(bundle)
    cfg = DeliveryConfig(url=receiver.url, format="ubl-embedded")
    d = EmbeddedDeliverer(cfg)
    d.bind_journal(journal)
    with pytest.raises(Retryable) as caught:
        d.deliver(bundle, {"bundle_id": bid})
    d.close()
    assert posts(receiver, keys) == [("A", 201), ("B", 429)]
    assert caught.value.retry_after == 3600 and "not posted in this attempt: invoice C" in \
        str(caught.value)
    assert list(journal.accepted_documents(bid)) == [keys["A"]]
    journal.transition(row, "retrying")
    journal = restarted(journal)
    again = EmbeddedDeliverer(cfg)
    again.bind_journal(journal)
    receipt = again.deliver(bundle, {"bundle_id": bid})
    again.close()
    journal.close()
    assert posts(receiver, keys) == [("A", 201), ("B", 429), ("B", 201), ("C", 201)]
    receipts = stored(receiver)
    assert sorted(receipts) == sorted(keys.values())
    assert receipt.receipt_id == ", ".join(receipts[keys[i]] for i in ("A", "B", "C"))


def test_a_retry_after_on_one_request_does_not_hold_back_the_others(tmp_path: Path) -> None:
    """409 with Retry-After means "this key is still being processed": about that one
    document, so the next is posted all the same."""
    posted: list[str] = []
    d = embedded(by_invoice({"A": [slow_down("30", 409)],
                             "B": [httpx.Response(201, json={"receipt_id": "r-B"})]}, posted))
    with pytest.raises(Retryable) as caught:
        d.deliver(batch_bundle(tmp_path), {"bundle_id": "b" * 64})
    assert posted == ["A", "B"] and caught.value.retry_after == 30


def test_a_pause_wins_over_a_retry_but_keeps_its_retry_after(tmp_path: Path) -> None:
    """A 409 with Retry-After: 600 on A, a 403 on B: the bundle pauses (our token is
    wrong), and its next attempt still comes no sooner than A's 600 s."""
    d = embedded(by_invoice({"A": [slow_down("600", 409)], "B": [httpx.Response(403)]}, []))
    with pytest.raises(Paused) as caught:
        d.deliver(batch_bundle(tmp_path), {"bundle_id": "b" * 64})
    assert caught.value.retry_after == 600 and caught.value.status == 403
    assert "invoice A" in str(caught.value) and "invoice B" in str(caught.value)


@dataclass
class Claimed:
    """A two-invoice ubl-embedded bundle claimed into processing, its journal row, and a
    real Finisher that delivers it to the reference receiver."""

    fin: Finisher
    journal: Journal
    s: Settings
    row: int
    bid: str
    keys: dict[str, str]  # invoice id -> its document's Idempotency-Key


@pytest.fixture
def claim(tmp_path: Path) -> Iterator[Callable[[Receiver], Claimed]]:
    made: list[Claimed] = []

    def make(receiver: Receiver) -> Claimed:
        outbox = tmp_path / "outbox"
        outbox.mkdir()
        s = Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(tmp_path / "state")},
                     delivery={"url": receiver.url, "format": "ubl-embedded"})
        for folder in (s.processing_dir, s.paths.state_dir):
            folder.mkdir(parents=True, exist_ok=True)
        work = s.processing_dir / "INV--cccccccccccc--host-1-abc"
        work.mkdir()
        bundle = batch_bundle(work)
        journal = Journal(s.journal_path)
        bid = bundle_id_of(bundle)
        row = journal.create("INV.xml", "delivering", bundle_id=bid, work_dir=str(work))
        fin = Finisher(s, journal, EmbeddedDeliverer(s.delivery))
        fin.hand_over(row, bundle)
        made.append(Claimed(fin, journal, s, row, bid, keys_of(bundle)))
        return made[-1]

    yield make
    for c in made:
        c.fin.d.close()
        c.journal.close()


def test_the_finisher_schedules_the_bundle_after_the_largest_retry_after(
        start_receiver: Callable[..., Receiver], claim: Callable[[Receiver], Claimed]) -> None:
    """End to end through finish.py: A 503, B 429 with Retry-After: 3600 — the bundle's
    next attempt is journaled an hour ahead, not after a second of back-off."""
    receiver = start_receiver("--fail-first", "503,429:3600")  # the 503 with Retry-After: 0
    c = claim(receiver)
    before = datetime.now(UTC)
    delay = c.fin.attempt(c.row)
    assert posts(receiver, c.keys) == [("A", 503), ("B", 429)]
    assert delay is not None and delay >= 3600
    done = c.journal.get(c.row)
    assert done.state == "retrying" and done.next_attempt_at is not None
    assert (parse_iso(done.next_attempt_at) - before).total_seconds() >= 3600
    assert stored(receiver) == {} and c.journal.accepted_documents(c.bid) == {}


def test_a_retried_bundles_error_puts_the_receivers_words_after_the_answer_they_came_with(
        start_receiver: Callable[..., Receiver], claim: Callable[[Receiver], Claimed]) -> None:
    """A 429 with a body on A, so B is not posted: the error status and the page show
    read "HTTP 429 … (invoice A): <body>; not posted in this attempt: invoice B", not
    the body after B, which the receiver never saw."""
    receiver = start_receiver("--fail-first", "429:60")
    c = claim(receiver)
    c.fin.attempt(c.row)
    assert posts(receiver, c.keys) == [("A", 429)]
    error = c.journal.get(c.row).last_error
    assert error is not None
    assert error.startswith("HTTP 429 from the receiver (invoice A): {")
    assert "injected failure" in error
    assert error.endswith("; not posted in this attempt: invoice B")


def test_the_error_of_a_file_of_many_failed_invoices_names_a_few_and_counts_the_rest(
        ) -> None:
    """Three hundred invoices each answered with an error page: the bundle's one error
    (last_error, shown by status and the page) names the first failures with their
    answers and counts the others, instead of growing to tens of KB."""
    from daemon.einvoice.transport import MAX_SHOWN, bundle_outcome
    failed: list[tuple[str, Retryable | Paused]] = [
        (f"INV-{i}", Retryable("HTTP 503 from the receiver", 503, "<html>" + "x" * 500))
        for i in range(300)]
    error = str(bundle_outcome(failed, held=[]))
    assert error.startswith("HTTP 503 from the receiver (invoice INV-0): <html>")
    assert f"invoice INV-{MAX_SHOWN}: HTTP 503" in error
    assert f"INV-{MAX_SHOWN + 1}:" not in error
    assert error.endswith(f"; and {299 - MAX_SHOWN} more invoices failed")
    assert len(error) < 2_000


def test_a_partly_accepted_bundle_is_quarantined_with_papers_naming_what_was_delivered(
        start_receiver: Callable[..., Receiver], claim: Callable[[Receiver], Claimed]) -> None:
    """A accepted (with its receipt), B rejected with 400: the quarantine papers name B
    (in the message and as the reason's invoice_id) and the receiver's answer, name A
    with its receipt and key as delivered, and tell the clerk not to send A again — not
    "Nothing was delivered"."""
    receiver = start_receiver("--fail-first", "pass,400")
    c = claim(receiver)
    assert c.fin.attempt(c.row) is None
    assert posts(receiver, c.keys) == [("A", 201), ("B", 400)]
    key = c.keys["A"]
    receipt_a = stored(receiver)[key]  # the only document the receiver keeps
    assert stored(receiver) == {key: receipt_a}
    assert c.journal.get(c.row).state == "quarantined"
    assert list(c.journal.accepted_documents(c.bid)) == [key]
    [entry] = c.s.quarantine_dir.glob("*/*")
    reason = json.loads((entry / "reason.json").read_text("utf-8"))
    assert [(d["invoice_id"], d["receipt_id"], d["idempotency_key"])
            for d in reason["accepted_documents"]] == [("A", receipt_a, key)]
    [rejected] = reason["reasons"]
    # The receiver's answer to B: {"error": "injected failure (fail_first)"}.
    assert "invoice B" in rejected["message"] and "injected failure" in rejected["message"]
    assert rejected["invoice_id"] == "B"  # for a script, without reading the message
    text = (entry / "REASON.txt").read_text("utf-8")
    assert "Nothing was delivered" not in text
    for needle in ("invoice B", "HTTP 400", "injected failure", f"invoice A: receipt {receipt_a}",
                   key, "do NOT send them again"):
        assert needle in text


def test_a_document_refused_as_too_large_names_its_invoice_its_size_and_the_fix(
        start_receiver: Callable[..., Receiver], claim: Callable[[Receiver], Claimed]) -> None:
    """ubl-embedded: A accepted, B's document answered 413. The reason says B's document
    is larger than the receiver takes, with its size, and the fix for B's attachments
    (several invoice files would not help: each invoice is a document of its own), not
    "fix what the receiver names"; the receiver's text is kept."""
    receiver = start_receiver("--fail-first", "pass,413")
    c = claim(receiver)
    assert c.fin.attempt(c.row) is None
    assert posts(receiver, c.keys) == [("A", 201), ("B", 413)]
    [entry] = c.s.quarantine_dir.glob("*/*")
    [rejected] = json.loads((entry / "reason.json").read_text("utf-8"))["reasons"]
    message = rejected["message"]
    assert "invoice B with HTTP 413" in message and "injected failure" in message
    assert "the document of invoice B is larger than the receiver takes (" in message
    assert " bytes) were sent)" in message
    assert "fewer or smaller attachments of invoice B" in message
    assert "several invoice files" not in message
    assert "fix what the receiver names" not in message


def test_a_network_error_of_a_document_carries_neither_token_nor_password(
        tmp_path: Path) -> None:
    """ubl-embedded posts each document on its own; an error on the way is told as the
    bundle transport tells it (HttpDeliverer.failure): without the token or the url's
    password, which would otherwise reach the log, status and the status page."""
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"no route for {request.url} with "
                                 f"{request.headers['authorization']}")

    # Both secrets at once, which loading refuses: made past validation to check the
    # scrub with both in one text.
    cfg = DeliveryConfig(url="http://127.0.0.1:9/docs", token="SuperSecretTok",
                         format="ubl-embedded").model_copy(
        update={"url": "http://bob:PassWord9@127.0.0.1:9/docs"})
    d = EmbeddedDeliverer(cfg, httpx.MockTransport(refuse))
    with pytest.raises(Retryable) as info:
        d.deliver(batch_bundle(tmp_path), {"bundle_id": "b" * 64})
    assert "SuperSecretTok" not in str(info.value) and "PassWord9" not in str(info.value)
    assert "cannot reach the receiver" in str(info.value)


def test_a_document_whose_answer_never_comes_is_a_retried_timeout(tmp_path: Path) -> None:
    """ubl-embedded's POSTs go through the bundle transport's bounded connections: a
    receiver answering `102 Processing` without end (timeout_seconds = NEVER, as in
    test_answer_deadline.py) makes the document a retried timeout within seconds, and
    the bundle is retried."""
    with RawReceiver(processing_without_end) as rx:
        d = EmbeddedDeliverer(DeliveryConfig(url=f"http://127.0.0.1:{rx.port}/docs",
                                             format="ubl-embedded", timeout_seconds=NEVER))
        started = time.monotonic()
        try:
            with pytest.raises(Retryable) as info:
                d.deliver(batch_bundle(tmp_path, ids=("A",)), {"bundle_id": "b" * 64})
        finally:
            d.close()
    assert_timed_out(info.value, started, NEVER)
    assert "(invoice A)" in str(info.value)
    assert rx.heads and "Content-Type: application/xml" in rx.heads[0]


def test_a_duplicate_of_a_bundle_sent_whole_gets_no_accepted_documents_in_its_papers(
        start_receiver: Callable[..., Receiver], claim: Callable[[Receiver], Claimed]) -> None:
    """The same file dropped again after a complete delivery is quarantined as a
    duplicate: its papers say so, and do not list the earlier delivery's documents (whose
    row is another), which would tell the clerk to move it back 'without changing' them."""
    from daemon.bundle import Finding
    receiver = start_receiver()
    c = claim(receiver)
    assert c.fin.attempt(c.row) is None and c.journal.get(c.row).state == "sent"
    assert posts(receiver, c.keys) == [("A", 201), ("B", 201)]
    assert sorted(stored(receiver)) == sorted(c.keys.values())
    work2 = c.s.processing_dir / "INV--cccccccccccc--host-2-def"
    work2.mkdir()
    batch_bundle(work2)
    row2 = c.journal.create("INV.xml", "claiming", bundle_id=c.bid, work_dir=str(work2))
    assert c.fin.quarantine(row2, [Finding("duplicate", "INV.xml", "this exact bundle was "
                                           "sent before — remove it")]) is None
    [entry] = c.s.quarantine_dir.glob("*/*")
    assert "accepted_documents" not in json.loads((entry / "reason.json").read_text())
    text = (entry / "REASON.txt").read_text()
    assert "This copy was not sent" in text and "ACCEPTED" not in text
    assert len(receiver.requests()) == 2  # the duplicate posted nothing


def test_a_bundle_moved_back_and_rejected_again_still_names_what_was_accepted_before(
        start_receiver: Callable[..., Receiver], claim: Callable[[Receiver], Claimed]) -> None:
    """Invoice A accepted, B rejected: quarantined. Moved back unchanged (a new row of the
    same content), A is not posted again, B is rejected again: the second quarantine's
    papers still name A as delivered, so nobody sends it twice."""
    receiver = start_receiver("--fail-first", "pass,400,400")
    c = claim(receiver)
    assert c.fin.attempt(c.row) is None and c.journal.get(c.row).state == "quarantined"
    work2 = c.s.processing_dir / "INV--cccccccccccc--host-2-def"
    work2.mkdir()
    row2 = c.journal.create("INV.xml", "delivering", bundle_id=c.bid, work_dir=str(work2))
    c.fin.hand_over(row2, batch_bundle(work2))
    assert c.fin.attempt(row2) is None and c.journal.get(row2).state == "quarantined"
    assert posts(receiver, c.keys) == [("A", 201), ("B", 400), ("B", 400)]
    receipts = stored(receiver)
    assert list(receipts) == [c.keys["A"]]
    entries = list(c.s.quarantine_dir.glob("*/*"))
    assert len(entries) == 2
    for entry in entries:
        papers = json.loads((entry / "reason.json").read_text())
        assert [(d["invoice_id"], d["receipt_id"]) for d in papers["accepted_documents"]] == [
            ("A", receipts[c.keys["A"]])]
        assert "Nothing was delivered" not in (entry / "REASON.txt").read_text()


def test_an_invoice_file_rewritten_after_it_was_checked_is_never_delivered_embedded(
        tmp_path: Path) -> None:
    """The invoice file in the work folder rewritten between its check and a delivery
    attempt (a clerk in the share's group edits the amount there; a retry after a
    restart): its document is built from other bytes than the bundle id and the
    preflight describe, so nothing goes, and the attempt says processing-damaged, as a
    multipart part does (parts.OpenWhenRead). Written or posted, the operator would
    get an invoice nobody checked, filed under the checked one's bundle id."""
    target = tmp_path / "target"
    target.mkdir()
    d = EmbeddedDeliverer(DeliveryConfig(transport="directory", target=target,
                                         format="ubl-embedded"))
    bundle = batch_bundle(tmp_path)
    path = bundle.invoice_file.path
    path.write_bytes(path.read_bytes().replace(b">1656.25<", b">9656.25<", 1))
    with pytest.raises(InputError) as caught:
        d.deliver(bundle, {"bundle_id": "d" * 64})
    assert caught.value.code == "processing-damaged"
    assert list(target.iterdir()) == []


def test_an_invoice_file_rewritten_after_it_was_checked_is_never_posted_embedded(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """The same over HTTP: a retry after the invoice file was rewritten in the work
    folder posts nothing (the receiver logs no request) and says processing-damaged."""
    receiver = start_receiver()
    d = EmbeddedDeliverer(DeliveryConfig(url=receiver.url, format="ubl-embedded"))
    bundle = batch_bundle(tmp_path)
    path = bundle.invoice_file.path
    data = path.read_bytes()
    path.write_bytes(data.replace(b">1656.25<", b">9656.25<", 1))
    with pytest.raises(InputError) as caught:
        d.deliver(bundle, {"bundle_id": "d" * 64})
    d.close()
    assert (caught.value.code, caught.value.file) == ("processing-damaged", "INV.xml")
    assert receiver.requests() == []


def test_a_2xx_answered_before_the_document_was_all_written_is_no_receipt(
        tmp_path: Path) -> None:
    """The receiver answers 201 after the request's head and closes the connection while
    most of an 8 MB document is still to come: it never had the document whole, so the
    201 is no receipt (it was taken, and the bundle filed in sent/), as for a bundle's
    multipart POST; retried with the same key."""
    import os
    import socket

    from delivery.test_deliver import _http

    def answer_at_once(rx: Any, conn: socket.socket, length: int, got: bytes) -> None:
        conn.sendall(_http("201 Created", "", b'{"receipt_id": "R-early"}'))
        conn.close()
        raise OSError("closed")  # no answer after the body: RawReceiver moves on

    big = b"%PDF-1.4\n" + os.urandom(6 << 20)
    bundle = bundle_of(tmp_path, body(with_id(BASE, "A")),
                       {"big.pdf": ("A", big, "application/pdf")}, ids=("A",))
    with RawReceiver(lambda rx, conn, n: None, take_body=answer_at_once) as rx:
        d = EmbeddedDeliverer(DeliveryConfig(url=f"http://127.0.0.1:{rx.port}/docs",
                                             format="ubl-embedded"))
        try:
            with pytest.raises(Retryable) as info:
                d.deliver(bundle, {"bundle_id": "b" * 64})
        finally:
            d.close()
    assert "answered HTTP 201 before it had the whole request" in str(info.value)


def test_a_document_the_receiver_has_from_another_bundle_is_accepted_not_retried(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """Invoice A sent in one file (A, B), then again in another (A, C): A's document is
    the same bytes, so the same Idempotency-Key, and the reference receiver answers it
    with the stored answer of the first POST, which names the first bundle's id. That
    is the receipt of this very document (its key is ours), not another request's: the
    second bundle is sent — it was retried for ever, the same 200 coming back each
    time."""
    receiver = start_receiver()
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir()
    second.mkdir()
    cfg = DeliveryConfig(url=receiver.url, format="ubl-embedded")
    one, two = batch_bundle(first, ("A", "B")), batch_bundle(second, ("A", "C"))
    assert keys_of(one)["A"] == keys_of(two)["A"]
    d = EmbeddedDeliverer(cfg)
    try:
        d.deliver(one, {"bundle_id": bundle_id_of(one)})
        receipt = d.deliver(two, {"bundle_id": bundle_id_of(two)})
    finally:
        d.close()
    assert [x["invoice_id"] for x in receipt.body["documents"]] == ["A", "C"]
    assert [status for _, status in posts(receiver, keys_of(one) | keys_of(two))] == [
        201, 201, 200, 201]


def test_a_batch_is_posted_holding_one_invoices_document_at_a_time(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """Each document carries its invoice's attachments (up to 20 MB of them, base64):
    built one at a time as they are posted, a batch costs the daemon one document's
    memory, not all of them (8 invoices of 15 MB held ~160 MB of documents at once, and
    a batch of 50 such invoices would be 1.3 GB in the daemon's own process)."""
    receiver = start_receiver(process=True)  # its memory is not the daemon's
    ids = tuple(f"M{n}" for n in range(10))
    size = 1 << 20
    data = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>\n'
            + b"".join(body(with_id(BASE, i)) for i in ids) + b"</Batch>\n")
    files = {f"scan-{i}.pdf": (i, pdf_bytes() + os.urandom(size), "application/pdf")
             for i in ids}
    bundle = bundle_of(tmp_path, data, files, ids=ids)
    d = EmbeddedDeliverer(DeliveryConfig(url=receiver.url, format="ubl-embedded"))
    tracemalloc.start()
    try:
        receipt = d.deliver(bundle, {"bundle_id": "e" * 64})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        d.close()
    assert [x["invoice_id"] for x in receipt.body["documents"]] == list(ids)
    assert len(stored(receiver)) == len(ids)
    # One document is some five copies of its attachments' bytes at the peak (read,
    # base64, encoded, spliced, and the request's): under ten documents' worth each.
    one_document = size * 4 // 3
    assert peak < 7 * one_document, f"{peak / one_document:.1f} documents' worth held"


def test_an_attachment_changed_in_the_middle_of_a_batch_stops_it_there_with_honest_papers(
        tmp_path: Path, start_receiver: Callable[..., Receiver]) -> None:
    """Five invoices, each with its scan; the third's rewritten in the work folder after
    the check. Documents are built one at a time, so A and B (checked, and unchanged)
    are posted before C's change is found: C is never posted (nor D, E), the bundle is
    quarantined as processing-damaged naming C's file, and its papers name A and B as
    delivered with their receipts, so the clerk does not send them again."""
    receiver = start_receiver()
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    s = Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(tmp_path / "state")},
                 delivery={"url": receiver.url, "format": "ubl-embedded"})
    for folder in (s.processing_dir, s.paths.state_dir):
        folder.mkdir(parents=True, exist_ok=True)
    work = s.processing_dir / "INV--dddddddddddd--host-1-abc"
    work.mkdir()
    ids = ("A", "B", "C", "D", "E")
    data = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>\n'
            + b"".join(body(with_id(BASE, i)) for i in ids) + b"</Batch>\n")
    bundle = bundle_of(work, data, {f"{i}.pdf": (i, pdf_bytes(n + 1), "application/pdf")
                                    for n, i in enumerate(ids)}, ids=ids)
    keys = keys_of(bundle)
    journal = Journal(s.journal_path)
    bid = bundle_id_of(bundle)
    row = journal.create("INV.xml", "delivering", bundle_id=bid, work_dir=str(work))
    fin = Finisher(s, journal, EmbeddedDeliverer(s.delivery))
    fin.hand_over(row, bundle)
    scan = work / "INV" / "C" / "C.pdf"
    scan.write_bytes(scan.read_bytes().replace(b"%PDF-1.", b"%PDF-2.", 1))  # same size
    try:
        assert fin.attempt(row) is None
        assert posts(receiver, keys) == [("A", 201), ("B", 201)]
        assert set(stored(receiver)) == {keys["A"], keys["B"]}
        assert journal.get(row).state == "quarantined"
        assert set(journal.accepted_documents(bid)) == {keys["A"], keys["B"]}
        [entry] = s.quarantine_dir.glob("*/*")
        reason = json.loads((entry / "reason.json").read_text("utf-8"))
        [damaged] = reason["reasons"]
        assert damaged["code"] == "processing-damaged" and damaged["file"] == "INV/C/C.pdf"
        assert [d["invoice_id"] for d in reason["accepted_documents"]] == ["A", "B"]
        text = (entry / "REASON.txt").read_text("utf-8")
        assert "do NOT send them again" in text and "Nothing was delivered" not in text
    finally:
        fin.d.close()
        journal.close()


def test_a_print_bundle_answered_with_the_receivers_own_id_is_sent(
        tmp_path: Path, start_receiver: Any) -> None:
    """A print channel's bundle goes out as a bundle (one multipart POST) through the
    ubl-embedded deliverer's inner one, which must know the journal too: answered with a
    bundle_id of the receiver's own (--own-ids), 64 hex digits that are no bundle of
    ours, it is this bundle's receipt, as for format = "bundle"; it was retried for ever."""
    from dataclasses import replace

    from daemon.manifest import build_manifest

    rx = start_receiver("--own-ids")
    bundle = replace(batch_bundle(tmp_path), channel="original-print")
    manifest = build_manifest(bundle)
    journal = Journal(tmp_path / "journal.sqlite3")
    d = EmbeddedDeliverer(DeliveryConfig(url=rx.url, format="ubl-embedded"))
    d.bind_journal(journal)
    try:
        receipt = d.deliver(bundle, manifest)
    finally:
        d.close()
        journal.close()
    assert receipt.status == 201 and receipt.body["bundle_id"] != manifest["bundle_id"]
    assert [r["idempotency_key"] for r in rx.requests()] == [manifest["bundle_id"]]


def test_the_embedded_deliverer_scrubs_the_token_over_http_and_has_none_to_a_folder(
        tmp_path: Path) -> None:
    """What the ubl-embedded deliverer's scrub does to an error it quotes (a reload's
    replaced deliverer that fails to close, say): over HTTP the token is taken out as
    the HTTP transport takes it out; to a folder there is no secret, and the text stays."""
    token = "s3cret-token-0123"
    http = EmbeddedDeliverer(DeliveryConfig(url=NOWHERE, format="ubl-embedded", token=token))
    try:
        assert http.scrub(f"refused Bearer {token}") == "refused Bearer ***"
    finally:
        http.close()
    folder = EmbeddedDeliverer(DeliveryConfig(transport="directory", target=tmp_path,
                                              format="ubl-embedded"))
    assert folder.scrub(f"refused Bearer {token}") == f"refused Bearer {token}"


@pytest.mark.parametrize("script", ["503,400", "503,503,400"])
def test_a_document_refused_beside_one_posted_without_answer_does_not_say_nothing_went(
        start_receiver: Callable[..., Receiver], claim: Callable[[Receiver], Claimed],
        script: str) -> None:
    """ubl-embedded posts each invoice's document on its own and goes on past a 503. A
    answered 503 then B refused (in one attempt), or both 503 then A refused at the next:
    the refusal is an answer about that document's key only. The papers said "Nothing
    was delivered", though the other invoice's document went out without an answer that
    says the receiver did not take it; a clerk who mended the refused one and exported
    the file again sent that one under a new key. Now the reason names it, reason.json
    says delivery_outcome_unknown, and REASON.txt says to ask the operator first."""
    receiver = start_receiver("--fail-first", script)
    c = claim(receiver)
    while (wait := c.fin.attempt(c.row)) is not None:
        assert wait >= 0
    refused, other = ("B", "A") if script == "503,400" else ("A", "B")
    assert c.journal.get(c.row).state == "quarantined"
    [entry] = c.s.quarantine_dir.glob("*/*")
    reason = json.loads((entry / "reason.json").read_text("utf-8"))
    [rejected] = reason["reasons"]
    assert rejected["code"] == "rejected" and rejected["invoice_id"] == refused
    assert f"invoice {other}" in rejected["message"]
    assert "a delivery attempt whose outcome is not known" in rejected["message"]
    assert reason["delivery_outcome_unknown"] is True
    text = (entry / "REASON.txt").read_text("utf-8")
    assert "Nothing was delivered" not in text
    assert "The receiver may have this bundle already" in text


def test_a_file_changed_after_a_document_went_unanswered_keeps_that_document_unknown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A answered 503 (maybe taken), then B's attachment can no longer be read as it was
    checked: the InputError that stops the bundle names A as posted without an answer
    (`unanswered`), so its papers do not say "Nothing was delivered" (finish.py)."""
    from daemon.einvoice import transport
    from daemon.errors import InputError

    real = transport.documents_for

    def changed_at_b(*a: Any, **kw: Any) -> Any:
        plan = real(*a, **kw)

        class Broken:
            findings = plan.findings

            @staticmethod
            def each() -> Iterator[Any]:
                for doc in plan.each():
                    if doc.invoice_id == "B":
                        raise InputError("processing-damaged", "INV/B/a.pdf", "changed")
                    yield doc
        return Broken()

    monkeypatch.setattr(transport, "documents_for", changed_at_b)
    d = EmbeddedDeliverer(DeliveryConfig(url=NOWHERE, format="ubl-embedded"),
                          httpx.MockTransport(lambda _r: httpx.Response(503)))
    with pytest.raises(InputError) as caught:
        d.deliver(batch_bundle(tmp_path), {"bundle_id": "b" * 64})
    assert caught.value.unanswered == ("A",)
