"""The outbox away, on the loop without timing (fakeloop): looked at again on a short
back-off rather than a rescan period later, said once in the log when it begins, again
only when its error changes, and once when it is over."""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from fakeloop import RESCAN, SETTLE, Counts, FakeClock, FakeWatcher, Inline  # noqa: E402
from helpers import ubl_invoice, write  # noqa: E402

from daemon.configuration.config import Settings  # noqa: E402
from daemon.loop import changes as changes_module  # noqa: E402
from daemon.loop import service as service_module  # noqa: E402
from daemon.loop.service import Service  # noqa: E402
from daemon.watching.outage import LIST_FIX, WATCH_FIX, Outage  # noqa: E402
from daemon.watching.watch import ROOT_LOST  # noqa: E402


class ShareWatcher(FakeWatcher):
    """A watcher that dies with the outbox and whose (re)start fails, as a real one's
    does, while the outbox is not there (or with `refuse`, whatever the outbox does)."""

    def __init__(self, outbox: Path) -> None:
        self.outbox, self.alive, self.restarts = outbox, True, 0
        self.refuse: OSError | None = None

    def ensure_alive(self) -> bool:
        if self.alive:
            return False
        self.restarts += 1
        if self.refuse is not None:
            raise self.refuse
        os.listdir(self.outbox)  # FileNotFoundError while it is away
        self.alive = True
        return True


