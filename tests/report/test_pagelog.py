"""What the status page says in the admin's log: a write the share refused, with the
page's file and the fix, said once while it lasts; a release file whose name can never
be used, once while it stays, by its name on disk."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import pytest
from helpers import Page, page_in_a_new_outbox, temps_locked_as_made
from structlog.testing import capture_logs

from daemon.configuration.config import Settings
from daemon.journal import Journal
from daemon.report import statuspage
from daemon.report.statuspage import MIN_INTERVAL, StatusPage


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "j.sqlite3")
    yield j
    j.close()


def test_a_release_file_named_in_latin1_is_listed_escaped_and_logged_once(
        journal: Journal, tmp_path: Path) -> None:
    """A release file b'Faktura-\\udce5.send-anyway' in the outbox: the page is written and
    lists it under the escaped name Faktura-\\udce5.send-anyway with the rule and the fix;
    one error line names it, not one per refresh. (It used to raise UnicodeEncodeError
    out of refresh, which stopped the daemon at every start.)"""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    open(os.path.join(os.fsencode(outbox), b"Faktura-\xe5.send-anyway"), "wb").close()
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    clock = [100.0]
    page = StatusPage(clock=lambda: clock[0])
    with capture_logs() as logs:
        assert page.refresh(journal, settings)
        journal.create("new.xml", "waiting", unattached_ids=["N-1"])
        clock[0] += 5.0
        assert page.refresh(journal, settings)  # rewritten (journal changed), not logged again
    text = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8")).text["releases"]
    assert "Faktura-\\udce5.send-anyway" in text
    assert "not valid UTF-8" in text and "rename" in text
    [line] = [e for e in logs if "release file" in e["event"]]
    assert line["log_level"] == "error" and line["file"] == "Faktura-\\udce5.send-anyway"
    assert "not valid UTF-8" in line["error"]


def test_a_bad_release_file_that_goes_is_forgotten_and_said_again_if_dropped_again(
        journal: Journal, tmp_path: Path) -> None:
    """A daemon that runs for months keeps no name of a bad release file that went: once
    it is gone the page forgets it, and one dropped again later is said again."""
    outbox, settings, clock, page, _ = page_in_a_new_outbox(tmp_path)
    bad = os.path.join(os.fsencode(outbox), b"Faktura-\xe5.send-anyway")
    with capture_logs() as logs:
        for n in range(3):
            open(bad, "wb").close()
            clock[0] += 5.0
            assert page.refresh(journal, settings)
            os.unlink(bad)
            journal.create(f"new-{n}.xml", "waiting", unattached_ids=[f"N-{n}"])
            clock[0] += 5.0
            assert page.refresh(journal, settings)
            assert page._log.reported_bad == set()
    assert len([e for e in logs if "release file" in e["event"]]) == 3


def test_two_bad_release_files_shown_alike_are_each_logged_once_and_kept_apart(
        journal: Journal, tmp_path: Path) -> None:
    """Two release files whose names differ on disk but are shown alike — one holding
    the byte 0xE5 (not UTF-8), the other the six characters \\udce5 typed, each with a
    control character — are two rows and two error lines, one each, not one per
    refresh. One removed: the other stays listed and is not said again; the removed one
    dropped again is said again. Keyed by the name shown, they were one entry: one line
    for two files, and the second one's return went unsaid."""
    outbox, settings, clock, page, path = page_in_a_new_outbox(tmp_path)
    raw = os.path.join(os.fsencode(outbox), b"F-\xe5\x01.send-anyway")
    typed = os.path.join(os.fsencode(outbox), b"F-\\udce5\x01.send-anyway")
    shown = "F-\\udce5\\x01.send-anyway"

    def refresh() -> list[str]:
        clock[0] += 5.0
        journal.create(f"new-{clock[0]}.xml", "waiting", unattached_ids=[f"N-{clock[0]}"])
        assert page.refresh(journal, settings)
        return [r.split("\t")[0] for r in Page(path.read_text(encoding="utf-8"))
                .rows.get("releases", [])]

    with capture_logs() as logs:
        open(raw, "wb").close()
        open(typed, "wb").close()
        assert refresh() == [shown, shown]
        assert refresh() == [shown, shown]
        said = [e for e in logs if "release file" in e["event"]]
        assert [e["file"] for e in said] == [shown, shown]
        os.unlink(raw)
        assert refresh() == [shown]
        open(raw, "wb").close()
        assert refresh() == [shown, shown]
    said = [e for e in logs if "release file" in e["event"]]
    assert [e["file"] for e in said] == [shown] * 3


def test_a_page_whose_temps_another_process_locks_is_said_once_not_at_each_refresh(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clerk's process that flocks every new file in the outbox: each refresh's temp (of
    a new name) is given up within 50 ms. "cannot write the status page" is logged once while
    that lasts, not at every refresh (every 2 s while bundles move): the error named the
    new temp each time. Let go, the page is written."""
    outbox, settings, clock, page, target = page_in_a_new_outbox(tmp_path)
    with temps_locked_as_made(monkeypatch) as theirs, capture_logs() as logs:
        for n in range(3):
            journal.create(f"new-{n}.xml", "waiting", unattached_ids=[f"N-{n}"])
            assert not page.refresh(journal, settings)
            clock[0] += MIN_INTERVAL
        assert len(theirs) == 3
    assert [e for e in logs if e["event"] == "cannot write the status page"] == logs
    assert len(logs) == 1 and "locked" in logs[0]["error"]
    assert page.refresh(journal, settings) and "new-2.xml" in target.read_text()


@pytest.mark.parametrize(("err", "fix"), [
    (errno.ENOSPC, "free space on that file system"),
    (errno.EROFS, "the outbox's file system is mounted read-only: remount it read-write"),
    (errno.EACCES, "give outboxd's user write access to the outbox folder"),
])
def test_a_page_the_share_refuses_is_logged_with_its_file_and_the_fix(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int,
        fix: str) -> None:
    """A full, read-only or forbidding share: "cannot write the status page" names the
    page's file and the admin's fix (explore-admin saw only "[Errno 28] No space left on
    device"), and that it comes back by itself; at a refresh and at the stop alike."""
    outbox, settings, clock, page, target = page_in_a_new_outbox(tmp_path)

    def refused(*_: Any) -> None:
        raise OSError(err, os.strerror(err), str(outbox / ".outboxd-status.html.1a2b.tmp"))
    monkeypatch.setattr(statuspage, "replace_ours", refused)
    with capture_logs() as logs:
        assert not page.refresh(journal, settings)
    [line] = [e for e in logs if e["event"] == "cannot write the status page"]
    assert line["file"] == str(target) and line["error"] == os.strerror(err)
    assert line["fix"].startswith(fix) and "written again by itself" in line["fix"]
    with capture_logs() as logs:
        assert not StatusPage(clock=lambda: 100.0).stopped(journal, settings)
    [line] = [e for e in logs if e["event"] == "cannot write the status page"]
    assert line["file"] == str(target) and line["fix"].startswith(fix)
