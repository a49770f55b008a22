"""One delivery attempt (finish.py): every attempt counted whatever its outcome, an
unforeseen failure explained and retried, a converted image written into the claimed
folder, the deliverer a reload replaces closed only after its POSTs, and paused
deliveries tried again at once after a reload or a restart."""

from __future__ import annotations

import errno
import io
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import (  # noqa: E402
    NeverPost,
    Scripted,
    claimed,
    make,
    restart,
    step,
    three_claimed,
)
from helpers import (  # noqa: E402
    answering_receiver,
    drop_bundle,
    pdf_bytes,
    ubl_invoice,
    wait_for,
)
from matching import batch_xml  # noqa: E402
from swaps import opened_in, swap_for_link, swap_when_opened  # noqa: E402

from daemon.bundle import Bundle  # noqa: E402
from daemon.claiming.recovery import PAUSED  # noqa: E402
from daemon.configuration.config import DeliveryConfig  # noqa: E402
from daemon.delivery import finish  # noqa: E402
from daemon.delivery.answers import Receipt  # noqa: E402
from daemon.delivery.deliver import HttpDeliverer  # noqa: E402
from daemon.delivery.finish import Finisher  # noqa: E402
from daemon.delivery.pause import HELD_BACK  # noqa: E402
from daemon.errors import (  # noqa: E402
    InputError,
    Paused,
    ReaderFailed,
    ReaderStopped,
    Rejected,
    Retryable,
    Untrusted,
)
from daemon.journal import CLAIMING, DELIVERED, QUARANTINING, seconds_until  # noqa: E402
from daemon.validation import convert  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402


def claimed_png(tmp_path: Path) -> tuple[Any, Any, int]:
    """A claimed bundle whose PNG is converted to PDF at delivery (external print)."""
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), (200, 30, 30)).save(buf, "PNG", dpi=(300, 300))
    return claimed(tmp_path, {"scan.png": buf.getvalue()},
                   {"channel": "external-print", "convert_images": True})


def disk_full(path: Path, data: bytes) -> None:
    """convert's write_atomic on a full disk."""
    raise OSError(errno.ENOSPC, "No space left on device", str(path))


def test_every_attempt_is_counted_whatever_its_outcome(tmp_path: Path) -> None:
    """The journal's attempt count (status, back-off, receipt.json) counts each POST:
    a retryable failure, then a success, is 2 in the journal and the receipt."""
    p, s, row = claimed(tmp_path)
    p.finish.d = Scripted(Retryable("HTTP 503 from the receiver", 503),
                          Receipt(201, {"receipt_id": "r-9"}, "r-9"))
    assert p.finish.attempt(row) is not None
    assert p.j.get(row).state == "retrying" and p.j.get(row).attempts == 1
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "sent" and done.attempts == 2 and done.receipt_id == "r-9"
    [entry] = s.sent_dir.glob("*/*")
    assert json.loads((entry / "receipt.json").read_text("utf-8"))["attempts"] == 2


def test_a_rejected_first_attempt_is_counted(tmp_path: Path) -> None:
    """A bundle the receiver rejects on its first POST is quarantined with 1 attempt."""
    p, s, row = claimed(tmp_path)
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 422", 422,
                                   "bad"))
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "quarantined" and done.attempts == 1
    assert "HTTP 422" in done.reasons[0]["message"]


def test_a_first_attempt_whose_files_changed_while_sent_is_counted(tmp_path: Path) -> None:
    """A file of the bundle changed in the processing folder while its first POST was
    under way: the bundle is quarantined as damaged, with that POST counted (1 attempt),
    as every attempt is whatever its outcome."""
    p, _, row = claimed(tmp_path)
    p.finish.d = Scripted(InputError("processing-damaged", "INV-1/a.pdf",
                                     "INV-1/a.pdf is not the file that was checked"))
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "quarantined" and done.attempts == 1
    assert "changed in the processing folder" in done.reasons[0]["message"]


@pytest.mark.parametrize("ids", [("INV-1",), ("INV-1", "INV-2")])
def test_a_bundle_refused_as_too_large_says_so_with_its_size_and_the_fix(
        tmp_path: Path, ids: tuple[str, ...]) -> None:
    """A 413 (Payload Too Large) quarantined the bundle telling the clerk to "fix what
    the receiver names", and the receiver's words are often only "Payload Too Large".
    The reason says the bundle is larger than the receiver takes, with the size sent
    (what the receiver got), and the fix: fewer or smaller attachments, or (a file of
    several invoices) its invoices in several files; the admin may ask the operator for
    its limit. The receiver's own text is kept; REASON.txt says the same."""
    if len(ids) == 1:
        p, s, row = claimed(tmp_path)
    else:
        p, s, row = claimed(tmp_path, {f"{i}/a.pdf": pdf_bytes() for i in ids},
                            name="B-1", invoice=batch_xml(*ids))
    lengths: list[int] = []
    with answering_receiver(lambda: (413, "text/plain", b"limit 1 kB"),
                            lengths=lengths) as url:
        p.finish.d = HttpDeliverer(DeliveryConfig(url=url))
        try:
            assert p.finish.attempt(row) is None
        finally:
            p.finish.d.close()
    done = p.j.get(row)
    assert done.state == "quarantined"
    [reason] = done.reasons
    message = reason["message"]
    assert reason["code"] == "rejected" and "HTTP 413: limit 1 kB" in message
    [sent] = lengths
    assert f"larger than the receiver takes ({sent / 1000:.1f} KB ({sent:,} bytes) were " \
        "sent)" in message
    assert "fewer or smaller attachments" in message
    assert "fix what the receiver names" not in message
    assert "ask the operator for the largest size it takes" in message
    assert ("several invoice files" in message) == (len(ids) > 1)
    [entry] = s.quarantine_dir.glob("*/*")
    assert message in (entry / "REASON.txt").read_text("utf-8")


def test_a_first_attempt_that_succeeds_is_counted(tmp_path: Path) -> None:
    """Delivered at the first POST: 1 attempt in the journal and in receipt.json."""
    p, s, row = claimed(tmp_path)
    p.finish.d = Scripted(Receipt(201, {"receipt_id": "r-1"}, "r-1"))
    assert p.finish.attempt(row) is None
    assert p.j.get(row).attempts == 1 and p.finish.d.posts == 1
    [entry] = s.sent_dir.glob("*/*")
    assert json.loads((entry / "receipt.json").read_text("utf-8"))["attempts"] == 1


def test_a_bundle_sent_with_warnings_is_one_log_record_at_warning_level(
        tmp_path: Path) -> None:
    """"bundle sent" carries the manifest's warnings (code, file, message) and is logged
    at warning level; a bundle without warnings is logged at info."""
    image = io.BytesIO()
    Image.new("RGB", (8, 8)).save(image, format="PNG")
    with capture_logs() as records:
        p, s, row = claimed(tmp_path / "png", {"photo.png": image.getvalue(),
                                               "a.pdf": pdf_bytes()})
        assert p.finish.attempt(row) is None
        p, s, row = claimed(tmp_path / "plain")
        assert p.finish.attempt(row) is None
    warned, plain = [r for r in records if r["event"] == "bundle sent"]
    assert warned["log_level"] == "warning" and warned["invoice_file"] == "INV-1.xml"
    assert [(w["code"], w["file"]) for w in warned["warnings"]] == [
        ("pdf-recommended", "INV-1/photo.png")]
    assert "PDF is recommended" in warned["warnings"][0]["message"]
    assert plain["log_level"] == "info" and "warnings" not in plain


def test_an_attempt_after_a_restart_is_counted_before_its_post(tmp_path: Path) -> None:
    """After a restart (a crash may have happened in the middle of a POST) the attempt
    is recorded in the journal before the POST goes out."""
    p, s, row = claimed(tmp_path)
    fin = restart(p, s, row)
    seen: list[int] = []

    class Watching(Scripted):
        def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
            seen.append(p.j.get(row).attempts)
            return super().deliver(bundle, manifest)

    fin.d = Watching(Receipt(201, {"receipt_id": "r-2"}, "r-2"))
    assert fin.attempt(row) is None
    assert seen == [1] and p.j.get(row).attempts == 1


