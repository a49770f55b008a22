"""Watching: events are hints, the folder is the truth. `outboxd run` on a temp
outbox and the reference receiver on 127.0.0.1: with a watcher that sees nothing in time
(a poller with an hour between its looks) only the periodic rescan ([outbox]
rescan_seconds) can find what is dropped after the start; with no rescan for ten minutes
only the watcher's event can (docs/configuration.md, rescan_seconds and watch)."""

from __future__ import annotations

import json

import pytest
from conftest import Env, Receiver
from helpers import drop_bundle, pdf_bytes, ubl_invoice, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

# A watcher that misses every change after the start: its first look after that is an
# hour away, far beyond any deadline here.
BLIND = {"watch": "polling", "poll_interval_seconds": 3600}


def test_a_bundle_no_event_told_of_is_found_by_the_periodic_rescan_and_sent(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A bundle dropped after the start, of which the watcher tells nothing, is found by
    the rescan every rescan_seconds and delivered with its attachment: a missed event
    (an inotify queue overflow, a watcher restart) costs a rescan period, never the
    bundle."""
    env.write_config(receiver.url, outbox={**BLIND, "rescan_seconds": 0.5})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-R1", {"a.pdf": pdf_bytes()})
    [sent] = wait_for(env.sent_bundles, what="the bundle found by a rescan in sent/")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    assert [(i["id"], [a["original_name"] for a in i["attachments"]])
            for i in manifest["invoices"]] == [("INV-R1", ["a.pdf"])]
    assert len(receiver.accepted()) == 1
    assert daemon.popen.poll() is None


def test_an_invoice_file_moved_in_from_another_folder_is_seen_without_a_rescan(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An invoice file written in a folder outside the outbox (on the same file system)
    and moved in with one rename counts like a file written there: its event alone, with
    no rescan for ten minutes, has it sent with the sidecar it joins. (With the poller
    of BLIND instead of inotify the same test times out: the event is what finds it.)"""
    env.write_config(receiver.url, outbox={"rescan_seconds": 600})
    start_daemon()
    made = env.root / "export"
    made.mkdir()
    (made / "INV-R2.xml").write_bytes(ubl_invoice("INV-R2"))
    (env.outbox / "INV-R2").mkdir()
    (env.outbox / "INV-R2" / "a.pdf").write_bytes(pdf_bytes())
    (made / "INV-R2.xml").rename(env.outbox / "INV-R2.xml")
    [sent] = wait_for(env.sent_bundles, what="the moved-in invoice file in sent/")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    assert [(i["id"], [a["original_name"] for a in i["attachments"]])
            for i in manifest["invoices"]] == [("INV-R2", ["a.pdf"])]
