"""Reading off the loop (offloop.py), on the loop without timing (fakeloop): a read's
result is taken only under the settings it was made under.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from fakeloop import RESCAN, SETTLE, Counts, FakeClock  # noqa: E402
from helpers import pdf_bytes, published, ubl_invoice, wait_for, write  # noqa: E402


class Held:
    """An executor that keeps each read until the test runs it: a read under way."""

    def __init__(self) -> None:
        self.calls: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        self.calls.append((fn, args))

    def run(self) -> None:
        calls, self.calls = self.calls, []
        for fn, args in calls:
            fn(*args)

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def test_a_read_under_way_at_a_reload_is_read_again_under_the_new_settings(
        make_service: Any, clock: FakeClock, counts: Counts, tmp_path: Path) -> None:
    """A reload that changes the channel while a bundle is being read: the result made
    under the old settings is not used; the bundle is read again and decided under the
    new ones (it went out on the old channel before)."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1" / "timesheet.pdf", pdf_bytes())
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc = make_service()
    svc._reader = held = Held()
    svc.hint("INV-1.xml")
    svc.turn()
    assert len(held.calls) == 1  # read at first sight, while it settles

    config = tmp_path / "config.toml"
    config.write_text(
        f'[outbox]\npath = "{outbox}"\nsettle_seconds = {SETTLE}\nrescan_seconds = {RESCAN}\n'
        f'[paths]\nstate_dir = "{tmp_path / "state"}"\n[policy]\nunattached = "hold"\n'
        '[validation]\nchannel = "original-print"\n'
        f'[delivery]\ntransport = "directory"\ntarget = "{tmp_path / "target"}"\n')
    svc.config_path = config
    svc._request_reload()
    svc.turn()
    held.run()  # the read under way ends, with what the old settings said
    for _ in range(4):
        svc.turn()
        held.run()
        clock.t += SETTLE
    assert counts.reads == 2
    # Delivered (by the delivery threads) on the new channel: the manifest says so.
    [bundle] = wait_for(lambda: published(tmp_path / "target"), what="the bundle published")
    assert json.loads((bundle / "manifest.json").read_text())["channel"] == "original-print"


def test_a_reload_configures_the_reader_processes_the_start_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGHUP hands its settings to the reader processes the start made, not to a new
    set: each reload would otherwise leave the last set's processes running. Only the
    reload's is a reload (its new readers get RELOAD_WAIT, and WATCHDOG=1 meanwhile)."""
    from types import SimpleNamespace

    from daemon.loop import offloop

    made: list[Any] = []

    class Readers:
        def __init__(self, cache: Path) -> None:
            self.configured: list[Any] = []
            made.append(self)

        def configure(self, s: Any, reload: bool, tick: Any, every: float | None) -> None:
            self.configured.append((s, reload, tick is not None))

    monkeypatch.setattr(offloop, "Readers", Readers)
    loop = offloop.ReadsOffLoop()
    loop._reader, loop._readers, loop._keepalive = None, None, None
    start, reload = (SimpleNamespace(paths=SimpleNamespace(state_dir=tmp_path)) for _ in "ab")
    loop._start_rules(start)  # type: ignore[arg-type]
    loop._start_rules(reload)  # type: ignore[arg-type]
    assert len(made) == 1 and made[0].configured == [(start, False, False),
                                                     (reload, True, True)]


@pytest.mark.parametrize("keepalive, every", [(None, None), (30.0, 15.0), (1.0, 0.5)])
def test_a_reloads_watchdog_ticks_follow_watchdogsec(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, keepalive: float | None,
        every: float | None) -> None:
    """A reload's new readers are waited for with WATCHDOG=1 every quarter of WatchdogSec
    (half the loop's keep-alive): 0.5 s under WatchdogSec=2, which the pool's tick of
    at most a second did not keep within; the pool's own second where there is no
    watchdog, or a long one (the pool caps it)."""
    from types import SimpleNamespace

    from daemon.loop import offloop

    asked: list[float | None] = []

    class Readers:
        def __init__(self, cache: Path) -> None:
            pass

        def configure(self, s: Any, reload: bool, tick: Any, every: float | None) -> None:
            asked.append(every)

    monkeypatch.setattr(offloop, "Readers", Readers)
    loop = offloop.ReadsOffLoop()
    loop._reader, loop._readers, loop._keepalive = None, None, keepalive
    loop._start_rules(SimpleNamespace(paths=SimpleNamespace(state_dir=tmp_path)))  # type: ignore[arg-type]
    assert asked == [every]
