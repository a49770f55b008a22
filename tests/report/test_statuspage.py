"""The status page: sections, escaping, self-contained HTML, rewritten only on change and at
most every 2 s (or twenty times a refresh's cost, when that is longer)."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from helpers import Page, page_in_a_new_outbox, write
from structlog.testing import capture_logs

from daemon.claiming.foreign import foreign_work
from daemon.configuration.config import Settings
from daemon.journal import Journal, iso_in, parse_iso
from daemon.journal.records import readable
from daemon.loop.idlefiles import Idle
from daemon.names import printable
from daemon.report import pagehtml, statuspage
from daemon.report.statuspage import (
    HEARTBEAT,
    MIN_INTERVAL,
    PAGE_PACE,
    PAGE_PACE_MAX,
    SHOWN_DUE,
    StatusPage,
)
from daemon.watching.leftalone import not_an_invoice


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    j = Journal(tmp_path / "j.sqlite3")
    yield j
    j.close()


def test_writer_rewrites_only_on_change_and_at_most_every_2_seconds(
        journal: Journal, tmp_path: Path) -> None:
    outbox, settings, clock, page, target = page_in_a_new_outbox(tmp_path)
    assert page.refresh(journal, settings) and target.exists()
    journal.create("new.xml", "waiting", unattached_ids=["N-1"])
    clock[0] += 1.0
    assert not page.refresh(journal, settings)  # too soon
    assert "new.xml" not in target.read_text()
    clock[0] += 1.0
    assert page.refresh(journal, settings)
    assert "new.xml" in target.read_text()
    clock[0] += 5.0
    mtime = target.stat().st_mtime_ns
    assert not page.refresh(journal, settings)  # nothing changed: not rewritten
    assert target.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in outbox.iterdir()) == ["outboxd-status.html"]


def test_the_pace_is_the_one_docs_folder_convention_md_names() -> None:
    """The page's pace is the one the clerks' guide names (daemons in the integration
    tests that read the page run it faster: conftest.quick_page)."""
    text = " ".join((Path(__file__).parents[2] / "docs" / "folder-convention.md")
                    .read_text().split())
    assert f"outboxd rewrites it at most every {MIN_INTERVAL:g} s" in text


def test_an_unchanged_page_is_written_again_after_the_heartbeat_saying_when_the_next_is_due(
        journal: Journal, tmp_path: Path) -> None:
    """Nothing changes: the page is not written again before HEARTBEAT (4 minutes), but
    then it is, with a new "Written" time, and each says by when the next write is due
    (SHOWN_DUE later), so a clerk can tell a page left by a dead daemon from a quiet one.
    A page written at a clean stop says outboxd is stopped instead, and names no time due."""
    walls = [datetime(2031, 5, 6, 12, 0, 0, tzinfo=UTC)]
    outbox, settings, clock, _, target = page_in_a_new_outbox(tmp_path)
    page = StatusPage(clock=lambda: clock[0], wall=lambda: walls[0])
    assert page.refresh(journal, settings)
    first = target.read_text()
    assert "Written <!--written-->2031-05-06 12:00:00 UTC" in first
    assert "writes it again by 12:05 UTC (2031-05-06), even when nothing changed" in first
    clock[0] += HEARTBEAT - 1
    walls[0] += timedelta(seconds=HEARTBEAT - 1)
    assert not page.refresh(journal, settings) and target.read_text() == first
    clock[0] += MIN_INTERVAL  # that look's pace: due at the heartbeat, written after it
    walls[0] += timedelta(seconds=MIN_INTERVAL)
    assert page.refresh(journal, settings)
    again = target.read_text()
    # 12:09:01 shown rounded up to the minute (test_pagehtml)
    assert "2031-05-06 12:04:01 UTC" in again and "again by 12:10 UTC" in again
    assert page.stopped(journal, settings)
    stopped = target.read_text()
    assert "outboxd is stopped since" in stopped and "writes it again by" not in stopped
    assert page.stale_at() == float("inf")


def test_a_costly_refresh_puts_the_next_off_by_twenty_times_its_cpu_at_most_a_minute(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With tens of thousands of rows a refresh takes about half a second of CPU; every
    2 s that would be a quarter of a core whenever anything changes. A refresh that
    cost 0.5 s makes the next wait PAGE_PACE × 0.5 s = 10 s; one that cost 10 s waits
    PAGE_PACE_MAX, not 200 s; a cheap one brings back MIN_INTERVAL (2 s). Time spent
    waiting (a stalled share) is not cost. A refresh that fails is paced by its cost as
    well: the publisher asks again while the page fails (a full share), and a big page's
    gathering every 2 s would be a quarter of a core for as long as the share stays full."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    clock, cpu, cost = [100.0], [0.0], [0.5]
    real_unfinished = journal.unfinished

    def costly_unfinished() -> Any:  # read once a refresh
        cpu[0] += cost[0]
        clock[0] += 3.0  # the wall time a stalled host adds: not the page's cost
        return real_unfinished()
    monkeypatch.setattr(journal, "unfinished", costly_unfinished)

    page = StatusPage(clock=lambda: clock[0], cpu=lambda: cpu[0])
    began = clock[0]
    assert page.refresh(journal, settings)
    assert page.next_at() == began + PAGE_PACE * 0.5
    journal.create("new.xml", "waiting", unattached_ids=["N-1"])
    clock[0] = began + 5.0
    assert not page.refresh(journal, settings)  # not yet
    clock[0] = began = 200.0
    cost[0] = 10.0
    assert page.refresh(journal, settings)
    assert "new.xml" in (outbox / "outboxd-status.html").read_text()
    assert page.next_at() == began + PAGE_PACE_MAX
    clock[0] = began = 300.0
    cost[0] = 0.01
    journal.create("newer.xml", "waiting", unattached_ids=["N-2"])
    assert page.refresh(journal, settings)
    assert page.next_at() == began + MIN_INTERVAL

    def failing_write(path: Path, data: bytes, look: object) -> os.stat_result:
        clock[0] += 30.0  # a share that hangs, then fails
        raise OSError(5, "Input/output error")
    monkeypatch.setattr(statuspage, "replace_ours", failing_write)
    journal.create("newest.xml", "waiting", unattached_ids=["N-3"])
    clock[0] = began = 400.0
    cost[0] = 5.0
    assert not page.refresh(journal, settings) and page.failing
    assert page.next_at() == began + PAGE_PACE_MAX
    clock[0] = began = 500.0
    cost[0] = 0.01
    assert not page.refresh(journal, settings) and page.failing
    assert page.next_at() == began + MIN_INTERVAL


def test_a_reload_that_turns_the_page_off_or_renames_it_removes_the_old_page(
        journal: Journal, tmp_path: Path) -> None:
    """The share is the clerks' screen: a page that no longer changes would tell them
    yesterday's truth. Turned off or renamed by a reload, the old page goes if outboxd
    wrote it; a file of the clerks' own under that name stays."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    on = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    off = on.model_copy(update={"share": on.share.model_copy(update={"status_page": ""})})
    renamed = on.model_copy(update={"share": on.share.model_copy(
        update={"status_page": "status.html"})})
    page = StatusPage(clock=lambda: 100.0)
    assert page.refresh(journal, on)
    page.reconfigure(on, off)
    assert list(outbox.iterdir()) == []

    mine = outbox / "outboxd-status.html"
    mine.write_text("<p>our own notes</p>")
    page.reconfigure(on, renamed)
    assert mine.read_text() == "<p>our own notes</p>"


def test_a_reload_makes_the_page_due_after_min_interval_whatever_its_pace(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A costly refresh puts the next off by 20 × its CPU (up to a minute); a reload (a
    new name, the page turned on, another policy to explain) brings it back to
    MIN_INTERVAL after the last look — never sooner: the folder convention promises the
    page is rewritten at most every 2 s."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    on = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    renamed = on.model_copy(update={"share": on.share.model_copy(
        update={"status_page": "status.html"})})
    clock, cpu = [100.0], [0.0]
    real_unfinished = journal.unfinished

    def costly_unfinished() -> Any:  # read once a refresh
        cpu[0] += 1.0
        return real_unfinished()
    monkeypatch.setattr(journal, "unfinished", costly_unfinished)
    page = StatusPage(clock=lambda: clock[0], cpu=lambda: cpu[0])
    assert page.refresh(journal, on)
    assert page.next_at() == 100.0 + PAGE_PACE * 1.0
    page.reconfigure(on, renamed)
    assert page.next_at() == 100.0 + MIN_INTERVAL
    clock[0] = 100.0 + MIN_INTERVAL - 0.1
    assert not page.refresh(journal, renamed)  # never sooner than the promise
    clock[0] = 100.0 + MIN_INTERVAL
    assert page.refresh(journal, renamed) and (outbox / "status.html").is_file()


