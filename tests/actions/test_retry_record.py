"""What `outboxd retry` records around its moves (actions/retry_record.py); the record
itself, its lock and its undoing through the command are in test_retry.py."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest

from daemon.actions import retry_record


def test_a_retried_file_another_user_made_is_made_anew(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """outboxd.retried made by root's retry, and this user (the daemon's) not allowed to
    set its time: it is made anew, so the daemon, which looks at its inode and time,
    still sees that a retry ran."""
    path = tmp_path / "outboxd.retried"
    path.touch()
    before = path.stat().st_ino
    keep = tmp_path / "keep"  # the inode stays taken: a new file gets another
    os.link(path, keep)

    def refused(*args: Any, **kwargs: Any) -> None:
        raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), str(path))
    monkeypatch.setattr(os, "utime", refused)
    retry_record._touch(path)
    assert path.is_file() and path.stat().st_ino != before
