"""Reading off the loop: a settled version read, matched, validated and pre-flighted
(`finish.evaluate`) in the reader processes (readers.py), or on a test's own executor
in this process, and its result handed back to the loop with the settings it was made
under; the readers started with the e-invoice rules (before READY, again on SIGHUP).
A part of `Service` (a mixin, as `Changes`: it submits the loop's reads and marks the
bundles their results decide, so it shares the loop's state).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import TYPE_CHECKING

from daemon import einvoice
from daemon.bundle import Bundle
from daemon.configuration.config import Settings
from daemon.delivery.finish import evaluate
from daemon.reading.readers import Readers, needs_engine
from daemon.report.notify import notify
from daemon.watching.scan import Candidate
from daemon.watching.snapshot import Snapshot

if TYPE_CHECKING:
    from daemon.loop.pipeline import Pipeline
    from daemon.loop.timers import Waker
    from daemon.watching.index import OutboxIndex


class ReadsOffLoop:
    settings: Settings
    index: OutboxIndex
    pipeline: Pipeline
    _wake: Waker
    _reader: Executor | None  # a test's own executor: reads on it, in this process
    _readers: Readers | None  # the daemon's reader processes
    # Each read's result with the settings it was made under: one made before a
    # reload is read again (the channel, the rules or the patterns may differ now).
    _results: deque[tuple[str, Snapshot, Bundle | BaseException, Settings]]
    _mark: Callable[[str], None]  # changes.Changes's (no stub: it would hide that one)
    _keepalive: float | None  # half of WatchdogSec, under systemd's watchdog

    def _submit_read(self, key: str, snap: Snapshot) -> None:
        """The settled version `snap` of `key` read off the loop, under the settings in
        force now."""
        settings = self.settings
        if self._readers is not None:
            self._readers.submit(self.index.candidate(key), settings,
                                 lambda result: self._took(key, snap, result, settings))
        else:
            assert self._reader is not None
            self._reader.submit(self._read, key, self.index.candidate(key), snap, settings)

    def _read(self, key: str, cand: Candidate, snap: Snapshot, settings: Settings) -> None:
        """On a reader thread: read, match and validate one settled version."""
        result: Bundle | BaseException
        try:
            result = evaluate(cand, settings)
        except Exception as exc:  # noqa: BLE001 - handed back to the loop, which reports it
            result = exc
        self._took(key, snap, result, settings)

    def _took(self, key: str, snap: Snapshot, result: Bundle | BaseException,
              settings: Settings) -> None:
        """Any thread: a read's result for the loop, which decides."""
        self._results.append((key, snap, result, settings))
        self._wake.set()

    def _take_results(self, now: float) -> None:
        """The loop: the reads that came back, for their bundles' steps in this turn."""
        while self._results:
            key, snap, result, settings = self._results.popleft()
            if settings is not self.settings:
                self.pipeline.drop_read(key, snap)
                self._mark(key)
            elif self.pipeline.took_read(key, snap, result, now):
                self._mark(key)

    def _start_rules(self, s: Settings) -> None:
        """The readers, each with the e-invoice rules loaded (before READY; again on
        SIGHUP, to the readers the start made); a test's own executor reads in this
        process, with the engine here."""
        cache = s.paths.state_dir / "einvoice"
        if self._reader is not None:
            if needs_engine(s):
                einvoice.load(cache_dir=cache)
            return
        reload = self._readers is not None
        if self._readers is None:
            self._readers = Readers(cache)
        # ConfigError: the engine cannot load. New readers that hang are given up on
        # (reader_lifecycle.RELOAD_WAIT); until then the loop waits, and tells the watchdog it
        # lives: the wait has an end, and a restart would mend nothing. At once (the
        # loop's last WATCHDOG=1 may be half a WatchdogSec ago), then at least every
        # quarter of WatchdogSec, however short an admin set it.
        self._readers.configure(s, reload=reload, tick=self._alive if reload else None,
                                every=self._keepalive / 2 if self._keepalive else None)

    def _alive(self) -> None:
        """WATCHDOG=1 while a reload waits for new readers (under systemd's watchdog)."""
        if self._keepalive:
            notify("WATCHDOG=1")
