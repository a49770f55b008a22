"""Temp files and their sweeps: a file is written under a temp name and renamed into
place; a process killed in between leaves the temp, which the next run sweeps. A
writer holds a lock (flock) on its temp until the rename, so a sweep never takes
the temp of a run still under way (two `attach` or `send` at once, two daemons
writing one status page); the kernel drops the lock of a process that dies.

The outbox may be a network share. NFS and SMB emulate flock with byte-range locks,
and an exclusive one needs the file open for writing (a read-only descriptor gets
EBADF), so a sweep opens a temp for writing where it may. Where no lock can be had at
all (an NFS mount without its lock daemon answers ENOLCK), temps are written and swept
as before the locks: a write must not fail, nor a leftover stay for good, for want of
a lock. Locks on folders (a temp folder held, a folder locked for a block) are
folderlocks.py's.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import math
import os
import re
import stat
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from daemon.errors import LockHeld
from daemon.fs.fsops import opened_if_regular
from daemon.names import fit_bytes

# What flock answers where the file system has no lock to give (NFS without lockd,
# some FUSE file systems), or none for this descriptor: the lock cannot be asked.
_NO_LOCKS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL,
                       errno.EBADF})


# The temp name is ours to choose: its NAME cut to this many bytes, so that it fits even
# beside a name at the limit.
TEMP_NAME_BYTES = 200


def temp_prefix(name: str) -> str:
    return f".{fit_bytes(name, TEMP_NAME_BYTES)}.tmp-"


_TEMP_TAIL = re.compile(r"[0-9a-f]{12}")


# A folder's entries as a listing of it already has them (name -> lstat), so that a
# sweep at start need not list a folder of 20,000 names again (scan.Listing.stats).
Listed = Mapping[str, os.stat_result]


def drop_unfinished(folder: Path, names: Iterable[str], listed: Listed | None = None) -> None:
    """Remove the temp files that write_atomic of folder/NAME left when the process was
    killed between creating and renaming them. Only names write_atomic makes are
    touched, a link is removed, never followed, a folder of such a name (never
    ours) is left alone, and so is the temp of a write still under way. `listed`: the
    folder's entries as just listed (else it is listed here)."""
    _drop_matching(folder, "|".join(re.escape(temp_prefix(n)) + _TEMP_TAIL.pattern
                                    for n in names), listed)


def drop_unfinished_ending(folder: Path, suffix: str, names: Iterable[str] = (),
                           after: str = "", listed: Listed | None = None) -> None:
    """drop_unfinished for every NAME in folder that ends with `suffix` (a kind of file
    outboxd writes in a folder people write in too, whose NAMEs come and go:
    NAME.errors.txt), or with `suffix` and then what the regular expression `after`
    matches (the copies outboxd keeps of one, NAME.errors.txt.edited), and for `names`,
    whose temp names are cut to fit (temp_prefix) and so may not end so. A clerk's file
    of a like name (`.NAME.errors.txt.notes`) is no temp of outboxd's, and stays.
    `listed` as for drop_unfinished."""
    _drop_matching(folder, "|".join([
        r"\..+" + re.escape(suffix) + after + r"\.tmp-" + _TEMP_TAIL.pattern,
        *(re.escape(temp_prefix(n)) + _TEMP_TAIL.pattern for n in names)]), listed)


def drop_unfinished_named(folder: Path, names: re.Pattern[str],
                          listed: Listed | None = None) -> None:
    """drop_unfinished for every NAME that `names` matches whole: a file outboxd writes
    whose exact name is not known at the sweep (the status page as it was named before
    it was turned off: outboxd-status….html). `listed` as for drop_unfinished."""
    _drop_matching(folder, rf"\.(?:{names.pattern})\.tmp-{_TEMP_TAIL.pattern}", listed)


_ANY_TEMP = re.compile(r"\..+\.tmp-" + _TEMP_TAIL.pattern)


