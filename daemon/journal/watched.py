"""The journal's file watched (a part of `Journal`, as a mixin: it shares its state):
deleted or replaced under the running daemon, or damaged — found so by a statement
(guarded.Connection) or cut short (guarded.cut_short) — it is lost, and the loop's next
check() stops the daemon."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.errors import JournalLost
from daemon.journal import guarded

if TYPE_CHECKING:
    import sqlite3


class Watched:
    path: Path
    _lost: JournalLost | None
    _found_damaged: bool
    _identity: tuple[int, int] | None
    _size: int
    _look_lock: threading.Lock
    _db_fd: int | None

    def _look(self) -> os.stat_result | None:
        """The journal file by its path (None: gone)."""
        try:
            return os.stat(self.path)
        except FileNotFoundError:
            return None

    def _file_identity(self) -> tuple[int, int] | None:
        st = self._look()
        return None if st is None else (st.st_dev, st.st_ino)

    def check(self) -> None:
        """Raise JournalLost if the journal file was deleted or replaced since we opened it,
        or is damaged: found so by a statement (_damaged), or cut short (looked at when its
        size changed, guarded.cut_short: a cache and the WAL file hide that from SQLite's
        reads until a checkpoint writes their pages into a file without the rest).

        SQLite would go on writing into the deleted file and a restart would
        begin on an empty journal with no memory of what was sent; stopping
        lets the supervisor restart us on the new file, which then reads the
        sent/ receipts back first.
        """
        if self._lost is not None:
            raise self._lost
        if self._identity is None:
            return
        # One look at a time: a look that began before a checkpoint grew the file must not
        # hold its size against one that saw the growth.
        with self._look_lock:
            st = self._look()
            if st is None or (st.st_dev, st.st_ino) != self._identity:
                raise JournalLost(f"the journal {self.path} was deleted or replaced while "
                                  "outboxd was running; stopping so that the service manager "
                                  "restarts it on a fresh journal (bundles already sent are read "
                                  "back from the receipts in sent/)", reported=True)
            if st.st_size != self._size:
                fault = guarded.cut_short(str(self.path), self._db_fd, self._size, st.st_size)
                if fault is guarded.Unsure.NOW:
                    return  # the size kept as it was: this one is looked at again next time
                self._size = st.st_size
                if fault is not None:
                    raise self._damaged(fault)

    def _damaged(self, exc: sqlite3.Error) -> JournalLost:
        """The error of a statement that found the file damaged (guarded.Connection), kept:
        check() and every write raise it from now on, so that the loop stops the daemon
        at its next turn whichever thread read the damage, as for a journal deleted."""
        self._found_damaged = True
        if self._lost is None:
            self._lost = JournalLost(guarded.damaged(self.path, str(exc)), reported=True)
        return self._lost
