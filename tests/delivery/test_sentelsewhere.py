"""daemon/delivery/sentelsewhere.py: a bundle this daemon has on its way that another daemon
(its own journal, the same outbox, processing/ and sent/) took over and archived ends
`sent` here once this daemon's work folder for it is gone for good — and never while the
folder is there, its share is away, or the receipt is another bundle's."""

from __future__ import annotations

import errno
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import Scripted, claimed, make, run_once  # noqa: E402
from structlog.testing import capture_logs  # noqa: E402

from daemon.archiving.sentnews import SentNews  # noqa: E402
from daemon.delivery import sentelsewhere  # noqa: E402
from daemon.errors import Retryable  # noqa: E402
from daemon.journal import QUARANTINING  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402

STUCK = "is the share mounted?"


def retrying_here(tmp_path: Path) -> tuple[Pipeline, int, Path]:
    """Daemon B claimed INV-1 and its first POST failed: the row is retrying, its bundle
    in B's work folder (returned)."""
    b, _s, row = claimed(tmp_path)
    b.finish.d = Scripted(Retryable("HTTP 503 from the receiver", 503))
    assert b.finish.attempt(row) is not None
    assert b.j.get(row).state == "retrying"
    return b, row, Path(b.j.get(row).work_dir or "")


def taken_over(tmp_path: Path, work: Path, keep_folder: bool = False,
               copy: bool = False) -> Path:
    """An admin moves the bundle out of B's work folder back into the outbox (the folder
    itself too, unless `keep_folder`; or copies it, B's folder left whole: `copy`), and
    daemon A, on its own journal, claims, sends and archives it: A's sent/ entry."""
    outbox = tmp_path / "outbox"
    for entry in work.iterdir():
        if copy:
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, outbox / entry.name)
        else:
            entry.rename(outbox / entry.name)
    if not keep_folder and not copy:
        work.rmdir()
    a, s = make(tmp_path, paths={"state_dir": str(tmp_path / "state-a")})
    try:
        [a_row] = run_once(a)
        entry = a.j.get(a_row)
        assert entry.state == "sent" and entry.archive_dir is not None
        assert Path(entry.archive_dir).parent.parent == s.sent_dir
        return Path(entry.archive_dir)
    finally:
        a.j.close()


def look(b: Pipeline) -> SentNews:
    """B's look at sent/ (as at its start and each rescan), its receipts of bundles on
    their way here handed to B's finisher, as the service wires them."""
    news = SentNews()
    b.finish.elsewhere = news.in_flight
    news.look(b.j, b.s.sent_dir)
    return news


def test_a_bundle_another_daemon_archived_after_this_ones_work_folder_went_ends_sent(
        tmp_path: Path) -> None:
    """Before, B's row stayed `retrying` for ever, each attempt saying "the processing
    folder … is not there — is the share mounted?", while A's sent/ entry held the bundle.
    Now B's next attempt closes it as sent, naming A's entry, and posts nothing; its
    invoice id counts as sent here and nothing more is scheduled."""
    b, row, work = retrying_here(tmp_path)
    archived = taken_over(tmp_path, work)
    look(b)
    b.finish.d = Scripted()  # any POST would fail the test: nothing left to post
    with capture_logs() as logs:
        assert b.finish.attempt(row) is None
    shown = b.j.get(row)
    assert shown.state == "sent" and shown.shown_state == "sent"
    assert shown.archive_dir == str(archived) and shown.last_error is None
    # Sent as of the other daemon's delivery, not of this look (the page's "sent today").
    receipt = json.loads((archived / "receipt.json").read_text("utf-8"))
    assert shown.since == receipt["delivered_at"]
    detail = b.j.last_detail(row) or ""
    assert "another daemon" in detail and str(archived) in detail
    assert b.j.sent_invoice_ids(["INV-1"], "ff" * 32) == ["INV-1"]
    assert [e for e in logs if e["event"].startswith("bundle sent by another daemon")]
    assert not [e for e in logs if STUCK in str(e.get("error", ""))]
    assert b.finish.closable() == [] and b.finish.attempt(row) is None


def test_the_rescan_brings_such_a_row_forward_at_once(tmp_path: Path) -> None:
    """A row retrying on a long back-off is named by closable() once its receipt is known
    and its folder gone (the loop schedules it at 0 s); not before the look."""
    b, row, work = retrying_here(tmp_path)
    taken_over(tmp_path, work)
    assert b.finish.closable() == []
    look(b)
    assert b.finish.closable() == [row]


def test_a_work_folder_still_there_is_never_closed(tmp_path: Path) -> None:
    """The bundle moved out of B's work folder but the folder left (empty): the folder is
    there, so the row is not closed — it goes on retrying, as before."""
    b, row, work = retrying_here(tmp_path)
    taken_over(tmp_path, work, keep_folder=True)
    look(b)
    assert b.finish.closable() == []
    with capture_logs():
        assert b.finish.attempt(row) is not None
    assert b.j.get(row).state == "retrying" and STUCK in (b.j.get(row).last_error or "")


