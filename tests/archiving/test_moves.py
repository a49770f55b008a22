"""The end of a claimed bundle on disk (moves.py): archived in sent/ or quarantined
whole after a crash or a power loss at any point of the move, with receipt.json as the
journal kept it, never posted again; a failed move retried on its own back-off. Real
journal, real files, the directory transport for the first delivery."""

from __future__ import annotations

import errno
import io
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import Idempotent, Scripted, claimed, delivered_unarchived, restart  # noqa: E402
from exdev import exdev_for, killed_after_rename  # noqa: E402
from helpers import Wall, pdf_bytes, pin_wall  # noqa: E402

from daemon import manifest  # noqa: E402
from daemon.archiving import archive  # noqa: E402
from daemon.delivery.answers import Receipt  # noqa: E402
from daemon.errors import Rejected  # noqa: E402
from daemon.fs import fsmove  # noqa: E402
from daemon.journal import DELIVERED, QUARANTINING  # noqa: E402
from daemon.names import fit_bytes  # noqa: E402
from daemon.report import pagerender  # noqa: E402


def test_power_loss_that_kept_the_move_but_not_the_receipt_ends_with_it_whole(
        tmp_path: Path) -> None:
    """The archive move reached the disk but the receipt's bytes and the 'sent' commit did
    not (both are synced only after the move): the restarted daemon writes receipt.json
    again from the journal's delivered record and records 'sent' — without a POST."""
    p, s, row = claimed(tmp_path)
    assert p.finish.attempt(row) is None
    entry = Path(p.j.get(row).archive_dir or "")
    # What the disk and the journal can hold after such a power loss: the delivered
    # record as written before the move (the 'sent' commit, which keeps less, lost).
    record = json.loads((entry / "receipt.json").read_text("utf-8"))
    p.j.transition(row, DELIVERED, "state before the power loss", response=record)
    (entry / "receipt.json").write_bytes(b"")

    assert restart(p, s, row).attempt(row) is None
    after = p.j.get(row)
    assert after.state == "sent" and after.archive_dir == str(entry)
    assert json.loads((entry / "receipt.json").read_text("utf-8")) == record
    assert [e.name for e in s.sent_dir.glob("*/*")] == [entry.name]
    assert list(s.processing_dir.iterdir()) == []


def test_crash_between_the_receipt_and_the_move_ends_with_one_complete_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Delivered, receipt.json written into the work folder, and then the move did not
    happen (the daemon died there): after a restart the bundle is archived once, with
    its files and a complete receipt, no temp files, and not posted again."""
    p, s, row = claimed(tmp_path)

    def died(*_: Any, **__: Any) -> Path:
        raise OSError(5, "the daemon died here")

    monkeypatch.setattr(archive, "move_into_place", died)
    assert p.finish.attempt(row) is not None  # the move is to be tried again
    monkeypatch.undo()
    delivered = p.j.get(row)
    assert delivered.state == DELIVERED and delivered.work_dir
    work = Path(delivered.work_dir)
    assert (work / "receipt.json").is_file()  # written before the move

    assert restart(p, s, row).attempt(row) is None
    after = p.j.get(row)
    [entry] = s.sent_dir.glob("*/*")
    assert after.state == "sent" and after.archive_dir == str(entry)
    assert sorted(e.name for e in entry.iterdir()) == ["INV-1", "INV-1.xml", "receipt.json"]
    assert json.loads((entry / "receipt.json").read_text("utf-8")) == delivered.response
    assert not work.exists()
    assert len(list((tmp_path / "target").iterdir())) == 1  # delivered once


def test_a_receipt_whose_archive_waits_is_made_durable_before_the_move(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the workers' archive_later, a 2xx hands the archive over; the attempt that
    archives makes every commit durable (the receipt, the archive folder) before it
    places anything in sent/."""
    p, s, row = claimed(tmp_path)
    p.finish.d = Idempotent(Receipt(201, {"receipt_id": "r-1"}, "r-1"))
    handed: list[int] = []
    p.finish.archive_later = handed.append
    assert p.finish.attempt(row) is None
    assert handed == [row] and p.j.get(row).state == DELIVERED
    assert list(s.sent_dir.glob("*/*")) == []
    order: list[str] = []
    make_durable, place = p.j.make_durable, archive.place
    monkeypatch.setattr(p.j, "make_durable", lambda: (order.append("durable"), make_durable()))
    monkeypatch.setattr("daemon.archiving.moves.place",
                        lambda *a, **k: (order.append("place"), place(*a, **k))[1])
    assert p.finish.attempt(row) is None
    assert order == ["durable", "place"]
    assert p.j.get(row).state == "sent" and p.finish.d.posts == 1


