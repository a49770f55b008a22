"""What the daemon leaves alone in the outbox root: said once, and the unusable invoice
files kept for the status page until they go; the look-alike sidecars a quarantine left
there, found for the page."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import write

from daemon.configuration.config import OutboxConfig
from daemon.journal import Journal
from daemon.journal.finished import Finished
from daemon.watching.leftalone import (
    SPELLING,
    LeftAlone,
    LeftBehind,
    MovedBackToday,
    left_behind,
    shared_name,
)
from daemon.watching.scan import Listing, list_outbox, look


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str, dict[str, Any]]] = []

    def info(self, event: str, **kw: Any) -> None:
        self.lines.append(("info", event, kw))

    def error(self, event: str, **kw: Any) -> None:
        self.lines.append(("error", event, kw))


LINK = ("INV-1.xml", "is a symbolic link; outboxd never follows it")
BAD = ("INV-\udce9.xml", "the name is not valid UTF-8 — rename the file")  # as the OS names it


def test_each_name_is_said_once_however_often_it_is_listed() -> None:
    """A README beside the invoices and an unusable invoice file: one log line each,
    however many listings and events see them again."""
    log = Log()
    seen = LeftAlone(log)
    for _ in range(3):
        seen.seen(Listing({}, ("README.txt",), (LINK,)), ["*.xml"])
        seen.seen(Listing({}, ("README.txt",), (LINK,)), ["*.xml"], "INV-1.xml")
    assert [(level, kw["file"]) for level, _, kw in log.lines] == [
        ("info", "README.txt"), ("error", "INV-1.xml")]


def test_a_name_is_forgotten_once_it_goes_and_said_again_if_it_comes_back() -> None:
    """A daemon that runs for months sees thousands of stray root files come and go: it
    keeps none of those gone (by a listing or an event), and one dropped again later is
    a new file, said again."""
    log = Log()
    seen = LeftAlone(log)
    for n in range(500):
        seen.seen(Listing({}, (f"export-{n}.csv",)), ["*.xml"], f"export-{n}.csv")
        seen.seen(Listing({}, ()), ["*.xml"], f"export-{n}.csv")  # its event: gone
    assert seen._said == set()  # forgotten at each one's event, no listing needed
    seen.seen(Listing({}, ("export-0.csv",)), ["*.xml"], "export-0.csv")  # back: its event
    assert [kw["file"] for _, _, kw in log.lines].count("export-0.csv") == 2
    seen.seen(Listing({}, ("README.txt",), (LINK,)), ["*.xml"])
    seen.seen(Listing({}, ()), ["*.xml"])  # a rescan: both gone
    assert seen._said == set() and seen.refused == {}
    seen.seen(Listing({}, ("README.txt",)), ["*.xml"])
    assert [kw["file"] for _, _, kw in log.lines].count("README.txt") == 2


def test_a_full_listing_replaces_and_an_event_changes_only_its_name() -> None:
    """Both unusable files from a listing; an event on one that is gone (its look finds
    nothing) drops only that one; a listing without them empties the page's list. Each
    change says so (True), the same again does not."""
    seen = LeftAlone(Log())
    assert seen.seen(Listing({}, (), (LINK, BAD)), ["*.xml"]) is True
    assert seen.refused == dict([LINK, BAD])
    assert seen.seen(Listing({}, (), (LINK, BAD)), ["*.xml"]) is False
    assert seen.seen(Listing({}, ()), ["*.xml"], "INV-\udce9.xml") is True
    assert seen.refused == dict([LINK])
    assert seen.seen(Listing({}, ()), ["*.xml"], "INV-2.xml") is False
    assert seen.seen(Listing({}, ()), ["*.xml"]) is True and seen.refused == {}


def test_a_file_that_is_no_invoice_file_is_kept_for_the_page_with_what_to_do() -> None:
    """A clerk drops an attachment beside its invoice file instead of into its folder:
    docs/folder-convention.md (section 1) has it named once in the log, which the clerk
    never sees. It is kept for the page with why it is never sent and where an attachment
    goes, until it goes."""
    seen = LeftAlone(Log())
    assert seen.seen(Listing({}, ("hours.xlsx",), (LINK,)), ["*.xml", "*.pdf"]) is True
    why = seen.refused["hours.xlsx"]
    assert why.startswith("not an invoice file (only names like *.xml, *.pdf are read as "
                          "invoice files), so it is never sent — an attachment goes into "
                          "the folder of its invoice file")
    assert seen.refused["INV-1.xml"] == LINK[1]
    assert seen.seen(Listing({}, ()), ["*.xml", "*.pdf"], "hours.xlsx") is True
    assert "hours.xlsx" not in seen.refused
    assert seen.seen(Listing({}, ("notes.txt",)), ["*.xml"], "notes.txt") is True
    assert "notes.txt" in seen.refused


def _shown_alike(tmp_path: Path) -> tuple[Path, OutboxConfig]:
    """An outbox holding a symbolic link named X\\u202e.xml (the six characters typed)
    and a FIFO named X + U+202E + .xml: both shown as X\\u202e.xml, two files."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "X\\u202e.xml").symlink_to(tmp_path / "elsewhere.xml")
    os.mkfifo(outbox / "X\u202e.xml")
    return outbox, OutboxConfig(path=outbox)


