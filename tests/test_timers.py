"""The one timer heap: each key fires once, at its latest setting, earliest first."""

from __future__ import annotations

from daemon.timers import Timers


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
        from daemon.timers import Waker
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

        from daemon.timers import Waker
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
