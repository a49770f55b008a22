"""bench/idle.py's reading of the status page: the backlog phase waits until the page
counts every waiting invoice, so its marker must be what the page really shows."""

from __future__ import annotations

from bench.idle import all_counted
from daemon.journal import Journal, parse_iso
from daemon.report.pagerender import render


def test_the_marker_the_backlog_waits_for_is_what_the_page_shows(journal: Journal) -> None:
    """Two invoices waiting: the page's top count is the bench's marker for 2 and not for
    another number. When the page's count changed shape ("2 Waiting", a link around it),
    the backlog phase waited out its whole limit (11 minutes with 20,000) and measured its
    idle figures without the page ever counting them."""
    for name in ("A.xml", "B.xml"):
        journal.create(name, "waiting", invoice_ids=[name[0]], unattached_ids=[name[0]])
    rows = journal.recent()
    page = render(rows, [], parse_iso(rows[0].since)).encode()
    assert all_counted(2) in page
    assert all_counted(3) not in page
