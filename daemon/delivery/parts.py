"""A claimed bundle's files as the parts of its POST (deliver.py): each opened only
while its part is sent, and sent only as the bytes that were checked."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import BinaryIO

from daemon.bundle import Attachment, InvoiceFile
from daemon.errors import InputError
from daemon.fs.fsops import open_below
from daemon.fs.fsread import read_bounded


def changed_since_checked(shown: str) -> InputError:
    """A claimed bundle's file that no longer holds the bytes it was checked with."""
    return InputError("processing-damaged", shown,
                      "is not the file that was checked: it was changed or replaced "
                      "while the bundle was being sent — check it, then move the "
                      "bundle back into the outbox")


def read_checked(att: Attachment | InvoiceFile, root: Path | None = None) -> bytes:
    """A claimed bundle's file's bytes, read up to the size it was checked at (validation
    allowed no more than [validation] max_attachment_bytes): one written into since is
    refused as the multipart delivery refuses it, not read whole whatever its size.
    `root`: the folder it lies below when not its own (`att.where`): the work folder
    held (workfolder.hold_folder, fswrite.held_path). The invoice file too: ubl-embedded
    builds its documents from it at each attempt, and one rewritten in the work folder
    since its check would go out unchecked under the checked one's bundle id."""
    shown = att.rel if isinstance(att, Attachment) else att.name
    with open_below(att.where[0] if root is None else root, att.where[1], shown) as fh:
        content = read_bounded(fh, att.size)
    # The same size may hold other bytes (its owner rewrote it, time put back): the hash.
    if (content is None or len(content) != att.size
            or hashlib.sha256(content).hexdigest() != att.sha256):
        raise changed_since_checked(shown)
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
    reading it raises InputError naming it.

    Size and time are not enough: the file's owner (a clerk in the share's group may
    enter the processing folder) can rewrite it with as many bytes and put its time
    back. With `sha256` (the hash checked) the bytes read from the start are hashed as
    they go, and the last chunk is given only if the whole agrees: else InputError, and
    the body stops short of its Content-Length, so no receiver takes it whole."""

    def __init__(self, where: tuple[Path, str], shown: str | None = None,
                 size: int | None = None, sha256: str | None = None) -> None:
        """`where`: (root, path below it) of the file (bundle.below), `shown`: its name
        in errors (default: the path below root)."""
        self.root, self.rel = where
        self._sha256 = sha256
        self._digest = hashlib.sha256()
        self._hashed = 0  # bytes hashed, read in order from the file's start
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
        at = self._fh.tell()
        left = max(self._size - at, 0)
        want = left if size < 0 else min(size, left)
        data = self._fh.read(want)
        self._hash(at, data)
        if len(data) < want or (len(data) == left and (self._look(self._fh) != self._seen
                                                       or not self._agrees())):
            # Cut short, written into while it was read, or other bytes than checked.
            self.close()
            raise self._changed()
        if len(data) == left:
            self.close()
        return data

    def _hash(self, at: int, data: bytes) -> None:
        """`data`, read at `at`, into the hash of the bytes read in order from the start
        (read from the start again: hashed again)."""
        if at == 0:
            self._digest, self._hashed = hashlib.sha256(), 0
        if self._sha256 is not None and at == self._hashed:
            self._digest.update(data)
            self._hashed += len(data)

    def _agrees(self) -> bool:
        """At the end: whether the bytes read have the hash checked. Read out of order (a
        seek into the middle), nothing is known: as before the hash, size and time alone."""
        return (self._sha256 is None or self._hashed != self._size
                or self._digest.hexdigest() == self._sha256)

    def close(self) -> None:
        if self._fh is not None:
            self._pos = self._fh.tell()
            self._fh.close()
            self._fh = None
