"""The one timer heap: each key fires once, at its latest setting, earliest first."""

from __future__ import annotations

import inspect
import time

import pytest

from daemon.loop.service import Service
from daemon.loop.timers import Timers, loop_clock


class TestTimers:
    def test_keys_fire_once_in_due_order(self) -> None:
        """Due keys come out earliest first, each once; later ones stay for later."""
        t = Timers()
        t.at("b", 20.0)
        t.at("a", 10.0)
        t.at("c", 30.0)
        assert t.pop_due(25.0) == ["a", "b"]
        assert t.pop_due(25.0) == []
        assert t.next_due() == 30.0

    def test_setting_a_key_again_moves_it(self) -> None:
        """A settle deadline moved ten times in a burst fires once, at its last time."""
        t = Timers()
        for n in range(10):
            t.at(("bundle", "INV-1.xml"), 100.0 + n)
        assert t.next_due() == 109.0
        assert t.pop_due(105.0) == []
        assert t.pop_due(109.0) == [("bundle", "INV-1.xml")]
        assert t.next_due() is None and len(t) == 0

    def test_a_key_can_be_moved_earlier(self) -> None:
        """Moving a key earlier makes it fire at the earlier time and not again later."""
        t = Timers()
        t.at("k", 50.0)
        t.at("k", 5.0)
        assert t.pop_due(5.0) == ["k"]
        assert t.pop_due(60.0) == []

    def test_any_clock_value_works(self) -> None:
        """Times are plain numbers from the service's clock: 0 and 10⁹ behave alike."""
        for base in (0.0, 1e9):
            t = Timers()
            t.at("k", base + 1)
            assert t.pop_due(base) == [] and t.pop_due(base + 1) == ["k"]


class TestWaker:
    def test_a_set_before_the_wait_is_not_lost(self) -> None:
        """Something that arrives while the loop is busy (before it waits) wakes the next
        wait, and is consumed by it: the wait after that sleeps its timeout."""
        from daemon.loop.timers import Waker
        w = Waker()
        w.set()
        w.set()
        assert w.wait(60.0) is True
        assert w.wait(0.05) is False

    def test_a_signal_handler_can_wake_the_loop(self) -> None:
        """The waker is set from a signal handler (SIGTERM stops the daemon this way)
        without taking any lock the interrupted thread might hold."""
        import os
        import signal

        from daemon.loop.timers import Waker
        w = Waker()
        previous = signal.signal(signal.SIGUSR1, lambda *_: w.set())
        try:
            os.kill(os.getpid(), signal.SIGUSR1)
            assert w.wait(60.0) is True
        finally:
            signal.signal(signal.SIGUSR1, previous)


def test_sooner_moves_a_key_earlier_but_never_later() -> None:
    """A retry an attempt asks for does not push back one a reload set sooner."""
    t = Timers()
    t.sooner("row", 10.0)
    t.sooner("row", 3600.0)
    assert t.due_at("row") == 10.0
    t.sooner("row", 0.0)
    assert t.pop_due(0.0) == ["row"] and t.next_due() is None
    t.sooner("row", 5.0)  # fired: a new one is set
    assert t.due_at("row") == 5.0


def test_a_cancelled_key_never_fires_and_the_others_still_do() -> None:
    """A bundle that left the outbox before its wait deadline: its key does not fire;
    a key set after the cancel, and the other keys, fire as set."""
    t = Timers()
    t.at("gone", 3600.0)
    t.at("other", 10.0)
    t.cancel("gone")
    t.cancel("never set")  # nothing to do
    assert t.due_at("gone") is None and len(t) == 1
    assert t.pop_due(4000.0) == ["other"]
    t.at("gone", 5000.0)  # the same invoice file dropped again
    assert t.pop_due(5000.0) == ["gone"]


def test_cancelled_and_moved_keys_far_ahead_are_let_go_before_their_time() -> None:
    """A daemon that runs for months: thousands of waiting bundles released before their
    deadlines of an hour, and settle times moved again and again, leave neither a key nor a
    heap entry each (the heap is rebuilt once most of it is stale); what is still set
    fires in order."""
    t = Timers()
    for n in range(5000):
        t.at(("bundle", f"INV-{n}.xml"), 3600.0 + n)
        t.at(("bundle", f"INV-{n}.xml"), 3700.0 + n)  # moved: the first entry is stale
        t.cancel(("bundle", f"INV-{n}.xml"))
    t.at("rescan", 60.0)
    t.at("late", 9000.0)
    assert len(t) == 2
    assert len(t._heap) <= 2 * len(t) + 64  # the map's cleanup: nothing of the 5,000 kept
    assert t.pop_due(10_000.0) == ["rescan", "late"]


class TestLoopClock:
    """The daemon's schedules run on a clock that counts a suspend of the machine, as the
    journal's wall-clock deadlines do, and that a step of the wall clock does not move."""

    def test_a_wait_set_before_a_suspend_is_due_at_the_resume(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A 300 s wait set, then the VM suspended 8 h (CLOCK_MONOTONIC stands still,
        CLOCK_BOOTTIME goes on): it is due at the resume, not 300 s after it as on
        CLOCK_MONOTONIC (a deadline the page showed as 10:00 ended at 18:00)."""
        real, slept = time.clock_gettime, [0.0]

        def clock_gettime(which: int) -> float:
            return real(which) + (slept[0] if which == time.CLOCK_BOOTTIME else 0.0)
        monkeypatch.setattr(time, "clock_gettime", clock_gettime)
        timers = Timers()
        timers.at("wait", loop_clock() + 300)
        assert timers.pop_due(loop_clock()) == []
        slept[0] = 8 * 3600.0
        assert timers.pop_due(loop_clock()) == ["wait"]

    def test_the_daemon_schedules_on_it(self) -> None:
        """`outboxd run` builds its Service with the default clock: that one."""
        assert inspect.signature(Service).parameters["clock"].default is loop_clock


def test_a_key_moved_later_does_not_fire_at_its_old_time() -> None:
    """A settle deadline pushed back by a change: its old heap entry, surfacing at the old
    time, fires nothing (the bundle is not looked at before its new quiet period ends);
    the key fires once, at its new time."""
    t = Timers()
    t.at("k", 10.0)
    t.at("k", 20.0)
    assert t.pop_due(15.0) == []
    assert t.pop_due(20.0) == ["k"]
    assert t.pop_due(30.0) == []


def test_a_flood_of_wakes_while_the_loop_is_busy_never_fails_and_is_consumed_at_once() -> None:
    """A watcher thread wakes the loop for each of 100,000 events while the loop is busy
    (a large copy into the outbox): the pipe fills, and set() neither fails nor blocks
    the watcher; the loop's next wait returns at once and takes every wake, so the wait
    after it sleeps again."""
    from daemon.loop.timers import Waker
    w = Waker()
    try:
        for _ in range(100_000):
            w.set()
        assert w.wait(None) is True
        assert w.wait(0.0) is False
    finally:
        w.close()
