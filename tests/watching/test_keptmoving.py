"""A folder of a sidecar gone whenever it is opened, look after look (daemon/watching/
keptmoving.py), on the loop without timing (fakeloop) with the directory transport: the
bundle never settles on such a look, and once that has lasted a rescan period its row
(status, the page) and the log say why; not before, and no longer once it stops."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from fakeloop import RESCAN, SETTLE, FakeClock  # noqa: E402
from helpers import pdf_bytes, ubl_invoice, wait_for, write  # noqa: E402

from daemon.loop.service import Service  # noqa: E402
from daemon.report import status as status_report  # noqa: E402
from daemon.watching.settle import MOVED_AGAIN  # noqa: E402

KEY = "INV-1.xml"
CLAIMED = ("claiming", "delivering", "delivered", "sent")
SAID = "cannot settle: the folder INV-1 is listed as a folder but is gone"
WARNED = "a folder of the bundle is gone whenever it is opened; the bundle cannot settle"


def gone_when_opened(monkeypatch: pytest.MonkeyPatch, names: set[str]) -> None:
    """What a share's client with a stale entry for a folder answers (and what a program
    that renames the folder away at every look would do): its lstat, and the listing
    above it, show the folder there; opening it, to look or to read, says ENOENT. For
    the folders called `names`, as long as the set holds them."""
    real = os.open

    def opened(path: Any, *a: Any, **kw: Any) -> int:
        if os.path.basename(os.fsdecode(path)) in names:
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return real(path, *a, **kw)
    monkeypatch.setattr(os, "open", opened)


def _turn_until(svc: Service, clock: FakeClock, end: float) -> None:
    """Turn the loop, its clock a fifth of a quiet period on each time, up to `end`."""
    while clock.t < end:
        svc.turn()
        clock.t += SETTLE / 5


def _warnings(logged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logged if e["log_level"] in ("warning", "error")]


def test_a_folder_gone_at_every_look_is_said_after_a_rescan_period_once_until_it_stops(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """INV-1's sidecar holds a.pdf, but every look finds it listed as a folder and gone
    when opened (a share's stale cache). Under unattached = "send" the bundle is never
    sent meanwhile. For a rescan period its row says nothing more than settling, and
    nothing is logged above info (a clerk's rename is over by the next look); from the
    first look a rescan period on, `outboxd status`, its --json and the status page say
    which folder, that it is gone whenever opened, and what to do, and the log says it
    once at warning, however many looks follow. The first look that finds the folder as
    it is clears the row (one info line); the bundle settles a quiet period later and goes
    out with a.pdf. Before, it stayed "settling" with no word anywhere, for ever."""
    outbox = tmp_path / "outbox"
    write(outbox / KEY, ubl_invoice("INV-1"))
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())
    stale = {"INV-1"}
    gone_when_opened(monkeypatch, stale)
    start = clock.t
    with capture_logs() as logged:
        svc = make_service(unattached="send")
        _turn_until(svc, clock, start + RESCAN - SETTLE / 5)
        row = svc.pipeline.live[KEY]
        assert (row.state, row.last_error) == ("settling", None), "not before a rescan period"
        assert _warnings(logged) == []
        _turn_until(svc, clock, start + RESCAN + SETTLE)
        row = svc.pipeline.live[KEY]
        assert row.state == "settling" and row.last_error is not None
        assert row.last_error.startswith(SAID) and "whenever outboxd opens it" in \
            row.last_error and "remount the network share" in row.last_error
        _turn_until(svc, clock, clock.t + 3 * RESCAN)  # many more looks
        assert KEY in svc.pipeline.live, "never settled on a folder gone when opened"
        assert svc.pipeline.live[KEY].last_error == row.last_error
        [warned] = _warnings(logged)
        assert (warned["event"], warned["invoice_file"], warned["folder"]) == (
            WARNED, KEY, "INV-1")
        assert warned["moving_seconds"] >= RESCAN and "remount the share" in warned["fix"]

    data = status_report.collect(svc.settings)
    [shown] = data["bundles"]
    assert shown["state"] == "settling" and shown["last_error"] == row.last_error
    text = status_report.render(data)
    assert "Not moving (last error):" in text and SAID in text
    assert SAID in (outbox / "outboxd-status.html").read_text(encoding="utf-8")

    stale.clear()  # the share's cache let go of it
    with capture_logs() as logged:
        svc.turn()
        clock.t += SETTLE / 5
        assert svc.pipeline.live[KEY].last_error is None, "cleared at the first good look"
        assert [e["event"] for e in logged if e["log_level"] == "info"
                and "stay put" in e["event"]] == [
            "the bundle's folders stay put as they are opened again; it settles"]
        _turn_until(svc, clock, clock.t + 2 * SETTLE)
        assert _warnings(logged) == []
    assert KEY not in svc.pipeline.live, "settled and claimed once its folder stays put"
    [claimed] = svc.journal.rows(CLAIMED)
    sent = wait_for(lambda: (d := tmp_path / "target" / claimed.bundle_id).is_dir() and d,
                    what="the bundle delivered to the target")
    assert [str(p.relative_to(sent)) for p in sent.rglob("*.pdf")] == [
        "attachments/INV-1/a.pdf"]


def test_a_folder_gone_at_some_looks_but_not_every_look_for_a_rescan_period_is_not_said(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder in the sidecar gone when opened for most of a rescan period, then found as
    it is at one look, then gone again for most of one more: looks in a row that saw it
    go never lasted a rescan period, so nothing is said in the row or the log (a clerk
    who renames folders now and then is not an admin's problem)."""
    outbox = tmp_path / "outbox"
    write(outbox / KEY, ubl_invoice("INV-1"))
    write(outbox / "INV-1" / "ID-2" / "a.pdf", pdf_bytes())
    stale: set[str] = set()
    gone_when_opened(monkeypatch, stale)
    with capture_logs() as logged:
        svc = make_service(unattached="send")
        svc.turn()
        for _ in range(2):
            stale.add("ID-2")
            svc.hint("INV-1")
            _turn_until(svc, clock, clock.t + RESCAN - SETTLE)
            stale.clear()
            svc.hint("INV-1")  # one look that finds it as it is
            svc.turn()
            assert svc.pipeline.live[KEY].last_error is None
        assert _warnings(logged) == []


def test_a_waiting_bundle_taken_over_at_start_says_its_folder_is_gone_when_opened(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """INV-1 waits for attachments (an empty sidecar) when outboxd stops; at the next
    start its sidecar is gone whenever opened, look after look, each look just like the
    last. Its row kept saying "waiting for attachments" for ever, while no deadline or
    attachment could move it; once that lasts a rescan period it says settling, and why."""
    outbox = tmp_path / "outbox"
    write(outbox / KEY, ubl_invoice("INV-1"))
    (outbox / "INV-1").mkdir()
    first = make_service()
    _turn_until(first, clock, clock.t + 3 * SETTLE)
    assert first.pipeline.live[KEY].state == "waiting"
    first.request_stop()
    first._shutdown()
    gone_when_opened(monkeypatch, {"INV-1"})
    svc = make_service()
    start = clock.t
    _turn_until(svc, clock, start + RESCAN - SETTLE / 5)
    assert svc.pipeline.live[KEY].state == "waiting", "a restart is no change of its files"
    _turn_until(svc, clock, start + RESCAN + SETTLE)
    row = svc.pipeline.live[KEY]
    assert row.state == "settling" and (row.last_error or "").startswith(SAID)


def test_a_folder_gone_at_every_look_is_looked_at_again_no_sooner_than_a_second_later(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, counts: Any) -> None:
    """With settle_seconds = 0 a look that saw a folder go (never settled on) ended its
    quiet period at once: the loop looked at the bundle again at every turn, a core at
    full speed for as long as a share's stale cache lasted. Now the next look comes a
    second later (MOVED_AGAIN) at the earliest, and as soon as that once it is due."""
    outbox = tmp_path / "outbox"
    write(outbox / KEY, ubl_invoice("INV-1"))
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())
    gone_when_opened(monkeypatch, {"INV-1"})
    svc = make_service(unattached="send")
    svc.pipeline.tracker.settle_seconds = 0
    svc.turn()
    counts.reset()
    for _ in range(10):  # the clock stands still
        svc.turn()
    assert counts.snapshots == 0, "looked at again before a second had passed"
    clock.t += MOVED_AGAIN
    svc.turn()
    assert counts.snapshots == 1
    assert KEY in svc.pipeline.live, "never settled on a folder gone when opened"
