"""Opening inputs with the safety rules built in.

Every input is opened here: never through a symbolic link, never a FIFO,
socket or device (opening a FIFO would block the daemon forever, and opening a
device may act on it: a tape rewinds). What is read from a file once opened (within
a limit, hashed) and the admin's files are `fsread.py`; what the daemon writes is
`fswrite.py`, how it moves bundles `fsmove.py` (and copies them `fscopy.py`).
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from daemon.errors import HostileInput, InputError
from daemon.fs.namedreads import named_reads


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device file"


def is_regular_file(path: Path) -> bool:
    """A regular file (not through a link); False for anything that cannot be looked at,
    a name too long for the file system included (Path.is_file raises on that)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except (OSError, ValueError):
        return False


# What a network share that is away or failing answers (a FUSE or SMB mount whose
# server is gone, a stale NFS handle, a timeout): no fault of the file, and no permission
# mends it.
SHARE_AWAY = frozenset({errno.EIO, errno.ESTALE, errno.ENOTCONN, errno.ETIMEDOUT,
                        errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ECONNRESET})
# Errors of the machine or of the share, not of the file: no descriptors or memory left,
# a share that went away or timed out, a /proc that opened_if_regular cannot use (ENOSYS,
# EXDEV). A bundle that meets one is read again after a while; an "unreadable" finding
# would quarantine it for what a clerk cannot mend.
NOT_THE_FILES_FAULT = SHARE_AWAY | frozenset({
    errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EINTR, errno.ENOSYS,
    errno.EXDEV})


def read_again_later(exc: BaseException) -> bool:
    """Whether a read that raised `exc` says nothing of the bundle: the machine's or the
    share's error (NOT_THE_FILES_FAULT), or a file listed a moment before and gone at its
    open (open_in, `listed`: a share that blinked, a change under way), or a folder on
    its way that is a file by then (ENOTDIR: the same change, as the snapshot takes it;
    a file that stays where a folder is meant is refused from the listing, not here).
    One rule for the daemon, which reads it again (loop/unreadable.py), and `check`,
    which gives no verdict (it said INVALID and "run check again" at once)."""
    return isinstance(exc, OSError) and (
        exc.errno in NOT_THE_FILES_FAULT
        or isinstance(exc, FileNotFoundError | NotADirectoryError))


# A name is first opened as a handle only (O_PATH): the file itself is not opened — a
# FIFO is not joined, a device's driver never called — and a link is held, not
# followed (with O_NOFOLLOW). Looked at through the handle (fstat), only a regular file
# is then opened for reading, through /proc/self/fd: that very inode, not the name
# again, which may name something else by then.
_HANDLE = os.O_PATH | os.O_CLOEXEC
# A folder opened for its listing (with O_NOFOLLOW below a trusted root): here, the
# poller and the snapshot walk alike.
FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# A folder never reached through a link: each one below a trusted root, and a bundle's
# work folder held by its path (hold_folder, temps, strays).
FOLDER_NOFOLLOW = FOLDER | os.O_NOFOLLOW


# What the admin does about a /proc that cannot be used (the unit's ProcSubset=pid keeps
# /proc/self/fd; a container needs the kernel's procfs mounted at /proc).
_PROC_FIX = ("outboxd needs the kernel's /proc mounted, with /proc/self/fd (the systemd "
             "unit keeps it with ProcSubset=pid)")


def _path_of(handle: int, name: Path | str) -> str:
    """The path of what the O_PATH handle holds, as the kernel names it; `name` where
    /proc cannot say."""
    try:
        return os.readlink(f"/proc/self/fd/{handle}")
    except OSError:
        return str(name)


def opened_if_regular(name: Path | str, folder: int | None = None, follow: bool = False,
                      flags: int = os.O_RDONLY) -> tuple[int | None, int]:
    """(descriptor, mode) of what `name` (in the folder open at `folder`) is: opened with
    `flags` only if a regular file, else None — a FIFO, socket, device, folder or (unless
    `follow`) link is looked at, never opened (see _HANDLE). The caller closes the
    descriptor and says what a mode other than a regular file's means. Raises the
    OSError of the look (ENOENT: nothing there) or of the open (EACCES)."""
    handle = os.open(name, _HANDLE | (0 if follow else os.O_NOFOLLOW), dir_fd=folder)
    try:
        st = os.fstat(handle)
        if not stat.S_ISREG(st.st_mode):
            return None, st.st_mode
        try:
            fd = os.open(f"/proc/self/fd/{handle}", flags | os.O_CLOEXEC)
        except FileNotFoundError:
            # The handle is ours and open: only a missing /proc makes its name absent.
            raise OSError(errno.ENOSYS, "/proc is not mounted: outboxd opens files "
                          "through /proc/self/fd, so as never to open a FIFO or device — "
                          f"{_PROC_FIX}") from None
        except OSError as exc:
            # Named by the file's path: /proc/self/fd/H names nothing once H is closed,
            # and fdnames would show it as the folder this thread last held at number H.
            exc.filename = _path_of(handle, name)
            raise
    finally:
        os.close(handle)
    again = os.fstat(fd)
    if (again.st_ino, again.st_dev) != (st.st_ino, st.st_dev):
        os.close(fd)  # not /proc's magic link (something mounted over it): never trusted
        raise OSError(errno.EXDEV, "/proc/self/fd reopened another file than the one "
                      f"looked at — /proc is not the kernel's: {_PROC_FIX}")
    return fd, st.st_mode


