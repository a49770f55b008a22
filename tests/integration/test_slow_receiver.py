"""A receiver that takes a POST in at a crawl does not hold the real daemon's delivery
worker: the attempt ends at its upload's time ([delivery] timeout_seconds, and as much
again a MiB) as a retried timeout, and the worker goes on to the next bundle.

Against the raw-socket receiver of rawreceiver.py on 127.0.0.1, which reads a large
request 16 KiB every 0.1 s."""

from __future__ import annotations

import socket
import sqlite3

import pytest
from conftest import Env, journal_states
from helpers import drop_bundle, pdf_bytes, wait_for
from rawreceiver import RawReceiver, created

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

BIG = 12 << 20  # the crawl takes some 80 s for it


def take_large_ones_at_a_crawl(rx: RawReceiver, conn: socket.socket, length: int,
                               got: bytes) -> None:
    size = len(got)
    while size < length and (length < BIG or rx.pace(0.1)):
        chunk = conn.recv(min(16 << 10 if length >= BIG else 1 << 20, length - size))
        if not chunk:
            raise OSError("the request ended early")
        size += len(chunk)


def last_error(env: Env, invoice_file: str) -> str:
    db = sqlite3.connect(env.state / "journal.sqlite3")
    try:
        row = db.execute("SELECT last_error FROM bundles WHERE invoice_file = ? "
                         "ORDER BY id DESC", (invoice_file,)).fetchone()
    finally:
        db.close()
    return (row[0] or "") if row else ""


def test_a_crawling_upload_frees_the_only_worker_for_the_next_bundle(
        env: Env, start_daemon) -> None:
    """concurrency = 1, timeout_seconds = 0.5: a 12 MiB bundle the receiver reads at some
    160 KiB/s (its upload would hold the worker for over a minute) is retried as a
    timeout within seconds, and a small bundle dropped behind it goes out meanwhile."""
    with RawReceiver(lambda rx, conn, n: conn.sendall(created(f"R-{n}")),
                     take_body=take_large_ones_at_a_crawl) as rx:
        # The stop at the end does not wait for the crawl's attempt under way then (up to
        # the default grace, 20 s): how a stop ends a delivery is test_stop.py's.
        env.write_config(f"http://127.0.0.1:{rx.port}/b",
                         delivery={"timeout_seconds": 0.5, "concurrency": 1},
                         validation={"max_attachment_bytes": 20_000_000},
                         service={"shutdown_grace_seconds": 0.2})
        start_daemon()
        drop_bundle(env.outbox, "INV-BIG", {"scan.pdf": pdf_bytes(1) + b"%" + b"x" * BIG
                                            + b"\n"})
        wait_for(lambda: journal_states(env).get("INV-BIG.xml") == "delivering",
                 what="the large bundle's first attempt")
        drop_bundle(env.outbox, "INV-SMALL", {"note.pdf": pdf_bytes(1)})
        wait_for(lambda: any(p.name.startswith("INV-SMALL--") for p in env.sent_bundles()),
                 timeout=30, what="the small bundle to be sent past the crawling upload")
        assert "WriteTimeout" in last_error(env, "INV-BIG.xml")
        assert not any(p.name.startswith("INV-BIG--") for p in env.sent_bundles())
