"""Opening inputs with the safety rules built in.

Every input is opened here: never through a symbolic link, never a FIFO,
socket or device (opening a FIFO would block the daemon forever), and read
within a limit. What the daemon writes, and how it moves bundles, is
`fswrite.py`.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from daemon.errors import HostileInput, InputError

CHUNK = 1 << 16


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


# Errors of the machine or of the share, not of the file: no descriptors or memory left,
# a share that went away or timed out. A bundle that meets one is read again after a
# while; an "unreadable" finding would quarantine it for what a clerk cannot mend.
NOT_THE_FILES_FAULT = frozenset({
    errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EIO, errno.ESTALE, errno.ENOTCONN,
    errno.ETIMEDOUT, errno.EHOSTDOWN, errno.EHOSTUNREACH, errno.ECONNRESET, errno.EAGAIN,
    errno.EINTR})


def open_regular(path: Path, rel: str | None = None) -> BinaryIO:
    """Open a regular file for reading, refusing links, FIFOs, sockets and devices.

    O_NOFOLLOW refuses a link in the last component; O_NONBLOCK keeps a FIFO
    that slipped in between lstat and open from blocking us; fstat then
    checks what we actually opened.
    """
    shown = rel or path.name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HostileInput("symlink", shown, "is a symbolic link; outboxd never follows "
                               "links — put the file itself in the folder") from None
        if exc.errno in NOT_THE_FILES_FAULT:
            raise  # the machine or the share: the bundle is read again later, not blamed
        raise InputError("unreadable", shown, f"cannot be read ({exc.strerror}) — check the "
                         "file's permissions") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise HostileInput("not-a-file", shown, f"is a {kind_of(st.st_mode)}, not a regular "
                           "file — put a regular file there")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


class NotAFile(ValueError):
    """What is at a path is no regular file (a FIFO, socket, device, folder or link), or a
    file larger than its limit; the message says which."""


def _not_a_file(mode: int) -> NotAFile:
    return NotAFile("is a folder, not a file" if stat.S_ISDIR(mode) else
                    f"is a {kind_of(mode)}, not a regular file")


def read_admin_file(path: Path, limit: int) -> bytes:
    """A file the configuration names (the configuration itself, token_file, the TLS
    files). A link is followed: the admin chose the path, and may keep a secret
    elsewhere. But a FIFO, socket or device is refused before anything is read (a FIFO
    would block for good, /dev/zero never ends), and so is more than `limit` bytes.
    Raises OSError, or NotAFile saying what the path is."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_a_file(mode)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as fh:
        data = read_bounded(fh, limit)
    if data is None:
        raise NotAFile(f"is larger than {limit:,} bytes")
    return data


def open_if_regular(path: Path) -> BinaryIO | None:
    """path opened for reading if a regular file is there, None if nothing is. Anything
    else there (a link, a folder, a FIFO, socket or device) raises NotAFile saying what
    it is, and is never opened nor followed: looked at first (lstat), then opened with
    O_NOFOLLOW | O_NONBLOCK and looked at again (fstat), for one put there meanwhile."""
    try:
        mode = os.lstat(path).st_mode
        if not stat.S_ISREG(mode):
            raise _not_a_file(mode)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_a_file(stat.S_IFLNK) from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise _not_a_file(mode)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def hash_file(path: Path, rel: str | None = None) -> tuple[int, str]:
    """Size and SHA-256 of a regular file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open_regular(path, rel) as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def read_regular(path: Path, rel: str | None = None, limit: int = 1 << 25) -> bytes | None:
    """The whole content of a regular file (opened as open_regular does), or None if it
    holds more than `limit` bytes: callers then read it in chunks instead."""
    with open_regular(path, rel) as fh:
        return read_bounded(fh, limit)


def read_bounded(fh: BinaryIO, limit: int) -> bytes | None:
    """The rest of an open file if it holds at most `limit` bytes, else None.

    Sized by fstat, so a small file costs one buffer of its own size (a read
    of limit + 1 bytes would allocate the whole limit first); a file that
    grows meanwhile is still cut off at the limit.
    """
    expected = os.fstat(fh.fileno()).st_size - fh.tell()
    if expected > limit:
        return None
    data = fh.read(max(expected, 0) + 1)
    if len(data) > expected:
        data += fh.read(limit + 1 - len(data))
    return data if len(data) <= limit else None
