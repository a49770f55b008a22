"""What other daemons sharing the outbox archived in sent/, learned at each look
(docs/operations.md, Several daemons on one share)."""

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

from archiving.test_readback import BID, day, receipt
from daemon.archiving.readback import restore_sent
from daemon.journal import Journal


def _detail(j: Journal, bid: str) -> str | None:
    [row] = [r for r in j.rows(("sent",)) if r.bundle_id == bid]
    return j.last_detail(row.id)


def test_a_running_daemon_learns_what_another_daemon_sent_since_its_last_look(
        tmp_path: Path) -> None:
    """Two daemons, each with its own journal, archive into one sent/: what daemon A
    archived after B's last look is recorded in B's journal at B's next look, marked as
    another daemon's, so the same bundle dropped again on B is a duplicate and its
    invoice id already sent (before, B learned it only when started on an empty journal)."""
    from daemon.archiving.sentnews import NEWS_DETAIL, SentNews
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


def reads_counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the sent/ entries whose receipt.json SentNews reads, in order, as
    it reads them (the receipts are read as before)."""
    import daemon.archiving.sentnews as sentnews
    read: list[str] = []
    real = sentnews.receipt_record

    def counted(folder: Path, on: str | None = None, at: int | None = None) -> Any:
        read.append(folder.name)
        return real(folder, on, at)

    monkeypatch.setattr(sentnews, "receipt_record", counted)
    return read


def test_a_look_reads_only_receipts_of_entries_it_does_not_know(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle cost stays a listing: an entry looked at before, or one this daemon
    archived itself (its journal names the folder, before or after the first look), has
    its receipt.json never read; only a new name's is, once."""
    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    own = receipt(sent / day(0) / "INV-0--cdcdcdcdcdcd", "cd" * 32, "INV-0.xml")
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    j = Journal(tmp_path / "b.sqlite3")
    read = reads_counted(monkeypatch)
    try:
        row = j.create("INV-0.xml", "settling", bundle_id="cd" * 32)
        j.transition(row, "sent", archive_dir=str(own))
        news = sentnews.SentNews()
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
    from daemon.archiving.sentnews import SentNews
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
    from daemon.archiving.sentnews import SentNews
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
    from daemon.archiving.sentnews import SentNews
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


def test_a_day_folder_swapped_for_a_link_after_the_listing_is_not_read_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A share user swaps sent/DAY for a link to a folder of their own between the look's
    listing and its read of an entry: the receipt there (naming a bundle never sent) is
    not read — taken as another daemon's, it would have that invoice refused as a
    duplicate when it is dropped."""
    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    entry = "INV-1--abababababab"
    receipt(sent / day(0) / entry, BID)
    forged = "cd" * 32
    receipt(tmp_path / "theirs" / entry, forged, "INV-9.xml")
    real_seen = sentnews._receipt_seen

    def swapped_first(folder: Path) -> object:
        if not (sent / day(0)).is_symlink():
            (sent / day(0)).rename(tmp_path / "moved-day")
            (sent / day(0)).symlink_to(tmp_path / "theirs")
        return real_seen(folder)

    monkeypatch.setattr(sentnews, "_receipt_seen", swapped_first)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        with capture_logs():
            sentnews.SentNews().look(j, sent)
        assert not j.was_sent(forged)
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
    from daemon.archiving.sentnews import SentNews
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
    from daemon.archiving.sentnews import SentNews
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

    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if isinstance(path, int):
            raise OSError(errno.EIO, "Input/output error")
        return real(path)

    j = Journal(tmp_path / "b.sqlite3")
    news = sentnews.SentNews()
    try:
        monkeypatch.setattr(sentnews.os, "scandir", scandir)
        with capture_logs() as logs:
            assert news.look(j, sent) == 0
        [said] = [e for e in logs if e["event"].startswith("a day folder in sent/ cannot be "
                                                           "read")]
        # In words, as the rest of archiving/ says an OSError, not "[Errno 5] …".
        assert "Input/output error" in said["error"] and "Errno" not in said["error"]
        monkeypatch.setattr(sentnews.os, "scandir", real)
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
    from daemon.archiving.sentnews import SentNews
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


def test_a_receipt_that_cannot_be_read_is_said_once_and_read_at_each_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another daemon's receipt.json that reading fails on (EIO, a share's hiccup: not
    the file's fault) is read again at each look, said once while it keeps failing, and
    learned once it reads."""
    import daemon.archiving.readback as readback
    from daemon.archiving.sentnews import SentNews
    sent = tmp_path / "sent"
    entry = receipt(sent / day(0) / "INV-1--abababababab", BID)
    real = readback.read_regular
    tries: list[int] = []

    def failing(path: Path, *args: Any, **kwargs: Any) -> bytes | None:
        tries.append(1)
        if len(tries) <= 3:
            raise OSError(5, "Input/output error")
        return real(path, *args, **kwargs)
    monkeypatch.setattr(readback, "read_regular", failing)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        news = SentNews()
        with capture_logs() as logs:
            for _ in range(3):
                assert news.look(j, sent) == 0
        assert len(tries) == 3
        [warning] = [e for e in logs if e["log_level"] == "warning"]
        assert warning["folder"] == str(entry) and "Input/output error" in warning["error"]
        assert news.look(j, sent) == 1 and j.was_sent(BID)
    finally:
        j.close()


