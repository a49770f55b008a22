"""Reading quarantine/ back into a fresh journal, beside sent/ (a lost journal must not
make `status` call the bundles waiting for a fix none: docs/operations.md, Backup)."""

from __future__ import annotations

import errno
import os
import tracemalloc
from pathlib import Path
from typing import Any

from helpers import without_blocking
from structlog.testing import capture_logs

from archiving.test_readback import BID, day, failing_listing, receipt
from daemon.archiving.archive_papers import reason_papers, reason_record
from daemon.archiving.readback import restore_sent
from daemon.bundle import Finding
from daemon.journal import Journal


def entry(quarantine: Path, day_name: str, folder: str, bid: str, invoice: str,
          at: str = "2026-01-01T10:00:00Z", with_invoice: bool = True) -> Path:
    """An entry as outboxd quarantines a bundle: its files and its papers."""
    path = quarantine / day_name / folder
    path.mkdir(parents=True)
    if with_invoice:
        (path / invoice).write_text("<Invoice/>")
    record = reason_record(bid, invoice, [Finding("not-ubl", invoice, "is not UBL")], at,
                           invoice_ids=["INV-1"])
    for name, data in reason_papers(record).items():
        (path / name).write_bytes(data)
    return path


def test_a_fresh_journal_reads_back_the_bundles_waiting_in_quarantine(tmp_path: Path) -> None:
    """The journal lost: every entry outboxd made in quarantine/ whose bundle is still
    there comes back as a quarantined row (its folder, reasons, ids and time), so that
    `status` counts all three and not only the one a run since quarantined; a share
    user's folder, a reason.json naming another bundle than the folder's name, a
    bundle moved back into the outbox (its invoice file gone from the entry), a link and
    a copy under way (dot-name) are passed over."""
    sent, quarantine = tmp_path / "sent", tmp_path / "quarantine"
    receipt(sent / day(0) / "INV-9--abababababab", BID, "INV-9.xml")
    today, older = day(0), day(10)
    one = entry(quarantine, today, "INV-1--111111111111", "11" * 32, "INV-1.xml")
    two = entry(quarantine, today, "INV-2--222222222222-2", "22" * 32, "INV-2.xml")
    three = entry(quarantine, older, "INV-3--333333333333", "33" * 32, "INV-3.xml",
                  at="not a time")
    (quarantine / today / "clerks-notes").mkdir()
    entry(quarantine, today, "INV-4--444444444444", "55" * 32, "INV-4.xml")  # not its id
    entry(quarantine, today, "INV-5--666666666666", "66" * 32, "INV-5.xml",
          with_invoice=False)  # moved back into the outbox by a clerk
    outside = entry(tmp_path / "elsewhere", today, "INV-7--777777777777", "77" * 32,
                    "INV-7.xml")
    os.symlink(outside, quarantine / today / "INV-7--777777777777")
    entry(quarantine, today, ".INV-8--888888888888.partial", "88" * 32, "INV-8.xml")
    j = Journal(tmp_path / "j.sqlite3")
    try:
        assert restore_sent(j, sent, 400, quarantine) == 1
        assert j.counts()["quarantined"] == 3 and j.counts()["sent"] == 1
        rows = {r.bundle_id: r for r in j.rows(("quarantined",))}
        assert set(rows) == {"11" * 32, "22" * 32, "33" * 32}
        first = rows["11" * 32]
        assert first.archive_dir == str(one) and first.invoice_file == "INV-1.xml"
        assert first.invoice_ids == ["INV-1"] and first.since == "2026-01-01T10:00:00.000Z"
        assert [(r["code"], r["file"]) for r in first.reasons] == [("not-ubl", "INV-1.xml")]
        assert rows["22" * 32].archive_dir == str(two)
        # An unreadable time is its day folder's start, not now.
        assert rows["33" * 32].since == f"{older}T00:00:00.000Z"
        assert rows["33" * 32].archive_dir == str(three)
        assert j.last_detail(first.id) == "read back from quarantine/"
    finally:
        j.close()


def test_quarantine_is_read_back_only_into_an_empty_journal(tmp_path: Path) -> None:
    """A journal that holds rows is the record: quarantine/ is not read again at a start
    (its rows would come twice)."""
    quarantine = tmp_path / "quarantine"
    entry(quarantine, day(0), "INV-1--111111111111", "11" * 32, "INV-1.xml")
    j = Journal(tmp_path / "j.sqlite3")
    try:
        j.create("INV-0.xml", "settling")
        restore_sent(j, tmp_path / "sent", 400, quarantine)
        assert j.counts()["quarantined"] == 0
    finally:
        j.close()


