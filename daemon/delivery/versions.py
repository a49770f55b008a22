"""The versions of an invoice reach the receiver in the order outboxd found them
(docs/folder-convention.md, Corrections).

An ERP that exports a corrected invoice while the first version is still being
delivered (or retried after a 503) makes two bundles with one invoice id. Posted side
by side, the first version could arrive after the correction and be taken for the newer
one. So a bundle is not posted while an earlier one (a lower journal row: found first)
with one of its invoices is claimed but not yet taken by the receiver.

A bundle that waits is looked at again when the attempt of the one it waits for ends
(`attempt_ended`, called by the delivery workers' attempt), which is when that one can
have reached the receiver; else when that one's next try is due, and at the latest
after `retry_max_seconds` (the journal's times are the wall clock's, which may step).
Never by polling while the earlier one is queued or being posted: a re-exported batch
waiting so through an outage of hours would keep an idle daemon busy for nothing.
"""

from __future__ import annotations

import threading
from typing import Any

from daemon.journal import CLAIMING, Journal, Row, seconds_until

# How soon a bundle looks again after the next try of the one it waits for is due
# (that attempt's end wakes it anyway), or while that one's claim is under way (the
# moment a claim takes; one that waits for the next start says so in its last_error).
EARLIER_POLL_SECONDS = 0.5


class Versions:
    """Shared by the delivery workers; every method is safe from any thread."""

    def __init__(self, journal: Journal) -> None:
        self.j = journal
        self._behind: dict[int, set[int]] = {}  # earlier row -> rows waiting for it
        self._lock = threading.Lock()

    def earlier(self, row: Row) -> Row | None:
        """The earlier bundle row must wait for, if any."""
        return self.j.earlier_in_flight(row.id, row.invoice_ids)

    def wait(self, row: Row, earlier: Row, retry_max: float, log: Any) -> float:
        """Not posted yet: `earlier` holds one of row's invoices and is not yet at the
        receiver. No attempt is counted; the row is `retrying`, as a delivery put off,
        with why and the earlier one's next try (status and the page show both). The
        delay before it looks again."""
        with self._lock:
            self._behind.setdefault(earlier.id, set()).add(row.id)
        # Listening now: if the earlier one's attempt ended (or wrote anything) between
        # the look and this, its wake-up came too soon for this row: look again at once.
        if self.j.get(earlier.id) != earlier:
            return 0.0
        shared = next(i for i in row.invoice_ids if i in earlier.invoice_ids)
        why = (f"waits for {earlier.invoice_file} (bundle {(earlier.bundle_id or '?')[:12]}), "
               f"an earlier bundle with invoice {shared} that is still being delivered: "
               "the versions of an invoice reach the receiver in the order outboxd found "
               "them")
        after = earlier.next_attempt_at
        # Written when something shown changes, not at every look.
        if row.state != "retrying" or row.last_error != why or row.next_attempt_at != after:
            self.j.transition(row.id, "retrying", durable=False, last_error=why,
                              next_attempt_at=after)
        if row.last_error != why:
            log.info("bundle waits for an earlier version of its invoice", error=why)
        latest = max(retry_max, EARLIER_POLL_SECONDS)
        if after:
            return min(max(seconds_until(after), 0.0) + EARLIER_POLL_SECONDS, latest)
        if earlier.state == CLAIMING and not earlier.last_error:
            return EARLIER_POLL_SECONDS  # a claim under way: it is delivering in a moment
        return latest  # queued, being posted, or a claim left for the next start

    def attempt_ended(self, row_id: int) -> list[int]:
        """An attempt of row_id has ended: the rows that waited for it, to look again."""
        with self._lock:
            return sorted(self._behind.pop(row_id, ()))