def test_a_receipt_is_in_the_journal_before_its_archive_is_handed_over(
        tmp_path: Path) -> None:
    """Journal first: when the workers are handed the archive of a delivered bundle, its
    row already says delivered (a failed write of the receipt must leave nothing queued
    for an archive, nor a row that would be posted again while queued)."""
    p, _, row = claimed(tmp_path)
    p.finish.d = Idempotent(Receipt(201, {"receipt_id": "r-1"}, "r-1"))
    handed: list[tuple[int, str]] = []
    p.finish.archive_later = lambda later: handed.append((later, p.j.get(later).state))
    assert p.finish.attempt(row) is None
    assert handed == [(row, DELIVERED)]


def test_a_directory_delivery_is_archived_at_once_even_with_archive_later(
        tmp_path: Path) -> None:
    """A directory target may be emptied by its transfer agent before a repeat, so its
    receipt is durable at once and its archive does not wait."""
    p, s, row = claimed(tmp_path)
    handed: list[int] = []
    p.finish.archive_later = handed.append
    assert p.finish.attempt(row) is None
    assert handed == [] and p.j.get(row).state == "sent"


class _Later(datetime):
    """The wall clock a day after the crash."""

    @classmethod
    def now(cls, tz: Any = None) -> datetime:  # type: ignore[override]
        return datetime.now(tz) + timedelta(days=1)


class _Died(BaseException):
    """The daemon dies here (a BaseException: nothing on the way catches it)."""


def test_a_crash_while_deleting_the_source_of_a_copy_into_quarantine_keeps_one_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quarantine on another file system (copy, sync, rename, delete): the daemon dies
    after the complete copy was renamed into quarantine/ while the work folder was
    being deleted (one attachment already gone from it). After a restart the bundle
    has one quarantine entry, the complete one, and the journal points at it; the
    papers written again are those of the first try, so they match it."""
    p, s, row = claimed(tmp_path)
    work = Path(p.j.get(row).work_dir or "")

    def dies_midway(*_: Any) -> None:
        # The work folder's contents are removed from its descriptor, entry by entry.
        (work / "INV-1" / "a.pdf").unlink()
        raise _Died

    exdev_for(monkeypatch, work)
    monkeypatch.setattr(fsmove, "_remove_copied", dies_midway)
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 400", 400, "no"))
    with pytest.raises(_Died):
        p.finish.attempt(row)
    monkeypatch.undo()
    [copy] = s.quarantine_dir.glob("*/*")
    first_papers = (copy / "reason.json").read_bytes()

    fin = restart(p, s, row)
    monkeypatch.setattr(manifest, "datetime", _Later)  # the clock moved on meanwhile
    assert fin.attempt(row) is None
    done = p.j.get(row)
    assert [e.name for e in s.quarantine_dir.glob("*/*")] == [copy.name]
    assert done.state == "quarantined" and done.archive_dir == str(copy)
    assert (copy / "INV-1" / "a.pdf").read_bytes() == pdf_bytes()
    assert (copy / "reason.json").read_bytes() == first_papers
    assert not work.exists()


def test_a_crash_after_a_copy_beside_someone_elses_entry_keeps_one_entry_the_journal_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Quarantine on another file system, its entry name taken by someone else's folder
    just before the move (a second daemon, a clerk): the bundle is copied beside it (-2),
    and the daemon dies while the work folder is being deleted. The name beside was
    journaled before the copy: after a restart the retry finds its own copy there, so
    the bundle has one entry, the one the journal names (it was copied a second time,
    -3, the journal naming that one and the -2 left an orphan copy)."""
    p, s, row = claimed(tmp_path)
    work = Path(p.j.get(row).work_dir or "")
    rename = fsmove.rename_noreplace

    taken: list[Path] = []

    def across(src: Path, dst: Path, *at: int | None) -> None:
        if Path(src) == work:
            if not taken:  # the name taken after the look, before the move
                taken.append(Path(dst))
                os.mkdir(Path(dst))
                Path(dst, "theirs.xml").write_bytes(b"<Invoice>other</Invoice>")
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        rename(src, dst, *at)

    def dies_midway(*_: Any) -> None:
        raise _Died

    monkeypatch.setattr(fsmove, "rename_noreplace", across)
    monkeypatch.setattr(fsmove, "_remove_copied", dies_midway)
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 400", 400, "no"))
    with pytest.raises(_Died):
        p.finish.attempt(row)
    monkeypatch.undo()
    theirs, copy = sorted(s.quarantine_dir.glob("*/*"))
    assert copy.name == theirs.name + "-2"
    assert p.j.get(row).archive_dir == str(copy)

    assert restart(p, s, row).attempt(row) is None
    done = p.j.get(row)
    assert sorted(s.quarantine_dir.glob("*/*")) == [theirs, copy]
    assert done.state == "quarantined" and done.archive_dir == str(copy)
    assert (copy / "INV-1" / "a.pdf").read_bytes() == pdf_bytes()
    assert sorted(os.listdir(theirs)) == ["theirs.xml"]
    assert not work.exists()