def _lines(logged: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """What was logged, but the bundles' own lines (one found, settling …)."""
    return [(e["log_level"], e["event"]) for e in logged
            if e["log_level"] != "debug" and not e["event"].startswith("bundle ")]


def _look(svc: Service, clock: FakeClock) -> float:
    """Turn the loop at the next look at the outbox; how long after the last one it came."""
    due = svc.timers.due_at(service_module.RESCAN)
    assert due is not None
    waited, clock.t = due - clock.t, due
    svc.turn()
    return waited


def test_an_outbox_away_is_said_once_looked_at_on_a_back_off_and_its_return_once(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """The outbox is moved away (a share unmounted): one error line naming the outbox, what
    failed and the fix; ten more failed looks, 1 s, 2 s, 4 s … apart and at most 30 s
    (rescan_seconds is 60), add no line. Once it is back the next look (within 30 s, not a
    rescan period) restarts the watcher, says so once with how long it was away, and finds
    an invoice dropped meanwhile; then rescans are a whole period apart again. The status
    page, due as the outbox went, is not tried (its error would be a second line), and is
    written once the outbox is back."""
    outbox, away = tmp_path / "outbox", tmp_path / "away"
    svc = make_service()
    svc.watcher = watcher = ShareWatcher(outbox)
    svc.turn()  # the first status page is due: it waits for the outbox, and says nothing
    with capture_logs() as logged:
        outbox.rename(away)
        watcher.alive = False
        svc.hint(ROOT_LOST)
        began = clock.t
        svc.turn()
        assert _lines(logged) == [  # the watcher's word that it went says nothing more
            ("error", "cannot list the outbox; looking again every few seconds until it is "
                      "back")]
        error = logged[0]
        assert error["outbox"] == str(outbox) and "No such file or directory" in error["error"]
        assert error["fix"] == LIST_FIX

        waits = [_look(svc, clock) for _ in range(10)]
        assert waits == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0, 30.0, 30.0]
        assert len(_lines(logged)) == 1
        assert not watcher.alive

        away.rename(outbox)
        write(outbox / "INV-9.xml", ubl_invoice("INV-9"))
        assert _look(svc, clock) == 30.0  # not rescan_seconds (60) after the last
        assert watcher.alive
        assert _lines(logged)[1:] == [("info", "the outbox is there again; watching it")]
        [back] = [e for e in logged if e["event"] == "the outbox is there again; watching it"]
        assert back["outbox"] == str(outbox) and back["away_seconds"] == clock.t - began
        assert "INV-9.xml" in counts.steps
        assert not (outbox / "outboxd-status.html").exists()
        svc.turn()
        assert (outbox / "outboxd-status.html").exists()  # written once the outbox is back

        assert svc.timers.due_at(service_module.RESCAN) == clock.t + RESCAN
        _look(svc, clock)
        assert len(_lines(logged)) == 2


def test_an_outage_whose_error_changes_is_said_again_and_only_then(
        make_service: Any, clock: FakeClock, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    """The share goes (ENOENT), comes back mounted but not readable to outboxd (EACCES):
    one error line for each, none for the looks in between; over, one line."""
    svc = make_service()
    svc.watcher = watcher = ShareWatcher(tmp_path / "outbox")
    watcher.alive = False
    failing: list[OSError | None] = [FileNotFoundError(errno.ENOENT, "No such file or "
                                                       "directory", str(tmp_path / "outbox"))]
    real_list = changes_module.list_outbox

    def list_outbox(*a: Any) -> Any:
        if failing[0] is not None:
            raise failing[0]
        return real_list(*a)
    monkeypatch.setattr(changes_module, "list_outbox", list_outbox)
    with capture_logs() as logged:
        watcher.refuse = failing[0]
        svc.rescan_soon()
        for _ in range(4):
            _look(svc, clock)
        failing[0] = watcher.refuse = PermissionError(errno.EACCES, "Permission denied",
                                                      str(tmp_path / "outbox"))
        for _ in range(4):
            _look(svc, clock)
        assert [(e["log_level"], e["error"]) for e in logged] == [
            ("error", f"No such file or directory ({tmp_path / 'outbox'})"),
            ("error", f"Permission denied ({tmp_path / 'outbox'})")]
        failing[0] = watcher.refuse = None
        _look(svc, clock)
        assert _lines(logged)[2:] == [("info", "the outbox is there again; watching it")]


def test_a_watcher_that_cannot_start_is_said_once_and_the_outbox_listed_meanwhile(
        tmp_path: Path, clock: FakeClock, counts: Counts) -> None:
    """The outbox is there but the watcher cannot start (the inotify watch limit): one
    error line at the start, with the fix; the loop lists the outbox on the back-off
    meanwhile, so an invoice dropped then is found within seconds; once the watcher
    starts, one line says so."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    watcher = ShareWatcher(outbox)
    watcher.alive = False
    watcher.refuse = OSError(errno.ENOSPC, "inotify watch limit reached")
    s = Settings(outbox={"path": str(outbox), "settle_seconds": SETTLE, "rescan_seconds": RESCAN},
                 paths={"state_dir": str(tmp_path / "state")}, policy={"unattached": "hold"},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 einvoice={"preflight": "off"})
    svc = Service(s, clock=clock, watcher_factory=lambda s, hint: watcher, reader=Inline())
    try:
        with capture_logs() as logged:
            svc.open()
            [error] = [e for e in logged if e["log_level"] == "error"]
            assert error["event"] == ("cannot watch the outbox; listing it every few seconds "
                                      "until the watcher starts")
            assert "inotify watch limit reached" in error["error"] and error["fix"] == WATCH_FIX
            assert _look(svc, clock) == 1.0
            write(outbox / "INV-4.xml", ubl_invoice("INV-4"))
            assert _look(svc, clock) == 2.0
            assert counts.steps == ["INV-4.xml"]
            watcher.refuse = None
            _look(svc, clock)
            assert [e["event"] for e in logged if e["log_level"] == "error"] == [error["event"]]
            assert [e["event"] for e in logged if e["log_level"] == "info"][-1] \
                == "the outbox is watched again"
            assert svc.timers.due_at(service_module.RESCAN) == clock.t + RESCAN
    finally:
        svc.request_stop()
        svc._shutdown()


def test_the_back_off_stops_at_a_short_rescan_period_and_starts_again_at_each_outage(
        tmp_path: Path) -> None:
    """rescan_seconds = 5, shorter than 30 s: looks 1, 2, 4, 5, 5 s apart, never longer
    than a rescan period. Once the outage is over, the next one is looked at again after
    a second, not after the back-off the last one had reached."""
    gone = FileNotFoundError(errno.ENOENT, "No such file or directory")
    outage = Outage(structlog.get_logger(), tmp_path)
    with capture_logs():
        assert [outage.failed(float(t), gone, None, 5.0) for t in range(5)] == [
            1.0, 2.0, 4.0, 5.0, 5.0]
        outage.over(10.0)
        assert outage.failed(20.0, gone, None, 5.0) == 1.0


def test_an_error_of_the_same_kind_with_another_errno_is_said_again(tmp_path: Path) -> None:
    """EIO, then ESTALE (the share's server restarted): both plain OSError, two errors to
    the admin, each said once however often it repeats."""
    eio = OSError(errno.EIO, "Input/output error")
    stale = OSError(errno.ESTALE, "Stale file handle")
    outage = Outage(structlog.get_logger(), tmp_path)
    with capture_logs() as logged:
        for t, exc in enumerate([eio, eio, stale, stale]):
            outage.failed(float(t), exc, None, 60.0)
    assert [("Input/output error" in e["error"], "Stale file handle" in e["error"])
            for e in logged] == [(True, False), (False, True)]
