"""Delivery of ubl-embedded documents (SPEC §5.4): one request per document, progress kept."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import httpx
import pytest

from daemon.config import DeliveryConfig
from daemon.einvoice.transport import EmbeddedDeliverer
from daemon.errors import Retryable
from daemon.journal import Journal

from .broken import BASE, body, with_id
from .test_embed import bundle_of


def batch_bundle(tmp_path: Path):  # noqa: ANN201
    data = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>\n' + body(with_id(BASE, "A"))
            + body(with_id(BASE, "B")) + b"</Batch>\n")
    return bundle_of(tmp_path, data, {}, ids=("A", "B"))


def test_each_document_is_posted_as_xml_keyed_by_its_sha256(tmp_path: Path) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"receipt_id": f"r{len(seen)}"})

    d = EmbeddedDeliverer(DeliveryConfig(url="http://x/docs", format="ubl-embedded"),
                          httpx.MockTransport(handler))
    receipt = d.deliver(batch_bundle(tmp_path), {"bundle_id": "b" * 64})
    assert len(seen) == 2
    for r in seen:
        assert r.headers["Content-Type"] == "application/xml"
        assert r.headers["Idempotency-Key"] == hashlib.sha256(r.content).hexdigest()
        assert r.headers["X-Outboxd-Bundle-Id"] == "b" * 64
    docs = receipt.body["documents"]
    assert [(x["invoice_id"], x["receipt_id"], x["name"]) for x in docs] == [
        ("A", "r1", "INV--A.xml"), ("B", "r2", "INV--B.xml")]
    assert receipt.receipt_id == "r1, r2"


def test_a_retry_resends_only_the_documents_not_yet_accepted(tmp_path: Path) -> None:
    """A 503 on the first document: the second goes anyway; the retry sends the first only.
    What was accepted is in the journal, so this holds across a restart too."""
    journal = Journal(tmp_path / "j.sqlite3")
    bid = "c" * 64
    row = journal.create("INV.xml", "delivering", bundle_id=bid)
    answers = iter([503, 201, 201])
    keys: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        return httpx.Response(next(answers), json={"receipt_id": f"r{len(keys)}"})

    bundle = batch_bundle(tmp_path)
    cfg = DeliveryConfig(url="http://x/docs", format="ubl-embedded")
    d = EmbeddedDeliverer(cfg, httpx.MockTransport(handler))
    d.bind_journal(journal)
    with pytest.raises(Retryable):
        d.deliver(bundle, {"bundle_id": bid})
    assert len(journal.accepted_documents(bid)) == 1
    journal.transition(row, "retrying")
    again = EmbeddedDeliverer(cfg, httpx.MockTransport(handler))  # a restarted daemon
    again.bind_journal(journal)
    receipt = again.deliver(bundle, {"bundle_id": bid})
    assert keys == [keys[0], keys[1], keys[0]]
    assert [x["idempotency_key"] for x in receipt.body["documents"]] == [keys[0], keys[1]]


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


def test_old_journal_gains_the_documents_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE bundles (id INTEGER PRIMARY KEY, bundle_id TEXT,
        invoice_file TEXT NOT NULL, invoice_ids TEXT NOT NULL DEFAULT '[]', state TEXT NOT NULL,
        since TEXT NOT NULL, deadline TEXT, unattached_ids TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT, last_error TEXT,
        reasons TEXT NOT NULL DEFAULT '[]', work_dir TEXT, archive_dir TEXT, receipt_id TEXT,
        response TEXT, updated_at TEXT NOT NULL);
        INSERT INTO bundles (bundle_id, invoice_file, state, since, updated_at)
        VALUES ('e', 'OLD.xml', 'retrying', 'x', 'x');""")
    db.commit()
    db.close()
    j = Journal(path)
    assert j.get(1).invoice_file == "OLD.xml"
    j.accept_document("e", "k", {"status": 201})
    assert j.accepted_documents("e") == {"k": {"status": 201}}
    Journal(path)  # a second start finds the column and leaves it


