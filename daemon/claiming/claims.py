"""Claims, made together: the bundles a turn of the loop decided to send or
quarantine are recorded in one journal commit, renamed into processing,
synced once, checked again by hashes (in the reader processes), and handed
to delivery one by one; one that failed or changed is undone (undoing.py), and one
that cannot be undone now waits (stranded.py). Part of
`pipeline.Pipeline` (a mixin: it shares the pipeline's live rows, its memory of what
was read, and its journal).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.bundle import Bundle, Finding, reasons_of
from daemon.claiming.claim import claim, owner_of, sync_claimed, work_dir_for
from daemon.claiming.claimcheck import changed_since_read, linked_since, moved_into
from daemon.claiming.owncopy import copy_limit, own_copies, say_copied
from daemon.claiming.undoing import Undoing
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

# Claims made together (one journal commit, one sync of the outbox): enough to
# amortise the syncs, few enough that delivery of the first starts soon.
CLAIM_BATCH = 32


class Claims(Undoing):
    """The claim steps of the pipeline (loop thread only)."""

    s: Settings
    j: Journal
    log: Any
    finish: Finisher
    live: dict[str, Row]
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
                yield c.cand.invoice.name, self._failed_unmoved(c, row_id, exc, now)
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
                    yield c.cand.invoice.name, self._cut_short(c.cand.invoice.name, row_id, exc)
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
                    yield c.cand.invoice.name, self._cut_short(c.cand.invoice.name, row_id, undo)
            return
        if not moved:
            return
        # The files may have changed between validation and the move. The id
        # covers every byte of the attachments (hashes), the sidecar digest the
        # rest matching reads (attachments.toml, structural errors), so matching
        # again is enough: no need to parse PDFs and images a second time. All of
        # a batch side by side, in the readers when the daemon has them.
        unmade, single = self._own_copies(moved)
        checks = iter(self.assemble_many([(after, _validated(c)) for i, (c, _, after)
                                          in enumerate(moved) if i not in unmade], self.s))
        # Those found unchanged go to delivery in groups of 1, 2, 4, ... bundles, each
        # group one journal commit: the first of a batch starts at once, and a batch of
        # 32 costs 6 commits instead of 32 (each a few pages written to the WAL, and
        # statements that each hand the interpreter lock over).
        ready: list[tuple[Claim, int, Bundle]] = []
        group = 1
        for i, (c, row_id, _) in enumerate(moved):
            try:
                if i in unmade and unmade[i].errno != errno.EAGAIN:
                    # A full disk, a share gone: put back, and claimed again after a
                    # rescan period, as a claim that cannot move the files is.
                    checked: Next | Bundle = self._claim_failed(c, row_id, unmade[i], now)
                else:
                    checked = self._verify(c, row_id, unmade.get(i) or next(checks),
                                           single.get(i, ()))
            except Exception as exc:  # noqa: BLE001
                yield c.cand.invoice.name, self._cut_short(c.cand.invoice.name, row_id, exc)
                continue
            if isinstance(checked, Next):
                yield c.cand.invoice.name, checked
                continue
            ready.append((c, row_id, checked))
            if len(ready) >= group:
                yield from self._hand_over(ready)
                ready, group = [], group * 2
        yield from self._hand_over(ready)

    def _own_copies(self, moved: list[tuple[Claim, int, Candidate]]
                    ) -> tuple[dict[int, OSError], dict[int, list[str]]]:
        """The files of several names of each claimed bundle made its own (owncopy.py), so
        that the check by hashes reads, and delivery sends, the copies; where that failed,
        why, by the bundle's place in `moved`: a file saved into meanwhile (EAGAIN: the
        bundle changed, and settles again), or the machine's fault. Neither is checked.
        And, by the same place, the files of the snapshot's links found with one name at
        the claim, so not copied (Owned.single)."""
        unmade: dict[int, OSError] = {}
        single: dict[int, list[str]] = {}
        for i, (c, _, after) in enumerate(moved):
            if not c.known.snap.linked:
                continue
            log = bundle_log(self.log, c.cand.invoice.name, c.known.bundle_id,
                             _validated(c).invoice_ids)
            try:
                owned = own_copies(after.invoice.parent, c.known.snap.linked,
                                   copy_limit(self.s), self.s.outbox.path)
            except OSError as exc:
                unmade[i] = exc
                continue
            say_copied(log, owned)
            single[i] = owned.single
        return unmade, single

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
              ) -> Next | Candidate | Exception:
        """The renames of one claim (its syncs follow for all together: its work folder
        is added to `held`); the bundle as it lies in its work folder, or what to do when
        the move failed (an error: the claim cut short before its move)."""
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
                return self._failed_unmoved(c, row_id, OSError(
                    errno.ENOENT, "the outbox went away while its invoice file was being "
                    "claimed — is the share mounted?"), now)
            self.forget(key)
            self.j.transition(row_id, "gone", "claimed by another daemon", durable=False,
                              work_dir=None)
            log.info("bundle taken by another daemon")
            return IDLE
        except NothingClaimed as exc:  # nothing left the outbox: nothing to put back
            return self._failed_unmoved(c, row_id, exc.cause, now)
        except OSError as exc:
            return self._claim_failed(c, row_id, exc, now)
        if c.known.claim_failure is not None:
            log.info("bundle claimed now; its claim had failed before",
                     error=c.known.claim_failure[1])
            c.known.claim_failure = None
        return moved

    def _failed_unmoved(self, c: Claim, row_id: int, exc: OSError, now: float
                        ) -> Next | Exception:
        """_claim_failed of a claim that failed before any of its files moved; or, its
        undo raising (the journal refusing its record: one full disk, where the work
        folder could not be made either), the claim cut short as one before its move,
        the error returned for the loop to say. Raised, it was cut short as one that may
        have moved files: finished so, it waited for a work folder never made ("is the
        share mounted?") once the clerk took the invoice file back, and a batch's ended
        the batch, its other rows left `claiming`."""
        try:
            return self._claim_failed(c, row_id, exc, now, moved=False)
        except Exception as undo:  # noqa: BLE001 - its row's write refused, say
            return self._cut_short(c.cand.invoice.name, row_id, undo, moved=False)

    def _share_went_away(self, row_id: int) -> bool:
        """The processing folder is no longer the one this claim was recorded in (its
        identity, `claimed_in`): the outbox's share went away (or was replaced) under the
        claim. Another daemon that took the bundle leaves the folder as it was."""
        recorded = self.j.get(row_id).claimed_in
        now = folder_mark(self.s.processing_dir, self.s.outbox.path)  # never through a link
        return recorded is not None and now != recorded

    def _verify(self, c: Claim, row_id: int, after: Bundle | BaseException,
                single: Collection[str] = ()) -> Next | Bundle:
        """After the move: the same bytes as validated (`after`: the moved bundle
        matched again)? Then the validated bundle at its new place, for delivery; else
        what became of it (settling again, or quarantined). `single`: files of the
        snapshot's links the claim found with one name, so did not copy (a link made for
        one of them since is one the claim did not see)."""
        bundle, key = c.known.bundle, c.cand.invoice.name
        assert bundle is not None
        self.forget(key)
        seen = tuple(rel for rel in c.known.snap.linked if rel not in single)
        changed = changed_since_read(bundle, after, c.known.bundle_id) or \
            linked_since(after, seen)
        if changed is not None:
            log = bundle_log(self.log, key, c.known.bundle_id, bundle.invoice_ids)
            undone = self._undo_claim(c.cand, row_id, c.work, "changed while being claimed",
                                      log, copies=bool(c.known.snap.linked))
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
        commit (not durable here: the delivery makes it so before the first POST, most
        often already covered by a later batch's durable commit), then each handed
        over."""
        if not ready:
            return
        commit = 0  # a failed commit: each attempt records (durably) `delivering` itself
        try:
            self.j.transitions([(row_id, {}) for _, row_id, _ in ready], "delivering",
                               "claimed", durable=False)
            commit = self.j.commits
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
            self.finish.hand_over(row_id, bundle, commit)
            bundle_log(self.log, c.cand.invoice.name, c.known.bundle_id, bundle.invoice_ids
                       ).info("bundle claimed", attachments=len(bundle.attachments),
                              unattached_ids=list(bundle.unattached_ids))
            # Its files left the outbox with the claim: the loop need not step it again to
            # find that out (the events of our own moves then concern no bundle).
            yield c.cand.invoice.name, Next(claimed=row_id, gone=True)


def _validated(c: Claim) -> Bundle:
    assert c.known.bundle is not None  # only a bundle that was read is claimed
    return c.known.bundle
