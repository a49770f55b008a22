"""A claimed bundle's files as the parts of its POST (deliver.py): each opened only
while its part is sent, and sent only as the bytes that were checked."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from daemon.bundle import Attachment
from daemon.errors import InputError
from daemon.fsops import open_below, read_bounded


def changed_since_checked(shown: str) -> InputError:
    """A claimed bundle's file that no longer holds the bytes it was checked with."""
    return InputError("processing-damaged", shown,
                      "is not the file that was checked: it was changed or replaced "
                      "while the bundle was being sent — check it, then move the "
                      "bundle back into the outbox")


def read_checked(att: Attachment, root: Path | None = None) -> bytes:
    """A claimed attachment's bytes, read up to the size it was checked at (validation
    allowed no more than [validation] max_attachment_bytes): one written into since is
    refused as the multipart delivery refuses it, not read whole whatever its size.
    `root`: the folder it lies below when not its own (`att.where`): the work folder
    held (workfolder.hold_folder, fswrite.held_path)."""
    with open_below(att.where[0] if root is None else root, att.where[1], att.rel) as fh:
        content = read_bounded(fh, att.size)
    if content is None or len(content) != att.size:
        raise changed_since_checked(att.rel)
    return content


class OpenWhenRead:
    """A regular file for httpx's multipart body that holds a file descriptor only
    while its part is being sent: opened (by fsops.open_below: from the bundle's work
    folder, never through a link) at the first read, closed at its end. Opened all at
    once, the 20,000 files of one sidecar ran the daemon out of file descriptors, and
    the bundle was quarantined as unreadable.

    It is looked at once when made (a link, a FIFO, a file gone: the same errors as
    open_below, before anything is sent) and gives httpx its size by seek/tell, as
    an open file would, for the Content-Length. Opened only later, the file may have
    been replaced or rewritten since it was checked (`size`: the size checked): then
    other bytes than the manifest's would go, or a body that breaks its Content-Length
    (h11's error reads as a fault of the request). So the file must keep the size and
    modification time it had when made, and gives exactly that many bytes; otherwise
    reading it raises InputError naming it."""

    def __init__(self, where: tuple[Path, str], shown: str | None = None,
                 size: int | None = None) -> None:
        """`where`: (root, path below it) of the file (bundle.below), `shown`: its name
        in errors (default: the path below root)."""
        self.root, self.rel = where
        self.shown = shown or self.rel
        with open_below(self.root, self.rel, self.shown) as fh:
            self._seen = self._look(fh)
        self._size = self._seen[0]
        if size is not None and size != self._size:
            raise self._changed()
        self._fh: BinaryIO | None = None
        self._pos = 0

    @staticmethod
    def _look(fh: BinaryIO) -> tuple[int, int]:
        # Not the inode: a CIFS mount without server inode numbers makes new ones.
        st = os.fstat(fh.fileno())
        return st.st_size, st.st_mtime_ns

    def _changed(self) -> InputError:
        return changed_since_checked(self.shown)

    def tell(self) -> int:
        return self._fh.tell() if self._fh is not None else self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if self._fh is not None:
            return self._fh.seek(offset, whence)
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def read(self, size: int = -1) -> bytes:
        if self._fh is None:
            if self._pos >= self._size:
                return b""  # read to its end and checked there: no second open
            fh = open_below(self.root, self.rel, self.shown)
            if self._look(fh) != self._seen:
                fh.close()
                raise self._changed()
            fh.seek(self._pos)
            self._fh = fh
        left = max(self._size - self._fh.tell(), 0)
        want = left if size < 0 else min(size, left)
        data = self._fh.read(want)
        if len(data) < want or (len(data) == left and self._look(self._fh) != self._seen):
            # Cut short, or written into while it was read.
            self.close()
            raise self._changed()
        if len(data) == left:
            self.close()
        return data

    def close(self) -> None:
        if self._fh is not None:
            self._pos = self._fh.tell()
            self._fh.close()
            self._fh = None
