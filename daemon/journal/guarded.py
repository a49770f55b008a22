"""A damaged journal told from every other failure: the connection to SQLite whose
statements and rows turn "database disk image is malformed" and "file is not a
database" into outboxd's error (Journal._damaged: JournalLost), and the look that finds
a journal file cut short under the daemon (cut_short).

A journal file damaged under the running daemon (emptied, overwritten, a disk that
returns garbage) first shows as one such error wherever a statement happens to read a
page that is not in SQLite's cache: a write, the counts for STATUS=, the status page's
lists. Mapped at each caller, one that was missed ended the daemon with a traceback; a
write's "check free space and permissions" sent the admin the wrong way. Here no
statement can miss it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import Any, Self
from urllib.parse import quote

# SQLite's primary result codes of a damaged file (primary_code).
DAMAGE = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def damaged(path: Path, why: str) -> str:
    """What a damaged journal at `path` means, and the fix; `why`, what SQLite says."""
    return (f"the journal {path} is damaged ({why}); outboxd cannot go on with it — move "
            f"it away, with the {path.name}-wal and {path.name}-shm files beside it, and "
            "start outboxd again: it makes a new journal and reads what was sent back from "
            "the receipts in sent/ (and what waits in quarantine/) — or put in its place a "
            "backup taken with sqlite3's .backup (the operations guide, section Backup)")


def primary_code(exc: sqlite3.Error) -> int:
    """SQLite's primary result code of `exc`: Python reports the extended one
    (SQLITE_BUSY_SNAPSHOT, 517; SQLITE_CORRUPT_INDEX …), whose low byte it is."""
    return (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF


def is_damage(exc: sqlite3.Error) -> bool:
    """Whether `exc` says that the database file is damaged (not locked, full or away)."""
    return primary_code(exc) in DAMAGE


def _as_is(exc: sqlite3.Error) -> Exception:
    return exc


class Cursor(sqlite3.Cursor):
    """A cursor of Connection: its statements and its rows, damage mapped."""

    connection: Connection

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        try:
            return super().execute(sql, parameters)
        except sqlite3.DatabaseError as exc:
            raise self.connection.mapped(exc) from None

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Self:
        try:
            return super().executemany(sql, seq_of_parameters)
        except sqlite3.DatabaseError as exc:
            raise self.connection.mapped(exc) from None

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        try:
            return super().executescript(sql_script)
        except sqlite3.DatabaseError as exc:
            raise self.connection.mapped(exc) from None

    def fetchone(self) -> Any:
        try:
            return super().fetchone()
        except sqlite3.DatabaseError as exc:
            raise self.connection.mapped(exc) from None

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        try:
            return super().fetchmany(size)
        except sqlite3.DatabaseError as exc:
            raise self.connection.mapped(exc) from None

    def fetchall(self) -> list[Any]:
        try:
            return super().fetchall()
        except sqlite3.DatabaseError as exc:
            raise self.connection.mapped(exc) from None

    def __next__(self) -> Any:
        try:
            return super().__next__()
        except sqlite3.DatabaseError as exc:
            raise self.connection.mapped(exc) from None


class Connection(sqlite3.Connection):
    """sqlite3's connection whose statements raise `damaged(exc)` in place of an error
    `is_damage` tells (the journal sets it: Journal._damaged); every other error as is."""

    # A staticmethod: a plain function here would be bound to the connection, and a
    # damaged file met by a connection the journal gave no mapping of its own raised
    # TypeError instead of the error as is.
    damaged: Callable[[sqlite3.Error], Exception] = staticmethod(_as_is)

    def mapped(self, exc: sqlite3.Error) -> Exception:
        return self.damaged(exc) if is_damage(exc) else exc

    def cursor(self, factory: Any = Cursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Iterable[Any], /) -> sqlite3.Cursor:
        return self.cursor().executemany(sql, parameters)

    def executescript(self, sql_script: str, /) -> sqlite3.Cursor:
        return self.cursor().executescript(sql_script)


def keep_unclosed(db: sqlite3.Connection) -> None:
    """Leave `db`, the connection to a damaged journal, open until the process ends, its
    files as they are. SQLite's close (also the one Python makes when the connection is
    collected, at the latest as the interpreter ends) checkpoints: it copies the WAL file's
    pages into the damaged file and deletes the WAL file, the only copy of what was written
    since the last checkpoint, which the admin is told to move away with the journal.
    Python 3.11 cannot turn that checkpoint off (Connection.setconfig, 3.12), so the
    connection is never closed: one reference more than Python counts (the C API's
    Py_IncRef) keeps it from being collected. The kernel closes its files at exit, as
    after a kill -9, which SQLite is made to survive."""
    import ctypes  # here: the one use, at a stop; not a cost of every command's start

    ctypes.pythonapi.Py_IncRef(ctypes.py_object(db))


class Unsure(Enum):
    """A look that could not tell whether the journal is whole: made again at the next."""

    NOW = "cannot tell now"


def cut_short(path: str, fd: int | None, was: int, size: int
              ) -> sqlite3.Error | Unsure | None:
    """Why the journal at `path` (open at `fd`), `was` bytes at the last look and `size`
    now, is cut
    short (None: it is not; Unsure.NOW: cannot tell now). SQLite never makes it smaller
    here (no VACUUM, no auto_vacuum; a checkpoint only adds pages): smaller is cut short.
    Shorter than its header says is cut short too, or a checkpoint (another process's)
    caught half-way: a read afresh tells which."""
    if size < was:
        return sqlite3.DatabaseError(f"the file shrank from {was} to {size} bytes while "
                                     "outboxd ran")
    return None if header_fits(fd, size) else fault(path)


def header_fits(fd: int | None, size: int) -> bool:
    """Whether the database file of `size` bytes open at `fd` is as long as its own header
    says (bytes 16-17 the page size, 28-31 the pages, valid while 24-27 equals 92-95) and
    begins as an SQLite file: a cheap look, made when its size changed. Read through the
    journal's own descriptor, never one opened and closed here: closing a descriptor of
    the file would drop SQLite's locks on it (POSIX record locks are the process's)."""
    if size == 0 or fd is None:
        return True  # a new journal, all of it still in its WAL file; or no look to make
    try:
        head = os.pread(fd, 100, 0)
    except OSError:
        return True
    if len(head) < 100 or not head.startswith(b"SQLite format 3\0"):
        return False
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big") if head[24:28] == head[92:96] else 0
    return pages * page_size <= size


def look_whole(db: Connection) -> None:
    """Raise `db.damaged` (the journal's JournalLost) when SQLite's quick_check finds a
    page of the journal `db` opened damaged: a copy taken with `cp` while a daemon wrote
    it (its pages of different moments, or its WAL file of another), restored in its
    place. Its header fits, so no look at its size tells; unlooked at, the first read of
    a bad page stopped the daemon wherever it met it, mid-delivery too. Through the
    journal's own connection, its WAL file's pages included, before anything is written
    into the file. Some 0.07-0.14 s of CPU on a journal of 100,000 bundles
    (docs/operations.md, Backup): once, at the daemon's start."""
    answer = db.execute("PRAGMA quick_check(1)").fetchone()[0]
    if answer != "ok":
        raise db.damaged(not_whole(answer))


def not_whole(answer: str) -> sqlite3.Error:
    """quick_check's `answer` other than "ok" as the error it is, on one line: SQLite
    begins it with "*** in database main ***" and a line break."""
    return sqlite3.DatabaseError("SQLite's quick_check: " + " ".join(answer.split()))


def fault(path: str) -> sqlite3.Error | Unsure | None:
    """What SQLite finds wrong in the journal at `path` read afresh (its own connection:
    no page from a cache that hides a file cut short), None: it reads whole, or
    Unsure.NOW: it cannot be read now (locked, say). Never of an empty file: SQLite
    deletes the WAL file beside one it opens (the only copy of what the daemon wrote
    since its last checkpoint)."""
    try:
        if os.stat(path).st_size == 0:
            return None
    except OSError:
        return None  # gone: the identity's look says so
    try:
        # No wait for a lock: a look that cannot tell is made again at the next turn of
        # the loop, which a wait of SQLite's default 5 s would hold up each time.
        db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True, timeout=0)
    except sqlite3.Error as exc:
        return exc if is_damage(exc) else Unsure.NOW
    try:
        answer = db.execute("PRAGMA quick_check(1)").fetchone()[0]
        tables = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'bundles'").fetchone()
    except sqlite3.Error as exc:
        return exc if is_damage(exc) else Unsure.NOW  # locked or the like
    finally:
        db.close()
    if answer != "ok":
        return not_whole(answer)
    return None if tables else sqlite3.DatabaseError("its table of bundles is gone")
