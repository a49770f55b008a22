"""Timers: one heap for everything time-driven in the daemon.

Settle deadlines, attachment-wait deadlines, claim-retry pauses, delivery
retries, the rescan and the systemd watchdog ping all wait here, so the loop
sleeps until the next event or the next due time and never ticks. Times are
monotonic seconds from the clock the service was given: `loop_clock` in the daemon.

A key has at most one due time: setting it again moves it (the old heap
entry is skipped when it surfaces), so a bundle whose settle deadline moves
ten times in a burst still fires once.
"""

from __future__ import annotations

import heapq
import itertools
import os
import select
import threading
import time
from collections.abc import Hashable


def loop_clock() -> float:
    """The daemon's clock for its schedules: monotonic, and counting the time the machine
    was suspended (CLOCK_BOOTTIME). CLOCK_MONOTONIC stands still in a suspend, so a VM
    suspended 8 h woke with every wait set before it 8 h behind the journal's wall-clock
    deadlines: a wait for attachments shown as ending at 10:00 ended at 18:00, the page
    meanwhile saying it waited past its deadline. Time limits that tell a hang (the
    readers', an answer's, the hang watch's) stay on time.monotonic: a suspend is none."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class Timers:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Hashable]] = []
        self._due: dict[Hashable, float] = {}
        self._seq = itertools.count()
        self._lock = threading.Lock()  # delivery workers schedule their retries here

    def at(self, key: Hashable, due: float) -> None:
        """Fire `key` at monotonic time `due`, replacing any earlier setting of it."""
        self._set(key, due, later=True)

    def sooner(self, key: Hashable, due: float) -> None:
        """Fire `key` at `due` unless it is set to fire earlier already."""
        self._set(key, due, later=False)

    def _set(self, key: Hashable, due: float, later: bool) -> None:
        """Set key's due time; `later`: also when that moves it later."""
        with self._lock:
            if not later and key in self._due and self._due[key] <= due:
                return
            self._due[key] = due
            heapq.heappush(self._heap, (due, next(self._seq), key))
            self._compact()

    def cancel(self, key: Hashable) -> None:
        """`key` does not fire (a bundle that left the outbox: its wait deadline may be
        hours away). Its heap entry is skipped when it surfaces, as a moved one is."""
        with self._lock:
            if self._due.pop(key, None) is not None:
                self._compact()

    def _compact(self) -> None:
        """Rebuild the heap once most of it is stale: entries of cancelled keys, and of
        keys set far ahead and moved since, would stay until their old time came."""
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [(due, next(self._seq), key) for key, due in self._due.items()]
            heapq.heapify(self._heap)

    def due_at(self, key: Hashable) -> float | None:
        with self._lock:
            return self._due.get(key)

    def pop_due(self, now: float) -> list[Hashable]:
        """The keys whose time has come, earliest first; each fires once."""
        out: list[Hashable] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now:
                due, _, key = heapq.heappop(self._heap)
                if self._due.get(key) == due:
                    del self._due[key]
                    out.append(key)
        return out

    def next_due(self) -> float | None:
        """The earliest live due time, or None when nothing is scheduled."""
        with self._lock:
            while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
                heapq.heappop(self._heap)  # moved: drop the stale entry
            return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._due)


class Waker:
    """Wakes the loop from any thread or from a signal handler.

    A self-pipe rather than a threading.Event: Event.set() takes a lock, and a
    signal handler that runs while the loop's own thread holds that lock (in
    clear() or wait()) deadlocks the daemon on SIGTERM. A write to a pipe
    takes no Python lock.
    """

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)

    def set(self) -> None:
        try:
            os.write(self._w, b"!")
        except BlockingIOError:
            pass  # the pipe is full: the loop is awake anyway

    def wait(self, timeout: float | None) -> bool:
        """Sleep until set() or timeout; what set() before is consumed. True if woken."""
        woken, _, _ = select.select([self._r], [], [], timeout)
        try:
            while os.read(self._r, 4096):
                pass
        except BlockingIOError:
            pass
        return bool(woken)

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)