def _read_back(tmp_path: Path, quarantine: Path, planted: Path | None = None
               ) -> tuple[list[str], int]:
    """The bundle ids a fresh journal reads back from quarantine/ (restore_sent, as the
    daemon's start) and how many rows it made; run so that a FIFO it opened fails the test
    instead of hanging it (`planted`)."""
    j = Journal(tmp_path / "j.sqlite3")
    try:
        def start() -> int:
            return restore_sent(j, tmp_path / "sent", 400, quarantine)
        if planted is None:
            start()
        else:
            without_blocking(start, planted, "reading quarantine/ back")
        return sorted(r.bundle_id for r in j.rows(("quarantined",))), j.counts()["quarantined"]
    finally:
        j.close()


def test_a_fifo_named_reason_json_in_quarantine_is_never_opened(tmp_path: Path) -> None:
    """quarantine/ is group-writable on the share: a clerk replaces an entry's
    reason.json with a FIFO and the journal is lost. The start would block on it before
    READY (no signal handler yet, systemd kills it): it is never opened, the entry is
    passed over, and the entry beside it is still read back."""
    quarantine = tmp_path / "quarantine"
    entry(quarantine, day(0), "INV-1--111111111111", "11" * 32, "INV-1.xml")
    planted = entry(quarantine, day(0), "INV-2--222222222222", "22" * 32, "INV-2.xml")
    (planted / "reason.json").unlink()
    os.mkfifo(planted / "reason.json")
    assert _read_back(tmp_path, quarantine, planted / "reason.json") == (["11" * 32], 1)


def test_a_reason_json_linked_out_of_quarantine_is_not_followed(tmp_path: Path) -> None:
    """reason.json a symbolic link to a file outside quarantine/ (/etc/shadow, or, as
    here, a reason record of the clerk's own making that would name the entry's bundle):
    the link is never followed, so nothing it points at becomes a journal row; the
    file it points at is untouched."""
    quarantine = tmp_path / "quarantine"
    elsewhere = entry(tmp_path / "elsewhere", day(0), "INV-1--111111111111", "11" * 32,
                      "INV-1.xml")
    planted = entry(quarantine, day(0), "INV-1--111111111111", "11" * 32, "INV-1.xml")
    before = (elsewhere / "reason.json").read_bytes()
    (planted / "reason.json").unlink()
    (planted / "reason.json").symlink_to(elsewhere / "reason.json")
    shadow = planted.parent / "INV-3--333333333333"
    shadow.mkdir()
    (shadow / "INV-3.xml").write_text("<Invoice/>")
    (shadow / "reason.json").symlink_to("/etc/shadow")
    assert _read_back(tmp_path, quarantine) == ([], 0)
    assert (elsewhere / "reason.json").read_bytes() == before


def test_a_reason_json_of_two_gigabytes_is_passed_over_without_reading_it(
        tmp_path: Path) -> None:
    """A reason.json of 2 GB (a clerk's file saved under that name; sparse here) is no
    reason record: passed over by its size, never read into memory, and the others are
    read back."""
    quarantine = tmp_path / "quarantine"
    entry(quarantine, day(0), "INV-1--111111111111", "11" * 32, "INV-1.xml")
    big = entry(quarantine, day(0), "INV-2--222222222222", "22" * 32, "INV-2.xml")
    with (big / "reason.json").open("r+b") as fh:
        fh.truncate(2 << 30)  # its record first, then 2 GB of zeros: no disk used
    tracemalloc.start()
    try:
        found = _read_back(tmp_path, quarantine)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert found == (["11" * 32], 1)
    assert peak < 64 << 20, f"{peak >> 20} MiB held while reading quarantine/ back"


