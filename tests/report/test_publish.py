"""What the running daemon publishes of itself (STATUS=, the page), and when."""

from __future__ import annotations

import socket
import sqlite3
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from test_journal import set_since  # noqa: E402

from daemon.configuration.config import Settings  # noqa: E402
from daemon.journal import Journal  # noqa: E402
from daemon.loop.timers import Timers  # noqa: E402
from daemon.report import statuspage  # noqa: E402
from daemon.report.publish import MIDNIGHT, PAGE, STATUS, Publisher  # noqa: E402
from daemon.report.statuspage import HEARTBEAT, MIN_INTERVAL, PAGE_PACE  # noqa: E402


def _asker(publisher: Publisher, journal: Journal, settings: Settings) -> Callable[[], bool]:
    """Whether the publisher asks for the page now: scheduled and fired once (the page
    and STATUS=, not the day's end), at one fixed time."""
    timers = Timers()

    def page_asked() -> bool:
        publisher.schedule(journal, timers, 1000.0)
        # Not the page written again only to show it is not old (HEARTBEAT).
        due = (at := timers.due_at(PAGE)) is not None and at < 1000.0 + HEARTBEAT
        for key in timers.pop_due(1100.0):
            publisher.fire(key, journal, settings, {}, 1000.0)
        return due
    return page_asked


def test_the_end_of_the_utc_day_publishes_again_with_no_change_of_the_journal(
        tmp_path: Path) -> None:
    """At 23:59:58 UTC an idle daemon (nothing changed) has only the midnight timer, due
    3 s later on the loop's clock (at 1000, whatever the host's clock says); when it
    fires, STATUS= and the page are refreshed: "sent today" starts again at 0."""
    journal = Journal(tmp_path / "journal.sqlite3")
    publisher = Publisher(clock=lambda: 1000.0,
                          wall=lambda: datetime(2031, 5, 6, 23, 59, 58, tzinfo=UTC))
    timers = Timers()
    publisher.schedule(journal, timers, 1000.0)  # the first turn: both views once
    for key in timers.pop_due(1000.0):
        publisher.fire(key, journal, _settings(tmp_path), {}, 1000.0)
    publisher.schedule(journal, timers, 1000.0)
    # Idle: the page only to be written again to show it is not old.
    assert timers.due_at(STATUS) is None and timers.due_at(PAGE) == 1000.0 + HEARTBEAT
    assert timers.due_at(MIDNIGHT) == 1003.0
    assert timers.pop_due(1003.0) == [MIDNIGHT]
    publisher.fire(MIDNIGHT, journal, _settings(tmp_path), {}, 1003.0)
    publisher.schedule(journal, timers, 1003.0)
    assert timers.due_at(STATUS) is not None and timers.due_at(PAGE) is not None
    assert timers.due_at(MIDNIGHT) is not None


def _noted(monkeypatch: pytest.MonkeyPatch) -> tuple[Publisher, list[str]]:
    """A publisher at monotonic 1000 on a fixed day, and the notify lines it sends."""
    sent: list[str] = []
    monkeypatch.setattr("daemon.report.publish.notify", sent.append)
    return Publisher(clock=lambda: 1000.0,
                     wall=lambda: datetime(2031, 5, 6, 12, 0, 0, tzinfo=UTC)), sent


def _settings(tmp_path: Path) -> Settings:
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    return Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(tmp_path / "s")},
                    delivery={"url": "http://127.0.0.1:9/x"})