def test_two_unusable_invoice_files_shown_alike_are_two_entries_each_with_its_why(
        tmp_path: Path) -> None:
    """A link named X\\u202e.xml (typed) and a FIFO named X + U+202E + .xml are both
    shown as X\\u202e.xml: kept for the page as two entries, each with its own why, and
    each said once in the log, shown printable. Keyed as shown, they were one entry with
    the FIFO's why, and the link was said nowhere."""
    _, cfg = _shown_alike(tmp_path)
    log = Log()
    seen = LeftAlone(log)
    assert seen.seen(list_outbox(cfg), ["*.xml"]) is True
    assert sorted(seen.refused) == ["X\\u202e.xml", "X\u202e.xml"]
    assert "is a symbolic link" in seen.refused["X\\u202e.xml"]
    assert "is a FIFO" in seen.refused["X\u202e.xml"]
    said = sorted(kw["error"] for level, _, kw in log.lines if level == "error")
    assert len(said) == 2 and said[0].startswith("X\\u202e.xml: is a FIFO")
    assert said[1].startswith("X\\u202e.xml: is a symbolic link")
    assert all("\u202e" not in kw["file"] for _, _, kw in log.lines)


def test_an_event_on_one_of_two_names_shown_alike_leaves_the_others_entry(
        tmp_path: Path) -> None:
    """The link X\\u202e.xml (typed) is removed; its event drops its entry and the
    FIFO's, X + U+202E + .xml, stays with its why — and the other way round. Keyed as
    shown, the event on either dropped the one entry both had."""
    outbox, cfg = _shown_alike(tmp_path)
    seen = LeftAlone(Log())
    seen.seen(list_outbox(cfg), ["*.xml"])
    fifo = seen.refused["X\u202e.xml"]
    (outbox / "X\\u202e.xml").unlink()
    assert seen.seen(look(cfg, "X\\u202e.xml"), ["*.xml"], "X\\u202e.xml") is True
    assert seen.refused == {"X\u202e.xml": fifo}
    (outbox / "X\\u202e.xml").symlink_to(tmp_path / "elsewhere.xml")
    assert seen.seen(look(cfg, "X\\u202e.xml"), ["*.xml"], "X\\u202e.xml") is True
    (outbox / "X\u202e.xml").unlink()
    assert seen.seen(look(cfg, "X\u202e.xml"), ["*.xml"], "X\u202e.xml") is True
    assert list(seen.refused) == ["X\\u202e.xml"]
    assert "is a symbolic link" in seen.refused["X\\u202e.xml"]


def test_an_event_on_one_of_two_other_files_shown_alike_leaves_the_others_entry(
        tmp_path: Path) -> None:
    """Files that are no invoice file alike: notes\\u202e.txt (typed) and notes +
    U+202E + .txt are two entries; the event of the one removed leaves the other."""
    outbox = tmp_path / "outbox"
    for name in ("notes\\u202e.txt", "notes\u202e.txt"):
        write(outbox / name, b"")
    cfg = OutboxConfig(path=outbox)
    seen = LeftAlone(Log())
    seen.seen(list_outbox(cfg), ["*.xml"])
    assert sorted(seen.refused) == ["notes\\u202e.txt", "notes\u202e.txt"]
    (outbox / "notes\u202e.txt").unlink()
    assert seen.seen(look(cfg, "notes\u202e.txt"), ["*.xml"], "notes\u202e.txt") is True
    assert list(seen.refused) == ["notes\\u202e.txt"]


DAY = "2026-12-04"


