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
from daemon.fs.ourfiles import Judged, identity, opened
from daemon.names import OTHER_PAGES
from daemon.report.pagehtml import PAGE_START, STOPPED_START, WRITTEN_MARK

HEAD = 8192  # bytes: the mark is in the page's first two kilobytes, even a stopped one's
MARK, BY = WRITTEN_MARK.encode(), b"by outboxd"


def is_page(head: bytes) -> bool:
    """Whether a file's first bytes are those of a page outboxd wrote."""
    return MARK in head and BY in head


def not_ours(name: str, what: str) -> NotOurs:
    return NotOurs(f"{name}: {what}, not a status page outboxd wrote; outboxd does not "
                   "replace it — rename or remove it (or set [share] status_page to another "
                   "name), and outboxd writes the status page there again")


def _opened(path: Path) -> Judged | None:
    return opened(path, lambda what: not_ours(path.name, what))


def _head(file: Judged) -> bytes:
    return os.pread(file.fd, HEAD, 0)


def old_page(path: Path) -> Judged | None:
    """The file at `path` if it is a page outboxd wrote (for its removal: remove_ours),
    else None: a person's file of that name stays."""
    try:
        file = _opened(path)
    except NotOurs:
        return None
    if file is not None and not is_page(_head(file)):
        os.close(file.fd)
        return None
    return file


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
            return self._written == identity(os.lstat(path))
        except OSError:
            return False

    def judge(self, path: Path, log: Any) -> Judged | None:
        """The look of replace_ours: the file at `path`, open, when it is outboxd's to
        replace, None when nothing is there; NotOurs (the name, why, the fix) when it is
        not. Warns when it is outboxd's page but a person changed it."""
        file = _opened(path)
        if file is None:
            return None
        if self._written == identity(file.st):
            self._warned = False
            return file
        try:
            if not is_page(_head(file)):
                raise not_ours(path.name, "is a file of someone else's")
        except BaseException:
            os.close(file.fd)
            raise
        if self._written is not None and not self._warned:
            self._warned = True
            log.warning("status page changed by someone other than outboxd since it wrote "
                        "it (a person, or another outboxd given the same [share] "
                        "status_page); written again: it is outboxd's view of the outbox, "
                        "keep notes in a file of another name", file=path.name)
        return file

    def wrote(self, st: os.stat_result) -> None:
        """The page just written is the file of `st` (replace_ours's answer: taken from
        the file written, never from the name, which a person may have taken since)."""
        self._written = identity(st)


def running_pages(outbox: Path, own: str) -> list[str]:
    """The pages other daemons sharing `outbox` write (outboxd-status….html, by their
    first bytes) that do not say they are stopped, by name: what a page written at a
    clean stop names, as the others still send. One of a daemon that was killed is
    among them (it cannot say so; its own page shows its age). None where the outbox
    cannot be listed. Never a link followed, a FIFO or device opened."""
    found: list[str] = []
    try:
        with os.scandir(outbox) as it:
            names = sorted(e.name for e in it if e.name != own
                           and OTHER_PAGES.fullmatch(e.name)
                           and e.is_file(follow_symlinks=False))
    except OSError:
        return []
    for name in names:
        try:
            fd = os.open(outbox / name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK
                         | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                continue
            head = os.pread(fd, len(STOPPED_START), 0)
        except OSError:
            continue
        finally:
            os.close(fd)
        if head.startswith(PAGE_START.encode()) and head != STOPPED_START.encode():
            found.append(name)
    return found
