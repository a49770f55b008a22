"""The stop: the daemon's parts closed in the right order, a start that failed
abandoned cleanly, and the state dir's lock released. A part of `Service` (a mixin,
as `Changes` and `Reloading`: it closes what the loop opened, so it shares the
loop's state).

- a stop (SIGTERM, SIGINT): the watcher, then the loop's queued reads dropped, the
  deliveries given their grace period (the readers still serving them), the readers,
  the clerks' page, the journal; a delivery still in flight at the end of the grace
  period is left as the journal has it, and named in the log;
- a part of the stop that fails (the page on a share gone, a journal that cannot be
  written) is one error line, and the rest still runs: the fingerprint withdrawn, the
  journal closed, the state dir released, in that order;
- a start that failed (`open()` raised): whatever it had started is stopped, so the
  process exits with the start's error instead of waiting for its readers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from concurrent.futures import Executor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import logs
from daemon.errors import OutboxdError, in_words, shown_text
from daemon.loop import statelock
from daemon.report.notify import notify

if TYPE_CHECKING:
    from daemon.configuration.config import Settings
    from daemon.configuration.deciding import Deciding
    from daemon.delivery.workers import DeliveryWorkers
    from daemon.journal import Journal
    from daemon.loop.changes import WatcherLike
    from daemon.loop.pipeline import Pipeline
    from daemon.reading.readers import Readers
    from daemon.report.publish import Publisher
    from daemon.watching.index import OutboxIndex
    from daemon.watching.leftalone import LeftAlone


# What a stop may take beyond the deliveries' grace: the readers' own stop (up to
# reader_pool.STOP_GRACE for each of its steps, when a child must be killed), the
# clerks' page (seconds with tens of thousands waiting) and the journal's close.
AFTER_GRACE_SECONDS = 30.0


# What a stop can meet from a share gone, a full disk or a journal that cannot be
# written: one error line each, no traceback, and the stop goes on.
_EXPECTED = (OSError, sqlite3.Error, OutboxdError)
STOP_INCOMPLETE = "a part of the stop failed; the rest of it goes on"


def stop_budget(grace: float) -> str:
    """The EXTEND_TIMEOUT_USEC= message for a stop with this grace: systemd then waits
    the whole stop out, also with a shutdown_grace_seconds raised in the configuration
    alone, above the unit's TimeoutStopSec= (which only ever lengthens, never shortens)."""
    return f"EXTEND_TIMEOUT_USEC={int((grace + AFTER_GRACE_SECONDS) * 1_000_000)}"


