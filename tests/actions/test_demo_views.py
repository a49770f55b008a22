"""What `outboxd demo` prints while it runs: its times are UTC and labelled so, whatever
the host's time zone — as the status page, `outboxd status` and sent/'s day folders."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from daemon.actions import demo_samples
from daemon.actions.demo_views import LineView, Seen, TableView, reached

# A second before midnight UTC, when the host's local day (UTC+14) is the next one.
LATE = datetime(2026, 12, 4, 23, 59, 58, tzinfo=UTC)


@pytest.fixture
def far_from_utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The host's time zone fourteen hours east of UTC (POSIX sign: Etc/GMT-14)."""
    monkeypatch.setenv("TZ", "Etc/GMT-14")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.usefixtures("far_from_utc")
def test_the_line_view_prints_utc_times_labelled_utc_beside_the_utc_day_folder() -> None:
    """Near midnight, on a host far east of UTC: a note and a state change are stamped
    23:59:58 UTC — the day of the sent/ folder named on the same line — never the
    host's local 13:59:58 of the next day, nor a time without its zone."""
    out = io.StringIO()
    view = LineView(out, clock=lambda: LATE)
    [sample, *_] = demo_samples.build(".send-anyway", True)
    view.note("dropped INV-1001.xml")
    view.show([sample], {sample.invoice_file: Seen(
        "sent", f"receipt r-1 → sent/2026-12-04/{sample.invoice_file[:-4]}--32e36a3cb92f")})
    lines = out.getvalue().splitlines()
    assert [line[:14] for line in lines] == ["23:59:58 UTC  "] * 2
    assert "13:59:58" not in out.getvalue()


@pytest.mark.usefixtures("far_from_utc")
def test_the_live_table_prints_its_notes_in_utc_labelled_utc() -> None:
    """The table's notes (samples dropped) are stamped in UTC and say so, as the lines."""
    from rich.console import Console
    screen = io.StringIO()
    console = Console(file=screen, width=80, height=24, force_terminal=True,
                      color_system=None)
    with TableView(console, clock=lambda: LATE) as view:
        view.note("dropped INV-1001.xml")
    assert "23:59:58 UTC  dropped INV-1001.xml" in screen.getvalue()


def test_a_quarantined_sample_has_reached_its_end_only_for_the_reason_it_shows() -> None:
    """The TIFF sample is to be quarantined for its resolution: quarantined for another
    reason is not the end it shows."""
    tiff = demo_samples.Sample("INV-5001.xml", "scan", "quarantined", "tiff-resolution")
    assert reached(tiff, Seen("quarantined", "", ("tiff-resolution",)))
    assert not reached(tiff, Seen("quarantined", "", ("pdf-encrypted",)))
    assert not reached(tiff, None)


def test_the_line_view_prints_a_sample_again_only_when_it_changed() -> None:
    """Off a terminal one line per change: the same state and detail seen again on the
    next look (every 0.2 s) prints nothing."""
    out = io.StringIO()
    view = LineView(out, clock=lambda: LATE)
    sample = demo_samples.Sample("INV-1.xml", "one", "sent")
    for seen in ("settling", "settling", "sent", "sent"):
        view.show([sample], {"INV-1.xml": Seen(seen)})
    assert [line.split()[-1] for line in out.getvalue().splitlines()] == ["settling", "sent"]
