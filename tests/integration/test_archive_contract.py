"""The archive outcomes (docs/folder-convention.md, section 7) as a receiver and an admin
see them, with a real daemon: what a rejection leaves in quarantine/ (its folder name,
reason.json, REASON.txt with the receiver's answer), and a bundle sent again under
[policy] duplicates = "send"."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from conftest import Env, Receiver
from helpers import answering_receiver, drop_bundle, pdf_bytes, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

# A receiver's answer longer than what outboxd keeps of it: docs/protocol.md, section 5,
# keeps the first 2,000 characters. Each character is told by its place, so a cut anywhere
# shows.
LONG_BODY = "".join(f"{n:04d}|" for n in range(1000))  # 5,000 characters


@pytest.fixture
def rejecting() -> Iterator[str]:
    """A receiver on 127.0.0.1 that reads each POST whole and answers 400 with
    LONG_BODY as text; yields its url."""
    with answering_receiver(
            lambda: (400, "text/plain; charset=utf-8", LONG_BODY.encode())) as url:
        yield url


def test_a_rejection_is_quarantined_with_its_status_and_the_first_2000_characters_of_the_body(
        env: Env, rejecting: str, start_daemon) -> None:
    """docs/folder-convention.md, section 7: a bundle the receiver rejects (HTTP 400) lies
    in QUARANTINE/YYYY-MM-DD/NAME--BUNDLEID12/ (UTC date) with the original layout, a
    reason.json holding bundle_id, invoice_file, reasons [{code, file, message}] and
    quarantined_at, and a REASON.txt giving the HTTP status and the first 2,000 characters
    of the receiver's body — not fewer, not the rest."""
    env.write_config(rejecting)
    start_daemon()
    drop_bundle(env.outbox, "INV-7001", {"timesheet.pdf": pdf_bytes()})
    [entry] = wait_for(env.quarantined, what="the rejected bundle in quarantine/")
    wait_for(lambda: (entry / "REASON.txt").exists(), what="REASON.txt")

    reason = json.loads((entry / "reason.json").read_text())
    assert {"bundle_id", "invoice_file", "reasons", "quarantined_at"} <= set(reason)
    assert re.fullmatch(r"[0-9a-f]{64}", reason["bundle_id"])
    assert reason["invoice_file"] == "INV-7001.xml"
    assert entry.name == f"INV-7001--{reason['bundle_id'][:12]}"
    # The day folder is the UTC day of quarantined_at (one time, so no test of the clock).
    assert entry.parent.name == reason["quarantined_at"][:10]
    assert entry.parent.parent == env.quarantine
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", reason["quarantined_at"])
    assert (entry / "INV-7001.xml").is_file()
    assert (entry / "INV-7001" / "timesheet.pdf").read_bytes() == pdf_bytes()
    [rejected] = reason["reasons"]
    assert {"code", "file", "message"} <= set(rejected)
    assert rejected["file"] == "INV-7001.xml"
    assert "HTTP 400" in rejected["message"]
    assert LONG_BODY[:2000] in rejected["message"]
    assert LONG_BODY[:2001] not in rejected["message"]

    text = (entry / "REASON.txt").read_text()
    assert "HTTP 400" in text and "INV-7001.xml" in text
    assert LONG_BODY[:2000] in text
    assert LONG_BODY[:2001] not in text
    assert env.sent_bundles() == []


def test_under_duplicates_send_a_bundle_sent_before_is_sent_again_under_a_second_name(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """[policy] duplicates = "send": the same files dropped again after their delivery
    are posted again (with the same Idempotency-Key, which the receiver answers with the
    stored response), not quarantined; the second archive entry takes the name with
    `-2` appended, as docs/folder-convention.md (section 7) says for a name that is
    taken."""
    env.write_config(receiver.url, policy={"duplicates": "send", "unattached": "send"})
    start_daemon()
    pdf = pdf_bytes()
    drop_bundle(env.outbox, "INV-7002", {"a.pdf": pdf})
    [first] = wait_for(env.sent_bundles, what="the first delivery archived")
    drop_bundle(env.outbox, "INV-7002", {"a.pdf": pdf})
    wait_for(lambda: len(env.sent_bundles()) == 2, what="the duplicate sent and archived")

    assert env.quarantined() == []
    requests = receiver.requests()
    assert [r["status"] for r in requests] == [201, 200]
    keys = [r["idempotency_key"] for r in requests]
    assert keys[0] == keys[1]
    bid = keys[0]
    names = sorted(p.name for p in env.sent_bundles())
    assert names == [f"INV-7002--{bid[:12]}", f"INV-7002--{bid[:12]}-2"]
    for entry in env.sent_bundles():
        receipt = json.loads((entry / "receipt.json").read_text())
        assert receipt["manifest"]["bundle_id"] == bid
        assert (entry / "INV-7002" / "a.pdf").read_bytes() == pdf
    assert first.name == f"INV-7002--{bid[:12]}"
