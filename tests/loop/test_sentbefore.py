"""What was sent before, as the warning and the quarantine reason word it
(daemon/loop/sentbefore.py)."""

from __future__ import annotations

from pathlib import Path

from daemon.loop.sentbefore import already_sent, sent_where


def test_an_invoice_id_sent_in_a_bundle_the_journal_keeps_no_row_of_is_told_without_one(
        tmp_path: Path) -> None:
    """The journal knows the invoice id was sent (its sent_invoices) but has no row of
    the bundle that sent it in a sent or delivered state (Journal.sent_in answers None
    for it): the manifest's
    warning says it was already sent in another bundle, and names no bundle, time or
    folder rather than an empty "()"."""
    finding = already_sent("INV-7.xml", "INV-7", sent_where(None, tmp_path / "sent"))
    assert finding.line().endswith("invoice INV-7 was already sent in another bundle")
    assert "()" not in finding.line()