def is_unfinished(name: str) -> bool:
    """Whether `name` is a temp's that write_atomic (or a writer of its pattern) makes, of
    any NAME: for a folder whose files only outboxd writes."""
    return _ANY_TEMP.fullmatch(name) is not None


def drop_unless_held(path: Path) -> None:
    """Remove the temp file at path unless its writer lives (it holds the lock:
    create_locked); a link is removed, never followed; nothing there is fine."""
    with contextlib.suppress(FileNotFoundError):
        _drop_unless_held(str(path))


def drop_stale_copies(folder: Path, name: str, middle: str) -> None:
    """Remove `.NAME.MIDDLE.tmp` (MIDDLE a regular expression: a command's own mark) that
    a command killed between writing it and renaming it to NAME left in folder, where
    its in-progress name would stay for good. Only files, never followed; the copy of
    a run still under way (its writer holds the lock, create_locked) is left alone."""
    _drop_matching(folder, re.escape(f".{name}.") + middle + r"\.tmp")


def _drop_matching(folder: Path, pattern: str, listed: Listed | None = None) -> None:
    """Unlink each entry of folder (as `listed`, else as listed now) whose whole name
    matches `pattern`, is not a folder, and is not a temp file a live writer holds (a
    link is removed, never followed)."""
    own = re.compile(pattern)
    if listed is None:
        with os.scandir(folder) as entries:
            stale = [e.name for e in entries
                     if own.fullmatch(e.name) and not e.is_dir(follow_symlinks=False)]
    else:
        stale = [name for name, st in listed.items()
                 if own.fullmatch(name) and not stat.S_ISDIR(st.st_mode)]
    for name in stale:
        drop_unless_held(folder / name)


def _drop_unless_held(path: str) -> None:
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        os.unlink(path)  # a link or a FIFO is never opened, and never a writer's temp
        return
    fd = _open_to_lock(path)
    if fd is None:
        # Another user's temp that we may not open: its lock cannot be asked, and
        # left here it would hold its bundle for good (as before the locks).
        os.unlink(path)
        return
    try:
        if os.fstat(fd).st_ino != st.st_ino:
            return  # replaced meanwhile: a new write's, which a later sweep judges
        if try_lock(fd) is False:
            return  # its writer is alive (a concurrent run of the same command)
        # Unlinked while locked: a writer that locks it now finds it gone (create_locked).
        # Where no lock can be asked, no writer could take one either.
        os.unlink(path)
    finally:
        os.close(fd)


def _open_to_lock(path: str) -> int | None:
    """path opened for an exclusive flock, never through a link, nor a FIFO or device
    put there since it was looked at (opened_if_regular): for writing where we may (NFS
    and SMB need it), else for reading (a group's temp we may only read, on a local
    disk); None if we may do neither, or if no regular file is there any more."""
    for mode in (os.O_RDWR, os.O_RDONLY):
        try:
            return opened_if_regular(path, flags=mode)[0]
        except PermissionError:
            continue
    return None


# How long a temp locked by another as it was made is tried again before it is given up.
# A clean-up (another daemon on the share, an `attach` of the same name, a `send`) holds
# one only between its lock and its unlink, an instant (on a share, one round trip);
# anyone else who may open it as long as they please. The daemon's loop writes errors
# files and the status page itself: what is waited for here is waited by every bundle.
SWEEP_HOLD_SECONDS = 0.05
# After a temp was given up as held for good, the next ones are not waited for during this
# long: a process that locks every new temp (a clerk's scanner, an attack) would otherwise
# cost the loop SWEEP_HOLD_SECONDS for each held bundle at each rescan, 1,000 of them past
# systemd's WatchdogSec. A sweep's instant falling in that window costs one rescan period.
# Kept by folder: such a process watches one (the outbox), and the loop's temps are all in
# it; the delivery workers' temps in the [delivery] target or sent/ (threads of the same
# process) still wait out a clean-up's instant there, and a locker there quiets none of
# the loop's.
HELD_FOR_GOOD_QUIET_SECONDS = 10.0
_held_for_good_at: dict[str, float] = {}  # folder -> monotonic time of its last give-up
_held_lock = threading.Lock()  # the loop and the delivery workers write temps