def test_receipts_read_when_the_journal_failed_to_record_them_are_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The journal refuses the look's records (a JournalError: a full disk, a lock): the
    bundles are not lost to this daemon — their receipts are read again at the next
    look and recorded then, or a bundle another daemon sent could be sent again."""
    from daemon.archiving.sentnews import SentNews
    from daemon.errors import JournalError
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        news = SentNews()
        with monkeypatch.context() as full:
            def refused(*_: Any, **__: Any) -> None:
                raise JournalError("database or disk is full")
            full.setattr(j, "import_sent", refused)
            assert news.look(j, sent) == 0
        assert not j.was_sent(BID)
        assert news.look(j, sent) == 1 and j.was_sent(BID)
    finally:
        j.close()


def test_a_receipt_in_a_folder_named_for_another_bundle_is_taken_and_said(
        tmp_path: Path) -> None:
    """A receipt whose bundle id is not the one its folder's name ends in (the folder
    renamed by hand, or a receipt copied in from another entry): its bundle is taken as
    sent, as the receipt says (refused, it could be sent twice), and one warning names
    the folder and both ids."""
    from daemon.archiving.sentnews import SentNews
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


def test_a_look_with_a_budget_reads_the_rest_later_each_receipt_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A look asked to stop when the caller's budget is spent reads no receipt past it:
    the names listed wait (`pending`), `go_on` reads on, a look meanwhile queues none of
    them twice, and in the end each receipt has been read once and its bundle learned."""
    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    ids = [f"{n:064x}" for n in range(10)]
    for n, bid in enumerate(ids):
        receipt(sent / day(0) / f"INV-{n}--{bid[:12]}", bid, f"INV-{n}.xml")
    read = reads_counted(monkeypatch)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-x.xml", "settling")
        news = sentnews.SentNews()

        def three() -> Callable[[], bool]:
            start = len(read)
            return lambda: len(read) - start >= 3

        assert news.look(j, sent, spent=three()) == 3 and news.pending
        assert news.look(j, sent, spent=three()) == 3  # listed again: nothing queued twice
        while news.pending:
            assert news.go_on(j, spent=three()) <= 3
        assert len(read) == 10 and sorted(read) == sorted(set(read))
        assert all(j.was_sent(b) for b in ids)
        assert news.look(j, sent, spent=three()) == 0 and len(read) == 10
    finally:
        j.close()


