"""The journal's finished rows, sent or quarantined, looked up by day, by name or by
reason (a part of `Journal`, as a mixin: it shares its connection and lock): the status
page's rows of a day and their folders, a late folder's invoice file, the quarantined
rows of an invoice file or of a rule. Reads only; nothing here writes.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import TYPE_CHECKING, NamedTuple

from daemon.journal import text
from daemon.journal.records import RETRIED_DETAIL, UNREADABLE_REASONS, Row, iso_in, rows_of


class Finished(NamedTuple):
    """A finished row's columns that say where its files went (FinishedViews.folders_on)."""
    id: int
    state: str
    since: str
    invoice_file: str
    archive_dir: str | None


def _after_prefix(day: str) -> str:
    """The least string after every string that begins with `day`: `since >= day AND
    since < this` is `since` beginning with `day` (code point order, as SQLite's BINARY
    compares UTF-8), as a range the (state, since) index answers."""
    return day[:-1] + chr(ord(day[-1]) + 1)


class FinishedViews:
    _db: sqlite3.Connection
    _lock: threading.RLock

    if TYPE_CHECKING:
        # Views' method, which Journal (Rows, Views, FinishedViews, …) has: declared for
        # mypy only, so that no body of this class could ever be called in its place.
        def _light_columns(self, prefix: str = "") -> str: ...

    def finished_files(self, days: int = 7, stems: frozenset[str] | None = None
                       ) -> list[tuple[str, str, str, str | None]]:
        """(invoice_file, state, since, archive_dir) of the rows sent or quarantined in
        the last `days` days, newest first (strays.py: a late folder's invoice file). Four
        columns of the state index's rows, no JSON. With `stems`, only the names that begin
        as one does up to its first dot: its own, and few others ("S.b.xml" for "S")."""
        where, args = "", [iso_in(-days * 86400)]
        if stems is not None:  # the page's question at each refresh: not a week decoded
            where = f" AND {text.BEFORE_FIRST_DOT} IN (SELECT value FROM json_each(?))"
            args.append(json.dumps(sorted({text.stored(s).split(".")[0] for s in stems})))
        with self._lock:
            rs = self._db.execute(
                "SELECT invoice_file, state, since, archive_dir FROM bundles WHERE state IN "
                f"('sent', 'quarantined') AND since >= ?{where} ORDER BY since DESC",
                args).fetchall()
        return [(text.read(r[0]), r[1], r[2], text.read_or_none(r[3])) for r in rs]

    def finished_on(self, state: str, day: str, limit: int | None = None) -> list[Row]:
        """The rows of `state` (sent, quarantined) whose `since` begins with `day`
        (YYYY-MM-DD), the latest first (since, then id), at most `limit`: a range of the
        (state, since) index read backwards, never the whole day's rows."""
        with self._lock:
            rs = self._db.execute(
                f"SELECT {self._light_columns()} FROM bundles WHERE state = ? AND "
                "since >= ? AND since < ? ORDER BY since DESC, id DESC LIMIT ?",
                (state, day, _after_prefix(day), -1 if limit is None else limit)).fetchall()
        return rows_of(rs)

    def count_on(self, state: str, day: str) -> int:
        """How many rows of `state` have a `since` that begins with `day` (the index)."""
        with self._lock:
            return int(self._db.execute(
                "SELECT COUNT(*) FROM bundles WHERE state = ? AND since >= ? AND since < ?",
                (state, day, _after_prefix(day))).fetchone()[0])

    def folders_on(self, state: str, day: str) -> list[Finished]:
        """finished_on's rows, all of them, as the four columns a look at their folders
        needs (no JSON decoded): the status page's quarantined rows of today."""
        with self._lock:
            rs = self._db.execute(
                "SELECT id, state, since, invoice_file, archive_dir FROM bundles WHERE "
                "state = ? AND since >= ? AND since < ? ORDER BY since DESC, id DESC",
                (state, day, _after_prefix(day))).fetchall()
        return [Finished(r[0], r[1], r[2], text.read(r[3]), text.read_or_none(r[4]))
                for r in rs]

    def quarantined_folders_of(self, files: list[str]) -> dict[str, str]:
        """Of `files` (invoice files), those with a quarantined row: file -> the archive
        folder of its latest. The state index's rows, two columns, no JSON."""
        with self._lock:
            rs = self._db.execute(
                "SELECT invoice_file, archive_dir FROM bundles WHERE state = 'quarantined' "
                "AND archive_dir IS NOT NULL AND invoice_file IN (SELECT value FROM "
                "json_each(?)) ORDER BY id", (json.dumps([text.stored(f) for f in files]),)
            ).fetchall()
        return {text.read(r[0]): text.read(r[1]) for r in rs}

    def quarantined_for(self, code: str) -> list[Row]:
        """The quarantined rows with a reason of `code`, oldest first, without the
        receiver's response. Their reasons are searched for the code's JSON text: for
        `sidecar-spelling`, the page's question, a partial index holds just those rows
        (records.SCHEMA), and the terms here are its terms, written out, for SQLite to
        take it; for another code the state index narrows the search to the
        quarantined rows. The few a message merely quotes the text in are dropped.
        Rows whose reasons hold the text but cannot be read are kept (with the one
        reason UNREADABLE_REASONS), so that `check` can say it cannot tell."""
        if not code.replace("-", "").isalnum():
            raise ValueError(f"not a rule code: {code!r}")  # it goes into the SQL text
        cols = self._light_columns()
        with self._lock:
            rs = self._db.execute(
                f"SELECT {cols} FROM bundles WHERE state = 'quarantined' AND "
                f"instr(reasons, '\"code\": \"{code}\"') > 0 ORDER BY id").fetchall()
        rows = rows_of(rs)
        return [r for r in rows
                if any(x.get("code") in (code, UNREADABLE_REASONS) for x in r.reasons)]

    def retried_lately(self, days: int = 7) -> list[tuple[int, int, str | None]]:
        """The rows `outboxd retry` marked as moved back in the last `days` days (state
        `gone`, their latest detail RETRIED_DETAIL, their quarantine folder kept), each
        with the id of that mark's transition (a row quarantined again is marked anew by
        the next retry: the mark, not the row, is what a look settles) and when it was
        last quarantined (None where no transition says it): whether the retry really
        moved them is archiving/retrykilled.py's look. A range of the (state, since)
        index; each row's latest transitions by their index."""
        with self._lock:
            rs = self._db.execute(
                "SELECT b.id, m.id, (SELECT t.at FROM transitions AS t WHERE t.bundle_row "
                "= b.id AND t.to_state = 'quarantined' ORDER BY t.id DESC LIMIT 1) FROM "
                "bundles AS b JOIN transitions AS m ON m.id = (SELECT t.id FROM transitions "
                "AS t WHERE t.bundle_row = b.id ORDER BY t.id DESC LIMIT 1) WHERE b.state = "
                "'gone' AND b.since >= ? AND b.archive_dir IS NOT NULL AND m.detail = ? "
                "ORDER BY b.id",
                (iso_in(-days * 86400), text.stored(RETRIED_DETAIL))).fetchall()
        return [(int(r[0]), int(r[1]), r[2]) for r in rs]

    def came_back_after(self, bundle_id: str, mark: int) -> bool:
        """Whether a row of bundle_id was made after the transition `mark` (a retry's
        mark): the daemon took that bundle from the outbox again after the retry marked
        its quarantined row (retrykilled.py). By the bundle_id index; each row's first
        transition by its index."""
        with self._lock:
            r = self._db.execute(
                "SELECT 1 FROM bundles AS b WHERE b.bundle_id = ? AND (SELECT min(t.id) FROM "
                "transitions AS t WHERE t.bundle_row = b.id) > ? LIMIT 1",
                (bundle_id, mark)).fetchone()
        return r is not None

    def folder_taken_after(self, archive_dir: str, row_id: int) -> bool:
        """Whether a row after `row_id` has `archive_dir` as its folder: a retried bundle
        quarantined again the same day is given its old folder's path, free again
        (retrykilled.py). The rows after it by the primary key; rare: asked only of a
        retried row whose folder is there with its invoice file."""
        with self._lock:
            r = self._db.execute(
                "SELECT 1 FROM bundles WHERE id > ? AND archive_dir = ? LIMIT 1",
                (row_id, text.stored(archive_dir))).fetchone()
        return r is not None
