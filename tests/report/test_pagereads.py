"""What the status page reads of the journal to tell root files left alone where the
invoice file they are named after went (journal/rows.py quarantined_lately): the rows of
those names only, in statements that do not grow with their number — not a busy week's
journal read once for each such file at each write of the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import Page, write

from daemon.configuration.config import Settings
from daemon.journal import Journal
from daemon.report.statuspage import StatusPage
from daemon.watching.leftalone import not_an_invoice

BUSY = 3000  # rows of a busy week: quarantined, then sent, of other names


@pytest.fixture
def journal(tmp_path: Path) -> Any:
    j = Journal(tmp_path / "j.sqlite3")
    yield j
    j.close()


class _Counted:
    """The journal's connection, counting its statements and the rows they hand back."""

    def __init__(self, db: Any) -> None:
        self.db, self.rows, self.statements = db, 0, 0

    def execute(self, *args: Any) -> Any:
        self.statements += 1
        return _Cursor(self, self.db.execute(*args))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


class _Cursor:
    def __init__(self, counted: _Counted, cur: Any) -> None:
        self.counted, self.cur = counted, cur

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self.cur.fetchall()
        self.counted.rows += len(rows)
        return rows

    def fetchone(self) -> Any:
        row = self.cur.fetchone()
        self.counted.rows += row is not None
        return row

    def __iter__(self) -> Any:
        for row in self.cur:
            self.counted.rows += 1
            yield row

    def __getattr__(self, name: str) -> Any:
        return getattr(self.cur, name)


def _busy_week(journal: Journal, tmp_path: Path, stems: list[str]) -> None:
    """`stems`' invoice files quarantined three days ago, their folders in quarantine/;
    after them BUSY quarantined and BUSY sent rows of other names (one statement each)."""
    day = tmp_path / "quarantine" / "2026-12-04"
    ago = (datetime.now(UTC) - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for s in stems:
        f = write(day / f"{s}--{'a' * 12}" / f"{s}.xml", b"<Invoice/>")
        journal._db.execute(
            "INSERT INTO bundles (invoice_file, state, since, updated_at, archive_dir) "
            "VALUES (?, 'quarantined', ?, ?, ?)", (f.name, ago, ago, str(f.parent)))
    later = (datetime.now(UTC) - timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    for state in ("quarantined", "sent"):
        journal._db.executemany(
            "INSERT INTO bundles (invoice_file, state, since, updated_at, archive_dir) "
            f"VALUES (?, '{state}', ?, ?, ?)",
            [(f"Z{state[0]}-{i}.xml", later, later, f"/{state}/Z-{i}") for i in range(BUSY)])
    journal._db.commit()


def _refresh(journal: Journal, outbox: Path, names: list[str],
             monkeypatch: pytest.MonkeyPatch) -> tuple[_Counted, dict[str, str]]:
    """A write of the page with `names` left alone in the outbox: what it read, and what
    it says of each name."""
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    other = not_an_invoice(settings.outbox.invoice_patterns)
    counted = _Counted(journal._db)
    with monkeypatch.context() as m:
        m.setattr(journal, "_db", counted)
        assert StatusPage().refresh(journal, settings, refused=dict.fromkeys(names, other))
    rows = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8")).rows["refused"]
    return counted, dict(r.split("\t", 1) for r in rows)


def test_the_page_reads_the_rows_of_the_names_it_tells_in_statements_that_do_not_grow(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Four root files, each named like an invoice file quarantined this week
    (INV-Q1.tif …), on a journal whose week holds thousands of other rows after those
    quarantines. Each is told where its invoice file went, as before; the page's write
    reads the same number of statements as for one such file, and a few rows, not the
    week's quarantined rows. It read every quarantined row of the week, then, for each
    such file, one statement reading every row after its quarantine — at each write of
    the page while the files were left there."""
    stems = ["INV-Q1", "INV-Q2", "INV-Q3", "INV-Q4"]
    _busy_week(journal, tmp_path, stems)
    outbox = tmp_path / "outbox"
    for s in stems:
        write(outbox / f"{s}.tif", b"x")
    _refresh(journal, outbox, ["INV-Q1.tif"], monkeypatch)  # what a first write reads once
    one, said = _refresh(journal, outbox, ["INV-Q1.tif"], monkeypatch)
    assert "INV-Q1.xml, the invoice file named like it, was quarantined" in said["INV-Q1.tif"]
    four, said = _refresh(journal, outbox, [f"{s}.tif" for s in stems], monkeypatch)
    for s in stems:
        assert f"{s}.xml, the invoice file named like it, was quarantined (in " \
            f"quarantine/2026-12-04/{s}--aaaaaaaaaaaa)" in said[f"{s}.tif"]
    assert four.statements == one.statements
    assert four.rows < 50, four.rows