def test_no_post_goes_out_while_the_journal_cannot_record_it_and_each_is_counted(
        tmp_path: Path) -> None:
    """The first attempt after a claim records its count with its outcome. When that
    record fails (another process holds the journal locked: `sqlite3 journal.sqlite3
    'BEGIN EXCLUSIVE;'`), the row still reads as just claimed: every later attempt
    POSTed again without a record, as long as the lock lasted (5 POSTs, `attempts: 1`
    in receipt.json). Now the next attempt is recorded first, so it waits for the
    journal without posting, and it counts the POST the journal missed: the receipt
    says 2, the POSTs the receiver saw."""
    import sqlite3

    from daemon.errors import JournalError
    p, s, row = claimed(tmp_path)
    p.j._db.execute("PRAGMA busy_timeout = 50")  # not the 5 s a command waits
    locker = sqlite3.connect(s.journal_path, isolation_level=None)

    class LockedWhileAnswering(Scripted):
        def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
            if self.posts == 0:
                locker.execute("BEGIN EXCLUSIVE")
            return super().deliver(bundle, manifest)

    answer = Receipt(201, {"receipt_id": "r-1"}, "r-1")
    p.finish.d = LockedWhileAnswering(answer, answer)
    try:
        with pytest.raises(JournalError):
            p.finish.attempt(row)  # the answer cannot be recorded
        assert p.finish.d.posts == 1
        for _ in range(3):  # still locked: each attempt stops before its POST
            with pytest.raises(JournalError):
                p.finish.attempt(row)
        assert p.finish.d.posts == 1
    finally:
        if locker.in_transaction:
            locker.execute("ROLLBACK")
        locker.close()

    def delivered() -> bool:  # once the journal's back-off after the failed writes ends
        try:
            return p.finish.attempt(row) is None
        except JournalError:
            return False
    wait_for(delivered, timeout=10, what="the attempt once the journal is writable again")
    done = p.j.get(row)
    assert p.finish.d.posts == 2 and done.state == "sent" and done.attempts == 2
    [entry] = s.sent_dir.glob("*/*")
    assert json.loads((entry / "receipt.json").read_text("utf-8"))["attempts"] == 2


def test_a_post_counted_with_its_outcome_is_not_counted_again_when_a_later_write_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first attempt whose rejection was counted (written with the count) and whose
    quarantine then could not be written (the journal locked, its disk full) missed no
    count: its next attempt counts only its own POST — 2 POSTs, attempts 2, not 3."""
    from daemon.errors import JournalError
    p, s, row = claimed(tmp_path)
    rejected = Rejected("the receiver rejected the bundle with HTTP 422", 422, "bad")
    p.finish.d = Scripted(rejected, rejected)
    transition = p.j.transition
    failed: list[str] = []

    def quarantining_fails_once(row_id: int, state: str, *args: Any, **kw: Any) -> None:
        if state == "quarantining" and not failed:
            failed.append(state)
            raise JournalError("journal write failed: database is locked", reported=True)
        transition(row_id, state, *args, **kw)
    monkeypatch.setattr(p.j, "transition", quarantining_fails_once)
    with pytest.raises(JournalError):
        p.finish.attempt(row)
    assert p.j.get(row).attempts == 1 and p.finish.d.posts == 1
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "quarantined" and p.finish.d.posts == 2 and done.attempts == 2


def test_a_bundle_sent_after_a_write_failed_is_forgotten_as_one_whose_post_went_uncounted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first attempt whose delivery was recorded but whose archive could not begin
    (the journal's next write failed) leaves the row marked as one whose POST may have
    gone uncounted; its next attempt only archives it (sent, 1 POST, attempts 1) — and
    the mark goes with the row: it stayed for the life of the process, a few ints each
    time a journal write failed."""
    from daemon.errors import JournalError
    p, s, row = claimed(tmp_path)
    answer = Receipt(201, {"receipt_id": "r-1"}, "r-1")
    p.finish.d = Scripted(answer)
    make_durable = p.j.make_durable
    failed: list[bool] = []

    def fails_once() -> None:
        if not failed:
            failed.append(True)
            raise JournalError("journal write failed: database is locked", reported=True)
        make_durable()
    monkeypatch.setattr(p.j, "make_durable", fails_once)
    with pytest.raises(JournalError):
        p.finish.attempt(row)
    assert p.j.get(row).state == DELIVERED and row in p.finish._unrecorded
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "sent" and p.finish.d.posts == 1 and done.attempts == 1
    assert row not in p.finish._unrecorded


