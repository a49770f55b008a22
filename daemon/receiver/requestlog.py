"""The reference receiver's access log: one JSON line per request in
STORE/requests.jsonl (docs/protocol.md), appended whole or not at all, and never at
the cost of an answer: a line that cannot be written (a full store, a link or FIFO in
its place) is skipped and said once."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.errors import describe
from daemon.fs.fsops import kind_of


class RequestLog:
    """STORE/requests.jsonl, appended to by the handler threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()  # one append at a time: each cuts back its own
        self._failure = ""  # why the last append failed, said once

    def append(self, record: dict[str, Any]) -> None:
        """One line. One that cannot be written (a full store) costs the line, never the
        answer: said once per distinct error, and again once it passes."""
        line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
        with self._lock:
            try:
                append_whole(self.path, line)
            except OSError as exc:
                if describe(exc) != self._failure:
                    self._failure = describe(exc)
                    logs.get().error("cannot append to the request log; requests go on "
                                     "being answered", file=str(self.path),
                                     error=describe(exc))
                return
            if self._failure:
                self._failure = ""
                logs.get().info("the request log is written again", file=str(self.path))


def append_whole(path: Path, line: bytes) -> None:
    """`line` appended to `path` whole, or not at all: a full store takes part of a
    write (up to the end of its last block) and refuses the rest, and the part left
    would be a torn last line that a reader of the log cannot parse — and the next line,
    appended to it, one more. So the file is cut back to its length before on any
    failure (the caller holds the log's lock: no other append comes between)."""
    fd = _open_log(path)
    try:
        end = os.fstat(fd).st_size
        try:
            done = 0
            while done < len(line):  # a short write, then the next one says why (ENOSPC)
                if not (wrote := os.write(fd, line[done:])):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
                done += wrote
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


def _open_log(path: Path) -> int:
    """The log open for appending, made 0640 if new; never through a link, nor a FIFO or
    device someone who may write in the store put in its place: a FIFO blocked the
    open for ever (no reader), holding the lock every request needs. OSError naming
    what is there and the fix."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
                     | os.O_NOFOLLOW | os.O_NONBLOCK, 0o640)
    except OSError:
        # ELOOP: a link; ENXIO: a FIFO no one reads; a device may answer anything.
        if (mode := _mode_of(path)) is None or stat.S_ISREG(mode):
            raise
        raise _not_a_file(path, mode) from None
    if not stat.S_ISREG(mode := os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_file(path, mode)
    return fd


def _mode_of(path: Path) -> int | None:
    try:
        return os.lstat(path).st_mode
    except OSError:
        return None


def _not_a_file(path: Path, mode: int) -> OSError:
    return OSError(errno.EINVAL, f"is a {kind_of(mode)}, not the receiver's request log; "
                   "it never writes into one — remove it (the receiver makes the file "
                   "again)", str(path))
