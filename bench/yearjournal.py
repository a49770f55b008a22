"""A journal as a year of the daemon's work leaves it, for the journal phase.

Each bundle's life is written through the Journal's own methods, as the daemon calls
them (loop/pipeline, claiming/claims, delivery/finish, archiving/moves): created
settling, claimed in a batch with the bundles dropped with it, handed over to delivery,
delivered with its whole receipt, then sent, keeping only the receiver's answer
(moves.sent_record). So the file holds what a real one holds: about five transitions
a bundle, a `sent_invoices` row per invoice sent, and the space a receipt took until
the row was trimmed, which SQLite gives back only in part (a page emptied by the trim
takes no later row; a VACUUM gives it back). A year of 100,000 bundles is about 150 MB
(about 260 MB of a version that kept the whole receipt in a sent row); the rows alone,
as the bench wrote them before, were 60 MB.

The Journal takes its times from its clock (rows.now_iso); while the fill runs that
clock says the time of the step being written, so the history reads as a year's.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import daemon.journal.rows as journal_rows
from daemon.journal import CLAIMING, DELIVERED, QUARANTINING, Journal
from daemon.journal.records import iso_of

LIVE = ("waiting", "held", "retrying", "settling")
WEEK = 7 * 86400
MIX = (("sent", 0.985), ("quarantined", 0.005), ("waiting", 0.004), ("held", 0.002),
       ("retrying", 0.002), ("settling", 0.002))
RETRIED = 0.02  # sent bundles whose first POST failed (a 503): two short transitions more
# Bundles delivered before their archives are done (delivery/workers.archive_later waits
# until no delivery does): how many rows hold a whole receipt at once, and so how much
# of the trimmed space stays unused. 2 makes the file of 300 bundles the reference
# receiver took from a real daemon, 483 KB, within 2 % (1 gives 438 KB, 4 gives 586 KB).
WAVE = 2
SHARE = "/srv/invoices"
RECEIVER = "https://einvoice.example.net/api/v1/bundles"


class _Clock:
    """The journal's clock during the fill: the time of the step being written."""

    def __init__(self) -> None:
        self.at = datetime.now(UTC)

    def iso(self) -> str:
        return iso_of(self.at)

    def step(self, seconds: float) -> str:
        self.at += timedelta(seconds=seconds)
        return self.iso()


@dataclass
class _Bundle:
    name: str
    state: str  # where its life ends
    bid: str
    row: int = 0


