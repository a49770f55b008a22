"""What changed: the watcher's hints and the periodic rescan turned into dirty
bundles. A part of `Service` (a mixin, as `Reloading`: it marks bundles in the
loop's dirty set and sets the loop's timers, so it shares the loop's state).

- a hint names a root entry; the index maps it to the bundle(s) it concerns,
  which become dirty (or, for a bundle of many files, are looked at by a timer
  at a pace: `settle.Pacer`);
- the rescan is the one full pass: a stat-level listing compared with what
  each bundle last looked like; only those that look different are marked.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from daemon.errors import refused
from daemon.names import spelling_twins
from daemon.report.pagerender import FINISHED_SHOWN
from daemon.watching.scan import Listing, list_outbox
from daemon.watching.snapshot import Snapshot, same_lone_file, snapshot
from daemon.watching.watch import OVERFLOW, ROOT_LOST

if TYPE_CHECKING:
    from daemon.archiving.quarantinenews import QuarantineNews
    from daemon.archiving.retrykilled import InterruptedRetries
    from daemon.archiving.sentnews import SentNews
    from daemon.claiming.orphans import Orphans
    from daemon.configuration.config import Settings
    from daemon.configuration.deciding import Deciding
    from daemon.journal import Journal
    from daemon.loop.pipeline import Pipeline
    from daemon.loop.timers import Timers, Waker
    from daemon.report.publish import Publisher
    from daemon.watching.index import OutboxIndex
    from daemon.watching.leftalone import LeftAlone
    from daemon.watching.outage import Outage
    from daemon.watching.settle import Pacer

RESCAN: Hashable = ("rescan",)
SENT_NEWS: Hashable = ("sent-news",)
QUARANTINE_NEWS: Hashable = ("quarantine-news",)
# Of each loop turn, at most about this long (seconds, on the loop's clock) goes to
# reading receipts another daemon filed in sent/ (sentnews.py): 50,000 of them, read in
# one go, held the loop 5.5 s (a local disk; on a share a read costs round trips, and
# the look could outlast WatchdogSec=). Read so, the rest waits for the next turn, which
# comes at once: fresh bundles and the watchdog's keep-alive wait a few ms at most. The
# reason.json files of other daemons' entries in quarantine/ (quarantinenews.py) alike:
# 100,000 of them a share user made, read in one go, held the loop 5 s.
NEWS_TURN = 0.005


class WatcherLike(Protocol):
    mode: str
    restarts: int

    def ensure_alive(self) -> bool: ...

    def stop(self) -> None: ...


class Changes:
    settings: Settings
    log: Any
    clock: Callable[[], float]
    timers: Timers
    index: OutboxIndex
    pipeline: Pipeline
    publish: Publisher
    journal: Journal
    watcher: WatcherLike
    left_alone: LeftAlone
    orphans: Orphans
    sent_news: SentNews
    quarantine_news: QuarantineNews
    interrupted_retries: InterruptedRetries
    deciding: Deciding
    outage: Outage
    _wake: Waker
    _hints: set[str]
    _hint_lock: threading.Lock
    _dirty: dict[str, Snapshot | None]
    _pacer: Pacer
    _relist: bool
    _root_lost: bool  # the watcher said the outbox folder itself went: the next look tells
    outbox_back: Callable[[], None]  # reload.py's: a reload that waited for the outbox

    if TYPE_CHECKING:
        # The service's: declared for mypy only, so that no stand-in here can come
        # before it in the service's bases (tests/loop/test_service.py).
        def schedule(self, row_id: int, delay: float) -> None: ...

    def hint(self, top: str) -> None:
        """From the watcher thread: something happened to the root entry `top`."""
        with self._hint_lock:
            self._hints.add(top)
        self._wake.set()

    def _report(self, listing: Listing, name: str | None = None) -> None:
        """What the daemon leaves alone: logged once; the page shows unusable invoice
        files (all of a full listing, or what became of the root entry `name`)."""
        if self.left_alone.seen(listing, self.settings.outbox.invoice_patterns, name):
            self.publish.hinted()

    def _mark(self, key: str, snap: Snapshot | None = None) -> None:
        self._dirty[key] = snap if snap is not None else self._dirty.get(key)

    def rescan_soon(self) -> None:
        self.timers.at(RESCAN, self.clock())

    def _take_hints(self) -> None:
        with self._hint_lock:
            names, self._hints = self._hints, set()
        now = self.clock()
        suffix = self.settings.share.release_suffix
        if any(n.endswith(suffix) for n in names):
            self.publish.hinted()
        self.publish.touched(names)
        for name in names:
            if name == OVERFLOW:
                self.log.warning("the watcher lost events; rescanning the outbox")
                self.rescan_soon()
                continue
            if name == ROOT_LOST:
                # Looked at at once (else an outbox made again in its place went unwatched
                # until the next rescan), and said by that look: an outage's one error
                # line if it is away, else that it was replaced. Said here as well, a
                # share that comes and goes logged three lines each time.
                self._root_lost = True
                # The page (in the outbox) waits for that look, which is in this turn: a
                # page timer due first would fail, a second error line for the outage.
                self.publish.outbox_away(True)
                self.rescan_soon()
                continue
            try:
                keys, what = self.index.touched(name)
            except OSError as exc:
                # One entry's trouble (a share's EIO), not the outbox's: the rescan lists
                # it again, and an invoice file stays a bundle meanwhile (scan.list_outbox).
                self.log.error("cannot look at an entry of the outbox; it is looked at "
                               "again at the next rescan", file=name, error=refused(exc))
                continue
            self._report(what, name)
            if self.index.stray_errors((name,)):
                # A NAME.errors.txt of no bundle here (a clerk's notes, or one restored
                # from the recycle bin) that came or went changes no row, but the page
                # lists it; a bundle's own is its step's to tell.
                self.publish.hinted()
            for key in keys:
                later = self._pacer.not_before(key, now)
                if later is None:
                    self._mark(key)
                else:
                    self.timers.sooner(("bundle", key), later)

    def rescan(self) -> None:
        """The one full pass: list the outbox and snapshot every bundle; only those
        that look different from their last step are stepped."""
        # Work folders of a moved outbox the start could not look for, before the sweep
        # (which would name them as no row's).
        for row_id, delay in self.pipeline.finish.follow_moved_again():
            self.schedule(row_id, delay)
        self.orphans.sweep(self.journal, self.settings, self.pipeline.finish.mounts,  # no row knows
                           self.pipeline.finish.unfollowed())
        # What other daemons sent since the last look, before the bundles are stepped; not
        # while sent/ is off the mount it was on (its share unmounted): its bare mount
        # point says nothing of what was sent.
        if self.pipeline.finish.mounts.away(self.settings.sent_dir) is None:
            self.sent_news.look(self.journal, self.settings.sent_dir, spent=self._news_budget())
            self._news_read()
        self.retries_killed()  # before quarantined_elsewhere: its own() has them again
        self.quarantined_elsewhere()
        self.deciding.compare(self.settings)  # another daemon started or reloaded meanwhile
        for row_id in self.pipeline.retry_stranded():  # claims whose folder was away
            self.schedule(row_id, 0.0)
        # A dead watcher restarted before the listing: what changes after its first look
        # is an event, what came before is listed here (restarted after, a file dropped in
        # between waited for the next rescan).
        watching = self._start_watcher()
        try:
            known = None if self._relist else self.index.candidates
            listing = list_outbox(self.settings.outbox, self.settings.share, known)
        except OSError as exc:
            self._root_lost = False  # the outage's line says it
            self._looked(exc, watching)
            return
        if self._root_lost and not self.outage.on:
            self.log.warning("the outbox folder was replaced (moved aside and made again, or "
                             "a share mounted anew); watching the new one",
                             outbox=str(self.settings.outbox.path))
        self._root_lost = False
        self._looked(None, watching)
        self._relist = False
        self._report(listing)
        self.publish.listed(listing.stats)
        self.publish.folders(listing.stats)
        # The listing's look-alike sidecars become the bundles' (index.replace), so one
        # that came or went without an event (polling, lost events) is in the snapshots.
        appeared, went = self.index.replace(listing)
        self.publish.stray_errors(self.index.stray_errors(listing.stats, listing.stats))
        for key in appeared | went:
            self._mark(key)
        self._note_vanished(listing)
        tracker = self.pipeline.tracker
        outbox, stats = self.settings.outbox, listing.stats
        lone = outbox.completion != "marker"  # else a marker may come beside the file
        for key, cand in self.index.candidates.items():
            if key in appeared:
                continue
            sidecar = cand.sidecar.name
            if listing.unlooked and not listing.unlooked.isdisjoint(
                    (key, sidecar, cand.marker.name, *cand.look_alikes, *cand.sharers,
                     *spelling_twins(sidecar))):
                # The listing has no stat of one of its entries: its own look says what
                # it is (or, failing too, that it cannot be looked at, and when it is
                # looked at again), not a snapshot that lacks that entry.
                self._mark(key)
                continue
            if lone and sidecar not in stats and not cand.look_alikes and not any(
                    t in stats for t in spelling_twins(sidecar)) \
                    and same_lone_file(tracker.last(key), stats.get(key)):
                continue  # an invoice file alone, as last stepped: the usual backlog
            snap = snapshot(cand, outbox, stats)
            if snap is None or snap != tracker.last(key):
                self._mark(key, snap)

    def retries_killed(self) -> None:
        """The bundles of a retry killed before its moves quarantined again
        (retrykilled.py): at the start and each rescan; not while quarantine/ is off the
        mount it was on, where a bare mount point would read as every folder removed,
        moved back for good."""
        if self.pipeline.finish.mounts.away(self.settings.quarantine_dir) is None:
            self.interrupted_retries.look(self.journal, self.settings, self.log)

    def quarantined_elsewhere(self) -> None:
        """What other daemons quarantined today, for the page (quarantinenews.py): at the
        start and each rescan; not while quarantine/ is off the mount it was on (a bare
        mount point says nothing of what is quarantined), the page then shows the last."""
        folder = self.settings.quarantine_dir
        if self.pipeline.finish.mounts.away(folder) is not None:
            return
        now = self.publish.wall()  # the page's "today"
        today = folder / now.strftime("%Y-%m-%d")

        def own() -> set[str]:
            return {Path(r.archive_dir).name for r in
                    self.journal.folders_on("quarantined", now.strftime("%Y-%m-%d"))
                    if r.archive_dir and Path(r.archive_dir).parent == today}
        self._quarantine_read(self.quarantine_news.look(folder, own, FINISHED_SHOWN, now,
                                                        spent=self._news_budget()))

    def more_quarantine_news(self) -> None:
        """The reason.json files in quarantine/ a look queued: a turn's share of them
        (QUARANTINE_NEWS); while quarantine/ is off its mount they wait for a rescan."""
        if self.pipeline.finish.mounts.away(self.settings.quarantine_dir) is None:
            self._quarantine_read(self.quarantine_news.go_on(self._news_budget()))

    def _quarantine_read(self, changed: bool) -> None:
        if self.quarantine_news.pending:
            self.timers.at(QUARANTINE_NEWS, self.clock())  # the next turn, at once
        if changed:
            self.publish.page.elsewhere = self.quarantine_news.shown
            self.publish.page.elsewhere_more = self.quarantine_news.more
            self.publish.page.elsewhere_day = self.quarantine_news.day
            self.publish.hinted()

    def _note_vanished(self, listing: Listing) -> None:
        """Sidecars the listing has by name but whose lstat says they are not there: not
        taken for gone before a fresh listing confirms it (vanished.py). A dict lookup
        per bundle, and only when the listing found such a name."""
        if listing.vanished:
            for key, cand in listing.candidates.items():
                if cand.sidecar.name in listing.vanished:
                    self.pipeline.vanished.noted(key)

    def more_news(self) -> None:
        """The receipts in sent/ a look queued: a turn's share of them (SENT_NEWS). While
        sent/ is off its mount they wait for the rescan that finds it back."""
        if self.pipeline.finish.mounts.away(self.settings.sent_dir) is None:
            self.sent_news.go_on(self.journal, spent=self._news_budget())
            self._news_read()

    def news_of(self, bundle_id: str) -> None:
        """Before a bundle is decided: the receipts in sent/ a look queued that may be its
        own, read now (SentNews.first), so that one another daemon sent is a duplicate
        whatever their turn. Not while sent/ is off its mount (more_news)."""
        if self.sent_news.pending and self.pipeline.finish.mounts.away(
                self.settings.sent_dir) is None:
            # A bundle on its way here that one of them closes is scheduled by the next
            # turn's more_news, which comes at once while receipts wait.
            self.sent_news.first(self.journal, bundle_id)

    def _news_budget(self) -> Callable[[], bool]:
        end = self.clock() + NEWS_TURN
        return lambda: self.clock() >= end

    def _news_read(self) -> None:
        if self.sent_news.pending:
            self.timers.at(SENT_NEWS, self.clock())  # the next turn, at once
        # Bundles on their way here that another daemon archived: closed at once, not
        # at the end of their back-off (sentelsewhere.py).
        for row_id in self.pipeline.finish.closable():
            self.schedule(row_id, 0.0)

    def _start_watcher(self) -> OSError | None:
        """Start or restart the watcher; why it cannot (for `_looked`), else None."""
        try:
            restarted = self.watcher.ensure_alive()
        except OSError as exc:
            return exc
        if restarted and self.watcher.restarts > 1 and not self.outage.on:
            # After an outage its end says so ("watching it"); restarts counts its looks.
            self.log.warning("watcher was dead; restarted", restarts=self.watcher.restarts - 1,
                             watch=self.watcher.mode)
        return None

    def _looked(self, listing: OSError | None, watching: OSError | None) -> None:
        """The outbox looked at (listed, its watcher started): an outage begins, goes on
        or ends. While it lasts the next rescan comes within seconds, not a period later:
        the outbox is looked at again soon after it is back (outage.py)."""
        now = self.clock()
        self.publish.outbox_away(listing is not None)
        if listing is None and watching is None:
            self.outage.over(now)
            self.outbox_back()
            return
        delay = self.outage.failed(now, listing, watching, self.settings.outbox.rescan_seconds)
        self.timers.sooner(RESCAN, now + delay)
