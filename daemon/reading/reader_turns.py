"""The reads' turns: reads are handed to the reader processes a few at a time
(`READS_AHEAD` a child), the rest wait here in the order they came, so that a check
after a claim or a delivery's conversion (which never wait here: `readers.py` routes
them at once) is not queued in a child behind a whole burst of reads. At a stop the
loop's reads still waiting are dropped (`drop_reads`), a delivery's keep their turn.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable

from daemon.errors import ReaderStopped
from daemon.reading.reader_child import Call, Result

Done = Callable[[Result], None]
_Waiting = tuple[Call, Done, bool]  # a read waiting for a slot: its call, done, for the loop
READS_AHEAD = 2  # reads handed to the children at once, per child (the rest wait in order)
STOPPING = "the daemon is stopping"


class ReadTurns:
    """Which read goes to a reader now and which waits. `route` hands a call on; a
    read's call answers through `finished`, which frees its slot or hands on the next."""

    def __init__(self, route: Callable[[Call], None]) -> None:
        self._route = route
        self._lock = threading.Lock()
        self._stopping = False
        self._out = 0
        # Each waits with its caller's `done` and whether it is the loop's (drop_reads)
        # or a delivery's.
        self._waiting: collections.deque[_Waiting] = collections.deque()
        self._loop_dropped = False

    def waiting(self) -> int:
        """Reads waiting for a slot (for tests and diagnostics)."""
        with self._lock:
            return len(self._waiting)

    def take(self, call: Call, done: Done, for_loop: bool, workers: int) -> None:
        """A read in its turn: handed on now if fewer than READS_AHEAD a child (at least
        two children's worth) are out, else waiting in order. `call` answers through
        `finished(done, …)`. `for_loop`: the loop's, which drop_reads answers at a stop;
        else a delivery's (or a command's)."""
        with self._lock:
            refused = self._stopping or (for_loop and self._loop_dropped)
            if not refused and self._out >= READS_AHEAD * max(2, workers):
                self._waiting.append((call, done, for_loop))
                return
            if not refused:
                self._out += 1
        if refused:
            done(ReaderStopped(STOPPING))
            return
        self._route(call)

    def finished(self, done: Done, result: Result) -> None:
        """A read finished: start the next waiting one in its slot, or free the slot
        (stopping: stop() has answered the waiting ones)."""
        try:
            done(result)
        finally:
            with self._lock:
                call = None
                if self._stopping:
                    pass  # no slots any more (and the waiting ones never took one)
                elif not self._waiting:
                    self._out -= 1
                else:
                    call = self._waiting.popleft()[0]
            if call is not None:
                self._route(call)

    def drop_reads(self) -> int:
        """The loop's reads still waiting answered ReaderStopped, and later ones at once;
        a delivery's keep their turn (see Readers.drop_reads). The number dropped."""
        with self._lock:
            self._loop_dropped = True
            dropped = [w for w in self._waiting if w[2]]
            self._waiting = collections.deque(w for w in self._waiting if not w[2])
        for _, done, _ in dropped:
            done(ReaderStopped(STOPPING))  # never held a slot: not through finished
        return len(dropped)

    def stop(self) -> list[Call]:
        """No read takes a turn any more; the calls that were waiting, for the caller
        to answer."""
        with self._lock:
            self._stopping = True
            waiting, self._waiting = list(self._waiting), collections.deque()
        return [call for call, _, _ in waiting]
