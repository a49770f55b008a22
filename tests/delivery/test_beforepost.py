"""A claimed bundle before its POST (delivery/beforepost.py): one whose files changed in
processing after a POST of unknown outcome is quarantined, never posted under another
Idempotency-Key; one no POST of which can have reached the receiver is sent as its files
are now; and a converted image's PDF written before a restart is kept when converting it
again gives other bytes (another Pillow or zlib). Real journal, real files, the
directory-transport pipeline of claimed.py with scripted deliverers."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import Scripted, claimed, folders, restart  # noqa: E402, F401 - quiet_logs
from helpers import looks_fail, pdf_bytes, wait_for  # noqa: E402

from daemon.bundle import Bundle  # noqa: E402
from daemon.delivery.answers import Receipt  # noqa: E402
from daemon.errors import JournalError, Retryable  # noqa: E402
from daemon.validation import convert  # noqa: E402

ANSWER = Receipt(201, {"receipt_id": "r-1"}, "r-1")


class Recording(Scripted):
    """A scripted deliverer that keeps the Idempotency-Key (bundle id) of each POST and
    the bytes of each converted PDF it would have sent."""

    def __init__(self, *outcomes: Exception | Receipt) -> None:
        super().__init__(*outcomes)
        self.keys: list[str] = []
        self.pdfs: list[bytes] = []

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        self.keys.append(manifest["bundle_id"])
        self.pdfs += [a.converted.path.read_bytes() for a in bundle.attachments
                      if a.converted is not None and a.converted.path is not None]
        return super().deliver(bundle, manifest)


def _edit_in_processing(p: Any, row: int) -> None:
    """Someone replaces the attachment inside the claimed work folder."""
    work = Path(p.j.get(row).work_dir or "")
    (work / "INV-1" / "a.pdf").write_bytes(pdf_bytes(text_marker="edited in processing"))


def _quarantined_unsent(p: Any, s: Any, row: int, earlier: str) -> dict[str, Any]:
    """The row quarantined as processing-damaged naming the earlier id; its reason.json."""
    got = p.j.get(row)
    assert got.state == "quarantined" and got.bundle_id == earlier
    assert list(s.sent_dir.glob("*/*")) == []
    [folder] = folders(s.quarantine_dir)
    record = json.loads((folder / "reason.json").read_text())
    [reason] = record["reasons"]
    assert reason["code"] == "processing-damaged" and reason["file"] == "INV-1.xml"
    assert "after a delivery attempt whose outcome is not known" in reason["message"]
    assert f"(bundle {earlier[:12]})" in reason["message"]
    assert record["bundle_id"] == earlier and record["delivery_outcome_unknown"] is True
    text = (folder / "REASON.txt").read_text("utf-8")
    assert "Nothing was delivered" not in text
    assert "The receiver may have this bundle already" in text
    return record


def test_a_bundle_changed_in_processing_after_a_timed_out_post_is_not_sent_under_a_new_key(
        tmp_path: Path) -> None:
    """The first POST timed out (the receiver may hold the bundle under its id); the
    bundle's attachment is then replaced inside processing and it is read again (a
    reload, as a restart does). It was posted under the new id and ended `sent`, 2
    attempts: the invoice twice at the receiver, under keys it cannot match. It is
    quarantined as processing-damaged naming the earlier id, with no second POST."""
    p, s, row = claimed(tmp_path)
    earlier = p.j.get(row).bundle_id
    assert earlier is not None
    p.finish.d = d = Recording(Retryable("read timeout", None), ANSWER)
    assert p.finish.attempt(row) is not None
    assert p.j.get(row).attempts == 1
    _edit_in_processing(p, row)
    p.finish.read_claimed_again()
    assert p.finish.attempt(row) is None
    assert d.keys == [earlier]
    _quarantined_unsent(p, s, row, earlier)


def test_a_bundle_changed_after_a_restart_that_cut_its_first_post_short_is_not_sent(
        tmp_path: Path) -> None:
    """A kill during the first POST leaves no count (the first attempt writes it with
    its outcome): the row reads `delivering`, 0 attempts. The attachment replaced in
    processing before the restart gave another id, posted as if nothing had gone out.
    The restarted daemon cannot know the POST did not reach the receiver: quarantined."""
    p, s, row = claimed(tmp_path)
    earlier = p.j.get(row).bundle_id
    assert earlier is not None and p.j.get(row).attempts == 0
    _edit_in_processing(p, row)
    fin = restart(p, s, row)
    fin.d = d = Recording(ANSWER)
    assert fin.attempt(row) is None
    assert d.keys == []
    _quarantined_unsent(p, s, row, earlier)


def test_a_bundle_changed_after_a_post_whose_count_was_not_written_is_not_sent(
        tmp_path: Path) -> None:
    """The first POST went out and its answer could not be recorded (the journal locked
    by another process): the row still reads 0 attempts. Read again after the lock with
    a replaced attachment, it was posted under the new id; it is quarantined."""
    p, s, row = claimed(tmp_path)
    earlier = p.j.get(row).bundle_id
    assert earlier is not None
    p.j._db.execute("PRAGMA busy_timeout = 50")  # not the 5 s a command waits
    locker = sqlite3.connect(s.journal_path, isolation_level=None)

    class LockedWhileAnswering(Recording):
        def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
            locker.execute("BEGIN EXCLUSIVE")
            return super().deliver(bundle, manifest)

    p.finish.d = d = LockedWhileAnswering(Retryable("HTTP 503 from the receiver", 503))
    try:
        with pytest.raises(JournalError):
            p.finish.attempt(row)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert p.j.get(row).attempts == 0 and d.keys == [earlier]
    _edit_in_processing(p, row)
    p.finish.read_claimed_again()
    p.finish.d = later = Recording(ANSWER)

    def finished() -> bool:  # once the journal's back-off after the failed write ends
        try:
            return p.finish.attempt(row) is None
        except JournalError:
            return False
    wait_for(finished, timeout=10, what="the attempt once the journal is writable again")
    assert later.keys == []
    _quarantined_unsent(p, s, row, earlier)


def test_a_bundle_changed_before_any_post_is_sent_as_its_files_are_now(
        tmp_path: Path) -> None:
    """Claimed here and never posted (no attempt yet): a bundle read again after its
    attachment was replaced in processing goes out as its files are now, validated
    again, under its new id — no POST of the earlier id can have reached anyone."""
    p, s, row = claimed(tmp_path)
    earlier = p.j.get(row).bundle_id
    _edit_in_processing(p, row)
    p.finish.read_claimed_again()
    p.finish.d = d = Recording(ANSWER)
    assert p.finish.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "sent" and d.keys == [done.bundle_id] and done.bundle_id != earlier
    assert list(s.quarantine_dir.glob("*/*")) == []


def _claimed_png(tmp_path: Path) -> tuple[Any, Any, int]:
    """A claimed bundle whose PNG is converted to PDF at delivery (external print)."""
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), (200, 30, 30)).save(buf, "PNG", dpi=(300, 300))
    return claimed(tmp_path, {"scan.png": buf.getvalue()},
                   {"channel": "external-print", "convert_images": True})


def _another_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Conversion from now on gives other bytes for the same image, as a Pillow or zlib
    upgrade does (another compressor's output): still one valid page."""
    made = convert.image_to_pdf

    def upgraded(data: bytes, max_pixels: int) -> bytes:
        return made(data, max_pixels) + b"% another zlib\n"
    monkeypatch.setattr(convert, "image_to_pdf", upgraded)