def test_a_processing_folder_off_its_share_is_never_taken_for_a_folder_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the processing folder is off the mount it was on at the start (its share
    unmounted: foldermounts.py), or not there at all, a missing work folder may only be
    out of sight: the row stays retrying. Once the share is back (the folder still gone),
    the next attempt closes it — the receipt read once is kept, not read again."""
    b, row, work = retrying_here(tmp_path)
    taken_over(tmp_path, work)
    processing = b.s.processing_dir
    away = f"[paths] processing {processing} is not on the file system it was on"
    real = b.finish.mounts.away
    monkeypatch.setattr(b.finish.mounts, "away",
                        lambda folder: away if folder == processing else real(folder))
    look(b)
    with capture_logs():
        assert b.finish.attempt(row) is not None
    assert b.j.get(row).state == "retrying"
    monkeypatch.setattr(b.finish.mounts, "away", real)
    processing.rename(processing.with_name("processing-away"))
    assert b.finish.closable() == []
    with capture_logs():
        assert b.finish.attempt(row) is not None
    assert b.j.get(row).state == "retrying"
    processing.with_name("processing-away").rename(processing)
    with capture_logs():
        assert b.finish.attempt(row) is None
    assert b.j.get(row).state == "sent"


def test_a_receipt_of_another_bundle_under_the_same_name_closes_nothing(
        tmp_path: Path) -> None:
    """A's entry for INV-1 holds other bytes (the clerk corrected the invoice before A
    sent it): another bundle id, so B's row is not closed by it."""
    b, row, work = retrying_here(tmp_path)
    outbox = tmp_path / "outbox"
    for entry in work.iterdir():
        entry.rename(outbox / entry.name)
    work.rmdir()
    (outbox / "INV-1" / "note.pdf").write_bytes((outbox / "INV-1" / "a.pdf").read_bytes())
    a, _ = make(tmp_path, paths={"state_dir": str(tmp_path / "state-a")})
    try:
        [a_row] = run_once(a)
        assert a.j.get(a_row).bundle_id != b.j.get(row).bundle_id
    finally:
        a.j.close()
    look(b)
    with capture_logs():
        assert b.finish.attempt(row) is not None
    assert b.j.get(row).state == "retrying"



def test_a_dot_outboxd_made_a_link_to_an_empty_folder_is_no_work_folder_gone(
        tmp_path: Path) -> None:
    """A share user moves `.outboxd` aside and puts a link to an empty folder (with an
    empty processing/) in its place, while A's sent/ holds the same bundle (a copy): B's
    work folder is not looked for behind the link, so it is not taken for gone and the
    row is not closed as sent while the real folder stays; the attempt names `.outboxd`
    as the link (not "is the share mounted?"). With the folder itself back,
    the row is still not closed (its folder is there)."""
    b, row, work = retrying_here(tmp_path)
    taken_over(tmp_path, work, copy=True)
    dot = tmp_path / "outbox" / ".outboxd"
    (tmp_path / "empty" / "processing").mkdir(parents=True)
    dot.rename(tmp_path / "aside")
    dot.symlink_to(tmp_path / "empty")
    look(b)
    assert b.finish.closable() == []
    with capture_logs():
        assert b.finish.attempt(row) is not None
    shown = b.j.get(row)
    # Held as a work folder swapped for a link is (test_finish): to be quarantined once
    # the folder is back, shown retrying meanwhile; never sent, never closed as sent.
    assert shown.state == "quarantining" and shown.shown_state == "retrying"
    assert str(dot) in (shown.last_error or "") and "symbolic link" in (shown.last_error or "")
    assert STUCK not in (shown.last_error or "")
    assert (tmp_path / "aside" / "processing" / work.name / "INV-1.xml").is_file()
    dot.unlink()
    (tmp_path / "aside").rename(dot)
    assert b.finish.closable() == []


def test_only_a_row_on_its_way_here_is_closed(tmp_path: Path) -> None:
    """A row this daemon decided otherwise (to be quarantined, its folder to come back)
    is not closed as sent by another daemon's receipt of the same bundle."""
    b, row, work = retrying_here(tmp_path)
    taken_over(tmp_path, work)
    look(b)
    b.j.transition(row, QUARANTINING, "to be quarantined")
    assert b.finish.sent_elsewhere(b.j.get(row)) is None


def test_a_work_folder_of_a_processing_folder_no_longer_in_force_is_never_taken_for_gone(
        tmp_path: Path) -> None:
    """A row whose work folder lies in another processing folder (a path a reload or an
    upgrade no longer names): that folder's mount is not known, so a folder of the same
    name missing from the processing folder in force proves nothing."""
    b, row, work = retrying_here(tmp_path)
    taken_over(tmp_path, work)
    look(b)
    b.j.update(row, work_dir=str(tmp_path / "processing-before" / work.name))
    assert b.finish.sent_elsewhere(b.j.get(row)) is None


def test_a_work_folder_made_a_link_to_nowhere_is_not_taken_for_gone(tmp_path: Path) -> None:
    """A link in the work folder's place, to nothing: the name is there (the attempt
    refuses the link and says so), so the row is not closed as sent."""
    b, row, work = retrying_here(tmp_path)
    taken_over(tmp_path, work)
    work.symlink_to(tmp_path / "nowhere")
    look(b)
    assert b.finish.sent_elsewhere(b.j.get(row)) is None


def test_a_work_folder_that_cannot_be_looked_at_is_not_taken_for_gone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The look at the work folder fails for another reason than its absence (no
    permission, a share's error): not known, so the row is not closed, and the look
    raises nothing (no traceback in the workers)."""
    b, row, work = retrying_here(tmp_path)
    taken_over(tmp_path, work)
    look(b)
    real = os.stat

    def refused(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if path == work.name:
            raise PermissionError(errno.EACCES, "Permission denied", work.name)
        return real(path, *args, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setattr(sentelsewhere.os, "stat", refused)
    assert b.finish.sent_elsewhere(b.j.get(row)) is None
