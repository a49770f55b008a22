"""The daemon's main loop (`outboxd run`): watch, rescan, step every bundle,
hand claimed bundles to delivery workers, and shut down without losing any.

One thread owns the outbox (scanning, settling, claiming); `concurrency`
worker threads each make one delivery attempt at a time; retries wait in a
timer heap, so a bundle that backs off for minutes holds no worker.
"""

from __future__ import annotations

import heapq
import queue
import signal
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.config import Settings, load_settings, prepare_folders
from daemon.deliver import Deliverer, make_deliverer
from daemon.errors import ConfigError, OutboxdError
from daemon.journal import Journal
from daemon.notify import notify, watchdog_interval
from daemon.orphans import sweep as sweep_orphans
from daemon.pipeline import Pipeline
from daemon.readback import restore_sent
from daemon.scan import Listing, list_outbox
from daemon.watch import Watcher


class Service:
    def __init__(self, settings: Settings, config_path: Path | None = None,
                 deliverer_factory: Callable[[Settings], Deliverer] | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self._make_deliverer = deliverer_factory or (lambda s: make_deliverer(s.delivery))
        self.log = logs.get()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._reload = False
        self._hints: set[str] = set()
        self._hint_lock = threading.Lock()
        self._timers: list[tuple[float, int]] = []  # (monotonic due, row id)
        self._timer_lock = threading.Lock()
        self._scheduled: set[int] = set()
        self._jobs: queue.Queue[int | None] = queue.Queue()
        self._busy = 0
        self._reported_others: set[str] = set()

    def _deliverer(self, settings: Settings) -> Deliverer:
        """Build the transport; TLS files that cannot be loaded are a configuration error."""
        try:
            return self._make_deliverer(settings)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"[delivery] TLS settings cannot be used: {exc} — check verify, "
                              "client_cert and client_key") from None

    # -- signals and hints -----------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        self._stop.set()
        self._wake.set()

    def _request_reload(self, *_: Any) -> None:
        self._reload = True
        self._wake.set()

    def _hint(self, top: str) -> None:
        with self._hint_lock:
            self._hints.add(top)
        self._wake.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded in a test thread: the caller stops us with request_stop()
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self._request_reload)

    # -- delivery workers --------------------------------------------------------
    def schedule(self, row_id: int, delay: float) -> None:
        with self._timer_lock:
            if row_id in self._scheduled:
                return
            self._scheduled.add(row_id)
            heapq.heappush(self._timers, (time.monotonic() + delay, row_id))
        self._wake.set()

    def _release_due(self) -> float:
        """Queue the rows whose time has come; seconds until the next one."""
        now = time.monotonic()
        with self._timer_lock:
            while self._timers and self._timers[0][0] <= now:
                _, row_id = heapq.heappop(self._timers)
                self._jobs.put(row_id)
            return self._timers[0][0] - now if self._timers else float("inf")

    def _worker(self, pipeline: Pipeline) -> None:
        while True:
            row_id = self._jobs.get()
            if row_id is None or self._stop.is_set():
                return
            with self._timer_lock:
                self._busy += 1
            delay: float | None = None
            try:
                delay = pipeline.finish.attempt(row_id)
            except OutboxdError as exc:
                if not getattr(exc, "reported", False):  # the journal logs its own, once
                    self.log.error("delivery step failed", row=row_id, error=str(exc))
                delay = self.settings.delivery.retry_max_seconds
            except Exception:  # noqa: BLE001 - a bug in one bundle must not stop the others
                self.log.exception("unexpected error while delivering", row=row_id)
                delay = self.settings.delivery.retry_max_seconds
            finally:
                with self._timer_lock:
                    self._busy -= 1
                    self._scheduled.discard(row_id)
            if delay is not None and not self._stop.is_set():
                self.schedule(row_id, delay)
            self._wake.set()

    # -- the loop --------------------------------------------------------------------
    def _list(self) -> Listing:
        listing = list_outbox(self.settings.outbox)
        for name in listing.others:
            if name not in self._reported_others:
                self._reported_others.add(name)
                self.log.info("not an invoice file; left alone", file=name,
                              patterns=self.settings.outbox.invoice_patterns)
        for name, problem in listing.refused:
            if name not in self._reported_others:
                self._reported_others.add(name)
                self.log.error("invoice file cannot be used; left alone", file=name,
                               error=f"{name}: {problem}")
        return listing

    def _tick(self) -> float:
        settle = self.settings.outbox.settle_seconds
        return max(0.05, min(1.0, settle / 3 if settle else 0.05))

    def _do_reload(self, pipeline: Pipeline) -> None:
        self._reload = False
        if self.config_path is None:
            return
        try:
            new = load_settings(self.config_path)
            prepare_folders(new)
        except ConfigError as exc:
            self.log.error("configuration not reloaded; keeping the old one", error=str(exc))
            return
        if new.outbox.path != self.settings.outbox.path or \
                new.paths.state_dir != self.settings.paths.state_dir:
            self.log.error("outbox path and state_dir need a restart; keeping the old ones")
            return
        try:
            deliverer = self._deliverer(new)
        except ConfigError as exc:
            self.log.error("configuration not reloaded; keeping the old one", error=str(exc))
            return
        self.settings = new
        pipeline.reconfigure(new, deliverer).close()
        logs.configure(new.log)
        self.log.info("configuration reloaded")

    def run(self) -> int:
        s = self.settings
        prepare_folders(s)
        self._install_signals()
        journal = Journal(s.journal_path)
        restore_sent(journal, s.sent_dir, s.policy.duplicate_window_days)  # before any sending
        pipeline = Pipeline(s, journal, self._deliverer(s))
        for row_id, delay in pipeline.finish.recover():
            self.schedule(row_id, delay)
        sweep_orphans(journal, s)  # work folders no journal row knows: finish or put back
        listing = self._list()  # the startup scan: bundles dropped while we were down
        pipeline.forget_vanished(listing)
        watcher = Watcher(s.outbox.path, s.outbox.watch, s.outbox.poll_interval_seconds,
                          self._hint)
        self._start_watcher(watcher)
        workers = [threading.Thread(target=self._worker, args=(pipeline,), daemon=True,
                                    name=f"deliver-{n}") for n in range(s.delivery.concurrency)]
        for w in workers:
            w.start()
        self.log.info("outboxd running", outbox=str(s.outbox.path), watch=watcher.mode,
                      bundles=len(listing.candidates))
        notify("READY=1")
        keepalive = watchdog_interval()
        last_ping = last_rescan = time.monotonic()
        try:
            while not self._stop.is_set():
                journal.check()  # deleted or replaced under us: JournalLost ends run()
                now = time.monotonic()
                if self._reload:
                    notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
                    self._do_reload(pipeline)
                    notify("READY=1")
                with self._hint_lock:
                    hinted, self._hints = bool(self._hints), set()
                if hinted or now - last_rescan >= self.settings.outbox.rescan_seconds:
                    if not hinted:
                        last_rescan = now
                        self._start_watcher(watcher)
                        sweep_orphans(journal, self.settings)
                    try:
                        listing = self._list()
                    except OSError as exc:
                        self.log.error("cannot list the outbox", error=str(exc))
                for cand in list(listing.candidates.values()):
                    if self._stop.is_set():
                        break
                    try:
                        row_id = pipeline.step(cand, time.monotonic())
                    except OutboxdError as exc:
                        if not getattr(exc, "reported", False):  # the journal logs its own
                            self.log.error("bundle step failed", invoice_file=cand.invoice.name,
                                           error=str(exc))
                        continue
                    except Exception:  # noqa: BLE001 - one bad bundle must not stop the daemon
                        self.log.exception("unexpected error", invoice_file=cand.invoice.name)
                        continue
                    if row_id is not None:
                        self.schedule(row_id, 0.0)
                until_next = self._release_due()
                if keepalive and now - last_ping >= keepalive:
                    notify("WATCHDOG=1")
                    last_ping = now
                self._wake.wait(min(self._tick(), until_next))
                self._wake.clear()
        finally:
            self._shutdown(watcher, workers, journal, pipeline)
        return 0

    def _start_watcher(self, watcher: Watcher) -> None:
        """Start or restart the watcher; a failure is logged and retried at the next rescan."""
        try:
            if watcher.ensure_alive() and watcher.restarts > 1:
                self.log.warning("watcher was dead; restarted", restarts=watcher.restarts - 1)
        except OSError as exc:
            self.log.error("cannot watch the outbox; retrying at the next rescan",
                           outbox=str(self.settings.outbox.path), error=str(exc))

    def _shutdown(self, watcher: Watcher, workers: list[threading.Thread], journal: Journal,
                  pipeline: Pipeline) -> None:
        notify("STOPPING=1")
        self.log.info("stopping", grace_seconds=self.settings.service.shutdown_grace_seconds)
        watcher.stop()
        for _ in workers:
            self._jobs.put(None)
        deadline = time.monotonic() + self.settings.service.shutdown_grace_seconds
        for w in workers:
            w.join(timeout=max(0.0, deadline - time.monotonic()))
        if any(w.is_alive() for w in workers):
            # The journal still says "delivering": the next start resumes with
            # the same Idempotency-Key, so the receiver can tell a repeat.
            self.log.warning("abandoning deliveries still in flight; they resume at next start")
        else:
            pipeline.finish.d.close()
            journal.close()
        self.log.info("stopped")
