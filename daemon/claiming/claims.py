"""Claims, made together: the bundles a turn of the loop decided to send or
quarantine are recorded in one journal commit, renamed into processing,
synced once, checked again by hashes (in the reader processes), and handed
to delivery one by one; one that cannot be undone now waits (stranded.py). Part of
`pipeline.Pipeline` (a mixin: it shares the pipeline's live rows, its memory of what
was read, and its journal).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.bundle import Bundle, Finding, reasons_of
from daemon.claiming.claim import (
    Unclaimed,
    changed_during_claim,
    changed_since_read,
    claim,
    log_leftover,
    moved_into,
    not_moved,
    owner_of,
    stuck_in_work_folder,
    sync_claimed,
    unclaim,
    work_dir_for,
)
from daemon.claiming.stranded import Stranded
from daemon.configuration.config import Settings
from daemon.delivery.finish import Finisher
from daemon.errors import (
    ClaimLost,
    JournalError,
    JournalLost,
    NothingClaimed,
    OutboxdError,
)
from daemon.fs.fswrite import folders_below, refuse_links
from daemon.fs.workfolder import folder_mark
from daemon.journal import CLAIMING, Journal, Row
from daemon.logs import bundle_log
from daemon.loop import release
from daemon.loop.step import IDLE, Claim, Known, Next
from daemon.watching.scan import Candidate
from daemon.watching.settle import SettleTracker
from daemon.watching.snapshot import snapshot

# Claims made together (one journal commit, one sync of the outbox): enough to
# amortise the syncs, few enough that delivery of the first starts soon.
CLAIM_BATCH = 32


class Claims(Stranded):
    """The claim steps of the pipeline (loop thread only)."""

    s: Settings
    j: Journal
    log: Any
    finish: Finisher
    tracker: SettleTracker
    live: dict[str, Row]
    _claim_paused: dict[str, float]
    _held: list[Claim] | None
    _held_ids: set[str]  # the bundle ids in _held: the duplicate check asks once per decision
    # How moved bundles are matched again after a claim: the daemon's reader
    # processes when it has them (Readers.assemble_many), else here.
    assemble_many: Callable[[list[tuple[Candidate, Bundle]], Settings],
                            Iterable[Bundle | BaseException]]

    if TYPE_CHECKING:
        # The pipeline's: declared for mypy only, so that no stand-in here can come
        # before it in the pipeline's bases (tests/loop/test_service.py).
        def forget(self, key: str) -> None: ...

    def _undo_claim(self, cand: Candidate, row_id: int, work: Path, why: str, log: Any,
                    moved: bool = True, **fields: Any) -> Next | None:
        """Put a claimed bundle back to settle again (None: the caller says why it went
        back). If a same-named file arrived in the meantime, ours cannot go back and is
        quarantined beside it instead (handed to the delivery workers when that move must
        be retried), and so is a bundle whose work folder is no longer the one claimed;
        that is logged here, as what happens to it. `moved=False`: nothing was moved, and
        the work folder is not even looked at (it may lie behind a link)."""
        if moved and not os.path.lexists(work):
            # lexists: a link in its place (even one leading nowhere) is there: unclaim
            # refuses it and the bundle is reported stuck, where it was claimed.
            return self._stranded_claim(cand, row_id, work, why, log)
        try:
            undone = unclaim(cand, work) if moved else Unclaimed([])
        except OSError as exc:
            # A rename back refused half-way (the share gone meanwhile, permissions): what
            # did not go back is still in the work folder, which the row must go on
            # naming. Raised, the row stayed `claiming` unexplained until a restart.
            return self._stranded_claim(cand, row_id, work, why, log, exc)
        stuck = undone.stuck
        if stuck == [work.name]:
            # The folder itself could not be used: a link (or another folder) in its place.
            # The bundle lies wherever the folder went; its quarantine refuses the link and
            # is retried until a person puts the folder back.
            return self._quarantine_now(row_id, [stuck_in_work_folder(cand.invoice.name,
                                                                      work, log)])
        if stuck:
            log.warning("new files of the same names arrived while the bundle was being "
                        "claimed; it is quarantined beside them", names=stuck)
            return self._quarantine_now(row_id, [changed_during_claim(cand.invoice.name, stuck)])
        if undone.leftover is not None:
            # The bundle is back in the outbox: it settles again. Only its emptied work
            # folder is left (marked: the orphan sweep removes it, never sends from it).
            log_leftover(log, work, undone.leftover)
        self._settle_again(row_id, cand.invoice.name, why, **fields)
        return None

    def _quarantine_now(self, row_id: int, reasons: list[Finding]) -> Next:
        """Quarantine at claim time; a move that failed is retried by the delivery workers
        on their back-off (the row stays quarantining, with last_error)."""
        return IDLE if self.finish.quarantine(row_id, reasons) is None else Next(claimed=row_id)

    def _claim(self, cand: Candidate, known: Known, row: Row | None,
               reasons: list[Finding], now: float) -> Next:
        intent = Claim(cand, known, row, reasons,
                        work_dir_for(self.s.processing_dir, cand.name, known.bundle_id,
                                     owner_of(self.s.paths.state_dir)))
        if self._held is not None:
            self._held.append(intent)  # claimed with the others of this turn
            self._held_ids.add(known.bundle_id)
            return IDLE
        _, nxt = next(self._claim_all([intent], now))
        if isinstance(nxt, BaseException):
            raise nxt
        return nxt

    def claiming(self, bundle_id: str) -> bool:
        """A claim of this content is held for the end of this turn: the same content
        again in the same turn is a duplicate, as it is once the claim is journaled."""
        return self._held is not None and bundle_id in self._held_ids

    def hold_claims(self, hold: bool = True) -> None:
        """Claims decided from now on wait for claim_held(), to be claimed together
        (hold=False: claim at once again, dropping any not yet made)."""
        self._held = [] if hold else None
        self._held_ids = set()

    def claim_held(self, now: float) -> Iterator[tuple[str, Next | Exception]]:
        """Claim what was held since hold_claims(), CLAIM_BATCH at a time: one
        durable journal commit and one sync per folder for a batch, instead of
        three syncs each. Per bundle, as soon as it is known, what the loop
        should do next (so delivery starts while the rest is checked), or the
        error that stopped it."""
        held, self._held, self._held_ids = self._held or [], None, set()

        def batches() -> Iterator[tuple[str, Next | Exception]]:
            for start in range(0, len(held), CLAIM_BATCH):
                yield from self._claim_all(held[start:start + CLAIM_BATCH], now)
        return batches()

    def _claim_all(self, claims: list[Claim], now: float
                   ) -> Iterator[tuple[str, Next | Exception]]:
        try:
            # Journal first, for all of them: a crash after any rename finds its record.
            row_ids = self._record_claims(claims)
        except OutboxdError as exc:
            for c in claims:
                yield c.cand.invoice.name, exc
            return
        try:
            # .outboxd lies in the outbox: anyone on the share may put a link there.
            refuse_links(folders_below(self.s.outbox.path, self.s.processing_dir))
            if (away := self.finish.mounts.away(self.s.processing_dir)) is not None:
                # Its share unmounted: the claim would put the bundle in flight on the bare
                # mount point, where the remount hides its work folder.
                raise OSError(away)
        except OSError as exc:
            for c, row_id in zip(claims, row_ids, strict=True):
                yield c.cand.invoice.name, self._claim_failed(c, row_id, exc, now,
                                                              moved=False)
            return
        moved: list[tuple[Claim, int, Candidate]] = []
        # Each work folder claimed stays held until it is synced through its descriptor:
        # one moved away or swapped for a link meanwhile neither fails the batch's syncs
        # (by its path: not found) nor has them sync where the link leads.
        held: list[tuple[Path, int]] = []
        failed: OSError | None = None
        try:
            for c, row_id in zip(claims, row_ids, strict=True):
                try:
                    nxt = self._move(c, row_id, now, held)
                except Exception as exc:  # noqa: BLE001 - one bundle's failure is its own
                    yield c.cand.invoice.name, exc
                    continue
                if isinstance(nxt, Candidate):
                    moved.append((c, row_id, nxt))
                else:
                    yield c.cand.invoice.name, nxt
            if moved:
                try:
                    sync_claimed(held, self.s.outbox.path)
                except OSError as exc:
                    failed = exc
        finally:
            for _work, fd in held:
                os.close(fd)
        if failed is not None:  # as a failed move: put them back, try again later
            for c, row_id, _ in moved:
                try:
                    yield c.cand.invoice.name, self._claim_failed(c, row_id, failed, now)
                except Exception as undo:  # noqa: BLE001 - the share may be gone for the undo too
                    yield c.cand.invoice.name, undo
            return
        if not moved:
            return
        # The files may have changed between validation and the move. The id
        # covers every byte of the attachments (hashes), the sidecar digest the
        # rest matching reads (attachments.toml, structural errors), so matching
        # again is enough: no need to parse PDFs and images a second time. All of
        # a batch side by side, in the readers when the daemon has them.
        afters = self.assemble_many([(after, _validated(c)) for c, _, after in moved], self.s)
        # Those found unchanged go to delivery in groups of 1, 2, 4, ... bundles, each
        # group one journal commit: the first of a batch starts at once, and a batch of
        # 32 costs 6 commits instead of 32 (each a few pages written to the WAL, and
        # statements that each hand the interpreter lock over).
        ready: list[tuple[Claim, int, Bundle]] = []
        group = 1
        for (c, row_id, _), after in zip(moved, afters, strict=True):
            try:
                checked = self._verify(c, row_id, after)
            except Exception as exc:  # noqa: BLE001
                yield c.cand.invoice.name, exc
                continue
            if isinstance(checked, Next):
                yield c.cand.invoice.name, checked
                continue
            ready.append((c, row_id, checked))
            if len(ready) >= group:
                yield from self._hand_over(ready)
                ready, group = [], group * 2
        yield from self._hand_over(ready)

    def _record_claims(self, claims: list[Claim]) -> list[int]:
        """`claiming` for each, in one durable commit: the live rows moved with one
        transitions() (two statements for the batch), a bundle without one given its row."""
        made: dict[int, int] = {}
        moves: list[tuple[int, dict[str, Any]]] = []
        # The processing folder claimed into, kept with each claim (a stat a batch, no
        # statement of its own): see Recovery._never_made.
        claimed_in = folder_mark(self.s.processing_dir, self.s.outbox.path)
        with self.j.batch():
            for i, c in enumerate(claims):
                bundle = c.known.bundle
                assert bundle is not None
                fields: dict[str, Any] = {
                    "bundle_id": c.known.bundle_id, "invoice_ids": list(bundle.invoice_ids),
                    "unattached_ids": list(bundle.unattached_ids), "work_dir": str(c.work),
                    "reasons": reasons_of(c.reasons), "channel": bundle.channel,
                    "claimed_in": claimed_in}
                if c.row is None:
                    made[i] = self.j.create(c.cand.invoice.name, CLAIMING, **fields)
                else:
                    moves.append((c.row.id, fields))
            self.j.transitions(moves, CLAIMING)
        return [made[i] if c.row is None else c.row.id for i, c in enumerate(claims)]

    def _move(self, c: Claim, row_id: int, now: float, held: list[tuple[Path, int]]
              ) -> Next | Candidate:
        """The renames of one claim (its syncs follow for all together: its work folder
        is added to `held`); the bundle as it lies in its work folder, or what to do when
        the move failed."""
        cand, key = c.cand, c.cand.invoice.name
        assert c.known.bundle is not None
        self.live.pop(key, None)
        log = bundle_log(self.log, key, c.known.bundle_id, c.known.bundle.invoice_ids)
        try:
            moved = claim(cand, c.work, self.s.outbox.completion == "marker",
                          companions=[release.path_for(cand, self.s.share)], held_open=held)
        except ClaimLost:
            if self._share_went_away(row_id):
                # Its invoice file vanished because the share did (a lazy unmount leaves
                # the empty mount point, where the work folder was just made): nothing
                # moved; claimed again once the outbox is back, not called another's.
                return self._claim_failed(c, row_id, OSError(
                    errno.ENOENT, "the outbox went away while its invoice file was being "
                    "claimed — is the share mounted?"), now, moved=False)
            self.forget(key)
            self.j.transition(row_id, "gone", "claimed by another daemon", durable=False,
                              work_dir=None)
            log.info("bundle taken by another daemon")
            return IDLE
        except NothingClaimed as exc:  # nothing left the outbox: nothing to put back
            return self._claim_failed(c, row_id, exc.cause, now, moved=False)
        except OSError as exc:
            return self._claim_failed(c, row_id, exc, now)
        if c.known.claim_failure is not None:
            log.info("bundle claimed now; its claim had failed before",
                     error=c.known.claim_failure[1])
            c.known.claim_failure = None
        return moved

    def _share_went_away(self, row_id: int) -> bool:
        """The processing folder is no longer the one this claim was recorded in (its
        identity, `claimed_in`): the outbox's share went away (or was replaced) under the
        claim. Another daemon that took the bundle leaves the folder as it was."""
        recorded = self.j.get(row_id).claimed_in
        now = folder_mark(self.s.processing_dir, self.s.outbox.path)  # never through a link
        return recorded is not None and now != recorded

    def _claim_failed(self, c: Claim, row_id: int, exc: OSError, now: float,
                      moved: bool = True) -> Next:
        """Permissions, a share that went away: put back whatever moved and try
        again after a rescan period rather than at once. The files put back are as
        they were (_put_back), so what was read stands for that next claim."""
        key = c.cand.invoice.name
        assert c.known.bundle is not None
        log = bundle_log(self.log, key, c.known.bundle_id, c.known.bundle.invoice_ids)
        undone = self._undo_claim(c.cand, row_id, c.work, "claim failed", log, moved,
                                  last_error=not_moved(exc))
        self._claim_paused[key] = now + self.s.outbox.rescan_seconds
        if undone is not None:  # not put back: quarantined, as logged
            return undone if undone.claimed is not None else Next(at=self._claim_paused[key])
        if moved:
            self._put_back(c)
        # By its kind, not its line: that names the work folder, new at each try.
        cause = f"{type(exc).__name__}:{exc.errno}"
        if c.known.claim_failure is None or c.known.claim_failure[0] != cause:
            log.error("cannot claim bundle; will try again", error=not_moved(exc),
                      retry_in=self.s.outbox.rescan_seconds)
        c.known.claim_failure = (cause, not_moved(exc))
        return Next(at=self._claim_paused[key])

    def _put_back(self, c: Claim) -> None:
        """The renames of a claim undone changed the change times (snapshot.Entry) of the
        invoice file, sidecar and marker, and nothing else: the bundle stays settled and
        read as it was. Else each retry of a claim that keeps failing (a folder outboxd
        may not move, for hours) read the whole bundle again, every rescan period.
        Anything else that changed meanwhile is a change: settled and read again."""
        cand, known = c.cand, c.known
        after = snapshot(cand, self.s.outbox)
        if after is not None and self.tracker.put_back(
                cand.invoice.name, known.snap, after,
                {cand.invoice.name, cand.sidecar.name, cand.marker.name}):
            known.snap = after

    def _verify(self, c: Claim, row_id: int, after: Bundle | BaseException) -> Next | Bundle:
        """After the move: the same bytes as validated (`after`: the moved bundle
        matched again)? Then the validated bundle at its new place, for delivery; else
        what became of it (settling again, or quarantined)."""
        bundle, key = c.known.bundle, c.cand.invoice.name
        assert bundle is not None
        self.forget(key)
        changed = changed_since_read(bundle, after, c.known.bundle_id)
        if changed is not None:
            log = bundle_log(self.log, key, c.known.bundle_id, bundle.invoice_ids)
            undone = self._undo_claim(c.cand, row_id, c.work, "changed while being claimed",
                                      log)
            if undone is not None:
                return undone
            log.info("bundle changed while being claimed; settling again", changed=changed)
            return IDLE
        assert isinstance(after, Bundle)  # matched again, else changed_since_read said so
        if c.reasons:
            return self._quarantine_now(row_id, c.reasons)
        # Delivery takes the bundle validated before the claim, at its new
        # place: no second pypdf/Pillow pass.
        return moved_into(bundle, after)

    def _hand_over(self, ready: list[tuple[Claim, int, Bundle]]
                   ) -> Iterator[tuple[str, Next | Exception]]:
        """Bundles checked after their claim, to delivery: `delivering` for all in one
        commit (not durable: it announces no effect of its own; the POST that follows
        may come again after a crash, with the same Idempotency-Key), then each handed
        over."""
        if not ready:
            return
        try:
            self.j.transitions([(row_id, {}) for _, row_id, _ in ready], "delivering",
                               "claimed", durable=False)
        except JournalLost as exc:
            for c, _, _ in ready:
                yield c.cand.invoice.name, exc
            return
        except JournalError:
            # A write failure (logged by the journal, once): the claims stand, durable,
            # their files in processing. Handed over all the same, each attempt records
            # `delivering` itself before anything is sent, on the journal's back-off
            # (Finisher.attempt); else the rows stayed `claiming`, shown as being sent,
            # until a restart.
            pass
        for c, row_id, bundle in ready:
            self.finish.hand_over(row_id, bundle)
            bundle_log(self.log, c.cand.invoice.name, c.known.bundle_id, bundle.invoice_ids
                       ).info("bundle claimed", attachments=len(bundle.attachments),
                              unattached_ids=list(bundle.unattached_ids))
            # Its files left the outbox with the claim: the loop need not step it again to
            # find that out (the events of our own moves then concern no bundle).
            yield c.cand.invoice.name, Next(claimed=row_id, gone=True)


def _validated(c: Claim) -> Bundle:
    assert c.known.bundle is not None  # only a bundle that was read is claimed
    return c.known.bundle
