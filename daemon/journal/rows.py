"""The rows of the journal (a part of `Journal`, as a mixin: it shares its connection,
lock and transactions): a row created and moved from state to state, each transition
recorded with why; fields updated; rows read back; what was sent (the same content
again is a duplicate; an invoice id already accepted in another bundle).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from daemon.errors import JournalError
from daemon.journal import text
from daemon.journal.records import (
    _FIELDS,
    _JSON_FIELDS,
    _SENT_INVOICES_FROM,
    ATTEMPTING,
    DELIVERED,
    SENT_OR_GOING,
    Row,
    iso_in,
    now_iso,
    row_of,
    rows_of,
)

# ATTEMPTING as SQL, for transition()'s `since`.
# Variables bound in one statement at most: SQLite before 3.32 (still shipped by some
# distributions) takes no more than 999.
SQL_VARIABLES = 500
_IN_FLIGHT_STRETCH = ", ".join(f"'{s}'" for s in sorted(ATTEMPTING))


class Rows:
    _db: sqlite3.Connection
    _lock: threading.RLock

    if TYPE_CHECKING:
        # Journal's transaction (Journal is Rows, Views, Documents): declared for mypy
        # only, so that Rows has no body of its own that could ever be called in its place.
        def _tx(self, durable: bool = True
                ) -> AbstractContextManager[sqlite3.Connection]: ...

    @staticmethod
    def _encode(fields: dict[str, Any]) -> dict[str, Any]:
        bad = set(fields) - set(_FIELDS)
        if bad:
            raise ValueError(f"unknown journal fields {bad}")
        # Every text through the journal's one mapping (text.py): a caller's name that is
        # not UTF-8 is kept, never an error of the loop.
        return {k: text.dumps(v) if k in _JSON_FIELDS and v is not None
                else text.stored(v) if isinstance(v, str) else v for k, v in fields.items()}

    def create(self, invoice_file: str, state: str, detail: str = "", durable: bool = True,
               since: str | None = None, **fields: Any) -> int:
        """A new row in `state` (since `since`, or now), with its transition from nothing."""
        fields = self._encode({"invoice_file": invoice_file, **fields})
        at = now_iso()
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self._tx(durable) as db:
            cur = db.execute(f"INSERT INTO bundles (state, since, updated_at, {cols}) "
                             f"VALUES (?, ?, ?, {marks})",
                             (state, since or at, at, *fields.values()))
            row_id = int(cur.lastrowid or 0)
            if state in ("sent", DELIVERED):
                db.execute(_SENT_INVOICES_FROM + "b.id = ?", (row_id,))
            db.execute("INSERT INTO transitions (bundle_row, at, from_state, to_state, detail) "
                       "VALUES (?, ?, NULL, ?, ?)", (row_id, at, state, text.stored(detail)))
        return row_id

    def transition(self, row_id: int, state: str, detail: str = "", durable: bool = True,
                   since: str | None = None, **fields: Any) -> None:
        """Move a row to `state` (and update fields) in one committed transaction;
        `since`: when its stretch there began, if not now (a wait going on, a delivery
        before its archive). A detail other than the row's last is recorded even in the
        same state: it says why the row is there (Finisher.recover reads it)."""
        self.transitions([(row_id, fields)], state, detail, durable, since)

    def transitions(self, rows: Sequence[tuple[int, dict[str, Any]]], state: str,
                    detail: str = "", durable: bool = True, since: str | None = None) -> None:
        """transition() of several rows to one state, each with its own values of the
        same fields, in one transaction of two statements (a batch of claims, the
        hand-over of those found unchanged): each statement hands the interpreter lock
        over and must win it back from the delivery workers. JournalError, and nothing
        written, when a row does not exist; ValueError for a row given twice (one
        UPDATE changes it once, which would read as a row that does not exist)."""
        if not rows:
            return
        if len({row_id for row_id, _ in rows}) != len(rows):
            raise ValueError("transitions() takes each row once")
        encoded = [(row_id, self._encode(fields)) for row_id, fields in rows]
        names = list(encoded[0][1])
        if any(list(enc) != names for _, enc in encoded):
            raise ValueError("transitions() takes the same fields for every row")
        at = now_iso()
        detail = text.stored(detail)
        ids = [row_id for row_id, _ in encoded]
        marks = ", ".join("?" for _ in ids)
        one = "(" + ", ".join("?" for _ in range(1 + len(names))) + ")"
        values = [v for row_id, enc in encoded for v in (row_id, *enc.values())]
        # Python's sqlite3 counts the rows changed only of a statement that begins with
        # UPDATE: the values are a table in FROM, not a WITH before it.
        sets = "".join(f", {k} = v.column{i}" for i, k in enumerate(names, start=2))
        with self._tx(durable) as db:
            # No read of the rows first: both statements compare with the state before
            # the UPDATE (the transitions are written first, and an UPDATE's expressions
            # read a row's old values). A transition is a state change, or in the same
            # state a detail other than the row's last one.
            db.execute("INSERT INTO transitions (bundle_row, at, from_state, to_state, detail) "
                       f"SELECT id, ?, state, ?, ? FROM bundles WHERE id IN ({marks}) AND CASE "
                       "WHEN state != ? THEN 1 WHEN ? = '' THEN 0 ELSE ? IS NOT "
                       "(SELECT t.detail FROM transitions AS t WHERE t.bundle_row = bundles.id "
                       "ORDER BY t.id DESC LIMIT 1) END ORDER BY id",
                       (at, state, detail, *ids, state, detail, detail))
            if state in (DELIVERED, "sent"):
                # The receiver has it: its invoice ids are sent, recorded once on the way
                # in (a row archived after `delivered` has them; one closed as sent by
                # another daemon, sentelsewhere.py, goes there from `retrying`).
                db.execute(_SENT_INVOICES_FROM + f"b.id IN ({marks}) AND b.state NOT IN "
                           "(?, 'sent')", (*ids, DELIVERED))
            # `since`: kept in the same state, and while delivering and retrying, which
            # are one stretch in flight (each attempt passes through both, and `since`
            # must say how long the bundle has been failing).
            cur = db.execute(
                "UPDATE bundles SET state = ?, since = COALESCE(?, CASE WHEN state = ? OR "
                f"(? AND state IN ({_IN_FLIGHT_STRETCH})) THEN since ELSE ? END), "
                f"updated_at = ?{sets} FROM (VALUES {', '.join([one] * len(ids))}) AS v "
                "WHERE bundles.id = v.column1",
                (state, since, state, state in ATTEMPTING, at, at, *values))
            if cur.rowcount != len(ids):
                missing = ids[0] if len(ids) == 1 else ids
                raise JournalError(f"journal row {missing} does not exist")

    def update(self, row_id: int, **fields: Any) -> None:
        """Change fields without a state change (e.g. a new deadline)."""
        enc = self._encode(fields)
        if not enc:
            return
        sets = ", ".join(f"{k} = ?" for k in enc)
        with self._tx() as db:
            db.execute(f"UPDATE bundles SET {sets}, updated_at = ? WHERE id = ?",
                       (*enc.values(), now_iso(), row_id))

    def get(self, row_id: int) -> Row:
        with self._lock:
            r = self._db.execute("SELECT * FROM bundles WHERE id = ?", (row_id,)).fetchone()
        if r is None:
            raise JournalError(f"journal row {row_id} does not exist")
        return row_of(r)

    def rows(self, states: tuple[str, ...]) -> list[Row]:
        marks = ", ".join("?" for _ in states)
        with self._lock:
            rs = self._db.execute(f"SELECT * FROM bundles WHERE state IN ({marks}) ORDER BY id",
                                  states).fetchall()
        return rows_of(rs)

    def was_sent(self, bundle_id: str) -> bool:
        """Sent, or claimed and on its way: the same content again is a duplicate."""
        marks = ", ".join("?" for _ in SENT_OR_GOING)
        with self._lock:
            r = self._db.execute(f"SELECT 1 FROM bundles WHERE bundle_id = ? AND state IN "
                                 f"({marks}) LIMIT 1", (bundle_id, *SENT_OR_GOING)).fetchone()
        return r is not None

    def in_flight(self, bundle_id: str) -> list[Row]:
        """The rows of this bundle on their way here (delivering or retrying)."""
        with self._lock:
            rs = self._db.execute("SELECT * FROM bundles WHERE bundle_id = ? AND state IN "
                                  "('delivering', 'retrying') ORDER BY id",
                                  (bundle_id,)).fetchall()
        return rows_of(rs)

    def sent_invoice_ids(self, invoice_ids: list[str], except_bundle: str) -> list[str]:
        """Those of invoice_ids already sent in another bundle."""
        if not invoice_ids:
            return []
        marks = ", ".join("?" for _ in invoice_ids)
        with self._lock:
            # Filled when a row becomes DELIVERED: the receiver has it.
            rs = self._db.execute(f"SELECT DISTINCT invoice_id FROM sent_invoices WHERE "
                                  f"invoice_id IN ({marks}) AND bundle_id != ?",
                                  (*map(text.stored, invoice_ids), except_bundle)).fetchall()
        sent = {text.read(r["invoice_id"]) for r in rs}
        return [i for i in invoice_ids if i in sent]

    def sent_elsewhere(self, rows: Iterable[Row]) -> dict[str, list[str]]:
        """Of each row (by invoice file), its invoice ids already sent in another bundle:
        sent_invoice_ids for many rows in a few statements (the status page asks for
        every waiting row at each refresh: one statement a row was 20,000 with 20,000
        waiting). Rows without such ids are left out."""
        rows = [r for r in rows if r.invoice_ids]
        ids = sorted({text.stored(i) for r in rows for i in r.invoice_ids})
        by: dict[str, set[str]] = {}
        with self._lock:
            for at in range(0, len(ids), SQL_VARIABLES):
                part = ids[at:at + SQL_VARIABLES]
                for r in self._db.execute(
                        "SELECT DISTINCT invoice_id, bundle_id FROM sent_invoices WHERE "
                        f"invoice_id IN ({', '.join('?' for _ in part)})", part):
                    by.setdefault(text.read(r["invoice_id"]), set()).add(r["bundle_id"])
        out: dict[str, list[str]] = {}
        for row in rows:
            if sent := [i for i in row.invoice_ids if by.get(i, set()) - {row.bundle_id or ""}]:
                out[row.invoice_file] = sent
        return out

    def is_empty(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM bundles LIMIT 1").fetchone() is None

    def import_sent(self, records: list[dict[str, Any]],
                    detail: str = "read back from sent/",
                    quarantined: Sequence[dict[str, Any]] = ()) -> None:
        """Rows in state `sent` for bundles found in sent/ (a journal started afresh, or
        what other daemons archived there since the last look); `detail`: the transition's,
        which tells the two apart. `quarantined`: rows in state `quarantined` for the
        bundles a journal started afresh found in quarantine/ (archiving/quarantineback.py),
        in the same transaction, so that a start killed in between reads both again.

        Each record: bundle_id, invoice_file, invoice_ids, archive_dir,
        receipt_id, delivered_at; a quarantined one: bundle_id, invoice_file,
        invoice_ids, reasons, archive_dir, since. One transaction for all.
        """
        with self._tx() as db:
            for q in quarantined:
                fields = self._encode({k: q[k] for k in ("bundle_id", "invoice_file",
                                                         "invoice_ids", "reasons",
                                                         "archive_dir")})
                cur = db.execute(
                    f"INSERT INTO bundles (state, since, updated_at, {', '.join(fields)}) "
                    f"VALUES ('quarantined', ?, ?, {', '.join('?' for _ in fields)})",
                    (q["since"], now_iso(), *fields.values()))
                db.execute("INSERT INTO transitions (bundle_row, at, from_state, to_state, "
                           "detail) VALUES (?, ?, NULL, 'quarantined', ?)",
                           (int(cur.lastrowid or 0), now_iso(), "read back from quarantine/"))
            sent_detail = text.stored(detail)
            for rec in records:
                at = rec.get("delivered_at") or now_iso()
                fields = self._encode({k: rec[k] for k in (
                    "bundle_id", "invoice_file", "invoice_ids", "archive_dir")}
                                      | {"receipt_id": rec.get("receipt_id")})
                cur = db.execute(
                    "INSERT INTO bundles (bundle_id, invoice_file, invoice_ids, state, since, "
                    "archive_dir, receipt_id, updated_at) VALUES (?, ?, ?, 'sent', ?, ?, ?, ?)",
                    (fields["bundle_id"], fields["invoice_file"], fields["invoice_ids"], at,
                     fields["archive_dir"], fields["receipt_id"], now_iso()))
                row_id = int(cur.lastrowid or 0)
                db.execute(_SENT_INVOICES_FROM + "b.id = ?", (row_id,))
                db.execute("INSERT INTO transitions (bundle_row, at, from_state, to_state, "
                           "detail) VALUES (?, ?, NULL, 'sent', ?)",
                           (row_id, now_iso(), sent_detail))

    def archived_since(self, at: str) -> list[str]:
        """The archive folders of the rows sent (or delivered, their folder named) since
        `at`: a range of the (state, since) index, a few days' rows, not every row."""
        with self._lock:
            rs = self._db.execute("SELECT archive_dir FROM bundles WHERE state IN ('sent', ?) "
                                  "AND since >= ? AND archive_dir IS NOT NULL",
                                  (DELIVERED, at)).fetchall()
        return [text.read(r[0]) for r in rs]

    def quarantined_lately(self, stems: Iterable[str], wanted: Callable[[str], bool],
                           days: int = 7) -> dict[str, str]:
        """Of the invoice files quarantined in the last `days` days (as `status` lists
        them) that `wanted` takes, those whose latest row is that quarantine: file -> its
        archive folder. `stems`: what the files wanted begin with up to their first dot
        (finished.finished_files' filter): only those names' rows are read. Two
        statements whatever the number of files: a range of the (state, since) index,
        three columns, then the latest row of each file wanted, from the oldest of their
        quarantines on (no index holds the file names: one pass over the rows after it,
        not one for each file — a busy week's journal read whole for each root file the
        page told of at each of its writes)."""
        firsts = json.dumps(sorted({text.stored(s).split(".")[0] for s in stems}))
        with self._lock:
            rs = self._db.execute(
                "SELECT id, invoice_file, archive_dir FROM bundles WHERE state = "
                "'quarantined' AND since >= ? AND archive_dir IS NOT NULL AND "
                f"{text.BEFORE_FIRST_DOT} IN (SELECT value FROM json_each(?)) ORDER BY id",
                (iso_in(-days * 86400.0), firsts)).fetchall()
            # Oldest first: a file's later quarantine takes the place of its earlier.
            latest = {r[1]: r for r in rs if wanted(text.read(r[1]))}
            if not latest:
                return {}
            last = dict(self._db.execute(
                "SELECT invoice_file, MAX(id) FROM bundles WHERE id >= ? AND invoice_file "
                "IN (SELECT value FROM json_each(?)) GROUP BY invoice_file",
                (min(r[0] for r in latest.values()), json.dumps(sorted(latest)))).fetchall())
        return {text.read(stored): text.read(folder)
                for stored, (row_id, _, folder) in latest.items() if last[stored] == row_id}

    def last_detail(self, row_id: int) -> str | None:
        """The detail of the row's latest transition (why it is in its state)."""
        with self._lock:
            # The row's own transitions by their index (records.SCHEMA), the latest
            # first. Asked at a start, for rows retrying; a reload asks the workers'
            # memory.
            r = self._db.execute("SELECT detail FROM transitions WHERE bundle_row = ? "
                                 "ORDER BY id DESC LIMIT 1", (row_id,)).fetchone()
        return None if r is None else text.read_or_none(r[0])

    def written_at(self, row_id: int) -> str | None:
        """When the row was last written (the journal's time): when a wait it holds was
        set, for a start that finds the wall clock stepped back since."""
        with self._lock:
            r = self._db.execute("SELECT updated_at FROM bundles WHERE id = ?",
                                 (row_id,)).fetchone()
        return None if r is None else r[0]
