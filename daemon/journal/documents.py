"""Which documents of a bundle the receiver has (ubl-embedded, docs/einvoice.md): each
accepted document recorded on the bundle's row before the next is sent, so that a
retry or a restart sends none twice. A part of `Journal` (a mixin: it shares its
connection, lock and transactions).
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from daemon.journal import text
from daemon.journal.records import now_iso


class Documents:
    _db: sqlite3.Connection
    _lock: threading.RLock

    if TYPE_CHECKING:
        # Journal's transaction (Journal is Rows, Views, Documents): declared for mypy
        # only, so that Documents has no body of its own that could ever be called in its
        # place.
        def _tx(self, durable: bool = True
                ) -> AbstractContextManager[sqlite3.Connection]: ...

    def accepted_documents(self, bundle_id: str) -> dict[str, dict[str, Any]]:
        """Idempotency key -> record of each document of this bundle already accepted."""
        with self._lock:
            r = self._db.execute("SELECT documents FROM bundles WHERE bundle_id = ? AND "
                                 "documents IS NOT NULL ORDER BY id DESC LIMIT 1",
                                 (bundle_id,)).fetchone()
        return text.loads(r[0]) if r is not None else {}

    def documents_of(self, row_id: int) -> dict[str, dict[str, Any]]:
        """The documents this row's deliveries got accepted (not another row's of the
        same content: a duplicate dropped again has none of its own)."""
        with self._lock:
            r = self._db.execute("SELECT documents FROM bundles WHERE id = ?",
                                 (row_id,)).fetchone()
        return text.loads(r[0]) if r is not None and r[0] else {}

    def accept_document(self, bundle_id: str, key: str, record: dict[str, Any]) -> None:
        """Record one accepted document on the bundle's in-flight row, before going on."""
        with self._tx() as db:
            # Not 'claiming': a duplicate of this content being claimed meanwhile is never
            # delivered, and must not take this delivery's record into its papers.
            r = db.execute("SELECT id, documents FROM bundles WHERE bundle_id = ? AND state IN "
                           "('delivering', 'retrying') ORDER BY id DESC LIMIT 1",
                           (bundle_id,)).fetchone()
            if r is None:
                return
            docs = text.loads(r["documents"]) if r["documents"] else {}
            if docs.get(key) == record:
                return  # recorded already (a retry going over what this row has)
            docs[key] = record
            db.execute("UPDATE bundles SET documents = ?, updated_at = ? WHERE id = ?",
                       (text.dumps(docs), now_iso(), r["id"]))