def test_a_full_disk_while_writing_a_converted_image_is_retried_not_quarantined(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """convert_images on a print channel writes the PDF made from a PNG into the work
    folder at delivery. A full disk there is the environment, not the bundle: it stays
    in flight with the reason shown and nothing in quarantine, and once the back-off
    has passed and the disk has room the next attempt delivers it."""
    p, s, row = claimed_png(tmp_path)
    monkeypatch.setattr(convert, "write_atomic", disk_full)
    delay = p.finish.attempt(row)
    monkeypatch.undo()
    waiting = p.j.get(row)
    assert delay is not None and delay > 0
    assert waiting.state == "retrying" and "No space left on device" in (waiting.last_error or "")
    assert list(s.quarantine_dir.glob("*/*")) == [] and Path(waiting.work_dir or "").is_dir()
    assert p.finish.attempt(row) is not None  # not before its back-off

    later = p.finish.clock() + 3600
    p.finish.clock = lambda: later  # the loop's clock, an hour on
    assert p.finish.attempt(row) is None
    [entry] = s.sent_dir.glob("*/*")
    assert p.j.get(row).state == "sent" and p.j.get(row).last_error is None
    assert (entry / "INV-1.converted" / "scan.pdf").read_bytes().startswith(b"%PDF")


def test_a_pdf_written_at_last_starts_the_count_of_failed_moves_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Failures in a row back off more each time; a PDF write that failed once and then
    succeeded ends that row. The delivery goes out, and an archive that fails after it is
    its first failure (waits the first back-off), not the second."""
    p, s, row = claimed_png(tmp_path)
    monkeypatch.setattr(convert, "write_atomic", disk_full)
    assert p.finish.attempt(row) is not None
    monkeypatch.undo()
    later = p.finish.clock() + 3600
    p.finish.clock = lambda: later

    def archive_fails(*args: Any, **kwargs: Any) -> Path:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr("daemon.archiving.moves.place", archive_fails)
    p.finish.d = Scripted(Receipt(201, {"receipt_id": "r-1"}, "r-1"))
    with capture_logs() as logs:
        assert p.finish.attempt(row) is not None
    [failed] = [e for e in logs if e["event"] == "bundle cannot be moved; will retry"]
    assert failed["failures"] == 1
    assert p.j.get(row).state == "delivered" and p.finish.d.posts == 1


def test_a_conversion_whose_reader_died_each_time_is_retried_not_quarantined(
        tmp_path: Path) -> None:
    """The reader processes convert a claimed bundle's images (Finisher.materialise is
    theirs in the daemon). A reader that died under the conversion each time (out of
    memory) says nothing about the bundle: it stays in flight with the reason shown,
    nothing in quarantine, and the next attempt after its back-off delivers it."""
    p, s, row = claimed_png(tmp_path)
    asked: list[Path] = []

    def reader_died(cand: Any, bundle: Bundle, work: Path, settings: Any) -> Bundle:
        asked.append(work)
        raise ReaderFailed("INV-1.xml: a reader process died each time while converting its "
                           "images to PDF (out of memory?); the delivery is tried again")

    p.finish.materialise = reader_died
    delay = p.finish.attempt(row)
    waiting = p.j.get(row)
    assert asked == [Path(waiting.work_dir or "")]
    assert delay is not None and delay > 0
    assert waiting.state == "retrying" and "out of memory" in (waiting.last_error or "")
    assert list(s.quarantine_dir.glob("*/*")) == []

    p.finish.materialise = finish.materialise_here
    later = p.finish.clock() + 3600
    p.finish.clock = lambda: later
    assert p.finish.attempt(row) is None
    [entry] = s.sent_dir.glob("*/*")
    assert (entry / "INV-1.converted" / "scan.pdf").read_bytes().startswith(b"%PDF")


@pytest.mark.parametrize("where", ["conversion", "read again"])
def test_a_read_or_conversion_dropped_because_the_daemon_stops_is_no_error_in_the_log(
        tmp_path: Path, where: str) -> None:
    """A clean stop ends the reader processes under a claimed bundle's image conversion,
    or under its read again after a restart (before the POST): nothing went wrong, so
    the log says it at info level (journald showed an error for every such bundle at a
    clean stop); the row still says why it waits, and nothing is quarantined. A reader
    that died each time is still an error."""
    def stopping(*args: Any) -> Bundle:
        raise ReaderStopped("the daemon is stopping")

    def died(*args: Any) -> Bundle:
        raise ReaderFailed("INV-1.xml: a reader process died under it each time")

    if where == "conversion":
        p, s, row = claimed_png(tmp_path)
        p.finish.materialise = stopping
    else:
        p, s, row = claimed(tmp_path)
        p.finish._validated.clear()  # as after a restart: read again before the POST
        p.finish.evaluate = stopping
    with capture_logs() as logs:
        delay = p.finish.attempt(row)
    assert delay is not None
    [entry] = [e for e in logs if e["event"].startswith("bundle cannot be prepared")]
    assert entry["log_level"] == "info"
    waiting = p.j.get(row)
    assert waiting.state == "retrying" and "the daemon is stopping" in (waiting.last_error or "")
    assert list(s.quarantine_dir.glob("*/*")) == []

    if where == "conversion":
        p.finish.materialise = died
    else:
        p.finish.evaluate = died
    later = p.finish.clock() + 3600  # past the back-off of the dropped attempt
    p.finish.clock = lambda: later
    with capture_logs() as logs:
        p.finish.attempt(row)
    [entry] = [e for e in logs if e["event"].startswith("bundle cannot be prepared")]
    assert entry["log_level"] in ("error", "warning")


def test_an_image_changed_in_processing_before_its_conversion_is_quarantined_as_damaged(
        tmp_path: Path) -> None:
    """The PNG in the work folder no longer gives the PDF that was validated: the
    bundle is damaged there and goes to quarantine with a reason naming the file."""
    p, s, row = claimed_png(tmp_path)
    other = io.BytesIO()
    Image.new("RGB", (600, 300), (20, 30, 200)).save(other, "PNG", dpi=(300, 300))
    (Path(p.j.get(row).work_dir or "") / "INV-1" / "scan.png").write_bytes(other.getvalue())
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "quarantined"
    [reason] = done.reasons
    assert reason["code"] == "processing-damaged" and reason["file"] == "INV-1/scan.png"


def test_an_image_replaced_between_two_attempts_is_not_posted_as_its_old_pdf(
        tmp_path: Path) -> None:
    """One running daemon: the first attempt wrote the converted PDF and its POST got a
    503; the PNG was then replaced in the work folder. The second attempt posts nothing
    and quarantines the bundle as processing-damaged, naming the image — before, the old
    PDF (still the hash the bundle names) was posted again and the new PNG archived in
    sent/ as if it had gone out."""
    p, s, row = claimed_png(tmp_path)
    p.finish.d = Scripted(Retryable("HTTP 503 from the receiver", 503),
                          Receipt(201, {"receipt_id": "r-1"}, "r-1"))
    assert p.finish.attempt(row) is not None
    work = Path(p.j.get(row).work_dir or "")
    pdf = work / "INV-1.converted" / "scan.pdf"
    assert pdf.is_file()
    other = io.BytesIO()
    Image.new("RGB", (600, 300), (20, 30, 200)).save(other, "PNG", dpi=(300, 300))
    (work / "INV-1" / "new.png").write_bytes(other.getvalue())
    os.replace(work / "INV-1" / "new.png", work / "INV-1" / "scan.png")
    # A file system's clock ticks coarsely: touched until the replacement is seen as
    # later than the PDF (the outcome polled for, with a deadline; no sleep).
    deadline = time.monotonic() + 10
    while os.stat(work / "INV-1" / "scan.png").st_ctime_ns <= pdf.stat().st_ctime_ns:
        assert time.monotonic() < deadline, "the image's ctime never passed the PDF's"
        os.utime(work / "INV-1" / "scan.png")
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "quarantined" and p.finish.d.posts == 1
    [reason] = done.reasons
    assert (reason["code"], reason["file"]) == ("processing-damaged", "INV-1/scan.png")
    assert not list(s.sent_dir.glob("*/*"))


class Explodes:
    """A deliverer that fails in a way nobody foresaw (the network audit found answers
    that did: a body that does not decode, JSON nested beyond the parser), with its
    token in the exception's text."""

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        raise ValueError("something odd in the answer to Bearer s3cret-token")

    def scrub(self, text: str) -> str:
        return text.replace("s3cret-token", "***")

    def close(self) -> None:
        pass


def test_an_unforeseen_failure_of_an_attempt_is_counted_explained_and_retried(
        tmp_path: Path) -> None:
    """Before, such an exception left the row `delivering`, attempts 0, no error: stuck
    without a word in status, posted again at every retry_max_seconds. Now it is an
    attempt like any failed one: counted, its error in the journal, a back-off, and the
    traceback once in the log."""
    p, _, row = claimed(tmp_path)
    p.finish.d = Explodes()
    with capture_logs() as logs:
        delay = p.finish.attempt(row)
    after = p.j.get(row)
    assert delay is not None and delay > 0
    assert (after.state, after.attempts) == ("retrying", 1)
    assert "unexpected error while delivering (ValueError: something odd" in \
        (after.last_error or "")
    [line] = [e for e in logs if e["event"] == "unexpected error while delivering"]
    assert "Traceback" in line["traceback"] and "ValueError" in line["traceback"]
    assert "s3cret" not in json.dumps(logs, default=str) and "s3cret" not in after.last_error


class NoDescriptors:
    """A deliverer that cannot open a file of the bundle (the process's descriptors
    used up, a share gone under the processing folder)."""

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        raise OSError(errno.EMFILE, "Too many open files", str(bundle.invoice_file.path))

    def close(self) -> None:
        pass


def test_files_that_cannot_be_opened_to_send_them_are_a_plain_retry_not_a_traceback(
        tmp_path: Path) -> None:
    """The bundle is fine and the machine is not: the attempt is counted and retried
    after its back-off with the reason in the journal, and the log has one line without
    a traceback (it read "unexpected error while delivering" with one)."""
    p, _, row = claimed(tmp_path)
    p.finish.d = NoDescriptors()
    with capture_logs() as logs:
        delay = p.finish.attempt(row)
    after = p.j.get(row)
    assert delay is not None and delay > 0
    assert (after.state, after.attempts) == ("retrying", 1)
    assert (after.last_error or "").startswith(
        "cannot read the bundle's files to send them: Too many open files")
    assert not [e for e in logs if e["event"] == "unexpected error while delivering"]
    assert "traceback" not in json.dumps(logs, default=str).lower()


class Slow:
    """A deliverer whose POST waits until the test lets it answer; it records being closed
    and refuses to deliver once closed (as an httpx client closed under a POST fails)."""

    def __init__(self) -> None:
        self.posting, self.answer = threading.Event(), threading.Event()
        self.closed = False

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        self.posting.set()
        assert self.answer.wait(20)
        if self.closed:
            raise Retryable("cannot reach the receiver: [Errno 9] Bad file descriptor")
        return Receipt(201, {"receipt_id": "R-1"}, "R-1")

    def close(self) -> None:
        self.closed = True


def test_a_reload_closes_the_old_deliverer_only_after_its_posts_under_way_end(
        tmp_path: Path) -> None:
    """A reload replaces the deliverer while a POST is under way: that POST ends with the
    deliverer it began with (closing its client under it broke the POST, which the
    receiver had, and sent the bundle again); the old one is closed after it, and the
    next attempt takes the new one."""
    p, _, row = claimed(tmp_path)
    old, new = Slow(), NeverPost()
    p.finish.d = old
    outcome: list[float | None] = []
    worker = threading.Thread(target=lambda: outcome.append(p.finish.attempt(row)))
    worker.start()
    assert old.posting.wait(20)
    p.finish.deliverers.replace(new)
    assert not old.closed and p.finish.d is new
    old.answer.set()
    worker.join(20)
    assert outcome == [None] and p.j.get(row).state == "sent"
    assert old.closed


def test_a_deliverer_replaced_while_idle_is_closed_at_once(tmp_path: Path) -> None:
    """With no attempt under way, a reload closes the old deliverer at once."""
    p, _, _ = claimed(tmp_path)
    old = Slow()
    p.finish.d = old
    p.finish.deliverers.replace(NeverPost())
    assert old.closed


