"""The journal read by a command beside the daemon (`status`, `check`): read only.

The user running the command may not write to the state dir (an admin's account
reading the daemon's state, a read-only mount, a backup). SQLite then cannot make
the -shm file it wants for a journal in WAL mode and fails. Read as immutable (the
file as it is, without the locks that keep a reader in step with a writer), a report
may miss what a running daemon writes meanwhile, which it can afford: nothing is
written from it.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from daemon.errors import JournalError
from daemon.journal import Journal
from daemon.journal.beforeopen import refuse_an_emptied_file, refuse_what_is_no_file
from daemon.journal.views import empty_journal

T = TypeVar("T")


def _opened(path: Path, read: Callable[[Journal], T], immutable: bool,
            wait_for_locks: bool = True) -> tuple[T, Journal]:
    """read's answer and the journal it was read from, left open."""
    journal = Journal(path, readonly=True, immutable=immutable, wait_for_locks=wait_for_locks)
    try:
        return read(journal), journal
    except BaseException:
        journal.close()
        raise


def journal_there(path: Path, fix: str) -> bool:
    """Whether the journal at `path` is there, for a command beside the daemon. Raises
    JournalError (the state dir, why, and `fix`: whom to run the command as) where this
    user cannot tell: Path.exists() raises PermissionError for a state dir it may not
    enter (a clerk's account), which ended `status` and `retry` with the generic line
    about a path's permissions and disk space."""
    try:
        os.stat(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False  # as Path.exists() answers them: not there
        raise JournalError(f"cannot look into the state dir {path.parent} for the journal "
                           f"({exc.strerror or exc}); {fix}") from None
    return True


class OneWait:
    """The looks of one command at the journal (`status` takes up to three): once one
    could not read it in step with its writer (another process held it locked past
    BUSY_SECONDS, or this user cannot make its -shm file), the later ones do not wait
    for a lock again: each still tries in step, and reads the file as it is on disk at
    once if that fails, as that one did in the end — the command waits once, as
    docs/commands.md says. Not read as is outright: a lock let go meanwhile (a sqlite3
    shell ended) would leave the rest of a `check` blind to what the daemon's WAL holds
    (a bundle sent a minute ago, not yet `duplicate`)."""

    def __init__(self) -> None:
        self.held = False


def read_journal(path: Path, read: Callable[[Journal], T], wait: OneWait | None = None) -> T:
    """read(journal) on the journal opened read-only, or, where SQLite cannot open it so
    (a state dir the user may not write to), opened immutable. Raises sqlite3.Error (or
    JournalError from opening it) when neither works: each command says what that means
    to it. `wait`: the command's earlier looks' verdict (OneWait)."""
    result, journal, _ = _first_read(path, read, wait)
    journal.close()
    return result


def _first_read(path: Path, read: Callable[[Journal], T], wait: OneWait | None = None
                ) -> tuple[T, Journal, bool]:
    """read_journal's answer, the journal left open, and whether it was opened immutable."""
    # A FIFO there would block SQLite's open for good (`status` hung), a device be read:
    # refused first, whichever way it is then opened.
    refuse_what_is_no_file(path, companions=False)
    _refuse_an_empty_file(path)
    wal = f"{path}-wal"
    if not os.path.lexists(wal):
        # No daemon has it open (its last close checkpointed and removed the WAL): the
        # file alone is the journal. Read as is, so that SQLite makes no -wal and -shm
        # here, which would be this user's files in the daemon's state dir.
        try:
            result, journal = _opened(path, read, immutable=True)
        except (sqlite3.Error, JournalError):
            if not os.path.lexists(wal):
                raise
        else:
            if not os.path.lexists(wal):
                return result, journal, True
            journal.close()
        # A daemon opened it during the read: without locks, a checkpoint of its may
        # have changed the file under the read (half-written pages: "malformed", or
        # rows missed). Read again, in step with it.
    try:
        return *_opened(path, read, False, wait is None or not wait.held), False
    except (sqlite3.OperationalError, JournalError):
        # SQLite says so at the first read ("attempt to write a readonly database";
        # "database is locked" after BUSY_SECONDS) or, by the version and the files
        # already there, at the open ("unable to open").
        if wait is not None:
            wait.held = True
    return *_opened(path, read, immutable=True), True


def _refuse_an_empty_file(path: Path) -> None:
    """JournalError, before SQLite opens it, for a journal of 0 bytes: SQLite deletes the
    -wal file beside a database without pages that it opens, read-only too. A daemon's
    journal emptied under it keeps in that WAL what it wrote since its last checkpoint:
    a `status` in step with it would delete it (and then say "no such table"). One
    beside such a WAL is damaged (refuse_an_emptied_file), as the daemon's start says."""
    refuse_an_emptied_file(path)
    try:
        empty = os.stat(path).st_size == 0
    except OSError:
        return  # gone or out of reach: the open says so, as before
    if empty:
        raise JournalError(empty_journal(path))


class JournalReader:
    """read_journal for many questions of one run (`check` of a whole outbox asks one a
    bundle): the journal opened once, as read_journal opens it, until close(). Opened
    immutable, it is opened again, in step, once a daemon has opened the journal since
    (its WAL is there): a checkpoint may change the file under a read without locks."""

    def __init__(self, path: Path) -> None:
        self.path, self._wal = path, f"{path}-wal"
        self._journal: Journal | None = None
        self._immutable = False
        self._wait = OneWait()  # a journal held locked: one wait a run, not one a bundle

    def read(self, question: Callable[[Journal], T]) -> T:
        """question(journal); raises as read_journal does."""
        if self._journal is not None and not self._stale():
            result = question(self._journal)
            if not self._stale():
                return result
        self.close()
        result, self._journal, self._immutable = _first_read(self.path, question, self._wait)
        return result

    def _stale(self) -> bool:
        return self._immutable and os.path.lexists(self._wal)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None
