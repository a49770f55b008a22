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

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from urllib.parse import quote

from daemon import logs
from daemon.errors import JournalError, JournalLost
from daemon.fs.fswrite import fsync_dir
from daemon.journal import guarded
from daemon.journal.beforeopen import refuse_an_emptied_file, refuse_what_is_no_file
from daemon.journal.documents import Documents
from daemon.journal.finished import FinishedViews
from daemon.journal.records import (
    CLAIMING,
    DELIVERED,
    ELSEWHERE_DETAIL,
    IN_FLIGHT,
    LIVE,
    MOVING,
    NEWS_DETAIL,
    QUARANTINING,
    RETRIED_DETAIL,
    SCHEMA,
    SHOWN_AS,
    STATES,
    VERSION,
    Row,
    iso_in,
    journal_time,
    left_of,
    mark_as_codes,
    marked_as_codes,
    now_iso,
    parse_iso,
    readable,
    seconds_until,
    shown_state,
    upgrade,
)
from daemon.journal.rows import Rows
from daemon.journal.views import Views
from daemon.journal.watched import Watched

__all__ = [
    "LIVE",
    "ELSEWHERE_DETAIL",
    "NEWS_DETAIL",
    "CLAIMING",
    "DELIVERED",
    "QUARANTINING",
    "RETRIED_DETAIL",
    "IN_FLIGHT",
    "SHOWN_AS",
    "MOVING",
    "shown_state",
    "STATES",
    "SCHEMA",
    "now_iso",
    "iso_in",
    "journal_time",
    "left_of",
    "parse_iso",
    "readable",
    "seconds_until",
    "Row",
    "Journal",
]


# How long a statement waits for a lock another process holds on the journal before it
# fails as "locked" (SQLite's busy timeout; Python's default, said here as the bound the
# commands document: docs/commands.md, How long a command waits).
BUSY_SECONDS = 5.0


def sqlite_failure(exc: sqlite3.Error, fix: str) -> str:
    """What a failed statement on the journal means, and the fix: a lock another process
    holds is no matter of free space or permissions (`fix` is what the caller would say
    else), by its primary code: SQLITE_BUSY_SNAPSHOT (517) is a lock too."""
    if guarded.primary_code(exc) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return (f"locked by another process (waited {BUSY_SECONDS:g} s for it) — a program "
                "that has it open: a sqlite3 shell, a backup, another outboxd command; let it "
                "end, then try again")
    return f"{exc} — {fix}"


