"""Delivery workers: `[delivery] concurrency` threads that take claimed rows
and run one delivery attempt each (`Finisher.attempt`), on one connection
pool. A row is queued at most once at a time; what an attempt asks for next
(a retry in N seconds) goes back to the loop's timer heap.

Deliveries before archives: once an HTTP receiver has a bundle and its receipt
is journaled (`delivered`, made durable by the archive before it moves
anything), the move into sent/ (the papers, the rename, their syncs) waits
while deliveries are queued, and is done when a worker has none to take — or
once it has waited ARCHIVE_WAIT, so a steady stream cannot starve it. In a
burst the workers keep posting instead of writing to the local disk between
two POSTs, and the archive work does not compete with the receiver; the row
shows as delivering until its folder is in sent/. At stop, the archives still
waiting are done within the grace period; what is left, recovery does at the
next start (see docs/architecture.md, "Deliveries before archives").
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable
from typing import Any

from daemon import logs
from daemon.errors import JournalError, OutboxdError
from daemon.osthreads import show_name

# A journal that cannot be written backs off by itself: look again soon.
JOURNAL_RETRY = 1.0
# Seconds an archive may wait behind queued deliveries before it goes first.
ARCHIVE_WAIT = 5.0


class DeliveryWorkers:
    def __init__(self, attempt: Callable[[int], float | None],
                 schedule: Callable[[int, float], None], wake: Callable[[], None],
                 stopping: Callable[[], bool], retry_max: Callable[[], float],
                 clock: Callable[[], float] = time.monotonic,
                 log_for: Callable[[int], Any] | None = None) -> None:
        self._attempt = attempt
        # A row's log bound to its bundle (logs.bundle_log), for what an attempt lets
        # escape: a bundle event like any other (docs/operations.md, Logs), not a bare
        # row number.
        self._log_for = log_for
        self._schedule = schedule
        self._wake = wake
        self._stopping = stopping
        self._retry_max = retry_max
        self._clock = clock
        self._cv = threading.Condition()
        self._jobs: collections.deque[int] = collections.deque()  # rows to deliver
        self._archives: collections.deque[tuple[int, float]] = collections.deque()  # (row, since)
        self._handed: set[int] = set()  # archives handed over by attempts still running
        self._inflight: set[int] = set()  # rows queued for, or in, an attempt or an archive
        self._running: set[int] = set()  # rows in an attempt or an archive now
        # Rows asked for again while running (a reload brought them forward): they go
        # again as soon as the attempt ends, whatever delay it asked for.
        self._again: set[int] = set()
        self._closing = False  # stop(): no new deliveries; the waiting archives are done
        self._threads: list[threading.Thread] = []
        self.log = logs.get()

    def start(self, count: int) -> None:
        self._threads = [threading.Thread(target=self._run, daemon=True, name=f"deliver-{n}")
                         for n in range(count)]
        for t in self._threads:
            t.start()
            show_name(t)

    def _row_log(self, row_id: int) -> Any:
        """The log for one row's event: its bundle's keys bound, or the bare log where
        the journal cannot say which bundle it is (the error may be the journal's)."""
        if self._log_for is not None:
            try:
                return self._log_for(row_id)
            except Exception:  # noqa: BLE001 - the event is said all the same
                pass
        return self.log

    def queue(self, row_id: int) -> None:
        with self._cv:
            if row_id in self._inflight:
                if row_id in self._running:
                    self._again.add(row_id)
                return  # queued, or running: its worker reschedules it when done
            self._inflight.add(row_id)
            self._jobs.append(row_id)
            self._cv.notify()

    def archive_later(self, row_id: int) -> None:
        """Called from an attempt whose bundle the receiver has (its row
        `delivered`): archive it once no delivery waits, or after ARCHIVE_WAIT.
        It waits from the end of that attempt (no other worker may start it
        sooner), and the row stays in flight, so it is never queued twice."""
        with self._cv:
            self._handed.add(row_id)

    def stop(self, grace: float) -> bool:
        """Let attempts under way finish, and the waiting archives be done, within
        `grace` seconds; False if some did not."""
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        deadline = time.monotonic() + grace
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def running(self) -> set[int]:
        """The rows whose attempt or archive is under way now (after a stop whose grace
        ran out: the ones abandoned)."""
        with self._cv:
            return set(self._running)

    def _next(self) -> int | None:
        """The next row for this worker; None when it should end."""
        with self._cv:
            while True:
                ending = self._closing or self._stopping()
                row_id: int | None = None
                if self._archives and (
                        ending or not self._jobs
                        or self._clock() - self._archives[0][1] >= ARCHIVE_WAIT):
                    row_id = self._archives.popleft()[0]
                elif ending:
                    return None  # deliveries not started resume at the next start
                elif self._jobs:
                    row_id = self._jobs.popleft()
                if row_id is not None:
                    self._running.add(row_id)
                    return row_id
                self._cv.wait()

    def _run(self) -> None:
        while (row_id := self._next()) is not None:
            delay: float | None = None
            try:
                delay = self._attempt(row_id)
            except OutboxdError as exc:
                if not getattr(exc, "reported", False):  # the journal logs its own, once
                    self._row_log(row_id).error("delivery step failed", row=row_id,
                                                error=str(exc))
                delay = JOURNAL_RETRY if isinstance(exc, JournalError) else self._retry_max()
            except Exception:  # noqa: BLE001 - a bug in one bundle must not stop the others
                self._row_log(row_id).exception("unexpected error while delivering",
                                                row=row_id)
                delay = self._retry_max()
            finally:
                with self._cv:
                    self._running.discard(row_id)
                    again = row_id in self._again
                    self._again.discard(row_id)
                    if row_id in self._handed:  # in flight until archived
                        self._handed.discard(row_id)
                        self._archives.append((row_id, self._clock()))
                        self._cv.notify()
                    else:
                        self._inflight.discard(row_id)
            if delay is not None and not self._stopping():
                self._schedule(row_id, 0.0 if again else delay)
            self._wake()
