"""A retry killed between its journal mark and its moves: the daemon's look quarantines
the row again while the bundle lies whole in quarantine/, and never while a retry holds
its folder (archiving/retrykilled.py)."""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from conftest import Env
from flocks import no_locks
from helpers import looks_fail, write
from structlog.testing import capture_logs

from daemon.archiving import retrykilled
from daemon.archiving.archive_papers import reason_papers, write_papers
from daemon.archiving.retrykilled import InterruptedRetries
from daemon.configuration.config import Settings
from daemon.configuration.config_load import load_settings
from daemon.journal import RETRIED_DETAIL, Journal

# Long before any mark a test makes (whatever the host's date): a reason.json newer than
# the mark is a later quarantine's.
QUARANTINED_AT = "2020-12-01T09:00:00.000Z"


@pytest.fixture
def settings(env: Env) -> Settings:
    return load_settings(env.write_config("http://127.0.0.1:9/bundles"))


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = Journal(tmp_path / "retrykilled.sqlite3")
    yield j
    j.close()


def marked(env: Env, journal: Journal, name: str = "INV-1") -> tuple[int, Path]:
    """A bundle quarantined whole (invoice file, sidecar, papers) whose row a retry
    marked moved back (as recorded_first writes it) before it was killed."""
    folder = env.quarantine / "2020-12-01" / f"{name}--0123456789ab"
    write(folder / f"{name}.xml", b"<Invoice/>")
    write(folder / name / "a.pdf", b"%PDF-1.4")
    write_papers(folder, reason_papers({"bundle_id": "0123456789ab" + "0" * 52,
                                        "invoice_file": f"{name}.xml", "reasons": [],
                                        "quarantined_at": QUARANTINED_AT}))
    row_id = journal.create(f"{name}.xml", "quarantined", since=QUARANTINED_AT,
                            archive_dir=str(folder), bundle_id="0123456789ab" + "0" * 52)
    journal.transition(row_id, "gone", RETRIED_DETAIL)
    return row_id, folder


def look(looks: InterruptedRetries, journal: Journal, settings: Settings) -> list[Any]:
    return looks.look(journal, settings, structlog.get_logger())


def test_a_killed_retrys_bundle_whole_in_quarantine_is_quarantined_again(
        env: Env, journal: Journal, settings: Settings) -> None:
    """The row a retry marked moved back, its folder unlocked (the retry is dead) and
    still holding the invoice file: quarantined again, with its folder and its first
    quarantine's time (so `status` and the page list it where it is), the detail saying
    the retry was interrupted and to run it again, and a warning naming the folder. A
    second look changes nothing."""
    row_id, folder = marked(env, journal)
    looks = InterruptedRetries()
    with capture_logs() as logs:
        [found] = look(looks, journal, settings)
    row = journal.get(row_id)
    assert (row.state, row.archive_dir, row.since) == ("quarantined", str(folder),
                                                       QUARANTINED_AT)
    detail = journal.last_detail(row_id) or ""
    assert detail.startswith("retry interrupted") and \
        "run outboxd retry 0123456789ab again" in detail  # the bundle named as retry takes it
    assert "already back" not in detail and found.back == []
    [said] = [e for e in logs if e["log_level"] == "warning"]
    assert said["folder"] == str(folder) and said["invoice_file"] == "INV-1.xml"
    assert "run outboxd retry 0123456789ab again to move the rest back" in said["event"]
    assert look(looks, journal, settings) == []
    assert journal.get(row_id).state == "quarantined"


def test_what_the_killed_retry_had_moved_back_is_named(
        env: Env, journal: Journal, settings: Settings) -> None:
    """Killed after the sidecar went back, before the invoice file (moved last): the
    bundle is quarantined again, and the detail names the sidecar as back in the outbox
    already (a second retry puts the invoice file beside it)."""
    row_id, folder = marked(env, journal)
    os.rename(folder / "INV-1", env.outbox / "INV-1")
    [found] = look(InterruptedRetries(), journal, settings)
    assert found.back == ["INV-1"] and journal.get(row_id).state == "quarantined"
    assert "already back in the outbox: INV-1" in (journal.last_detail(row_id) or "")