class TestLeftBehind:
    """The look-alike sidecars a quarantine left in the outbox (`sidecar-spelling`): no
    part of the bundle, they are not moved, and nothing else says that they wait for a
    person. The status page lists them from the journal's quarantined rows."""

    @pytest.fixture
    def setup(self, tmp_path: Path) -> Iterator[tuple[Journal, Path, Path]]:
        journal = Journal(tmp_path / "journal.sqlite3")
        outbox, quarantine = tmp_path / "outbox", tmp_path / "quarantine"
        outbox.mkdir()
        yield journal, outbox, quarantine
        journal.close()

    @staticmethod
    def quarantine_for(journal: Journal, quarantine: Path, *look_alikes: str,
                       invoice: str = "INV-7.xml", bid: str = "3f2a9c01b7e4") -> Path:
        """INV-7.xml quarantined for `look_alikes`, as the daemon records it."""
        folder = write(quarantine / DAY / f"INV-7--{bid}" / invoice, b"<Invoice/>").parent
        journal.create(invoice, "quarantined", archive_dir=str(folder), reasons=[
            {"code": "sidecar-spelling", "file": n, "message": f"this folder looks like the "
             f"sidecar INV-7 of {invoice} — rename it to INV-7"} for n in look_alikes])
        return folder

    def found(self, journal: Journal, outbox: Path, quarantine: Path) -> list[LeftBehind]:
        return left_behind(journal.quarantined_for(SPELLING), outbox, quarantine)

    def test_a_look_alike_still_in_the_outbox_is_named_with_its_quarantine_and_fix(
            self, setup: tuple[Journal, Path, Path]) -> None:
        """inv-7/ stayed in the outbox when INV-7.xml was quarantined for it: it is left
        behind, named with its invoice file, the quarantine folder as the share shows it
        and its finding; why says to mend it here first, then move the invoice back."""
        journal, outbox, quarantine = setup
        self.quarantine_for(journal, quarantine, "inv-7")
        write(outbox / "inv-7" / "timesheet.pdf", b"%PDF-1.4")
        [left] = self.found(journal, outbox, quarantine)
        assert left == LeftBehind("inv-7", "INV-7.xml",
                                  f"quarantine/{DAY}/INV-7--3f2a9c01b7e4",
                                  "this folder looks like the sidecar INV-7 of INV-7.xml — "
                                  "rename it to INV-7", on_disk="inv-7")
        assert left.why.startswith(f"INV-7.xml was quarantined because of it and waits in "
                                   f"quarantine/{DAY}/INV-7--3f2a9c01b7e4: this folder looks")
        assert "Mend it in the outbox first, then move INV-7.xml" in left.why

    def test_a_name_with_a_control_character_is_shown_escaped_and_known_as_on_disk(
            self, setup: tuple[Journal, Path, Path]) -> None:
        """A look-alike whose name holds a C1 control (U+009B) is shown as \\x9b, and kept
        as it is on disk for the loop, which compares it with the names of events."""
        journal, outbox, quarantine = setup
        self.quarantine_for(journal, quarantine, "inv-7\x9b")
        write(outbox / "inv-7\x9b" / "timesheet.pdf", b"%PDF-1.4")
        [left] = self.found(journal, outbox, quarantine)
        assert (left.name, left.on_disk) == ("inv-7\\x9b", "inv-7\x9b")

    def test_none_once_renamed_or_removed(self, setup: tuple[Journal, Path, Path]) -> None:
        """Renamed to INV-7 (or removed), inv-7 waits for nobody any more."""
        journal, outbox, quarantine = setup
        self.quarantine_for(journal, quarantine, "inv-7")
        write(outbox / "INV-7" / "timesheet.pdf", b"%PDF-1.4")
        assert self.found(journal, outbox, quarantine) == []

    def test_none_once_the_invoice_file_is_back_or_gone_from_its_quarantine_folder(
            self, setup: tuple[Journal, Path, Path]) -> None:
        """The invoice file copied or moved back by hand: its bundle, in the outbox again,
        reports the look-alike. The invoice file removed from quarantine: nothing waits
        for it."""
        journal, outbox, quarantine = setup
        folder = self.quarantine_for(journal, quarantine, "inv-7")
        write(outbox / "inv-7" / "timesheet.pdf", b"%PDF-1.4")
        write(outbox / "INV-7.xml", b"<Invoice/>")  # a copy: the quarantine's stays
        assert self.found(journal, outbox, quarantine) == []
        (outbox / "INV-7.xml").unlink()
        (folder / "INV-7.xml").rename(outbox / "INV-7.xml")
        assert self.found(journal, outbox, quarantine) == []
        (outbox / "INV-7.xml").unlink()
        assert self.found(journal, outbox, quarantine) == []

    def test_each_of_several_is_named_once_for_its_latest_quarantine(
            self, setup: tuple[Journal, Path, Path]) -> None:
        """inv-7/ and Inv-7/ in one quarantine, inv-7 again in a later one (the invoice
        file moved back before the rename): each is named once, inv-7 with the later
        quarantine folder; a quarantine for another reason names nothing."""
        journal, outbox, quarantine = setup
        self.quarantine_for(journal, quarantine, "inv-7", "Inv-7")
        self.quarantine_for(journal, quarantine, "inv-7", bid="0123456789ab")
        journal.create("INV-8.xml", "quarantined", archive_dir=str(quarantine / DAY / "x"),
                       reasons=[{"code": "pdf-encrypted", "file": "inv-7", "message": "m"}])
        for name in ("inv-7", "Inv-7"):
            write(outbox / name / "a.pdf", b"%PDF-1.4")
        assert [(x.name, x.quarantine) for x in self.found(journal, outbox, quarantine)] == [
            ("Inv-7", f"quarantine/{DAY}/INV-7--3f2a9c01b7e4"),
            ("inv-7", f"quarantine/{DAY}/INV-7--0123456789ab")]