def test_an_attempt_held_back_by_a_pause_gives_its_deliverer_back(tmp_path: Path) -> None:
    """A bundle held back before its POST (deliveries paused) holds no deliverer: a
    reload then closes the old one at once, not never (its client, connections and
    files kept open for the daemon's life)."""
    p, _, (one, two, three) = three_claimed(tmp_path)
    p.finish.clock = lambda: 5000.0
    refused = Paused("HTTP 401: check [delivery] url and token", 401, "bad token")
    old = Scripted(refused, refused)
    p.finish.d = old
    p.finish.attempt(one)
    p.finish.attempt(two)
    assert p.finish.attempt(three) == p.finish.s.delivery.retry_max_seconds
    assert old.posts == 2  # held back
    closed: list[bool] = []
    old.close = lambda: closed.append(True)
    p.finish.deliverers.replace(NeverPost())
    assert closed == [True]


class PausedWhileReplaced:
    """A deliverer whose POST is answered 401 after a reload replaced it meanwhile."""

    def __init__(self, finisher: Finisher) -> None:
        self.finisher = finisher

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        self.finisher.deliverers.replace(NeverPost())  # the reload, during the POST
        raise Paused("HTTP 401: check [delivery] url and token", 401)

    def close(self) -> None:
        pass


def test_a_pause_answered_to_a_configuration_replaced_meanwhile_is_retried_at_once(
        tmp_path: Path) -> None:
    """A 401 to a POST made under the old configuration says nothing of the new one:
    the bundle is tried again at once, not after retry_max_seconds; a pause under the
    configuration still in force waits the whole retry_max_seconds."""
    p, _, row = claimed(tmp_path)
    p.finish.d = Scripted(Paused("HTTP 401: check [delivery] url and token", 401))
    assert p.finish.attempt(row) == p.finish.s.delivery.retry_max_seconds
    assert p.finish.after_reload(receiver_changed=False) == [row]

    p.finish.d = PausedWhileReplaced(p.finish)
    assert p.finish.attempt(row) == 0.0
    assert p.j.get(row).state == "retrying"


class PausedAfterTheNewConfigurationPaused:
    """A deliverer whose POST is answered 401 only after a reload replaced it with `new`
    and two other bundles were paused under `new` meanwhile (the delivery workers run side
    by side)."""

    def __init__(self, finisher: Finisher, new: Scripted, rows: list[int]) -> None:
        self.finisher, self.new, self.rows = finisher, new, rows

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        self.finisher.deliverers.replace(self.new)  # the reload, during the POST
        for row in self.rows:
            self.finisher.attempt(row)
        raise Paused("HTTP 401: check [delivery] url and token", 401)

    def close(self) -> None:
        pass


def test_a_pause_answered_to_a_replaced_configuration_leaves_the_new_ones_pause_alone(
        tmp_path: Path) -> None:
    """Two bundles paused under the configuration a reload put in force pause every
    delivery; a 401 answered afterwards to a POST made under the old configuration says
    nothing of the new one: it neither ends that pause nor starts the count again, so
    the third bundle stays held back, not posted to earn its own 401."""
    p, s, (one, two, three) = three_claimed(tmp_path)
    p.finish.clock = lambda: 5000.0
    refused = Paused("HTTP 401: check [delivery] url and token", 401, "bad token")
    new = Scripted(refused, refused)
    p.finish.d = PausedAfterTheNewConfigurationPaused(p.finish, new, [one, two])
    assert p.finish.attempt(three) == 0.0  # the old configuration's 401: tried at once
    assert new.posts == 2
    assert p.finish.attempt(three) == s.delivery.retry_max_seconds
    assert new.posts == 2  # held back by the new configuration's pause, not posted
    last_error = p.j.get(three).last_error
    assert last_error is not None and last_error.startswith(HELD_BACK)


class UntrustedWhileReplaced:
    """A deliverer whose TLS handshake fails on the certificate after a reload replaced
    it meanwhile (the admin's new [delivery] verify came during the attempt)."""

    def __init__(self, finisher: Finisher) -> None:
        self.finisher = finisher

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        self.finisher.deliverers.replace(NeverPost())  # the reload, during the handshake
        raise Untrusted("the TLS certificate of the receiver is not trusted — set "
                        "[delivery] verify")

    def close(self) -> None:
        pass


def test_an_untrusted_certificate_answered_to_a_configuration_replaced_meanwhile_is_retried_at_once(
        tmp_path: Path) -> None:
    """A certificate found untrusted under the old [delivery] verify says nothing of the
    new one: the bundle under way at the reload is tried again at once, as the bundles
    that failed before it are (after_reload), not after its back-off; one found untrusted
    under the configuration still in force waits its back-off."""
    p, _, row = claimed(tmp_path, delivery={"retry_base_seconds": 600,
                                            "retry_max_seconds": 3600})
    p.finish.d = Scripted(Untrusted("the TLS certificate of the receiver is not trusted"))
    assert p.finish.attempt(row) > 0

    p.finish.d = UntrustedWhileReplaced(p.finish)
    assert p.finish.attempt(row) == 0.0
    assert p.j.get(row).state == "retrying"


@pytest.mark.parametrize("status", [401, 403, 404])
def test_a_configuration_problem_is_logged_as_an_error_and_a_receiver_fault_as_a_warning(
        tmp_path: Path, status: int) -> None:
    """401/403/404 are logged as errors (an admin must act: the url or token is wrong),
    the bundle kept for a retry after retry_max_seconds, never quarantined; a 503 is a
    warning (the receiver's own trouble, retried on the back-off)."""
    p, s, row = claimed(tmp_path, delivery={"retry_base_seconds": 1,
                                            "retry_max_seconds": 120})
    p.finish.d = Scripted(Paused(f"HTTP {status}: check [delivery] url and token", status),
                          Retryable("HTTP 503 from the receiver", 503))
    with capture_logs() as logs:
        assert p.finish.attempt(row) == 120
    [said] = [e for e in logs if e["event"] == "delivery paused: configuration problem"]
    assert said["log_level"] == "error" and f"HTTP {status}" in said["error"]
    assert p.j.get(row).state == "retrying"
    assert list(s.quarantine_dir.glob("*/*")) == []

    with capture_logs() as logs:
        p.finish.attempt(row)
    [said] = [e for e in logs if e["event"] == "delivery failed; will retry"]
    assert said["log_level"] == "warning" and "HTTP 503" in said["error"]
    assert [e for e in logs if e["log_level"] == "error"] == []


def test_only_paused_rows_come_forward_at_a_reload_unless_the_receiver_changed(
        tmp_path: Path) -> None:
    """A bundle put off by the receiver (503) keeps its schedule at a reload that leaves
    the receiver as it was; a reload to another receiver brings it forward too."""
    p, _, row = claimed(tmp_path)
    p.finish.d = Scripted(Retryable("HTTP 503 from the receiver", 503, retry_after=3600))
    assert p.finish.attempt(row) == 3600
    assert p.finish.after_reload(receiver_changed=False) == []
    assert p.finish.after_reload(receiver_changed=True) == [row]


def test_a_restart_brings_a_paused_bundle_forward_and_a_put_off_one_not(
        tmp_path: Path) -> None:
    """The pause is in the journal (the transition's detail), so recovery after a
    restart tries a paused bundle at once; a 503's Retry-After still holds."""
    p, s, row = claimed(tmp_path)
    p.finish.d = Scripted(Paused("HTTP 403: check [delivery] url and token", 403))
    p.finish.attempt(row)
    fin = Finisher(s, p.j, NeverPost())
    assert fin.recover() == [(row, 0.0)] and fin.paused == {row}

    p.finish.d = Scripted(Retryable("HTTP 503 from the receiver", 503, retry_after=3600))
    p.finish.attempt(row)
    [(again, delay)] = Finisher(s, p.j, NeverPost()).recover()
    assert again == row and delay > 3500