def _symlink(shown: str) -> HostileInput:
    return HostileInput("symlink", shown, "is a symbolic link; outboxd never follows "
                        "links — put the file itself in the folder")


def _refused(exc: OSError, shown: str) -> Exception:
    """What an open that failed raises: a link as HostileInput, the machine's or the
    share's fault as the OSError it is (read again later, not blamed on the file),
    anything else as an InputError naming the file and the fix."""
    if exc.errno == errno.ELOOP:
        return _symlink(shown)
    if exc.errno in NOT_THE_FILES_FAULT:
        return exc
    return InputError("unreadable", shown, f"cannot be read ({exc.strerror}) — check the "
                      "file's permissions")


def _open_file(name: Path | str, folder: int | None, shown: str, listed: bool = False
               ) -> BinaryIO:
    try:
        fd, mode = opened_if_regular(name, folder)
    except OSError as exc:
        if listed and exc.errno == errno.ENOENT:
            exc.filename = shown  # by a folder's descriptor it named only the bare name
            raise  # see open_in
        if folder is not None and exc.errno in NOT_THE_FILES_FAULT:
            # Raised as it is (_refused), named as the clerk knows the file: by the
            # folder's descriptor the look named only "scan.pdf", and check and the
            # status page said so of a file that may lie in any of the bundle's folders.
            exc.filename = shown
        raise _refused(exc, shown) from None
    if fd is None:
        if stat.S_ISLNK(mode):
            raise _symlink(shown)
        raise HostileInput("not-a-file", shown, f"is a {kind_of(mode)}, not a regular "
                           "file — put a regular file there")
    return named_reads(fd, shown)


def open_regular(path: Path, rel: str | None = None) -> BinaryIO:
    """Open a regular file for reading, refusing links, FIFOs, sockets and devices.

    A link in the last component, or a FIFO, socket or device, is refused without
    being opened, even one put there after the caller looked (opened_if_regular). The
    folders above are taken as the path says: a bundle's files are opened with
    open_below instead.
    """
    return _open_file(path, None, rel or path.name)


def open_in(folder: int, name: str, shown: str, listed: bool = False) -> BinaryIO:
    """The regular file `name` of the folder open at `folder`, as open_regular opens one.
    `listed`: a name the folder's listing (or a look just before) showed there, so one gone
    at the open is a change under way or a share that blinked, not the file's fault: its
    FileNotFoundError is raised as it is (the bundle is read again), never an
    `unreadable` finding that would hold or quarantine it with "check the permissions"
    for a file that is there."""
    return _open_file(name, folder, shown, listed)


def _folder_in(parent: int, name: str, shown: str, where: str, listed: bool = False) -> int:
    """The folder `name` of the folder open at `parent`, never through a link (`where`:
    it as shown, `shown`: what is being reached through it; `listed`: as open_in's)."""
    try:
        return os.open(name, FOLDER_NOFOLLOW, dir_fd=parent)
    except PermissionError:
        raise unreadable_folder(shown, "" if where == shown else where) from None
    except OSError as exc:
        if listed and exc.errno == errno.ENOENT:
            exc.filename = shown  # by the parent's descriptor it named only the bare name
            raise
        if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
            raise _refused(exc, shown) from None
    raise _not_a_folder(parent, name, shown, where)


def unreadable_folder(shown: str, where: str = "") -> InputError:
    """A folder outboxd's user may not list (`where`: it, when `shown` lies in it). Said
    as a rule and a fix, not as "[Errno 13] …" with the server's path: the status page on
    the share and `outboxd status` show this line. A folder copied in by another user
    or program keeps its permissions."""
    lies_in = f"lies in {where}, which " if where else "the folder "
    return InputError("unreadable-folder", shown, f"{lies_in}cannot be read (permission "
                      "denied) — give outboxd's user read access to it, as to the other "
                      "folders in the outbox")


def _not_a_folder(parent: int, name: str, shown: str, where: str) -> HostileInput:
    # O_DIRECTORY | O_NOFOLLOW refuses a link as a non-folder (ENOTDIR): say which it is.
    try:
        mode = os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode
    except OSError:
        mode = 0
    lies_in = "" if where == shown else f"lies in {where}, which "
    if stat.S_ISLNK(mode):
        return HostileInput("symlink", shown, f"{lies_in}is a symbolic link; outboxd never "
                            "follows links — put the folder itself there")
    # A folder again by now (swapped back): what it was when opened is not known.
    what = f"a {kind_of(mode)}" if mode and not stat.S_ISDIR(mode) else "no folder"
    return HostileInput("not-a-folder", shown, f"{lies_in}is {what} — put the folder "
                        "itself there")