def test_a_reason_json_that_is_no_json_object_or_over_a_mib_is_passed_over(
        tmp_path: Path) -> None:
    """reason.json is anyone's to write in quarantine/: one holding a JSON array (no
    record) or a record grown past 1 MiB (more than any reason outboxd writes, so not
    parsed) is passed over at the read-back, never a crash of the start, and the others
    are read back."""
    quarantine = tmp_path / "quarantine"
    entry(quarantine, day(0), "INV-1--111111111111", "11" * 32, "INV-1.xml")
    array = entry(quarantine, day(0), "INV-2--222222222222", "22" * 32, "INV-2.xml")
    (array / "reason.json").write_bytes(b'["22222222222222", "INV-2.xml"]')
    grown = entry(quarantine, day(0), "INV-3--333333333333", "33" * 32, "INV-3.xml")
    record = reason_record("33" * 32, "INV-3.xml",
                           [Finding("not-ubl", "INV-3.xml", "x" * (2 << 20))],
                           "2026-01-01T10:00:00Z")
    (grown / "reason.json").write_bytes(reason_papers(record)["reason.json"])
    assert _read_back(tmp_path, quarantine) == (["11" * 32], 1)


def test_a_quarantine_folder_that_cannot_be_listed_is_said_and_sent_is_still_read_back(
        tmp_path: Path, monkeypatch: Any) -> None:
    """A journal lost while quarantine/ cannot be listed (its share away: EIO) does not
    stop the start, unlike sent/ (nothing is sent twice for quarantine/): a warning names
    the folder and the fix, and sent/ is read back all the same."""
    sent, quarantine = tmp_path / "sent", tmp_path / "quarantine"
    receipt(sent / day(0) / "INV-9--abababababab", BID, "INV-9.xml")
    entry(quarantine, day(0), "INV-1--111111111111", "11" * 32, "INV-1.xml")
    failing_listing(monkeypatch, quarantine)
    j = Journal(tmp_path / "j.sqlite3")
    try:
        with capture_logs() as logged:
            assert restore_sent(j, sent, 400, quarantine) == 1
        assert j.was_sent(BID) and j.counts()["quarantined"] == 0
    finally:
        j.close()
    [said] = [e for e in logged if "quarantine/ cannot be listed" in e["event"]]
    assert "quarantine/ cannot be listed" in said["event"] and "restart" in said["event"]
    assert said["folder"] == str(quarantine)


def refuse_open(monkeypatch: Any, locked: Path) -> None:
    """os.open of the folder `locked` (by path) is refused as for a folder of mode 000:
    the tests may run as root, so the refusal is injected."""
    real_open = os.open

    def opening(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if isinstance(path, (str, Path)) and Path(path) == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", opening)


def test_a_quarantine_day_folder_that_cannot_be_opened_or_listed_is_said_the_others_read(
        tmp_path: Path, monkeypatch: Any) -> None:
    """One day folder of quarantine/ that does not open (permissions changed by hand: the
    tests may run as root, so the refusal is injected) and another that fails while it is
    listed (EIO) are each named in a warning; the bundles of the other days come back."""
    quarantine = tmp_path / "quarantine"
    entry(quarantine, day(0), "INV-1--111111111111", "11" * 32, "INV-1.xml")
    locked = entry(quarantine, day(1), "INV-2--222222222222", "22" * 32, "INV-2.xml").parent
    broken = entry(quarantine, day(2), "INV-3--333333333333", "33" * 32, "INV-3.xml").parent
    refuse_open(monkeypatch, locked)
    failing_listing(monkeypatch, broken)
    with capture_logs() as logged:
        ids, count = _read_back(tmp_path, quarantine)
    assert ids == ["11" * 32] and count == 1
    said = sorted(e["folder"] for e in logged if "a day folder in quarantine/ cannot be read"
                  in e["event"])
    assert said == sorted([str(locked), str(broken)])


def test_a_quarantine_folder_that_cannot_be_read_back_is_said_in_words_not_errno(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The warnings for a quarantine/ or a day folder of it that cannot be read gave
    `error="[Errno 13] Permission denied: '/srv/…'"`, where every other line of archiving/
    says an OSError in the project's words (errors.describe): what went wrong, and on
    which file."""
    quarantine = tmp_path / "quarantine"
    locked = entry(quarantine, day(1), "INV-2--222222222222", "22" * 32, "INV-2.xml").parent
    refuse_open(monkeypatch, locked)
    with capture_logs() as logged:
        _read_back(tmp_path, quarantine)
    [said] = [e for e in logged if "a day folder in quarantine/" in e["event"]]
    assert said["error"] == f"Permission denied ({locked})"
    failing_listing(monkeypatch, quarantine)
    with capture_logs() as logged:
        _read_back(tmp_path, quarantine)
    [said] = [e for e in logged if "quarantine/ cannot be listed" in e["event"]]
    assert said["error"] == "Input/output error"