def test_a_bundles_own_receipts_are_read_first_and_not_again_at_their_turn(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`first(bundle_id)`, before a bundle dropped here is decided: of the receipts a
    look queued, those whose folder name ends in the bundle's first 12 hex digits, or in
    no id (a folder renamed by hand), are read at once and the bundle learned; the others
    wait for their turn, and none is read twice."""
    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    ids = [f"{n:02x}" * 32 for n in range(10)]
    for n, bid in enumerate(ids):
        receipt(sent / day(0) / f"INV-{n}--{bid[:12]}", bid, f"INV-{n}.xml")
    receipt(sent / day(0) / "renamed by hand", "ee" * 32, "INV-e.xml")
    read = reads_counted(monkeypatch)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-x.xml", "settling")
        news = sentnews.SentNews()
        assert news.look(j, sent, spent=lambda: True) == 1 and news.pending
        n, wanted = next((n, b) for n, b in enumerate(ids) if f"INV-{n}--{b[:12]}" not in read)
        before = len(read)
        assert news.first(j, wanted.upper()) >= 1
        assert sorted(read[before:]) == sorted(
            {f"INV-{n}--{wanted[:12]}", "renamed by hand"} - set(read[:before]))
        assert j.was_sent(wanted)
        assert news.first(j, wanted) == 0 and news.first(j, "ff" * 32) == 0
        while news.pending:
            news.go_on(j, spent=lambda: False)
        assert len(read) == 11 and sorted(read) == sorted(set(read))
        assert all(j.was_sent(b) for b in [*ids, "ee" * 32])
    finally:
        j.close()


def test_a_bundle_filed_a_tenth_of_a_second_before_midnight_is_learned_after_it(
        tmp_path: Path) -> None:
    """The other host archives a bundle at 23:59:59.9 UTC, in that day's folder, after
    this daemon's last look of the day; the first look after midnight (today's folder is
    another one now) still learns it."""
    from daemon.archiving.sentnews import SentNews
    sent = tmp_path / "sent"
    (sent / "2031-05-06").mkdir(parents=True)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        news = SentNews()
        assert news.look(j, sent, now=datetime(2031, 5, 6, 23, 59, 59, 800_000, tzinfo=UTC)) == 0
        receipt(sent / "2031-05-06" / "INV-1--abababababab", BID,
                delivered_at="2031-05-06T23:59:59.900Z")
        assert news.look(j, sent, now=datetime(2031, 5, 7, 0, 0, 0, 300_000, tzinfo=UTC)) == 1
        assert j.was_sent(BID)
    finally:
        j.close()


def _one_read_one_queued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                         ) -> tuple[Any, Journal, Path, str, Path, str]:
    """Two entries of another daemon in today's sent/, a look whose budget read one and
    left the other queued: (news, journal, sent, the read one's bundle id, the queued
    entry, its bundle id). The caller closes the journal."""
    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    first = receipt(sent / day(0) / "INV-1--abababababab", BID)
    later = receipt(sent / day(0) / "INV-2--cdcdcdcdcdcd", "cd" * 32, "INV-2.xml")
    read = reads_counted(monkeypatch)
    j = Journal(tmp_path / "b.sqlite3")
    j.create("INV-x.xml", "settling")
    news = sentnews.SentNews()
    assert news.look(j, sent, spent=lambda: len(read) >= 1) == 1 and news.pending
    if read == [first.name]:
        return news, j, sent, BID, later, "cd" * 32
    return news, j, sent, "cd" * 32, first, BID


def test_an_entry_removed_after_the_listing_is_passed_over_without_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another daemon's entry listed at a look and removed before its turn to be read
    (moved out of sent/ by an admin, with a budget that left it queued): no warning that
    its receipt is unusable (there is no entry to fix), nothing recorded for it, and the
    other entries are learned."""
    news, j, _, kept_id, gone, gone_id = _one_read_one_queued(tmp_path, monkeypatch)
    try:
        for f in gone.iterdir():  # queued, removed before its turn
            f.unlink()
        gone.rmdir()
        with capture_logs() as logs:
            while news.pending:
                news.go_on(j)
        assert not [e for e in logs if e["log_level"] in ("warning", "error")]
        assert j.was_sent(kept_id)
        assert not j.was_sent(gone_id)
    finally:
        j.close()


def test_an_entry_gone_at_its_turn_and_back_later_is_read_when_it_is_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another daemon's entry listed at a look and gone at its turn to be read (its day
    folder moved aside by an admin, or the share away for a moment the mount check did
    not see), then back: its receipt is read at the next look and its bundle learned —
    before, its name stayed known and the bundle was never learned here, so the same
    bundle dropped again could be sent a second time."""
    news, j, sent, _, gone, gone_id = _one_read_one_queued(tmp_path, monkeypatch)
    try:
        aside = tmp_path / "aside"
        gone.rename(aside)  # queued, moved aside before its turn
        while news.pending:
            news.go_on(j)
        assert not j.was_sent(gone_id)
        aside.rename(gone)
        assert news.look(j, sent) == 1
        assert j.was_sent(gone_id)
    finally:
        j.close()


def test_an_entry_listed_but_never_there_is_said_once_and_opened_again_once_it_can_be(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A network share's stale listing (its directory cache) shows another daemon's
    entry that cannot be opened, look after look. The first look passes it over without a
    word (it may have gone since the listing); the next says once what is wrong, naming
    the entry, the error in words and the fix; it is not opened again at each look
    after that, but once its receipt.json can be seen, and its bundle is then learned.
    It was opened again at every look, silently."""
    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    receipt(sent / day(0) / "INV-1--abababababab", BID)
    ghost = "INV-2--cdcdcdcdcdcd"
    ghost_id = "cd" * 32
    opened = opens_counted(monkeypatch)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        news = sentnews.SentNews()
        real_names = news._names
        # The share's stale listing: the entry is listed, but not there.
        monkeypatch.setattr(news, "_names", lambda d: (real_names(d) or set()) | (
            {ghost} if d == day(0) else set()))
        with capture_logs() as logged:
            assert news.look(j, sent) == 1  # INV-1 learned; the other passed over
        assert opened.count(ghost) == 1
        assert not [e for e in logged if e["log_level"] in ("warning", "error")]
        with capture_logs() as logged:
            for _ in range(3):
                assert news.look(j, sent) == 0
        assert opened.count(ghost) == 2  # once more at the next look, then not again
        [warning] = [e for e in logged if e["log_level"] == "warning"]
        assert warning["folder"] == str(sent / day(0) / ghost)
        assert "listed but cannot be opened" in warning["event"]
        assert "No such file or directory" in warning["error"]
        assert "stale listing" in warning["fix"] and "remount the share" in warning["fix"]
        assert not j.was_sent(ghost_id)
        receipt(sent / day(0) / ghost, ghost_id, "INV-2.xml")  # the share shows it now
        with capture_logs() as logged:
            assert news.look(j, sent) == 1
        assert j.was_sent(ghost_id)
        assert not [e for e in logged if e["log_level"] == "warning"]
    finally:
        j.close()


