"""One daemon per state dir, and a way for `status` to tell whether one is running.

The running daemon holds an exclusive lock (flock) on STATE_DIR/outboxd.pid, which
holds its process id. A second `outboxd run` on the same state dir — an admin trying
the configuration in a shell while the service runs — stops with a line naming the
first, instead of sharing its journal: both would recover, post and archive the same
in-flight rows. The lock goes with the process, however it ends; the file stays.

`status` asks without waiting (a shared lock, taken and given back at once) and says
when no daemon holds it, so that counts a stopped daemon left are not read as live.
Within one process the lock is counted, not taken twice: a test that starts the
daemon again in its own process is one daemon.

Whether the daemon holding it is up and serving, or still starting (a start that waits
on a share that hangs, one systemd keeps restarting): once it holds the lock it makes
STATE_DIR/outboxd.starting, and at READY=1 STATE_DIR/outboxd.ready in its place (each
holds its process id); the stop removes both. A mark counts only when it names the
process that holds the lock: a daemon of a build before these marks (still running
between an upgrade and its restart, or started again after going back) makes neither
and may find one a killed daemon left, and was read as "not ready yet" — nothing sent —
while it sent; it is read as cannot be told. When it started is the lock file's mtime
(its process id written then). Not a line in outboxd.pid, which scripts read as a bare
process id.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from pathlib import Path

from daemon.errors import OutboxdError
from daemon.fs.fsops import kind_of

LOCK_NAME = "outboxd.pid"
READY_NAME = "outboxd.ready"
STARTING_NAME = "outboxd.starting"
# A `status` holds its shared lock for a moment: a start that meets it tries again.
TAKE_SECONDS = 2.0

_held: dict[Path, tuple[int, int]] = {}  # lock file -> (fd, how many hold it here)


class StateDirTaken(OutboxdError):
    """Another outboxd runs with this state dir."""


def _pid_in(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode("ascii").strip())
    return None


def hold(state_dir: Path) -> None:
    """Take the state dir for this process; StateDirTaken if another process has it."""
    path = state_dir / LOCK_NAME
    if path in _held:
        fd, count = _held[path]
        _held[path] = (fd, count + 1)
        return
    _refuse_what_is_no_file(path)
    # Non-blocking as well: a FIFO put there between the look and the open is not waited on.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                 0o640)
    deadline = time.monotonic() + TAKE_SECONDS
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() < deadline:
                time.sleep(0.05)
                continue
            pid = _pid_in(fd)
            os.close(fd)
            raise StateDirTaken(
                f"another outboxd{f' (process {pid})' if pid else ''} runs with the state "
                f"dir {state_dir} ({path} is locked) — stop it first, or give this one its "
                "own [paths] state_dir") from None
        except OSError:
            os.close(fd)
            raise
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except OSError as exc:  # a full state dir: this start ends here, the lock with it
        os.close(fd)
        # Written through a descriptor, the error names no file: the admin's line must
        # say which disk is full (`run` exits 1 with it, and systemd tries again).
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    _held[path] = (fd, 1)
    # A ready mark a daemon before this one left (killed): this one is not ready yet.
    try:
        os.unlink(state_dir / READY_NAME)
    except FileNotFoundError:
        pass
    except OSError:
        release(state_dir)
        raise
    # Not a reason to stop the start (a full state dir: the daemon waits for room): then
    # `status` cannot tell, and says neither ready nor starting.
    with contextlib.suppress(OSError):
        _mark(state_dir / STARTING_NAME)


def _mark(path: Path) -> None:
    """A mark of this process (its id) at `path`, replacing what is there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
                 | os.O_NONBLOCK, 0o640)
    try:
        os.write(fd, f"{os.getpid()}\n".encode("ascii"))
    finally:
        os.close(fd)


def mark_ready(state_dir: Path) -> None:
    """READY=1 said: recorded for `status` (OSError where it cannot be written)."""
    if state_dir / LOCK_NAME not in _held:
        return
    _mark(state_dir / READY_NAME)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(state_dir / STARTING_NAME)


def readiness(state_dir: Path) -> tuple[bool | None, float | None]:
    """For a daemon running() says holds the state dir: whether it said READY=1 (None:
    cannot be told — no mark names it: a daemon of an older build), and when it started
    (wall clock, seconds; None: not known)."""
    try:
        started: float | None = os.lstat(state_dir / LOCK_NAME).st_mtime
    except OSError:
        started = None
    holder = _pid_of(state_dir / LOCK_NAME)
    ready: bool | None = None
    if holder is not None:
        if _pid_of(state_dir / READY_NAME) == holder:
            ready = True
        elif _pid_of(state_dir / STARTING_NAME) == holder:
            ready = False
    return ready, started


def _pid_of(path: Path) -> int | None:
    """The process id a regular file at `path` holds; None for none (or no such file)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return _pid_in(fd) if stat.S_ISREG(os.fstat(fd).st_mode) else None
    finally:
        os.close(fd)


def _refuse_what_is_no_file(path: Path) -> None:
    """A FIFO, device or folder under the lock file's name: said, naming it, and not
    opened (the start ended in "Invalid argument — check that the path exists", from
    the FIFO's truncation, with no name)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        raise OutboxdError(f"{path}, the file by which one outboxd holds its state dir, is a "
                           f"{kind_of(mode)}, not a file — move it away (outboxd makes it "
                           "again)")


def release(state_dir: Path) -> None:
    """Give the state dir back (at a stop); the last holder in this process unlocks it."""
    path = state_dir / LOCK_NAME
    if path not in _held:
        return
    fd, count = _held.pop(path)
    if count > 1:
        _held[path] = (fd, count - 1)
    else:
        for mark in (READY_NAME, STARTING_NAME):
            with contextlib.suppress(OSError):  # a start replaces one left behind
                os.unlink(state_dir / mark)
        os.close(fd)  # the lock goes with its last descriptor


def running(state_dir: Path) -> bool | None:
    """Whether a daemon holds the state dir: True, False, or None when that cannot be
    told (no lock file: never started by this version; not readable by this user)."""
    path = state_dir / LOCK_NAME
    if path in _held:
        return True
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None  # no lock file of a daemon's (hold() refuses to start on it)
        # Looked at and opened by its name, not as fsops.opened_if_regular does: the state
        # dir is the admin's, writable by the daemon's user and root only, who could do
        # worse there than swap a FIFO or device in meanwhile; no one on the share reaches
        # it. (Non-blocking: such a FIFO is not waited on.)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return None
    finally:
        os.close(fd)  # with it, the shared lock just taken
    return False
