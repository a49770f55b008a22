"""A bundle whose read failed (daemon/loop/unreadable.py): what status shows, its one log line,
and when it is read again. How the pipeline keeps and steps such a bundle is in
test_pipeline.py."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from helpers import looks_fail, ubl_invoice, write
from matching import settings
from structlog.testing import capture_logs

from daemon import logs
from daemon.errors import InputError
from daemon.loop.unreadable import read_failed


@pytest.mark.parametrize("failure, shown, retried", [
    (InputError("bad-xml", "INV-1.xml", "is not well-formed XML — fix it"),
     "is not well-formed XML", False),
    (PermissionError(13, "Permission denied"), "may read the file", False),
    (OSError(errno.EMFILE, "Too many open files"), "outboxd tries again", True),
    # Listed, then gone at its open, the invoice file still there: a share that blinked.
    (FileNotFoundError(errno.ENOENT, "No such file or directory"), "outboxd tries again",
     True),
], ids=["input-error", "permission", "no-descriptors", "gone-at-open"])
def test_a_failed_read_is_shown_with_its_fix_and_read_again_only_if_no_change_would_come(
        tmp_path: Path, failure: BaseException, shown: str, retried: bool) -> None:
    """What the clerk can fix waits for a change of the files; no descriptors left (no
    event comes when it passes) is read again a rescan period later. One log line each,
    a bundle event without an id yet."""
    s = settings(tmp_path / "outbox")
    write(tmp_path / "outbox" / "INV-1.xml", ubl_invoice("INV-1"))
    with capture_logs() as lines:
        error, retry_at = read_failed(failure, "INV-1.xml", s, logs.get(), 100.0)
    assert shown in (error or "")
    assert retry_at == (100.0 + s.outbox.rescan_seconds if retried else None)
    [line] = lines
    assert line["event"].startswith("bundle cannot be read") and line["error"] == error
    assert line["invoice_file"] == "INV-1.xml" and line["bundle_id"] is None


def test_a_bundle_claimed_by_another_daemon_while_read_is_no_error(tmp_path: Path) -> None:
    """The invoice file left the outbox while it was read (another daemon's claim): normal
    work, said at info, nothing shown as wrong."""
    s = settings(tmp_path / "outbox")
    (tmp_path / "outbox").mkdir()
    with capture_logs() as lines:
        error, retry_at = read_failed(FileNotFoundError(2, "gone"), "INV-1.xml", s,
                                      logs.get(), 100.0)
    assert (error, retry_at) == (None, None)
    [line] = lines
    assert line["log_level"] == "info" and "left the outbox" in line["event"]


def test_a_read_failed_by_a_share_that_is_still_away_is_tried_again_not_taken_for_a_claim(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read failed by a share's I/O error, and the look at the invoice file just after
    fails the same way (the share still away): that is not the invoice file gone (another
    daemon's claim), said at info with nothing shown and never read again — the bundle
    stayed settling, unread, until a clerk changed it. Shown, and read again."""
    s = settings(tmp_path / "outbox")
    invoice = write(tmp_path / "outbox" / "INV-1.xml", ubl_invoice("INV-1"))
    looks_fail(monkeypatch, invoice)
    with capture_logs() as lines:
        error, retry_at = read_failed(OSError(errno.EIO, "Input/output error"), "INV-1.xml",
                                      s, logs.get(), 100.0)
    assert "outboxd tries again" in (error or "")
    assert retry_at == 100.0 + s.outbox.rescan_seconds
    assert [line["log_level"] for line in lines] == ["error"]