def create_locked(path: Path) -> int:
    """A new file at path (O_EXCL, never through a link), opened for writing and
    locked (flock) until closed: the sweeps above leave a temp alone while the
    process writing it lives, and the kernel drops the lock when it dies, even by
    SIGKILL, so its leftover is swept at the next run.

    A file made this instant is locked by another only if a sweep took it for a
    leftover (it unlinks it, then lets go: made again here) or if anyone who may open
    it (a clerk's process on this host, for a temp in the outbox) locked it first, for
    as long as they please. The lock is tried again for SWEEP_HOLD_SECONDS at most, all
    tries of this call together: a sweep's hold is over by then. Held longer, LockHeld,
    the temp removed (it is ours): the caller tries again later, under a new name.
    Waited for without that bound, it held the daemon's loop (an errors file, the status
    page) for folderlocks.LOCK_WAIT_SECONDS; given up at once, a sweep's instant made
    `attach` fail and the errors file wait a whole rescan. Within HELD_FOR_GOOD_QUIET_SECONDS of a
    give-up in the same folder, given up at once: the loop's cost stays bounded however
    many are held."""
    folder = os.path.dirname(path)
    now = time.monotonic()
    with _held_lock:
        last = _held_for_good_at.get(folder, -math.inf)
    recently = now - last < HELD_FOR_GOOD_QUIET_SECONDS
    deadline = now if recently else now + SWEEP_HOLD_SECONDS
    for _ in range(3):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o640)
        try:
            held = _lock_new(fd, deadline)
            if held is None:
                return fd  # no lock to be had here: written unlocked, as before the locks
            if held and os.fstat(fd).st_nlink:
                return fd
            if held is False and os.fstat(fd).st_nlink:
                _gave_up(folder, time.monotonic())
                unlink_if_still(path, fd)
                # Removed: `fuser -v` on its path finds nothing; `lsof +L1` lists the
                # files removed but still open, with who holds them.
                raise LockHeld(errno.EWOULDBLOCK, "locked by another process as it was made; "
                               f"not let go within {SWEEP_HOLD_SECONDS * 1000:g} ms, and "
                               "removed (`lsof +L1` names who holds it)", str(path))
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # a sweep took it between the open and the lock: make it again
    raise FileNotFoundError(errno.ENOENT, "removed by a concurrent clean-up, three times",
                            str(path))


def _gave_up(folder: str, at: float) -> None:
    """A temp in `folder` given up as held for good at `at`: the folders quiet longer
    are forgotten (one entry a folder with a give-up in the last few seconds)."""
    with _held_lock:
        for old in [f for f, t in _held_for_good_at.items()
                    if at - t >= HELD_FOR_GOOD_QUIET_SECONDS]:
            del _held_for_good_at[old]
        _held_for_good_at[folder] = at


def _lock_new(fd: int, deadline: float) -> bool | None:
    """try_lock on the file just made at fd, tried again until `deadline` (monotonic)
    while another holds it and it is still linked; False at once once it is unlinked
    (a sweep took it: the caller makes it again, no need to wait for the sweep's close)."""
    pause = 0.001
    while True:
        held = try_lock(fd)
        if held is not False or not os.fstat(fd).st_nlink:
            return held
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(pause, left))
        pause *= 2


def unlink_if_still(path: Path, fd: int) -> None:
    """Unlink path if it is still the file open at fd: a sweep may have taken it, and
    what another process put at that name since is theirs."""
    with contextlib.suppress(FileNotFoundError):
        if os.lstat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)


def try_lock(fd: int) -> bool | None:
    """An exclusive flock on fd without waiting: True if taken, False if another holds
    it, None where the file system has no lock to give (a file's or a folder's:
    folderlocks.py)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except (BlockingIOError, PermissionError):
        return False  # EACCES: how SMB (and POSIX byte-range locks) say "held"
    except OSError as exc:
        if exc.errno not in _NO_LOCKS:
            raise
        return None
    return True
