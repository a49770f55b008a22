"""The journal: the one owner of the SQLite state database (SPEC §4).

Every transition is written *before* the file move or POST it announces, and
one that announces an effect is committed durably (synchronous=FULL), so
after a crash the journal says what was under way and recovery can finish
it. Transitions that announce nothing (settling, waiting, attempt counts)
are committed without a sync of their own and become durable with the next
durable one (WAL order). One row per bundle attempt; a row
before the claim is keyed by its invoice file (its content, and so its
bundle id, may still change).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon.errors import JournalError

# States as `outboxd status` names them, plus three short-lived internal ones
# that recovery needs to tell apart.
LIVE = ("settling", "waiting", "held")  # still in the outbox
CLAIMING = "claiming"  # being moved into processing
DELIVERED = "delivered"  # receiver accepted; not yet archived in sent/
QUARANTINING = "quarantining"  # being moved into quarantine/
IN_FLIGHT = (CLAIMING, "delivering", "retrying", DELIVERED, QUARANTINING)
SHOWN_AS = {CLAIMING: "delivering", DELIVERED: "delivering", QUARANTINING: "quarantined"}
STATES = ("settling", "waiting", "held", "delivering", "retrying", "sent", "quarantined")

SCHEMA = """
CREATE TABLE IF NOT EXISTS bundles (
    id INTEGER PRIMARY KEY,
    bundle_id TEXT,
    invoice_file TEXT NOT NULL,
    invoice_ids TEXT NOT NULL DEFAULT '[]',
    state TEXT NOT NULL,
    since TEXT NOT NULL,
    deadline TEXT,
    unattached_ids TEXT NOT NULL DEFAULT '[]',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    reasons TEXT NOT NULL DEFAULT '[]',
    work_dir TEXT,
    archive_dir TEXT,
    receipt_id TEXT,
    response TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS bundles_state ON bundles(state);
CREATE INDEX IF NOT EXISTS bundles_bundle_id ON bundles(bundle_id);
-- Invoice ids the receiver has accepted, so "already sent in another bundle"
-- is an index lookup, not a scan of every sent row.
CREATE TABLE IF NOT EXISTS sent_invoices (
    invoice_id TEXT NOT NULL,
    bundle_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_invoices_id ON sent_invoices(invoice_id);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY,
    bundle_row INTEGER NOT NULL REFERENCES bundles(id),
    at TEXT NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    detail TEXT
);
"""

_SENT_INVOICES_FROM = ("INSERT INTO sent_invoices (invoice_id, bundle_id) SELECT j.value, "
                       "b.bundle_id FROM bundles AS b, json_each(b.invoice_ids) AS j WHERE ")
_JSON_FIELDS = ("invoice_ids", "unattached_ids", "reasons", "response")
_FIELDS = ("bundle_id", "invoice_file", "invoice_ids", "deadline", "unattached_ids",
           "attempts", "next_attempt_at", "last_error", "reasons", "work_dir", "archive_dir",
           "receipt_id", "response")


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def iso_in(seconds: float) -> str:
    at = datetime.now(UTC) + timedelta(seconds=seconds)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class Row:
    id: int
    bundle_id: str | None
    invoice_file: str
    invoice_ids: list[str]
    state: str
    since: str
    deadline: str | None
    unattached_ids: list[str]
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    reasons: list[dict[str, Any]]
    work_dir: str | None
    archive_dir: str | None
    receipt_id: str | None
    response: dict[str, Any] | None

    @property
    def shown_state(self) -> str:
        return SHOWN_AS.get(self.state, self.state)


class Journal:
    def __init__(self, path: Path, readonly: bool = False) -> None:
        self.path = path
        self._lock = threading.RLock()
        self.changes = 0  # committed write transactions: the loop republishes status on change
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True,
                                           check_same_thread=False)
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

    def _migrate(self) -> None:
        """Bring a journal of an earlier version up to this one's schema."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version < 1:
            # sent_invoices is new in version 1: fill it from the rows already sent.
            with self._tx() as db:
                db.execute(_SENT_INVOICES_FROM + "state IN ('sent', ?)", (DELIVERED,))
                db.execute("PRAGMA user_version = 1")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self, durable: bool = True) -> Iterator[sqlite3.Connection]:
        """One transaction. `durable`: the commit syncs the WAL to disk (the
        record must survive a power loss because an effect follows it); that
        sync also makes every earlier non-durable commit durable, in order."""
        with self._lock:
            if durable:
                self._db.execute("PRAGMA synchronous=FULL")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
                self.changes += 1
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise JournalError(f"journal write failed: {exc}") from None
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            finally:
                if durable:
                    self._db.execute("PRAGMA synchronous=NORMAL")

    @staticmethod
    def _encode(fields: dict[str, Any]) -> dict[str, Any]:
        bad = set(fields) - set(_FIELDS)
        if bad:
            raise ValueError(f"unknown journal fields {bad}")
        return {k: json.dumps(v, ensure_ascii=False) if k in _JSON_FIELDS and v is not None
                else v for k, v in fields.items()}

    @staticmethod
    def _row(r: sqlite3.Row) -> Row:
        d = dict(r)
        for k in _JSON_FIELDS:
            d[k] = json.loads(d[k]) if d[k] is not None else None
        d.pop("updated_at", None)
        return Row(**d)

    def create(self, invoice_file: str, state: str, detail: str = "", durable: bool = True,
               **fields: Any) -> int:
        """A new row in `state`; the transition from nothing is recorded with it."""
        fields = self._encode({"invoice_file": invoice_file, **fields})
        at = now_iso()
        cols = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        with self._tx(durable) as db:
            cur = db.execute(f"INSERT INTO bundles (state, since, updated_at, {cols}) "
                             f"VALUES (?, ?, ?, {marks})", (state, at, at, *fields.values()))
            row_id = int(cur.lastrowid or 0)
            if state in ("sent", DELIVERED):
                db.execute(_SENT_INVOICES_FROM + "b.id = ?", (row_id,))
            db.execute("INSERT INTO transitions (bundle_row, at, from_state, to_state, detail) "
                       "VALUES (?, ?, NULL, ?, ?)", (row_id, at, state, detail))
        return row_id

    def transition(self, row_id: int, state: str, detail: str = "", durable: bool = True,
                   **fields: Any) -> None:
        """Move a row to `state` (and update fields) in one committed transaction."""
        enc = self._encode(fields)
        at = now_iso()
        sets = "".join(f", {k} = ?" for k in enc)
        with self._tx(durable) as db:
            prev = db.execute("SELECT state FROM bundles WHERE id = ?", (row_id,)).fetchone()
            if prev is None:
                raise JournalError(f"journal row {row_id} does not exist")
            since = at if prev["state"] != state else None
            db.execute(f"UPDATE bundles SET state = ?, since = COALESCE(?, since), "
                       f"updated_at = ?{sets} WHERE id = ?",
                       (state, since, at, *enc.values(), row_id))
            if state == DELIVERED and prev["state"] != DELIVERED:
                db.execute(_SENT_INVOICES_FROM + "b.id = ?", (row_id,))
            if prev["state"] != state:
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

    def live_row(self, invoice_file: str) -> Row | None:
        marks = ", ".join("?" for _ in LIVE)
        with self._lock:
            r = self._db.execute(f"SELECT * FROM bundles WHERE invoice_file = ? AND state IN "
                                 f"({marks}) ORDER BY id DESC LIMIT 1",
                                 (invoice_file, *LIVE)).fetchone()
        return self._row(r) if r else None

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

    def counts(self) -> dict[str, int]:
        out = dict.fromkeys(STATES, 0)
        with self._lock:
            rs = self._db.execute("SELECT state, COUNT(*) AS n FROM bundles GROUP BY state")
            for r in rs.fetchall():
                shown = SHOWN_AS.get(r["state"], r["state"])
                if shown in out:
                    out[shown] += r["n"]
        return out

    def summary(self) -> dict[str, int]:
        """Counts for systemd's STATUS= line: each unfinished state, and sent today (UTC)."""
        today = datetime.now(UTC).strftime("%Y-%m-%dT00:00:00.000Z")
        out: dict[str, int] = {}
        with self._lock:
            for r in self._db.execute("SELECT state, COUNT(*) AS n FROM bundles WHERE state "
                                      "NOT IN ('sent', 'quarantined', 'gone') GROUP BY state"):
                shown = SHOWN_AS.get(r["state"], r["state"])
                out[shown] = out.get(shown, 0) + r["n"]
            out["sent today"] = self._db.execute(
                "SELECT COUNT(*) FROM bundles WHERE state = 'sent' AND since >= ?",
                (today,)).fetchone()[0]
        return out

    def recent(self, days: int = 7) -> list[Row]:
        """Everything not final, plus sent/quarantined of the last `days` days."""
        cutoff = iso_in(-days * 86400)
        with self._lock:
            rs = self._db.execute("SELECT * FROM bundles WHERE state != 'gone' AND "
                                  "(state NOT IN ('sent', 'quarantined') OR since >= ?) "
                                  "ORDER BY id", (cutoff,)).fetchall()
        return [self._row(r) for r in rs]
