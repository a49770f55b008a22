"""SIGHUP as an admin uses it (`systemctl reload outboxd`): the real daemon, the reference
receiver on 127.0.0.1, the configuration file edited between reloads
(docs/configuration.md, Reloading)."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from conftest import OUTBOXD, Env, Receiver, journal_states
from helpers import drop_bundle, text_pdf, wait_for

# Daemons here start lean (conftest.LEAN): reloading does not depend on where bundles are
# read, and no test here is about pre-flight.
pytestmark = pytest.mark.usefixtures("lean")


def test_a_waiting_invoice_that_a_reload_makes_no_invoice_file_is_left_alone_not_sent(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A PDF invoice waits for attachments; the admin narrows [outbox] invoice_patterns to
    "*.xml" and sets unattached = "send" in one reload. The PDF is no invoice file any
    more: its waiting row ends (as at a start), `outboxd status` lists it among the files
    left alone and no longer as waiting, and it stays in the outbox, unsent — while an
    XML invoice dropped after the reload goes out under the new policy."""
    env.write_config(receiver.url, policy={"unattached": "hold"})
    daemon = start_daemon()
    (env.outbox / "P-77.pdf").write_bytes(text_pdf(["Invoice number: P-77"]))
    wait_for(lambda: journal_states(env).get("P-77.pdf") == "waiting",
             what="the PDF invoice to wait for attachments")

    env.write_config(receiver.url, policy={"unattached": "send"},
                     outbox={"invoice_patterns": ["*.xml"]})
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: journal_states(env).get("P-77.pdf") not in ("waiting", "settling"),
             what="the PDF's waiting row to end after the reload")
    drop_bundle(env.outbox, "INV-X1", {})
    wait_for(lambda: journal_states(env).get("INV-X1.xml") == "sent",
             what="the XML invoice dropped after the reload to be sent")

    assert journal_states(env)["P-77.pdf"] == "gone"
    assert (env.outbox / "P-77.pdf").is_file()
    assert [r["idempotency_key"] for r in receiver.accepted()] == \
        [json.loads((p / "receipt.json").read_text())["manifest"]["bundle_id"]
         for p in env.sent_bundles()]
    assert [p.name.split("--")[0] for p in env.sent_bundles()] == ["INV-X1"]
    status = subprocess.run([*OUTBOXD, "status", "-c", str(env.config)], capture_output=True,
                            text=True, timeout=60).stdout
    waiting = status.split("Waiting for attachments:")[1].split("\n\n")[0] \
        if "Waiting for attachments:" in status else ""
    assert "P-77.pdf" not in waiting
    assert "P-77.pdf: not an invoice file" in status
