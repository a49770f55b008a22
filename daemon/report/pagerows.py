"""Which journal rows the status page lists (statuspage.py): read by the (state, since)
index, so a busy day's thousands of sent and quarantined bundles are counted, not read and
decoded at every refresh."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from daemon.journal import Journal, Row
from daemon.report.pagerender import FINISHED_SHOWN
from daemon.watching.leftalone import MovedBackToday


def page_rows(journal: Journal, now: datetime, today: str, outbox: Path,
              moved_back: MovedBackToday) -> tuple[list[Row], dict[str, int], set[int]]:
    """The rows the page lists, in journal order: every unfinished one, and of today's
    sent and quarantined the latest FINISHED_SHOWN; with how many more of those two
    there are (render's `more`), and which of the sent ones another daemon sent
    (render's `sent_by_others`). A busy day's thousands are counted by the index, not
    read and decoded at every refresh. Quarantined ones moved back by hand are left out
    of both, as still_quarantined leaves them out of the 24 hours' rows: that takes a
    look at the folders of the ones listed, and of a bounded few of the others in turn
    (`moved_back`), by four columns of their rows."""
    quarantined = journal.folders_on("quarantined", today)
    gone = moved_back(quarantined, today, outbox,
                      lambda: journal.last_row_of_files(days=1, at=now), FINISHED_SHOWN)
    kept = [r.id for r in quarantined if r.id not in gone]  # the latest first
    sent = journal.finished_on("sent", today, FINISHED_SHOWN)
    rows = journal.unfinished() + sent + journal.rows_by_id(kept[:FINISHED_SHOWN])
    rows.sort(key=lambda r: r.id)
    more = {"sent": max(0, journal.count_on("sent", today) - FINISHED_SHOWN),
            "quarantined": max(0, len(kept) - FINISHED_SHOWN)}
    return rows, more, journal.sent_by_others([r.id for r in sent])
