"""The journal: the one owner of the SQLite state database (docs/architecture.md).

Every transition is written *before* the file move or POST it announces, and
one that announces an effect is made durable before that effect: before the
call returns (the WAL file is synced; threads that commit at the same time
share one sync), or, for a receipt whose archive comes later, by
`make_durable()` before the move. After a crash the journal says what was
under way and recovery can finish it. Transitions that announce nothing
(settling, waiting, attempt counts) are committed without a sync of their
own and become durable with the next durable one (WAL order). One row per
bundle attempt; a row before the claim is keyed by its invoice file (its
content, and so its bundle id, may still change).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import fields
from pathlib import Path
from typing import Any
from urllib.parse import quote

from daemon import logs
from daemon.errors import JournalError, JournalLost
from daemon.fswrite import fsync_dir
from daemon.journal.documents import Documents
from daemon.journal.records import (
    _FIELDS,
    _JSON_FIELDS,
    _SENT_INVOICES_FROM,
    ATTEMPTING,
    CLAIMING,
    DELIVERED,
    IN_FLIGHT,
    LIVE,
    MOVING,
    QUARANTINING,
    SCHEMA,
    SHOWN_AS,
    STATES,
    VERSION,
    Row,
    decoded,
    iso_in,
    journal_time,
    now_iso,
    parse_iso,
    readable,
    seconds_until,
    shown_state,
    upgrade,
)
from daemon.journal.views import Views

_ROW_FIELDS = frozenset(f.name for f in fields(Row))

__all__ = [
    "LIVE",
    "CLAIMING",
    "DELIVERED",
    "QUARANTINING",
    "IN_FLIGHT",
    "SHOWN_AS",
    "MOVING",
    "shown_state",
    "STATES",
    "SCHEMA",
    "now_iso",
    "iso_in",
    "journal_time",
    "parse_iso",
    "readable",
    "seconds_until",
    "Row",
    "Journal",
]


class Journal(Views, Documents):
    def __init__(self, path: Path, readonly: bool = False, immutable: bool = False) -> None:
        self.path = path = Path(path)
        self._lock = threading.RLock()
        self._column_names: list[str] | None = None
        self._batch_depth = 0  # > 0: writes join the transaction batch() opened
        # Group commit: commits counted under _lock; _synced is the count the last
        # sync of the WAL file covered. One sync at a time, shared by all waiting.
        # Starts at 1: commits of an earlier process may sit in the WAL unsynced
        # (killed before its archive made its receipt durable); the first
        # make_durable() or durable commit here syncs them.
        self._committed = 1
        self._synced = 0
        self._sync_lock = threading.Lock()
        self._wal_fd: int | None = None  # kept open: a write-back error is reported to it
        self._lost: JournalLost | None = None  # a sync failed: nothing is durable any more
        self._failures = 0
        self._failing_until = 0.0  # monotonic: no write is tried before this
        self._failure = ""
        self.log = logs.get()
        self.changes = 0  # committed write transactions: the loop republishes status on change
        self._identity: tuple[int, int] | None = None  # set once the file exists
        try:
            if readonly:
                # immutable: a read-only state dir where SQLite cannot create the
                # -shm file; the daemon is not writing there, so nothing is missed.
                uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL until a write announces an effect; see _tx(durable=).
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.executescript(SCHEMA)
                self._migrate()
            self._db.row_factory = sqlite3.Row
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {path}: {exc} — check [paths] "
                               "state_dir and its permissions") from None
        self._identity = None if readonly else self._file_identity()
        if not readonly:
            # The database and its WAL file by name: synchronous=NORMAL syncs the WAL's
            # content later (see _sync), never the folder entry that makes it findable.
            with suppress(OSError):
                fsync_dir(path.parent)

    @property
    def failure(self) -> str:
        """Why writes fail now ("" while they succeed): shown beside the counts, which
        cannot change while it lasts."""
        return self._failure

    def _file_identity(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return st.st_dev, st.st_ino

    def check(self) -> None:
        """Raise JournalLost if the journal file was deleted or replaced since we opened it.

        SQLite would go on writing into the deleted file and a restart would
        begin on an empty journal with no memory of what was sent; stopping
        lets the supervisor restart us on the new file, which then reads the
        sent/ receipts back first.
        """
        if self._lost is not None:
            raise self._lost
        if self._identity is not None and self._file_identity() != self._identity:
            raise JournalLost(f"the journal {self.path} was deleted or replaced while outboxd "
                              "was running; stopping so that the service manager restarts it on "
                              "a fresh journal (bundles already sent are read back from the "
                              "receipts in sent/)", reported=True)

    def _migrate(self) -> None:
        """Bring a journal of an earlier version up to this one's schema."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version < VERSION:
            with self._tx() as db:
                upgrade(db, version)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._wal_fd is not None:
                os.close(self._wal_fd)
                self._wal_fd = None

    def _rollback(self) -> None:
        # After a failed COMMIT SQLite may already have rolled back; a second
        # ROLLBACK would fail and hide the real error ("database or disk is full").
        if self._db.in_transaction:
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _failed(self, exc: sqlite3.Error) -> JournalError:
        """Log a write failure once per kind, and back off before the next try."""
        message = (f"journal write failed: {exc} — check free space and permissions of "
                   f"[paths] state_dir ({self.path.parent})")
        self._failures += 1
        self._failing_until = time.monotonic() + min(30.0, 0.5 * 2 ** (self._failures - 1))
        if message != self._failure:
            self._failure = message
            self.log.error("journal cannot be written; retrying with back-off", error=message)
        return JournalError(message, reported=True)

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction. `durable`: it is on disk when this returns (the record
        must survive a power loss because an effect follows it); the sync that
        does that also makes every earlier commit durable, in order."""
        with self._lock:
            if self._batch_depth:
                # Inside batch(): the lock is this thread's, the transaction is open.
                yield self._db
                return
            self.check()
            if time.monotonic() < self._failing_until:
                raise JournalError(self._failure, reported=True)
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
                self.changes += 1
                self._committed += 1
                mine = self._committed
            except sqlite3.Error as exc:
                self._rollback()
                raise self._failed(exc) from None
            except BaseException:
                self._rollback()
                raise
        if durable:
            self._sync(mine)  # outside _lock: others commit meanwhile, and share the next sync
        if self._failures:
            with self._lock:
                if self._failures:
                    self.log.info("journal writable again", failures=self._failures)
                    self._failures, self._failing_until, self._failure = 0, 0.0, ""

    def _sync(self, commit: int) -> None:
        """Make commit number `commit` (and all before it) durable.

        Commits are made with synchronous=NORMAL: in WAL mode SQLite then syncs
        only at checkpoints, and a checkpoint syncs the WAL before it copies and
        the database after. So syncing the WAL file ourselves makes every commit
        written so far durable, wherever it now lies. Threads that wait here
        while a sync runs are usually covered by it and return at once.
        """
        with self._sync_lock:
            if self._lost is not None:
                raise self._lost  # a failed sync is reported once: none may pass after it
            if self._synced >= commit:
                return
            upto = self._committed  # every commit counted so far is in the WAL file
            try:
                os.fsync(self._wal())
            except OSError as exc:
                # Linux reports a lost write-back once: a retry could "succeed" with
                # the data gone. Stop instead; the next start reads what is on disk.
                self._lost = JournalLost(
                    f"the journal {self.path} could not be synced to disk "
                    f"({exc.strerror or exc}); stopping so that the service manager starts "
                    "outboxd again from what is on disk — check the disk holding [paths] "
                    "state_dir", reported=False)
                raise self._lost from None
            self._synced = max(self._synced, upto)

    def make_durable(self) -> None:
        """Every commit made so far is on disk when this returns (a commit made
        with durable=False whose effect comes later). One sync, shared as above;
        none when they are all covered already."""
        self._sync(self._committed)

    def _wal(self) -> int:
        """A descriptor of the WAL file, opened once (again only if SQLite made a new one)."""
        wal = f"{self.path}-wal"
        if self._wal_fd is not None and os.fstat(self._wal_fd).st_ino != os.stat(wal).st_ino:
            os.close(self._wal_fd)
            self._wal_fd = None
        if self._wal_fd is None:
            self._wal_fd = os.open(wal, os.O_RDONLY | os.O_CLOEXEC)
        return self._wal_fd

    @contextmanager
    def batch(self, durable: bool = True) -> Iterator[None]:
        """Several writes as one transaction: one commit, and one sync when
        durable, for all of them (claims found in one turn of the loop)."""
        with self._tx(durable):
            self._batch_depth += 1
            try:
                yield
            finally:
                self._batch_depth -= 1

    @staticmethod
    def _encode(fields: dict[str, Any]) -> dict[str, Any]:
        bad = set(fields) - set(_FIELDS)
        if bad:
            raise ValueError(f"unknown journal fields {bad}")
        return {k: json.dumps(v, ensure_ascii=False) if k in _JSON_FIELDS and v is not None
                else v for k, v in fields.items()}

    @staticmethod
    def _row(r: sqlite3.Row) -> Row:
        # Only the columns a Row has: updated_at is the journal's own, documents is read
        # through accepted_documents(), and a column a later outboxd added is its own
        # (a journal it upgraded still reads here, after going back to this version).
        return Row(**decoded({k: r[k] for k in r.keys() if k in _ROW_FIELDS}))

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
                       "VALUES (?, ?, NULL, ?, ?)", (row_id, at, state, detail))
        return row_id

    def transition(self, row_id: int, state: str, detail: str = "", durable: bool = True,
                   since: str | None = None, **fields: Any) -> None:
        """Move a row to `state` (and update fields) in one committed transaction;
        `since`: when its stretch there began, if not now (a wait going on, a delivery
        before its archive). A detail other than the row's last is recorded even in the
        same state: it says why the row is there (Finisher.recover reads it)."""
        enc = self._encode(fields)
        at = now_iso()
        sets = "".join(f", {k} = ?" for k in enc)
        with self._tx(durable) as db:
            prev = db.execute("SELECT state FROM bundles WHERE id = ?", (row_id,)).fetchone()
            if prev is None:
                raise JournalError(f"journal row {row_id} does not exist")
            # Delivering and retrying are one stretch in flight: each attempt passes
            # through both, and `since` must say how long the bundle has been failing.
            same = prev["state"] == state or {prev["state"], state} <= ATTEMPTING
            since = since or (None if same else at)
            db.execute(f"UPDATE bundles SET state = ?, since = COALESCE(?, since), "
                       f"updated_at = ?{sets} WHERE id = ?",
                       (state, since, at, *enc.values(), row_id))
            if state == DELIVERED and prev["state"] != DELIVERED:
                db.execute(_SENT_INVOICES_FROM + "b.id = ?", (row_id,))
            if prev["state"] != state or (detail and detail != self.last_detail(row_id)):
                db.execute("INSERT INTO transitions (bundle_row, at, from_state, to_state, "
                           "detail) VALUES (?, ?, ?, ?, ?)",
                           (row_id, at, prev["state"], state, detail))

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
        return self._row(r)

    def rows(self, states: tuple[str, ...]) -> list[Row]:
        marks = ", ".join("?" for _ in states)
        with self._lock:
            rs = self._db.execute(f"SELECT * FROM bundles WHERE state IN ({marks}) ORDER BY id",
                                  states).fetchall()
        return [self._row(r) for r in rs]

    def was_sent(self, bundle_id: str) -> bool:
        """Sent, or claimed and on its way: the same content again is a duplicate."""
        with self._lock:
            r = self._db.execute("SELECT 1 FROM bundles WHERE bundle_id = ? AND state IN "
                                 "('sent', ?, ?, 'delivering', 'retrying') LIMIT 1",
                                 (bundle_id, DELIVERED, CLAIMING)).fetchone()
        return r is not None

    def sent_invoice_ids(self, invoice_ids: list[str], except_bundle: str) -> list[str]:
        """Those of invoice_ids already sent in another bundle."""
        if not invoice_ids:
            return []
        marks = ", ".join("?" for _ in invoice_ids)
        with self._lock:
            # Filled when a row becomes DELIVERED: the receiver has it.
            rs = self._db.execute(f"SELECT DISTINCT invoice_id FROM sent_invoices WHERE "
                                  f"invoice_id IN ({marks}) AND bundle_id != ?",
                                  (*invoice_ids, except_bundle)).fetchall()
        sent = {r["invoice_id"] for r in rs}
        return [i for i in invoice_ids if i in sent]

    def is_empty(self) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM bundles LIMIT 1").fetchone() is None

    def import_sent(self, records: list[dict[str, Any]]) -> None:
        """Rows in state `sent` for bundles found in sent/ (a journal started afresh).

        Each record: bundle_id, invoice_file, invoice_ids, archive_dir,
        receipt_id, delivered_at. One transaction for all.
        """
        with self._tx() as db:
            for rec in records:
                at = rec.get("delivered_at") or now_iso()
                cur = db.execute(
                    "INSERT INTO bundles (bundle_id, invoice_file, invoice_ids, state, since, "
                    "archive_dir, receipt_id, updated_at) VALUES (?, ?, ?, 'sent', ?, ?, ?, ?)",
                    (rec["bundle_id"], rec["invoice_file"],
                     json.dumps(rec["invoice_ids"], ensure_ascii=False), at,
                     rec["archive_dir"], rec.get("receipt_id"), now_iso()))
                row_id = int(cur.lastrowid or 0)
                db.execute(_SENT_INVOICES_FROM + "b.id = ?", (row_id,))
                db.execute("INSERT INTO transitions (bundle_row, at, from_state, to_state, "
                           "detail) VALUES (?, ?, NULL, 'sent', 'read back from sent/')",
                           (row_id, now_iso()))