def test_a_restart_tries_a_bundle_held_back_by_a_pause_at_once(tmp_path: Path) -> None:
    """A bundle held back, not posted, while deliveries were paused is in the journal as
    paused too: a restart (which starts without the pause) tries it at once, not after
    the retry_max_seconds it was told to wait."""
    p, s, (one, two, three) = three_claimed(tmp_path)
    p.finish.clock = lambda: 5000.0
    refused = Paused("HTTP 401: check [delivery] url and token", 401, "bad token")
    p.finish.d = Scripted(refused, refused)
    p.finish.attempt(one)
    p.finish.attempt(two)
    assert p.finish.attempt(three) == s.delivery.retry_max_seconds  # held back
    fin = Finisher(s, p.j, NeverPost())
    assert dict(fin.recover())[three] == 0.0 and three in fin.paused


def test_a_claim_not_handed_over_is_never_delivered(tmp_path: Path) -> None:
    """A row still claiming whose claim this process did not finish and hand over (its
    files maybe not all in the work folder yet) posts nothing when an attempt meets it:
    only the claim's own finish makes it a delivery."""
    p, s, row = claimed(tmp_path)
    p.j.transition(row, CLAIMING, "claim under way")
    fin = Finisher(s, p.j, NeverPost())
    assert fin.attempt(row) is None
    assert p.j.get(row).state == CLAIMING


def test_an_untrusted_certificate_is_retried_at_once_after_a_reload_that_changes_trust(
        tmp_path: Path) -> None:
    """The receiver's certificate not trusted: a retry on the back-off like any connection
    error (no pause: the operator may mend its chain), but the fix is ours — [delivery]
    verify — so a reload that changes what is trusted tries the bundle at once
    (explore-admin: after fixing verify and reloading, such bundles waited out their
    back-off, up to retry_max_seconds); any other reload leaves it on its back-off (with
    thousands retrying, each reload would be thousands of handshakes failing again), and
    so does a restart, which cannot tell."""
    p, s, row = claimed(tmp_path, delivery={"retry_base_seconds": 60,
                                            "retry_max_seconds": 3600})
    p.finish.d = Scripted(Untrusted("the TLS certificate of the receiver is not trusted — "
                                    "set [delivery] verify"))
    assert 0 < p.finish.attempt(row) <= 60  # the back-off, not retry_max_seconds
    assert p.j.get(row).state == "retrying" and p.finish.paused == set()
    assert p.finish.after_reload(receiver_changed=False) == []
    assert p.finish.after_reload(receiver_changed=False, trust_changed=True) == [row]
    [(again, delay)] = Finisher(s, p.j, NeverPost()).recover()
    assert again == row and delay > 0

    p.finish.d = Scripted(Retryable("cannot reach the receiver: connection refused"))
    p.finish.attempt(row)  # a plain connection error after it: no longer brought forward
    assert p.finish.after_reload(receiver_changed=False, trust_changed=True) == []


def test_a_paused_bundle_whose_move_then_fails_waits_for_the_move_not_the_configuration(
        tmp_path: Path) -> None:
    """Paused by a 401, then (tried again at a reload) its processing folder is gone: it
    is retrying with the move's error and next try, and the journal says why — so a
    restart tries it when the move is due, not at once as a pause, and a reload does not
    bring it forward (before, the pause's detail stayed the row's last and a restart took
    the failed move for a configuration problem)."""
    p, s, row = claimed(tmp_path, delivery={"retry_base_seconds": 600,
                                            "retry_max_seconds": 3600})
    p.finish.d = Scripted(Paused("HTTP 401: check [delivery] url and token", 401))
    assert p.finish.attempt(row) == 3600
    assert p.j.last_detail(row) == PAUSED
    work = Path(p.j.get(row).work_dir or "")
    work.rename(work.with_name("elsewhere"))  # the share holding processing/ went away
    assert p.finish.after_reload(receiver_changed=False) == [row]
    assert p.finish.attempt(row) == 600
    shown = p.j.get(row)
    assert shown.shown_state == "retrying" and "is not there" in (shown.last_error or "")
    assert seconds_until(shown.next_attempt_at or "") > 500
    assert p.j.last_detail(row) != PAUSED
    assert p.finish.after_reload(receiver_changed=False) == []

    fin = Finisher(s, p.j, NeverPost())
    [(again, delay)] = fin.recover()
    assert again == row and delay > 500 and fin.paused == set()
    assert fin.after_reload(receiver_changed=False) == []


def test_a_pause_that_carries_a_retry_after_keeps_its_floor_at_a_reload_and_a_restart(
        tmp_path: Path) -> None:
    """ubl-embedded folds one document's 401 and another's Retry-After into one pause: the
    receiver asked for time, so neither a reload nor a restart brings the bundle forward
    past that floor (the other document would be posted against its Retry-After)."""
    p, s, row = claimed(tmp_path)
    p.finish.d = Scripted(Paused("HTTP 401: check [delivery] url and token", 401,
                                 retry_after=600))
    assert p.finish.attempt(row) == 600
    assert p.finish.after_reload(receiver_changed=False) == []
    [(again, delay)] = Finisher(s, p.j, NeverPost()).recover()
    assert again == row and delay > 500


def test_a_reload_to_another_receiver_brings_forward_attempts_under_way_too(
        tmp_path: Path) -> None:
    """A bundle whose POST to the old receiver is under way (its row `delivering`) is
    asked for again at a reload that changes the receiver; its worker runs it again as
    soon as that POST ends (workers.py), whatever the old receiver answers."""
    p, _, row = claimed(tmp_path)
    assert p.j.get(row).state == "delivering"
    assert p.finish.after_reload(receiver_changed=True) == [row]
    assert p.finish.after_reload(receiver_changed=False) == []


class RefusedTwiceThenAcceptedWhileAnotherComes(Scripted):
    """A receiver that answers 401 to the first two POSTs, and accepts the third while
    another bundle's attempt comes (the delivery workers run side by side)."""

    def __init__(self, finisher: Finisher, other: int) -> None:
        refused = Paused("HTTP 401: check [delivery] url and token", 401, "bad token")
        super().__init__(refused, refused, Receipt(201, {"receipt_id": "r-1"}, "r-1"))
        self.finisher, self.other = finisher, other
        self.other_waits: float | None = None

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        if self.posts == 2:
            self.other_waits = self.finisher.attempt(self.other)
        return super().deliver(bundle, manifest)


def test_bundles_paused_for_a_configuration_problem_hold_back_the_others_until_it_ends(
        tmp_path: Path) -> None:
    """A 401 answers our token, which every bundle shares: once two bundles in a row got
    one, the third is not posted while the pause lasts (each was, once every
    retry_max_seconds, and earned the same 401) and shows why; after it, one bundle goes
    first, the others wait for its answer, and an acceptance sends them at once."""
    p, s, (one, two, three) = three_claimed(tmp_path)
    clock = [5000.0]
    p.finish.clock = lambda: clock[0]
    resumed: list[tuple[int, float]] = []
    p.finish.resume = lambda row, delay: resumed.append((row, delay))
    retry_max = s.delivery.retry_max_seconds
    receiver = RefusedTwiceThenAcceptedWhileAnotherComes(p.finish, two)
    p.finish.d = receiver
    assert p.finish.attempt(one) == retry_max
    assert p.finish.attempt(two) == retry_max

    assert p.finish.attempt(three) == retry_max
    assert receiver.posts == 2  # the third bundle was not posted
    held = p.j.get(three)
    assert held.state == "retrying" and held.attempts == 0
    assert held.last_error == ("waiting while deliveries are paused — HTTP 401: check "
                               "[delivery] url and token: bad token (the answer to INV-2.xml)")
    assert p.finish.after_reload(receiver_changed=False) == sorted([one, two, three])

    clock[0] += retry_max  # the pause is over: INV-3 goes first, INV-2 comes meanwhile
    assert p.finish.attempt(three) is None
    assert receiver.posts == 3 and receiver.other_waits == retry_max  # waited for INV-3
    assert p.j.get(three).state == "sent"
    assert resumed == [(two, 0.0)]  # accepted: INV-2 goes at once
    p.finish.d = Scripted(Receipt(201, {"receipt_id": "r-2"}, "r-2"))
    assert p.finish.attempt(two) is None and p.j.get(two).state == "sent"


class Recording(Scripted):
    """A Scripted deliverer that keeps each manifest it was handed, in order."""

    def __init__(self, *outcomes: Exception | Receipt) -> None:
        super().__init__(*outcomes)
        self.manifests: list[dict[str, Any]] = []

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        self.manifests.append(manifest)
        return super().deliver(bundle, manifest)


