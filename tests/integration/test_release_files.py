"""Release without attachments, the clerk's `NAME.send-anyway`, end to end —
`outboxd run` with the real watcher on a temp outbox, posting to the reference receiver
on 127.0.0.1 (docs/folder-convention.md, section 6, "Send anyway")."""

from __future__ import annotations

import json

import pytest
from conftest import Env, Receiver, journal_since
from helpers import drop_bundle, pdf_bytes, wait_for

# Lean (conftest.LEAN): nothing here is about pre-flight or where bundles are read; the
# page is paced at 0.5 s (quick_page): a test here reads it.
pytestmark = pytest.mark.usefixtures("lean", "quick_page", "quick_settle")

HOLD = {"policy": {"unattached": "hold"}}


def _manifest(folder) -> dict:
    wait_for(lambda: (folder / "receipt.json").exists(), what="receipt.json")
    return json.loads((folder / "receipt.json").read_text())["manifest"]


def _page(env: Env) -> str:
    page = env.outbox / "outboxd-status.html"
    return page.read_text() if page.exists() else ""


def test_a_release_file_dropped_before_its_invoice_file_waits_then_releases_it(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A release file with no invoice file of its stem waits, as an orphan sidecar does,
    and is listed on the status page; it releases nothing else meanwhile. The invoice
    file without attachments that comes later is sent at once under "hold" (which would
    wait for good), its manifest's warning naming the release file, which goes with it
    into sent/."""
    env.write_config(receiver.url, **HOLD)
    start_daemon()
    (env.outbox / "INV-7001.send-anyway").write_bytes(b"")
    wait_for(lambda: "INV-7001.send-anyway" in _page(env),
             what="the release file without its invoice file on the status page")
    assert receiver.requests() == []

    drop_bundle(env.outbox, "INV-7001", {})
    [sent] = wait_for(env.sent_bundles, what="the invoice released by the earlier file")
    [warning] = _manifest(sent)["warnings"]
    assert (warning["code"], warning["invoice_id"]) == ("unattached-invoice", "INV-7001")
    assert "released by INV-7001.send-anyway" in warning["message"]
    assert (sent / "INV-7001.send-anyway").exists()
    assert not (env.outbox / "INV-7001.send-anyway").exists()
    assert len(receiver.accepted()) == 1


def test_a_release_file_beside_an_invoice_with_attachments_adds_no_warning_and_leaves_with_it(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A release file beside an invoice that has its attachments does nothing: the bundle
    goes as it would without it, its manifest with no unattached-invoice warning (nothing
    was released), and the release file is archived with the bundle — none is left in
    the outbox to release, unasked, a later invoice file of the same name."""
    env.write_config(receiver.url, **HOLD)
    start_daemon()
    (env.outbox / "INV-7002.send-anyway").write_bytes(b"")
    drop_bundle(env.outbox, "INV-7002", {"a.pdf": pdf_bytes()})
    [sent] = wait_for(env.sent_bundles, what="the bundle with its attachment in sent/")
    manifest = _manifest(sent)
    assert [a["original_name"] for a in manifest["invoices"][0]["attachments"]] == ["a.pdf"]
    assert manifest["warnings"] == []
    assert (sent / "INV-7002.send-anyway").exists()
    assert not (env.outbox / "INV-7002.send-anyway").exists()

    # The same name again without attachments waits under "hold": no release is left.
    drop_bundle(env.outbox, "INV-7002", {}, invoice=b'<?xml version="1.0"?><Invoice>'
                b"<ID>INV-7002</ID><Note>corrected</Note></Invoice>")
    wait_for(lambda: journal_since(env, "waiting", "INV-7002.xml"),
             what="the later INV-7002.xml to wait for its attachments")
    assert len(receiver.accepted()) == 1
