"""The day folders of an archive folder read back into a new journal (dayfolder.py)."""

from __future__ import annotations

from pathlib import Path

from archiving.test_readback import BID, receipt
from daemon.archiving.dayfolder import days_in_window
from daemon.archiving.readback import sent_records


def test_a_day_folder_named_for_year_one_is_read_back_not_a_crash(tmp_path: Path) -> None:
    """A share user's day folder 0001-01-01 as the only one in sent/: the window ends
    there, and a window reaching before year 1 is no OverflowError stopping every start —
    the folder is read back as any other day."""
    sent = tmp_path / "sent"
    receipt(sent / "0001-01-01" / "INV-1--abababababab", BID)
    assert days_in_window(sent, 400) == ["0001-01-01"]
    records, unusable = sent_records(sent, 400)
    assert [r["bundle_id"] for r in records] == [BID] and unusable == 0