def _sha(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def _receipt(b: _Bundle, receipt_id: str, delivered_at: str, attempts: int) -> dict[str, Any]:
    """The receipt a delivered row holds until its entry is in sent/ (delivery/finish.py):
    the manifest of an invoice with a PNG and a PDF attached, as the bench's corpus sends
    them, and the reference receiver's answer."""
    attachments = [
        {"part": f"attachment-{i}", "name": name, "original_name": name, "size": size,
         "sha256": _sha(b.bid + name), "content_type": kind, "document_type": "Attachment",
         "note": "", **({"pages": 4} if name.endswith(".pdf") else {})}
        for i, (name, size, kind) in enumerate((("photo.png", 50123, "image/png"),
                                                ("timesheet.pdf", 98827, "application/pdf")),
                                               start=1)]
    manifest = {
        "manifest_version": 1, "bundle_id": b.bid, "created_at": delivered_at[:19] + "Z",
        "channel": "e-invoice",
        "invoice_file": {"name": f"{b.name}.xml", "original_name": f"{b.name}.xml",
                         "size": 9230, "sha256": _sha(b.bid), "format": "ubl"},
        "invoices": [{"id": b.name, "attachments": attachments}],
        "warnings": [{"code": "pdf-recommended", "invoice_id": b.name,
                      "file": f"{b.name}/photo.png",
                      "message": "is a PNG image; PDF is recommended for e-invoice "
                                 "attachments — export it as PDF if you can"}]}
    answer = {"status": 201, "body": {"receipt_id": receipt_id, "bundle_id": b.bid},
              "receipt_id": receipt_id}
    return {"manifest": manifest, "response": answer, "attempts": attempts,
            "delivered_at": delivered_at, "delivered_to": RECEIVER}


def _entry(b: _Bundle) -> str:
    return f"{b.name}--{b.bid[:12]}"


def _reasons(b: _Bundle) -> list[dict[str, str]]:
    return [{"code": "empty-file", "file": f"{b.name}/scan.pdf",
             "message": f"{b.name}/scan.pdf: the file is empty — export it again"}]


@contextmanager
def _journal_clock(clock: _Clock) -> Iterator[None]:
    """The Journal's writes take their times from `clock` (rows.now_iso is what create()
    and transitions() ask)."""
    with mock.patch.object(journal_rows, "now_iso", clock.iso):
        yield


def _claim(j: Journal, clock: _Clock, claimed: list[_Bundle]) -> None:
    """claiming for the drop in one batch (claims._record_claims), then delivering
    (claims._hand_over)."""
    if not claimed:
        return
    clock.step(0.2)  # settle_seconds
    j.transitions([(b.row, {
        "bundle_id": b.bid, "invoice_ids": [b.name], "unattached_ids": [],
        "work_dir": f"{SHARE}/outbox/.outboxd/processing/{_entry(b)}--host-4242-"
                    f"{b.bid[12:24]}",
        "reasons": _reasons(b) if b.state == "quarantined" else [],
        "channel": "e-invoice", "claimed_in": "65024:2580689"}) for b in claimed], CLAIMING,
        durable=False)
    clock.step(0.01)
    going: list[tuple[int, dict[str, Any]]] = [(b.row, {}) for b in claimed
                                               if b.state != "quarantined"]
    j.transitions(going, "delivering", "claimed", durable=False)


def _deliver(j: Journal, clock: _Clock, b: _Bundle, retried: bool, now: datetime
             ) -> dict[str, Any] | None:
    """One bundle's delivery (delivery/finish.py, delivery/retries.py): its receipt, or
    None for one that ends `retrying`, waiting for its next attempt a minute from `now`.
    `retried`: its first POST was answered 503."""
    attempts = 1
    if b.state == "retrying" or retried:
        clock.step(0.03)
        again = now if b.state == "retrying" else clock.at
        j.transition(b.row, "retrying", "", durable=False, attempts=1,
                     last_error="HTTP 503 from the receiver: Service Unavailable",
                     next_attempt_at=iso_of(again + timedelta(seconds=60)))
        if b.state == "retrying":
            return None
        clock.step(60)
        attempts = 2
        j.transition(b.row, "delivering", durable=False, bundle_id=b.bid, attempts=2,
                     next_attempt_at=None)
    delivered_at = clock.step(0.03)
    receipt_id = f"rcpt-{b.bid[32:]}"
    receipt = _receipt(b, receipt_id, delivered_at, attempts)
    j.transition(b.row, DELIVERED, durable=False, response=receipt, receipt_id=receipt_id,
                 last_error=None, archive_dir=_archive_dir(b, delivered_at),
                 attempts=attempts)
    return receipt


def _archive(j: Journal, clock: _Clock, b: _Bundle, receipt: dict[str, Any]) -> None:
    """archiving/moves.archive_sent: the row keeps only the receiver's answer
    (moves.sent_record), sent since its delivery."""
    clock.step(0.01)
    delivered_at = receipt["delivered_at"]
    j.transition(b.row, "sent", durable=False, since=delivered_at,
                 archive_dir=_archive_dir(b, delivered_at), last_error=None,
                 response={"response": receipt["response"]})


def _archive_dir(b: _Bundle, delivered_at: str) -> str:
    return f"{SHARE}/sent/{delivered_at[:10]}/{_entry(b)}"


def _quarantine(j: Journal, clock: _Clock, b: _Bundle) -> None:
    """archiving/moves.quarantine of a claimed bundle."""
    clock.step(0.02)
    j.transition(b.row, QUARANTINING, durable=False, reasons=_reasons(b), last_error=None)
    since = j.get(b.row).since
    clock.step(0.02)
    j.transition(b.row, "quarantined", durable=False, since=since,
                 archive_dir=f"{SHARE}/quarantine/{since[:10]}/{_entry(b)}")


def _life(j: Journal, clock: _Clock, drop: list[_Bundle], start: datetime,
          now: datetime, rng: random.Random) -> None:
    """The bundles dropped together at `start`, from their files' arrival to where each
    one ends."""
    clock.at = start
    for b in drop:
        b.row = j.create(f"{b.name}.xml", "settling", durable=False)
        clock.step(0.05)
    _claim(j, clock, [b for b in drop if b.state in ("sent", "quarantined", "retrying")])
    receipts: list[tuple[_Bundle, dict[str, Any]]] = []
    for b in drop:
        if b.state == "waiting":
            j.transition(b.row, "waiting", durable=False, since=clock.iso(),
                         wait_began=clock.iso(), bundle_id=b.bid, deadline=None,
                         invoice_ids=[b.name], unattached_ids=[b.name])
        elif b.state == "held":
            j.transition(b.row, "held", durable=False, bundle_id=b.bid,
                         invoice_ids=[b.name], reasons=_reasons(b))
        elif b.state == "quarantined":
            _quarantine(j, clock, b)
        elif b.state != "settling" and (
                receipt := _deliver(j, clock, b, rng.random() < RETRIED, now)):
            receipts.append((b, receipt))
        if len(receipts) >= WAVE:
            for b, receipt in receipts:
                _archive(j, clock, b, receipt)
            receipts = []
    for b, receipt in receipts:
        _archive(j, clock, b, receipt)


def fill_journal(path: str, count: int, seed: int = 5, days: float = 365) -> dict[str, int]:
    """A journal of `count` bundles written as the daemon writes them: mostly sent, some
    quarantined, a few live and in flight. The counts per state.

    The finished bundles (sent, quarantined) are spread uniformly over the last `days`
    days, as the journal of a busy operator after a year: `status` lists only those of
    the last 7 days (docs/operations.md), the rest is what its query must skip. Live
    bundles are of the last week (or of the last `days` when fewer): they are what is
    going on now, and `status` lists them all. Rows are in the order of their drops,
    as the daemon numbers them."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    states = [s for s, _ in MIX]
    weights = [w for _, w in MIX]
    drops: list[tuple[datetime, list[_Bundle]]] = []
    counts: dict[str, int] = {}
    finished: list[_Bundle] = []
    week = min(days * 86400, WEEK)
    for i in range(count):
        b = _Bundle(f"INV-J{i:06d}", rng.choices(states, weights)[0],
                    f"{rng.getrandbits(256):064x}")
        counts[b.state] = counts.get(b.state, 0) + 1
        if b.state in LIVE:  # on its own, of the last week: what is going on now
            drops.append((now - timedelta(seconds=rng.uniform(60, max(60.0, week - 3600))),
                          [b]))
        else:
            finished.append(b)
    # A day's invoices dropped together, as a clerk exports them, a day of `days` each;
    # the daemon claims such a drop in batches and delivers it bundle by bundle.
    # The latest an hour ago: a drop's life takes a minute or two of its clock.
    n = max(1, round(days))
    span = max(0.0, days * 86400 - 3660) / n
    for k in range(n):
        day = finished[len(finished) * k // n:len(finished) * (k + 1) // n]
        if day:
            drops.append((now - timedelta(seconds=3600 + (k + rng.random()) * span), day))
    drops.sort(key=lambda tb: tb[0])
    clock = _Clock()
    j = Journal(Path(path))
    try:
        with _journal_clock(clock):
            for start, drop in drops:
                with j.batch(durable=False):
                    _life(j, clock, drop, start, now, rng)
    finally:
        j.close()
    return counts


def shape(path: Path | str) -> str:
    """What the journal at `path` holds, for the figure's note: its size and the rows of
    each table (the rows alone, as the bench wrote them until 2026-12-06, were a
    60 MB file and 0.45 s of `status --json`)."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        bundles, transitions, sent = (db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                                      for t in ("bundles", "transitions", "sent_invoices"))
    finally:
        db.close()
    return (f"journal {os.path.getsize(path) / 1e6:.0f} MB as the daemon writes it: "
            f"{bundles} bundles, {transitions} transitions, {sent} sent invoice ids")
