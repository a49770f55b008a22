"""The classes of the answers table (docs/protocol.md, Answers) as the running daemon
lives them: `outboxd run` posting to the reference receiver on 127.0.0.1, which answers
the first requests with the statuses of --fail-first. The classification itself is
unit-tested (tests/delivery/test_answers.py); here, what each class does to a bundle:
retried under the same Idempotency-Key until it is sent once, or quarantined with the
receiver's status and words."""

from __future__ import annotations

import json

import pytest
from conftest import Env
from helpers import drop_bundle, pdf_bytes, wait_for

pytestmark = pytest.mark.usefixtures("no_attachment_wait", "quick_settle")


def test_every_retried_and_pausing_status_ends_in_one_delivery_under_one_key(
        env: Env, start_receiver, start_daemon) -> None:
    """408, 409 (the key still in progress), 425, 500, 502 and 504 are retried, 403 and
    404 pause the deliveries (a configuration problem): none quarantines the bundle.
    Every request carries the bundle id as its Idempotency-Key; the receiver stores the
    bundle once; receipt.json counts every attempt."""
    statuses = [408, 409, 425, 500, 502, 504, 403, 404]
    flaky = start_receiver("--fail-first", ",".join(map(str, statuses)))
    env.write_config(flaky.url, delivery={"retry_base_seconds": 0.05,
                                          "retry_max_seconds": 0.2})
    start_daemon()
    drop_bundle(env.outbox, "INV-6001", {"a.pdf": pdf_bytes()})
    [archived] = wait_for(env.sent_bundles, timeout=40, what="delivery after every retry")
    receipt = json.loads((archived / "receipt.json").read_text())
    requests = flaky.requests()
    assert [r["status"] for r in requests] == [*statuses, 201]
    assert {r["idempotency_key"] for r in requests} == {receipt["manifest"]["bundle_id"]}
    assert receipt["attempts"] == len(statuses) + 1
    assert receipt["response"]["status"] == 201 and receipt["response"]["receipt_id"]
    assert env.quarantined() == []
    stored = [p for p in flaky.store.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert [p.name for p in stored] == [receipt["manifest"]["bundle_id"]]


@pytest.mark.parametrize("status", [400, 413, 422])
def test_a_refusing_status_quarantines_the_bundle_naming_the_status_and_posts_once(
        env: Env, start_receiver, start_daemon, status: int) -> None:
    """400, 413 and 422 (the key reused with another payload) are refusals: the bundle is
    quarantined after its one POST, reason.json and REASON.txt naming the HTTP status and
    quoting the receiver's body; nothing reaches sent/ and nothing is posted again."""
    picky = start_receiver("--fail-first", str(status))
    env.write_config(picky.url)
    start_daemon()
    drop_bundle(env.outbox, "INV-6002", {"a.pdf": pdf_bytes()})
    [q] = wait_for(env.quarantined, what="the refused bundle in quarantine/")
    reason = json.loads((q / "reason.json").read_text())
    said = (q / "REASON.txt").read_text()
    assert f"HTTP {status}" in said and "injected failure" in said
    assert any(f"HTTP {status}" in r["message"] for r in reason["reasons"]), reason
    assert env.sent_bundles() == []
    assert [r["status"] for r in picky.requests()] == [status]
