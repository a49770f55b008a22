"""What `outboxd retry` records in the journal around its moves: each bundle's
quarantined row marked retried (state `gone`, RETRIED_DETAIL, its folder kept) before
its files move, and quarantined again if they do not; the quarantine folder held locked
(flock) meanwhile, and STATE_DIR/outboxd.retried touched first, so that the daemon finds
a retry killed in between (archiving/retrykilled.py)."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.actions.retry_find import RetryRefused
from daemon.actions.retry_plan import run_as
from daemon.archiving.retrykilled import RETRIED_NAME
from daemon.configuration.config import Settings
from daemon.errors import OutboxdError
from daemon.fs.folderlocks import folder_locked
from daemon.invisible import for_terminal
from daemon.journal.readonly import journal_there

if TYPE_CHECKING:
    from daemon.journal import Journal, Row


@contextmanager
def recorded_first(settings: Settings, folder: Path) -> Iterator[None]:
    """The bundle's quarantined row marked retried (state `gone` with that detail) before
    its files move, and quarantined again if they do not: moved first, a journal write
    that then failed (locked, a full disk) left the row quarantined with no folder behind
    it for good, and `status` listed the bundle twice once it was quarantined again.
    When a journal exists; never creates a state dir. The bundle comes back as a new
    row.

    The quarantine folder is held locked (flock) from before the mark to the end of the
    moves, and the row keeps it as its archive_dir: killed in between (SIGKILL, a power
    loss), the row said "moved back" of a bundle whole in quarantine/, and `status` and
    the page left it out. The kernel ends the lock with the process; the daemon, finding
    the folder unlocked and the invoice file still in it, quarantines the row again
    (archiving/retrykilled.py), never while a retry holds it."""
    if not journal_there(settings.journal_path, run_as(settings)):
        yield
        return
    from daemon.journal import RETRIED_DETAIL, Journal
    try:
        with folder_locked(folder):
            _touch(settings.paths.state_dir / RETRIED_NAME)
            try:
                journal = Journal(settings.journal_path)
            except OutboxdError as exc:
                raise RetryRefused(f"{folder.name}: nothing was moved — {exc}") from None
            try:
                with _marked(journal, folder, RETRIED_DETAIL):
                    yield
            finally:
                journal.close()
    except BlockingIOError as exc:
        if exc.filename != str(folder):
            raise
        raise RetryRefused(f"{folder.name}: nothing was moved — the folder was "
                           f"{exc.strerror} (a process of anyone who may open it: `fuser "
                           "-v` names it) — run retry again once it ends") from None


def _touch(path: Path) -> None:
    """RETRIED_NAME made or its time set, never through a link and never opened once
    there (a FIFO or a device put in its place): what has the daemon look for rows marked
    retried (retrykilled.py). One another user made (retry run as root, then as the
    daemon's user, who may not set its time) is made anew: the daemon sees a new file.
    Failing, the daemon looks at its next start."""
    with contextlib.suppress(OSError):
        try:
            os.utime(path, follow_symlinks=False)
            return
        except PermissionError:
            os.unlink(path)
        except FileNotFoundError:
            pass
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                         | os.O_CLOEXEC, 0o640))


@contextmanager
def _marked(journal: Journal, folder: Path, detail: str) -> Iterator[None]:
    """recorded_first's mark, made under its lock: the rows quarantined in `folder` made
    `gone` with `detail`, their folder kept, and put back if the block fails."""
    marked: list[Row] = []
    try:
        for row in journal.rows(("quarantined",)):
            if row.archive_dir and Path(row.archive_dir).resolve() == folder:
                journal.transition(row.id, "gone", detail)
                marked.append(row)
    except OutboxdError as exc:
        _put_back(journal, marked)
        raise RetryRefused(f"{folder.name}: retry cannot record the move in the "
                           f"journal, so nothing was moved — {exc}") from None
    try:
        yield
    except BaseException:
        _put_back(journal, marked)
        raise


def _put_back(journal: Journal, rows: list[Row]) -> None:
    """Rows marked retried whose bundle did not move: quarantined again, as they were."""
    for row in rows:
        try:
            journal.transition(row.id, "quarantined", "retry refused: still in quarantine",
                               since=row.since, archive_dir=row.archive_dir)
        except OutboxdError as exc:
            # Its row keeps the folder: status shows it, and the daemon records it.
            print(for_terminal(f"outboxd: note: {row.invoice_file} stays in quarantine, but "
                               f"the journal could not be told so ({exc}); `outboxd status` "
                               "shows it quarantined all the same, and the daemon records "
                               "it so again at its next rescan"),
                  file=sys.stderr)