def test_a_folder_a_retry_holds_locked_is_left_until_it_is_free(
        env: Env, journal: Journal, settings: Settings) -> None:
    """While a retry holds the folder (between its mark and the end of its moves) the
    row stays as the retry marked it, whole as the folder still is: quarantined again
    then, the bundle would be listed twice once its files reach the outbox. Looked at
    again, once the lock is gone (the retry killed), it is quarantined again."""
    row_id, folder = marked(env, journal)
    looks = InterruptedRetries()
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert look(looks, journal, settings) == []
        assert journal.get(row_id).state == "gone"
    finally:
        os.close(fd)
    assert len(look(looks, journal, settings)) == 1
    assert journal.get(row_id).state == "quarantined"


@pytest.mark.parametrize("how", ["emptied", "removed"])
def test_a_bundle_the_retry_moved_back_stays_gone(
        env: Env, journal: Journal, settings: Settings, how: str) -> None:
    """The invoice file no longer in the folder (moved back, the folder's tidying not
    done), or the folder removed: the retry moved it, and the row stays `gone`."""
    row_id, folder = marked(env, journal)
    os.rename(folder / "INV-1.xml", env.outbox / "INV-1.xml")
    if how == "removed":
        for p in sorted(folder.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        folder.rmdir()
    looks = InterruptedRetries()
    assert look(looks, journal, settings) == []
    assert journal.get(row_id).state == "gone"
    assert journal.last_detail(row_id) == RETRIED_DETAIL


def test_a_look_the_share_fails_is_no_answer_and_is_made_again(
        env: Env, journal: Journal, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The invoice file's look failing with the share's EIO cannot tell whether the
    retry moved it: the row is left, no traceback, said once (not at each rescan while
    the share fails), and the next look with the share back quarantines it again."""
    row_id, _ = marked(env, journal)
    looks = InterruptedRetries()
    with monkeypatch.context() as m:
        looks_fail(m, "INV-1.xml")
        with capture_logs() as logs:
            assert look(looks, journal, settings) == []
        assert journal.get(row_id).state == "gone"
        with capture_logs() as again:
            assert look(looks, journal, settings) == []  # the share still fails
    assert [e for e in logs if "cannot tell yet" in e["event"]] and again == []  # said once
    assert len(look(looks, journal, settings)) == 1
    assert journal.get(row_id).state == "quarantined"


def test_without_locks_on_the_share_a_recent_mark_is_left_an_old_one_quarantined(
        env: Env, journal: Journal, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where the folder's file system gives no lock (NFS without lockd), whether a
    retry runs cannot be told: a mark younger than an hour is left, an older one (no
    retry of one bundle runs that long) quarantined again."""
    row_id, _ = marked(env, journal)
    monkeypatch.setattr(fcntl, "flock", no_locks)
    now = [time.time()]
    looks = InterruptedRetries(wall=lambda: now[0])
    assert look(looks, journal, settings) == []
    assert journal.get(row_id).state == "gone"
    now[0] += retrykilled.NO_LOCK_SECONDS + 1
    assert len(look(looks, journal, settings)) == 1
    assert journal.get(row_id).state == "quarantined"


def test_a_link_in_place_of_the_folder_is_never_followed(
        env: Env, journal: Journal, settings: Settings, tmp_path: Path) -> None:
    """The quarantine folder replaced by a link to a folder holding the invoice file:
    not followed, the row left."""
    row_id, folder = marked(env, journal)
    elsewhere = tmp_path / "elsewhere"
    folder.rename(elsewhere)
    folder.symlink_to(elsewhere)
    assert look(InterruptedRetries(), journal, settings) == []
    assert journal.get(row_id).state == "gone"


def test_a_folder_that_cannot_be_opened_for_the_share_is_looked_at_again(
        env: Env, journal: Journal, settings: Settings,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder's open failing (ESTALE) is no answer either: left, then looked at."""
    row_id, folder = marked(env, journal)
    real = os.open

    def stale(path: Any, *args: Any, **kw: Any) -> int:
        if os.fsdecode(path) == str(folder):
            raise OSError(errno.ESTALE, os.strerror(errno.ESTALE), str(folder))
        return real(path, *args, **kw)
    looks = InterruptedRetries()
    with monkeypatch.context() as m:
        m.setattr(os, "open", stale)
        assert look(looks, journal, settings) == []
    assert len(look(looks, journal, settings)) == 1
    assert journal.get(row_id).state == "quarantined"


def test_the_journal_is_asked_again_only_after_a_retry_touched_its_file(
        env: Env, journal: Journal, settings: Settings) -> None:
    """At the start the journal is asked; then, with nothing left to look at, a rescan
    asks it nothing (an idle outbox costs no query) until a retry touches
    RETRIED_NAME in the state dir before its mark: the mark it then commits is found."""
    looks = InterruptedRetries()
    assert look(looks, journal, settings) == []  # the start's look: nothing marked
    row_id, _ = marked(env, journal)
    assert look(looks, journal, settings) == []  # not asked: no retry touched the file
    assert journal.get(row_id).state == "gone"
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.paths.state_dir / retrykilled.RETRIED_NAME).touch()
    assert len(look(looks, journal, settings)) == 1
    assert journal.get(row_id).state == "quarantined"


def test_a_row_quarantined_again_and_retried_again_is_looked_at_anew(
        env: Env, journal: Journal, settings: Settings) -> None:
    """A row the daemon quarantined again is the same row a second retry marks: that
    retry killed too, its mark is looked at like the first (the daemon had taken the
    row for settled by its id, and left it `gone`: status and the page hid the bundle
    whole in quarantine/ again, now for good)."""
    row_id, _ = marked(env, journal)
    looks = InterruptedRetries()
    assert len(look(looks, journal, settings)) == 1
    journal.transition(row_id, "gone", RETRIED_DETAIL)  # the second retry, killed too
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    (settings.paths.state_dir / retrykilled.RETRIED_NAME).touch()
    assert len(look(looks, journal, settings)) == 1
    assert journal.get(row_id).state == "quarantined"


@pytest.mark.parametrize("where", ["outbox", "taken"])
def test_a_retry_killed_between_its_copys_rename_and_the_sources_removal_stays_back(
        env: Env, journal: Journal, settings: Settings, where: str) -> None:
    """Across file systems a move is copy, rename into place, then removal of the
    source: a retry killed between the last two left the invoice file whole in the
    outbox (or already taken from it by the daemon: a row of the same bundle made after
    the mark) and its copy still in quarantine/. The bundle went back: the row stays
    `gone` (quarantined again, it was listed twice, and "run outboxd retry again" was
    refused, or once the bundle was sent, put it back as a duplicate), and a warning
    names the quarantine folder as a leftover to remove."""
    row_id, folder = marked(env, journal)
    os.rename(folder / "INV-1", env.outbox / "INV-1")
    if where == "outbox":
        write(env.outbox / "INV-1.xml", (folder / "INV-1.xml").read_bytes())
    else:
        journal.create("INV-1.xml", "sent", bundle_id="0123456789ab" + "0" * 52)
    looks = InterruptedRetries()
    with capture_logs() as logs:
        assert look(looks, journal, settings) == []
    assert journal.get(row_id).state == "gone"
    [said] = [e for e in logs if e["log_level"] == "warning"]
    assert said["folder"] == str(folder) and "remove" in said["event"]
    assert look(looks, journal, settings) == []


def test_another_file_of_the_invoices_name_in_the_outbox_is_not_the_bundle_back(
        env: Env, journal: Journal, settings: Settings) -> None:
    """A file of the invoice's name in the outbox with other bytes (a corrected invoice
    a clerk dropped) is not the killed retry's copy: the row is quarantined again."""
    row_id, _ = marked(env, journal)
    write(env.outbox / "INV-1.xml", b"<Invoice>corrected</Invoice>")
    assert len(look(InterruptedRetries(), journal, settings)) == 1
    assert journal.get(row_id).state == "quarantined"


def test_the_looks_after_a_touch_go_on_by_the_daemons_own_clock_not_the_files_time(
        env: Env, journal: Journal, settings: Settings) -> None:
    """A retry's mark committed after the look its touch caused (the journal held by
    another process meanwhile) is found at a later rescan within TOUCHED of that look,
    whatever time the file bears: the host's clock stepped after the touch (here: a
    file time years off) once made the daemon stop looking at once, leaving the bundle
    hidden until its next start. Past TOUCHED (the daemon's monotonic clock), no query."""
    ticks = [1000.0]
    looks = InterruptedRetries(clock=lambda: ticks[0])
    assert look(looks, journal, settings) == []  # the start's look
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    touched = settings.paths.state_dir / retrykilled.RETRIED_NAME
    touched.touch()
    os.utime(touched, (1e9, 1e9))  # 2001: the clock stepped since
    assert look(looks, journal, settings) == []  # the touch's look: no mark yet
    row_id, _ = marked(env, journal)  # the retry's mark, committed after that look
    ticks[0] += retrykilled.TOUCHED - 1
    assert len(look(looks, journal, settings)) == 1
    assert journal.get(row_id).state == "quarantined"
    ticks[0] += 2
    assert look(looks, journal, settings) == []  # the found row's last look: settled
    other, _ = marked(env, journal, "INV-2")
    assert look(looks, journal, settings) == []  # not asked: the touch is past
    assert journal.get(other).state == "gone"


def test_a_folder_a_later_quarantine_of_the_bundle_took_is_not_the_marked_rows(
        env: Env, journal: Journal, settings: Settings) -> None:
    """A retry that moved the bundle back and removed its folder, and the bundle
    quarantined again the same day: the new quarantine is made at the same path
    (NAME--ID12, the name free again), with the invoice file in it. The retried row
    stays `gone` and nothing is said: quarantined again, the bundle was listed twice
    (at every start for a week, and by every `status`), or, taken for a copy left by a
    killed retry, its folder was called a leftover to remove."""
    row_id, folder = marked(env, journal)
    again = journal.create("INV-1.xml", "quarantined", archive_dir=str(folder),
                           bundle_id="0123456789ab" + "0" * 52)
    with capture_logs() as logs:
        assert look(InterruptedRetries(), journal, settings) == []
    assert journal.get(row_id).state == "gone" and journal.get(again).state == "quarantined"
    assert [e for e in logs if e["log_level"] == "warning"] == []
    assert retrykilled.interrupted_rows(journal, settings.outbox.path) == []



def test_a_folder_quarantined_after_the_mark_is_a_new_quarantine_not_the_marked_rows(
        env: Env, journal: Journal, settings: Settings) -> None:
    """The retried bundle quarantined again into its old folder's path by a daemon
    whose row this journal does not have (another host's on the same share): its
    reason.json says it was quarantined after the retry's mark. The retried row stays
    `gone`, nothing said: quarantined again, the bundle was listed twice."""
    from datetime import timedelta

    from daemon.journal import parse_iso
    from daemon.journal.records import iso_of
    row_id, folder = marked(env, journal)
    after = iso_of(parse_iso(journal.get(row_id).since) + timedelta(seconds=1))
    write_papers(folder, reason_papers({"bundle_id": "0123456789ab" + "0" * 52,
                                        "invoice_file": "INV-1.xml", "reasons": [],
                                        "quarantined_at": after}))
    with capture_logs() as logs:
        assert look(InterruptedRetries(), journal, settings) == []
    assert journal.get(row_id).state == "gone"
    assert [e for e in logs if e["log_level"] == "warning"] == []
    assert retrykilled.interrupted_rows(journal, settings.outbox.path) == []


def test_a_start_beside_an_old_touch_asks_the_journal_once(
        env: Env, journal: Journal, settings: Settings) -> None:
    """The file a retry touched days ago is there at the start: the start's look asks
    the journal, the rescans after it do not (an idle outbox costs no query), and a
    touch seen later opens the looks again."""
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    touched = settings.paths.state_dir / retrykilled.RETRIED_NAME
    touched.touch()
    old = time.time() - 3 * 86400
    os.utime(touched, (old, old))
    looks = InterruptedRetries(clock=lambda: 1000.0)
    assert look(looks, journal, settings) == []  # the start's look
    row_id, _ = marked(env, journal)
    assert look(looks, journal, settings) == []  # not asked
    assert journal.get(row_id).state == "gone"
    touched.touch()
    assert len(look(looks, journal, settings)) == 1
