"""A bundle's files read once for its evaluation (finish.evaluate).

Matching hashes each file, validation sniffs and probes each attachment, pre-flight
(and ubl-embedded's check) reads the invoice: without this each would open the file
below the bundle's folder and read it, an open of several syscalls
(fsops.opened_if_regular) and a read each time. Within `keeping_reads` matching keeps
the bytes it hashed, and the later steps take them (`kept_read`) instead of opening
the file again: what is validated is then exactly what the size and hash describe.
The file was opened as every input is (fsops.open_in: below the held folder, no link
followed, never a FIFO or device); only a bounded total is kept, a file beyond it is
hashed in chunks and opened again by validation, as before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import BinaryIO

from daemon.fs.fsread import hash_of, hashed_read

# What one evaluation keeps at most: a bundle of a few documents is read once, while a
# bundle of many large files costs no more memory than this beyond what validation
# reads into memory (up to one attachment) anyway.
KEPT_BYTES = 16 << 20


class _Kept:
    """The files kept in one block of keeping_reads, by path; `room`: how many more
    bytes may be kept."""

    def __init__(self, limit: int) -> None:
        self.room = limit
        self.files: dict[Path, bytes] = {}


# Per thread (and reader process): each evaluation keeps its own bundle's files.
_kept: ContextVar[_Kept | None] = ContextVar("kept_reads", default=None)


@contextmanager
def keeping_reads(limit: int) -> Iterator[None]:
    """While the block runs (in this thread), the files hash_keeping hashes are kept in
    memory, up to `limit` bytes in all, for kept_read; dropped when it ends."""
    token = _kept.set(_Kept(limit))
    try:
        yield
    finally:
        _kept.reset(token)


def hash_keeping(fh: BinaryIO, path: Path, refused_over: int | None = None
                 ) -> tuple[int, str]:
    """Size and SHA-256 of the rest of an open file, as fsread.hash_of; within
    keeping_reads, one that fits the room left is read whole and kept for `path`. One
    larger than `refused_over` (a size its rule refuses): sampled_digest."""
    if refused_over is not None and os.fstat(fh.fileno()).st_size - fh.tell() > refused_over:
        return sampled_digest(fh)
    kept = _kept.get()
    if kept is None:
        return hash_of(fh)
    size, digest, data = hashed_read(fh, kept.room)
    keep(path, data)
    return size, digest


# A file refused by its size (too-large, invoice-too-large) is never sent, whatever it
# holds, so it is not read whole: a 100 GB attachment held a reader past its time limit,
# twice, and was then said to make the readers loop. What tells one version of it from
# another (its bundle id, the check after the claim) is its size and its first and last
# MiB, hashed under a tag of their own: never the SHA-256 of a file that was read whole.
SAMPLED = 1 << 20


def sampled_digest(fh: BinaryIO) -> tuple[int, str]:
    """Size (by fstat) and a digest of the rest of an open file from its size and its
    first and last SAMPLED bytes, for a file refused by its size."""
    start = fh.tell()
    size = os.fstat(fh.fileno()).st_size - start
    digest = hashlib.sha256(b"outboxd sampled: refused by its size\0%d\0" % size)
    digest.update(fh.read(SAMPLED))
    fh.seek(start + max(size - SAMPLED, 0))
    digest.update(fh.read(SAMPLED))
    return size, digest.hexdigest()


def keep(path: Path, data: bytes | None) -> None:
    """Within keeping_reads, a file's bytes read whole (by a caller that hashed them
    itself) kept for `path` if they fit the room left; None (not read whole): nothing."""
    kept = _kept.get()
    if kept is not None and data is not None and len(data) <= kept.room:
        kept.room -= len(data)
        kept.files[path] = data


def kept_read(path: Path) -> bytes | None:
    """The bytes hash_keeping read of `path` in this block of keeping_reads (those its
    size and hash were taken from), or None: the caller opens the file itself."""
    kept = _kept.get()
    return None if kept is None else kept.files.get(path)
