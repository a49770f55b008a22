"""The dirty bundles stepped, one loop turn's claims made together at its end, and what
each step hands back applied (timers, reads, deliveries). A part of `Service` (a mixin,
as `Changes` and `Stopping`: it works on the loop's own state). One bundle whose step
fails never stops the others: a failure is logged, and a timer looks at it again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from daemon import logs
from daemon.delivery.workers import JOURNAL_RETRY
from daemon.errors import JournalError, OutboxdError, refused
from daemon.watching.snapshot import snapshot

if TYPE_CHECKING:
    from daemon.configuration.config import Settings
    from daemon.delivery.workers import DeliveryWorkers
    from daemon.loop.pipeline import Next, Pipeline
    from daemon.loop.timers import Timers
    from daemon.watching.index import OutboxIndex
    from daemon.watching.settle import Pacer
    from daemon.watching.snapshot import Snapshot


class Stepping:
    settings: Settings
    log: Any
    clock: Callable[[], float]
    timers: Timers
    index: OutboxIndex
    pipeline: Pipeline
    workers: DeliveryWorkers
    _dirty: dict[str, Snapshot | None]
    _pacer: Pacer
    _stopping: bool
    _submit_read: Callable[[str, Snapshot], None]  # offloop.ReadsOffLoop's

    def _apply(self, key: str, nxt: Next) -> None:
        if nxt.gone:
            # Its sidecar, if left behind, may be a look-alike of another bundle's now: that
            # one is stepped at the next turn (a timer: this turn's dirty set is taken).
            for other in self.index.remove(key):
                self.timers.sooner(("bundle", other), self.clock())
            self._pacer.forget(key)
            # A wait deadline (attachment_wait_seconds, hours maybe) of a bundle that was
            # released, sent or removed: kept, one entry per such bundle until then.
            self.timers.cancel(("bundle", key))
        if nxt.claimed is not None:
            self.workers.queue(nxt.claimed)
        if nxt.at is not None:
            self.timers.at(("bundle", key), nxt.at)
        if nxt.read is not None:
            self._submit_read(key, nxt.read)

    def _step_dirty(self, now: float) -> None:
        dirty, self._dirty = self._dirty, {}
        # The claims decided in this turn are made together at its end (one
        # journal sync and one sync per folder for all, see Pipeline.claim_held).
        self.pipeline.hold_claims()
        try:
            for key, snap in dirty.items():
                if self._stopping:
                    return
                cand = self.index.candidate(key)
                try:
                    if snap is None:  # an event's or a timer's: look now
                        snap = snapshot(cand, self.settings.outbox)
                        self._pacer.looked(key, now, len(snap.entries) if snap else 0)
                    nxt = self.pipeline.step(cand, now, snap)
                except Exception as exc:  # noqa: BLE001 - one bad bundle must not stop the daemon
                    self._step_failed(key, exc, now)
                    continue
                self._apply(key, nxt)
        finally:
            # Stopping: claims not yet made are dropped; the next start decides again.
            held = iter(()) if self._stopping else self.pipeline.claim_held(now)
            self.pipeline.hold_claims(False)
            for key, result in held:
                if isinstance(result, Exception):
                    self._step_failed(key, result, now)
                else:
                    self._apply(key, result)

    def _step_failed(self, key: str, exc: Exception, now: float) -> None:
        log = logs.bundle_log(self.log, key, None, ())
        if isinstance(exc, OSError):
            # The share or a folder's permissions, not a bug: said without a traceback,
            # and looked at again, as nothing may change to bring an event.
            log.error("cannot look at the bundle; will try again", error=refused(exc),
                      retry_in=self.settings.outbox.rescan_seconds)
        elif not isinstance(exc, OutboxdError):
            # A bug, but maybe one of a moment (a race with a clerk's rename): looked at
            # again at the rescan interval as well. Left alone, the bundle stayed settling
            # for good, its look unchanged, so that no rescan ever stepped it again.
            log.error("unexpected error; will try again", exc_info=exc,
                      retry_in=self.settings.outbox.rescan_seconds)
        elif not getattr(exc, "reported", False):  # the journal logs its own, once
            log.error("bundle step failed", error=str(exc))
        # Nothing else would step it again until it changes: a timer does.
        self.timers.at(("bundle", key), now + (
            JOURNAL_RETRY if isinstance(exc, JournalError)
            else self.settings.outbox.rescan_seconds))
