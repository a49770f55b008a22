"""The status page never takes the place of a clerk's file of its name (daemon/report/pagefile.py
with daemon/fs/ourfiles.py), even one saved in the instant between outboxd's look at the
name and its rename or removal: the look is made to let the clerk in right after it
judged the page outboxd's own."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import page_in_a_new_outbox
from structlog.testing import capture_logs

from daemon.configuration.config import Settings
from daemon.journal import Journal
from daemon.report import pagefile, statuspage
from daemon.report.pagefile import PageFile
from daemon.report.statuspage import StatusPage

THEIRS = b"<p>the clerk's own page of that name</p>"


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "j.sqlite3")
    yield j
    j.close()


def settings_for(outbox: Path, page: str = "outboxd-status.html") -> Settings:
    s = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    return s.model_copy(update={"share": s.share.model_copy(update={"status_page": page})})


def clerk_saves_after_the_look(monkeypatch: pytest.MonkeyPatch, page: Path) -> None:
    """Right after the next look judged the page outboxd's, a clerk saves a file of that
    name (an editor's save: a new file renamed over it)."""
    real = PageFile.judge

    def judge(self: PageFile, path: Path, log: object) -> object:
        judged = real(self, path, log)
        monkeypatch.setattr(PageFile, "judge", real)
        draft = page.with_name("draft.html")
        draft.write_bytes(THEIRS)
        os.rename(draft, page)
        return judged

    monkeypatch.setattr(PageFile, "judge", judge)


def test_a_clerks_file_saved_while_the_page_is_rewritten_is_kept_and_said(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page is outboxd's and changes; a clerk saves a file of the page's name between
    the look and the rename: it stays byte for byte, no temp is left, and the log says
    the page is not written there and why."""
    outbox, settings, clock, page, target = page_in_a_new_outbox(tmp_path)
    assert page.refresh(journal, settings)
    journal.create("new.xml", "waiting", unattached_ids=["N-1"])
    clock[0] += 5.0
    clerk_saves_after_the_look(monkeypatch, target)
    with capture_logs() as logs:
        assert not page.refresh(journal, settings)
    assert target.read_bytes() == THEIRS
    assert sorted(os.listdir(outbox)) == ["outboxd-status.html"]
    [line] = [e for e in logs if e["event"] == "cannot write the status page"]
    assert "not a status page outboxd wrote" in line["error"]


def test_a_clerks_file_saved_while_the_stopped_page_is_written_is_kept(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above, for the page written once more at a clean stop."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = settings_for(outbox)
    page = StatusPage(clock=lambda: 100.0)
    target = outbox / "outboxd-status.html"
    assert page.refresh(journal, settings)
    clerk_saves_after_the_look(monkeypatch, target)
    with capture_logs() as logs:
        assert not page.stopped(journal, settings)
    assert target.read_bytes() == THEIRS
    assert sorted(os.listdir(outbox)) == ["outboxd-status.html"]
    assert any(e["event"] == "cannot write the status page" for e in logs)


def test_a_clerks_file_saved_while_the_old_page_is_removed_at_a_reload_is_kept(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload renames the page: the old one goes if it is outboxd's. A clerk's file
    saved under the old name between the look and the removal stays, byte for byte."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    on, renamed = settings_for(outbox), settings_for(outbox, "status.html")
    page = StatusPage(clock=lambda: 100.0)
    old = outbox / "outboxd-status.html"
    assert page.refresh(journal, on)
    real = pagefile.old_page

    def old_page(path: Path) -> object:
        judged = real(path)
        monkeypatch.setattr(statuspage, "old_page", real)
        old.with_name("draft.html").write_bytes(THEIRS)
        os.rename(old.with_name("draft.html"), old)
        return judged

    monkeypatch.setattr(statuspage, "old_page", old_page)
    page.reconfigure(on, renamed)
    assert old.read_bytes() == THEIRS
    assert sorted(os.listdir(outbox)) == ["outboxd-status.html"]


def test_a_clerks_file_saved_right_after_a_write_is_not_taken_for_the_page(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """outboxd remembers its page as the file it wrote, not as whatever has the name
    once the write is done: a clerk's file saved in that instant is not taken for the
    page (which is replaced without a look at its content) at the next refresh."""
    outbox, settings, clock, page, target = page_in_a_new_outbox(tmp_path)
    real = statuspage.replace_ours

    def then_the_clerk_saves(path: Path, data: bytes, look: Any) -> os.stat_result:
        written = real(path, data, look)
        monkeypatch.setattr(statuspage, "replace_ours", real)
        target.with_name("draft.html").write_bytes(THEIRS)
        os.rename(target.with_name("draft.html"), target)
        return written

    monkeypatch.setattr(statuspage, "replace_ours", then_the_clerk_saves)
    assert page.refresh(journal, settings)
    assert not page._file.unchanged(target)
    journal.create("new.xml", "waiting", unattached_ids=["N-1"])
    clock[0] += 5.0
    with capture_logs() as logs:
        assert not page.refresh(journal, settings)
    assert target.read_bytes() == THEIRS
    assert any("not a status page outboxd wrote" in e.get("error", "") for e in logs)


def test_another_daemons_page_swapped_for_a_fifo_link_or_nothing_after_the_listing_is_skipped(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of other daemons sharing the outbox, each replaced between the listing and its
    read — by a FIFO, a link to a running page, or removed: none is opened as what it is
    (a FIFO's open would wait for a writer, a link's target is never followed), none is
    told as a daemon still running; a running page beside them still is."""
    from datetime import UTC, datetime

    from daemon.report import pagehtml
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    at = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    running = pagehtml.page("", at, due=at)
    for n in ("fifo", "link", "gone", "up"):
        (outbox / f"outboxd-status-{n}.html").write_text(running)
    elsewhere = tmp_path / "elsewhere.html"
    elsewhere.write_text(running)
    real_scandir = os.scandir

    class SwappedAfterTheListing:
        def __init__(self, path: Path) -> None:
            self._it = real_scandir(path)

        def __enter__(self) -> Iterator[os.DirEntry[str]]:
            return iter(list(self._it))  # the entries as they were when listed

        def __exit__(self, *exc: object) -> None:
            self._it.close()
            (outbox / "outboxd-status-fifo.html").unlink()
            os.mkfifo(outbox / "outboxd-status-fifo.html")
            (outbox / "outboxd-status-link.html").unlink()
            (outbox / "outboxd-status-link.html").symlink_to(elsewhere)
            (outbox / "outboxd-status-gone.html").unlink()
    monkeypatch.setattr(pagefile.os, "scandir", SwappedAfterTheListing)
    assert pagefile.running_pages(outbox, "outboxd-status.html") == ["outboxd-status-up.html"]


def test_an_old_page_the_share_refuses_to_remove_at_a_reload_is_logged_and_the_reload_goes_on(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload that renames the page, on a share that refuses the old page's removal (gone
    read-only, permissions changed): the reload is not refused for a view — a warning
    names the old page and the error, the old file stays, and the new page is written at
    the next refresh."""
    import errno
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    on, renamed = settings_for(outbox), settings_for(outbox, "status.html")
    page = StatusPage(clock=lambda: 100.0)
    old = outbox / "outboxd-status.html"
    assert page.refresh(journal, on)

    def refused(path: Path, *_: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
    monkeypatch.setattr(statuspage, "remove_ours", refused)
    with capture_logs() as logs:
        page.reconfigure(on, renamed)
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"] == "the old status page could not be removed"
    assert warning["file"] == str(old) and "Read-only file system" in warning["error"]
    assert "Errno" not in warning["error"]  # in words, as archiving/ says an OSError
    assert old.exists()
    page.clock = lambda: 200.0  # type: ignore[method-assign]
    assert page.refresh(journal, renamed)
    assert (outbox / "status.html").exists()
