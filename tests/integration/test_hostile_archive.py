"""The real daemon started with its journal lost, on a sent/ and quarantine/ where people
of the share planted what outboxd must never open, follow or read whole (quarantine/ is
group-writable on the share): it starts, reads back only its own papers, and goes on
delivering; `outboxd status` and the status page are not stopped by them either."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from archiving.test_quarantineback import entry
from archiving.test_readback import day, receipt
from conftest import Env, Receiver
from helpers import drop_bundle, pdf_bytes, wait_for

from integration.test_status import status

# The daemon starts lean (conftest.LEAN): sent/ and quarantine/ are read back by the
# daemon's own loop at its start, never by a reader process, and nothing here is about
# pre-flight; as shipped, its readers loading the e-invoice rules took 2-3 s of the test.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


@pytest.mark.usefixtures("quick_page")  # it waits for the page to list the new bundle
def test_a_daemon_with_a_lost_journal_starts_past_fifos_links_and_huge_papers(
        env: Env, receiver: Receiver, start_daemon, tmp_path: Path) -> None:
    """Planted in quarantine/ and sent/ before a start with no journal: a FIFO as one
    entry's reason.json and receipt.json, a link to /etc/shadow as another's reason.json,
    one to a forged record outside quarantine/ as a third's, a 2 GB reason.json, and a
    FIFO as a sent/ entry's receipt.json. The daemon starts (a FIFO opened would block it
    before READY for good), reads back the one honest entry of each folder, sends a new
    bundle, and `status --json` and the page answer; every planted thing is left as it
    was."""
    env.write_config(receiver.url)
    today = day(0)
    q = env.quarantine
    honest = entry(q, today, "INV-1--111111111111", "11" * 32, "INV-1.xml")
    fifos = entry(q, today, "INV-2--222222222222", "22" * 32, "INV-2.xml")
    for name in ("reason.json", "receipt.json"):
        (fifos / name).unlink(missing_ok=True)
        os.mkfifo(fifos / name)
    shadow = entry(q, today, "INV-3--333333333333", "33" * 32, "INV-3.xml")
    (shadow / "reason.json").unlink()
    (shadow / "reason.json").symlink_to("/etc/shadow")
    forged = entry(tmp_path / "outside", today, "INV-4--444444444444", "44" * 32,
                   "INV-4.xml")
    linked = entry(q, today, "INV-4--444444444444", "44" * 32, "INV-4.xml")
    (linked / "reason.json").unlink()
    (linked / "reason.json").symlink_to(forged / "reason.json")
    huge = entry(q, today, "INV-5--555555555555", "55" * 32, "INV-5.xml")
    with (huge / "reason.json").open("r+b") as fh:
        fh.truncate(2 << 30)  # sparse: no disk used
    receipt(env.sent / today / "INV-6--666666666666", "66" * 32, "INV-6.xml")
    sent_fifo = env.sent / today / "INV-7--777777777777"
    sent_fifo.mkdir()
    os.mkfifo(sent_fifo / "receipt.json")
    assert not (env.state / "journal.sqlite3").exists()

    start_daemon()
    drop_bundle(env.outbox, "INV-8", {"a.pdf": pdf_bytes()})
    wait_for(lambda: any(p.name.startswith("INV-8--") for p in env.sent_bundles()),
             what="the new bundle sent past the planted papers")
    data = json.loads(status(env, "--json").stdout)
    assert data["counts"]["quarantined"] == 1 and data["counts"]["sent"] == 2
    # The honest entry read back as quarantined, the sent/ receipt and the new bundle as
    # sent: nothing a planted paper says was taken for a record.
    page = env.outbox / "outboxd-status.html"
    wait_for(lambda: page.exists() and "INV-8" in page.read_text("utf-8"),
             what="the status page with the new bundle")
    for fifo in (fifos / "reason.json", fifos / "receipt.json", sent_fifo / "receipt.json"):
        assert stat.S_ISFIFO(os.lstat(fifo).st_mode), fifo
    assert os.readlink(shadow / "reason.json") == "/etc/shadow"
    assert (linked / "reason.json").is_symlink()
    assert (huge / "reason.json").stat().st_size == 2 << 30
    assert (honest / "INV-1.xml").exists()
