"""The journal's file looked at before SQLite opens it (for the daemon's `Journal` and
the read-only readers of `readonly.py`): what SQLite would open wrongly, or whose open
would lose what it holds, is refused with the fix, naming the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from daemon.errors import JournalError
from daemon.fs.fsops import kind_of
from daemon.journal import guarded


def refuse_what_is_no_file(path: Path, companions: bool) -> None:
    """JournalError when the journal at `path` (or, with `companions`, its -wal or -shm
    file, which SQLite opens beside it) is there as something other than a file. SQLite
    opens each read-write: a FIFO there is opened (its open does not wait, a read of it
    would) and ends in "disk I/O error — check permissions", a device would be written."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = stat.S_IFREG  # gone or out of reach: SQLite's open says so, as before
    if not stat.S_ISREG(mode):
        raise JournalError(f"the journal {path} is a {kind_of(mode)}, not a file — move it "
                           "away (outboxd starts a new journal and reads what was sent back "
                           "from the receipts in sent/)")
    for companion in (f"{path}-wal", f"{path}-shm") if companions else ():
        try:
            mode = os.lstat(companion).st_mode
        except OSError:
            continue
        if not stat.S_ISREG(mode):
            raise JournalError(f"{companion}, a file SQLite keeps beside the journal, is a "
                               f"{kind_of(mode)} — move it away; it holds nothing of the "
                               "journal (SQLite makes the file again)")


def refuse_an_emptied_file(path: Path) -> None:
    """JournalError, before SQLite opens it, for a journal of 0 bytes beside a -wal file
    that holds something: SQLite deletes the WAL beside a database without pages that it
    opens (read-only too), and that WAL is all the daemon wrote since its last
    checkpoint. Such a pair is what a journal emptied under its daemon leaves (the daemon
    stops, keeping both); a restart that opened it began afresh without those rows. A
    0-byte file with no WAL, or an empty one, holds nothing to lose: a new journal."""
    try:
        if os.stat(path).st_size != 0:
            return
        wal = os.lstat(f"{path}-wal")
    except OSError:
        return  # gone or out of reach (the open says so), or no WAL beside it
    if stat.S_ISREG(wal.st_mode) and wal.st_size > 0:
        raise JournalError(guarded.damaged(path, f"0 bytes, beside a {path.name}-wal file "
                                                 f"of {wal.st_size:,} bytes that holds "
                                                 "its last writes"))