def test_a_long_named_bundle_an_older_version_was_copying_into_sent_is_archived_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Upgrade: the version before the per-daemon copy names journaled the sent/ folder of
    a long invoice name cut to 240 bytes (now shorter, with room for the daemon's tag) and
    was killed copying into it across file systems, leaving its `.NAME--ID12.partial`.
    The new version archives the bundle once into the folder journaled — its own copy
    name cut to fit (it failed 'File name too long' on every try, the bundle delivered
    and never archived) — and removes the older copy, which nothing else would."""
    name = "INV-" + "L" * 220  # 224 bytes: cut at 186 now, not at 226 before
    p, s, row, work, journaled = delivered_unarchived(tmp_path, monkeypatch, name)
    bundle_id = p.j.get(row).bundle_id
    assert bundle_id
    # What the older version journaled and left in sent/: its cut (255 - 15 bytes in all).
    older = journaled.parent / (fit_bytes(name, 240 - 14) + f"--{bundle_id[:12]}")
    assert older.name != journaled.name
    p.j.update(row, archive_dir=str(older))
    left = older.with_name(f".{older.name}.partial")
    (left / name).mkdir(parents=True)
    (left / name / "a.pdf").write_bytes(b"half a copy")
    exdev_for(monkeypatch, work)
    assert restart(p, s, row).attempt(row) is None
    done = p.j.get(row)
    assert (done.state, done.archive_dir, done.last_error) == ("sent", str(older), None)
    assert os.listdir(older.parent) == [older.name]
    assert (older / name / "a.pdf").read_bytes() == pdf_bytes()
    assert (older / f"{name}.xml").is_file() and not work.exists()


def test_a_day_folder_made_a_link_never_costs_a_file_where_it_leads(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The row's archive folder journaled by an earlier run; a clerk then replaces its day
    folder in sent/ by a link to a folder of theirs holding a file named as an older
    version's copy under way (`.NAME--ID12.partial`). Looked for by its path, the name was
    followed through the link and the clerk's file removed. It is looked for in the day
    folder held, never through a link: the file stays, and the archive refuses the link,
    naming it, the bundle kept in processing."""
    p, s, row, work, journaled = delivered_unarchived(tmp_path, monkeypatch)
    theirs = tmp_path / "clerks"
    theirs.mkdir()
    (theirs / f".{journaled.name}.partial").write_bytes(b"the clerk's")
    if journaled.parent.exists():
        journaled.parent.rmdir()
    os.symlink(theirs, journaled.parent)
    assert restart(p, s, row).attempt(row) is not None
    assert (theirs / f".{journaled.name}.partial").read_bytes() == b"the clerk's"
    assert work.is_dir()
    assert "symbolic link" in (p.j.get(row).last_error or "")


def test_a_copy_under_way_into_the_folder_this_run_chose_is_left_to_its_daemon(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a folder an earlier run journaled can hold what this journal's daemon left
    under way before an upgrade (the long-named test above; test_beside.py). The archive
    folder this run chose at the delivery is not looked into for one: a `.NAME.partial`
    there is another daemon's copy under way (a version before the per-daemon copy
    names, archiving the same bundle into the shared sent/), and it is left to that
    daemon. Before, every archive looked (a few stats and paths, ~70 µs of each) and
    removed it under that daemon."""
    p, _, row, _, journaled = delivered_unarchived(tmp_path, monkeypatch)
    theirs = journaled.with_name(f".{journaled.name}.partial")
    (theirs / "INV-1").mkdir(parents=True)
    (theirs / "INV-1" / "a.pdf").write_bytes(b"half a copy")
    later = p.finish.clock() + 3600  # its back-off over, whatever the host's uptime
    p.finish.clock = lambda: later
    with capture_logs() as logged:
        assert p.finish.attempt(row) is None  # the same run archives it
    done = p.j.get(row)
    assert (done.state, done.archive_dir) == ("sent", str(journaled))
    assert (journaled / "INV-1" / "a.pdf").read_bytes() == pdf_bytes()
    assert (theirs / "INV-1" / "a.pdf").read_bytes() == b"half a copy"
    assert "removed the copy an older outboxd left under way" not in [
        e["event"] for e in logged]


def place_full(monkeypatch: pytest.MonkeyPatch, times: int,
               then: type[BaseException] | None = None) -> None:
    """The archive's moves fail `times` times as on a full disk; the next raises `then`
    (a kill), or is done."""
    from daemon.archiving import moves
    real_place = moves.place
    calls: list[int] = []

    def full(*args: Any, **kwargs: Any) -> Path:
        calls.append(1)
        if len(calls) <= times:
            raise OSError(errno.ENOSPC, "No space left on device")
        if then is not None:
            raise then
        return real_place(*args, **kwargs)
    monkeypatch.setattr(moves, "place", full)


def test_a_bundle_archived_after_a_failed_move_is_sent_without_the_old_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Delivered, its move into sent/ failing once (a full disk), then done: the row is
    `sent` with no last_error (before, `status --json` kept "cannot be archived")."""
    p, _, row = claimed(tmp_path)
    place_full(monkeypatch, 1)
    assert p.finish.attempt(row) is not None  # delivered, not archived: retried
    assert "cannot be archived" in (p.j.get(row).last_error or "")
    later = p.finish.clock() + 3600  # its back-off over, whatever the host's uptime
    p.finish.clock = lambda: later
    assert p.finish.attempt(row) is None
    assert (p.j.get(row).state, p.j.get(row).last_error) == ("sent", None)


def test_a_move_failing_again_counts_its_failures_and_forgets_them_once_done(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A move into sent/ that fails three times in a row is counted 1, 2, 3 (the first
    said as an error, the next as warnings; the count sets the back-off's ceiling);
    once it is done, nothing of those failures is kept for the row."""
    p, _, row = claimed(tmp_path)
    place_full(monkeypatch, 3)
    start = p.finish.clock()
    with capture_logs() as logs:
        for n in range(1, 4):
            assert p.finish.attempt(row) is not None
            # Its back-off over, whatever the host's uptime.
            p.finish.clock = lambda later=start + 3600 * n: later
    failed = [(e["log_level"], e["failures"]) for e in logs
              if e["event"] == "bundle cannot be moved; will retry"]
    assert failed == [("error", 1), ("warning", 2), ("warning", 3)]
    assert p.finish.attempt(row) is None
    assert p.j.get(row).state == "sent" and p.finish._move_faults == {}


def _rejected_and_quarantine_full_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       then: type[BaseException] | None = None
                                       ) -> tuple[Any, int]:
    """A bundle the receiver rejects, whose first move into quarantine/ fails (a full
    disk); the next raises `then` (a kill), or is done."""
    p, _, row = claimed(tmp_path)
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 422", 422, "no"))
    place_full(monkeypatch, 1, then)
    assert p.finish.attempt(row) is not None
    assert "cannot be moved into quarantine" in (p.j.get(row).last_error or "")
    later = p.finish.clock() + 3600  # its back-off over, whatever the host's uptime
    p.finish.clock = lambda: later
    return p, row


def test_a_bundle_quarantined_after_a_failed_move_is_quarantined_without_the_old_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its move into quarantine/ failing once, then done: the row is `quarantined` with
    no last_error (before, `status` and `status --json` kept "cannot be moved into
    quarantine … No space left on device" beside a bundle that lay in quarantine/)."""
    p, row = _rejected_and_quarantine_full_once(tmp_path, monkeypatch)
    assert p.finish.attempt(row) is None
    assert (p.j.get(row).state, p.j.get(row).last_error) == ("quarantined", None)


def test_a_kill_in_a_retried_quarantine_move_leaves_the_row_saying_why_it_waits(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A retry of a failed move into quarantine/ killed part-way: the row, still
    `quarantining`, keeps the failure it waits for (a restart shows why), never a row
    stuck without a word."""
    p, row = _rejected_and_quarantine_full_once(tmp_path, monkeypatch, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        p.finish.attempt(row)
    stuck = p.j.get(row)
    assert stuck.state == QUARANTINING
    assert "cannot be moved into quarantine" in (stuck.last_error or "")


@pytest.fixture
def wall(monkeypatch: pytest.MonkeyPatch) -> type[Wall]:
    """The journal's and the archive's clock: 23:59:59.9 UTC on 2031-05-06 until the test
    moves it on."""
    return pin_wall(monkeypatch, datetime(2031, 5, 6, 23, 59, 59, 900000, tzinfo=UTC),
                    ("daemon.journal.records", "daemon.archiving.archive"))


AFTER_MIDNIGHT = datetime(2031, 5, 7, 0, 0, 0, 300000, tzinfo=UTC)


def test_a_bundle_delivered_before_midnight_and_archived_after_it_is_yesterdays(
        tmp_path: Path, wall: type[Wall]) -> None:
    """Delivered at 23:59:59.9 UTC, archived (after the burst's wait) at 00:00:00.3: it
    lies in yesterday's folder in sent/, and the views count it as sent that day — the
    next day "sent today" (STATUS=, the status page) does not count it, and `status`
    shows it sent at its delivery, as receipt.json says (before: at the archive's time,
    so it counted as sent today beside a folder dated the day before)."""
    p, s, row = claimed(tmp_path)
    p.finish.d = Idempotent(Receipt(201, {"receipt_id": "r-1"}, "r-1"))
    p.finish.archive_later = lambda _row: None
    assert p.finish.attempt(row) is None and p.j.get(row).state == DELIVERED
    wall.at = AFTER_MIDNIGHT
    assert p.finish.attempt(row) is None
    [entry] = s.sent_dir.glob("*/*")
    assert entry.parent.name == "2031-05-06"
    done = p.j.get(row)
    receipt = json.loads((entry / "receipt.json").read_text("utf-8"))
    assert done.state == "sent" and done.since == receipt["delivered_at"] \
        == "2031-05-06T23:59:59.900Z"
    assert p.j.summary(AFTER_MIDNIGHT)["sent today"] == 0
    assert p.j.summary(datetime(2031, 5, 6, 23, 59, 59, 950000, tzinfo=UTC))["sent today"] == 1
    rows = p.j.recent(days=3650)
    assert pagerender.sections(rows, "2031-05-07")["sent"] == []
    assert [r.id for r in pagerender.sections(rows, "2031-05-06")["sent"]] == [row]


def test_a_bundle_whose_quarantine_move_succeeds_after_midnight_is_yesterdays(
        tmp_path: Path, wall: type[Wall], monkeypatch: pytest.MonkeyPatch) -> None:
    """Rejected at 23:59:59.9 UTC, its move into quarantine/ failing once (a full disk)
    and done at 00:00:00.3: its folder and reason.json say the day before, and so does
    the journal, so the next day's page does not list it under "Quarantined today"."""
    from daemon.archiving import moves

    p, s, row = claimed(tmp_path)
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 422", 422, "no"))
    real_place = moves.place

    def full_before_midnight(*args: Any, **kwargs: Any) -> Path:
        if wall.at < AFTER_MIDNIGHT:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_place(*args, **kwargs)
    monkeypatch.setattr(moves, "place", full_before_midnight)
    assert p.finish.attempt(row) is not None
    wall.at = AFTER_MIDNIGHT
    later = p.finish.clock() + 3600  # its back-off over, whatever the host's uptime
    p.finish.clock = lambda: later
    assert p.finish.attempt(row) is None
    [entry] = s.quarantine_dir.glob("*/*")
    assert entry.parent.name == "2031-05-06"
    reason = json.loads((entry / "reason.json").read_text("utf-8"))
    done = p.j.get(row)
    assert done.state == "quarantined" and reason["quarantined_at"] == "2031-05-06T23:59:59Z"
    assert done.since.startswith("2031-05-06T23:59:59")
    rows = p.j.recent(days=3650)
    assert pagerender.sections(rows, "2031-05-07")["quarantined"] == []
    assert [r.id for r in pagerender.sections(rows, "2031-05-06")["quarantined"]] == [row]


def test_a_quarantined_bundle_with_converted_images_tells_to_leave_their_folder(
        tmp_path: Path) -> None:
    """With convert_images, a bundle the receiver refuses goes into quarantine with
    INV-1.converted/ (the PDFs made of its images) beside INV-1/: REASON.txt's steps,
    which say to move the folder named like the invoice file back, say to leave that one
    (or delete it), as it is never sent from the outbox; reason.json names it. Without
    converted images neither says a word of it."""
    buf = io.BytesIO()
    Image.new("RGB", (60, 30)).save(buf, "PNG", dpi=(300, 300))
    p, s, row = claimed(tmp_path, {"scan.png": buf.getvalue()},
                        {"channel": "external-print", "convert_images": True})
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 422", 422, "no"))
    assert p.finish.attempt(row) is None
    entry = Path(p.j.get(row).archive_dir or "")
    assert (entry / "INV-1.converted" / "scan.pdf").is_file()
    text = (entry / "REASON.txt").read_text("utf-8")
    assert ("2. If this folder holds a folder of attachments (named like the invoice file), "
            "move that folder back into the outbox. Leave the folder INV-1.converted here, "
            "or delete it: it holds the PDFs outboxd made of the images, and outboxd makes "
            "them again when it sends the bundle.\n") in text
    reason = json.loads((entry / "reason.json").read_text("utf-8"))
    assert reason["converted_folder"] == "INV-1.converted"

    p, s, row = claimed(tmp_path / "plain")
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 422", 422, "no"))
    assert p.finish.attempt(row) is None
    entry = Path(p.j.get(row).archive_dir or "")
    assert "converted" not in (entry / "REASON.txt").read_text("utf-8")
    assert "converted_folder" not in json.loads((entry / "reason.json").read_text("utf-8"))


def test_a_quarantined_bundle_with_kept_documents_tells_to_leave_their_folder(
        tmp_path: Path) -> None:
    """ubl-embedded keeps each document it posts in INV-1.embedded/ beside INV-1/; a
    bundle the receiver then refuses goes into quarantine with it. That folder is named
    like the invoice file too, and REASON.txt's steps said to move such a folder back:
    a clerk did, and it lay in the outbox for good, never sent, taken for attachments
    waiting for an invoice INV-1.embedded.xml. The steps say to leave it (the record of
    what the operator has); reason.json names it. Without one neither says a word."""
    p, s, row = claimed(tmp_path)
    work = Path(p.j.get(row).work_dir or "")
    (work / "INV-1.embedded").mkdir()
    (work / "INV-1.embedded" / "INV-1--INV-1.xml").write_bytes(b"<Invoice/>")
    p.finish.d = Scripted(Rejected("the receiver rejected the document of invoice INV-1 "
                                   "with HTTP 422", 422, "no"))
    assert p.finish.attempt(row) is None
    entry = Path(p.j.get(row).archive_dir or "")
    assert (entry / "INV-1.embedded" / "INV-1--INV-1.xml").read_bytes() == b"<Invoice/>"
    text = (entry / "REASON.txt").read_text("utf-8")
    assert ("move that folder back into the outbox. Leave the folder INV-1.embedded here: "
            "it holds the documents outboxd built and sent to the operator (reason.json's "
            "accepted_documents says which the operator took), and outboxd builds them "
            "again when it sends the bundle.\n") in text
    reason = json.loads((entry / "reason.json").read_text("utf-8"))
    assert reason["embedded_folder"] == "INV-1.embedded"

    p, s, row = claimed(tmp_path / "plain")
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 422", 422, "no"))
    assert p.finish.attempt(row) is None
    entry = Path(p.j.get(row).archive_dir or "")
    assert "embedded" not in (entry / "REASON.txt").read_text("utf-8")
    assert "embedded_folder" not in json.loads((entry / "reason.json").read_text("utf-8"))


def test_a_power_loss_after_a_quarantine_move_writes_the_same_papers_again(
        tmp_path: Path) -> None:
    """The move of a bundle with INV-1.embedded/ into quarantine reached the disk, its
    reason.json's bytes and the 'quarantined' commit did not: the restarted daemon,
    the work folder gone, finds that folder in the entry and writes reason.json as it
    was, still naming it (REASON.txt's steps tell to leave it there)."""
    p, s, row = claimed(tmp_path)
    (Path(p.j.get(row).work_dir or "") / "INV-1.embedded").mkdir()
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 422", 422, "no"))
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    entry = Path(done.archive_dir or "")
    reason = (entry / "reason.json").read_bytes()
    assert json.loads(reason)["embedded_folder"] == "INV-1.embedded"
    p.j.transition(row, QUARANTINING, "state before the power loss", since=done.since)
    (entry / "reason.json").write_bytes(b"")

    assert restart(p, s, row).attempt(row) is None
    assert p.j.get(row).state == "quarantined"
    assert (entry / "reason.json").read_bytes() == reason


def test_a_kill_right_after_the_copy_is_renamed_into_sent_keeps_one_entry_the_journal_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ on another file system: the daemon is killed right after the complete copy
    was renamed into place, before anything else, while a clerk had saved a file at the
    top of the work folder during the copy. The retry took the entry for someone else's
    (no whole copy, no mark yet) and archived the work folder again at NAME-2, the
    journal naming it: the clerk's never-sent file shown as sent. Now one entry, the
    journal naming it, the clerk's file kept in processing and said."""
    p, s, row = claimed(tmp_path)
    work = Path(p.j.get(row).work_dir or "")
    exdev_for(monkeypatch, work, lambda: (work / "note.txt").write_bytes(b"clerk's"))
    killed_after_rename(monkeypatch, _Died())
    with pytest.raises(_Died):
        p.finish.attempt(row)
    monkeypatch.undo()
    [entry] = s.sent_dir.glob("*/*")
    assert p.j.get(row).archive_dir == str(entry)

    with capture_logs() as logged:
        assert restart(p, s, row).attempt(row) is None
    done = p.j.get(row)
    assert [e.name for e in s.sent_dir.glob("*/*")] == [entry.name]
    assert done.state == "sent" and done.archive_dir == str(entry)
    assert sorted(os.listdir(entry)) == ["INV-1", "INV-1.xml", "receipt.json"]
    assert sorted(os.listdir(work)) == [".outboxd-kept", "note.txt"]
    [said] = [e for e in logged if e.get("kept")]
    assert said["kept"] == [str(work / "note.txt")] and said["archive"] == str(entry)


def test_a_sent_row_keeps_the_receivers_answer_and_leaves_the_manifest_to_the_entry(
        tmp_path: Path) -> None:
    """Once a bundle's entry is in sent/ its receipt.json is the lasting record: the
    journal's row keeps only the receiver's answer (what `outboxd status` looks at), not
    the manifest and the rest a second time — that was half of every sent row, 150 MB a
    year on a busy share. Until the move the delivered row holds the whole receipt,
    from which a restart writes receipt.json (the tests above)."""
    p, s, row = claimed(tmp_path)
    assert p.finish.attempt(row) is None
    after = p.j.get(row)
    assert after.state == "sent"
    receipt = json.loads((Path(after.archive_dir or "") / "receipt.json").read_text("utf-8"))
    assert receipt["manifest"]["bundle_id"] == after.bundle_id
    assert after.response == {"response": receipt["response"]}
    assert after.receipt_id == receipt["response"]["receipt_id"]
