"""What the journal shows (a part of `Journal`, as a mixin: it shares its connection
and lock): the counts by state as `status` names them, the line for systemd's
STATUS=, and the rows the views list (the finished rows looked up by day, name or
reason: finished.py). Reads only; nothing here writes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.errors import JournalError
from daemon.journal import guarded, text
from daemon.journal.records import (
    BY_ANOTHER_TERMS,
    CLAIMING,
    DELIVERED,
    IN_FLIGHT,
    LIVE,
    MOVING,
    ROW_FIELDS,
    SENT_OR_GOING,
    STATES,
    Row,
    collector_paused,
    iso_of,
    row_of,
    rows_of,
    shown_state,
)


class Views:
    path: Path
    _db: sqlite3.Connection
    _lock: threading.RLock
    _column_names: list[str] | None

    if TYPE_CHECKING:
        # Rows' method, which Journal (Rows, Views, …) has: declared for mypy only, so that
        # Views has no body of its own that could ever be called in its place.
        def sent_invoice_ids(self, invoice_ids: list[str], except_bundle: str
                             ) -> list[str]: ...

    def _shown_counts(self, states: tuple[str, ...] | None = None) -> dict[str, int]:
        """Rows per state as `status` names them. The state index answers the counts;
        rows are read only for the few in the middle of a move, whose last_error tells
        retrying from delivering — a journal of years is never scanned."""
        where = ""
        args: tuple[str, ...] = ()
        if states:
            where, args = f"WHERE state IN ({', '.join('?' for _ in states)})", states
        out: dict[str, int] = {}
        with self._lock:
            totals = self._db.execute(f"SELECT state, COUNT(*) AS n FROM bundles {where} "
                                      "GROUP BY state", args).fetchall()
            marks = ", ".join("?" for _ in MOVING)
            failing = dict(self._db.execute(
                f"SELECT state, COUNT(*) FROM bundles WHERE state IN ({marks}) AND "
                "last_error IS NOT NULL GROUP BY state", MOVING).fetchall())
        for r in totals:
            err = failing.get(r["state"], 0)
            for has_error, n in ((False, r["n"] - err), (True, err)):
                if n:
                    shown = shown_state(r["state"], has_error)
                    out[shown] = out.get(shown, 0) + n
        return out

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        for shown, n in self._shown_counts().items():
            if shown in out:
                out[shown] += n
        return out

    def summary(self, at: datetime | None = None) -> dict[str, int]:
        """Counts for systemd's STATUS= line: each unfinished state, and sent today (UTC;
        `at` is now unless given). A sent row's `since` is its delivery, which names its
        day folder in sent/, so "today" counts what today's folder holds."""
        today = (at or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT00:00:00.000Z")
        out = self._shown_counts(LIVE + IN_FLIGHT)
        with self._lock:
            out["sent today"] = self._db.execute(
                "SELECT COUNT(*) FROM bundles WHERE state = 'sent' AND since >= ?",
                (today,)).fetchone()[0]
            # Settling with an error waits for a person (a file that cannot be read, a
            # marker or a copy that does not come): "not moving", as the page and `status`
            # list it, not "settling", which reads as about to move, for good.
            stuck = self._db.execute(
                "SELECT COUNT(*) FROM bundles WHERE state = 'settling' AND last_error IS NOT "
                "NULL").fetchone()[0]
        if stuck:
            out["not moving"] = stuck
            out["settling"] -= stuck
        return out

    def retrying_errors(self) -> dict[str, int]:
        """The errors of the retrying rows (state index), each with how many rows have it:
        for STATUS= to say that deliveries are paused, and why."""
        with self._lock:
            rs = self._db.execute(
                "SELECT last_error, COUNT(*) FROM bundles WHERE state = 'retrying' AND "
                "last_error IS NOT NULL GROUP BY last_error").fetchall()
        return {text.read(error): n for error, n in rs}

    def earlier_in_flight(self, row_id: int, invoice_ids: list[str]) -> Row | None:
        """The first bundle found before row `row_id` (a lower row id: the order outboxd
        first saw their invoice files) that holds one of `invoice_ids` and is claimed
        but not yet taken by the receiver: an earlier version of an invoice, which must
        reach the receiver first. Only the few rows in flight are looked at (the state
        index), their ids by json_each, in C."""
        if not invoice_ids:
            return None
        states = (CLAIMING, "delivering", "retrying")
        marks, id_marks = ", ".join("?" for _ in states), ", ".join("?" for _ in invoice_ids)
        with self._lock:
            r = self._db.execute(
                f"SELECT b.* FROM bundles AS b WHERE b.state IN ({marks}) AND b.id < ? AND "
                f"EXISTS (SELECT 1 FROM json_each(b.invoice_ids) AS j WHERE j.value IN "
                f"({id_marks})) ORDER BY b.id LIMIT 1",
                (*states, row_id, *map(text.stored, invoice_ids))).fetchone()
        return None if r is None else row_of(r)

    def recent(self, days: int = 7, at: datetime | None = None) -> list[Row]:
        """Everything not final, plus sent/quarantined of the `days` days before `at`
        (now unless given: a view that counts "today" by its own clock gives it, so that
        the rows it lists and the day it lists them for are of one clock).

        Without the receiver's response (`response` is None): it is the largest
        field, no view shows it, and the status page asks for this every 2 s.
        """
        cutoff = iso_of((at or datetime.now(UTC)) - timedelta(days=days))
        cols = self._light_columns()
        unfinished = LIVE + IN_FLIGHT
        marks = ", ".join("?" for _ in unfinished)
        with collector_paused():
            with self._lock:
                # The ids from the (state, since) index alone, then each row by its id in
                # id order: a union of the rows themselves was sorted whole in a temporary
                # b-tree (a week of 100,000 rows, 20% of this query's time).
                rs = self._db.execute(
                    f"SELECT {cols} FROM bundles WHERE id IN (SELECT id FROM bundles WHERE "
                    f"state IN ({marks}) UNION ALL SELECT id FROM bundles WHERE state IN "
                    "('sent', 'quarantined') AND since >= ?) ORDER BY id",
                    (*unfinished, cutoff)).fetchall()
            return rows_of(rs)

    def page_like_answers(self, days: int = 7, at: datetime | None = None
                          ) -> dict[int, dict[str, Any]]:
        """The receiver's answer (receipt.json's `response`) of each row sent in the
        `days` days before `at` (as `recent`) whose stored answer holds the start of an
        HTML tag a web page begins with; answers.web_page_warning decides which are
        pages. For `outboxd status`, not for the page's refresh every 2 s: it reads the
        text of the week's answers, the largest column."""
        cutoff = iso_of((at or datetime.now(UTC)) - timedelta(days=days))
        with self._lock:
            rs = self._db.execute(
                # LIKE folds ASCII case without copying each answer, as lower() did (5
                # times as fast: 0.04 s for 20,000 answers of 2 KB).
                "SELECT id, response FROM bundles WHERE state = 'sent' AND since >= ? AND "
                "(response LIKE '%<html%' OR response LIKE '%<!doctype%')",
                (cutoff,)).fetchall()
        found: dict[int, dict[str, Any]] = {}
        for row_id, response in rs:
            try:
                kept = text.loads(response)
            except (ValueError, RecursionError):
                continue  # a journal edited by hand: row_of shows it as unreadable
            answer = kept.get("response") if isinstance(kept, dict) else None
            if isinstance(answer, dict):
                found[row_id] = answer
        return found

    def unfinished(self) -> list[Row]:
        """Every row not final (the state index), in journal order, without the
        receiver's response: what the status page lists whole."""
        cols = self._light_columns()
        unfinished = LIVE + IN_FLIGHT
        with self._lock:
            rs = self._db.execute(
                f"SELECT {cols} FROM bundles WHERE state IN "
                f"({', '.join('?' for _ in unfinished)}) ORDER BY id", unfinished).fetchall()
        return rows_of(rs)

    def sent_by_others(self, ids: list[int]) -> set[int]:
        """Of the rows `ids` (a page's worth), those another daemon sharing the outbox
        sent (records.BY_ANOTHER): learnt from sent/ while this journal ran, or taken over
        and archived by the other. Not the rows read back into a journal started afresh,
        which may be this daemon's own. A lookup each in the partial index of those
        transitions, never a pass over the history."""
        if not ids:
            return set()
        with self._lock:
            rs = self._db.execute(
                f"SELECT bundle_row FROM transitions WHERE {BY_ANOTHER_TERMS} AND bundle_row "
                f"IN ({', '.join('?' for _ in ids)})", ids).fetchall()
        return {r[0] for r in rs}

    def rows_by_id(self, ids: list[int]) -> list[Row]:
        """The rows of `ids` (a page's worth: one statement), in journal order, without
        the receiver's response."""
        if not ids:
            return []
        with self._lock:
            rs = self._db.execute(
                f"SELECT {self._light_columns()} FROM bundles WHERE id IN "
                f"({', '.join('?' for _ in ids)}) ORDER BY id", ids).fetchall()
        return rows_of(rs)

    def last_row_of_files(self, days: int = 7, at: datetime | None = None) -> dict[str, int]:
        """Invoice file → the id of its latest row among the rows `recent(days, at)`
        lists, read as two columns: whether a later row has a file."""
        cutoff = iso_of((at or datetime.now(UTC)) - timedelta(days=days))
        unfinished = LIVE + IN_FLIGHT
        marks = ", ".join("?" for _ in unfinished)
        with self._lock:
            rs = self._db.execute(
                f"SELECT invoice_file, MAX(id) FROM (SELECT invoice_file, id FROM bundles "
                f"WHERE state IN ({marks}) UNION ALL SELECT invoice_file, id FROM bundles "
                "WHERE state IN ('sent', 'quarantined') AND since >= ?) GROUP BY invoice_file",
                (*unfinished, cutoff)).fetchall()
        return {text.read(r[0]): r[1] for r in rs}

    def sent_before(self, bundle_id: str) -> Row | None:
        """The latest row of this exact bundle sent or on its way (those `was_sent`
        counts), without the receiver's response: when and where, for `check` to name
        what a duplicate duplicates."""
        return self._latest_of(bundle_id, "")

    def posted_before(self, bundle_id: str) -> Row | None:
        """The latest row of this bundle id that this daemon sent, has on its way, or
        posted at least once (`attempts`) before it was quarantined, without the
        receiver's response: whose request an answer naming that id answers
        (deliver.HttpDeliverer.other_bundle). A bundle rejected after an attempt has left
        the states `sent_before` counts, but a receiver or a proxy may still hand out
        its answer."""
        return self._latest_of(bundle_id, " OR attempts > 0")

    def _latest_of(self, bundle_id: str, or_else: str) -> Row | None:
        """The latest row of bundle_id sent or on its way, or meeting `or_else` (a
        condition of our own, never a caller's text), without the receiver's response."""
        marks = ", ".join("?" for _ in SENT_OR_GOING)
        with self._lock:
            r = self._db.execute(
                f"SELECT {self._light_columns()} FROM bundles WHERE bundle_id = ? AND "
                f"(state IN ({marks}){or_else}) ORDER BY since DESC, id DESC LIMIT 1",
                (bundle_id, *SENT_OR_GOING)).fetchone()
        return None if r is None else row_of(r)

    def sent_in(self, invoice_ids: list[str], except_bundle: str) -> dict[str, Row | None]:
        """Those of invoice_ids already sent in another bundle (`sent_invoice_ids`), each
        with the latest row that sent it (None where the journal keeps no such row): for
        `check` to say when and in which bundle."""
        sent = self.sent_invoice_ids(invoice_ids, except_bundle)
        out: dict[str, Row | None] = dict.fromkeys(sent)
        if not sent:
            return out
        marks = ", ".join("?" for _ in sent)
        kept = {text.stored(i): i for i in sent}
        with self._lock:
            rs = self._db.execute(
                f"SELECT s.invoice_id AS sent_id, {self._light_columns('b.')} FROM "
                "sent_invoices AS s JOIN bundles AS b ON b.bundle_id = s.bundle_id WHERE "
                f"s.invoice_id IN ({marks}) AND s.bundle_id != ? AND b.state IN ('sent', ?) "
                "ORDER BY b.since, b.id", (*kept, except_bundle, DELIVERED)).fetchall()
        for r in rs:
            out[kept[r["sent_id"]]] = row_of(r)  # the latest last
        return out

    def _light_columns(self, prefix: str = "") -> str:
        """The columns of a Row without the receiver's response: the largest field, which
        no view shows (the status page asks for rows every 2 s). Nor the columns a Row
        has not (documents, as large for ubl-embedded; updated_at), which row_of drops."""
        return ", ".join(prefix + c for c in self._columns()
                         if c != "response" and c in ROW_FIELDS) + ", NULL AS response"

    def _columns(self) -> list[str]:
        if self._column_names is None:
            with self._lock:
                names = [r[1] for r in self._db.execute("PRAGMA table_info(bundles)")]
            if not names:
                # A file without the table (only a command's read-only open makes none):
                # the statements built of no columns said "near ",": syntax error".
                raise JournalError(_no_table(self.path))
            self._column_names = names
        return self._column_names


def _no_table(path: Path) -> str:
    """What a journal at `path` without the table of bundles is, and the fix."""
    try:
        empty = os.stat(path).st_size == 0
    except OSError:
        empty = False
    if not empty:
        return guarded.damaged(path, "it holds no table of bundles: not a journal of outboxd's")
    return empty_journal(path)


def empty_journal(path: Path) -> str:
    """What a journal file of 0 bytes at `path` is, and the fix."""
    # A daemon's journal is never 0 bytes (its first page is written as it opens it).
    return (f"the journal {path} is empty (0 bytes): emptied, or made by another program — "
            "start outboxd (again): it takes an empty journal as a new one and reads what "
            "was sent back from the receipts in sent/ (move the file away first to keep it)")
