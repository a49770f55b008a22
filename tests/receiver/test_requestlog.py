"""The reference receiver's request log (daemon/receiver/requestlog.py): whole lines
only, a failure said once. Its 507 with a full store is test_server.py's."""

from __future__ import annotations

import errno
import os
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