def test_sent_today_is_the_day_of_the_publishers_clock_on_both_views(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle sent (delivered) at 23:59:59.9 UTC is "1 sent today" on STATUS= and under
    "Sent today" on the page until midnight by the daemon's clock, and "0 sent today" and
    gone from the page one second after it — whatever day the host's clock says (before,
    STATUS= counted by the host's clock and the page by its own; then the page took its
    rows of the last 24 h by the host's clock and its "today" by the daemon's, so a day
    other than the host's showed "0 sent today" on the page beside "1" on STATUS=). The
    day is long past, as it is for a test run on any later date."""
    journal = Journal(tmp_path / "journal.sqlite3")
    row = journal.create("INV-1.xml", "sent", bundle_id="b" * 64, invoice_ids=["INV-1"],
                         receipt_id="r-1")
    set_since(journal.path, row, datetime(2001, 5, 6, 23, 59, 59, 900000, tzinfo=UTC))
    sent: list[str] = []
    monkeypatch.setattr("daemon.report.publish.notify", sent.append)
    page = _settings(tmp_path).outbox.path / "outboxd-status.html"
    for wall, count in ((datetime(2001, 5, 6, 23, 59, 59, 950000, tzinfo=UTC), 1),
                        (datetime(2001, 5, 7, 0, 0, 1, tzinfo=UTC), 0)):
        publisher = Publisher(clock=lambda: 1000.0, wall=lambda wall=wall: wall)
        publisher.fire(STATUS, journal, _settings(tmp_path), {}, 1000.0)
        publisher.fire(PAGE, journal, _settings(tmp_path), {}, 1000.0)
        assert sent[-1] == f"STATUS={count} sent today"
        text = page.read_text("utf-8")
        assert f"<b>{count}</b> Sent today</a></li>" in text
        assert ("INV-1.xml" in text) == bool(count)


def test_an_event_or_a_listing_without_a_look_alike_shown_as_left_behind_asks_for_the_page(
        tmp_path: Path) -> None:
    """The page shows inv-7/, left in the outbox by INV-7.xml's quarantine. Its rename
    changes no journal row, so the page would keep showing it: an event on its name,
    or a full listing without it (polling, lost events), asks for the page again;
    events on other names and listings with it do not."""
    settings = _settings(tmp_path)
    (settings.outbox.path / "inv-7").mkdir()
    folder = settings.quarantine_dir / "2026-12-04" / "INV-7--3f2a9c01b7e4"
    folder.mkdir(parents=True)
    (folder / "INV-7.xml").write_bytes(b"<Invoice/>")
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.create("INV-7.xml", "quarantined", archive_dir=str(folder), reasons=[
        {"code": "sidecar-spelling", "file": "inv-7", "message": "rename it to INV-7"}])
    publisher = Publisher(clock=lambda: 1000.0)
    page_asked = _asker(publisher, journal, settings)

    assert page_asked() and publisher.page.left_names == {"inv-7"}
    assert not page_asked()  # idle
    publisher.touched(["INV-8.xml", "Thumbs.db"])
    publisher.listed({"inv-7", "INV-8.xml"})
    assert not page_asked()
    publisher.touched(["inv-7"])
    assert page_asked()
    publisher.listed({"INV-7", "INV-8.xml"})
    assert page_asked()
    journal.close()


def test_a_listing_whose_errors_files_of_no_bundle_changed_asks_for_the_page(
        tmp_path: Path) -> None:
    """The page lists a NAME.errors.txt beside no invoice file, which changes no journal
    row as it comes or goes: a full listing whose such files differ from the last one's
    (one came or went without an event the loop saw) asks for the page again; a listing
    with the same ones does not."""
    settings = _settings(tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")
    publisher = Publisher(clock=lambda: 1000.0)
    page_asked = _asker(publisher, journal, settings)

    publisher.stray_errors(frozenset({"NOTES.errors.txt"}))  # the start's listing
    assert page_asked()
    assert not page_asked()  # idle
    publisher.stray_errors(frozenset({"NOTES.errors.txt"}))
    assert not page_asked()
    publisher.stray_errors(frozenset({"NOTES.errors.txt", "MINE.errors.txt"}))
    assert page_asked()
    publisher.stray_errors(frozenset({"MINE.errors.txt"}))
    assert page_asked()
    journal.close()


def test_status_says_why_nothing_moves_while_the_journal_cannot_be_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full disk under state_dir changes no count (nothing can be recorded), so the
    counts alone read as an idle daemon in `systemctl status`: STATUS= is sent again
    when writes begin to fail and leads with why, and goes back to the counts alone
    once a write succeeds."""
    journal = Journal(tmp_path / "journal.sqlite3")
    publisher, sent = _noted(monkeypatch)
    timers = Timers()

    def turn(now: float) -> None:
        publisher.schedule(journal, timers, now)
        for key in timers.pop_due(now):
            publisher.fire(key, journal, _settings(tmp_path), {}, now)

    turn(1000.0)
    assert sent == ["STATUS=0 sent today"]
    journal._failed(sqlite3.OperationalError("database or disk is full"))
    turn(1002.0)
    assert sent[-1].startswith("STATUS=journal cannot be written, nothing moves: journal "
                               "write failed: database or disk is full")
    assert sent[-1].endswith(f"({tmp_path}); 0 sent today")
    journal._failing_until = 0.0  # its back-off is over: the next write is tried
    journal.create("INV-1.xml", "settling")
    turn(1004.0)
    assert sent[-1] == "STATUS=1 settling, 0 sent today"


def test_the_page_says_why_nothing_moves_while_the_journal_cannot_be_written(
        tmp_path: Path) -> None:
    """A full disk under state_dir changes no row, so the page would go on showing its
    lists (a bundle waiting, none of the files dropped since) as if outboxd ignored them:
    the page is written again when writes begin to fail, says first in a clerk's words
    that nothing is sent, that nothing is lost and to tell the admin — never the admin's
    error (a path on the server, [paths] state_dir) — and is written again without it
    once a write succeeds."""
    settings = _settings(tmp_path)
    page = settings.outbox.path / "outboxd-status.html"
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.create("INV-1.xml", "waiting", invoice_ids=["INV-1"], unattached_ids=["INV-1"])
    clock = [1000.0]
    publisher = Publisher(clock=lambda: clock[0])
    page_asked = _asker(publisher, journal, settings)
    assert page_asked() and "Nothing is being sent" not in page.read_text("utf-8")
    assert not page_asked()  # idle
    journal._failed(sqlite3.OperationalError("database or disk is full"))
    clock[0] += 3.0  # past the page's pace
    assert page_asked()
    text = page.read_text("utf-8")
    assert "Nothing is being sent at the moment: outboxd cannot write its records" in text
    assert "Nothing is lost" in text and "Tell the admin" in text
    assert "state_dir" not in text and str(tmp_path) not in text and "INV-1.xml" in text
    assert not page_asked()  # said once, not at each turn
    journal._failing_until = 0.0  # its back-off is over: the next write is tried
    journal.create("INV-2.xml", "settling")
    clock[0] += 3.0
    assert page_asked() and "Nothing is being sent" not in page.read_text("utf-8")
    journal.close()


def test_status_says_since_when_the_outbox_is_not_reachable_and_goes_back_when_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An outbox away (a share unmounted) changes no count, so `systemctl status` read
    as an idle daemon: STATUS= is sent again at once and begins with since when (UTC) the
    outbox is not reachable, and goes back to the counts alone once it is there again."""
    journal = Journal(tmp_path / "journal.sqlite3")
    wall = [datetime(2031, 5, 6, 12, 0, 0, tzinfo=UTC)]
    publisher = Publisher(clock=lambda: 1000.0, wall=lambda: wall[0])
    timers = Timers()
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        sock.settimeout(5.0)
        monkeypatch.setenv("NOTIFY_SOCKET", str(path))

        def turn(now: float) -> None:
            publisher.schedule(journal, timers, now)
            for key in timers.pop_due(now):
                publisher.fire(key, journal, _settings(tmp_path), {}, now)

        turn(1000.0)
        assert sock.recv(4096) == b"STATUS=0 sent today"
        wall[0] = datetime(2031, 5, 6, 12, 34, 56, tzinfo=UTC)
        publisher.outbox_away(True)
        wall[0] = datetime(2031, 5, 6, 12, 35, 30, tzinfo=UTC)
        turn(1002.0)
        assert sock.recv(4096) == b"STATUS=outbox not reachable since 12:34:56 UTC; " \
            b"0 sent today"
        publisher.outbox_away(True)  # a later look that fails too: the same outage
        publisher.outbox_away(False)
        turn(1004.0)
        assert sock.recv(4096) == b"STATUS=0 sent today"
    journal.close()


def test_an_event_on_a_name_with_a_right_to_left_override_asks_for_the_page(
        tmp_path: Path) -> None:
    """The page shows its names with invisible characters escaped (U+202E as \\u202e),
    while events name them as on disk: an event on a look-alike left by a quarantine
    ("inv-7" + U+202E, beside "INV-7" + U+202E + ".xml") or on a folder nothing is sent
    from ("Batch" + U+202E, holding an invoice file and its sidecar) still asks for the
    page again; an event on another name does not."""
    settings = _settings(tmp_path)
    outbox = settings.outbox.path
    (outbox / "inv-7\u202e").mkdir()
    folder = settings.quarantine_dir / "2026-12-04" / "INV-7--3f2a9c01b7e4"
    folder.mkdir(parents=True)
    (folder / "INV-7\u202e.xml").write_bytes(b"<Invoice/>")
    (outbox / "Batch\u202e" / "INV-1").mkdir(parents=True)
    (outbox / "Batch\u202e" / "INV-1.xml").write_bytes(b"<Invoice/>")
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.create("INV-7\u202e.xml", "quarantined", archive_dir=str(folder), reasons=[
        {"code": "sidecar-spelling", "file": "inv-7\u202e", "message": "rename it"}])
    publisher = Publisher(clock=lambda: 1000.0)
    page_asked = _asker(publisher, journal, settings)

    assert page_asked()
    assert publisher.page.left_names == {"inv-7\u202e"}
    assert publisher.page.stray_names == {"Batch\u202e"}
    publisher.touched(["INV-8.xml"])
    assert not page_asked()
    publisher.touched(["inv-7\u202e"])
    assert page_asked()
    publisher.touched(["Batch\u202e"])
    assert page_asked()
    journal.close()


def test_no_page_is_written_while_the_outbox_is_away_and_it_is_written_once_back(
        tmp_path: Path) -> None:
    """The page lives in the outbox: while the outbox cannot be listed, a journal that
    changes asks for no page (each write would fail, and its error be a second line for
    the one outage), nor does a page timer set before; once the outbox is back, the page
    is asked for at once, with no other change."""
    settings = _settings(tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")
    now = [1000.0]  # the page's own pace (MIN_INTERVAL) passes between the asks
    publisher = Publisher(clock=lambda: now[0])
    page_asked = _asker(publisher, journal, settings)
    page = settings.outbox.path / settings.share.status_page
    assert page_asked() and page.exists()
    page.unlink()
    now[0] += 10.0

    timers = Timers()
    journal.create("INV-1.xml", "settling")
    publisher.schedule(journal, timers, 1000.0)  # set before the outbox went
    publisher.outbox_away(True)
    publisher.fire(PAGE, journal, settings, {}, 1000.0)
    assert not page.exists()
    journal.create("INV-2.xml", "settling")
    assert not page_asked()

    now[0] += 10.0
    publisher.outbox_away(False)
    assert page_asked() and page.exists()
    assert not page_asked()
    journal.close()


def test_a_stop_while_the_outbox_is_away_writes_no_page_and_logs_nothing_more(
        tmp_path: Path) -> None:
    """A stop (SIGTERM) during an outage: the page's write at the stop would fail, and
    logged a warning and an error more for the one outage already said. None is tried;
    but an outbox back since the last look (the next look not yet due) gets the page
    saying outboxd is stopped, or the clerks' page would go on showing it running."""
    from structlog.testing import capture_logs

    settings = _settings(tmp_path)
    journal = Journal(tmp_path / "journal.sqlite3")
    publisher = Publisher(clock=lambda: 1000.0)
    outbox = settings.outbox.path
    page = outbox / settings.share.status_page
    publisher.outbox_away(True)
    outbox.rename(tmp_path / "outbox.away")
    with capture_logs() as logged:
        publisher.stopped(journal, settings, {})
    assert logged == []
    assert not page.exists() and not (tmp_path / "outbox.away" / page.name).exists()

    (tmp_path / "outbox.away").rename(outbox)  # back before the next look
    with capture_logs() as logged:
        publisher.stopped(journal, settings, {})
    assert logged == []
    assert page.exists() and "stopped" in page.read_text(encoding="utf-8")
    journal.close()


def test_status_follows_each_change_of_the_counts_at_most_once_a_second(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/operations.md, Day to day: STATUS= is updated when the counts change, at most
    once a second on the loop's clock: changes 0.2 s and 0.5 s after an update are said
    together at 1 s, the latest counts; a change 3 s later, long after, is said at once."""
    journal = Journal(tmp_path / "journal.sqlite3")
    settings = _settings(tmp_path)
    said: list[tuple[float, str]] = []
    now = [1000.0]
    monkeypatch.setattr("daemon.report.publish.notify", lambda m: said.append((now[0], m)))
    publisher = Publisher(clock=lambda: now[0],
                          wall=lambda: datetime(2031, 5, 6, 12, tzinfo=UTC))
    timers = Timers()

    def turn(at: float) -> None:
        now[0] = at
        publisher.schedule(journal, timers, at)
        for key in timers.pop_due(at):
            if key == STATUS:
                publisher.fire(key, journal, settings, {}, at)

    turn(1000.0)
    journal.create("INV-1.xml", "waiting", invoice_ids=["INV-1"])
    turn(1000.2)
    journal.create("INV-2.xml", "waiting", invoice_ids=["INV-2"])
    turn(1000.5)
    turn(1000.9)
    assert said == [(1000.0, "STATUS=0 sent today")]
    assert timers.due_at(STATUS) == 1001.0
    turn(1001.0)
    journal.create("INV-3.xml", "retrying", invoice_ids=["INV-3"])
    turn(1004.0)
    assert said == [(1000.0, "STATUS=0 sent today"), (1001.0, "STATUS=2 waiting, 0 sent today"),
                    (1004.0, "STATUS=2 waiting, 1 retrying, 0 sent today")]
    journal.close()


def test_status_counts_a_bundle_that_cannot_be_read_as_not_moving_as_the_page_does(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle settling with an error (its invoice file cannot be read) waits for a
    person: STATUS= counts it "not moving", as the page's "Not moving" does, not as
    "settling", which read as about to move for as long as nobody fixed it."""
    journal = Journal(tmp_path / "journal.sqlite3")
    journal.create("INV-1.xml", "settling", last_error="cannot be read: Permission denied")
    journal.create("INV-2.xml", "settling")
    publisher, sent = _noted(monkeypatch)
    publisher.fire(STATUS, journal, _settings(tmp_path), {}, 1000.0)
    publisher.fire(PAGE, journal, _settings(tmp_path), {}, 1000.0)
    assert sent[-1] == "STATUS=1 settling, 1 not moving, 0 sent today"
    page = (_settings(tmp_path).outbox.path / "outboxd-status.html").read_text("utf-8")
    assert "<b>1</b> Not moving</a></li>" in page
    journal.close()


def test_status_says_deliveries_are_paused_and_why_not_merely_retrying(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A wrong token pauses every delivery (pause.py): STATUS= leads with the pause and
    the admin's error (the setting to fix), with how many bundles wait, instead of a
    bare "3 retrying" that reads as a receiver slow to answer; a bundle put off by a
    503 alone is counted only. Once no row is paused, the line is the counts alone."""
    journal = Journal(tmp_path / "journal.sqlite3")
    paused = "HTTP 401: check [delivery] url and token: unauthorized"
    first = journal.create("INV-1.xml", "retrying", bundle_id="a" * 64, attempts=1,
                           last_error=paused)
    held = [journal.create(f"INV-{n}.xml", "retrying", bundle_id=str(n) * 64,
                           last_error=f"waiting while deliveries are paused — {paused} "
                                      "(the answer to INV-1.xml)") for n in (2, 3)]
    journal.create("INV-4.xml", "retrying", bundle_id="d" * 64, attempts=2,
                   last_error="HTTP 503 from the receiver: busy")
    publisher, sent = _noted(monkeypatch)
    publisher.fire(STATUS, journal, _settings(tmp_path), {}, 1000.0)
    assert sent[-1].startswith("STATUS=deliveries paused (3 bundles wait): HTTP 401: check "
                               "[delivery] url and token")
    assert sent[-1].endswith("; 4 retrying, 0 sent today")
    for row in (first, *held):
        journal.transition(row, "retrying", last_error="HTTP 503 from the receiver: busy")
    publisher.fire(STATUS, journal, _settings(tmp_path), {}, 1002.0)
    assert sent[-1] == "STATUS=4 retrying, 0 sent today"
    journal.close()


def test_a_reload_asks_for_the_page_under_the_new_settings_with_no_change_of_the_journal(
        tmp_path: Path) -> None:
    """An idle daemon asks for no page; a reload that renames it asks for one at once,
    though no journal row changed, and the page is then written under its new name."""
    journal = Journal(tmp_path / "journal.sqlite3")
    clock = [1000.0]
    publisher = Publisher(clock=lambda: clock[0])
    old = _settings(tmp_path)
    asked = _asker(publisher, journal, old)
    assert asked()  # the first turn
    assert not asked()  # idle
    new = old.model_copy(update={"share": old.share.model_copy(
        update={"status_page": "renamed.html"})})
    clock[0] = 1100.0  # past the page's pace
    publisher.reconfigure(old, new)
    assert _asker(publisher, journal, new)()
    assert (old.outbox.path / "renamed.html").is_file()
    assert not (old.outbox.path / "outboxd-status.html").exists()


def test_a_reload_brings_forward_the_page_turn_a_costly_page_had_put_off(
        tmp_path: Path) -> None:
    """With some 20,000 rows a refresh costs half a second of CPU and the next waits
    PAGE_PACE times that (10 s, up to a minute); a change meanwhile has the page's turn
    set for then. A reload (the page renamed or turned on, another policy to explain)
    makes the page due MIN_INTERVAL after its last look: the turn already set is brought
    forward, not left where the old pace put it (the new name stayed unwritten up to a
    minute)."""
    journal = Journal(tmp_path / "journal.sqlite3")
    cpu, now = [0.0], [1000.0]
    publisher = Publisher(clock=lambda: now[0])
    publisher.page.cpu = lambda: cpu[0]
    real_unfinished = journal.unfinished

    def costly_unfinished() -> Any:  # read once a refresh
        cpu[0] += 0.5
        return real_unfinished()
    journal.unfinished = costly_unfinished  # type: ignore[method-assign]
    old = _settings(tmp_path)
    timers = Timers()
    publisher.schedule(journal, timers, 1000.0)
    for key in timers.pop_due(1000.0):  # the first turn: written, at a cost of 0.5 s
        publisher.fire(key, journal, old, {}, 1000.0)
    journal.create("new.xml", "waiting", unattached_ids=["N-1"])
    publisher.schedule(journal, timers, 1000.0)
    assert timers.due_at(PAGE) == 1000.0 + PAGE_PACE * 0.5  # paced
    new = old.model_copy(update={"share": old.share.model_copy(
        update={"status_page": "renamed.html"})})
    publisher.reconfigure(old, new)
    publisher.schedule(journal, timers, 1000.0)
    due = 1000.0 + MIN_INTERVAL
    assert timers.due_at(PAGE) == due
    assert PAGE in timers.pop_due(due)
    now[0] = due
    publisher.fire(PAGE, journal, new, {}, due)
    assert "new.xml" in (old.outbox.path / "renamed.html").read_text()
    journal.close()


def test_a_page_that_could_not_be_written_is_asked_for_again_without_another_change(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full share: the page's write fails, and nothing else moves (the journal is on
    another disk). The page is asked for again at its pace until it is written, not left
    showing old news until a bundle happens to move; written, it is asked for no more."""
    journal = Journal(tmp_path / "journal.sqlite3")
    now = [1000.0]
    publisher = Publisher(clock=lambda: now[0])
    settings = _settings(tmp_path)
    real = statuspage.replace_ours
    full = [True]

    def write(path: Path, data: bytes, look: object) -> Any:
        if full[0]:
            raise OSError(28, "No space left on device")
        return real(path, data, look)
    monkeypatch.setattr(statuspage, "replace_ours", write)
    timers = Timers()
    for _ in range(3):  # each failed turn sets the next, one pace later
        publisher.schedule(journal, timers, now[0])
        due = timers.due_at(PAGE)
        assert due is not None and due <= now[0] + MIN_INTERVAL
        now[0] = due
        assert PAGE in timers.pop_due(now[0])
        publisher.fire(PAGE, journal, settings, {}, now[0])
    full[0] = False
    publisher.schedule(journal, timers, now[0])
    now[0] = timers.due_at(PAGE) or 0.0
    assert PAGE in timers.pop_due(now[0])
    publisher.fire(PAGE, journal, settings, {}, now[0])
    assert (settings.outbox.path / "outboxd-status.html").is_file()
    publisher.schedule(journal, timers, now[0])
    assert timers.due_at(PAGE) == now[0] + HEARTBEAT  # written: asked only to show its age
    journal.close()


def test_a_page_turned_off_while_it_could_not_be_written_is_asked_for_no_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full share: the page's write fails, and the admin turns the page off
    (`status_page = ""`) and reloads. The page is looked at once more under the new
    settings, then asked for no more (before: its failure stayed, the publisher asked
    for it at once at every turn, and the loop spun a core while nothing happened)."""
    journal = Journal(tmp_path / "journal.sqlite3")
    now = [1000.0]
    publisher = Publisher(clock=lambda: now[0])
    settings = _settings(tmp_path)

    def full(path: Path, data: bytes, look: object) -> Any:
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(statuspage, "replace_ours", full)
    timers = Timers()
    publisher.schedule(journal, timers, now[0])
    assert PAGE in timers.pop_due(now[0])
    publisher.fire(PAGE, journal, settings, {}, now[0])
    assert publisher.page.failing
    off = settings.model_copy(update={"share": settings.share.model_copy(
        update={"status_page": ""})})
    publisher.reconfigure(settings, off)
    fired = 0
    for _ in range(3):
        publisher.schedule(journal, timers, now[0])
        due = timers.due_at(PAGE)
        if due is None:
            break
        now[0] = max(now[0], due)
        assert PAGE in timers.pop_due(now[0])
        publisher.fire(PAGE, journal, off, {}, now[0])
        fired += 1
    assert fired == 1 and timers.due_at(PAGE) is None
    journal.close()


def test_status_is_one_assignment_shown_as_the_log_shows_it_whatever_an_error_quotes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """STATUS= quotes errors (the journal's, a pause's receiver answer): a line break in
    one would end STATUS= and hand systemd the rest as an assignment of its own
    (MAINPID=1 from the main process, which systemd obeys); C1's CSI or U+2028 would
    reach `systemctl status` on a terminal. Each is shown as its code, as in the log."""
    journal = Journal(tmp_path / "journal.sqlite3")
    publisher, sent = _noted(monkeypatch)
    timers = Timers()
    journal._failed(sqlite3.OperationalError("disk I/O error\nMAINPID=1\x9b2J\u2028x"))
    publisher.schedule(journal, timers, 1000.0)
    for key in timers.pop_due(1000.0):
        publisher.fire(key, journal, _settings(tmp_path), {}, 1000.0)
    [status] = sent
    assert status.count("\n") == 0 and "MAINPID=1" in status
    assert "disk I/O error\\x0aMAINPID=1\\x9b2J\\u2028x" in status
    journal.close()


def test_an_idle_daemon_writes_its_page_again_at_the_heartbeat_and_no_sooner(
        tmp_path: Path) -> None:
    """Nothing changes: after the first page the publisher's only page turn is HEARTBEAT
    later, and that turn writes the page again with its new time (before, an idle
    daemon's page kept its first time for good, like a dead daemon's)."""
    journal = Journal(tmp_path / "journal.sqlite3")
    now = [1000.0]
    walls = [datetime(2031, 5, 6, 12, 0, 0, tzinfo=UTC)]
    publisher = Publisher(clock=lambda: now[0], wall=lambda: walls[0])
    settings = _settings(tmp_path)
    path = settings.outbox.path / "outboxd-status.html"
    timers = Timers()
    publisher.schedule(journal, timers, now[0])
    for key in timers.pop_due(now[0]):
        publisher.fire(key, journal, settings, {}, now[0])
    assert "12:00:00 UTC" in path.read_text()
    publisher.schedule(journal, timers, now[0])
    assert timers.due_at(PAGE) == now[0] + HEARTBEAT
    assert PAGE not in timers.pop_due(now[0] + HEARTBEAT - 1)
    now[0] += HEARTBEAT
    walls[0] = datetime(2031, 5, 6, 12, 4, 0, tzinfo=UTC)
    assert PAGE in timers.pop_due(now[0])
    publisher.fire(PAGE, journal, settings, {}, now[0])
    assert "12:04:00 UTC" in path.read_text()
    publisher.schedule(journal, timers, now[0])
    assert timers.due_at(PAGE) == now[0] + HEARTBEAT
    journal.close()


def test_status_says_the_receiver_asked_for_time_and_a_pause_goes_before_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Bundles put off by a 429/503 with Retry-After: STATUS= leads with "receiver asked
    for time", how many bundles wait and the answer most of them wait for (one of
    PAUSE_SHOWN characters shown whole). A pause of deliveries is the admin's to fix
    and said instead, with the pause most bundles wait behind."""
    from daemon.delivery.throttle import THROTTLED
    from daemon.report.publish import PAUSE_SHOWN
    journal = Journal(tmp_path / "journal.sqlite3")
    busy = "HTTP 503 from the receiver, Retry-After 120 s: "
    busy += "x" * (PAUSE_SHOWN - len(busy))
    for n, why in ((1, busy), (2, busy), (3, "HTTP 429 from the receiver: slow down")):
        journal.create(f"INV-{n}.xml", "retrying", bundle_id=str(n) * 64,
                       last_error=THROTTLED + why)
    publisher, sent = _noted(monkeypatch)
    publisher.fire(STATUS, journal, _settings(tmp_path), {}, 1000.0)
    assert sent[-1] == (f"STATUS=receiver asked for time (3 bundles wait): {busy}; "
                        "3 retrying, 0 sent today")
    token = "HTTP 401: check [delivery] url and token: unauthorized"
    for n, why in ((4, token), (5, token), (6, "HTTP 407 from a proxy: check [delivery] "
                                                 "proxy")):
        journal.create(f"INV-{n}.xml", "retrying", bundle_id=str(n) * 64, last_error=why)
    publisher.fire(STATUS, journal, _settings(tmp_path), {}, 1002.0)
    assert sent[-1] == (f"STATUS=deliveries paused (3 bundles wait): {token}; 6 retrying, "
                        "0 sent today")
    journal.close()


def test_status_is_sent_again_only_when_it_reads_differently(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A change of the journal that leaves the counts as they were (a retry's new error)
    sends no STATUS=: systemd would be sent the same line at every attempt."""
    journal = Journal(tmp_path / "journal.sqlite3")
    row = journal.create("INV-1.xml", "retrying", bundle_id="a" * 64,
                         last_error="HTTP 500 from the receiver")
    publisher, sent = _noted(monkeypatch)
    publisher.fire(STATUS, journal, _settings(tmp_path), {}, 1000.0)
    journal.transition(row, "retrying", last_error="HTTP 502 from the receiver")
    publisher.fire(STATUS, journal, _settings(tmp_path), {}, 1002.0)
    assert sent == ["STATUS=1 retrying, 0 sent today"]
    journal.close()