def walk_to_folder(root: Path, parts: list[str], shown: str) -> int:
    """The folder `parts` below `root`, open (see folder_below); a folder refused on the
    way is named by its path below root (the clerk's path for a bundle's files)."""
    try:
        fd = os.open(root, FOLDER)
    except OSError as exc:
        raise _refused(exc, shown) from None
    if not parts:
        return fd
    try:
        return _walk(fd, parts, shown)
    finally:
        os.close(fd)


def _walk(top: int, parts: list[str], shown: str) -> int:
    """The folder `parts` below the folder open at `top` (left open), opened as
    walk_to_folder opens each: a new descriptor, the caller's to close."""
    fd = top
    try:
        for n, part in enumerate(parts):
            inner = _folder_in(fd, part, shown, "/".join(parts[:n + 1]))
            if fd != top:
                os.close(fd)
            fd = inner
    except BaseException:
        if fd != top:
            os.close(fd)
        raise
    return fd


@contextmanager
def folder_below(root: Path, rel: str = "", shown: str | None = None) -> Iterator[int]:
    """The folder `rel` ("A/B", "" for root itself) below the trusted folder `root`, open
    while the block runs: root by its path (the outbox the admin configured, which may be
    or lie behind a link; a claimed bundle's work folder is held_folder's), each folder
    below it opened from the one above with O_DIRECTORY | O_NOFOLLOW. So none is ever
    reached through a link, not even one swapped in for it after it was looked at.
    A link, a FIFO or device on the way raises HostileInput naming `shown` (default
    `rel`), other failures as open_regular's do."""
    fd = walk_to_folder(root, [p for p in rel.split("/") if p], shown or rel or root.name)
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def folder_within(root: Path, folder: Path) -> Iterator[int]:
    """`folder` open while the block runs: where it lies inside `root` (the outbox, where
    anyone on the share may replace `.outboxd` by a link), as folder_below opens it, so
    that no link inside root is followed; elsewhere by its path, as configured (the
    admin's choice, trusted). Raises as folder_below does."""
    try:
        rel = folder.relative_to(root)
    except ValueError:
        fd = walk_to_folder(folder, [], str(folder))
    else:
        fd = walk_to_folder(root, list(rel.parts), str(rel))
    try:
        yield fd
    finally:
        os.close(fd)


@contextmanager
def folder_in(parent: int, name: str, shown: str, listed: bool = False) -> Iterator[int]:
    """The folder `name` of the folder open at `parent`, open while the block runs, as
    folder_below opens each folder on its way. `listed`: a folder a listing (or a look
    just before) showed there, so one gone at its open is raised as FileNotFoundError,
    as open_in raises a file's: a share that blinked, read again, never "cannot be read
    — check the permissions" of a folder that is there."""
    fd = _folder_in(parent, name, shown, shown, listed)
    try:
        yield fd
    finally:
        os.close(fd)


# The folder a claimed bundle's delivery holds open (claim.held_work), by the path its
# files are found below, for this thread's attempt: open_below opens them from it.
_held: ContextVar[tuple[str, int] | None] = ContextVar("held_folder", default=None)


@contextmanager
def opened_from(root: Path, fd: int) -> Iterator[None]:
    """While the block runs (in this thread), every file open_below opens below `root`
    is opened from `fd`, the folder root names held open, and never by root's path: a
    folder swapped for a link meanwhile is never followed, and no path is walked again."""
    token = _held.set((str(root), fd))
    try:
        yield
    finally:
        _held.reset(token)


def held_for(root: Path) -> int | None:
    """The descriptor `root` is held at in this thread (opened_from), else None: what a
    step writing below the held folder opens from, never root's path."""
    held = _held.get()
    return held[1] if held is not None and held[0] == str(root) else None


def open_below(root: Path, rel: str, shown: str | None = None) -> BinaryIO:
    """The regular file `rel` below the trusted folder `root` (a bundle's file: see
    bundle.below), each folder on its way opened as folder_below opens it and the file as
    open_regular opens one; errors name `shown` (default `rel`). Below a folder held
    (opened_from), from its descriptor."""
    folder, _, name = rel.rpartition("/")
    said = shown or rel
    held = _held.get()
    if held is None:
        fd = walk_to_folder(root, [p for p in folder.split("/") if p], said)
    elif held[0] == str(root):
        parts = [p for p in folder.split("/") if p]
        if not parts:
            return _open_file(name, held[1], said)  # the invoice file: one open
        fd = _walk(held[1], parts, said)
    else:
        # While a bundle's folder is held, every file opened is that bundle's: one
        # elsewhere is our bug, and opening it by its path would follow a link put in
        # place of its folder — the very thing the folder is held against.
        raise RuntimeError(f"{said}: opened below {root} while {held[0]} is held")
    try:
        return _open_file(name, fd, said)
    finally:
        os.close(fd)
