"""What is kept of a bundle's sending: the warnings its manifest carries to the receiver
and into receipt.json (an invoice without attachments, one already sent by an earlier
bundle), and, once the receiver took it, its delivery recorded: the receipt and the
archive folder in one commit, durable before anything moves, then the archive made
here or left to the delivery workers.

A part of `finish.Finisher` (a mixin): it shares the journal, the settings and the
archive moves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from daemon.archiving.archive import target_for
from daemon.bundle import Bundle, Finding
from daemon.configuration.config import Settings
from daemon.delivery.answers import Receipt
from daemon.delivery.deliver import Deliverer
from daemon.journal import DELIVERED, Journal, Row, now_iso
from daemon.loop import release, sentbefore, unattached
from daemon.names import stem


class Delivered:
    s: Settings
    j: Journal
    _chosen_here: set[int]  # see moves.Moves
    archive_later: Callable[[int], None] | None  # see finish.Finisher
    archive_sent: Callable[[int, Row | None], float | None]  # moves.Moves

    def outgoing_warnings(self, bundle: Bundle, bid: str) -> list[Finding]:
        name = bundle.invoice_file.name
        # Whatever the policy or command that sent it (docs/protocol.md, section 2); the
        # release, moved with the bundle, is in the processing folder beside the invoice
        # file now. Looked for only when a warning would name it (a path and an lstat).
        ids = bundle.unattached_ids
        out = list(bundle.warnings) + unattached.sent_warnings(name, ids, release.found_beside(
            bundle.invoice_file.path, self.s.share) if ids else None)
        # Which bundle sent it, when, and its folder: the warning is kept in receipt.json,
        # where sent/ alone (a journal lost) must still tell a resend from one send.
        for invoice_id, row in self.j.sent_in(list(bundle.invoice_ids), bid).items():
            out.append(sentbefore.already_sent(
                name, invoice_id, sentbefore.sent_where(row, self.s.sent_dir)))
        return out

    def _delivered(self, row_id: int, row: Row, manifest: dict[str, Any], receipt: Receipt,
                   attempts: int, deliverer: Deliverer) -> float | None:
        """The attempt that the receiver answered with its receipt: recorded, then
        archived (None) or left to the workers' next attempt of the row."""
        delivered_at = now_iso()
        record = {"manifest": manifest, "response": receipt.as_dict(), "attempts": attempts,
                  "delivered_at": delivered_at}
        if (destination := getattr(deliverer, "destination", None)) is not None:
            # This attempt's receiver (a reload may have named another since it began).
            record["delivered_to"] = destination
        # The archive folder is chosen and recorded with the receipt, in one
        # commit, durable before anything moves. Its day is the delivery's, as the
        # row's `since` once sent (moves.archive_sent), however late the move comes.
        if not (target := row.archive_dir):
            target = str(target_for(self.s.sent_dir, stem(row.invoice_file),
                                    manifest["bundle_id"], delivered_at))
            self._chosen_here.add(row_id)
        written: dict[str, Any] = {"response": record, "receipt_id": receipt.receipt_id,
                                   "last_error": None, "archive_dir": target,
                                   "attempts": attempts}
        if self.archive_later is not None and getattr(deliverer, "idempotent", False):
            # Durable only before its archive moves anything (archive_sent): until
            # then a power loss costs one more POST with the same Idempotency-Key,
            # which the receiver answers as the first time.
            self.j.transition(row_id, DELIVERED, durable=False, **written)
            self.archive_later(row_id)  # the next attempt of a delivered row archives it
            return None
        self.j.transition(row_id, DELIVERED, **written)
        # The row as this attempt wrote it (or found it): not read back.
        return self.archive_sent(row_id, replace(
            row, state=DELIVERED, bundle_id=manifest["bundle_id"], next_attempt_at=None,
            **written))
