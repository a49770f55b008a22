"""Finishing a delivered bundle after a crash or a power loss: the archive entry ends
complete (receipt.json as the journal kept it) and nothing is posted again. Real
journal, real files, the directory transport for the first delivery."""

from __future__ import annotations

import errno
import io
import json
import sys
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent))

from helpers import drop_bundle, pdf_bytes  # noqa: E402

from daemon import archive, convert, fsops, manifest  # noqa: E402
from daemon.answers import Receipt  # noqa: E402
from daemon.bundle import Bundle  # noqa: E402
from daemon.config import Settings  # noqa: E402
from daemon.deliver import DirectoryDeliverer  # noqa: E402
from daemon.errors import Paused, Rejected, Retryable  # noqa: E402
from daemon.finish import Finisher, evaluate  # noqa: E402
from daemon.journal import DELIVERED, Journal  # noqa: E402
from daemon.pipeline import Pipeline  # noqa: E402
from daemon.scan import list_outbox  # noqa: E402


class NeverPost:
    """A deliverer for the restarted daemon: a delivered bundle is never sent again."""

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        raise AssertionError("posted a bundle the receiver already has")

    def close(self) -> None:
        pass


def claimed(tmp_path: Path, attachments: dict[str, bytes] | None = None,
            validation: dict[str, Any] | None = None) -> tuple[Pipeline, Settings, int]:
    """A pipeline with one bundle dropped, read and claimed (not yet delivered)."""
    outbox = tmp_path / "outbox"
    outbox.mkdir(parents=True)
    s = Settings(outbox={"path": str(outbox), "settle_seconds": 0, "rescan_seconds": 30},
                 paths={"state_dir": str(tmp_path / "state")},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 validation=validation or {})
    for folder in (s.sent_dir, s.quarantine_dir, s.processing_dir, s.paths.state_dir,
                   tmp_path / "target"):
        folder.mkdir(parents=True, exist_ok=True)
    p = Pipeline(s, Journal(s.journal_path), DirectoryDeliverer(tmp_path / "target"))
    drop_bundle(outbox, "INV-1", attachments or {"a.pdf": pdf_bytes()})
    [cand] = list_outbox(s.outbox).candidates.values()
    nxt = p.step(cand, 1000.0)
    assert nxt.read is not None
    p.took_read(cand.invoice.name, nxt.read, evaluate(cand, s))
    row = p.step(cand, 1000.0).claimed
    assert row is not None
    return p, s, row


def restart(p: Pipeline, s: Settings, row: int) -> Finisher:
    """A new start on the same journal: recovery hands the row to a delivery attempt."""
    fin = Finisher(s, p.j, NeverPost())
    assert [r for r, _ in fin.recover()] == [row]
    return fin


def test_power_loss_that_kept_the_move_but_not_the_receipt_ends_with_it_whole(
        tmp_path: Path) -> None:
    """The archive move reached the disk but the receipt's bytes and the 'sent' commit did
    not (both are synced only after the move): the restarted daemon writes receipt.json
    again from the journal's delivered record and records 'sent' — without a POST."""
    p, s, row = claimed(tmp_path)
    assert p.finish.attempt(row) is None
    entry = Path(p.j.get(row).archive_dir or "")
    # What the disk and the journal can hold after such a power loss:
    p.j.transition(row, DELIVERED, "state before the power loss")
    (entry / "receipt.json").write_bytes(b"")

    assert restart(p, s, row).attempt(row) is None
    after = p.j.get(row)
    assert after.state == "sent" and after.archive_dir == str(entry)
    assert json.loads((entry / "receipt.json").read_text("utf-8")) == after.response
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


class Scripted:
    """A deliverer that answers each POST with the next outcome of its script."""

    def __init__(self, *outcomes: Exception | Receipt) -> None:
        self.outcomes = list(outcomes)
        self.posts = 0

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        self.posts += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        pass


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


class Idempotent(Scripted):
    """A deliverer whose repeats the receiver recognises, as HTTP's Idempotency-Key."""

    idempotent = True


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
    monkeypatch.setattr("daemon.moves.place",
                        lambda *a: (order.append("place"), place(*a))[1])
    assert p.finish.attempt(row) is None
    assert order == ["durable", "place"]
    assert p.j.get(row).state == "sent" and p.finish.d.posts == 1


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
    rename, rmtree = fsops.rename_noreplace, fsops.shutil.rmtree

    def across(src: Path, dst: Path) -> None:
        if Path(src) == work:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        rename(src, dst)

    def dies_midway(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == work:
            (work / "INV-1" / "a.pdf").unlink()
            raise _Died
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(fsops, "rename_noreplace", across)
    monkeypatch.setattr(fsops.shutil, "rmtree", dies_midway)
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


def test_a_full_disk_while_writing_a_converted_image_is_retried_not_quarantined(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """convert_images on a print channel writes the PDF made from a PNG into the work
    folder at delivery. A full disk there is the environment, not the bundle: it stays
    in flight with the reason shown and nothing in quarantine, and once the back-off
    has passed and the disk has room the next attempt delivers it."""
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), (200, 30, 30)).save(buf, "PNG", dpi=(300, 300))
    p, s, row = claimed(tmp_path, {"scan.png": buf.getvalue()},
                        {"channel": "external-print", "convert_images": True})

    def full(path: Path, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(convert, "write_atomic", full)
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


def test_an_image_changed_in_processing_before_its_conversion_is_quarantined_as_damaged(
        tmp_path: Path) -> None:
    """The PNG in the work folder no longer gives the PDF that was validated: the
    bundle is damaged there and goes to quarantine with a reason naming the file."""
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), (200, 30, 30)).save(buf, "PNG", dpi=(300, 300))
    p, s, row = claimed(tmp_path, {"scan.png": buf.getvalue()},
                        {"channel": "external-print", "convert_images": True})
    other = io.BytesIO()
    Image.new("RGB", (600, 300), (20, 30, 200)).save(other, "PNG", dpi=(300, 300))
    (Path(p.j.get(row).work_dir or "") / "INV-1" / "scan.png").write_bytes(other.getvalue())
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "quarantined"
    [reason] = done.reasons
    assert reason["code"] == "processing-damaged" and reason["file"] == "INV-1/scan.png"


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


def test_a_bundle_archived_after_a_failed_move_is_sent_without_the_old_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Delivered, its move into sent/ failing once (a full disk), then done: the row is
    `sent` with no last_error (before, `status --json` kept "cannot be archived")."""
    from daemon import moves

    p, _, row = claimed(tmp_path)
    real_place = moves.place
    calls: list[int] = []

    def full_once(*args: Any, **kwargs: Any) -> Path:
        calls.append(1)
        if len(calls) == 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_place(*args, **kwargs)
    monkeypatch.setattr(moves, "place", full_once)
    assert p.finish.attempt(row) is not None  # delivered, not archived: retried
    assert "cannot be archived" in (p.j.get(row).last_error or "")
    p.finish.clock = lambda: 1e9  # its back-off over
    assert p.finish.attempt(row) is None
    assert (p.j.get(row).state, p.j.get(row).last_error) == ("sent", None)


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
