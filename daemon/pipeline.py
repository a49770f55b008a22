"""The pipeline for one bundle up to its claim: settle → read → match →
validate → decide → claim (the claims themselves: `claims.Claims`). What
follows the claim (deliver, archive, quarantine, recovery) is
`finish.Finisher`.

This module decides and sequences; the modules it calls do the work. Every
step that changes the world is announced in the journal first.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from daemon import logs, release
from daemon.bundle import Bundle, Finding, reasons_of
from daemon.claim import (
    taken_meanwhile,
)
from daemon.claims import Claims, assemble_here
from daemon.config import Settings
from daemon.deliver import Deliverer
from daemon.errors import InputError, ReaderFailed, describe
from daemon.errorsfile import errors_file_for, write_errors_file
from daemon.finish import Finisher
from daemon.fsops import NOT_THE_FILES_FAULT
from daemon.journal import (
    LIVE,
    Journal,
    Row,
    iso_in,
    now_iso,
    readable,
    seconds_until,
)
from daemon.manifest import bundle_id_of
from daemon.names import NameKind, attachment_folders, classify
from daemon.scan import Candidate, Snapshot, candidate_for, marker_wait, snapshot
from daemon.settle import SettleTracker
from daemon.step import IDLE, Claim, Known, Next

__all__ = ["IDLE", "Next", "Pipeline"]

# A copy at work that has not changed for this long is shown as stuck (_busy).
STUCK_SECONDS = 600.0

class Pipeline(Claims):
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
        # invoice file -> (its journal deadline, the monotonic time it falls due): the
        # wall-clock deadline is read once per process, then waited for on one clock.
        self._due: dict[str, tuple[str, float]] = {}
        # Waiting or held rows taken over at start, not decided again since.
        self._resumed: set[str] = set()
        self._held: list[Claim] | None = None  # claims waiting for claim_held()
        self._held_ids: set[str] = set()
        # How moved bundles are matched again after a claim: the daemon's reader
        # processes when it has them (Readers.assemble_many), else here.
        self.assemble_many = assemble_here
        self.log = logs.get()

    # -- reading ---------------------------------------------------------------
    def reconfigure(self, settings: Settings, deliverer: Deliverer) -> None:
        """Take a reloaded configuration (the old deliverer is closed once its attempts
        under way have ended)."""
        self.s = self.finish.s = settings
        self.tracker.settle_seconds = settings.outbox.settle_seconds
        self._due.clear()  # each wait's deadline read again (the wall clock may be right now)
        self.finish.deliverers.replace(deliverer)

    # -- before the claim ------------------------------------------------------
    def step(self, cand: Candidate, now: float, snap: Snapshot | None = None) -> Next:
        """Look at one invoice file in the outbox; `now` is the loop's monotonic time."""
        key = cand.invoice.name
        snap = snap or snapshot(cand, self.s.outbox)
        row = self.live.get(key)
        if snap is None:
            self.forget(key)
            if row:
                if row.state == "held":
                    # Its errors file would go on saying "this bundle is held" for a
                    # bundle that is no longer there.
                    self._clear_errors_file(cand, row)
                self._live(row, key, "gone", detail="the invoice file left the outbox")
            return Next(gone=True)
        last = self.tracker.last(key)
        first = last is None
        settled = self.tracker.observe(key, snap, now)
        marker_missing = (self.s.outbox.completion == "marker"
                          and not os.path.lexists(cand.marker))
        if not settled or marker_missing:
            # An in-progress name or a missing marker ends with an event, not a time.
            quiet = not snap.busy and not marker_missing
            # A row taken over from the journal keeps its state (and `since`) while its
            # files, as found at start, settle quietly: a restart is no change of the
            # files. One that changes, or cannot settle, is settling like any other.
            if not quiet or (last is not None and last != snap):
                self._resumed.discard(key)
            if key not in self._resumed:
                # What it waits for is said where it is a name the clerk can act on.
                self._live(row, key, "settling", **(
                    {"last_error": marker_wait(cand)} if marker_missing and not snap.busy
                    else {}))
            if snap.busy and not marker_missing:
                return self._busy(key, snap, now)
            if not quiet or settled:
                return IDLE
            return Next(at=self.tracker.ready_at(key), read=self._read_early(key, snap, first))
        self._early_spent.discard(key)
        paused = self._claim_paused.get(key)
        if paused is not None and paused > now:
            return Next(at=paused)
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

    def _busy(self, key: str, snap: Snapshot, now: float) -> Next:
        """A copy at work (an in-progress name in the sidecar) ends with an event, not a
        time. One that has not changed for STUCK_SECONDS is shown instead of waited
        for in silence: status and the page name the file and what to do (a copy
        that was killed, an `outboxd attach` that was stopped)."""
        since = self.tracker.still_since(key)
        assert since is not None  # observed just before
        if now - since < STUCK_SECONDS:
            return Next(at=since + STUCK_SECONDS)
        names = [e[0] for e in snap.entries  # in the sidecar: not the folder itself
                 if "/" in e[0]
                 and classify(e[0].rsplit("/", 1)[-1], self.s.outbox.ignore_patterns)
                 is NameKind.IN_PROGRESS]
        if not names:
            return IDLE  # a file that went while we looked: its event is on the way
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        self._live(self.live.get(key), key, "settling", last_error=(
            f"waits for {shown}: an in-progress name, unchanged for "
            f"{round((now - since) / 60)} minutes — if no copy is still running, give the "
            "file its final name or remove it (.NAME.xxxxxxxx.tmp: run the same outboxd "
            "attach again)"))
        return IDLE

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
        if key in self._reading or (known is not None and known.snap == snap):
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
        error, retry_at = None, None
        log = logs.bundle_log(self.log, key, None, ())  # not read: no id yet
        if isinstance(result, InputError | OSError) and taken_meanwhile(
                candidate_for(self.s.outbox, key)):
            # Another daemon on the share claimed it while we read: normal work.
            log.info("bundle left the outbox while being read (claimed by another daemon, "
                     "or the share went away)")
        elif isinstance(result, InputError):
            # Logged once per snapshot: it is read again only when something changes.
            error = str(result)
            log.error("bundle cannot be read", error=error)
        elif isinstance(result, OSError) and result.errno in NOT_THE_FILES_FAULT:
            # No descriptors left, a share that timed out: nothing a clerk did, and
            # nothing that brings an event when it passes. Read again after a while.
            error = f"cannot be read: {describe(result)} — outboxd tries again"
            retry_at = None if now is None else now + self.s.outbox.rescan_seconds
            log.error("bundle cannot be read; will try again", error=error,
                      retry_in=self.s.outbox.rescan_seconds)
        elif isinstance(result, OSError):
            error = (f"cannot be read: {describe(result)} — check that outboxd's user may "
                     "read the file and open its folder")
            log.error("bundle cannot be read", error=error)
        else:
            log.error("unexpected error reading bundle", exc_info=result)
            # Not the bundle's fault (a reader that died each time, a bug), so never an
            # input error; but a bundle left settling without why looked like one that
            # would move any moment, in status and on the page, for good.
            first = str(result).split("\n", 1)[0]
            error = first if isinstance(result, ReaderFailed) and "read again" in first else (
                f"cannot be read ({type(result).__name__}: {first}), not for a fault of the "
                "bundle — it is read again when one of its files changes; the log has the "
                "details")
        self.known[key] = Known(snap, None, "", error=error, retry_at=retry_at)
        return not early

    def _live(self, row: Row | None, key: str, state: str, detail: str = "",
              since: str | None = None, **fields: Any) -> None:
        """Record a live state (`since`: when its stretch began, if not now); written only
        when it differs from what the row says.

        Not durable on its own (no effect follows it): the next durable
        commit, or the next start's scan, covers it.
        """
        if (row is None or row.state != state) and state != "gone":
            # One log line per state a bundle enters in the outbox (settling,
            # waiting, held), so a person reading the log sees it move.
            self.log.info(f"bundle {state}", invoice_file=key,
                          bundle_id=fields.get("bundle_id"),
                          invoice_ids=list(fields.get("invoice_ids") or []),
                          **{k: fields[k] for k in ("unattached_ids", "deadline")
                             if fields.get(k)})
        if row is None:
            if state == "gone":
                return
            row_id = self.j.create(key, state, detail, durable=False, since=since, **fields)
        elif row.state != state or (since is not None and row.since != since) \
                or any(getattr(row, k) != v for k, v in fields.items()):
            self.j.transition(row.id, state, detail, durable=False, since=since, **fields)
            row_id = row.id
        else:
            return
        if state in LIVE:
            self.live[key] = self.j.get(row_id)
        else:
            self.live.pop(key, None)

    def _decide(self, cand: Candidate, known: Known, row: Row | None, now: float) -> Next:
        bundle, bid, key = known.bundle, known.bundle_id, cand.invoice.name
        self._resumed.discard(key)
        assert bundle is not None
        policy = self.s.policy
        if bundle.errors and policy.invalid == "hold":
            self._errors_file(cand, known, bundle.errors)
            self._live(row, key, "held", bundle_id=bid, invoice_ids=list(bundle.invoice_ids),
                       reasons=reasons_of(bundle.errors))
            return IDLE
        # Not held (it passes, or is quarantined after a reload set invalid = "quarantine"):
        # an errors file written while it was held must not stay behind in the outbox.
        self._errors_file(cand, known, ())
        if bundle.errors:
            return self._claim(cand, known, row, list(bundle.errors), now)
        if (self.claiming(bid) or self.j.was_sent(bid)) and policy.duplicates == "quarantine":
            return self._claim(cand, known, row, [Finding(
                "duplicate", key, f"this exact bundle ({bid[:12]}) was sent before — remove "
                "it, or, if it is meant to be a new bundle, change a file, a type or a note "
                "(another channel in attachments.toml alone does not make a new bundle)")],
                now)
        unattached = bundle.unattached_ids
        if unattached and policy.unattached != "send":
            if release.release_file(cand, self.s.share) is not None:  # "send anyway"
                return self._claim(cand, known, row, [], now)
            deadline = self._deadline(row, bundle.invoice_ids)
            left = None if deadline is None else self._due_in(key, deadline, now)
            if left is None or left > 0:
                began = self._wait_began(row, bundle.invoice_ids)
                self._live(row, key, "waiting", since=began, wait_began=began, bundle_id=bid,
                           deadline=deadline, invoice_ids=list(bundle.invoice_ids),
                           unattached_ids=list(unattached))
                return IDLE if left is None else Next(at=now + left)
            if policy.unattached == "quarantine":
                # One reason per invoice, naming it in `invoice_id` as well: a script maps
                # each to its invoice without reading the message.
                return self._claim(cand, known, row, [Finding(
                    "unattached-invoice", key, f"invoice {i} had no attachments by the end "
                    f"of its wait ({readable(deadline)}) — add them to the folder "
                    f"{attachment_folders(cand.sidecar.name, bundle.invoice_ids, (i,))[0]} "
                    "and move the bundle back into the outbox", invoice_id=i)
                    for i in unattached], now)
        return self._claim(cand, known, row, [], now)

    def _deadline(self, row: Row | None, ids: tuple[str, ...]) -> str | None:
        """The end of an unattached bundle's wait ([policy] unattached), as the journal keeps it
        (wall-clock: it survives a restart). None under hold, whatever an earlier policy
        set. Fixed when the wait starts, for the invoices then in the file: a changed
        attachment_wait_seconds applies to waits that start after it (the page showed
        this one's deadline); other invoices under the same file name wait anew."""
        if self.s.policy.unattached == "hold":
            return None
        if row is not None and row.deadline and set(row.invoice_ids) == set(ids):
            return row.deadline  # the same invoices (a re-export may reorder them)
        return iso_in(self.s.policy.attachment_wait_seconds)

    @staticmethod
    def _wait_began(row: Row | None, ids: tuple[str, ...]) -> str:
        """When the bundle's wait for attachments began, which `since` shows while it
        waits. The wait goes on, as its deadline does (_deadline), while the bundle holds
        the same invoices: a change of its files (it settles and is read again, or is
        held a while) or a restart begins no new wait; other invoices begin their own."""
        if row is not None and set(row.invoice_ids) == set(ids):
            if row.state == "waiting":
                return row.since
            if row.wait_began:
                return row.wait_began
        return now_iso()

    def _due_in(self, key: str, deadline: str, now: float) -> float:
        """Seconds until `deadline`, on the loop's monotonic clock once it was read: a
        step of the wall clock meanwhile moves no wait (One clock)."""
        due = self._due.get(key)
        if due is None or due[0] != deadline:
            due = (deadline, now + seconds_until(deadline))
            self._due[key] = due
        return due[1] - now

    def _errors_file(self, cand: Candidate, known: Known, errors: tuple[Finding, ...]) -> None:
        """Write NAME.errors.txt for a held bundle, or remove it once it passes.

        Only a file that carries our header is ours to replace or remove; a
        person's file of that name is left alone. Done once per snapshot.
        """
        if known.errors_file_done is bool(errors):
            return
        known.errors_file_done = bool(errors)
        self._write_errors_file(cand, errors, logs.bundle_log(
            self.log, cand.invoice.name, known.bundle_id or None,
            known.bundle.invoice_ids if known.bundle else ()))

    def _clear_errors_file(self, cand: Candidate, row: Row) -> None:
        """Remove our NAME.errors.txt (only ours) for a held bundle that left the outbox."""
        self._write_errors_file(cand, (), logs.bundle_log(
            self.log, cand.invoice.name, row.bundle_id, row.invoice_ids))

    @staticmethod
    def _write_errors_file(cand: Candidate, errors: tuple[Finding, ...], log: Any) -> None:
        path = errors_file_for(cand)
        try:
            write_errors_file(path, errors, log)
        except OSError as exc:
            # The file is only the clerk's copy: the journal, `status` and the status
            # page hold the reasons, so the bundle is still held (or passes) without it.
            # A NAME near the length limit has no room for the suffix (ENAMETOOLONG).
            log.error("cannot write or remove the errors file beside the invoice file; "
                      "its errors are on the status page and in `outboxd status`",
                      file=path.name, error=str(exc),
                      fix="shorten the invoice file's name" if exc.errno == errno.ENAMETOOLONG
                           else "check the outbox's free space and permissions")

    def forget(self, key: str) -> None:
        self.tracker.forget(key)
        self.known.pop(key, None)
        self._claim_paused.pop(key, None)
        self._due.pop(key, None)
        self._resumed.discard(key)
        self._early_spent.discard(key)

    def start(self, present: set[str]) -> None:
        """Take over the live rows of a previous run: those whose invoice file is
        no longer in the outbox are gone, the others are remembered."""
        for row in self.j.rows(LIVE):
            if row.invoice_file in present:
                self.live[row.invoice_file] = row
                if row.state in ("waiting", "held"):
                    self._resumed.add(row.invoice_file)
            else:
                if row.state == "held":  # taken out while we were stopped: as in step()
                    self._clear_errors_file(candidate_for(self.s.outbox, row.invoice_file), row)
                self.j.transition(row.id, "gone", "not in the outbox at start", durable=False)