def test_a_correction_exported_while_the_first_version_is_retried_goes_out_after_it(
        tmp_path: Path) -> None:
    """The ERP exports INV-1.xml; the receiver answers 503, so it is retried. The ERP
    then exports a corrected INV-1.xml. Posted side by side, the correction reached the
    receiver first and the first version after it, flagged as the repeat
    (invoice-id-already-sent): the operator took the stale one for the newer. The
    correction now waits, unposted, as retrying with no attempt counted and saying why
    (and when the first version is tried next), until the first version is delivered,
    and then goes out with the warning that INV-1 was sent before."""
    p, s, first = claimed(tmp_path)
    p.finish.d = deliverer = Recording(Retryable("HTTP 503 from the receiver", 503),
                                       Receipt(201, {"receipt_id": "r-1"}, "r-1"),
                                       Receipt(201, {"receipt_id": "r-2"}, "r-2"))
    first_waits = p.finish.attempt(first)
    assert first_waits is not None
    assert p.j.get(first).state == "retrying"
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(2)},
                invoice=ubl_invoice("INV-1").replace(b"REF-42", b"REF-43"))
    [cand] = list_outbox(s.outbox).candidates.values()
    second = step(p, cand, 2000.0).claimed
    assert second is not None and second != first

    delay = p.finish.attempt(second)
    assert delay is not None and delay <= first_waits + 0.5  # looks again after its try
    assert deliverer.posts == 1  # only the first version's 503
    waiting = p.j.get(second)
    assert waiting.state == "retrying" and waiting.attempts == 0
    assert waiting.next_attempt_at == p.j.get(first).next_attempt_at
    assert waiting.last_error is not None
    assert "waits for INV-1.xml" in waiting.last_error and "invoice INV-1" in \
        waiting.last_error

    assert p.finish.attempt(first) is None
    assert p.finish.attempt(second) is None
    assert [m["bundle_id"] for m in deliverer.manifests] == [
        p.j.get(first).bundle_id, p.j.get(first).bundle_id, p.j.get(second).bundle_id]
    assert [w["code"] for w in deliverer.manifests[-1]["warnings"]] == [
        "invoice-id-already-sent"]
    assert p.j.get(first).state == p.j.get(second).state == "sent"
    assert p.j.get(second).last_error is None


def test_an_invoice_sent_again_names_the_bundle_that_sent_it_in_its_receipt(
        tmp_path: Path) -> None:
    """INV-1.xml is sent; a corrected INV-1.xml (another time sheet) follows. Its
    `invoice-id-already-sent` warning, in the manifest sent and in its receipt.json,
    names the first bundle's file, when it was sent and its folder in sent/ (as `outboxd
    check` does): with the journal lost, an auditor reading sent/ tells a resend from
    one send and finds the first without searching every receipt."""
    p, s, first = claimed(tmp_path)
    p.finish.d = deliverer = Recording(Receipt(201, {"receipt_id": "r-1"}, "r-1"),
                                       Receipt(201, {"receipt_id": "r-2"}, "r-2"))
    assert p.finish.attempt(first) is None
    sent = p.j.get(first)
    assert sent.state == "sent" and sent.archive_dir
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(2)})
    [cand] = list_outbox(s.outbox).candidates.values()
    second = step(p, cand, 2000.0).claimed
    assert second is not None
    assert p.finish.attempt(second) is None

    folder = f"sent/{Path(sent.archive_dir).parent.name}/{Path(sent.archive_dir).name}"
    assert sent.bundle_id is not None and folder.endswith(sent.bundle_id[:12])
    expected = {"code": "invoice-id-already-sent", "invoice_id": "INV-1", "file": "INV-1.xml",
                "message": "invoice INV-1 was already sent in another bundle (INV-1.xml, "
                           f"sent at {sent.since}, folder {folder})"}
    assert deliverer.manifests[-1]["warnings"] == [expected]
    archive = p.j.get(second).archive_dir
    assert archive is not None
    receipt = json.loads((Path(archive) / "receipt.json").read_text("utf-8"))
    assert receipt["manifest"]["warnings"] == [expected]


def correction_behind(tmp_path: Path, retry_after: float) -> tuple[Any, int, int]:
    """A first INV-1.xml put off by the receiver for `retry_after` seconds, and a
    corrected INV-1.xml claimed behind it (retry_max_seconds = 300)."""
    p, s, first = claimed(tmp_path, delivery={"retry_max_seconds": 300})
    p.finish.d = Scripted(Retryable("HTTP 503 from the receiver", 503,
                                    retry_after=retry_after))
    assert p.finish.attempt(first) is not None
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(2)},
                invoice=ubl_invoice("INV-1").replace(b"REF-42", b"REF-43"))
    [cand] = list_outbox(s.outbox).candidates.values()
    second = step(p, cand, 2000.0).claimed
    assert second is not None
    return p, first, second


def test_a_correction_behind_a_version_put_off_looks_again_when_that_one_is_tried(
        tmp_path: Path) -> None:
    """The receiver told the first version to come back in 100 s: the correction behind
    it looks again just after then, not every half second meanwhile (a batch of
    corrections waiting through an outage of hours kept the idle daemon busy)."""
    p, _first, second = correction_behind(tmp_path, 100.0)
    delay = p.finish.attempt(second)
    assert delay is not None and 99.0 < delay <= 100.5
    assert p.j.get(second).state == "retrying" and p.j.get(second).attempts == 0


def test_a_correction_behind_a_version_put_off_for_hours_looks_again_within_retry_max(
        tmp_path: Path) -> None:
    """A Retry-After of an hour on the first version: the correction looks again after
    retry_max_seconds at the latest, as the journal's times are on the wall clock, which
    may step, and no in-process wait may hang on it longer."""
    p, _first, second = correction_behind(tmp_path, 3600.0)
    assert p.finish.attempt(second) == 300


