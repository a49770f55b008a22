"""The pipeline for one bundle up to its claim: settle → read → match →
validate → decide → claim. What follows the claim (deliver, archive,
quarantine, recovery) is `finish.Finisher`.

This module decides and sequences; the modules it calls do the work. Every
step that changes the world is announced in the journal first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon import logs, release
from daemon.bundle import Bundle, Finding
from daemon.claim import (
    claim,
    moved_candidate,
    sync_claimed,
    taken_meanwhile,
    unclaim,
    work_dir_for,
)
from daemon.config import Settings
from daemon.convert import unconverted
from daemon.deliver import Deliverer
from daemon.errors import ClaimLost, InputError, OutboxdError
from daemon.finish import Finisher, bind, reasons_of
from daemon.fsops import write_atomic
from daemon.journal import (
    CLAIMING,
    LIVE,
    Journal,
    Row,
    iso_in,
    parse_iso,
)
from daemon.manifest import bundle_id_of
from daemon.match import assemble
from daemon.scan import Candidate, Snapshot, candidate_for, snapshot
from daemon.settle import SettleTracker

# Claims made together (one journal commit, one sync of the outbox): enough to
# amortise the syncs, few enough that delivery of the first starts soon.
CLAIM_BATCH = 32
ERRORS_HEADER = ("# outboxd: this bundle is held because of the errors below. Fix them;\n"
                 "# it is checked again on every change and this file goes away once it passes.\n")


@dataclass(frozen=True)
class Next:
    """What a step asks of the loop: deliver a claimed row, look again at a
    monotonic time, or read and validate a settled version off the loop."""

    claimed: int | None = None
    at: float | None = None
    read: Snapshot | None = None
    gone: bool = False  # the invoice file is no longer in the outbox


IDLE = Next()


@dataclass(frozen=True)
class _Claim:
    """A claim decided in this turn of the loop, not yet made."""

    cand: Candidate
    known: _Known
    row: Row | None
    reasons: list[Finding]
    work: Path


@dataclass
class _Known:
    """What a settled snapshot was found to be, so it is read only once."""

    snap: Snapshot
    bundle: Bundle | None  # None: the invoice file itself could not be read
    bundle_id: str
    errors_file_done: bool = False  # NAME.errors.txt written (hold) or cleared (passing)
    error: str | None = None  # why the bundle could not be read (shown by status)


def _errors_file_text(path: Path) -> str | None:
    """NAME.errors.txt if it is a regular file we can read, else None."""
    try:
        if not path.is_file() or path.is_symlink():
            return None
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


class Pipeline:
    """Runs on the loop thread only: it owns the live (pre-claim) journal rows,
    which it keeps in memory so that stepping a bundle costs no query."""

    def __init__(self, settings: Settings, journal: Journal, deliverer: Deliverer) -> None:
        self.s = settings
        self.j = journal
        self.finish = Finisher(settings, journal, deliverer)
        self.tracker = SettleTracker(settings.outbox.settle_seconds)
        self.known: dict[str, _Known] = {}
        self.live: dict[str, Row] = {}  # invoice file -> its live row, as last written
        self._reading: dict[str, Snapshot] = {}  # handed to a reader, result not back yet
        self._claim_paused: dict[str, float] = {}  # invoice file -> monotonic retry time
        self._held: list[_Claim] | None = None  # claims waiting for claim_held()
        # How moved bundles are matched again after a claim: the daemon's reader
        # processes when it has them (Readers.assemble_many), else here.
        self.assemble_many: Callable[[list[tuple[Candidate, Bundle]], Settings],
                                     list[Bundle | BaseException]] = assemble_here
        self.log = logs.get()

    # -- reading ---------------------------------------------------------------
    def reconfigure(self, settings: Settings, deliverer: Deliverer) -> Deliverer:
        """Take a reloaded configuration; returns the old deliverer for the caller to close."""
        self.s = self.finish.s = settings
        self.tracker.settle_seconds = settings.outbox.settle_seconds
        old, self.finish.d = self.finish.d, deliverer
        return old

    def _bind(self, invoice_file: str, bundle_id: str | None, ids: list[str] | tuple[str, ...]
              ) -> Any:
        return bind(self.log, invoice_file, bundle_id, ids)

    # -- before the claim ------------------------------------------------------
    def step(self, cand: Candidate, now: float, snap: Snapshot | None = None) -> Next:
        """Look at one invoice file in the outbox; `now` is the loop's monotonic time."""
        key = cand.invoice.name
        snap = snap or snapshot(cand, self.s.outbox)
        row = self.live.get(key)
        if snap is None:
            self.forget(key)
            if row:
                self._live(row, key, "gone", detail="the invoice file left the outbox")
            return Next(gone=True)
        settled = self.tracker.observe(key, snap, now)
        marker_missing = (self.s.outbox.completion == "marker"
                          and not os.path.lexists(cand.marker))
        if not settled or marker_missing:
            self._live(row, key, "settling")
            # An in-progress name or a missing marker ends with an event, not a time.
            quiet = not snap.busy and not marker_missing
            return Next(at=self.tracker.ready_at(key)) if quiet and not settled else IDLE
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
            if known.error:  # status shows why it does not move
                self._live(row, key, "settling", last_error=known.error)
            return IDLE  # unreadable: looked at again when something changes
        if row is not None and row.last_error and row.state in LIVE:
            self._live(row, key, row.state, last_error=None)  # it reads now
            row = self.live.get(key)
        return self._decide(cand, known, row, now)

    def took_read(self, key: str, snap: Snapshot, result: Bundle | BaseException) -> None:
        """The result of reading and validating `snap` of `key` on a worker."""
        pending = self._reading.get(key)
        if pending is not None and pending != snap:
            return  # a newer version is being read; this result is already stale
        self._reading.pop(key, None)
        if isinstance(result, Bundle):
            self.known[key] = _Known(snap, result, bundle_id_of(result))
            return
        error = None
        if isinstance(result, InputError | OSError) and taken_meanwhile(
                candidate_for(self.s.outbox, key)):
            # Another daemon on the share claimed it while we read: normal work.
            self.log.info("bundle left the outbox while being read (claimed by another daemon, "
                          "or the share went away)", invoice_file=key)
        elif isinstance(result, InputError | OSError):
            # Logged once per snapshot: it is read again only when something changes.
            self.log.error("bundle cannot be read", invoice_file=key, error=str(result))
            error = str(result)
        else:
            self.log.error("unexpected error reading bundle", invoice_file=key,
                           exc_info=result)
        self.known[key] = _Known(snap, None, "", error=error)

    def _live(self, row: Row | None, key: str, state: str, detail: str = "",
              **fields: Any) -> None:
        """Record a live state; written only when it differs from what the row says.

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
            row_id = self.j.create(key, state, detail, durable=False, **fields)
        elif row.state != state or any(getattr(row, k) != v for k, v in fields.items()):
            self.j.transition(row.id, state, detail, durable=False, **fields)
            row_id = row.id
        else:
            return
        if state in LIVE:
            self.live[key] = self.j.get(row_id)
        else:
            self.live.pop(key, None)

    def _decide(self, cand: Candidate, known: _Known, row: Row | None, now: float) -> Next:
        bundle, bid, key = known.bundle, known.bundle_id, cand.invoice.name
        assert bundle is not None
        policy = self.s.policy
        if bundle.errors:
            if policy.invalid == "hold":
                self._errors_file(cand, known, bundle.errors)
                self._live(row, key, "held", bundle_id=bid, reasons=reasons_of(bundle.errors))
                return IDLE
            return self._claim(cand, known, row, list(bundle.errors), now)
        self._errors_file(cand, known, ())
        if self.j.was_sent(bid) and policy.duplicates == "quarantine":
            return self._claim(cand, known, row, [Finding(
                "duplicate", key, f"this exact bundle ({bid[:12]}) was sent before — remove "
                "it, or change it if it is meant to be a new bundle")], now)
        unattached = bundle.unattached_ids
        if unattached and policy.unattached != "send":
            if release.release_file(cand, self.s.share) is not None:  # "send anyway"
                return self._claim(cand, known, row, [], now)
            deadline = row.deadline if row and row.deadline else (
                None if policy.unattached == "hold" else iso_in(policy.attachment_wait_seconds))
            # The deadline is kept as wall-clock time (it survives a restart);
            # the loop waits for it on its own monotonic clock.
            left = None if deadline is None else (
                parse_iso(deadline) - datetime.now(UTC)).total_seconds()
            if left is None or left > 0:
                self._live(row, key, "waiting", bundle_id=bid, deadline=deadline,
                           invoice_ids=list(bundle.invoice_ids), unattached_ids=list(unattached))
                return IDLE if left is None else Next(at=now + left)
            if policy.unattached == "quarantine":
                return self._claim(cand, known, row, [Finding(
                    "unattached-invoice", key, f"invoice(s) {', '.join(unattached)} had no "
                    f"attachments after {policy.attachment_wait_seconds:g} s — add them to the "
                    "sidecar folder and move the bundle back into the outbox")], now)
        return self._claim(cand, known, row, [], now)

    def _errors_file(self, cand: Candidate, known: _Known, errors: tuple[Finding, ...]) -> None:
        """Write NAME.errors.txt for a held bundle, or remove it once it passes.

        Only a file that carries our header is ours to replace or remove; a
        person's file of that name is left alone. Done once per snapshot.
        """
        if known.errors_file_done:
            return
        known.errors_file_done = True
        path = cand.invoice.with_name(cand.name + ".errors.txt")
        current = _errors_file_text(path)
        ours = current is not None and current.startswith(ERRORS_HEADER)
        if not errors:
            if ours:
                path.unlink()
            return
        text = ERRORS_HEADER + "".join(f"{f.line()}\n" for f in errors)
        if os.path.lexists(path) and not ours:
            self.log.error("not replacing a file outboxd did not write", file=path.name,
                           invoice_file=cand.invoice.name)
        elif current != text:
            write_atomic(path, text.encode("utf-8"))

    def _undo_claim(self, cand: Candidate, row_id: int, work: Path, why: str,
                    **fields: Any) -> Next:
        """Put a claimed bundle back to settle again; if a same-named file arrived in the
        meantime, ours cannot go back and is quarantined beside it instead (handed to
        the delivery workers when that move must be retried)."""
        stuck = unclaim(cand, work) if work.exists() else []
        if stuck:
            return self._quarantine_now(row_id, [Finding(
                "changed-during-claim", cand.invoice.name, f"while this bundle was being "
                f"claimed, new files named {', '.join(stuck)} appeared in the outbox; this is "
                "the earlier version — compare the two and move the right one back into the "
                "outbox")])
        self.j.transition(row_id, "settling", why, work_dir=None, **fields)
        self.live[cand.invoice.name] = self.j.get(row_id)
        return IDLE

    def _quarantine_now(self, row_id: int, reasons: list[Finding]) -> Next:
        """Quarantine at claim time; a move that failed is retried by the delivery workers
        on their back-off (the row stays quarantining, with last_error)."""
        return IDLE if self.finish.quarantine(row_id, reasons) is None else Next(claimed=row_id)

    def _claim(self, cand: Candidate, known: _Known, row: Row | None,
               reasons: list[Finding], now: float) -> Next:
        intent = _Claim(cand, known, row, reasons,
                        work_dir_for(self.s.processing_dir, cand.name, known.bundle_id))
        if self._held is not None:
            self._held.append(intent)  # claimed with the others of this turn
            return IDLE
        key, nxt = next(self._claim_all([intent], now))
        if isinstance(nxt, BaseException):
            raise nxt
        return nxt

    def hold_claims(self, hold: bool = True) -> None:
        """Claims decided from now on wait for claim_held(), to be claimed together
        (hold=False: claim at once again, dropping any not yet made)."""
        self._held = [] if hold else None

    def claim_held(self, now: float) -> Iterator[tuple[str, Next | Exception]]:
        """Claim what was held since hold_claims(), CLAIM_BATCH at a time: one
        durable journal commit and one sync per folder for a batch, instead of
        three syncs each. Per bundle, as soon as it is known, what the loop
        should do next (so delivery starts while the rest is checked), or the
        error that stopped it."""
        held, self._held = self._held or [], None

        def batches() -> Iterator[tuple[str, Next | Exception]]:
            for start in range(0, len(held), CLAIM_BATCH):
                yield from self._claim_all(held[start:start + CLAIM_BATCH], now)
        return batches()

    def _claim_all(self, claims: list[_Claim], now: float
                   ) -> Iterator[tuple[str, Next | Exception]]:
        try:
            # Journal first, for all of them: a crash after any rename finds its record.
            with self.j.batch():
                row_ids = [self._record_claim(c) for c in claims]
        except OutboxdError as exc:
            for c in claims:
                yield c.cand.invoice.name, exc
            return
        moved: list[tuple[_Claim, int, Candidate]] = []
        for c, row_id in zip(claims, row_ids, strict=True):
            try:
                nxt = self._move(c, row_id, now)
            except Exception as exc:  # noqa: BLE001 - one bundle's failure is its own
                yield c.cand.invoice.name, exc
                continue
            if isinstance(nxt, Candidate):
                moved.append((c, row_id, nxt))
            else:
                yield c.cand.invoice.name, nxt
        if not moved:
            return
        try:
            sync_claimed([c.work for c, _, _ in moved], self.s.outbox.path)
        except OSError as exc:  # as a failed move: put them back, try again later
            for c, row_id, _ in moved:
                yield c.cand.invoice.name, self._claim_failed(c, row_id, exc, now)
            return
        # The files may have changed between validation and the move. The id
        # covers every byte (hashes), so matching again is enough: no need to
        # parse PDFs and images a second time. All of a batch side by side, in
        # the readers when the daemon has them.
        afters = self.assemble_many([(after, _validated(c)) for c, _, after in moved], self.s)
        for (c, row_id, _), after in zip(moved, afters, strict=True):
            try:
                yield c.cand.invoice.name, self._verify(c, row_id, after)
            except Exception as exc:  # noqa: BLE001
                yield c.cand.invoice.name, exc

    def _record_claim(self, c: _Claim) -> int:
        bundle, key = c.known.bundle, c.cand.invoice.name
        assert bundle is not None
        fields = {"bundle_id": c.known.bundle_id, "invoice_ids": list(bundle.invoice_ids),
                  "unattached_ids": list(bundle.unattached_ids), "work_dir": str(c.work),
                  "reasons": reasons_of(c.reasons)}
        if c.row is None:
            return self.j.create(key, CLAIMING, **fields)
        self.j.transition(c.row.id, CLAIMING, **fields)
        return c.row.id

    def _move(self, c: _Claim, row_id: int, now: float) -> Next | Candidate:
        """The renames of one claim (its syncs follow for all together); the bundle
        as it lies in its work folder, or what to do when the move failed."""
        cand, key = c.cand, c.cand.invoice.name
        assert c.known.bundle is not None
        self.live.pop(key, None)
        log = self._bind(key, c.known.bundle_id, c.known.bundle.invoice_ids)
        try:
            return claim(cand, c.work, self.s.outbox.completion == "marker",
                         companions=[release.path_for(cand, self.s.share)], sync=False)
        except ClaimLost:
            self.forget(key)
            self.j.transition(row_id, "gone", "claimed by another daemon", durable=False,
                              work_dir=None)
            log.info("bundle taken by another daemon")
            return IDLE
        except OSError as exc:
            return self._claim_failed(c, row_id, exc, now)

    def _claim_failed(self, c: _Claim, row_id: int, exc: OSError, now: float) -> Next:
        """Permissions, a share that went away: put back whatever moved and try
        again after a rescan period rather than at once. The files are as they
        were (renames change no snapshot), so what was read stands."""
        key = c.cand.invoice.name
        assert c.known.bundle is not None
        undone = self._undo_claim(c.cand, row_id, c.work, "claim failed",
                                  last_error=f"cannot move into processing: {exc}")
        self._bind(key, c.known.bundle_id, c.known.bundle.invoice_ids).error(
            "cannot claim bundle; will try again", error=str(exc),
            retry_in=self.s.outbox.rescan_seconds)
        self._claim_paused[key] = now + self.s.outbox.rescan_seconds
        return undone if undone.claimed is not None else Next(at=self._claim_paused[key])

    def _verify(self, c: _Claim, row_id: int, after: Bundle | BaseException) -> Next:
        """After the move: the same bytes as validated (`after`: the moved bundle
        matched again), then hand over to delivery."""
        bundle, key = c.known.bundle, c.cand.invoice.name
        assert bundle is not None
        log = self._bind(key, c.known.bundle_id, bundle.invoice_ids)
        if isinstance(after, BaseException) and not isinstance(after, InputError | OSError):
            # Not about the files (a reader died, the daemon is stopping): check here.
            after = assemble_here([(moved_candidate(c.cand, c.work), bundle)], self.s)[0]
        self.forget(key)
        # assemble() converts nothing: compare with the id of what was matched.
        if not isinstance(after, Bundle) or \
                bundle_id_of(after) != bundle_id_of(unconverted(bundle)):
            log.info("bundle changed while being claimed; settling again")
            return self._undo_claim(c.cand, row_id, c.work, "changed while being claimed")
        if c.reasons:
            return self._quarantine_now(row_id, c.reasons)
        self.j.transition(row_id, "delivering", "claimed", durable=False)
        # Delivery takes the bundle validated before the claim, at its new
        # place: no second pypdf/Pillow pass.
        self.finish.hand_over(row_id, moved_into(bundle, after))
        log.info("bundle claimed", attachments=len(bundle.attachments),
                 unattached_ids=list(bundle.unattached_ids))
        return Next(claimed=row_id)

    def forget(self, key: str) -> None:
        self.tracker.forget(key)
        self.known.pop(key, None)
        self._claim_paused.pop(key, None)

    def start(self, present: set[str]) -> None:
        """Take over the live rows of a previous run: those whose invoice file is
        no longer in the outbox are gone, the others are remembered."""
        for row in self.j.rows(LIVE):
            if row.invoice_file in present:
                self.live[row.invoice_file] = row
            else:
                self.j.transition(row.id, "gone", "not in the outbox at start", durable=False)


def _validated(c: _Claim) -> Bundle:
    assert c.known.bundle is not None  # only a bundle that was read is claimed
    return c.known.bundle


def assemble_here(jobs: list[tuple[Candidate, Bundle]], settings: Settings
                  ) -> list[Bundle | BaseException]:
    """match.assemble(cand, known=bundle) for each, in this thread."""
    out: list[Bundle | BaseException] = []
    for cand, known in jobs:
        try:
            out.append(assemble(cand, settings, known=known))
        except (InputError, OSError) as exc:
            out.append(exc)
    return out


def moved_into(validated: Bundle, moved: Bundle) -> Bundle:
    """The validated bundle with the paths of its files after the claim.

    Both have the same bundle id, so the files are the same bytes; only
    where they lie has changed.
    """
    where = {(a.invoice_id, a.original_name): a.path for a in moved.attachments}
    return replace(validated,
                   invoice_file=replace(validated.invoice_file, path=moved.invoice_file.path),
                   sidecar=moved.sidecar,
                   attachments=tuple(replace(a, path=where[(a.invoice_id, a.original_name)])
                                     for a in validated.attachments))
