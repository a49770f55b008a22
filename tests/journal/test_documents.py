"""Which documents of a bundle the receiver has (daemon/journal/documents.py): the column
a journal written before ubl-embedded gains, and documents recorded and read back."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from daemon.journal import Journal


def test_old_journal_gains_the_documents_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE bundles (id INTEGER PRIMARY KEY, bundle_id TEXT,
        invoice_file TEXT NOT NULL, invoice_ids TEXT NOT NULL DEFAULT '[]', state TEXT NOT NULL,
        since TEXT NOT NULL, deadline TEXT, unattached_ids TEXT NOT NULL DEFAULT '[]',
        attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT, last_error TEXT,
        reasons TEXT NOT NULL DEFAULT '[]', work_dir TEXT, archive_dir TEXT, receipt_id TEXT,
        response TEXT, updated_at TEXT NOT NULL);
        INSERT INTO bundles (bundle_id, invoice_file, state, since, updated_at)
        VALUES ('e', 'OLD.xml', 'retrying', 'x', 'x');""")
    db.commit()
    db.close()
    j = Journal(path)
    assert j.get(1).invoice_file == "OLD.xml"
    j.accept_document("e", "k", {"status": 201})
    assert j.accepted_documents("e") == {"k": {"status": 201}}
    Journal(path)  # a second start finds the column and leaves it


def test_a_document_accepted_is_recorded_on_the_row_being_delivered_not_a_later_claim(
        journal: Journal) -> None:
    """The same content dropped again and being claimed (a later row, `claiming`) while
    the first is delivered: each document the receiver accepts is recorded on the row
    whose delivery it is, never on the claim's, which is never delivered and must not
    carry that delivery's record into its papers. A content with no row in flight has
    nothing recorded."""
    delivering = journal.create("A.xml", "delivering", bundle_id="e" * 64)
    claiming = journal.create("A.xml", "claiming", bundle_id="e" * 64)
    journal.accept_document("e" * 64, "k1", {"status": 201})
    assert journal.documents_of(delivering) == {"k1": {"status": 201}}
    assert journal.documents_of(claiming) == {}
    journal.accept_document("f" * 64, "k1", {"status": 201})
    assert journal.accepted_documents("f" * 64) == {}


def test_the_documents_of_a_content_are_its_latest_rows(journal: Journal) -> None:
    """accepted_documents(bundle id): the documents of the latest row of that content
    that has any (the one whose delivery goes on), not an earlier row's."""
    old = journal.create("A.xml", "delivering", bundle_id="e" * 64)
    journal.accept_document("e" * 64, "k1", {"status": 201})
    journal.transition(old, "quarantined")
    journal.create("A.xml", "delivering", bundle_id="e" * 64)
    journal.accept_document("e" * 64, "k2", {"status": 202})
    assert journal.accepted_documents("e" * 64) == {"k2": {"status": 202}}
