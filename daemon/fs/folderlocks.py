"""Locks on folders: a temp folder held by its writer until it is renamed into place
(hold_new_folder), so that the sweep of those a killed writer left (drop_folder_unless_held)
never takes one still being written; and a folder locked while a block reads, changes and
replaces a file in it (folder_locked). The locks are flocks, as temps.py's on files.

NFS and SMB give folders no lock of their own, so the kernel grants one that holds on
this host only; a caller that shares folders with other hosts must not count on it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

from daemon.fs.fsdepth import remove_tree
from daemon.fs.fsops import FOLDER, FOLDER_NOFOLLOW
from daemon.fs.temps import try_lock
from daemon.fs.workfolder import still_at

# What a temp folder is renamed to for its removal (drop_folder_unless_held), then 12 hex.
SET_ASIDE = ".gone-"


def hold_new_folder(path: Path) -> int:
    """A new folder at path, held (flock on the folder) until the descriptor returned is
    closed: as temps.create_locked for a file, so that drop_folder_unless_held leaves it alone
    while its writer lives. One already there that no one holds (a killed writer's) is
    removed first; BlockingIOError if a live writer holds it, or a sweep took ours from
    under us three times."""
    for _ in range(3):
        try:
            os.mkdir(path, 0o750)
        except FileExistsError:
            if not drop_folder_unless_held(path):
                break
            continue
        fd = os.open(path, FOLDER_NOFOLLOW)
        try:
            # Not waited for: who holds a folder we made this instant is a sweep that
            # took it for a leftover (it goes), or a writer that made its own there.
            held = try_lock(fd)
            if held is None or (held and still_at(path, fd)):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
    raise BlockingIOError(errno.EWOULDBLOCK, "held by another writer", str(path))


def drop_folder_unless_held(path: Path, older_than: float | None = None,
                            local_locks: bool = False) -> bool:
    """Remove the temp folder at path unless its writer lives (it holds the folder's lock:
    hold_new_folder); True if nothing is there afterwards. Where no lock can be asked
    (NFS without lockd), or `local_locks` (a network file system: a lock on a folder
    holds on this host only, a writer on another is not seen), a writer's liveness cannot
    be told: with `older_than` (seconds) only a folder untouched that long is removed,
    without it any. Anything else under a temp folder's name (a link, a file) is removed,
    never followed.

    The folder is first renamed out of the way (`NAME.gone-…`, one step), then removed:
    removed in place, a writer unseen by the lock could rename it into place half-way
    through, and the removal went on emptying the published folder. Renamed away, its
    writer finds its temp gone (still_at) and tries again."""
    try:
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode):
            os.unlink(path)
            return True
        fd = os.open(path, FOLDER_NOFOLLOW)
    except FileNotFoundError:
        return True
    try:
        held = try_lock(fd)
        if held is False:
            return False
        # A file time against the wall clock: the only clock a file's age is known by.
        if ((held is None or local_locks) and older_than is not None
                and time.time() - st.st_mtime < older_than):
            return False
        if not still_at(path, fd):
            return False  # renamed or replaced meanwhile: a later look judges the new one
        aside = path.with_name(f"{path.name}{SET_ASIDE}{os.urandom(6).hex()}")
        os.rename(path, aside)  # FileNotFoundError: its writer renamed it first
        if still_at(aside, fd):
            # Swept at the next start if this fails (SET_ASIDE); one nested deeper than
            # any of ours is refused by name (fsdepth.too_deep), as at that sweep.
            remove_tree(aside)
        elif stat.S_ISLNK(os.lstat(aside).st_mode):
            # Swapped for a link between the look above and the rename (one who may
            # write in the folder): the link goes, what it points to is never touched.
            os.unlink(aside)
        # Else another folder put there meanwhile: not emptied here, but as every
        # SET_ASIDE folder, by the next start (only one who may delete in it moves one).
        return True
    except FileNotFoundError:
        return True
    finally:
        os.close(fd)


@contextlib.contextmanager
def folder_locked(folder: Path | int) -> Iterator[None]:
    """Hold an exclusive lock (flock) on folder itself while the block runs, so that
    two runs of a command that read, change and replace a file in it (`attach` and
    its attachments.toml) take turns. On NFS and SMB the lock holds on this host only
    (see the module's docstring), and where none can be had the block runs unlocked,
    as before; one held longer than LOCK_WAIT_SECONDS is BlockingIOError. `folder` an
    int: the folder open at that descriptor (opened again, so that the lock ends with
    the block)."""
    fd = (os.open(f"/proc/self/fd/{folder}", FOLDER)
          if isinstance(folder, int) else
          os.open(folder, FOLDER_NOFOLLOW))
    try:
        _wait_for_lock(fd, os.readlink(f"/proc/self/fd/{fd}"))
        yield
    finally:
        os.close(fd)  # drops the lock


# How long a lock is waited for at most. Those who hold one of ours are another run of
# the same step (an attach's check and rename, a retry's moves) or a sweep, for an
# instant; but anyone who may open the file or folder may flock it too (a clerk's
# account on this host, for a sidecar, a temp in the outbox, quarantine/), and a wait
# without end left `attach`, `retry` (an ERP's scheduler runs them) or the daemon
# hanging for as long as that one pleased.
LOCK_WAIT_SECONDS = 120.0


def _wait_for_lock(fd: int, path: str | Path) -> bool:
    """An exclusive flock on fd, waited for up to LOCK_WAIT_SECONDS (BlockingIOError
    naming `path` after that); False where the file system has none."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    pause = 0.005
    while True:
        held = try_lock(fd)
        if held is not False:
            return held is True
        left = deadline - time.monotonic()
        if left <= 0:
            raise BlockingIOError(errno.EWOULDBLOCK, f"held locked by another process for "
                                  f"{LOCK_WAIT_SECONDS:g} s", str(path))
        time.sleep(min(pause, left))
        pause = min(pause * 2, 0.25)