class Journal(Rows, Views, FinishedViews, Documents, Watched):
    """The connection and its transactions: opened (and upgraded), group commit and
    the syncs that make a commit durable, a write failure backed off. The rows, the
    views, the finished rows' look-ups, the documents and the watch on its file
    (deleted, replaced, damaged) are its mixins."""

    def __init__(self, path: Path, readonly: bool = False, immutable: bool = False,
                 whole: bool = False, wait_for_locks: bool = True) -> None:
        """`whole`: every page read once (guarded.look_whole) before anything is written:
        the daemon's start, and `retry`'s one open before it writes; never a command that
        only reads, which must stay quick. `wait_for_locks`: a lock another process holds
        is waited for BUSY_SECONDS, else "locked" at once (a command's later looks:
        readonly.OneWait)."""
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
        # The database file, for a look at its header (Watched.check), opened once and
        # closed only after SQLite's connection: on Linux, closing any descriptor of a file
        # drops every lock the process holds on it, SQLite's too — the next writer of
        # another process (`outboxd retry`) then checkpointed and deleted the WAL file
        # under the running daemon, which stopped at its next sync.
        self._db_fd: int | None = None
        self._lost: JournalLost | None = None  # a sync failed: nothing is durable any more
        self._found_damaged = False  # then never closed (guarded.keep_unclosed)
        self._failures = 0
        self._failing_until = 0.0  # monotonic: no write is tried before this
        self._failure = ""
        self.log = logs.get()
        self.changes = 0  # committed write transactions: the loop republishes status on change
        self._identity: tuple[int, int] | None = None  # set once the file exists
        self._size = 0  # the file's size at the last look (check()): SQLite never shrinks it
        self._look_lock = threading.Lock()
        # Made by this open (a first start, or one after the journal was lost): what an
        # earlier journal knew, such as the work folders its daemon left, it cannot vouch
        # for (orphans.Orphans).
        self.afresh = False
        # Immutable, SQLite reads the file alone: no -wal, no -shm.
        refuse_what_is_no_file(path, companions=not immutable)
        refuse_an_emptied_file(path)
        busy = BUSY_SECONDS if wait_for_locks else 0.0
        try:
            if readonly:
                # immutable: a read-only state dir where SQLite cannot create the
                # -shm file; the daemon is not writing there, so nothing is missed.
                uri = f"file:{quote(str(path))}?mode=ro" + ("&immutable=1" if immutable else "")
                db = sqlite3.connect(uri, uri=True, check_same_thread=False,
                                     timeout=busy, factory=guarded.Connection)
            else:
                db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                     timeout=busy, factory=guarded.Connection)
            db.damaged = self._damaged
            self._db = db
            if whole:
                guarded.look_whole(db)
            if not readonly:
                self._db.execute("PRAGMA journal_mode=WAL")
                # NORMAL until a write announces an effect; see _tx(durable=).
                self._db.execute("PRAGMA synchronous=NORMAL")
                # A statement that moves many rows (transitions()) keeps the pages it
                # changed for its own rollback; beyond 64 KiB SQLite would spill them to
                # a temporary file in /var/tmp or /tmp, which a locked-down service may
                # not be able to write (and which costs a create and an unlink each).
                self._db.execute("PRAGMA temp_store=MEMORY")
                new = self._db.execute("SELECT 1 FROM sqlite_master WHERE name = 'bundles'"
                                       ).fetchone() is None
                self._db.executescript(SCHEMA)
                self._migrate(new)
                self.afresh = new
            self._db.row_factory = sqlite3.Row
        except JournalLost:
            # Damage met at the open of a daemon's WAL left beside the file: not
            # checkpointed into it when the connection is collected.
            guarded.keep_unclosed(db)
            raise
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {path}: " + sqlite_failure(
                exc, "check [paths] state_dir and its permissions")) from None
        self._identity = None if readonly else self._file_identity()
        with suppress(OSError):
            self._size = os.stat(path).st_size
        if not readonly:
            with suppress(OSError):
                self._db_fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW
                                      | os.O_NONBLOCK)
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

    def _migrate(self, new: bool) -> None:
        """Bring a journal of an earlier version (or a `new` one: SCHEMA lacks the
        columns upgrade adds) up to this one's schema, and say so: the admin who upgraded
        sees that it happened, once."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version < VERSION:
            with self._tx() as db:
                upgrade(db, version)
            if not new:
                self.log.info("journal upgraded", journal=str(self.path),
                              from_schema=version, to_schema=VERSION)
        elif version == VERSION and not marked_as_codes(self._db):
            # Upgraded by a build from before the mark: its rows are codes all the same.
            with self._tx() as db:
                mark_as_codes(db)
        elif version > VERSION:
            # Read on: a later outboxd that only added columns leaves it readable here
            # (records.row_of). Going back is not promised, so not done silently.
            self.log.warning(
                "journal written by a newer outboxd: this one reads the columns it knows "
                "and leaves the rest; going back to an older version is not promised — "
                "install the newer one again (the operations guide, section Upgrade, says "
                "how to go back by hand)",
                journal=str(self.path), schema=version, known_schema=VERSION)

    def can_write(self) -> None:
        """JournalError, before anything is changed, when a write cannot begin: another
        process holds the journal locked beyond BUSY_SECONDS, or SQLite may not write
        it. What a command that writes asks first: once, not after every look of its."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                self._rollback()
                raise JournalError(f"the journal {self.path} cannot be written: " + sqlite_failure(
                    exc, f"check free space and permissions of [paths] "
                    f"state_dir ({self.path.parent})")) from None

    def close(self) -> None:
        """Close the connection; one to a damaged journal is left open instead, so that
        the journal and its WAL file stay as they were found (guarded.keep_unclosed)."""
        with self._lock:
            if self._found_damaged:
                guarded.keep_unclosed(self._db)
            else:
                self._db.close()
                if self._db_fd is not None:  # after SQLite's close: its locks are gone
                    os.close(self._db_fd)
                    self._db_fd = None
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
        message = "journal write failed: " + sqlite_failure(
            exc, f"check free space and permissions of [paths] state_dir "
            f"({self.path.parent})")
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
        does that also makes every earlier commit durable, in order.

        Only a durable one looks at the journal file first (check(): a stat by
        path). One that announces nothing needs no such look before it: no effect
        follows it until a durable commit or make_durable(), which look, and the
        loop looks at each turn. Else each of the loop's and the workers' many
        small commits stats the file and hands the interpreter lock over once more."""
        with self._lock:
            if self._batch_depth:
                # Inside batch(): the lock is this thread's, the transaction is open.
                yield self._db
                return
            if durable:
                self.check()
            elif self._lost is not None:
                raise self._lost
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

    @property
    def commits(self) -> int:
        """The number of the last commit made (for durable_through)."""
        return self._committed

    def durable_through(self, commit: int) -> None:
        """Commit number `commit` (and all before it) is on disk when this returns: no
        sync when a later durable commit covered it already, else one, shared."""
        if self._synced >= commit:
            return  # read without the lock: a stale count only means _sync looks again
        self.check()
        self._sync(commit)

    def make_durable(self) -> None:
        """Every commit made so far is on disk when this returns (a commit made
        with durable=False whose effect comes later). One sync, shared as above;
        none when they are all covered already. JournalLost, before any sync, when
        the journal file was deleted or replaced: the commits it was to make durable
        (without a look of their own, see _tx) went into a file no restart reads."""
        self.check()
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
