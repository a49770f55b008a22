"""The pipeline for one bundle up to its claim: settle → read → match →
validate → decide → claim (the decision: `decide.Decisions`; the claims
themselves: `claims.Claims`; the previous run's rows at a start: `takeover.Takeover`). What
follows the claim (deliver, archive, quarantine, recovery) is
`finish.Finisher`.

This module decides and sequences; the modules it calls do the work. Every
step that changes the world is announced in the journal first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.bundle import Bundle
from daemon.claiming.claim import assemble_here
from daemon.configuration.config import Settings
from daemon.delivery.deliver import Deliverer
from daemon.delivery.directory import keep_mount
from daemon.delivery.finish import Finisher
from daemon.journal import LIVE, Journal, Row
from daemon.loop.busywords import (
    in_progress,
    look_alike_said,
    said_look_alike,
    said_stuck,
    stuck_said,
    unchanged_since,
)
from daemon.loop.decide import Decisions
from daemon.loop.errorsfile import HeldErrors
from daemon.loop.markerwait import marker_wait_said
from daemon.loop.step import IDLE, Claim, Known, Next
from daemon.loop.takeover import Takeover
from daemon.loop.unreadable import read_failed
from daemon.manifest import bundle_id_of
from daemon.names import printable
from daemon.reading.lookalikes import look_alikes_said
from daemon.watching.foldermounts import FolderMounts
from daemon.watching.keptmoving import KeptMoving
from daemon.watching.scan import Candidate, is_invoice_file
from daemon.watching.settle import SettleTracker
from daemon.watching.snapshot import Snapshot, snapshot, unlisted_wait
from daemon.watching.vanished import Vanished

__all__ = ["IDLE", "Next", "Pipeline"]

# A copy at work that has not changed for this long is shown as stuck (_busy).
STUCK_SECONDS = 600.0
NO_LONGER_AN_INVOICE = ("no longer an invoice file under the reloaded [outbox] "
                        "invoice_patterns or ignore_patterns; left alone in the outbox")


class Pipeline(Decisions, Takeover):
    """Runs on the loop thread only: it owns the live (pre-claim) journal rows,
    which it keeps in memory so that stepping a bundle costs no query."""

    def __init__(self, settings: Settings, journal: Journal, deliverer: Deliverer) -> None:
        self.s = settings
        self.j = journal
        self.finish = Finisher(settings, journal, deliverer)
        self.tracker = SettleTracker(settings.outbox.settle_seconds)
        self.known: dict[str, Known] = {}
        self.live: dict[str, Row] = {}  # invoice file -> its live row, as last written
        self._reading: dict[str, Snapshot] = {}  # handed to a reader, result not back yet
        # Bundles that had their one early read of a later version (_read_early) in the
        # quiet period under way.
        self._early_spent: set[str] = set()
        self._claim_paused: dict[str, float] = {}  # invoice file -> monotonic retry time
        self._stranded: dict[int, tuple[Candidate, Path, str]] = {}
        self._cut, self._unmoved, self._beside = {}, set(), set()  # Stranded's (stranded.py)
        # invoice file -> (its journal deadline, the monotonic time it falls due): the
        # wall-clock deadline is read once per process, then waited for on one clock.
        self._due: dict[str, tuple[str, float]] = {}
        # Waiting or held rows taken over at start, not decided again since.
        self._resumed: set[str] = set()
        self.errors_files = HeldErrors()
        self.vanished = Vanished()  # sidecars gone, not yet confirmed gone
        self.near_folders = lambda cand: []  # the service's index.near once it has one
        self._near_said: dict[str, tuple[str, str, tuple[str, ...]]] = {}
        self._held: list[Claim] | None = None  # claims waiting for claim_held()
        self._held_ids: set[str] = set()
        # How moved bundles are matched again after a claim: the daemon's reader
        # processes when it has them (Readers.assemble_many), else here.
        self.assemble_many = assemble_here
        # Receipts of a bundle another daemon filed in sent/ that a look listed, read
        # before the bundle is decided (the service's Changes.news_of).
        self.news_of: Callable[[str], object] = lambda bundle_id: None
        self.log = logs.get()
        self.moving = KeptMoving(self.log)  # looks that keep seeing a folder go
        self.wall = time.time  # the files' age only (unchanged_since): a test sets it

    # -- reading ---------------------------------------------------------------
    def reconfigure(self, settings: Settings, deliverer: Deliverer) -> None:
        """Take a reloaded configuration (the old deliverer is closed once its attempts
        under way have ended)."""
        switched = settings.delivery.format != self.s.delivery.format
        self.s = self.finish.s = settings
        self.finish.mounts = FolderMounts(settings, self.finish.mounts)
        keep_mount(deliverer, self.finish.deliverers.current)  # a directory target's alike
        if switched:
            # A claimed bundle was checked for the format it was claimed under; ubl-embedded
            # builds and checks documents that a "bundle" check never made. Read again at
            # its next attempt, as after a restart, it is never sent unchecked. After the
            # settings above: a read that sees the new generation uses the new format.
            self.finish.read_claimed_again()
        self.tracker.settle_seconds = settings.outbox.settle_seconds
        self._due.clear()  # each wait's deadline read again (the wall clock may be right now)
        self.finish.deliverers.replace(deliverer)

    # -- before the claim ------------------------------------------------------
    def step(self, cand: Candidate, now: float, snap: Snapshot | None = None) -> Next:
        """Look at one invoice file in the outbox; `now` is the loop's monotonic time."""
        key = cand.invoice.name
        # A reload may have narrowed the patterns (or named the file a release file or
        # the status page): such a file is left alone from now on, as a start would
        # leave it, not sent at its old deadline.
        invoice = is_invoice_file(self.s.outbox, key, self.s.share)
        snap = (snap or snapshot(cand, self.s.outbox)) if invoice else None
        row = self.live.get(key)
        if snap is None:
            self.forget(key)
            if row:
                # Its errors file would go on saying "this bundle is held" for a bundle
                # that is no longer there: looked at whatever the row's state, as a crash
                # between the file's writing and the row's record leaves it explained by
                # no row (errorsfile.py knows it as outboxd's by its mark).
                self._clear_errors_file(cand, row)
                self._live(row, key, "gone", detail="the invoice file left the outbox"
                           if invoice else NO_LONGER_AN_INVOICE)
            return Next(gone=True)
        last = self.tracker.last(key)
        self.vanished.seen(key, cand.sidecar.name, last, snap)
        if snap.unlisted:
            return self._unlisted(key, row, snap, now)
        # Why it cannot settle, once its looks have seen a folder go for a rescan period.
        moving = self.moving.seen(key, snap, now, self.s.outbox.rescan_seconds)
        # The first version seen is read early; after looks that saw a folder go (never
        # read), so is the first one seen whole.
        first = last is None or (bool(last.moved) and key not in self.known)
        settled = self.tracker.observe(key, snap, now)
        # From the look that settles (the snapshot's own lstat, or the listing's): a
        # second look by os.path.lexists took the share's EIO for "no marker", and a
        # bundle whose snapshots then stayed the same waited for a marker that was there
        # until something else changed (a marker's wait ends with an event).
        marker_missing = (self.s.outbox.completion == "marker"
                          and not any(e[0] == cand.marker.name for e in snap.entries))
        if not settled or marker_missing:
            # An in-progress name or a missing marker ends with an event, not a time.
            quiet = not snap.busy and not marker_missing
            # A row taken over from the journal keeps its state (and `since`) while its
            # files, as found at start, settle quietly: a restart is no change of the
            # files. One that changes, or cannot settle, is settling like any other.
            if not quiet or moving or (last is not None and last != snap):
                self._resumed.discard(key)
            if key not in self._resumed:
                # What it waits for is said where it is a name the clerk can act on; that
                # a folder could not be listed, or kept going, no longer once it is not.
                self._live(row, key, "settling", **(
                    {"last_error": moving} if moving
                    else {"last_error": marker_wait_said(cand, self.s)}
                    if marker_missing and not snap.busy
                    else {"last_error": None} if moving == "" or (
                        last is not None and last.unlisted)
                    else {"last_error": self._after_busy(cand)} if quiet and row is not None
                    and (said_stuck(row.last_error) or said_look_alike(row.last_error))
                    else {}))
            if snap.busy and not marker_missing:
                return self._busy(cand, snap, now)
            if not quiet or settled:
                return IDLE
            return Next(at=self.tracker.ready_at(key), read=self._read_early(key, snap, first))
        self._early_spent.discard(key)
        paused = self._claim_paused.get(key)
        if paused is not None and paused > now:
            return Next(at=paused)
        if self.cut_pending(key):  # finished first, at a rescan: never its own duplicate
            return Next(at=now + self.s.outbox.rescan_seconds)
        known = self.known.get(key)
        if known is None or known.snap != snap:
            if self._reading.get(key) == snap:
                return IDLE  # its result will come back and step it again
            self._reading[key] = snap
            return Next(read=snap)
        if known.bundle is None:
            if known.retry_at is not None and known.retry_at <= now:
                del self.known[key]
                self._reading[key] = snap
                return Next(read=snap)
            self._resumed.discard(key)
            if known.error:  # status shows why it does not move
                self._live(row, key, "settling", last_error=known.error)
            # Unreadable: looked at again when something changes, or after a while.
            return IDLE if known.retry_at is None else Next(at=known.retry_at)
        if row is not None and row.last_error and row.state in LIVE:
            self._live(row, key, row.state, last_error=None)  # it reads now
            row = self.live.get(key)
        return self._decide(cand, known, row, now)

    def _unlisted(self, key: str, row: Row | None, snap: Snapshot, now: float) -> Next:
        """A folder of the sidecar could not be listed: what it holds is unknown, not
        nothing. Never settled, read or decided on such a look (an empty-seeming sidecar
        could send the invoice without its attachments, or a read that lists it could
        send files never seen settle); recorded as a change, so that once it can be
        listed its files settle a whole quiet period from then. Looked at again at the
        rescan interval, as no event need come when a share mends."""
        retry = self.s.outbox.rescan_seconds
        if self.tracker.last(key) != snap:  # said once for each such look, not each retry
            folder, why = snap.unlisted[0]
            logs.bundle_log(self.log, key, None, ()).error(
                "cannot list a folder of the bundle; will try again", folder=printable(folder),
                error=why, retry_in=retry,
                fix="check that the share is reachable and that outboxd's user may open "
                    "the folder")
        self.tracker.observe(key, snap, now)
        self._resumed.discard(key)
        self._live(row, key, "settling", last_error=unlisted_wait(snap, retry))
        return Next(at=now + retry)

    def _busy(self, cand: Candidate, snap: Snapshot, now: float) -> Next:
        """A copy at work (an in-progress name in the sidecar) ends with an event, not a
        time. One that has not changed for STUCK_SECONDS is shown instead of waited
        for in silence: status and the page name the file and what to do (a copy
        that was killed, an `outboxd attach` that was stopped). Counted from the
        bundle's files' own newest time where that is older than this process's look
        (unchanged_since): a lock file days old is shown at a start's first look. A
        look-alike of its sidecar is shown at once, as its reasons will say it: the
        bundle is not read (nor its errors known) until the copy ends."""
        key = cand.invoice.name
        seen = self.tracker.still_since(key)
        assert seen is not None  # observed just before
        wall = self.wall()
        # A change this process saw is when it changed; only before its first look do
        # the files' times tell (they may not show a change: a copy that keeps them).
        since = unchanged_since(snap, seen, now, wall) if self.tracker.first_look(key) else seen
        # A look-up for every bundle; the lstats only for one that has a look-alike.
        alike = look_alikes_said(cand, self.s) if cand.look_alikes else []
        row = self.live.get(key)
        if now - since < STUCK_SECONDS:
            why = look_alike_said(alike) if alike else None
            # A stuck_said changed since it was said (the copy went on, or a start's first
            # look took a slow file server's clock for an old copy): said again only if it
            # stops. Another why (a folder that kept going) is not this one's to replace.
            if row is not None and row.last_error != why and (
                    not row.last_error or said_stuck(row.last_error)
                    or said_look_alike(row.last_error)):
                self._live(row, key, "settling", last_error=why)
            return Next(at=since + STUCK_SECONDS)
        names = in_progress(snap, self.s.outbox.ignore_patterns)
        if not names:
            return IDLE  # a file that went while we looked: its event is on the way
        # In wall-clock time, as the journal keeps times (`since` is monotonic).
        said = stuck_said(names, wall - (now - since))
        self._live(row, key, "settling",
                   last_error=f"{said}; {look_alike_said(alike)}" if alike else said)
        return IDLE

    def _after_busy(self, cand: Candidate) -> str | None:
        """What the row of a bundle whose copy has ended says instead of what only _busy
        says (a copy stopped, which it no longer is; a look-alike maybe gone since): the
        look-alike still there, as its reasons will say it, else nothing. Left, the line
        stayed until the bundle was read (a settle period or more). Looked up only for
        such a row, not at each step of every bundle."""
        alike = look_alikes_said(cand, self.s) if cand.look_alikes else []
        return look_alike_said(alike) if alike else None

    def _read_early(self, key: str, snap: Snapshot, first: bool) -> Snapshot | None:
        """A version still settling that is worth reading now, so that its claim can
        follow as soon as it has settled: the first one seen of a bundle (an ERP puts
        the sidecar first and renames the invoice file in last, so that is usually
        the whole bundle), or one whose files were all written a quiet period ago
        (SettleTracker.written_before). At most one read of a bundle at a time, none
        twice, and one such later version per quiet period: a copy that keeps the
        files' times (`cp -p`, a file manager) makes every version it passes through
        look written long ago, and reading each would keep a reader busy for the whole
        copy. So a copy at work costs at most two reads that are thrown away."""
        known = self.known.get(key)
        if key in self._reading or (known is not None and known.snap == snap) or snap.moved:
            # A look that saw a folder go is never settled on, so neither is its read,
            # which would find the folder gone too (logged as a file not to be read).
            return None
        if snap.coarse:
            # Times to the second or two: a file saved again at its size within them
            # leaves this version looking as it is, so a read now may be of bytes replaced
            # since, and a verdict that claims nothing (held, its errors file) would stand
            # on them until the next visible change. Read once settled, after that granule.
            return None
        if not first:
            if key in self._early_spent or not self.tracker.written_before(snap):
                return None
            self._early_spent.add(key)
        self._reading[key] = snap
        return snap

    def drop_read(self, key: str, snap: Snapshot) -> None:
        """A read made under settings that a reload has replaced: its result is not
        used, and the version is read again when the bundle is stepped."""
        if self._reading.get(key) == snap:
            del self._reading[key]

    def took_read(self, key: str, snap: Snapshot, result: Bundle | BaseException,
                  now: float | None = None) -> bool:
        """The result of reading and validating `snap` of `key` on a worker; whether
        to step the bundle now (not for a version read early that is still settling:
        the timer at the end of its quiet period steps it)."""
        pending = self._reading.get(key)
        if pending is not None and pending != snap:
            return True  # a newer version is being read; this result is already stale
        self._reading.pop(key, None)
        ready = self.tracker.ready_at(key)
        early = now is not None and ready is not None and ready > now \
            and self.tracker.last(key) == snap
        if isinstance(result, Bundle):
            self.known[key] = Known(snap, result, bundle_id_of(result))
            return not early
        error, retry_at = read_failed(result, key, self.s, self.log, now)
        self.known[key] = Known(snap, None, "", error=error, retry_at=retry_at)
        return not early

    def _live(self, row: Row | None, key: str, state: str, detail: str = "",
              since: str | None = None, **fields: Any) -> None:
        """Record a live state (`since`: when its stretch began, if not now); written only
        when it differs from what the row says.

        Not durable on its own (no effect follows it): the next durable
        commit, or the next start's scan, covers it.
        """
        # "gone" only ends a row that is there (step's one such call has one): a bundle
        # never recorded needs no row saying it left.
        assert row is not None or state != "gone"
        if row is None:
            if self.cut_pending(key):  # its claim's row stands for it, saying why (_cut_short)
                return
            row_id = self.j.create(key, state, detail, durable=False, since=since, **fields)
        elif row.state != state or (since is not None and row.since != since) \
                or any(getattr(row, k) != v for k, v in fields.items()):
            self.j.transition(row.id, state, detail, durable=False, since=since, **fields)
            row_id = row.id
        else:
            return
        if (row is None or row.state != state) and state != "gone":
            # One log line per state a bundle enters in the outbox (settling, waiting,
            # held), so a person reading the log sees it move: once the row says so, not
            # before (a full state disk failed the write, and the log named a state the
            # journal never held; the journal's own error line says why).
            self.log.info(f"bundle {state}", invoice_file=key,
                          bundle_id=fields.get("bundle_id"),
                          invoice_ids=list(fields.get("invoice_ids") or []),
                          **{k: fields[k] for k in ("unattached_ids", "deadline")
                             if fields.get(k)})
        if state in LIVE:
            self.live[key] = self.j.get(row_id)
        else:
            self.live.pop(key, None)

    def forget(self, key: str) -> None:
        self.tracker.forget(key)
        self.known.pop(key, None)
        self._claim_paused.pop(key, None)
        self._due.pop(key, None)
        self._resumed.discard(key)
        self._early_spent.discard(key)
        self._near_said.pop(key, None)
        self.vanished.forget(key)
        self.moving.forget(key)
