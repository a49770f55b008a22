"""Delivery workers: `[delivery] concurrency` threads that take claimed rows
and run one delivery attempt each (`Finisher.attempt`), on one connection
pool. A row is queued at most once at a time; what an attempt asks for next
(a retry in N seconds) goes back to the loop's timer heap."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable

from daemon import logs
from daemon.errors import JournalError, OutboxdError

# A journal that cannot be written backs off by itself: look again soon.
JOURNAL_RETRY = 1.0


class DeliveryWorkers:
    def __init__(self, attempt: Callable[[int], float | None],
                 schedule: Callable[[int, float], None], wake: Callable[[], None],
                 stopping: Callable[[], bool], retry_max: Callable[[], float]) -> None:
        self._attempt = attempt
        self._schedule = schedule
        self._wake = wake
        self._stopping = stopping
        self._retry_max = retry_max
        self._jobs: queue.Queue[int | None] = queue.Queue()
        self._inflight: set[int] = set()  # rows queued for or in a delivery attempt
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.log = logs.get()

    def start(self, count: int) -> None:
        self._threads = [threading.Thread(target=self._run, daemon=True, name=f"deliver-{n}")
                         for n in range(count)]
        for t in self._threads:
            t.start()

    def queue(self, row_id: int) -> None:
        with self._lock:
            if row_id in self._inflight:
                return  # queued or running: its worker reschedules it when done
            self._inflight.add(row_id)
        self._jobs.put(row_id)

    def stop(self, grace: float) -> bool:
        """Let attempts under way finish within `grace` seconds; False if some did not."""
        for _ in self._threads:
            self._jobs.put(None)
        deadline = time.monotonic() + grace
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _run(self) -> None:
        while True:
            row_id = self._jobs.get()
            if row_id is None or self._stopping():
                return
            delay: float | None = None
            try:
                delay = self._attempt(row_id)
            except OutboxdError as exc:
                if not getattr(exc, "reported", False):  # the journal logs its own, once
                    self.log.error("delivery step failed", row=row_id, error=str(exc))
                delay = JOURNAL_RETRY if isinstance(exc, JournalError) else self._retry_max()
            except Exception:  # noqa: BLE001 - a bug in one bundle must not stop the others
                self.log.exception("unexpected error while delivering", row=row_id)
                delay = self._retry_max()
            finally:
                with self._lock:
                    self._inflight.discard(row_id)
            if delay is not None and not self._stopping():
                self._schedule(row_id, delay)
            self._wake()