def test_a_converted_pdf_written_before_a_restart_is_kept_not_converted_anew(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A print bundle's PNG was converted and its PDF written and posted (timed out);
    outboxd is upgraded and restarted, and its conversion now gives other bytes. The PDF
    was written again, the bundle had another id and went out under a new key (or was
    quarantined as changed). The PDF written before is kept (the bytes the first POST
    carried), and the bundle is sent again under the same key, twice with one PDF."""
    p, s, row = _claimed_png(tmp_path)
    earlier = p.j.get(row).bundle_id
    p.finish.d = first = Recording(Retryable("read timeout", None))
    assert p.finish.attempt(row) is not None
    [pdf] = (Path(p.j.get(row).work_dir or "") / "INV-1.converted").rglob("*.pdf")
    written = pdf.read_bytes()
    _another_library(monkeypatch)
    fin = restart(p, s, row)
    fin.d = second = Recording(Retryable("read timeout", None), ANSWER)
    assert fin.attempt(row) is not None  # the next attempt after the restart, too
    assert fin.attempt(row) is None
    done = p.j.get(row)
    assert done.state == "sent" and done.bundle_id == earlier
    assert first.keys + second.keys == [earlier] * 3
    assert first.pdfs + second.pdfs == [written] * 3
    assert list(s.quarantine_dir.glob("*/*")) == []


def test_a_converted_pdf_the_share_fails_to_open_waits_never_taken_for_not_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As above, but the share fails the open of the PDF written before (EIO) at the
    first attempt after the restart: that cannot tell whether it was written, so the
    bundle waits (retrying, saying why), and is read again at its next attempt, which
    keeps the PDF and sends under the same key. Taken for "not written", the bundle
    converted anew had another id after a POST of unknown outcome and was quarantined."""
    p, s, row = _claimed_png(tmp_path)
    earlier = p.j.get(row).bundle_id
    p.finish.d = Recording(Retryable("read timeout", None))
    assert p.finish.attempt(row) is not None
    [pdf] = (Path(p.j.get(row).work_dir or "") / "INV-1.converted").rglob("*.pdf")
    written = pdf.read_bytes()
    _another_library(monkeypatch)
    fin = restart(p, s, row)
    fin.d = d = Recording(ANSWER)
    with pytest.MonkeyPatch.context() as m:
        looks_fail(m, pdf.name, calls=("open",))
        assert fin.attempt(row) is not None
    waiting = p.j.get(row)
    assert d.keys == [] and waiting.state == "retrying"
    assert "cannot read the PDFs an earlier attempt converted" in (waiting.last_error or "")
    assert "Input/output error" in (waiting.last_error or "")
    fin.clock = lambda: float("inf")  # its back-off over
    assert fin.attempt(row) is None
    assert p.j.get(row).state == "sent" and d.keys == [earlier] and d.pdfs == [written]
    assert list(s.quarantine_dir.glob("*/*")) == []


def test_a_converted_pdf_changed_in_processing_is_not_what_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a PDF that is still the bytes the row's id names is kept: one edited in
    processing is not, and after a POST of unknown outcome the bundle, converted anew
    with other bytes, is quarantined, never sent under the new id."""
    p, s, row = _claimed_png(tmp_path)
    earlier = p.j.get(row).bundle_id
    assert earlier is not None
    p.finish.d = Recording(Retryable("read timeout", None))
    assert p.finish.attempt(row) is not None
    [pdf] = (Path(p.j.get(row).work_dir or "") / "INV-1.converted").rglob("*.pdf")
    pdf.write_bytes(pdf.read_bytes() + b"% edited\n")
    _another_library(monkeypatch)
    fin = restart(p, s, row)
    fin.d = d = Recording(ANSWER)
    assert fin.attempt(row) is None
    assert d.keys == [] and p.j.get(row).state == "quarantined"
    [folder] = folders(s.quarantine_dir)
    record = json.loads((folder / "reason.json").read_text())
    assert record["bundle_id"] == earlier and record["delivery_outcome_unknown"] is True


def test_a_restart_that_reads_unchanged_files_otherwise_does_not_say_they_changed(
        tmp_path: Path) -> None:
    """The first POST timed out; an admin then changes `[attachments]
    default_document_type` and restarts outboxd (which reads claimed bundles again).
    The files in processing are untouched, but read with the new setting the bundle has
    another id: it is not posted under that new key (the receiver may hold the earlier
    one), and its reason does not say that the bundle's files changed in the processing
    folder — nobody touched them — but that the bundle as read now differs from the one
    posted, a changed configuration or an upgrade being one cause, so that the admin is
    not sent looking for who edited the folder."""
    p, s, row = claimed(tmp_path)
    earlier = p.j.get(row).bundle_id
    assert earlier is not None
    p.finish.d = d = Recording(Retryable("read timeout", None), ANSWER)
    assert p.finish.attempt(row) is not None
    changed = s.model_copy(update={"attachments": s.attachments.model_copy(
        update={"default_document_type": "Timesheet"})})
    fin = restart(p, changed, row)
    fin.d = d
    assert fin.attempt(row) is None
    assert d.keys == [earlier]
    got = p.j.get(row)
    assert got.state == "quarantined"
    [folder] = folders(s.quarantine_dir)
    [reason] = json.loads((folder / "reason.json").read_text())["reasons"]
    assert reason["code"] == "processing-damaged"
    assert not reason["message"].startswith("the bundle's files changed")
    assert "or a changed configuration or an upgraded outboxd" in reason["message"]
    assert f"(bundle {earlier[:12]})" in reason["message"]


def test_a_claim_finished_at_a_start_is_sent_as_its_files_are_when_they_change_before_a_post(
        tmp_path: Path) -> None:
    """A power cut left the row `claiming` (its hand-over's `delivering` not on disk, which
    is on disk before any POST): the claim sent nothing. The start finishes the claim;
    before its first attempt the attachment is replaced in processing, so the bundle
    read again has another id. No POST of the earlier id can have gone out, so it is
    sent as its files are now, under the new id — it was quarantined as
    processing-damaged, "the receiver may hold the earlier version", for a bundle never
    sent."""
    p, s, row = claimed(tmp_path)
    earlier = p.j.get(row).bundle_id
    p.j.transition(row, "claiming", "a power cut before the hand-over reached the disk")
    fin = restart(p, s, row)
    assert p.j.get(row).state == "delivering"
    _edit_in_processing(p, row)
    fin.read_claimed_again()  # as a reload switching [delivery] format does
    fin.d = d = Recording(ANSWER)
    assert fin.attempt(row) is None
    [key] = d.keys
    assert key != earlier
    got = p.j.get(row)
    assert got.state == "sent" and got.bundle_id == key
    assert folders(s.quarantine_dir) == []


def test_an_image_replaced_in_processing_after_its_pdf_was_posted_is_not_hidden_by_it(
        tmp_path: Path) -> None:
    """A print bundle's PNG was converted and posted (timed out); someone then replaces
    the PNG inside processing with another picture, and outboxd restarts. The PDF the
    first attempt wrote was still the bytes the row's id names, so it was kept and sent
    again as if nothing had changed: the new picture went into sent/ beside a PDF of the
    old one, said to be delivered. A PDF older than its image is not the image's: the
    bundle, changed after a POST of unknown outcome, is quarantined, never posted."""
    p, s, row = _claimed_png(tmp_path)
    earlier = p.j.get(row).bundle_id
    p.finish.d = Recording(Retryable("read timeout", None))
    assert p.finish.attempt(row) is not None
    work = Path(p.j.get(row).work_dir or "")
    buf = io.BytesIO()
    Image.new("RGB", (600, 300), (30, 30, 200)).save(buf, "PNG", dpi=(300, 300))
    (work / "INV-1" / "scan.png").write_bytes(buf.getvalue())
    fin = restart(p, s, row)
    fin.d = d = Recording(ANSWER)
    assert fin.attempt(row) is None
    assert d.keys == [] and p.j.get(row).state == "quarantined"
    assert list(s.sent_dir.glob("*/*")) == []
    [folder] = folders(s.quarantine_dir)
    record = json.loads((folder / "reason.json").read_text())
    assert record["bundle_id"] == earlier and record["delivery_outcome_unknown"] is True
    assert record["reasons"][0]["code"] == "processing-damaged"


@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_converted_pdf_that_is_a_link_or_a_fifo_is_never_read_to_be_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """The PDF the first attempt wrote is replaced in processing by a link to a copy of
    its very bytes outside the outbox, or by a FIFO; outboxd restarts after an upgrade
    that converts to other bytes. Neither is read for its hash (no link followed, no
    FIFO opened — that would hang the attempt): the PDF is not kept, and the bundle,
    with another id after a POST of unknown outcome, is quarantined, never posted."""
    import os

    p, s, row = _claimed_png(tmp_path)
    earlier = p.j.get(row).bundle_id
    p.finish.d = Recording(Retryable("read timeout", None))
    assert p.finish.attempt(row) is not None
    [pdf] = (Path(p.j.get(row).work_dir or "") / "INV-1.converted").rglob("*.pdf")
    outside = tmp_path / "elsewhere.pdf"
    outside.write_bytes(pdf.read_bytes())
    pdf.unlink()
    if kind == "link":
        pdf.symlink_to(outside)
    else:
        os.mkfifo(pdf)
    _another_library(monkeypatch)
    fin = restart(p, s, row)
    fin.d = d = Recording(ANSWER)
    assert fin.attempt(row) is None
    assert d.keys == [] and p.j.get(row).state == "quarantined"
    [folder] = folders(s.quarantine_dir)
    assert json.loads((folder / "reason.json").read_text())["bundle_id"] == earlier


CUT_OFF = ("processing-damaged", "INV-1/a.pdf",
           "is not the file that was checked: its part was cut off before its end")


def test_a_first_post_cut_off_at_a_changed_file_says_nothing_was_delivered(
        tmp_path: Path) -> None:
    """The first POST stops at a file changed in processing (its part cut off before its
    end: the receiver never has the request whole), and no POST went before it. That
    attempt was counted, so the papers said "The receiver may have this bundle
    already … does not know how that attempt ended" — false, and a clerk was sent to
    the operator for nothing. Now: "Nothing was delivered", no delivery_outcome_unknown."""
    from daemon.errors import InputError
    p, s, row = claimed(tmp_path)
    p.finish.d = Recording(InputError(*CUT_OFF))
    assert p.finish.attempt(row) is None
    assert p.j.get(row).state == "quarantined" and p.j.get(row).attempts == 1
    [folder] = folders(s.quarantine_dir)
    record = json.loads((folder / "reason.json").read_text())
    assert "delivery_outcome_unknown" not in record
    assert record["reasons"][0]["code"] == "processing-damaged"
    text = (folder / "REASON.txt").read_text("utf-8")
    assert "Nothing was delivered" in text
    assert "The receiver may have this bundle already" not in text


def test_a_post_cut_off_after_one_that_timed_out_still_says_the_outcome_is_unknown(
        tmp_path: Path) -> None:
    """The first POST timed out, the second stops at a file changed in processing: the
    first may be with the receiver, so the papers say to ask the operator."""
    from daemon.errors import InputError
    p, s, row = claimed(tmp_path)
    p.finish.d = Recording(Retryable("read timeout", None), InputError(*CUT_OFF))
    assert p.finish.attempt(row) is not None
    assert p.finish.attempt(row) is None
    [folder] = folders(s.quarantine_dir)
    assert json.loads((folder / "reason.json").read_text())["delivery_outcome_unknown"]
    assert "The receiver may have this bundle already" in (
        folder / "REASON.txt").read_text("utf-8")
