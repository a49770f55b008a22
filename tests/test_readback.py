"""Reading sent/ back into a fresh journal (a lost journal costs no second sending:
docs/operations.md, Backup)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import without_blocking
from structlog.testing import capture_logs

from daemon.errors import ConfigError
from daemon.journal import Journal, parse_iso
from daemon.readback import restore_sent, sent_records

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
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == locked:  # as for a folder of mode 000 (the tests may run as root)
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with capture_logs() as logs:
        records, _ = sent_records(sent, 400)
    assert [r["bundle_id"] for r in records] == [BID]
    assert [e for e in logs if "cannot be read" in e["event"] and e["folder"] == str(locked)]


def test_a_day_folder_that_fails_in_the_middle_of_its_listing_is_logged_too(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The read back into a new journal: a day folder that opens but fails while it is
    listed (its share dropping: EIO) raised out of the start as a traceback; it is now
    said as a folder that cannot be read, as one that does not open is."""
    import errno
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    broken = receipt(sent / day(1) / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml").parent
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
        return Failing(real(path)) if Path(path) == broken else real(path)

    monkeypatch.setattr(os, "scandir", scandir)
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


def _detail(j: Journal, bid: str) -> str | None:
    [row] = [r for r in j.rows(("sent",)) if r.bundle_id == bid]
    return j.last_detail(row.id)


def test_a_running_daemon_learns_what_another_daemon_sent_since_its_last_look(
        tmp_path: Path) -> None:
    """Two daemons, each with its own journal, archive into one sent/: what daemon A
    archived after B's last look is recorded in B's journal at B's next look, marked as
    another daemon's, so the same bundle dropped again on B is a duplicate and its
    invoice id already sent (before, B learned it only when started on an empty journal)."""
    from daemon.readback import NEWS_DETAIL, SentNews
    sent = tmp_path / "sent"
    b = Journal(tmp_path / "b.sqlite3")
    try:
        b.create("INV-0.xml", "settling")  # not empty: restore_sent does nothing
        news = SentNews()
        assert news.look(b, sent) == 0  # no sent/ yet
        receipt(sent / day(0) / "INV-1--abababababab", BID)  # daemon A's
        assert not b.was_sent(BID)
        assert news.look(b, sent) == 1
        assert b.was_sent(BID)
        assert b.sent_invoice_ids(["INV-1"], "ff" * 32) == ["INV-1"]
        assert _detail(b, BID) == NEWS_DETAIL
        assert news.look(b, sent) == 0 and len(b.rows(("sent",))) == 1
    finally:
        b.close()


def test_a_look_reads_only_receipts_of_entries_it_does_not_know(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle cost stays a listing: an entry looked at before, or one this daemon
    archived itself (its journal names the folder, before or after the first look), has
    its receipt.json never read; only a new name's is, once."""
    import daemon.readback as readback
    sent = tmp_path / "sent"
    own = receipt(sent / day(0) / "INV-0--cdcdcdcdcdcd", "cd" * 32, "INV-0.xml")
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    j = Journal(tmp_path / "b.sqlite3")
    read: list[str] = []
    real = readback.receipt_record

    def receipt_record(folder: Path, day: str | None = None) -> Any:
        read.append(folder.name)
        return real(folder, day)

    monkeypatch.setattr(readback, "receipt_record", receipt_record)
    try:
        row = j.create("INV-0.xml", "settling", bundle_id="cd" * 32)
        j.transition(row, "sent", archive_dir=str(own))
        news = readback.SentNews()
        assert news.look(j, sent) == 1 and read == ["INV-1--abababababab"]
        for _ in range(3):
            assert news.look(j, sent) == 0
        assert read == ["INV-1--abababababab"]
        own3 = receipt(sent / day(0) / "INV-3--010101010101", "01" * 32, "INV-3.xml")
        row3 = j.create("INV-3.xml", "settling", bundle_id="01" * 32)
        j.transition(row3, "sent", archive_dir=str(own3))  # archived here since the look
        assert news.look(j, sent) == 0 and read == ["INV-1--abababababab"]
        receipt(sent / day(0) / "INV-2--efefefefefef", "ef" * 32, "INV-2.xml")
        assert news.look(j, sent) == 1 and read[1:] == ["INV-2--efefefefefef"]
    finally:
        j.close()


def test_a_look_spans_midnight_and_a_clock_a_little_off(tmp_path: Path) -> None:
    """Another host files a bundle under its delivery's UTC day by its own clock: one sent
    just before midnight and looked at after it (or by a clock behind) lies in yesterday's
    folder, one by a clock ahead in tomorrow's; both are learned. Older day folders are
    not listed (the start's read-back covers them for a new journal)."""
    from daemon.readback import SentNews
    sent = tmp_path / "sent"
    receipt(sent / day(1) / "INV-1--abababababab", BID)
    receipt(sent / day(-1) / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")
    receipt(sent / day(2) / "INV-3--efefefefefef", "ef" * 32, "INV-3.xml")
    j = Journal(tmp_path / "b.sqlite3")
    try:
        assert SentNews().look(j, sent) == 2
        assert j.was_sent(BID) and j.was_sent("cd" * 32) and not j.was_sent("ef" * 32)
    finally:
        j.close()


def test_a_day_folder_that_could_not_be_read_is_forgotten_once_its_day_is_past(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A day folder the daemon may not list is said once; once its day has left the days
    looked at, nothing of it is kept (a daemon running for months would keep one entry
    per such day for good)."""
    from daemon.readback import SentNews
    sent = tmp_path / "sent"
    at = datetime(2031, 5, 6, 12, 0, tzinfo=UTC)
    locked = receipt(sent / "2031-05-06" / "INV-1--abababababab", BID).parent
    real = os.open

    def refusing(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if Path(path) == locked:  # as for a folder of mode 000 (the tests may run as root)
            raise PermissionError(13, "Permission denied", str(path))
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", refusing)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        news = SentNews()
        with capture_logs() as logs:
            for hours in (0, 1, 2):
                news.look(j, sent, now=at + timedelta(hours=hours))
        assert len([e for e in logs if "cannot be read" in e["event"]]) == 1
        assert set(news._failing) == {"2031-05-06"}
        news.look(j, sent, now=at + timedelta(days=3))
        assert news._failing == {} and news._known == {}
    finally:
        j.close()


def test_a_look_never_follows_a_link_in_sent(tmp_path: Path) -> None:
    """A day folder or an entry that is a symbolic link (to receipts elsewhere) is not
    followed: nothing out of sent/ is read."""
    from daemon.readback import SentNews
    sent = tmp_path / "sent"
    elsewhere = tmp_path / "elsewhere"
    receipt(elsewhere / "INV-1--abababababab", BID)
    receipt(tmp_path / "other" / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")
    sent.mkdir()
    (sent / day(0)).symlink_to(elsewhere)
    (sent / day(1)).mkdir()
    (sent / day(1) / "INV-2--cdcdcdcdcdcd").symlink_to(tmp_path / "other" / "INV-2--cdcdcdcdcdcd")
    j = Journal(tmp_path / "b.sqlite3")
    try:
        with capture_logs():
            assert SentNews().look(j, sent) == 0
        assert not j.was_sent(BID) and not j.was_sent("cd" * 32)
    finally:
        j.close()


@pytest.mark.parametrize("odd", [
    {"response": {"status": 201, "receipt_id": {"not": "text"}}},  # bound: no such type
    {"manifest": {"bundle_id": "\ud800", "invoice_file": {"name": "INV-\udc80.xml"},
                  "invoices": [{"id": "INV-\ud800"}]}},  # no UTF-8 for the journal
    {"delivered_at": "9999-12-31T23:59:59-23:59"},  # past datetime's range in UTC
], ids=["receipt-id-an-object", "lone-surrogates", "time-out-of-range"])
def test_a_receipt_made_by_hand_in_sent_costs_no_crash_and_no_journal_failure(
        tmp_path: Path, odd: dict[str, Any]) -> None:
    """sent/ lies on the share: a receipt.json edited or made by hand that parses as JSON
    but holds values outboxd never writes (an object for receipt_id, a lone surrogate
    escape, a time whose UTC is past year 9999) made the look raise out of the loop (the
    daemon died, and died again at each start on it), or the journal's write fail ("check
    free space"), so nothing moved for seconds at each rescan and no other daemon's
    bundle was learned. Now its bundle is learned with what can be kept, beside the
    others, and the journal goes on."""
    from daemon.readback import SentNews
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    made = receipt(sent / day(0) / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")
    data = json.loads((made / "receipt.json").read_text())
    for key, value in odd.items():
        data[key] = {**data.get(key, {}), **value} if key != "delivered_at" else value
    (made / "receipt.json").write_text(json.dumps(data))
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        assert SentNews().look(j, sent) == 2
        assert j.was_sent(BID)
        j.create("INV-3.xml", "settling")  # the journal writes on
    finally:
        j.close()
    fresh = Journal(tmp_path / "fresh.sqlite3")
    try:
        with capture_logs():
            assert restore_sent(fresh, sent, 400) == 2  # a start on a new journal too
    finally:
        fresh.close()


def test_an_entry_whose_name_is_not_utf8_is_learned_without_a_crash(tmp_path: Path) -> None:
    """An entry in sent/ named in bytes that are not UTF-8 (made by a client in another
    locale; outboxd names its entries only from UTF-8 names) gave a folder path the
    journal cannot store: the look raised out of the loop. Its bundle is learned now."""
    from daemon.readback import SentNews
    sent = tmp_path / "sent"
    (sent / day(0)).mkdir(parents=True)
    odd = Path(os.fsdecode(bytes(sent / day(0)) + b"/INV-\xe9--abababababab"))
    receipt(odd, BID)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        assert SentNews().look(j, sent) == 1 and j.was_sent(BID)
    finally:
        j.close()


def test_a_day_folder_that_fails_while_listed_is_logged_and_looked_at_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ on a share that drops while a look lists a day folder (EIO, ENOTCONN from
    the listing itself, after the folder opened): the OSError went out of the look, and
    the loop — the daemon died at a rescan. Now it is said as a folder that cannot be
    read, and the next look learns what is there."""
    import errno

    import daemon.readback as readback
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if isinstance(path, int):
            raise OSError(errno.EIO, "Input/output error")
        return real(path)

    j = Journal(tmp_path / "b.sqlite3")
    news = readback.SentNews()
    try:
        monkeypatch.setattr(readback.os, "scandir", scandir)
        with capture_logs() as logs:
            assert news.look(j, sent) == 0
        assert [e for e in logs if e["event"].startswith("a day folder in sent/ cannot be read")]
        monkeypatch.setattr(readback.os, "scandir", real)
        assert news.look(j, sent) == 1 and j.was_sent(BID)
    finally:
        j.close()


def _cut_short(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:40])


def _not_json(path: Path) -> None:
    path.write_text("<html>502 Bad Gateway</html>")


def _empty(path: Path) -> None:
    path.write_bytes(b"")


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _link(path: Path) -> None:
    elsewhere = path.parent.parent / "elsewhere.json"
    path.rename(elsewhere)
    path.symlink_to(elsewhere)


def _too_big(path: Path) -> None:
    with path.open("r+b") as fh:  # sparse: 33 MiB costs no disk
        fh.truncate(33 << 20)


def _no_manifest(path: Path) -> None:
    path.write_text(json.dumps({"response": {"status": 201}, "attempts": 1}))


def _missing(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize("spoil", [_cut_short, _not_json, _empty, _fifo, _link, _too_big,
                                   _no_manifest, _missing],
                         ids=lambda f: f.__name__.strip("_"))
def test_an_unusable_receipt_in_sent_is_said_once_and_read_again_once_written_anew(
        tmp_path: Path, spoil: Callable[[Path], None]) -> None:
    """Another daemon's entry in sent/ whose receipt.json cannot be used (cut short by a
    crash of its host, not JSON, empty, a FIFO or link, over 32 MiB, no manifest, none at
    all) was skipped without a word, and its name never looked at again: the admin never
    learned that a bundle could be sent twice, and the receipt that host wrote anew after
    its restart was never read. Now one warning names the folder, what is wrong and what
    to do — once, not at each rescan — and the receipt is read again once it changes."""
    from daemon.readback import SentNews
    sent = tmp_path / "sent"
    entry = receipt(sent / day(0) / "INV-1--abababababab", BID)
    good = (entry / "receipt.json").read_bytes()
    spoil(entry / "receipt.json")
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        news = SentNews()
        with capture_logs() as logs:
            for _ in range(3):
                assert without_blocking(lambda: news.look(j, sent), entry / "receipt.json",
                                        "looking over sent/") == 0
        [warning] = [e for e in logs if e["log_level"] == "warning"]
        assert warning["folder"] == str(entry) and "receipt.json" in warning["error"]
        assert "not know the entry's bundle as sent" in warning["event"]
        assert "put the entry's own receipt.json back" in warning["event"]
        assert not j.was_sent(BID)
        path = entry / "receipt.json"
        if os.path.lexists(path):
            path.unlink()
        path.write_bytes(good)  # the other host, started again, writes it anew
        with capture_logs() as logs:
            assert news.look(j, sent) == 1
        assert j.was_sent(BID) and not [e for e in logs if e["log_level"] == "warning"]
        assert news.look(j, sent) == 0
    finally:
        j.close()


def test_a_receipt_in_a_folder_named_for_another_bundle_is_taken_and_said(
        tmp_path: Path) -> None:
    """A receipt whose bundle id is not the one its folder's name ends in (the folder
    renamed by hand, or a receipt copied in from another entry): its bundle is taken as
    sent, as the receipt says (refused, it could be sent twice), and one warning names
    the folder and both ids."""
    from daemon.readback import SentNews
    sent = tmp_path / "sent"
    entry = receipt(sent / day(0) / "INV-1--cdcdcdcdcdcd-2", BID)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        news = SentNews()
        with capture_logs() as logs:
            assert news.look(j, sent) == 1 and news.look(j, sent) == 0
        assert j.was_sent(BID)
        [warning] = [e for e in logs if e["log_level"] == "warning"]
        assert warning["folder"] == str(entry) and warning["folder_id"] == "cdcdcdcdcdcd"
        assert warning["bundle_id"] == BID
    finally:
        j.close()