def test_an_entry_gone_from_the_listing_after_it_was_passed_over_is_forgotten_quietly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An entry listed once but not there when opened (it went since the listing), and
    not listed at the next look: nothing said, and read once it is listed again."""
    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    (sent / day(0)).mkdir(parents=True)
    ghost = "INV-2--cdcdcdcdcdcd"
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        news = sentnews.SentNews()
        real_names = news._names
        listed = [{ghost}, set(), set()]
        monkeypatch.setattr(news, "_names", lambda d: (real_names(d) or set()) | (
            listed.pop(0) if d == day(0) and listed else set()))
        with capture_logs() as logged:
            for _ in range(3):
                assert news.look(j, sent) == 0
        assert not [e for e in logged if e["log_level"] in ("warning", "error")]
        receipt(sent / day(0) / ghost, "cd" * 32, "INV-2.xml")
        assert news.look(j, sent) == 1 and j.was_sent("cd" * 32)
    finally:
        j.close()


def test_an_unusable_entry_that_flickers_out_of_the_listing_is_said_once_and_read_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A flickering share: another daemon's entry whose receipt.json is cut short drops
    out of sent/'s listing at every other look and comes back. It is said once, not at
    each return (an admin's log filled with the same warning, look after look); it is
    still read at each return, so the receipt its host writes anew is learned."""
    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    name = "INV-1--abababababab"
    entry = receipt(sent / day(0) / name, BID)
    good = (entry / "receipt.json").read_bytes()
    _cut_short(entry / "receipt.json")
    opened = opens_counted(monkeypatch)
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        news = sentnews.SentNews()
        real_names = news._names
        shown = [True]  # listed at this look?
        monkeypatch.setattr(news, "_names", lambda d: (real_names(d) or set()) - (
            set() if d != day(0) or shown[0] else {name}))
        with capture_logs() as logged:
            for look in range(6):
                shown[0] = look % 2 == 0
                assert news.look(j, sent) == 0
        assert opened.count(name) == 3  # at each return
        [warning] = [e for e in logged if e["log_level"] == "warning"]
        assert warning["folder"] == str(entry) and "receipt.json" in warning["error"]
        assert not j.was_sent(BID)
        (entry / "receipt.json").write_bytes(good)  # its host, started again, writes it anew
        shown[0] = True
        with capture_logs() as logged:
            assert news.look(j, sent) == 1
        assert j.was_sent(BID) and not [e for e in logged if e["log_level"] == "warning"]
    finally:
        j.close()


def test_an_entry_said_not_there_that_flickers_out_of_the_listing_is_said_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale listing shows an entry that cannot be opened (said once, at the second
    look), then the entry drops out of the listing and comes back, again and again: it
    is opened at each return, and not said again."""
    import daemon.archiving.sentnews as sentnews
    sent = tmp_path / "sent"
    (sent / day(0)).mkdir(parents=True)
    ghost = "INV-2--cdcdcdcdcdcd"
    j = Journal(tmp_path / "b.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        news = sentnews.SentNews()
        real_names = news._names
        shown = [True]
        monkeypatch.setattr(news, "_names", lambda d: (real_names(d) or set()) | (
            {ghost} if d == day(0) and shown[0] else set()))
        with capture_logs() as logged:
            for look in range(8):
                shown[0] = look % 3 != 2  # two looks listed, one not
                assert news.look(j, sent) == 0
        warnings = [e for e in logged if e["log_level"] == "warning"]
        assert len(warnings) == 1 and "listed but cannot be opened" in warnings[0]["event"]
    finally:
        j.close()


def opens_counted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the sent/ entries SentNews opens from now on, in order."""
    import daemon.archiving.sentnews as sentnews
    opened: list[str] = []
    real_held = sentnews._held_entry

    def counted(day_folder: Path, name: str) -> int:
        opened.append(name)
        return real_held(day_folder, name)

    monkeypatch.setattr(sentnews, "_held_entry", counted)
    return opened