def test_a_correction_behind_a_claim_that_waits_for_the_next_start_does_not_poll(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first INV-1.xml was being claimed when outboxd was killed, and the claim could
    not be finished at the start (the share refused the rename): it stays `claiming`
    until the next start. A corrected INV-1.xml claimed meanwhile waits for it, saying
    why, and looks again every retry_max_seconds, not every half second until then (an
    idle daemon kept busy for days)."""
    p, s, first = claimed(tmp_path, delivery={"retry_max_seconds": 300})
    p.j.transition(first, "claiming")  # as the journal says before the crash
    monkeypatch.setattr("daemon.claiming.recovery.finish_claim", refuse_rename)
    fin = Finisher(s, p.j, NeverPost())
    assert fin.recover() == []
    assert p.j.get(first).state == "claiming" and p.j.get(first).last_error
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(2)},
                invoice=ubl_invoice("INV-1").replace(b"REF-42", b"REF-43"))
    [cand] = list_outbox(s.outbox).candidates.values()
    second = step(p, cand, 2000.0).claimed
    assert second is not None

    assert fin.attempt(second) == 300
    waiting = p.j.get(second)
    assert waiting.state == "retrying" and waiting.attempts == 0
    assert waiting.last_error is not None and "waits for INV-1.xml" in waiting.last_error


def refuse_rename(*args: Any, **kwargs: Any) -> None:
    raise PermissionError(13, "Permission denied")


def test_a_correction_goes_as_soon_as_the_attempt_of_the_first_version_ends(
        tmp_path: Path) -> None:
    """The correction is looked at when the first version's attempt ends: it waited
    while that one was queued or being posted (no next try to wait for), and goes at
    once after it, not a retry_max_seconds later nor by polling meanwhile."""
    p, s, first = claimed(tmp_path, delivery={"retry_max_seconds": 300})
    resumed: list[tuple[int, float]] = []
    p.finish.resume = lambda row, delay: resumed.append((row, delay))
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(2)},
                invoice=ubl_invoice("INV-1").replace(b"REF-42", b"REF-43"))
    [cand] = list_outbox(s.outbox).candidates.values()
    second = step(p, cand, 2000.0).claimed
    assert second is not None
    p.finish.d = deliverer = Recording(Receipt(201, {"receipt_id": "r-1"}, "r-1"),
                                       Receipt(201, {"receipt_id": "r-2"}, "r-2"))

    assert p.finish.attempt(second) == 300  # the first is queued: no time to wait for
    assert deliverer.posts == 0 and resumed == []
    assert p.finish.attempt(first) is None
    assert resumed == [(second, 0.0)]  # woken by the end of the first one's attempt
    assert p.finish.attempt(second) is None
    assert [m["bundle_id"] for m in deliverer.manifests] == [
        p.j.get(first).bundle_id, p.j.get(second).bundle_id]


def test_a_refusal_that_names_its_own_fix_is_quarantined_with_that_fix_alone(
        tmp_path: Path) -> None:
    """A directory target that already holds a document with other bytes has no receiver
    to name a fix: the reason said "move it away …, then retry the bundle — fix what the
    receiver names, then move the bundle back", two fixes, one for a receiver that is not
    there. A refusal that carries its fix is quarantined with that one; others keep
    "fix what the receiver names"."""
    p, _s, row = claimed(tmp_path)
    refused = Rejected("[delivery] target already holds INV-1--INV-1.xml with other content",
                       409, "/target/INV-1--INV-1.xml exists and differs")
    refused.fix = "move that file away if it is an old version, then move the bundle back"
    p.finish.d = Scripted(refused)
    assert p.finish.attempt(row) is None
    [reason] = p.j.get(row).reasons
    assert reason["message"] == (
        "[delivery] target already holds INV-1--INV-1.xml with other content: "
        "/target/INV-1--INV-1.xml exists and differs — move that file away if it is an old "
        "version, then move the bundle back")
    assert "receiver" not in reason["message"]



def test_a_work_folder_swapped_for_a_link_before_the_delivery_sends_nothing_from_it(
        tmp_path: Path) -> None:
    """The work folder swapped, between the claim and the delivery, for a link to a copy
    of it outside processing (the same names, sizes and times: each file would pass
    its part's check). The delivery (the directory transport here) opens the work
    folder from the processing folder, never through a link: none of the copy's files
    is read, nothing is delivered. It is processing-damaged, with the link named; but
    its quarantine neither writes its papers through the link nor moves the link into
    quarantine/: the bundle stays, `quarantining`, its row saying why and what to do,
    and is quarantined once its folder is back in place."""
    p, s, row = claimed(tmp_path)
    work = Path(p.j.get(row).work_dir or "")
    outside = tmp_path / "outside"
    shutil.copytree(work, outside)  # copy2: the times are kept
    real = swap_for_link(work, outside)
    with opened_in(outside) as opened, opened_in(outside / "INV-1") as inside:
        assert p.finish.attempt(row) is not None
    assert "INV-1.xml" not in opened and inside == []
    assert os.listdir(tmp_path / "target") == []
    assert sorted(os.listdir(outside)) == ["INV-1", "INV-1.xml"]  # no papers written there
    assert work.is_symlink() and list(s.quarantine_dir.glob("*/*")) == []
    stuck = p.j.get(row)
    assert stuck.state == "quarantining"
    [reason] = stuck.reasons
    assert (reason["code"], reason["file"]) == ("processing-damaged", "INV-1.xml")
    assert f"lies in {work.name}, which is a symbolic link" in reason["message"]
    assert "is a symbolic link or no longer the folder outboxd claimed" in (
        stuck.last_error or "")
    assert "put the bundle's folder itself back" in (stuck.last_error or "")

    work.unlink()
    os.rename(real, work)  # the admin puts the folder back
    p.finish._move_faults.clear()  # its back-off over
    assert p.finish.attempt(row) is None
    [entry] = s.quarantine_dir.glob("*/*")
    assert p.j.get(row).state == "quarantined" and (entry / "reason.json").is_file()
    assert sorted(os.listdir(outside)) == ["INV-1", "INV-1.xml"]


def test_a_work_folder_swapped_during_the_delivery_sends_what_was_checked_and_stays(
        tmp_path: Path) -> None:
    """The work folder swapped for a link to a look-alike copy just as its attachment is
    opened to be sent: the delivery opens every file from the work folder it holds,
    so the checked bytes go and nothing of the copy is opened. The archive move then
    refuses the link: the bundle stays `delivered` (never shown sent without its folder
    in sent/), its row naming the link and the fix, and nothing is written in the copy."""
    p, s, row = claimed(tmp_path)
    work = Path(p.j.get(row).work_dir or "")
    outside = tmp_path / "outside"
    shutil.copytree(work, outside)
    (outside / "INV-1" / "a.pdf").write_bytes(b"%PDF-1.4 not the checked one")
    with opened_in(outside) as opened, opened_in(outside / "INV-1") as inside, \
            swap_when_opened("a.pdf", work, outside) as swapped:
        assert p.finish.attempt(row) is not None
    assert swapped, "the swap was made"
    assert opened == [] and inside == []
    [delivered] = (tmp_path / "target").iterdir()
    [sent] = delivered.glob("attachments/*/a.pdf")
    assert sent.read_bytes() == pdf_bytes()
    stuck = p.j.get(row)
    assert stuck.state == "delivered" and list(s.sent_dir.glob("*/*")) == []
    assert "no longer the folder outboxd claimed" in (stuck.last_error or "")
    assert sorted(os.listdir(outside)) == ["INV-1", "INV-1.xml"]
    assert work.is_symlink() and (swapped[0] / "INV-1.xml").is_file()


@pytest.mark.parametrize("when", ["before", "during"])
def test_a_work_folder_swapped_for_a_link_is_not_read_again_after_a_restart(
        tmp_path: Path, when: str) -> None:
    """After a restart the claimed bundle is read again by its paths (in the readers).
    Its work folder a link to a copy when the read begins: nothing of the copy is read.
    Swapped for the link while it is read (at the open of its invoice file): what was
    read is not taken. Either way nothing is posted, and the bundle is
    processing-damaged, stays `quarantining` (its move refuses the link) with the link
    named in its row."""
    p, s, row = claimed(tmp_path)
    work = Path(p.j.get(row).work_dir or "")
    outside = tmp_path / "outside"
    shutil.copytree(work, outside)
    fin = restart(p, s, row)
    if when == "before":
        swap_for_link(work, outside)
        with opened_in(outside) as opened:
            assert fin.attempt(row) is not None
        assert opened == []
    else:
        with swap_when_opened("INV-1.xml", work, outside) as swapped:
            assert fin.attempt(row) is not None
        assert swapped, "the swap was made"
    assert sorted(os.listdir(outside)) == ["INV-1", "INV-1.xml"]
    stuck = p.j.get(row)
    assert stuck.state == "quarantining"
    [reason] = stuck.reasons
    assert (reason["code"], reason["file"]) == ("processing-damaged", "INV-1.xml")
    assert "no longer the folder outboxd claimed" in reason["message"]
    assert "no longer the folder outboxd claimed" in (stuck.last_error or "")
    assert os.listdir(tmp_path / "target") == []


@pytest.mark.parametrize("url, secret", [
    ("https://API-KEY-123@op.example/in", "API-KEY-123"),
    ("https://API-KEY-123:@op.example/in", "API-KEY-123"),
    ("https://bob:pw-456@op.example/in", "bob"),
    ("https://op.example/in?code=AZ-FUNC-KEY", "AZ-FUNC-KEY"),
    ("https://op.example/in?t%6Fken=TOK-789", "TOK-789"),
])
def test_the_receipt_names_its_receiver_without_any_part_of_the_url_that_may_be_a_key(
        tmp_path: Path, url: str, secret: str) -> None:
    """receipt.json lies in sent/, which the people on the share read: `delivered_to`
    is the url's scheme, host, port and path, never its user name (an API key given as
    one), password or query (a key under any name, such as an Azure function's
    `?code=`, or a %-encoded `token`)."""
    p, s, row = claimed(tmp_path)
    p.finish.d = HttpDeliverer(DeliveryConfig(url=url), transport=httpx.MockTransport(
        lambda request: httpx.Response(201, json={"receipt_id": "r-1"})))
    assert p.finish.attempt(row) is None
    [entry] = s.sent_dir.glob("*/*")
    text = (entry / "receipt.json").read_text("utf-8")
    assert json.loads(text)["delivered_to"] == "https://op.example/in"
    assert secret not in text


@pytest.mark.parametrize("leads", ["nowhere", "to a copy"])
def test_a_work_folder_replaced_by_a_link_says_so_not_that_the_share_is_away(
        tmp_path: Path, leads: str) -> None:
    """A claimed bundle's work folder moved aside and replaced by a link (one leading
    nowhere, or to a copy of the bundle): the attempt neither reads nor sends through it;
    the row names the link and the fix — not "is the share mounted?", which sent the
    admin looking at the wrong thing for as long as the link stayed."""
    p, s, row_id = claimed(tmp_path)
    work = Path(p.j.get(row_id).work_dir or "")
    target = tmp_path / "copy"
    if leads == "to a copy":
        shutil.copytree(work, target)
    swap_for_link(work, target)
    fin = Finisher(s, p.j, NeverPost())
    assert fin.attempt(row_id) is not None
    row = p.j.get(row_id)
    assert row.state == "quarantining" and row.shown_state == "retrying"
    assert "symbolic link" in (row.last_error or "") and str(work) in (row.last_error or "")
    assert "share mounted" not in (row.last_error or "")


def test_a_format_switched_by_a_reload_during_the_read_again_is_checked_for_before_sending(
        tmp_path: Path) -> None:
    """A claimed PDF invoice is read again (its check dropped) under [delivery] format =
    "bundle"; a reload to "ubl-embedded" lands between that read and the storing of its
    check. The check made for the old format is neither stored nor sent with the new
    format's deliverer: the attempt comes again at once, checks the bundle for
    ubl-embedded and quarantines it as not UBL, having posted nothing."""
    from helpers import write

    p, s = make(tmp_path)
    write(s.outbox.path / "P-9" / "contract.pdf", pdf_bytes())
    write(s.outbox.path / "P-9.pdf", pdf_bytes(text_marker="Invoice number: P-9"))
    [cand] = list_outbox(s.outbox).candidates.values()
    row = step(p, cand, 1000.0).claimed
    assert row is not None
    p.finish.read_claimed_again()  # its check gone, as after a restart
    old, new = Scripted(Receipt(201, {}, "r-1")), Scripted(Receipt(201, {}, "r-2"))
    p.finish.d = old
    ubl = s.model_copy(update={"delivery": s.delivery.model_copy(
        update={"format": "ubl-embedded"})})
    checked: list[str] = []

    def read_then_reload(c: Any, settings: Any) -> Bundle:
        bundle = finish.evaluate(c, settings)
        checked.append(settings.delivery.format)
        if len(checked) == 1:
            p.reconfigure(ubl, new)  # the SIGHUP, between the read and its store
        return bundle

    p.finish.evaluate = read_then_reload
    assert p.finish.attempt(row) == 0.0
    assert old.posts == 0 and new.posts == 0
    assert p.finish.attempt(row) is None
    assert checked == ["bundle", "ubl-embedded"]
    assert old.posts == 0 and new.posts == 0
    done = p.j.get(row)
    assert done.state == "quarantined"
    assert [r["code"] for r in done.reasons] == ["not-ubl"]


def test_a_share_that_flaps_while_a_bundle_is_read_again_is_waited_for_not_quarantined(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a restart a claimed bundle is read again; its work folder is gone when the
    read ends (the share dropped) and back a moment later: the attempt waits for the
    share, as when it is gone, and the bundle is neither sent nor quarantined. Before,
    the second look found the folder back and quarantined the bundle with no reason at
    all (an empty REASON.txt)."""
    p, s, row_id = claimed(tmp_path)
    fin = Finisher(s, p.j, NeverPost())  # a restart: the bundle is read again
    answers = iter([True, False])  # there; gone after the read; back from then on
    monkeypatch.setattr(fin, "_work_present", lambda row: next(answers, True))
    assert fin.attempt(row_id) is not None
    row = p.j.get(row_id)
    assert row.state == "retrying" and "is the share mounted?" in (row.last_error or "")
    assert list(s.quarantine_dir.glob("*/*")) == []


