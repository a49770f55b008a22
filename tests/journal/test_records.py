"""A journal row and its states (daemon/journal/records.py): the state a row is shown
in."""

from __future__ import annotations

import gc
import json
import sqlite3
from dataclasses import FrozenInstanceError, fields

import pytest

from daemon.journal import CLAIMING, DELIVERED, QUARANTINING, Journal
from daemon.journal.records import (
    UNREADABLE_IDS,
    UNREADABLE_REASONS,
    Row,
    collector_paused,
    decoded,
    journal_time,
    rows_of,
)


class TestQueries:
    def test_shown_state(self, journal: Journal) -> None:
        """A row's shown_state is the name `outboxd status` shows for its internal state."""
        assert journal.get(journal.create("a.xml", CLAIMING)).shown_state == "delivering"
        assert journal.get(journal.create("b.xml", DELIVERED)).shown_state == "delivering"
        assert journal.get(journal.create("c.xml", QUARANTINING)).shown_state == "delivering"
        assert journal.get(journal.create("e.xml", QUARANTINING, last_error="EROFS")
                           ).shown_state == "retrying"
        assert journal.get(journal.create("d.xml", "retrying")).shown_state == "retrying"


def _as_the_dataclass_builds_it(r: sqlite3.Row) -> Row:
    """The Row that Row's own __init__ makes of a database row (what row_of did before
    rows_of filled Rows without it)."""
    names = {f.name for f in fields(Row)}
    return Row(**decoded({k: r[k] for k in r.keys() if k in names}))


class TestRowsOf:
    def test_rows_of_are_the_rows_the_dataclass_makes_unreadable_json_and_all(
            self, journal: Journal) -> None:
        """rows_of (status's week of 100,000 rows) fills each Row without its __init__:
        every field is what Row(**…) gives, ids and reasons edited by hand shown as
        unreadable, a `[]` as an empty list of its own (not one shared by every row),
        and the Row stays frozen."""
        journal.create("a.xml", "sent", bundle_id="b" * 64, invoice_ids=["A-1"],
                       response={"status": 201})
        journal.create("b.xml", "held", reasons=[{"code": "empty-file", "file": "b/x.pdf",
                                                  "message": "export it again"}])
        edited = journal.create("c.xml", "waiting", unattached_ids=["C-1", "C-2"])
        journal.create("d.xml", "settling")
        with sqlite3.connect(journal.path) as db:
            db.execute("UPDATE bundles SET invoice_ids = '[1', reasons = '{}' WHERE id = ?",
                       (edited,))
        db = sqlite3.connect(journal.path)
        db.row_factory = sqlite3.Row
        try:
            rs = db.execute("SELECT * FROM bundles ORDER BY id").fetchall()
        finally:
            db.close()
        rows = rows_of(rs)
        assert rows == [_as_the_dataclass_builds_it(r) for r in rs]
        assert [r.__dict__ for r in rows] == [_as_the_dataclass_builds_it(r).__dict__
                                              for r in rs]
        assert rows[2].invoice_ids == [UNREADABLE_IDS]
        assert rows[2].reasons[0]["code"] == UNREADABLE_REASONS
        assert rows[0].unattached_ids is not rows[3].unattached_ids
        assert rows[0].reasons is not rows[3].reasons
        with pytest.raises(FrozenInstanceError):
            rows[0].state = "gone"  # type: ignore[misc]

    def test_rows_of_a_journal_before_the_later_columns_get_their_defaults(
            self, journal: Journal) -> None:
        """A journal opened read-only that predates wait_began, channel and claimed_in
        (a statement without them): rows_of gives those fields their defaults, as Row's
        __init__ does, not a Row without the attributes."""
        journal.create("a.xml", "waiting")
        db = sqlite3.connect(journal.path)
        db.row_factory = sqlite3.Row
        try:
            rs = db.execute("SELECT id, bundle_id, invoice_file, invoice_ids, state, since, "
                            "deadline, unattached_ids, attempts, next_attempt_at, "
                            "last_error, reasons, work_dir, archive_dir, receipt_id, "
                            "response FROM bundles").fetchall()
        finally:
            db.close()
        [row] = rows_of(rs)
        assert row.__dict__ == _as_the_dataclass_builds_it(rs[0]).__dict__
        assert (row.wait_began, row.channel, row.claimed_in) == (None, None, None)


    def test_reasons_without_a_file_or_message_as_text_read_as_unreadable(
            self) -> None:
        """A reason must carry code, file and message as text (what `status`, the page
        and REASON.txt show of each); a list of reasons of which one lacks its message or
        has a file that is no text (a journal edited by hand) reads as one unreadable
        reason, not as findings that would fail each reader that shows them."""
        good = {"code": "empty-file", "file": "b/x.pdf", "message": "export it again"}
        for bad in ({"code": "empty-file", "file": "b/x.pdf"},
                    {"code": "empty-file", "file": 7, "message": "export it again"}):
            text = json.dumps([good, bad])
            [reason] = decoded({"invoice_file": "b.xml", "reasons": text})["reasons"]
            assert reason["code"] == UNREADABLE_REASONS and reason["file"] == "b.xml"
        assert decoded({"invoice_file": "b.xml", "reasons": json.dumps([good])}
                       )["reasons"] == [good]

    def test_a_response_kept_as_json_null_reads_as_no_response(self) -> None:
        """A response column holding JSON `null` is no answer (None), not an answer
        that cannot be read; text that is no JSON object is said to be unreadable."""
        assert decoded({"invoice_file": "a.xml", "response": "null"})["response"] is None
        assert "unreadable" in decoded({"invoice_file": "a.xml", "response": "[1]"}
                                       )["response"]


def test_a_paper_time_that_cannot_be_a_journal_time_is_the_fallback() -> None:
    """journal_time: a paper's time as the journal writes times (UTC, 'Z'); one without a
    zone, not a time at all, or whose zone takes it past the last day datetime can hold
    in UTC (a receipt.json edited by hand) is the fallback given, never an error that
    kept its folder from being finished."""
    fallback = "2031-05-06T00:00:00.000Z"
    assert journal_time("2031-05-06T02:00:00+02:00", fallback) == fallback
    for odd in ("9999-12-31T23:59:59-23:59", "2031-05-06T00:00:00", "yesterday", None):
        assert journal_time(odd, "2030-01-01T00:00:00.000Z") == "2030-01-01T00:00:00.000Z"


def test_the_collector_is_as_it_was_after_a_pause() -> None:
    """collector_paused turns the garbage collector off while rows are built, and leaves
    it as it found it: on again after (an exception too), off where it was off."""
    was = gc.isenabled()
    try:
        gc.enable()
        with pytest.raises(KeyError), collector_paused():
            assert not gc.isenabled()
            raise KeyError("a failed read")
        assert gc.isenabled()
        gc.disable()
        with collector_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    finally:
        (gc.enable if was else gc.disable)()
