"""An input file's reads, each error naming the file (`named_reads`): `fsops` opens the
file (never through a link, never a FIFO or device) and hands its descriptor here.

An EIO in the middle of a read carries no file name, and `check` and the status page named
the invoice file for an attachment the share failed to give. `_readinto` and `_readall`
are the kernel's reads: the seam where tests fail a read, as a share does.
"""

from __future__ import annotations

import io
from typing import Any, BinaryIO

_readinto = io.FileIO.readinto
_readall = io.FileIO.readall


def named_reads(fd: int, shown: str) -> BinaryIO:
    """The open file `fd`, buffered, its read errors naming it as the clerk knows it
    (`shown`), as a failed open names it."""
    raw = _NamedReads(fd, shown)
    # The buffer open() would give (the file system's block size: up to 1 MiB on a share,
    # where each read is a round trip), as os.fdopen did before the reads were named.
    blksize: int = getattr(raw, "_blksize", 0)
    return io.BufferedReader(raw, blksize if blksize > 1 else io.DEFAULT_BUFFER_SIZE)


class _NamedReads(io.FileIO):
    """An input file open for reading whose read errors name it."""

    def __init__(self, fd: int, shown: str) -> None:
        super().__init__(fd, "rb")
        self.shown = shown

    def readinto(self, buffer: Any) -> int | None:
        try:
            return _readinto(self, buffer)
        except OSError as exc:
            raise self._named(exc) from None

    def readall(self) -> bytes:
        try:
            return _readall(self)
        except OSError as exc:
            raise self._named(exc) from None

    def _named(self, exc: OSError) -> OSError:
        if exc.filename is None and exc.errno is not None:
            return OSError(exc.errno, exc.strerror, self.shown)  # its kind by errno
        return exc
