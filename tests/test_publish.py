"""What the running daemon publishes of itself (STATUS=, the page), and when."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from daemon.config import Settings
from daemon.journal import Journal
from daemon.publish import MIDNIGHT, PAGE, STATUS, Publisher
from daemon.timers import Timers


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
    assert timers.due_at(STATUS) is None and timers.due_at(PAGE) is None  # idle
    assert timers.due_at(MIDNIGHT) == 1003.0
    assert timers.pop_due(1003.0) == [MIDNIGHT]
    publisher.fire(MIDNIGHT, journal, _settings(tmp_path), {}, 1003.0)
    publisher.schedule(journal, timers, 1003.0)
    assert timers.due_at(STATUS) is not None and timers.due_at(PAGE) is not None
    assert timers.due_at(MIDNIGHT) is not None


def _settings(tmp_path: Path) -> Settings:
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    return Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(tmp_path / "s")},
                    delivery={"url": "http://127.0.0.1:9/x"})
