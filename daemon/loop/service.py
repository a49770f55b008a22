"""The daemon's main loop (`outboxd run`): events in, bundles stepped, bundles out.

The cost follows what changes, not how much waits in the outbox:
- a watcher event names a top-level entry; the index maps it to the
  bundle(s) it concerns, which become *dirty*; only dirty bundles are
  snapshotted and stepped;
- everything time-driven (settle deadlines, attachment deadlines, claim
  retries, delivery retries, the rescan, the systemd watchdog) waits in one
  timer heap; the loop sleeps until the next event or due time, no tick;
- the periodic rescan is the only full pass: a stat-level listing compared
  with what each bundle last looked like; unchanged bundles cost nothing more;
- reading, validating and pre-flighting a settled version (pypdf, Pillow, the
  e-invoice rules), and converting a claimed bundle's images to PDF at delivery,
  run in reader processes (readers.py), off this process's interpreter lock and
  memory; `concurrency` delivery workers (workers.py) post on one
  connection pool.
One thread (this loop) owns the outbox: snapshots, decisions, claims. How hints
and the rescan become dirty bundles is `changes.Changes`; the reads handed to the
readers and their results taken back, `offloop.ReadsOffLoop`; the dirty bundles
stepped and their claims made, `stepping.Stepping`; SIGHUP is
`reload.Reloading`; the stop (and a start that failed) is `stopping.Stopping`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from daemon import GROUP_SIGNALS, einvoice, logs
from daemon.archiving.quarantinenews import QuarantineNews
from daemon.archiving.readback import restore_sent
from daemon.archiving.retrykilled import InterruptedRetries
from daemon.archiving.sentnews import SentNews
from daemon.bundle import Bundle
from daemon.claiming.claim import copy_tag
from daemon.claiming.orphans import Orphans
from daemon.claiming.samename import check_name
from daemon.configuration.config import Settings
from daemon.configuration.config_credentials import plain_http_warning
from daemon.configuration.config_folders import prepare_folders, private_tmp_warning
from daemon.configuration.config_warnings import list_warnings
from daemon.configuration.deciding import RENEW, Deciding
from daemon.configuration.secret_files import exposure_warnings
from daemon.delivery.deliver import Deliverer, make_deliverer
from daemon.delivery.directory import clear_target
from daemon.delivery.scrub import short_secrets_warning
from daemon.delivery.workers import DeliveryWorkers
from daemon.errors import describe
from daemon.journal import Journal
from daemon.loop import statelock
from daemon.loop.changes import QUARANTINE_NEWS, RESCAN, SENT_NEWS, Changes, WatcherLike
from daemon.loop.hangwatch import HangWatch, looked_at
from daemon.loop.offloop import ReadsOffLoop
from daemon.loop.pipeline import Pipeline
from daemon.loop.reload import Reloading, sends_as, trusts_as
from daemon.loop.stepping import Stepping
from daemon.loop.stopping import Stopping
from daemon.loop.timers import Timers, Waker, loop_clock
from daemon.reading.readers import Readers
from daemon.report.notify import StartProgress, notify, watchdog_interval
from daemon.report.publish import Publisher
from daemon.watching.index import OutboxIndex
from daemon.watching.leftalone import LeftAlone
from daemon.watching.outage import Outage
from daemon.watching.scan import Candidate, list_outbox
from daemon.watching.settle import Pacer
from daemon.watching.sharecache import LATE_SHARE, late_share
from daemon.watching.snapshot import Snapshot
from daemon.watching.watch import Watcher

WATCHDOG: Hashable = ("watchdog",)
# The fingerprint's renewal on its own timer: at rescans alone, a daemon whose
# rescan_seconds is a day or more was said by the others to run no more.
RENEWAL: Hashable = ("deciding",)


class Service(Changes, ReadsOffLoop, Stepping, Reloading, Stopping):
    def __init__(self, settings: Settings, config_path: Path | None = None,
                 deliverer_factory: Callable[[Settings], Deliverer] | None = None,
                 clock: Callable[[], float] = loop_clock,
                 watcher_factory: Callable[[Settings, Callable[[str], None]], WatcherLike]
                 | None = None,
                 reader: Executor | None = None, hangs: HangWatch | None = None) -> None:
        self.settings = settings
        self.config_path = config_path
        self._make_deliverer = deliverer_factory or (lambda s: make_deliverer(s.delivery))
        self._make_watcher = watcher_factory or (lambda s, hint: Watcher(
            s.outbox.path, s.outbox.watch, s.outbox.poll_interval_seconds, hint))
        self.clock = clock
        self.log = logs.get()
        self._state_dir: Path | None = None  # held (statelock) from open() to the stop
        self.timers = Timers()
        # A plain flag and a pipe: both are safe to touch from a signal handler.
        self._stopping = False
        self._wake = Waker()
        self._relist = False  # the next rescan classifies every name again (after a reload)
        self._root_lost = False
        self._sends_as: tuple[object, ...] | None = None  # (reload.py) url and token in force
        self._trusts_as: tuple[object, ...] | None = None  # (reload.py) CAs and certificates
        self._reload = False
        self._reload_when_back = False  # (reload.py) one waits for the outbox to be back
        self._hints: set[str] = set()
        self._hint_lock = threading.Lock()
        self._dirty: dict[str, Snapshot | None] = {}
        self._pacer = Pacer()  # a bundle of many files is not looked at on every event
        self.workers = DeliveryWorkers(
            attempt=lambda row_id: self.pipeline.finish.attempt(row_id), schedule=self.schedule,
            wake=self._wake.set, stopping=lambda: self._stopping,
            retry_max=lambda: self.settings.delivery.retry_max_seconds, clock=clock,
            log_for=self._row_log)
        self._reader = reader  # see offloop.ReadsOffLoop
        self._readers: Readers | None = None
        self._results: deque[tuple[str, Snapshot, Bundle | BaseException, Settings]] = deque()
        self.left_alone = LeftAlone(self.log)
        self.outage = Outage(self.log, settings.outbox.path)  # the outbox away: said once
        self._keepalive = watchdog_interval()
        self.publish = Publisher(clock)  # STATUS= and the share's status page
        # `outboxd run`'s, started before its first look at the outbox (the configuration's).
        self.hangs = hangs or HangWatch(lambda: looked_at(settings), self.log, self._keepalive,
                                        clock)
        self.hangs.folders = lambda: looked_at(self.settings)
        self.hangs.shown, self.hangs.again = lambda: self.publish.shown, self._status_again

    def _row_log(self, row_id: int) -> Any:
        row = self.journal.get(row_id)
        return logs.bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids)

    # -- signals and hints -----------------------------------------------------
    def request_stop(self, *_: Any) -> None:
        self._stopping = True
        self._wake.set()

    def _request_reload(self, *_: Any) -> None:
        self._reload = True
        self._wake.set()

    def _install_signals(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # embedded in a test thread: the caller stops us with request_stop()
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self._request_reload)
        # `outboxd run` blocked them until now (cli.main): one that came meanwhile is
        # handled here, as a stop or a reload.
        signal.pthread_sigmask(signal.SIG_UNBLOCK, GROUP_SIGNALS)

    # -- delivery workers --------------------------------------------------------
    def schedule(self, row_id: int, delay: float) -> None:
        """A delivery attempt for row_id in `delay` seconds (any thread), unless one is
        due sooner: a reload may bring a row forward while its attempt runs, and the
        attempt's own later retry must not push that back."""
        self.timers.sooner(("deliver", row_id), self.clock() + delay)
        self._wake.set()

    def _near_folders(self, cand: Candidate) -> list[str]:
        """The lone folders named close to `cand`'s, for its hint (index.near): not those
        the page lists as holding invoice files or as attachments come too late (its
        last refresh; strays.py), told there with their own fix, as the page's hints
        leave them out."""
        strays = self.publish.page.stray_names
        return [n for n in self.index.near(cand) if n not in strays]

    # -- the loop --------------------------------------------------------------------
    def open(self) -> None:
        """Everything before READY: folders, journal, recovery, the startup listing
        and the watcher. Reading what was found goes on in the loop."""
        # First: starting the readers takes a second or two, and a SIGTERM or SIGHUP
        # meanwhile would end the process with the signal's default instead of a clean
        # stop (exit 0 after READY) or a reload at the first turn.
        self._install_signals()
        s = self.settings
        prepare_folders(s)
        # Not under a name another machine's daemon runs by: its work folders read as ours.
        self.deciding = Deciding(copy_tag(s.paths.state_dir), self.clock)
        check_name(s, self.deciding)
        # Before anything of the state dir is used: a second daemon on it stops here.
        statelock.hold(s.paths.state_dir)
        self._state_dir = s.paths.state_dir
        # Before anything is decided: a daemon on the outbox that decides otherwise is said.
        self.deciding.publish(s)
        # Held, before the readers write there: no temp in the compile cache is in use.
        einvoice.drop_cache_temps(s.paths.state_dir / "einvoice")
        self._start_rules(s)  # a broken install stops the start (exit 2)
        self.journal = Journal(s.journal_path, whole=True)  # a torn copy stops here
        # Before sending; quarantine/ too, or status would call what waits there none.
        restore_sent(self.journal, s.sent_dir, s.policy.duplicate_window_days,
                     s.quarantine_dir)
        # What other daemons sent while this one was down, before anything is sent too.
        self.sent_news = SentNews()
        self.sent_news.look(self.journal, s.sent_dir, progress=StartProgress(
            "reading what other daemons filed in sent/"))
        self._sends_as = sends_as(s)
        self._trusts_as = trusts_as(s)
        if warning := plain_http_warning(s.delivery):
            self.log.warning(warning)
        if warning := short_secrets_warning(s.delivery):
            self.log.warning(warning)
        if warning := private_tmp_warning(s.paths.state_dir):
            self.log.warning(warning)
        for warning in exposure_warnings(s, self.config_path):
            self.log.warning(warning)
        for warning in list_warnings(s):  # as `outboxd config` says them
            self.log.warning(warning)
        if late := late_share(s.outbox.path, s.outbox.settle_seconds):
            self.log.warning(LATE_SHARE, **late.fields())
        self.pipeline = Pipeline(s, self.journal, self._make_deliverer(s))
        self.pipeline.near_folders = self._near_folders
        # A retry killed between its mark and its moves: its bundle quarantined again.
        self.interrupted_retries = InterruptedRetries()
        self.retries_killed()
        self.quarantine_news = QuarantineNews()
        self.quarantined_elsewhere()  # for the first page
        self.pipeline.finish.archive_later = self.workers.archive_later
        self.pipeline.finish.elsewhere = self.sent_news.in_flight
        self.pipeline.news_of = self.news_of
        self.pipeline.finish.clock = self.clock  # its move retries are scheduled on it
        # Bundles held back by a pause, and corrections behind the version they follow.
        self.pipeline.finish.resume = self.schedule
        if self._readers is not None:  # a claimed bundle read again after a restart too
            self.pipeline.finish.evaluate = self._readers.evaluate
            self.pipeline.finish.materialise = self._readers.materialise  # and converted
            self.pipeline.assemble_many = self._readers.assemble_many
        self.index = OutboxIndex(s.outbox, lambda name: [name + self.settings.share.release_suffix],
                                 share=s.share)
        for row_id, delay in self.pipeline.finish.recover():
            self.schedule(row_id, delay)
        for row_id in self.pipeline.finish.closable():  # another daemon archived them
            self.schedule(row_id, 0.0)
        # Work folders no journal row knows: finished or put back (a lost journal's), or
        # left for a person; this run's sweeps remember which were there first.
        self.orphans = Orphans()
        self.orphans.sweep(self.journal, s, self.pipeline.finish.mounts,
                           self.pipeline.finish.unfollowed())
        if s.delivery.transport == "directory" and s.delivery.target is not None:
            # What a killed run left half-written there, whose bundle may never come again.
            clear_target(s.delivery.target, self.log)
        # The watcher first: what changes once it has taken its first look is an event
        # (a poller's first walk only records), and what came before is in the listing
        # after it. Listed first, a file dropped in between was in neither until a rescan.
        self.watcher = self._make_watcher(s, self.hint)
        watching = self._start_watcher()
        # The startup scan: bundles dropped while we were down.
        listing = list_outbox(s.outbox, s.share)
        self._report(listing)
        # The folders as the first page shows them: else the first rescan finds them
        # "changed" and renders the page again (some 2 CPU-s with 20,000 waiting).
        self.publish.folders(listing.stats)
        self.index.replace(listing)
        # The leftover temps of a killed run's errors files and page, by this listing:
        # a second and third of an outbox of 20,000 names (on a share) are not needed.
        self.pipeline.start(set(listing.candidates), listing.stats, dict(listing.refused))
        self._note_vanished(listing)
        self.publish.page.swept(s, listing.stats)
        for key in listing.candidates:
            self._mark(key)
        self.workers.start(s.delivery.concurrency)
        now = self.clock()
        self.timers.at(RESCAN, now + s.outbox.rescan_seconds)
        self.timers.at(RENEWAL, now + RENEW)
        self._looked(None, watching)  # a watcher that cannot start: tried again soon
        if self._keepalive:
            self.timers.at(WATCHDOG, now + self._keepalive)
        self.log.info("outboxd running", outbox=str(s.outbox.path), watch=self.watcher.mode,
                      bundles=len(listing.candidates))

    def turn(self) -> float | None:
        """One pass of the loop; seconds until the next due timer (None: nothing due)."""
        self.journal.check()  # deleted or replaced under us: JournalLost ends run()
        now = self.clock()
        if self._reload:
            notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
            self._do_reload()
            notify("READY=1")
        self._take_hints()
        for key in self.timers.pop_due(now):
            assert isinstance(key, tuple)
            kind = key[0]
            if kind == "bundle":
                self._mark(key[1])
            elif kind == "deliver":
                self.workers.queue(key[1])
            elif key == RESCAN:
                self.timers.at(RESCAN, now + self.settings.outbox.rescan_seconds)
                self.rescan()
            elif key == SENT_NEWS:
                self.more_news()
            elif key == QUARANTINE_NEWS:
                self.more_quarantine_news()
            elif key == RENEWAL:
                self.timers.at(RENEWAL, now + RENEW)
                self.deciding.compare(self.settings)
            elif key == WATCHDOG and self._keepalive:
                notify("WATCHDOG=1")
                self.timers.at(WATCHDOG, now + self._keepalive)
            else:
                self.publish.fire(key, self.journal, self.settings, self.index.candidates,
                                  now, self.left_alone.refused, self.index.lone)
        self._take_results(now)
        self._step_dirty(now)
        self.publish.lone(self.index.lone_version)
        self.publish.schedule(self.journal, self.timers, now)
        due = self.timers.next_due()
        return None if due is None else max(0.0, due - self.clock())

    def run(self) -> int:
        self.hangs.start()  # the start too may wait on a share that hangs
        try:
            try:
                self.open()
            except BaseException:
                self._abandon_start()
                raise
            notify("READY=1")
            self._mark_ready()
            self.hangs.idle()  # the first turn is the watchdog's, as every turn, not the start's
            try:
                while not self._stopping:
                    self.hangs.busy()
                    due = self.turn()
                    self.hangs.idle()
                    # Whatever arrives during the turn has written to the pipe, so
                    # the wait after it returns at once.
                    self._wake.wait(due)
            finally:
                self.hangs.stopping()  # the stop too may wait on a share that hangs
                self._shutdown()
        finally:
            self.hangs.stop()
        return 0

    def _status_again(self) -> None:
        """hangwatch.py's thread: the counts in STATUS= again, once the share answers."""
        self.publish.status_again()
        self._wake.set()

    def _mark_ready(self) -> None:
        """READY=1 recorded where `status` reads it: a daemon stuck before it (a start
        waiting on a share) read as running, with nothing to say so."""
        assert self._state_dir is not None  # held by open()
        try:
            statelock.mark_ready(self._state_dir)
        except OSError as exc:
            self.log.warning("cannot record in the state dir that outboxd is ready; "
                             "`outboxd status` says it is still starting",
                             error=describe(exc), fix="check the state dir's free space "
                             "and what is there under the name outboxd.ready")
