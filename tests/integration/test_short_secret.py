"""A url password of one character, through `outboxd run` and the reference receiver on
127.0.0.1: the receiver's receipt id, and its answer, are kept as it gave them — in
receipt.json in sent/, the journal and the `bundle sent` log line. Its every "c" was
taken out as *** ("r***pt-…"): the id a person quotes to the operator was another, and
the answer's bundle_id no longer ours. The daemon says at its start that the password
is short, never showing it, and again at each reload."""

from __future__ import annotations

import json
import signal
import sqlite3

import pytest
from conftest import Env, Receiver
from helpers import drop_bundle, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def test_a_one_character_url_password_leaves_the_receipt_id_whole(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """url = http://erp:c@127.0.0.1:PORT/…, the receipt ids `rcpt-<hex>` (a "c" in
    each): the bundle is sent, receipt.json keeps the receiver's answer byte for byte
    as JSON (receipt_id, bundle_id), the journal and the log line the same receipt id;
    a warning at the start, and again at a reload, names the url's password as short,
    and no line shows it."""
    assert receiver.url.startswith("http://127.0.0.1:")
    env.write_config(receiver.url.replace("http://", "http://erp:c@", 1),
                     policy={"unattached": "send"})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-5001", {})

    [archived] = wait_for(env.sent_bundles, what="the bundle in sent/")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    receipt = json.loads((archived / "receipt.json").read_text())
    bundle_id = receipt["manifest"]["bundle_id"]
    answer = json.loads((receiver.store / bundle_id / "response.json").read_text())
    assert answer["receipt_id"].startswith("rcpt-")
    assert receipt["response"]["receipt_id"] == answer["receipt_id"]
    assert receipt["response"]["body"] == answer == {"receipt_id": answer["receipt_id"],
                                                     "bundle_id": bundle_id}

    def sent_rows() -> list[tuple[str]]:
        # The folder is in sent/ a moment before the journal's row says sent.
        db = sqlite3.connect(env.state / "journal.sqlite3")
        try:
            return db.execute("SELECT receipt_id FROM bundles WHERE state = 'sent'").fetchall()
        finally:
            db.close()
    [(kept,)] = wait_for(sent_rows, what="the journal's row sent")
    assert kept == answer["receipt_id"]

    def events() -> list[dict[str, object]]:
        return [json.loads(line) for line in daemon.stderr().splitlines()]
    [sent] = wait_for(lambda: [e for e in events() if e["event"] == "bundle sent"],
                      what="the bundle sent log line")
    assert sent["receipt_id"] == answer["receipt_id"]
    [warning] = [e for e in events() if "shorter than 8 characters" in str(e["event"])]
    assert warning["level"] == "warning"
    assert str(warning["event"]).startswith("the password in [delivery] url is shorter")
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: len([e for e in events()
                          if "shorter than 8 characters" in str(e["event"])]) == 2,
             what="the warning again after the reload")
    assert "erp:c@" not in daemon.stderr()