def test_a_journal_error_inside_a_post_is_the_journals_and_its_post_is_counted_next_time(
        tmp_path: Path) -> None:
    """A deliverer that meets the journal's own error in its POST (ubl-embedded records
    each accepted document as it goes; the disk is full): the error is the journal's,
    for the workers to retry after their short journal wait, never "unexpected error
    while delivering" with a traceback and the bundle's retry put off by its back-off as
    if the receiver had failed. The POST that may have reached the receiver is counted
    with the next attempt's: 2 POSTs, attempts 2 in the journal and in receipt.json."""
    from daemon.errors import JournalError
    p, s, row = claimed(tmp_path)
    p.finish.d = Scripted(JournalError("journal write failed: database or disk is full",
                                       reported=True),
                          Receipt(201, {"receipt_id": "r-1"}, "r-1"))
    with capture_logs() as lines:
        with pytest.raises(JournalError):
            p.finish.attempt(row)
    assert not [e for e in lines if e["event"] == "unexpected error while delivering"]
    assert p.j.get(row).state == "delivering"
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "sent" and p.finish.d.posts == 2 and done.attempts == 2
    [entry] = s.sent_dir.glob("*/*")
    assert json.loads((entry / "receipt.json").read_text("utf-8"))["attempts"] == 2


def test_a_422_to_the_first_counted_post_after_a_restart_says_the_receiver_may_have_it(
        tmp_path: Path) -> None:
    """A crash may have cut a first POST short (its count is written with its outcome,
    so attempts stays 0): after the restart, a 422 to the next POST (the first counted)
    may answer a repeat of that one, so REASON.txt says to ask the operator and
    reason.json says delivery_outcome_unknown, not "Nothing was delivered". A 422 to
    the first POST of a bundle this process claimed still says nothing was delivered."""
    p, s, row = claimed(tmp_path)
    fin = restart(p, s, row)
    fin.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 422", 422,
                              "Idempotency-Key reused with another payload"))
    assert fin.attempt(row) is None
    assert p.j.get(row).state == "quarantined" and p.j.get(row).attempts == 1
    [entry] = s.quarantine_dir.glob("*/*")
    text = (entry / "REASON.txt").read_text("utf-8")
    assert "Nothing was delivered" not in text
    assert "it answered a repeat of an earlier attempt with HTTP 422" in text
    reason = (entry / "reason.json").read_bytes()
    assert json.loads(reason)["delivery_outcome_unknown"] is True
    # Decided once, in the reason the journal keeps: the move retried after another
    # restart (reason.json lost to a power loss) writes the very same papers.
    done = p.j.get(row)
    p.j.transition(row, QUARANTINING, "state before the power loss", since=done.since)
    (entry / "reason.json").write_bytes(b"")
    assert restart(p, s, row).attempt(row) is None
    assert (entry / "reason.json").read_bytes() == reason

    here = tmp_path / "here"
    here.mkdir()
    p, s, row = claimed(here)
    p.finish.d = Scripted(Rejected("the receiver rejected the bundle with HTTP 422", 422,
                                   "Idempotency-Key reused with another payload"))
    assert p.finish.attempt(row) is None
    [entry] = s.quarantine_dir.glob("*/*")
    assert "Nothing was delivered" in (entry / "REASON.txt").read_text("utf-8")
    assert "delivery_outcome_unknown" not in json.loads(
        (entry / "reason.json").read_text("utf-8"))


def test_a_422_to_a_retry_quarantines_with_papers_that_say_the_receiver_may_have_it(
        tmp_path: Path) -> None:
    """A 503, then a 422 to the retry (the Idempotency-Key used before with other
    content: the receiver holds something under it): the quarantine's REASON.txt says
    the receiver may have the bundle, why, and what to ask the operator; reason.json
    says delivery_outcome_unknown (so `outboxd retry` asks for --operator-checked). It
    said "Nothing was delivered"."""
    p, s, row = claimed(tmp_path)
    p.finish.d = Scripted(Retryable("HTTP 503 from the receiver", 503),
                          Rejected("the receiver rejected the bundle with HTTP 422", 422,
                                   "Idempotency-Key reused with another payload"))
    assert p.finish.attempt(row) is not None
    assert p.finish.attempt(row) is None
    assert p.j.get(row).state == "quarantined"
    [entry] = s.quarantine_dir.glob("*/*")
    text = (entry / "REASON.txt").read_text("utf-8")
    assert "Nothing was delivered" not in text
    assert "it answered a repeat of an earlier attempt with HTTP 422" in text
    assert json.loads((entry / "reason.json").read_text("utf-8"))[
        "delivery_outcome_unknown"] is True
