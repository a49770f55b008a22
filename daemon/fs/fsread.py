"""Reading files opened as fsops.py opens them: whole within a limit, or hashed in
chunks; and the files that are no input — the admin's (links followed) and what is
already at a name outboxd writes — refused as NotAFile when they are no regular file.

Apart from fsops.py, which only opens: what a file holds is read here, never more than
a limit into memory (a file may grow while it is read).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import BinaryIO

from daemon.errors import InputError
from daemon.fs.fsops import kind_of, open_in, open_regular, opened_if_regular

CHUNK = 1 << 16


class NotAFile(ValueError):
    """What is at a path is no regular file (a FIFO, socket, device, folder or link), or a
    file larger than its limit; the message says which."""


def _not_a_file(mode: int) -> NotAFile:
    return NotAFile("is a folder, not a file" if stat.S_ISDIR(mode) else
                    f"is a {kind_of(mode)}, not a regular file")


def read_admin_file(path: Path, limit: int) -> bytes:
    """A file the configuration names (the configuration itself, token_file, the TLS
    files). A link is followed: the admin chose the path, and may keep a secret
    elsewhere. But a FIFO, socket or device is refused without being opened (a FIFO
    would block for good, /dev/zero never ends), and so is more than `limit` bytes.
    Raises OSError, or NotAFile saying what the path is."""
    fd, mode = opened_if_regular(path, follow=True)
    if fd is None:
        raise _not_a_file(mode)
    with os.fdopen(fd, "rb") as fh:
        data = read_bounded(fh, limit)
    if data is None:
        raise NotAFile(f"is larger than {limit:,} bytes")
    return data


def open_if_regular(path: Path) -> BinaryIO | None:
    """path opened for reading if a regular file is there, None if nothing is. Anything
    else there (a link, a folder, a FIFO, socket or device) raises NotAFile saying what
    it is, and is never opened nor followed (opened_if_regular)."""
    try:
        fd, mode = opened_if_regular(path)
    except FileNotFoundError:
        return None
    if fd is None:
        raise _not_a_file(mode)
    return os.fdopen(fd, "rb")


def hash_file(path: Path, rel: str | None = None) -> tuple[int, str]:
    """Size and SHA-256 of a regular file, read in chunks."""
    with open_regular(path, rel) as fh:
        return hash_of(fh)


def hash_of(fh: BinaryIO) -> tuple[int, str]:
    """Size and SHA-256 of the rest of an open file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    while chunk := fh.read(CHUNK):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def hashed_read(fh: BinaryIO, limit: int) -> tuple[int, str, bytes | None]:
    """Size and SHA-256 of the rest of an open file, and its bytes if they are at most
    `limit`: read once whole (read_bounded) when it fits, else hashed in chunks."""
    start = fh.tell()
    data = read_bounded(fh, limit)
    if data is not None:
        return len(data), hashlib.sha256(data).hexdigest(), data
    fh.seek(start)  # larger than the limit, or grew past it while being read
    return (*hash_of(fh), None)


def read_regular(path: Path, rel: str | None = None, limit: int = 1 << 25,
                 at: int | None = None) -> bytes | None:
    """The whole content of a regular file (opened as open_regular does; by its name from
    `at`, its folder held, if given), or None if it holds more than `limit` bytes."""
    with open_regular(path, rel) if at is None else open_in(at, path.name, rel or path.name) \
            as fh:
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


def holds_hash(folder: int, name: str, rel: str, sha256: str,
               source: BinaryIO | None = None) -> bool:
    """Whether the file `name` an earlier attempt wrote into the folder open at `folder`
    (a converted PDF, a ubl-embedded document kept) has the bytes whose hash is `sha256`
    (a link or a FIFO there is no such file: it is written anew; errors name `rel`) and,
    given the file it was made from (`source`, open), was written after that changed."""
    try:
        with open_in(folder, name, rel) as fh:
            if source is not None and changed_since(source, fh):
                return False
            return hash_of(fh)[1] == sha256
    except (OSError, InputError):
        return False


def changed_since(source: BinaryIO, made: BinaryIO) -> bool:
    """Whether the file open as `source` was changed or replaced after the file made from
    it (open as `made`: a converted PDF) was written — its ctime, which no copy tool sets
    back, is later. `made` is then an earlier version's: kept, it would send that version
    again while the new one is archived beside it as if it had gone out."""
    return os.fstat(source.fileno()).st_ctime_ns > os.fstat(made.fileno()).st_ctime_ns
