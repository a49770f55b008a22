"""Names at the file-system limit (issue 6, case 3): an invoice file name of 226 bytes or
more used to make the work folder name exceed 255 bytes."""

from __future__ import annotations

import sqlite3

import pytest
from conftest import Env
from helpers import drop_bundle, pdf_bytes, wait_for

from faults.conftest import no_traceback

# Daemons here start lean (conftest.LEAN): long names do not depend on where bundles are read.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def test_invoice_name_at_the_limit_is_sent_once_with_one_journal_row(
        env: Env, receiver, start_daemon) -> None:
    """A 250-byte invoice file name (with a sidecar of its 246-byte stem): the bundle is
    sent and archived under a folder name that fits, with one journal row and no traceback;
    the invoice file keeps its full name inside the archive folder."""
    env.write_config(receiver.url)
    daemon = start_daemon()
    name = "Å" * 20 + "B" * 206  # 246 bytes in UTF-8
    assert len((name + ".xml").encode()) == 250
    drop_bundle(env.outbox, name, {"a.pdf": pdf_bytes()})
    [archived] = wait_for(env.sent_bundles, what="the long-named bundle in sent/")
    assert len(archived.name.encode()) <= 255
    assert (archived / f"{name}.xml").exists() and (archived / name / "a.pdf").exists()
    assert len(receiver.accepted()) == 1
    def rows() -> list[tuple[str]]:
        db = sqlite3.connect(env.state / "journal.sqlite3")
        try:
            return db.execute("SELECT state FROM bundles WHERE invoice_file = ?",
                              (f"{name}.xml",)).fetchall()
        finally:
            db.close()
    # The folder appears just before the row says "sent" (recorded once it is synced).
    wait_for(lambda: rows() == [("sent",)], what="one journal row, sent")
    assert rows() == [("sent",)]
    assert list(env.processing.iterdir()) == []
    no_traceback(daemon.stderr())
