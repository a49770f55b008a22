"""Whose the file at the status page's name is (statuspage.py).

The share is the clerks' folder: a file of theirs that happens to bear the page's name
(or a folder of that name) is theirs, and outboxd never replaces it, as it never
replaces a person's NAME.errors.txt (errorsfile.py). Only a page outboxd wrote is
replaced: one that is as outboxd last wrote it, or one that carries its mark (the first
start after a restart; a page a person edited, which is then written again with a
warning, so that the edit is not lost without a word).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from daemon.errors import NotOurs
from daemon.fsops import kind_of, open_regular
from daemon.pagehtml import WRITTEN_MARK

HEAD = 8192  # bytes: the mark is in the page's first two kilobytes, even a stopped one's
MARK, BY = WRITTEN_MARK.encode(), b"by outboxd"


def is_page(head: bytes) -> bool:
    """Whether a file's first bytes are those of a page outboxd wrote."""
    return MARK in head and BY in head


def read_head(path: Path) -> bytes:
    """The first HEAD bytes of the regular file `path` (never a link, FIFO or device:
    InputError, as open_regular refuses them)."""
    with open_regular(path) as fh:
        return fh.read(HEAD)


def _identity(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def not_ours(name: str, what: str) -> NotOurs:
    return NotOurs(f"{name}: {what}, not a status page outboxd wrote; outboxd does not "
                   "replace it — rename or remove it (or set [share] status_page to another "
                   "name), and outboxd writes the status page there again")


class PageFile:
    """Remembers the page as last written, to tell a person's change of it."""

    def __init__(self) -> None:
        self._written: tuple[int, int, int, int] | None = None
        # Said once in a row: two daemons given one page name change it at each write
        # (operations.md asks each for a name of its own); one line tells the admin.
        self._warned = False

    def unchanged(self, path: Path) -> bool:
        """Whether `path` is the very file outboxd last wrote there (one lstat)."""
        try:
            return self._written == _identity(os.lstat(path))
        except OSError:
            return False

    def may_replace(self, path: Path, log: Any) -> None:
        """Raise NotOurs (the name, why, the fix) when what is at `path` is not
        outboxd's to replace; warn when it is outboxd's page but a person changed it."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if self._written == _identity(st):
            self._warned = False
            return
        if stat.S_ISDIR(st.st_mode):
            raise not_ours(path.name, "is a folder")
        if not stat.S_ISREG(st.st_mode):
            raise not_ours(path.name, f"is a {kind_of(st.st_mode)}")
        if not is_page(read_head(path)):
            raise not_ours(path.name, "is a file of someone else's")
        if self._written is not None and not self._warned:
            self._warned = True
            log.warning("status page changed by someone other than outboxd since it wrote "
                        "it (a person, or another outboxd given the same [share] "
                        "status_page); written again: it is outboxd's view of the outbox, "
                        "keep notes in a file of another name", file=path.name)

    def wrote(self, path: Path) -> None:
        try:
            self._written = _identity(os.lstat(path))
        except OSError:
            self._written = None