class Stopping:
    settings: Settings
    log: Any
    watcher: WatcherLike
    workers: DeliveryWorkers
    journal: Journal
    pipeline: Pipeline
    publish: Publisher
    deciding: Deciding
    index: OutboxIndex
    left_alone: LeftAlone
    _reader: Executor | None
    _readers: Readers | None
    _state_dir: Path | None  # held (statelock) from open() to the stop

    def _shutdown(self) -> None:
        grace = self.settings.service.shutdown_grace_seconds
        notify("STOPPING=1")
        notify(stop_budget(grace))
        self.log.info("stopping", grace_seconds=grace)
        # Until the deliveries are known to have ended, some may still run: the journal
        # is then left open for them, as at a stop whose grace period ran out.
        ended: list[bool] = []
        unexpected: Exception | None = None
        for step in self._work_steps(grace, ended):
            failed = self._stop_step(step)
            unexpected = unexpected or failed
        delivered = ended == [True]
        # After the deliveries, whose outcome it lists: the clerks' page must not go on
        # showing everything as moving while nothing is (a kill cannot say so, a stop can).
        # Then the tail, whatever failed before, in this order: the fingerprint withdrawn
        # while the state dir is still held (the next daemon of this machine writes its
        # own under the same name as soon as it holds it, and that one must stay), the
        # state dir released last, also when the journal cannot be closed.
        for step in (partial(self.publish.stopped, self.journal, self.settings,
                             self.index.candidates, self.left_alone.refused, self.index.lone),
                     partial(self.deciding.withdraw, self.settings),
                     partial(self._close_journal, delivered),
                     self._release_state_dir):
            failed = self._stop_step(step)
            unexpected = unexpected or failed
        if unexpected is not None:
            raise unexpected
        self.log.info("stopped")

    def _work_steps(self, grace: float, ended: list[bool]) -> list[Callable[[], object]]:
        """The watcher, the reads, the deliveries and the readers ended, each a step of
        its own: a watcher or a reader pool that fails to stop must not keep the
        deliveries from being told to end (they went on posting and writing the journal
        after the state dir was released), nor the readers from stopping. `ended` gets
        whether every delivery ended within the grace period."""
        steps: list[Callable[[], object]] = [self.watcher.stop]
        if self._reader is not None:
            steps.append(partial(self._reader.shutdown, wait=False, cancel_futures=True))
        # The deliveries first: one waiting for a reader (an image converted into its
        # work folder, a bundle read again after a restart) ends within the grace
        # period rather than failing for a reader gone. The loop's reads still queued
        # are dropped before (done again at the next start): worked through, they
        # would take the readers' time from those deliveries.
        if self._readers is not None:
            steps.append(self._readers.drop_reads)
        steps.append(lambda: ended.append(self.workers.stop(grace)))
        if self._readers is not None:
            steps.append(self._readers.stop)
        return steps

    def _close_journal(self, delivered: bool) -> None:
        if not delivered:
            # The journal still says "delivering": the next start resumes with
            # the same Idempotency-Key, so the receiver can tell a repeat.
            self.log.warning("abandoning deliveries still in flight; they resume at next start")
            self._log_abandoned()
        else:
            try:
                self.pipeline.finish.d.close()
            finally:  # a connection pool that fails to close leaves the journal to close
                self.journal.close()

    def _stop_step(self, step: Callable[[], object]) -> Exception | None:
        """One step of the stop: an expected failure is one error line, and the steps
        after it still run; a bug is returned, for the stop to raise once it has run
        every step."""
        try:
            step()
        except _EXPECTED as exc:
            self.log.error(STOP_INCOMPLETE, error=in_words(exc, writing=True))
        except Exception as exc:  # noqa: BLE001 - the rest of the stop must still run
            self.log.error(STOP_INCOMPLETE, error=shown_text(exc))
            return exc
        return None

    def _log_abandoned(self) -> None:
        """Which bundles a stop left in flight, one bundle event each: the log says what
        the next start resumes (and why the receiver may see a POST of it twice)."""
        for row_id in sorted(self.workers.running()):
            try:
                row = self.journal.get(row_id)
            except (OutboxdError, sqlite3.Error):  # the stop goes on; the row stays as it is
                continue
            logs.bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids).warning(
                "delivery abandoned at stop; resumes at next start with the same "
                "Idempotency-Key", state=row.state)

    def _abandon_start(self) -> None:
        """open() failed (a damaged journal, a full disk, a CA file that is not one):
        stop what it had started, so the process can exit with the error. The reader
        processes above all: left running, the exit would wait for them forever."""
        if (deciding := getattr(self, "deciding", None)) is not None:
            # Written at the start: left, a daemon that never ran would be compared with
            # for a day, and a new server of this name refused that long (samename.py).
            # Before the state dir is freed: the next daemon here writes its own under
            # this name as soon as it holds it, and that one must stay.
            deciding.withdraw(self.settings)
        self._release_state_dir()
        watcher = getattr(self, "watcher", None)  # set only once open() got that far
        stops: list[Callable[[], None]] = []
        if self._readers:
            stops.append(self._readers.stop)
        if watcher:
            stops.append(watcher.stop)
        if self._reader:
            stops.append(partial(self._reader.shutdown, wait=False, cancel_futures=True))
        for stop in stops:
            try:
                stop()
            except Exception:  # noqa: BLE001 - the start's own error is the one to report
                self.log.exception("could not stop a part started before the failure")

    def _release_state_dir(self) -> None:
        if self._state_dir is not None:
            statelock.release(self._state_dir)
            self._state_dir = None
