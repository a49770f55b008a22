"""The ticks of a reader pool's start (daemon/reading/reader_pool.py, reader_child.Ticks):
the loop's WATCHDOG=1 while a reload waits for new readers to load the rules. Children
stand-ins that say "ready" at set times on a clock of the test's own: what is checked is
the schedule, which no real child's timing could pin down."""

from __future__ import annotations

import multiprocessing
from types import SimpleNamespace
from typing import Any

import pytest

from daemon.errors import ConfigError
from daemon.reading import reader_child, reader_pool, reader_wire
from daemon.reading.reader_pool import Pool, Restarts


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now


class Loading:
    """A child's end of the pipe: its "ready" (or the engine's failure) at `ready_at`."""

    def __init__(self, clock: Clock, ready_at: float, problem: str | None) -> None:
        self.clock, self.ready_at, self.problem = clock, ready_at, problem

    def poll(self, timeout: float) -> bool:
        if self.clock.now + timeout >= self.ready_at:
            self.clock.now = max(self.clock.now, self.ready_at)
            return True
        self.clock.now += timeout
        return False

    def recv_bytes(self) -> bytes:
        return reader_wire.dumps((0, self.problem))

    def close(self) -> None:
        pass


def _ticks_of_a_start(monkeypatch: pytest.MonkeyPatch, ready_at: list[float],
                      every: float | None) -> tuple[list[float], float]:
    """A start of len(ready_at) children, each ready at its time (the last says its
    engine failed, so that the start ends there, its children abandoned): the times of
    its ticks, and when it ended."""
    clock = Clock()
    monkeypatch.setattr(reader_pool, "time", clock)
    monkeypatch.setattr(reader_child, "time", clock, raising=False)
    conns = iter(Loading(clock, t, "stand-in" if i == len(ready_at) - 1 else None)
                 for i, t in enumerate(ready_at))
    proc = SimpleNamespace(join=lambda *_: None, is_alive=lambda: False, close=lambda: None,
                           kill=lambda: None, pid=0)
    monkeypatch.setattr(Pool, "_spawn", lambda self: reader_child.Child(proc, next(conns)))
    pool = Pool(multiprocessing.get_context("spawn"), len(ready_at), True, None,
                Any, lambda out: out, Restarts(3), lambda call: None,  # type: ignore[arg-type]
                lambda pool, why: None)
    ticks: list[float] = []
    with pytest.raises(ConfigError, match="stand-in"):
        tick = lambda: ticks.append(clock.now)  # noqa: E731
        pool.start(60.0, tick) if every is None else pool.start(60.0, tick, every)
    return ticks, clock.now


@pytest.mark.parametrize("every, gap", [(None, reader_pool.TICK_SECONDS), (0.5, 0.5),
                                        (5.0, reader_pool.TICK_SECONDS)])
def test_a_start_ticks_at_once_then_on_one_schedule_across_its_children(
        monkeypatch: pytest.MonkeyPatch, every: float | None, gap: float) -> None:
    """Four new readers, each ready just before the next tick would be due: the ticks
    come at once and then every `every` seconds (never more than TICK_SECONDS) until the
    last is ready, whichever child is waited for. Each child's wait began its own
    schedule before, and none timed out: 3.6 s without one WATCHDOG=1, past a
    WatchdogSec=2 an admin may set."""
    ticks, ended = _ticks_of_a_start(monkeypatch, [0.9, 1.8, 2.7, 3.6], every)
    assert ticks and ticks[0] == 0.0
    times = [*ticks, ended]
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    assert max(gaps) <= gap + 1e-9, ticks
