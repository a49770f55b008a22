"""Reading sent/ back into a fresh journal (SPEC §4: a lost journal costs no second
sending)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from daemon.journal import Journal
from daemon.readback import restore_sent, sent_records

BID = "ab" * 32


def receipt(folder: Path, bid: str, name: str = "INV-1.xml") -> Path:
    folder.mkdir(parents=True)
    (folder / "receipt.json").write_text(json.dumps({
        "manifest": {"bundle_id": bid, "invoice_file": {"name": name, "original_name": name},
                     "invoices": [{"id": "INV-1", "attachments": []}]},
        "response": {"status": 201, "receipt_id": "r-1"}, "attempts": 1,
        "delivered_at": "2026-01-01T00:00:00.000Z"}))
    return folder


def day(offset: int) -> str:
    return (datetime.now(UTC) - timedelta(days=offset)).strftime("%Y-%m-%d")


def test_fresh_journal_learns_every_receipt_in_the_window(tmp_path: Path) -> None:
    """Receipts within duplicate_window_days are recorded as sent; older date folders,
    .partial copies and entries without a receipt are not."""
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    receipt(sent / day(30) / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")
    receipt(sent / day(500) / "INV-3--efefefefefef", "ef" * 32, "INV-3.xml")
    receipt(sent / day(0) / ".INV-4--000000000000.partial", "00" * 32)
    (sent / day(0) / "no-receipt").mkdir()
    records, unusable = sent_records(sent, 400)
    assert sorted(r["bundle_id"] for r in records) == [BID, "cd" * 32]
    assert unusable == 1
    j = Journal(tmp_path / "j.sqlite3")
    try:
        assert restore_sent(j, sent, 400) == 2
        assert j.was_sent(BID) and j.was_sent("cd" * 32) and not j.was_sent("ef" * 32)
        assert restore_sent(j, sent, 400) == 0  # only on an empty journal
    finally:
        j.close()


def test_missing_sent_folder_is_nothing_to_read(tmp_path: Path) -> None:
    assert sent_records(tmp_path / "nope", 400) == ([], 0)
