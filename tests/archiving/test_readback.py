"""Reading sent/ back into a fresh journal (a lost journal costs no second sending:
docs/operations.md, Backup)."""

from __future__ import annotations

import errno
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import pin_wall, without_blocking
from structlog.testing import capture_logs

from daemon.archiving.readback import Unreadable, receipt_record, restore_sent, sent_records
from daemon.errors import ConfigError
from daemon.journal import Journal, parse_iso

BID = "ab" * 32


def receipt(folder: Path, bid: str, name: str = "INV-1.xml",
            delivered_at: str = "2026-01-01T00:00:00.000Z") -> Path:
    folder.mkdir(parents=True)
    (folder / "receipt.json").write_text(json.dumps({
        "manifest": {"bundle_id": bid, "invoice_file": {"name": name, "original_name": name},
                     "invoices": [{"id": "INV-1", "attachments": []}]},
        "response": {"status": 201, "receipt_id": "r-1"}, "attempts": 1,
        "delivered_at": delivered_at}))
    return folder


def day(offset: int) -> str:
    return (datetime.now(UTC) - timedelta(days=offset)).strftime("%Y-%m-%d")


def test_fresh_journal_learns_every_receipt_in_the_window(tmp_path: Path) -> None:
    """Receipts within duplicate_window_days are recorded as sent; older date folders,
    .partial copies and entries without a receipt are not."""
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    receipt(sent / day(30) / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")
    receipt(sent / day(500) / "INV-3--efefefefefef", "ef" * 32, "INV-3.xml")
    receipt(sent / day(0) / ".INV-4--000000000000.partial", "00" * 32)
    (sent / day(0) / "no-receipt").mkdir()
    records, unusable = sent_records(sent, 400)
    assert sorted(r["bundle_id"] for r in records) == [BID, "cd" * 32]
    assert unusable == 1
    j = Journal(tmp_path / "j.sqlite3")
    try:
        assert restore_sent(j, sent, 400) == 2
        assert j.was_sent(BID) and j.was_sent("cd" * 32) and not j.was_sent("ef" * 32)
        assert restore_sent(j, sent, 400) == 0  # only on an empty journal
    finally:
        j.close()


@pytest.mark.parametrize("clock", [datetime(2033, 6, 1, tzinfo=UTC),
                                   datetime(1970, 1, 1, tzinfo=UTC)],
                         ids=["two years ahead", "at 1970"])
def test_a_wrong_wall_clock_still_reads_back_the_window_of_what_was_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: datetime) -> None:
    """The journal lost and the server's clock two years ahead (a dead clock battery, NTP
    not answering yet): the last duplicate_window_days of sent/ are read back all the
    same, counted back from its newest day folder, and older ones are not (before, none
    was: every invoice dropped again was sent a second time). A clock at 1970 reads them
    all."""
    pin_wall(monkeypatch, clock, ("daemon.archiving.dayfolder",))
    sent = tmp_path / "sent"
    receipt(sent / "2031-05-06" / "INV-1--abababababab", BID)
    receipt(sent / "2030-05-01" / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")
    receipt(sent / "2030-01-01" / "INV-3--efefefefefef", "ef" * 32, "INV-3.xml")
    (sent / "2031-13-45").mkdir()  # no date: ends no window
    records, _ = sent_records(sent, 400)
    wanted = [BID, "cd" * 32] + (["ef" * 32] if clock.year == 1970 else [])
    assert sorted(r["bundle_id"] for r in records) == sorted(wanted)


def test_the_day_folder_a_whole_window_back_is_read_back_and_the_one_before_is_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """duplicate_window_days = 400 counted back from today (2031-05-06) reaches
    2030-04-01: that day's receipts are read back (at least the last 400 days), the
    day before it is not."""
    pin_wall(monkeypatch, datetime(2031, 5, 6, 12, tzinfo=UTC), ("daemon.archiving.dayfolder",))
    sent = tmp_path / "sent"
    receipt(sent / "2031-05-06" / "INV-0--010101010101", "01" * 32, "INV-0.xml")
    receipt(sent / "2030-04-01" / "INV-1--abababababab", BID)
    receipt(sent / "2030-03-31" / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")
    records, _ = sent_records(sent, 400)
    assert sorted(r["bundle_id"] for r in records) == ["01" * 32, BID]


def test_a_receipt_is_read_back_under_the_invoice_files_name_in_the_outbox(
        tmp_path: Path) -> None:
    """A receipt names the invoice file as sent (safe_filenames) and as it lay in the
    outbox (original_name): the journal gets the outbox's name, which `status` shows
    and a clerk looks for."""
    folder = receipt(tmp_path / "sent" / day(0) / "Faktura--abababababab", BID)
    data = json.loads((folder / "receipt.json").read_text("utf-8"))
    data["manifest"]["invoice_file"] = {"name": "Faktura_.xml", "original_name": "Faktura♥.xml"}
    (folder / "receipt.json").write_text(json.dumps(data))
    [record] = sent_records(tmp_path / "sent", 400)[0]
    assert record["invoice_file"] == "Faktura♥.xml"


def test_a_receipts_delivery_time_comes_back_as_the_journal_writes_times(
        tmp_path: Path) -> None:
    """A receipt edited by hand ("last Tuesday", a time without a zone, none at all) must
    not become a `since` that sorts after every date, nor count as "sent today": such a
    time is read back as the start of the day of the sent/ folder it lies in; one with
    another zone is brought to UTC as the journal's are."""
    sent = tmp_path / "sent"
    three_ago = day(3)  # once: a run across midnight must expect the folder it made
    receipt(sent / three_ago / "INV-1--abababababab", BID, delivered_at="last Tuesday")
    receipt(sent / three_ago / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml",
            delivered_at="2026-01-01T00:30:00")
    receipt(sent / three_ago / "INV-3--efefefefefef", "ef" * 32, "INV-3.xml",
            delivered_at="2026-01-01T01:30:00+02:00")
    missing = receipt(sent / three_ago / "INV-4--010101010101", "01" * 32, "INV-4.xml")
    data = json.loads((missing / "receipt.json").read_text())
    del data["delivered_at"]
    (missing / "receipt.json").write_text(json.dumps(data))
    records, _ = sent_records(sent, 400)
    at = {r["invoice_file"]: r["delivered_at"] for r in records}
    assert at["INV-3.xml"] == "2025-12-31T23:30:00.000Z"
    for name in ("INV-1.xml", "INV-2.xml", "INV-4.xml"):
        assert at[name] == f"{three_ago}T00:00:00.000Z", name


def test_an_unreadable_delivery_time_restored_is_not_sent_today(tmp_path: Path) -> None:
    """The journal read back from a receipt of three days ago whose delivery time is
    unreadable counts it on its folder's day, not among today's sent bundles."""
    sent = tmp_path / "sent"
    three_ago = day(3)  # once: a run across midnight must expect the folder it made
    receipt(sent / three_ago / "INV-1--abababababab", BID, delivered_at="")
    j = Journal(tmp_path / "j.sqlite3")
    try:
        assert restore_sent(j, sent, 400) == 1
        [row] = j.rows(("sent",))
        assert row.since == f"{three_ago}T00:00:00.000Z"
        assert j.summary()["sent today"] == 0
    finally:
        j.close()


def test_a_day_folder_that_is_no_date_leaves_an_unreadable_time_as_now(
        tmp_path: Path) -> None:
    """When even the folder's day is unknown (a name shaped as a date that is none),
    an unreadable delivery time is read back as now, as before."""
    sent = tmp_path / "sent"
    receipt(sent / "9999-99-99" / "INV-1--abababababab", BID, delivered_at="last Tuesday")
    [rec], _ = sent_records(sent, 400)
    assert abs((parse_iso(rec["delivered_at"]) - datetime.now(UTC)).total_seconds()) < 60


def test_missing_sent_folder_is_nothing_to_read(tmp_path: Path) -> None:
    assert sent_records(tmp_path / "nope", 400) == ([], 0)


def test_a_fifo_named_receipt_json_is_never_opened_but_logged_and_counted(
        tmp_path: Path) -> None:
    """A FIFO planted as an entry's receipt.json would block the daemon's start before
    READY (no signal handler yet): it is not opened, the entry counts as one without a
    receipt, a warning names the file, and the other receipts are still read back."""
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    planted = sent / day(0) / "INV-9--0123456789ab"
    planted.mkdir()
    os.mkfifo(planted / "receipt.json")
    with capture_logs() as logs:
        records, unusable = without_blocking(lambda: sent_records(sent, 400),
                                              planted / "receipt.json", "reading sent/ back")
    assert [r["bundle_id"] for r in records] == [BID] and unusable == 1
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["file"] == str(planted / "receipt.json") and "FIFO" in warning["error"]


def test_a_receipt_json_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    """receipt.json as a symbolic link to a receipt elsewhere: the link is never
    followed, so that bundle id is not read back (and the entry is counted)."""
    sent = tmp_path / "sent"
    elsewhere = receipt(tmp_path / "elsewhere", "cd" * 32)
    entry = sent / day(0) / "INV-2--cdcdcdcdcdcd"
    entry.mkdir(parents=True)
    (entry / "receipt.json").symlink_to(elsewhere / "receipt.json")
    with capture_logs() as logs:
        assert sent_records(sent, 400) == ([], 1)
    assert ["symbolic link" in e["error"] for e in logs] == [True]


def test_a_day_folder_swapped_for_a_link_after_the_listing_is_not_read_back(
        tmp_path: Path) -> None:
    """A share user swaps a day folder of sent/ for a link to a folder of their own while
    sent/ is read back (after it was listed): the receipts there are never read (the
    journal would believe a bundle sent that never was, and refuse the real invoice as a
    duplicate); the swap is said, and the other days are read back."""
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    receipt(sent / day(1) / "INV-0--000000000000", "00" * 32, "INV-0.xml")
    theirs = tmp_path / "theirs"
    receipt(theirs / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")

    def swap(done: str) -> None:  # after the older day, before today's is opened
        if done == day(1):
            (sent / day(0) / "INV-1--abababababab" / "receipt.json").unlink()
            (sent / day(0) / "INV-1--abababababab").rmdir()
            (sent / day(0)).rmdir()
            (sent / day(0)).symlink_to(theirs)

    with capture_logs() as logs:
        records, _ = sent_records(sent, 400, swap)
    assert [r["bundle_id"] for r in records] == ["00" * 32]
    assert [e for e in logs if "cannot be read" in e["event"]
            and e["folder"] == str(sent / day(0))]


def test_an_entry_swapped_for_a_link_after_the_listing_is_not_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same one level down: an entry of a day folder swapped for a link to a folder
    holding another bundle's receipt, after the day was listed, is not followed."""
    sent = tmp_path / "sent"
    entry = receipt(sent / day(0) / "INV-1--abababababab", BID)
    theirs = receipt(tmp_path / "theirs", "cd" * 32, "INV-2.xml")
    real = os.scandir

    class Swapping:  # lists the day, then swaps its entry, as a race would
        def __init__(self, inner: Any) -> None:
            self.names = list(inner)
            inner.close()
            (entry / "receipt.json").unlink()
            entry.rmdir()
            entry.symlink_to(theirs)

        def __enter__(self) -> Any:
            return iter(self.names)

        def __exit__(self, *exc: object) -> None:
            pass

    def scandir(path: Any = ".") -> Any:
        listed = path if isinstance(path, int) else Path(path)
        the_day = (os.path.samestat(os.fstat(listed), os.stat(entry.parent))
                   if isinstance(listed, int) else listed == entry.parent)
        return Swapping(real(path)) if the_day else real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with capture_logs() as logs:
        assert sent_records(sent, 400) == ([], 1)
    [said] = [e for e in logs if e["folder"] == str(entry)]
    assert "Errno" not in said["error"]  # in words, as the rest of archiving/ says it


def test_a_receipt_over_a_megabyte_is_read_back(tmp_path: Path) -> None:
    """A receipt keeps the receiver's whole answer and the manifest of every attachment:
    one of 1.5 MB is read back like any other, or the bundle could be sent again."""
    sent = tmp_path / "sent"
    folder = receipt(sent / day(0) / "INV-1--abababababab", BID)
    data = json.loads((folder / "receipt.json").read_text())
    data["response"]["body"] = {"log": "x" * 1_500_000}
    (folder / "receipt.json").write_text(json.dumps(data))
    records, unusable = sent_records(sent, 400)
    assert [r["bundle_id"] for r in records] == [BID] and unusable == 0


def test_a_day_folder_that_cannot_be_listed_is_logged_and_the_others_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day folder in sent/ the daemon may not list (permissions changed by hand) does
    not stop the start: a warning names it, and the other days' receipts are read back."""
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    locked = receipt(sent / day(1) / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml").parent
    real = os.open

    def opening(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) == locked:  # as for a folder of mode 000 (the tests may run as root)
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", opening)
    with capture_logs() as logs:
        records, _ = sent_records(sent, 400)
    assert [r["bundle_id"] for r in records] == [BID]
    [said] = [e for e in logs if "cannot be read" in e["event"] and e["folder"] == str(locked)]
    # In words, as the rest of archiving/ says an OSError, not "[Errno 13] …".
    assert "Permission denied" in said["error"] and "Errno" not in said["error"]


def test_a_day_folder_that_fails_in_the_middle_of_its_listing_is_logged_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read back into a new journal: a day folder that opens but fails while it is
    listed (its share dropping: EIO) raised out of the start as a traceback; it is now
    said as a folder that cannot be read, as one that does not open is."""
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    broken = receipt(sent / day(1) / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml").parent
    failing_listing(monkeypatch, broken)
    with capture_logs() as logs:
        records, _ = sent_records(sent, 400)
    assert [r["bundle_id"] for r in records] == [BID]
    assert [e for e in logs if "cannot be read" in e["event"] and e["folder"] == str(broken)]


def test_a_sent_folder_that_cannot_be_listed_stops_the_start_saying_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing may be sent before sent/ is read back into a new journal: sent/ that
    cannot be listed at all (a share away: EIO) stops the start with a configuration
    error naming the folder and the fix, not an OSError's traceback."""
    import errno
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == sent:
            raise OSError(errno.EIO, "Input/output error", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with pytest.raises(ConfigError) as info:
        sent_records(sent, 400)
    assert f"[paths] sent = {str(sent)!r} cannot be listed" in str(info.value)
    assert "nothing is sent before it is read" in str(info.value)


def test_reading_sent_back_tells_systemd_the_start_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading back a large sent/ (400 days of receipts on a share) may outlast systemd's
    TimeoutStartSec=: before READY=1, restore_sent sends EXTEND_TIMEOUT_USEC= (with a
    STATUS= naming the step) as it goes through the day folders, so systemd does not end
    the start (and Restart= begin the whole read again, for ever)."""
    import socket
    sent = tmp_path / "sent"
    receipt(sent / day(1) / "INV-1--abababababab", BID)
    path = tmp_path / "notify.sock"
    j = Journal(tmp_path / "j.sqlite3")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))
        try:
            assert restore_sent(j, sent, 400) == 1
        finally:
            j.close()
        message = sock.recv(4096).decode()
    assert "EXTEND_TIMEOUT_USEC=90000000" in message.splitlines()
    assert message.startswith("STATUS=starting: reading sent/ back")


def test_a_receipt_of_a_million_tiny_values_is_refused_before_it_is_parsed(
        tmp_path: Path) -> None:
    """Anyone who may write in sent/ can put a receipt.json there of 32 MiB of `{},`:
    parsed, it took 870 MB in the daemon's own process (its budget is 100 MB:
    docs/operations.md), at start before READY and for each such entry, so a
    MemoryMax= had it killed and started again, reading it again. One holding more
    values than any receipt outboxd writes is now refused unparsed (unusable, said
    once); a real receipt of 20,000 attachments is still read back."""
    import tracemalloc

    from daemon.archiving.readback import receipt_record
    folder = receipt(tmp_path / "sent" / day(0) / "INV-1--abababababab", BID)
    data = json.loads((folder / "receipt.json").read_text())
    data["manifest"]["invoices"][0]["attachments"] = [
        {"name": f"scan-{n}.pdf", "sha256": "ab" * 32, "size": 1000, "type": "Other",
         "note": None} for n in range(20_000)]
    (folder / "receipt.json").write_text(json.dumps(data))
    rec = receipt_record(folder, day(0))
    assert isinstance(rec, dict) and rec["bundle_id"] == BID
    data["pad"] = [{}] * 1_200_000
    (folder / "receipt.json").write_text(json.dumps(data, separators=(",", ":")))
    tracemalloc.start()
    try:
        rec = receipt_record(folder, day(0))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rec == ("its receipt.json holds over 524288 values, more than any receipt "
                   "outboxd writes"), rec
    assert peak < 16 << 20, peak


def test_a_receipt_that_fails_to_read_is_said_by_name_and_the_others_read_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A receipt.json the share fails to read (EIO) at the read back into a new journal:
    a warning names the file and says its bundle is not known as sent until it can be
    read; it counts among the entries without a usable receipt, and the other receipts
    are read back."""
    import errno

    from daemon.archiving import readback
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    bad = receipt(sent / day(0) / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")
    real = readback.read_regular

    def failing(path: Path, *args: Any, **kwargs: Any) -> bytes | None:
        if path == bad / "receipt.json":
            raise OSError(errno.EIO, "Input/output error")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(readback, "read_regular", failing)
    with capture_logs() as logs:
        records, unusable = sent_records(sent, 400)
    assert [r["bundle_id"] for r in records] == [BID] and unusable == 1
    [said] = [e for e in logs if "cannot be read" in e["event"]]
    assert said["file"] == str(bad / "receipt.json") and "not known as sent" in said["event"]
    assert "Input/output error" in said["error"]


def failing_listing(monkeypatch: Any, broken: Path) -> None:
    """os.scandir of the folder `broken` (by path or held descriptor) fails with EIO at
    its first entry, as a share dropping in the middle of a listing does."""
    real = os.scandir

    class Failing:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.inner.close()

        def __iter__(self) -> Failing:
            return self

        def __next__(self) -> Any:
            raise OSError(errno.EIO, "Input/output error")

    def scandir(path: Any = ".") -> Any:
        it = real(path)
        held = os.fstat(path) if isinstance(path, int) else os.stat(path)
        return Failing(it) if os.path.samestat(held, os.stat(broken)) else it

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_receipt_the_share_cannot_look_at_is_unreadable_not_none(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry whose receipt.json the share cannot look at (EIO as it is looked for):
    `Unreadable`, read again and said, never NO_RECEIPT — an entry without a receipt
    whose bundle a start's read-back and the sent/ news passed over in silence."""
    entry = tmp_path / "2026-11-26" / "INV-1--abcdefabcdef"
    entry.mkdir(parents=True)
    (entry / "receipt.json").write_text("{}")
    real_stat = os.stat

    def failing(path: Any, *args: Any, **kw: Any) -> os.stat_result:
        if str(path).endswith("receipt.json"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return real_stat(path, *args, **kw)
    monkeypatch.setattr(os, "stat", failing)
    rec = receipt_record(entry, "2026-11-26")
    assert isinstance(rec, Unreadable) and "Input/output error" in rec
