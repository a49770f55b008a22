"""The reference receiver's request log (daemon/receiver/requestlog.py): whole lines
only, a failure said once. Its 507 with a full store is test_server.py's."""

from __future__ import annotations

import errno
import os
import stat
import threading
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from daemon.receiver.requestlog import RequestLog

from .conftest import log_lines


def test_a_log_line_a_full_store_cuts_short_is_taken_back_whole(
        store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full store takes part of a request log line (up to the end of its last block)
    and refuses the rest: the part is cut off again, so requests.jsonl holds whole lines
    only — a reader parses every one, and the next line, once there is room, begins on a
    line of its own instead of being glued to a torn one. The failure is said once, and
    its end once. (Injected at the write of that file; tests/faults/test_full_share.py
    fills a real tmpfs.)"""
    store.mkdir()  # as the receiver makes it
    path = store / "requests.jsonl"
    log = RequestLog(path)
    log.append({"status": 201, "n": 1})
    real = os.write
    full = [True]

    def short(fd: int, data: Any) -> int:
        if not full[0] or os.readlink(f"/proc/self/fd/{fd}") != str(path):
            return real(fd, data)
        if len(data) > 10:
            return real(fd, bytes(data)[:len(data) // 2])  # a part, up to the block's end
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", short)
    with capture_logs() as said:
        for n in (2, 3):
            log.append({"status": 201, "n": n, "pad": "x" * 5000})
    assert [e["event"] for e in said] == [
        "cannot append to the request log; requests go on being answered"]
    assert [line["n"] for line in log_lines(store)] == [1]
    full[0] = False  # room again
    with capture_logs() as said:
        log.append({"status": 201, "n": 4})
    assert [e["event"] for e in said] == ["the request log is written again"]
    assert [line["n"] for line in log_lines(store)] == [1, 4]
    assert path.read_bytes().endswith(b"\n")


def _append_within(log: RequestLog, record: dict[str, Any], seconds: float = 5.0) -> None:
    """log.append(record), failing the test if it has not returned within `seconds` (a
    writer blocked on a FIFO, holding the lock every request needs)."""
    done = threading.Event()
    t = threading.Thread(target=lambda: (log.append(record), done.set()), daemon=True)
    t.start()
    assert done.wait(seconds), "the append blocked"


@pytest.mark.parametrize("reader", [False, True], ids=["no-reader", "a-reader"])
def test_a_fifo_in_place_of_the_request_log_is_refused_without_blocking(
        store: Path, reader: bool) -> None:
    """Someone who may write in the store puts a FIFO at requests.jsonl: opened for
    writing, it blocked for ever (no reader), holding the log's lock, so every request
    after it hung; with a reader, the lines went to it. Now it is never written to: the
    line is skipped at once, said once naming the file, its kind and the fix; once the
    FIFO is removed, the log is a file of its own again (0640)."""
    store.mkdir()
    path = store / "requests.jsonl"
    os.mkfifo(path)
    held = os.open(path, os.O_RDONLY | os.O_NONBLOCK) if reader else None
    log = RequestLog(path)
    try:
        with capture_logs() as said:
            for n in (1, 2):
                _append_within(log, {"status": 201, "n": n})
        if held is not None:
            assert os.read(held, 100) == b""  # nothing went into the FIFO
    finally:
        if held is not None:
            os.close(held)
    [error] = said
    assert error["event"] == "cannot append to the request log; requests go on being answered"
    assert str(path) in error["error"] and "FIFO" in error["error"] \
        and "remove it" in error["error"], error
    path.unlink()
    old = os.umask(0)
    try:
        log.append({"status": 201, "n": 3})
    finally:
        os.umask(old)
    assert [line["n"] for line in log_lines(store)] == [3]
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_a_link_in_place_of_the_request_log_is_never_followed(
        store: Path, tmp_path: Path) -> None:
    """requests.jsonl made a link to a file the receiver's user may write: the line is
    never appended there (it was: any file of that user's, grown by a line a request
    chose the key of), but skipped and said, naming the link and the fix."""
    store.mkdir()
    target = tmp_path / "other.txt"
    target.write_bytes(b"keep\n")
    path = store / "requests.jsonl"
    path.symlink_to(target)
    with capture_logs() as said:
        _append_within(RequestLog(path), {"status": 201})
    assert target.read_bytes() == b"keep\n"
    [error] = said
    assert str(path) in error["error"] and "symbolic link" in error["error"], error


def test_a_write_that_takes_nothing_is_a_full_store_not_a_loop(
        store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write of the log that takes no byte and says no error (a file system may
    answer so when it is full): the append ends as for a full store — the line not
    kept, the failure said once — instead of writing again for ever while holding the
    lock every request needs."""
    store.mkdir()
    path = store / "requests.jsonl"
    log = RequestLog(path)
    log.append({"status": 201, "n": 1})
    real = os.write

    def takes_nothing(fd: int, data: Any) -> int:
        if os.readlink(f"/proc/self/fd/{fd}") != str(path):
            return real(fd, data)
        return 0

    monkeypatch.setattr(os, "write", takes_nothing)
    with capture_logs() as said:
        _append_within(log, {"status": 201, "n": 2})
    [event] = said
    assert event["event"] == "cannot append to the request log; requests go on being answered"
    assert "No space left on device" in event["error"]
    assert [line["n"] for line in log_lines(store)] == [1]