def test_a_temp_file_of_a_page_write_killed_before_its_rename_is_removed(
        journal: Journal, tmp_path: Path) -> None:
    """A kill between a page write's temp file and its rename left the temp file in the
    outbox, for good: the first write after a start removes it."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / ".outboxd-status.html.tmp-0123456789ab").write_text("half a page")
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    assert StatusPage(clock=lambda: 100.0).refresh(journal, settings)
    assert sorted(p.name for p in outbox.iterdir()) == ["outboxd-status.html"]


def test_the_starts_listing_serves_the_sweep_of_a_page_temp(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At a start the outbox's listing (scan.Listing.stats) is what the page's leftover
    temp is found by: removed then, and not looked for again (by another listing of the
    outbox) at the first write."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    left = outbox / ".outboxd-status.html.tmp-0123456789ab"
    left.write_text("half a page")
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    page = StatusPage(clock=lambda: 100.0)
    page.swept(settings, {e.name: e.stat(follow_symlinks=False) for e in os.scandir(outbox)})
    assert not left.exists()
    swept_again: list[Path] = []
    monkeypatch.setattr(statuspage, "drop_unfinished",
                        lambda folder, *_: swept_again.append(folder))
    assert page.refresh(journal, settings)
    assert swept_again == []
    assert sorted(p.name for p in outbox.iterdir()) == ["outboxd-status.html"]


def test_empty_status_page_setting_writes_nothing(journal: Journal, tmp_path: Path) -> None:
    settings = Settings(outbox={"path": tmp_path}, delivery={"url": "http://127.0.0.1:9/"},
                        share={"status_page": ""})
    assert not StatusPage().refresh(journal, settings)
    assert not any(p.suffix == ".html" for p in tmp_path.iterdir())


def test_a_near_miss_of_a_release_file_is_listed_with_the_exact_name_that_releases(
        journal: Journal, tmp_path: Path) -> None:
    """A clerk on Windows renames "New Text Document.txt" to INV-1.send-anyway and gets
    INV-1.send-anyway.txt (the .txt hidden); another types INV-1.Send-Anyway. Neither
    releases INV-1.xml. The page lists each with the exact name that would, where it
    said "not an invoice file … an attachment goes into the folder of its invoice file"
    (no help to someone releasing an invoice); a file of no such name keeps that text."""
    from daemon.watching.leftalone import LeftAlone
    from daemon.watching.scan import list_outbox
    outbox, settings, clock, page, path = page_in_a_new_outbox(tmp_path)
    write(outbox / "INV-1.xml", b"<x/>")
    for name in ("INV-1.send-anyway.txt", "INV-1.Send-Anyway", "hours.xlsx"):
        write(outbox / name, b"")
    listing = list_outbox(settings.outbox, settings.share)
    left = LeftAlone(structlog.get_logger())
    left.seen(listing, settings.outbox.invoice_patterns)
    assert page.refresh(journal, settings, listing.candidates, left.refused)
    rows = Page(path.read_text(encoding="utf-8")).rows["refused"]
    fix = ("named like a release file, but not exactly, so it releases nothing — to send "
           "INV-1.xml without its attachments, rename it to INV-1.send-anyway")
    assert [r.split("\t")[0] for r in rows] == ["INV-1.Send-Anyway", "INV-1.send-anyway.txt",
                                                "hours.xlsx"]
    assert fix in rows[0] and fix in rows[1]
    assert "an attachment goes into the folder" in rows[2] and "release" not in rows[2]


def test_a_near_miss_beside_a_held_invoice_or_its_release_says_what_is_true(
        journal: Journal, tmp_path: Path) -> None:
    """INV-1.xml is held (errors): its near miss INV-1.send-anyway.txt is told that a
    release would do nothing, not to rename itself; INV-2.Send-Anyway beside an exact
    INV-2.send-anyway is told that one is there, not to take its name."""
    from daemon.watching.leftalone import LeftAlone
    from daemon.watching.scan import list_outbox
    outbox, settings, _, page, path = page_in_a_new_outbox(tmp_path)
    for name in ("INV-1.xml", "INV-2.xml"):
        write(outbox / name, b"<x/>")
    for name in ("INV-1.send-anyway.txt", "INV-2.send-anyway", "INV-2.Send-Anyway"):
        write(outbox / name, b"")
    journal.create("INV-1.xml", "held", bundle_id="a" * 64, invoice_ids=["INV-1"])
    journal.create("INV-2.xml", "waiting", bundle_id="b" * 64, invoice_ids=["INV-2"],
                   unattached_ids=["INV-2"])
    listing = list_outbox(settings.outbox, settings.share)
    left = LeftAlone(structlog.get_logger())
    left.seen(listing, settings.outbox.invoice_patterns)
    assert page.refresh(journal, settings, listing.candidates, left.refused)
    rows = dict(r.split("\t", 1) for r in Page(path.read_text(encoding="utf-8")).rows["refused"])
    assert "a release of INV-1.xml would do nothing: INV-1.xml has errors" in rows[
        "INV-1.send-anyway.txt"] and "rename" not in rows["INV-1.send-anyway.txt"]
    assert rows["INV-2.Send-Anyway"].endswith(
        "INV-2.send-anyway, the release file of INV-2.xml, is there already: remove this one")


def test_a_folder_named_like_an_invoice_file_beside_its_bare_name_is_told_to_merge(
        journal: Journal, tmp_path: Path) -> None:
    """The page looks whether Z-1/ is there before telling Z-1.xml/ to take its name."""
    outbox, settings, _, page, path = page_in_a_new_outbox(tmp_path)
    write(outbox / "Z-1.xml" / "a.pdf", b"%PDF-1.4")
    write(outbox / "Y-1.xml" / "a.pdf", b"%PDF-1.4")
    write(outbox / "Z-1" / "b.pdf", b"%PDF-1.4")
    assert page.refresh(journal, settings)
    rows = dict(r.split("\t", 1) for r in Page(path.read_text(encoding="utf-8")).rows["lone"])
    assert "move the files of this folder into Z-1/" in rows["Z-1.xml/"]
    assert "rename the folder to Y-1 " in rows["Y-1.xml/"]


@pytest.mark.parametrize("odd", ["\x85", os.fsdecode(b"\xe5")],
                         ids=["control character", "undecodable byte"])
def test_a_folder_named_like_an_invoice_file_is_looked_for_by_its_name_on_disk(
        journal: Journal, tmp_path: Path, odd: str) -> None:
    """Z<odd>-1.xml/ (the real character, or a byte that is not UTF-8) beside
    Z<odd>-1/ is told to move its files there; Y<odd>-1.xml/ beside a folder named with
    the escape typed (Y\\x85-1/, shown as Y<odd>-1/ is) is told to take its name. The
    page looked for the folder by the name as shown, escape and all: the first was told
    a rename that fails, the second a merge into a folder that is another one."""
    outbox, settings, _, page, path = page_in_a_new_outbox(tmp_path)
    shown = printable(odd)
    write(outbox / f"Z{odd}-1.xml" / "a.pdf", b"%PDF-1.4")
    write(outbox / f"Z{odd}-1" / "b.pdf", b"%PDF-1.4")
    write(outbox / f"Y{odd}-1.xml" / "a.pdf", b"%PDF-1.4")
    write(outbox / f"Y{shown}-1" / "b.pdf", b"%PDF-1.4")
    assert page.refresh(journal, settings)
    rows = dict(r.split("\t", 1) for r in Page(path.read_text(encoding="utf-8")).rows["lone"])
    assert f"move the files of this folder into Z{shown}-1/" in rows[f"Z{shown}-1.xml/"]
    assert f"rename the folder to Y{shown}-1 " in rows[f"Y{shown}-1.xml/"]


def test_a_near_miss_of_a_marker_is_listed_with_the_marker_its_bundle_waits_for(
        journal: Journal, tmp_path: Path) -> None:
    """Under completion = "marker", INV-1.Ready (or INV-1.ready.txt) leaves INV-1.xml
    waiting; the page says which name the marker must have."""
    from daemon.watching.leftalone import LeftAlone
    from daemon.watching.scan import list_outbox
    outbox, _, _, page, path = page_in_a_new_outbox(tmp_path)
    settings = Settings(outbox={"path": outbox, "completion": "marker"},
                        delivery={"url": "http://127.0.0.1:9/"})
    write(outbox / "INV-1.xml", b"<x/>")
    write(outbox / "INV-1.Ready", b"")
    listing = list_outbox(settings.outbox, settings.share)
    left = LeftAlone(structlog.get_logger())
    left.seen(listing, settings.outbox.invoice_patterns)
    assert page.refresh(journal, settings, listing.candidates, left.refused)
    [row] = Page(path.read_text(encoding="utf-8")).rows["refused"]
    assert row.startswith("INV-1.Ready\t")
    assert "INV-1.xml still waits for its marker — rename it to INV-1.ready " in row


def test_a_marker_named_with_the_invoice_files_extension_is_listed_with_the_name_it_needs(
        journal: Journal, tmp_path: Path) -> None:
    """M-3.xml.ready (the invoice file's whole name before .ready) ends like a marker, so
    the scanner left it unlisted, and it was shown nowhere while M-3.xml waited for
    M-3.ready; a release file's near miss of that kind was listed. It is listed with the
    name it needs; a real marker and one that names no invoice file are not."""
    outbox, _, _, page, path = page_in_a_new_outbox(tmp_path)
    settings = Settings(outbox={"path": outbox, "completion": "marker"},
                        delivery={"url": "http://127.0.0.1:9/"})
    for name in ("M-3.xml", "N-1.xml"):
        write(outbox / name, b"<x/>")
    for name in ("M-3.xml.ready", "N-1.ready", "X-9.ready"):
        write(outbox / name, b"")
    assert page.refresh(journal, settings)
    rows = dict(r.split("\t", 1) for r in Page(path.read_text(encoding="utf-8")).rows["refused"])
    assert list(rows) == ["M-3.xml.ready"]
    assert "M-3.xml still waits for its marker — rename it to M-3.ready " in rows[
        "M-3.xml.ready"]


def test_a_refresh_lists_the_outbox_root_once_for_release_files_and_markers(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under completion = "marker" each refresh of the page listed the outbox root once
    for the release files and again for the markers (20,000 names twice a refresh); one
    listing now gives both, and the page still shows a marker's near miss and an idle
    release."""
    from helpers import count_listings

    from daemon.loop import idlefiles
    outbox, _, _, page, path = page_in_a_new_outbox(tmp_path)
    settings = Settings(outbox={"path": outbox, "completion": "marker"},
                        delivery={"url": "http://127.0.0.1:9/"})
    write(outbox / "M-3.xml", b"<x/>")
    for name in ("M-3.xml.ready", "Z-9.send-anyway"):
        write(outbox / name, b"")
    listed = count_listings(monkeypatch, idlefiles)
    assert page.refresh(journal, settings)
    assert listed == [str(outbox)]
    html = path.read_text(encoding="utf-8")
    assert "rename it to M-3.ready " in html and "Z-9.send-anyway" in html


def test_a_waiting_copy_of_a_sent_invoice_says_so_in_its_row(journal: Journal,
                                                               tmp_path: Path) -> None:
    """A clerk's "INV-1 - Copy.xml" of an invoice file already sent waits for attachments
    like any invoice, and its row offered only "add the attachments … or drop a file
    INV-1 - Copy.send-anyway": released (or at its deadline under warn) the customer
    gets INV-1 twice. The row says first that INV-1 was already sent, and to remove the
    file if it is a copy; a waiting invoice never sent has no such line."""
    outbox, settings, _, page, path = page_in_a_new_outbox(tmp_path)
    journal.create("INV-1.xml", "sent", bundle_id="a" * 64, invoice_ids=["INV-1"])
    journal.create("INV-1 - Copy.xml", "waiting", bundle_id="b" * 64, invoice_ids=["INV-1"],
                   unattached_ids=["INV-1"])
    journal.create("INV-2.xml", "waiting", bundle_id="c" * 64, invoice_ids=["INV-2"],
                   unattached_ids=["INV-2"])
    assert page.refresh(journal, settings)
    rows = Page(path.read_text(encoding="utf-8")).rows["waiting"]
    [copy] = [r for r in rows if r.startswith("INV-1 - Copy.xml")]
    [other] = [r for r in rows if r.startswith("INV-2.xml")]
    assert ("INV-1 was already sent in another bundle, which sent/ holds: if this file is "
            "a copy, remove it instead of sending it; if it is a correction, add the "
            "attachments") in copy
    assert "already sent" not in other


def test_a_name_that_slips_through_unescaped_costs_the_page_not_the_daemon(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Last line of defence: should any name with undecodable bytes reach the page
    unescaped (escaped_controls shows such a byte as \\udce5, so only a page that skipped
    it), refresh() logs that the page cannot be written and returns; it never raises
    into the daemon's loop."""
    (tmp_path / "x.send-anyway").touch()
    raw = os.fsdecode(b"Faktura-\xe5.send-anyway")
    monkeypatch.setattr(statuspage, "idle_releases", lambda *_: [Idle(raw, "no invoice")])
    settings = Settings(outbox={"path": tmp_path}, delivery={"url": "http://127.0.0.1:9/"})
    assert StatusPage().refresh(journal, settings)
    assert "Faktura-\\udce5.send-anyway" in (tmp_path / "outboxd-status.html").read_text()
    monkeypatch.setattr(pagehtml, "escaped_controls", lambda text: text)
    with capture_logs() as logs:
        assert not StatusPage().refresh(journal, settings)
    [line] = [e for e in logs if e["event"] == "cannot write the status page"]
    assert "surrogates not allowed" in line["error"]


def as_written(journal: Journal) -> StatusPage:
    """A page whose "today" is the day the journal's rows were written, not the host's
    clock's by the time it looks: a run across midnight UTC would find them yesterday's."""
    written = parse_iso(max(r.since for r in journal.recent()))
    return StatusPage(wall=lambda: written)


def test_a_quarantined_bundle_moved_back_by_hand_leaves_quarantined_today(
        journal: Journal, tmp_path: Path) -> None:
    """REASON.txt says to fix the files and move the invoice file back into the outbox;
    done so (not with `outboxd retry`), the bundle was sent and still listed under
    Quarantined today, counted, as if it waited for a fix. Once its invoice file has
    left the quarantine folder it is not listed; one still there is."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    day = tmp_path / "quarantine" / "2026-12-04"
    back = write(day / "BACK-1--aaaaaaaaaaaa" / "BACK-1.xml", b"<Invoice/>")
    still = write(day / "STILL-1--bbbbbbbbbbbb" / "STILL-1.xml", b"<Invoice/>")
    for f in (back, still):
        write(f.parent / "REASON.txt", b"rejected")
        journal.create(f.name, "quarantined", archive_dir=str(f.parent),
                       reasons=[{"code": "rejected", "file": f.name, "message": "HTTP 400"}])
    back.rename(outbox / "BACK-1.xml")  # the clerk moves it back by hand
    journal.create("BACK-1.xml", "sent", bundle_id="a" * 64, invoice_ids=["BACK-1"],
                   receipt_id="rcpt-9")
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    assert as_written(journal).refresh(journal, settings)
    page = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8"))
    assert "STILL-1--bbbbbbbbbbbb" in page.text["quarantined"]
    assert "BACK-1" not in page.text["quarantined"]
    assert "BACK-1.xml" in page.text["sent"]
    assert "1 Quarantined today" in page.text["top"]


def quarantined_today(journal: Journal, tmp_path: Path, stem: str) -> tuple[Path, Path]:
    """An outbox, and a bundle STEM quarantined (rejected) with its invoice file in its
    quarantine folder: the outbox and that folder."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    folder = tmp_path / "quarantine" / "2026-12-04" / f"{stem}--aaaaaaaaaaaa"
    write(folder / f"{stem}.xml", b"<Invoice/>")
    journal.create(f"{stem}.xml", "quarantined", archive_dir=str(folder),
                   reasons=[{"code": "rejected", "file": f"{stem}.xml", "message": "HTTP 400"}])
    return outbox, folder


def test_a_quarantined_bundle_whose_folder_a_clerk_renamed_stays_on_the_page(
        journal: Journal, tmp_path: Path) -> None:
    """An invoice file not in its quarantine folder took the bundle off "Quarantined
    today" whatever the reason: a clerk who renamed the folder (or a quarantine/ share
    not mounted) made a bundle that still waits for a fix vanish from the page and its
    count. Only one moved back (in the outbox again, or seen there: a later row) goes."""
    outbox, folder = quarantined_today(journal, tmp_path, "NAMED-1")
    folder.rename(folder.with_name("NAMED-1 ask Bob"))
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    assert as_written(journal).refresh(journal, settings)
    page = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8"))
    assert "NAMED-1--aaaaaaaaaaaa" in page.text["quarantined"]
    assert "1 Quarantined today" in page.text["top"]


def test_a_quarantine_folder_that_cannot_be_looked_at_keeps_its_bundle_listed(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an invoice file that is not there takes a bundle off "Quarantined today": a
    quarantine folder outboxd cannot look into (permissions, a share gone, a stale NFS
    handle) said "gone" too, and every bundle quarantined today vanished from the page
    and its count while the journal and the folders still held them."""
    outbox, folder = quarantined_today(journal, tmp_path, "LOCKED-1")
    real_lstat = os.lstat

    def denied(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path).startswith(str(folder)):
            raise PermissionError(13, "Permission denied", str(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", denied)
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    assert as_written(journal).refresh(journal, settings)
    page = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8"))
    assert "LOCKED-1--aaaaaaaaaaaa" in page.text["quarantined"]
    assert "1 Quarantined today" in page.text["top"]


def test_only_todays_quarantined_bundles_cost_a_look_at_their_folder(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The page asks the journal for the last 24 h, but lists only today's quarantines:
    yesterday's rows (up to a day of them, at every refresh) must cost no lstat on the
    share. Today's row is looked at, and listed."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    since = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
    day_after = (since + timedelta(days=1)).replace(hour=0, minute=0, second=30)
    quarantine = tmp_path / "quarantine"
    for name, at in (("OLD", since), ("NEW", day_after)):
        folder = quarantine / at.strftime("%Y-%m-%d") / f"{name}--aaaaaaaaaaaa"
        write(folder / f"{name}.xml", b"<Invoice/>")
        journal.create(f"{name}.xml", "quarantined", archive_dir=str(folder),
                       since=at.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                       reasons=[{"code": "rejected", "file": f"{name}.xml", "message": "400"}])
    looked: list[str] = []
    real_lstat = os.lstat

    def counting(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if str(path).startswith(str(quarantine)):
            looked.append(Path(path).name)
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", counting)
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    assert StatusPage(wall=lambda: day_after).refresh(journal, settings)
    page = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8"))
    assert looked == ["NEW.xml"]
    assert "NEW--aaaaaaaaaaaa" in page.text["quarantined"]
    assert "OLD" not in page.text["quarantined"]


def test_a_look_alike_left_by_a_quarantine_is_listed_with_why_until_renamed(
        journal: Journal, tmp_path: Path) -> None:
    """INV-7.xml was quarantined for inv-7/ (made on Windows), which stayed in the outbox
    under its name with the timesheet. The page lists it under its own section only — the
    folder, the invoice file and its quarantine folder, the rule and the fix — logged
    once however often the page is written. Renamed to INV-7 in the outbox, it waits for
    nobody: the next refresh drops it (and the loop is told which names to watch)."""
    outbox = tmp_path / "outbox"
    write(outbox / "inv-7" / "timesheet.pdf", b"%PDF-1.4")
    folder = write(tmp_path / "quarantine" / "2026-12-04" / "INV-7--3f2a9c01b7e4" /
                   "INV-7.xml", b"<Invoice/>").parent
    message = ("this folder looks like the sidecar INV-7 of INV-7.xml, but the two names "
               "differ only in upper and lower case — rename it to INV-7")
    journal.create("INV-7.xml", "quarantined", archive_dir=str(folder), reasons=[
        {"code": "sidecar-spelling", "file": "inv-7", "message": message}],
        bundle_id="3f2a9c01b7e4" + "0" * 52, invoice_ids=["INV-7"])
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    clock = [100.0]
    page = StatusPage(clock=lambda: clock[0])
    target = outbox / "outboxd-status.html"
    with capture_logs() as logs:
        assert page.refresh(journal, settings)
        journal.create("new.xml", "waiting", unattached_ids=["N-1"])
        clock[0] += 5.0
        assert page.refresh(journal, settings)
    shown = Page(target.read_text(encoding="utf-8")).text
    text = shown["left-behind"]
    assert text.startswith("Left in the outbox by a quarantine")
    # Only there: under "Folders without an invoice file" it had another fix ("put its
    # invoice file into the outbox"), which skips the renaming its quarantine waits for.
    assert "lone" not in shown
    assert "inv-7" in text and message in text
    assert "INV-7.xml was quarantined because of it and waits in " \
        "quarantine/2026-12-04/INV-7--3f2a9c01b7e4" in text
    assert "Mend it in the outbox first, then move INV-7.xml" in text
    [line] = [e for e in logs if "look-alike" in e["event"]]
    assert line["log_level"] == "warning" and line["file"] == "inv-7"
    assert line["quarantine"] == "quarantine/2026-12-04/INV-7--3f2a9c01b7e4"
    # A bundle event: it carries the quarantined bundle's id and invoice ids.
    assert (line["invoice_file"], line["bundle_id"], line["invoice_ids"]) == \
        ("INV-7.xml", "3f2a9c01b7e4" + "0" * 52, ["INV-7"])
    assert page.left_names == {"inv-7"}

    (outbox / "inv-7").rename(outbox / "INV-7")
    clock[0] += 5.0
    assert page.refresh(journal, settings)
    assert "left-behind" not in Page(target.read_text(encoding="utf-8")).text
    assert page.left_names == frozenset()


def test_a_clean_stop_writes_the_page_once_more_saying_outboxd_is_stopped(
        journal: Journal, tmp_path: Path) -> None:
    """stopped() writes the page at once, whatever the pace and though nothing changed,
    saying first that outboxd is stopped since HH:MM (UTC, as the page's other times),
    that nothing is sent until it runs again, that nothing is lost and to tell the
    admin; the counts and lists stay. A refresh after it (running again) writes the
    running page, without the notice."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    wall = [datetime(2026, 3, 9, 16, 7, 30, tzinfo=UTC)]
    clock = [100.0]
    page = StatusPage(clock=lambda: clock[0], wall=lambda: wall[0])
    journal.create("wait.xml", "waiting", unattached_ids=["W-1"])
    assert page.refresh(journal, settings)
    target = outbox / "outboxd-status.html"
    assert "is stopped" not in target.read_text()

    wall[0] += timedelta(seconds=1)  # paced: a refresh now would not even look
    assert page.stopped(journal, settings)
    text = target.read_text()
    shown = Page(text)
    assert ("outboxd is stopped since 16:07 UTC (2026-03-09). Nothing is sent until it "
            "runs again. Nothing is lost: what is in the outbox stays there, and what is "
            "listed below waits. Tell the admin.") in shown.text["top"]
    assert "<title>outboxd STOPPED" in text
    assert "Written <!--written-->2026-03-09 16:07:31 UTC by outboxd" in text
    assert "wait.xml" in shown.text["waiting"] and "1 Waiting" in shown.text["top"]
    assert sorted(p.name for p in outbox.iterdir()) == ["outboxd-status.html"]

    later = StatusPage(clock=lambda: 100.0, wall=lambda: wall[0])  # the next start
    assert later.refresh(journal, settings)
    assert "is stopped" not in target.read_text() and "wait.xml" in target.read_text()
    assert page.stopped(journal, settings)
    clock[0] += MIN_INTERVAL  # the same process running on (as a test may): written again
    assert page.refresh(journal, settings) and "is stopped" not in target.read_text()


def test_a_stop_with_another_daemon_on_the_outbox_names_its_page_instead_of_nothing_sent(
        journal: Journal, tmp_path: Path) -> None:
    """Where another outboxd shares the outbox, the stopped page said "Nothing is sent
    until it runs again" while the other went on sending: a clerk was sent to the admin
    for nothing, and the two pages contradicted each other. It now names the other
    daemon's page, says that what is put into the outbox is still sent while that one
    runs, and that what this page lists as under way waits for this one. Not named: a
    page that says it is stopped too, a clerk's file of such a name, a link; with none
    left, the stopped page says nothing is sent, as before."""
    outbox, settings, _, page, target = page_in_a_new_outbox(tmp_path)
    at = datetime(2026, 3, 9, 16, 7, tzinfo=UTC)
    (outbox / "outboxd-status-a.html").write_text(pagehtml.page("", at, due=at))
    (outbox / "outboxd-status-c.html").write_text(pagehtml.page("", at, stopped_at=at))
    (outbox / "outboxd-status-notes.html").write_text("<p>my notes</p>")
    (outbox / "outboxd-status-link.html").symlink_to(outbox / "outboxd-status-a.html")
    journal.create("wait.xml", "waiting", unattached_ids=["W-1"])
    assert page.stopped(journal, settings)
    top = Page(target.read_text()).text["top"]
    assert "Another outboxd shares this outbox and writes outboxd-status-a.html: while it " \
        "runs, what is put into the outbox is still sent — look at that page." in top
    assert "Nothing is sent until it runs again" not in top
    assert "-c.html" not in top and "notes" not in top and "link" not in top
    assert "<title>outboxd STOPPED" in target.read_text()

    (outbox / "outboxd-status-a.html").write_text(pagehtml.page("", at, stopped_at=at))
    assert page.stopped(journal, settings)
    assert "Nothing is sent until it runs again" in target.read_text()


def test_each_daemons_page_names_its_host_and_daemon_running_and_stopped(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two daemons of one host (two state dirs) on one outbox, each with its own page: the
    line under each page's heading names the host and the daemon as its files on the share
    are named (HOST-OWNER: its fingerprint in .outboxd/deciding/), so a clerk or admin can
    tell whose view a page is; the page written at a clean stop too. Before, a page named
    no daemon. No pid: it changes at each start."""
    from daemon.claiming import workname
    from daemon.claiming.claim import copy_tag
    monkeypatch.setattr(workname.socket, "gethostname", lambda: "hosta.example.com")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    wall = lambda: datetime(2026, 3, 9, 16, 7, 30, tzinfo=UTC)  # noqa: E731
    texts = []
    for n in (1, 2):
        settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"},
                            paths={"state_dir": str(tmp_path / f"state{n}")},
                            share={"status_page": f"outboxd-status-{n}.html"})
        writer = StatusPage(clock=lambda: 100.0, wall=wall)
        assert writer.refresh(journal, settings)
        running = (outbox / f"outboxd-status-{n}.html").read_text()
        assert writer.stopped(journal, settings)
        stopped = (outbox / f"outboxd-status-{n}.html").read_text()
        tag = copy_tag(tmp_path / f"state{n}")
        assert tag.startswith("hosta-")
        for text in (running, stopped):
            line = Page(text).text["top"]
            assert f"UTC by outboxd on hosta (daemon {tag});" in line
            assert str(os.getpid()) not in line.split("by outboxd")[1].split(";")[0]
        texts.append(running)
    assert texts[0].split("(daemon ")[1][:13] != texts[1].split("(daemon ")[1][:13]


def test_a_stop_whose_journal_cannot_be_read_still_says_stopped(
        journal: Journal, tmp_path: Path) -> None:
    """The journal lost under the daemon ends its run with a stop: the page still says
    outboxd is stopped, with the lists as it last showed them, and the stop goes on (a
    warning, no exception). Where the page cannot be written, an error in the log."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    page = StatusPage(clock=lambda: 100.0)
    journal.create("wait.xml", "waiting", unattached_ids=["W-1"])
    assert page.refresh(journal, settings)
    journal.close()
    with capture_logs() as logged:
        assert page.stopped(journal, settings)
    text = (outbox / "outboxd-status.html").read_text()
    assert "outboxd is stopped since" in text and "wait.xml" in Page(text).text["waiting"]
    assert [e["log_level"] for e in logged] == ["warning"]

    gone = Settings(outbox={"path": tmp_path / "gone"}, delivery={"url": "http://127.0.0.1:9/"})
    with capture_logs() as logged:
        assert not page.stopped(journal, gone)
    assert [e["event"] for e in logged if e["log_level"] == "error"] == \
        ["cannot write the status page"]
    off = settings.model_copy(update={"share": settings.share.model_copy(
        update={"status_page": ""})})
    (outbox / "outboxd-status.html").unlink()
    assert not page.stopped(journal, off) and list(outbox.iterdir()) == []


def test_a_folder_nothing_is_sent_from_is_listed_without_the_shares_custom_release_file(
        journal: Journal, tmp_path: Path) -> None:
    """Under invoice_patterns = ["*"] and `[share] release_suffix = ".go"`, the page's
    section of folders nothing is sent from names only the invoice file of a folder
    moved back from quarantine/, not its release file Q1.go nor the page's own name."""
    outbox = tmp_path / "outbox"
    box = outbox / "Q1--0123456789ab"
    for name in ("Q1.xml", "reason.json", "Q1.go", "Status.html"):
        write(box / name, b"x")
    settings = Settings(outbox={"path": outbox, "invoice_patterns": ["*"]},
                        share={"release_suffix": ".go", "status_page": "Status.html"},
                        delivery={"url": "http://127.0.0.1:9/"})
    assert StatusPage().refresh(journal, settings)
    page = Page((outbox / "Status.html").read_text(encoding="utf-8"))
    assert "holds the invoice file Q1.xml, but" in page.text["strays"]
    assert "Q1.go" not in page.text["strays"]


def test_a_file_or_folder_of_the_pages_name_outboxd_did_not_write_is_left_alone_and_said(
        journal: Journal, tmp_path: Path) -> None:
    """A clerk's own file named like the page (or a folder of that name) is theirs: never
    replaced, neither by a refresh nor at a stop; the log says once which name, why, and
    the fix. Once it is renamed, the page is written there again."""
    outbox, settings, clock, page, mine = page_in_a_new_outbox(tmp_path)
    mine.write_text("<p>our own notes</p>")
    journal.create("wait.xml", "waiting", unattached_ids=["W-1"])
    with capture_logs() as logs:
        assert not page.refresh(journal, settings)
        clock[0] += MIN_INTERVAL
        journal.create("more.xml", "waiting", unattached_ids=["M-1"])
        assert not page.refresh(journal, settings)
        assert not page.stopped(journal, settings)
    assert mine.read_text() == "<p>our own notes</p>"
    errors = [e for e in logs if e["log_level"] == "error"]
    assert len(errors) == 1, logs
    assert "outboxd-status.html" in errors[0]["error"]
    assert "not a status page outboxd wrote" in errors[0]["error"]
    assert "rename or remove it" in errors[0]["error"]
    assert sorted(p.name for p in outbox.iterdir()) == ["outboxd-status.html"]

    mine.unlink()
    mine.mkdir()
    clock[0] += MIN_INTERVAL
    with capture_logs() as logs:
        assert not page.refresh(journal, settings)
    assert mine.is_dir() and list(mine.iterdir()) == []
    assert any("is a folder" in e.get("error", "") and "rename or remove it" in e["error"]
               for e in logs), logs

    mine.rmdir()
    clock[0] += MIN_INTERVAL
    assert page.refresh(journal, settings)
    assert "wait.xml" in mine.read_text() and "more.xml" in mine.read_text()


def test_a_page_a_person_edited_is_written_again_and_the_log_says_so(
        journal: Journal, tmp_path: Path) -> None:
    """outboxd's page edited by a person (still outboxd's, by its mark) is outboxd's
    view: written again at the next change, with a warning that says it was changed by
    someone else, so the edit is not lost without a word. A page only outboxd wrote is
    rewritten without one."""
    outbox, settings, clock, page, target = page_in_a_new_outbox(tmp_path)
    assert page.refresh(journal, settings)
    journal.create("one.xml", "waiting", unattached_ids=["O-1"])
    clock[0] += MIN_INTERVAL
    with capture_logs() as logs:
        assert page.refresh(journal, settings)
    assert not [e for e in logs if e["log_level"] in ("warning", "error")], logs

    target.write_text(target.read_text().replace("</body>", "<p>called the customer</p></body>"))
    journal.create("two.xml", "waiting", unattached_ids=["T-1"])
    clock[0] += MIN_INTERVAL
    with capture_logs() as logs:
        assert page.refresh(journal, settings)
    assert "two.xml" in target.read_text() and "called the customer" not in target.read_text()
    warned = [e for e in logs if e["log_level"] == "warning"]
    assert len(warned) == 1 and "changed by someone" in warned[0]["event"], logs
    assert warned[0]["file"] == "outboxd-status.html"


@pytest.mark.parametrize(("policy", "then"), [
    ("warn", "2031-05-06 12:05:00 UTC, then sent without them, with a warning"),
    ("quarantine", "2031-05-06 12:05:00 UTC, then quarantined")])
def test_a_waiting_bundles_deadline_says_what_happens_at_it_as_status_does(
        journal: Journal, tmp_path: Path, policy: str, then: str) -> None:
    """The page's Deadline says, by [policy] unattached, whether the invoice is sent
    without its attachments or quarantined then (as `outboxd status` says it): a bare
    time left the clerk to guess whether it goes out."""
    outbox, settings, clock, page, target = page_in_a_new_outbox(tmp_path)
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"},
                        policy={"unattached": policy})
    journal.create("INV-1.xml", "waiting", invoice_ids=["INV-1"], unattached_ids=["INV-1"],
                   deadline="2031-05-06T12:05:00.000Z")
    assert page.refresh(journal, settings)
    [row] = Page(target.read_text("utf-8")).rows["waiting"]
    assert row.split("\t")[3] == then


def a_busy_day(journal: Journal, tmp_path: Path, sent: int, quarantined: int
               ) -> tuple[Settings, datetime]:
    """An outbox and a journal of 2031-05-06 (UTC) holding `sent` sent and `quarantined`
    quarantined rows of that day, their times out of journal order and some the same
    (a bundle retried or sent late), every fifth quarantined one moved back into the
    outbox by hand (some with a row of their own since, some not), one whose folder a
    clerk renamed, rows of the day before and after, and bundles still under way: the
    settings, and the page's "now"."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    day = tmp_path / "quarantine" / "2031-05-06"
    now = datetime(2031, 5, 6, 18, 0, tzinfo=UTC)

    def at(i: int) -> str:  # the same time for threes (the cut splits some), shuffled
        return f"2031-05-06T{(i // 3 * 7) % 17:02}:{(i // 3) % 60:02}:00.000Z"

    # The day's rows in one transaction: a durable commit (an fsync) a row made this
    # set-up wait some 20 s on the disk; the refreshes read the same rows either way.
    with journal.batch():
        for i in range(max(sent, quarantined)):
            if i < sent:
                journal.create(f"ok-{i:05}.xml", "sent", bundle_id=f"{i:064}", since=at(i),
                               invoice_ids=[f"OK-{i}"], receipt_id=f"r-{i}")
            if i < quarantined:
                folder = write(day / f"bad-{i:05}--0123456789ab" / f"bad-{i:05}.xml",
                               b"<x/>").parent
                journal.create(f"bad-{i:05}.xml", "quarantined", archive_dir=str(folder),
                               since=at(i + 3), reasons=[{"code": "empty-file", "file": "a.pdf",
                                                          "message": f"empty {i}"}])
                if i % 5 == 0:  # moved back by hand; every other one seen again since
                    (folder / f"bad-{i:05}.xml").rename(outbox / f"bad-{i:05}.xml")
                    if i % 10 == 0:
                        (outbox / f"bad-{i:05}.xml").unlink()
                        journal.create(f"bad-{i:05}.xml", "waiting", unattached_ids=[f"B-{i}"])
                elif i == 7:
                    folder.rename(folder.with_name("bad-00007 ask Bob"))
    journal.create("late.xml", "sent", bundle_id="e" * 64, since="2031-05-05T23:59:59.999Z")
    journal.create("skew.xml", "sent", bundle_id="f" * 64, since="2031-05-07T00:00:00.000Z")
    journal.create("old.xml", "quarantined", archive_dir=str(tmp_path / "gone"),
                   since="2031-05-05T20:00:00.000Z")
    journal.create("retry.xml", "retrying", attempts=2, last_error="HTTP 503")
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    return settings, now


def test_the_page_of_a_busy_day_is_the_one_every_row_of_the_day_would_give(
        journal: Journal, tmp_path: Path) -> None:
    """Of Sent today and Quarantined today the page now reads only the latest it lists
    and counts the rest in the journal: the same page, byte for byte, as rendering every
    row of the last 24 hours (with those moved back by hand left out) — the latest
    first, ties by journal order, the counts and the "… and N more" lines whole."""
    from daemon.report.pagehtml import page
    from daemon.report.pagerender import FINISHED_SHOWN, render
    from daemon.watching.leftalone import still_quarantined
    settings, now = a_busy_day(journal, tmp_path, FINISHED_SHOWN + 40, FINISHED_SHOWN + 60)
    outbox = settings.outbox.path
    rows = still_quarantined(journal.recent(days=1, at=now), "2031-05-06", outbox)
    every_row = page(render(rows, [], now, settings.share.release_suffix, body_only=True,
                            sidecar_suffix=settings.outbox.sidecar_suffix,
                            unattached=settings.policy.unattached), now, due=now + SHOWN_DUE,
                     **statuspage._whose(settings))
    assert StatusPage(wall=lambda: now).refresh(journal, settings, invoice_files=[])
    written = (outbox / "outboxd-status.html").read_text(encoding="utf-8")
    assert written == every_row
    shown = Page(written)
    assert f"{FINISHED_SHOWN + 40} Sent today" in shown.text["top"].replace("\n", "")
    assert "more quarantined today" in shown.text["quarantined"]


def test_a_refresh_reads_only_the_rows_it_lists_however_busy_the_day(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every refresh read and decoded each of the last 24 hours' rows (5,695 of a day:
    18.7 MiB and about a second at each refresh, every 2 s while anything changes) to list
    the latest FINISHED_SHOWN of two sections. Of thousands sent and quarantined today it
    now builds the rows it lists and the few under way, and counts the rest in SQL (the
    quarantined ones still cost a look at their folder each, read as four columns)."""
    import daemon.journal.finished as finished
    import daemon.journal.rows as rows
    import daemon.journal.views as views
    from daemon.journal.records import rows_of
    from daemon.report.pagerender import FINISHED_SHOWN
    settings, now = a_busy_day(journal, tmp_path, 3000, 1000)
    built = [0]

    def counting(rs: Any) -> Any:
        built[0] += len(rs)
        return rows_of(rs)
    # Every module that builds rows, by the name each imported (counting `row_of`, which
    # the page's views never call, counted nothing: the test could not fail).
    for module in (finished, rows, views):
        monkeypatch.setattr(module, "rows_of", counting)
    assert StatusPage(wall=lambda: now).refresh(journal, settings, invoice_files=[])
    under_way = 1 + 100  # retry.xml, and the quarantined ones seen again, waiting
    assert 0 < built[0] <= 2 * FINISHED_SHOWN + under_way
    assert "3000 Sent today" in Page(
        (settings.outbox.path / "outboxd-status.html").read_text()).text["top"].replace("\n", "")


def test_a_refresh_looks_at_a_bounded_few_of_todays_quarantined_folders(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each refresh looked at the folder of every bundle quarantined today (an lstat each,
    a round trip each on a share: 3,000 a day cost 3,000 at every page write). Now the
    folders of the ones listed are looked at at each refresh, the others once and then
    RELOOKED a refresh in turn; one of the oldest moved back by hand still leaves the
    count within a round of refreshes, and the page is then the one every row gives."""
    from daemon.report.pagehtml import page as html_page
    from daemon.report.pagerender import FINISHED_SHOWN, render
    from daemon.report.sidecarheld import QuarantinedSidecars
    from daemon.watching.leftalone import RELOOKED, still_quarantined
    settings, now = a_busy_day(journal, tmp_path, 0, 3000)
    outbox, quarantine = settings.outbox.path, str(tmp_path / "quarantine")
    looks = [0]
    real = os.lstat

    def counting(path: Any, *a: Any, **kw: Any) -> Any:
        looks[0] += str(path).startswith(quarantine)
        return real(path, *a, **kw)

    monkeypatch.setattr(os, "lstat", counting)
    clock = [100.0]
    status = StatusPage(clock=lambda: clock[0], wall=lambda: now)

    def refresh() -> int:
        looks[0] = 0
        clock[0] += PAGE_PACE_MAX
        status.refresh(journal, settings, invoice_files=[])
        return looks[0]

    assert refresh() >= 3000  # the first: each folder once
    # The listed ones (a fifth of those looked at were moved back) and RELOOKED more;
    # and of the moved-back ones waiting again, whether their quarantine folder holds
    # their sidecar: a bounded few in turn (sidecarheld.py).
    bound = FINISHED_SHOWN * 5 // 4 + 1 + RELOOKED + QuarantinedSidecars.RELOOKED
    assert refresh() <= bound
    oldest = tmp_path / "quarantine" / "2031-05-06" / "bad-00001--0123456789ab"
    (oldest / "bad-00001.xml").rename(outbox / "bad-00001.xml")  # by hand, no event
    for _ in range(3000 // RELOOKED + 1):
        assert refresh() <= bound
    monkeypatch.setattr(os, "lstat", real)
    rows = still_quarantined(journal.recent(days=1, at=now), "2031-05-06", outbox)
    every_row = html_page(render(rows, [], now, settings.share.release_suffix, body_only=True,
                                 sidecar_suffix=settings.outbox.sidecar_suffix,
                                 unattached=settings.policy.unattached), now,
                         due=now + SHOWN_DUE, **statuspage._whose(settings))
    assert (outbox / "outboxd-status.html").read_text(encoding="utf-8") == every_row


def test_a_work_folder_another_host_left_is_listed_on_the_page_with_what_to_do(
        journal: Journal, tmp_path: Path) -> None:
    """A bundle in a work folder another host's outboxd claimed (an outbox moved here
    without its journal) is never sent from here: the page lists it in a section of its
    own, naming the host and what the admin does, for the clerk to pass on; once the
    folder is gone, so is the section."""
    outbox, settings, clock, page, target = page_in_a_new_outbox(tmp_path)
    work = outbox / ".outboxd" / "processing" / "INV-8--0123456789ab--oldbox-41-c0ffee"
    write(work / "receipt.json", b"{}")
    assert page.refresh(journal, settings)
    shown = Page(target.read_text(encoding="utf-8"))
    # Since when: one under way is seconds old, one an outbox moved here left is old.
    since = readable(foreign_work(outbox / ".outboxd" / "processing", outbox)[0].since)
    assert shown.rows["foreign"] == [
        f"INV-8--0123456789ab--oldbox-41-c0ffee\t{since}\twork folder of host oldbox, not ours: "
        "outboxd on oldbox took INV-8 for sending and has not finished it. If outboxd on "
        "oldbox still runs on this outbox, it finishes it (its own status lists it): "
        "nothing to do. If not (the outbox moved here from oldbox), it is never sent from "
        "here — it was delivered (it holds receipt.json): move the folder into sent/ to "
        "keep its receipt with the others; do not put its files back, they would be sent "
        "again"]
    assert "tell the admin of one that stays" in shown.text["foreign"]
    (work / "receipt.json").unlink()
    work.rmdir()
    clock[0] += MIN_INTERVAL
    assert page.refresh(journal, settings)
    assert "foreign" not in Page(target.read_text(encoding="utf-8")).text


def test_other_daemons_earlier_quarantines_are_counted_not_listed(
        journal: Journal, tmp_path: Path) -> None:
    """Of other daemons' entries the loop keeps only the latest the page lists
    (quarantinenews.py) and counts the earlier: the page counts them all under
    Quarantined today and says how many more there are, as for its own."""
    from daemon.archiving.quarantinenews import Elsewhere
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    writer = StatusPage(wall=lambda: datetime(2026, 12, 4, 11, tzinfo=UTC))
    writer.elsewhere = [Elsewhere(f"INV-{n}--{n:012x}", "2026-12-04T10:00:00.000Z", "",
                                  f"INV-{n}.xml", ("a.pdf: not a PDF",)) for n in range(2)]
    writer.elsewhere_more = 250
    writer.elsewhere_day = "2026-12-04"
    assert writer.refresh(journal, settings)
    page = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8"))
    assert "252 Quarantined today" in page.text["top"]
    assert "INV-1--000000000001" in page.text["quarantined"]
    assert "250 more quarantined today" in page.text["quarantined"]


def test_another_daemons_quarantine_of_a_bundle_we_sent_is_listed_ours_in_flight_not(
        journal: Journal, tmp_path: Path) -> None:
    """A bundle this daemon sent, dropped again and quarantined as a `duplicate` by another
    daemon on the outbox (the commonest way two daemons meet one bundle id), is listed and
    counted under "Quarantined today" (it was hidden: any row of ours with that bundle id
    counted as ours). One of ours on its way into quarantine/ (its folder there before its
    row says so) is still not listed twice, and neither is an entry whose folder our
    quarantined row names."""
    from daemon.archiving.quarantinenews import Elsewhere
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    writer = StatusPage(wall=lambda: datetime(2026, 12, 4, 11, tzinfo=UTC))
    sent, moving, filed = "a" * 64, "b" * 64, "c" * 64
    today = settings.quarantine_dir / "2026-12-04"
    journal.create("INV-1.xml", "sent", bundle_id=sent, invoice_ids=["INV-1"],
                   since="2026-12-04T09:00:00.000Z")
    journal.create("INV-2.xml", "quarantining", bundle_id=moving, invoice_ids=["INV-2"],
                   since="2026-12-04T09:59:00.000Z")
    journal.create("INV-3.xml", "quarantined", bundle_id=filed, invoice_ids=["INV-3"],
                   since="2026-12-04T10:00:00.000Z",
                   archive_dir=str(today / f"INV-3--{filed[:12]}"))
    writer.elsewhere = [Elsewhere(f"INV-{n}--{bid[:12]}", "2026-12-04T10:00:00.000Z", bid,
                                  f"INV-{n}.xml", (f"INV-{n}.xml: duplicate",))
                        for n, bid in ((1, sent), (2, moving), (3, filed))]
    writer.elsewhere_day = "2026-12-04"
    assert writer.refresh(journal, settings)
    page = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8"))
    assert "INV-1--aaaaaaaaaaaa" in page.text["quarantined"]
    assert "quarantined by another outboxd" in page.text["quarantined"]
    assert "INV-1.xml" in page.text["sent"]
    assert page.text["quarantined"].count("INV-3--cccccccccccc") == 1
    assert "2 Quarantined today" in page.text["top"]  # INV-1 (another's) and INV-3 (ours)


def test_other_daemons_quarantines_of_yesterday_leave_the_page_at_midnight_as_ours_do(
        journal: Journal, tmp_path: Path) -> None:
    """The page's "today" is the UTC day of its wall clock, for its own quarantined rows
    and for the other daemons' entries the loop last listed (of that day's folder). The
    page written after midnight lists neither and counts neither; before, the other
    daemons' stayed listed and counted until the next rescan looked at the new day."""
    from daemon.archiving.quarantinenews import Elsewhere
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    walls = [datetime(2026, 12, 4, 23, 59, tzinfo=UTC)]
    clock = [0.0]
    writer = StatusPage(clock=lambda: clock[0], wall=lambda: walls[0])
    ours, theirs = "a" * 64, "b" * 64
    journal.create("INV-1.xml", "quarantined", bundle_id=ours, invoice_ids=["INV-1"],
                   since="2026-12-04T10:00:00.000Z",
                   archive_dir=str(settings.quarantine_dir / "2026-12-04" / "INV-1--aaaa"))
    writer.elsewhere = [Elsewhere("INV-2--bbbbbbbbbbbb", "2026-12-04T10:00:00.000Z", theirs,
                                  "INV-2.xml", ("a.pdf: not a PDF",))]
    writer.elsewhere_more, writer.elsewhere_day = 3, "2026-12-04"
    assert writer.refresh(journal, settings)
    page = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8"))
    assert "INV-2--bbbbbbbbbbbb" in page.text["quarantined"]
    assert "5 Quarantined today" in page.text["top"]
    walls[0] = datetime(2026, 12, 5, 0, 0, 1, tzinfo=UTC)  # the MIDNIGHT timer's refresh
    clock[0] += MIN_INTERVAL
    assert writer.refresh(journal, settings)
    page = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8"))
    assert "INV-2--bbbbbbbbbbbb" not in page.text.get("quarantined", "")
    assert "INV-1.xml" not in page.text.get("quarantined", "")
    assert "0 Quarantined today" in page.text["top"]


def test_ours_and_other_daemons_quarantines_are_listed_latest_first_and_cut_together(
        journal: Journal, tmp_path: Path) -> None:
    """Under "Quarantined today" this daemon's and other daemons' entries are one list,
    the latest first, whoever filed it; past FINISHED_SHOWN together, the earliest are
    left out and counted in "… more quarantined today"."""
    from daemon.archiving.quarantinenews import Elsewhere
    from daemon.report.pagerender import FINISHED_SHOWN
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    today = settings.quarantine_dir / "2026-12-04"
    for n in range(FINISHED_SHOWN - 1):
        journal.create(f"OURS-{n}.xml", "quarantined", bundle_id=f"{n:064x}",
                       since=f"2026-12-04T10:{n // 60:02d}:{n % 60:02d}.000Z",
                       archive_dir=str(today / f"OURS-{n}--{n:012x}"))
    writer = StatusPage(wall=lambda: datetime(2026, 12, 4, 12, tzinfo=UTC))
    writer.elsewhere = [Elsewhere(f"{name}--{'b' * 12}", since, "", f"{name}.xml", ())
                        for name, since in (("LATEST", "2026-12-04T11:30:00.000Z"),
                                            ("EARLIEST", "2026-12-04T08:00:00.000Z"))]
    writer.elsewhere_day = "2026-12-04"
    assert writer.refresh(journal, settings)
    listed = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8")
                  ).text["quarantined"]
    assert listed.index("LATEST--") < listed.index(f"OURS-{FINISHED_SHOWN - 2}--")
    assert "EARLIEST--" not in listed and "1 more quarantined today" in listed


def test_a_folder_shown_as_a_strays_name_is_still_listed_as_a_folder_without_an_invoice(
        journal: Journal, tmp_path: Path) -> None:
    """A folder named A-1 + U+202E (no invoice file in it) and a folder named with the
    six characters `\\u202e` typed that holds an invoice file are both shown as
    `A-1\\u202e/`, but are two folders: the page lists the first among the folders
    without an invoice file and the second among those nothing is sent from. Before, the
    strays were known by their names as shown, and the first was taken for the second
    and listed nowhere."""
    outbox, settings, _, page, path = page_in_a_new_outbox(tmp_path)
    write(outbox / "A-1\u202e" / "a.pdf", b"%PDF-1.4")
    write(outbox / "A-1\\u202e" / "Q1.xml", b"<x/>")
    (outbox / "A-1\\u202e" / "Q1").mkdir()
    assert page.refresh(journal, settings)
    shown = Page(path.read_text(encoding="utf-8"))
    assert [r.split("\t", 1)[0] for r in shown.rows["lone"]] == ["A-1\\u202e/"]
    assert "holds the invoice file Q1.xml, but" in shown.text["strays"]


def test_two_files_left_alone_shown_alike_are_two_rows_each_with_its_why(
        journal: Journal, tmp_path: Path) -> None:
    """A symbolic link named X\\u202e.xml (the six characters typed) and a FIFO named
    X + U+202E + .xml are both shown as X\\u202e.xml: the page lists two rows, each with
    its own why, and after the link's event (removed) the FIFO's row alone. Keyed as
    shown, the page had one row (the FIFO's why) and the link's event took it away."""
    from daemon.watching.leftalone import LeftAlone
    from daemon.watching.scan import list_outbox, look
    outbox, settings, clock, page, path = page_in_a_new_outbox(tmp_path)
    (outbox / "X\\u202e.xml").symlink_to(tmp_path / "elsewhere.xml")
    os.mkfifo(outbox / "X\u202e.xml")
    listing = list_outbox(settings.outbox, settings.share)
    left = LeftAlone(structlog.get_logger())
    left.seen(listing, settings.outbox.invoice_patterns)
    assert page.refresh(journal, settings, listing.candidates, left.refused)
    rows = sorted(Page(path.read_text(encoding="utf-8")).rows["refused"])
    assert [r.split("\t")[0] for r in rows] == ["X\\u202e.xml", "X\\u202e.xml"]
    assert "is a FIFO" in rows[0] and "is a symbolic link" in rows[1]
    (outbox / "X\\u202e.xml").unlink()
    assert left.seen(look(settings.outbox, "X\\u202e.xml", settings.share),
                     settings.outbox.invoice_patterns, "X\\u202e.xml")
    clock[0] += 5.0
    assert page.refresh(journal, settings, listing.candidates, left.refused)
    [row] = Page(path.read_text(encoding="utf-8")).rows["refused"]
    assert row.startswith("X\\u202e.xml\t") and "is a FIFO" in row


def test_a_file_in_a_quarantined_invoice_files_sidecar_place_is_told_what_it_is(
        journal: Journal, tmp_path: Path) -> None:
    """INV-SY1.xml was quarantined (`not-a-folder`) for the file INV-SY1 in its sidecar's
    place, and INV-SY2.xml for a link there; both stay in the outbox. The page listed
    each as "not an invoice file … an attachment goes into the folder of its invoice
    file" — advice that reads as "put it into itself". It says what it is: named like
    the folder of attachments of the quarantined invoice file (and where that waits),
    which must be a real folder — move it out of the outbox (a file may hold data), and
    make a folder when the invoice file goes back. Told from the page's own rows:
    another file keeps its words."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    day = tmp_path / "quarantine" / "2026-12-04"
    for stem, folder in (("INV-SY1", "aaaaaaaaaaaa"), ("INV-SY2", "bbbbbbbbbbbb")):
        f = write(day / f"{stem}--{folder}" / f"{stem}.xml", b"<Invoice/>")
        journal.create(f.name, "quarantined", archive_dir=str(f.parent), reasons=[
            {"code": "not-a-folder", "file": stem, "message": "the sidecar is not a folder"}])
    write(outbox / "INV-SY1", b"an attachment")
    (outbox / "INV-SY2").symlink_to(tmp_path)
    write(outbox / "notes.txt", b"")
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    other = not_an_invoice(settings.outbox.invoice_patterns)
    assert as_written(journal).refresh(journal, settings, refused=dict.fromkeys(
        ["INV-SY1", "INV-SY2", "notes.txt"], other))
    rows = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8")).rows["refused"]
    said = dict(r.split("\t", 1) for r in rows)
    assert said["INV-SY1"] == (
        "named like the folder of attachments of INV-SY1.xml, which was quarantined (in "
        "quarantine/2026-12-04/INV-SY1--aaaaaaaaaaaa), but it is a file: a folder of "
        "attachments must be a real folder (outboxd never follows a link), so it is never "
        "sent — move it out of the outbox; when INV-SY1.xml goes back into the outbox with "
        "attachments, make a real folder INV-SY1 holding them in its place")
    assert said["INV-SY2"].startswith("named like the folder of attachments of INV-SY2.xml, "
                                      "which was quarantined (in quarantine/2026-12-04/"
                                      "INV-SY2--bbbbbbbbbbbb), but it is a symbolic link")
    assert "an attachment goes into the folder" not in said["INV-SY1"] + said["INV-SY2"]
    assert said["notes.txt"] == other


def test_a_file_named_like_an_invoice_file_quarantined_this_week_is_told_where_it_went(
        journal: Journal, tmp_path: Path) -> None:
    """The page told a root file named like a quarantined invoice file where that went only
    from its own rows — today's latest 100 quarantined — while `outboxd status` tells it
    for the week it lists. INV-Q3.xml, quarantined three days ago: INV-Q3 (in its
    sidecar's place) and INV-Q3.tif are told its quarantine folder, as status tells them.
    INV-Q4.xml, quarantined then sent: its INV-Q4.tif keeps the usual words, as does
    INV-Q5.tif, whose invoice file was quarantined nine days ago (past the week)."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    day = tmp_path / "quarantine" / "2026-12-04"
    ago = {"INV-Q3": 3, "INV-Q4": 3, "INV-Q5": 9}
    for stem, days in ago.items():
        f = write(day / f"{stem}--{stem[-1] * 12}" / f"{stem}.xml", b"<Invoice/>")
        journal.create(f.name, "quarantined", since=iso_in(-days * 86400.0),
                       archive_dir=str(f.parent), reasons=[{
                           "code": "not-a-folder", "file": stem,
                           "message": "the sidecar is not a folder"}])
    journal.create("INV-Q4.xml", "sent", since=iso_in(-86400.0),
                   archive_dir=str(tmp_path / "sent" / "x"))
    names = ["INV-Q3", "INV-Q3.tif", "INV-Q4.tif", "INV-Q5.tif"]
    for name in names:
        write(outbox / name, b"x")
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"})
    other = not_an_invoice(settings.outbox.invoice_patterns)
    assert StatusPage().refresh(journal, settings, refused=dict.fromkeys(names, other))
    rows = Page((outbox / "outboxd-status.html").read_text(encoding="utf-8")).rows["refused"]
    said = dict(r.split("\t", 1) for r in rows)
    where = "quarantine/2026-12-04/INV-Q3--333333333333"
    assert said["INV-Q3"].startswith("named like the folder of attachments of INV-Q3.xml, "
                                     f"which was quarantined (in {where}), but it is a file")
    assert f"INV-Q3.xml, the invoice file named like it, was quarantined (in {where})" in \
        said["INV-Q3.tif"]
    assert said["INV-Q4.tif"] == other and said["INV-Q5.tif"] == other


def test_with_the_page_off_a_start_removes_a_page_temp_a_killed_write_left(
        journal: Journal, tmp_path: Path) -> None:
    """A page write killed between its temp file and its rename, then the page turned off
    ([share] status_page = "") across the restart: no refresh ever sweeps again, so the
    temp stayed in the outbox for good. The start's sweep removes the temps of the names
    outboxd keeps for its pages (the default's, outboxd-status….html); a clerk's file of
    another name, or named like the page without a temp's tail, stays."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    left = [outbox / ".outboxd-status.html.tmp-0123456789ab",
            outbox / ".outboxd-status-host2.html.tmp-abcdef012345"]
    for temp in left:
        temp.write_text("half a page")
    clerks = [".status.html.tmp-0123456789ab", ".outboxd-status.html.tmp-notes",
              "outboxd-status.html.tmp-0123456789ab", ".outboxd-status.txt.tmp-0123456789ab"]
    for name in clerks:
        (outbox / name).write_text("a clerk's")
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"},
                        share={"status_page": ""})
    page = StatusPage(clock=lambda: 100.0)
    page.swept(settings, {e.name: e.stat(follow_symlinks=False) for e in os.scandir(outbox)})
    assert sorted(p.name for p in outbox.iterdir()) == sorted(clerks)
    assert not page.refresh(journal, settings)


def test_with_the_page_off_a_start_leaves_another_users_page_temp(
        journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another host's daemon on the share, under its own account, writes its page
    (outboxd-status-HOST2.html) through a temp at the instant a daemon with the page off
    starts. That temp is not this daemon's user's to open (0640, another user and group:
    stood for here, the tests running as root), so no lock could tell it live, and the
    sweep removed it unlocked, failing the other daemon's write; a killed write of its
    own is its own start's to sweep. This daemon's own leftover still goes."""
    import daemon.fs.temps as temps
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    theirs = outbox / ".outboxd-status-host2.html.tmp-abcdef012345"
    theirs.write_text("half of host2's page")
    os.chown(theirs, os.geteuid() + 4242, os.getegid() + 4242)
    own = outbox / ".outboxd-status.html.tmp-0123456789ab"
    own.write_text("half a page")
    real = temps._open_to_lock

    def as_the_daemons_user(path: str) -> int | None:
        return None if os.lstat(path).st_uid != os.geteuid() else real(path)
    monkeypatch.setattr(temps, "_open_to_lock", as_the_daemons_user)
    settings = Settings(outbox={"path": outbox}, delivery={"url": "http://127.0.0.1:9/"},
                        share={"status_page": ""})
    StatusPage(clock=lambda: 100.0).swept(
        settings, {e.name: e.stat(follow_symlinks=False) for e in os.scandir(outbox)})
    assert [p.name for p in outbox.iterdir()] == [theirs.name]


@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_the_sidecar_of_a_refused_invoice_file_points_at_it_not_waiting_for_it(
        journal: Journal, tmp_path: Path, kind: str) -> None:
    """INV-1.xml is a symbolic link (or a FIFO), which outboxd leaves alone, and INV-1/
    holds its attachments: the page's row for INV-1/ among the folders without an
    invoice file says it is the sidecar of INV-1.xml, which is left alone, and points at
    that list (where INV-1.xml is, with why), as `outboxd check` says. It told the clerk
    to put its invoice file into the outbox — a file that is there."""
    from daemon.watching.leftalone import LeftAlone
    from daemon.watching.lonefolders import lone_in
    from daemon.watching.scan import list_outbox
    outbox, settings, _, page, path = page_in_a_new_outbox(tmp_path)
    write(outbox / "INV-1" / "a.pdf", b"%PDF-1.4")
    write(outbox / "INV-2" / "b.pdf", b"%PDF-1.4")  # a sidecar waiting: told as before
    if kind == "link":
        (outbox / "INV-1.xml").symlink_to(tmp_path / "elsewhere.xml")
    else:
        os.mkfifo(outbox / "INV-1.xml")
    listing = list_outbox(settings.outbox, settings.share)
    left = LeftAlone(structlog.get_logger())
    left.seen(listing, settings.outbox.invoice_patterns)
    lone = lone_in(listing.stats, {c.sidecar.name for c in listing.candidates.values()})
    assert page.refresh(journal, settings, listing.candidates, left.refused, lone)
    shown = Page(path.read_text(encoding="utf-8"))
    rows = {r.split("\t", 1)[0]: r for r in shown.rows["lone"]}
    assert set(rows) == {"INV-1/", "INV-2/"}
    assert ("the sidecar of INV-1.xml, which outboxd leaves alone (listed under \"Files "
            "in the outbox that are left alone\"") in rows["INV-1/"]
    assert "put its invoice file" not in rows["INV-1/"]
    assert "put its invoice file" in rows["INV-2/"]
    [refused] = shown.rows["refused"]
    assert refused.startswith("INV-1.xml\t")