def test_a_folder_archived_under_another_root_is_named_without_the_servers_path(
        tmp_path: Path) -> None:
    """An archive folder under an earlier [paths] sent is named as the share knows it
    (its root's name, DAY/NAME--ID): the text reaches clerks and a receiver's manifest."""
    old = tmp_path / "srv" / "finance" / "sent-2025" / "2026-11-30" / "INV-1--0123456789ab"
    assert shared_name(old, tmp_path / "share" / "sent") == \
        "sent-2025/2026-11-30/INV-1--0123456789ab"
    assert shared_name(tmp_path / "share" / "sent" / "2026-12-01" / "INV-2--ba9876543210",
                       tmp_path / "share" / "sent") == "sent/2026-12-01/INV-2--ba9876543210"


def test_the_rows_the_page_lists_are_looked_at_at_each_refresh(tmp_path: Path) -> None:
    """MovedBackToday with one row listed (shown = 1): a row moved back by hand before it
    is no row the page lists, so the next one is the listed one, and its folder is
    looked at at every refresh — moved back later, it leaves the page at the next one,
    not when the turn of the 400 rows past it comes round."""
    outbox = tmp_path / "outbox"
    write(outbox / "A.xml", b"<Invoice/>")  # moved back by hand, its folder without it
    folder_a, folder_b = tmp_path / "q" / "A--1", tmp_path / "q" / "B--2"
    folder_a.mkdir(parents=True)
    write(folder_b / "B.xml", b"<Invoice/>")
    since = f"{DAY}T10:00:00.000Z"
    rows = [Finished(1002, "quarantined", since, "A.xml", str(folder_a)),
            Finished(1001, "quarantined", since, "B.xml", str(folder_b)),
            *(Finished(i, "quarantined", since, f"C{i}.xml", None) for i in range(400, 0, -1))]
    moved_back = MovedBackToday()

    def refresh() -> set[int]:
        return moved_back(rows, DAY, outbox, dict, shown=1)
    assert refresh() == refresh() == {1002}
    (folder_b / "B.xml").rename(outbox / "B.xml")
    assert refresh() == {1002, 1001}


def test_a_bundle_moved_back_whose_quarantine_folder_became_a_file_is_moved_back(
        tmp_path: Path) -> None:
    """A quarantine folder replaced by a file (a person tidying up on the share) holds no
    invoice file either: with the invoice file back in the outbox the bundle is moved back
    — not counted as quarantined for the rest of the day."""
    outbox = tmp_path / "outbox"
    write(outbox / "A.xml", b"<Invoice/>")
    folder = tmp_path / "q" / "A--1"
    write(folder, b"not a folder any more")
    rows = [Finished(7, "quarantined", f"{DAY}T10:00:00.000Z", "A.xml", str(folder))]
    assert MovedBackToday()(rows, DAY, outbox, dict, shown=1) == {7}
