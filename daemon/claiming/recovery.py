"""Recovery at start: what a crash interrupted after a claim is finished or handed
back to the delivery workers (docs/architecture.md, "Crash recovery"), a claimed bundle
read again (rereading.py) to check it is the one claimed. A part of `finish.Finisher`
(a mixin: it shares its journal, settings, the bundles read for delivery and the rows
paused).
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Any

from daemon.bundle import reasons_of
from daemon.claiming.claim import (
    changed_during_claim,
    finish_claim,
    log_leftover,
    stuck_in_work_folder,
    unclaim,
)
from daemon.claiming.claimcheck import linked_since
from daemon.claiming.movedwork import MovedWork
from daemon.claiming.owncopy import own_claimed
from daemon.claiming.rereading import Rereading
from daemon.configuration.config import Settings
from daemon.errors import (
    InputError,
    JournalError,
    JournalLost,
    ReaderFailed,
    describe,
)
from daemon.fs.fswrite import fsync_dir, held_path
from daemon.fs.workfolder import folder_mark, hold_folder, maybe_there, still_at, there
from daemon.journal import (
    CLAIMING,
    IN_FLIGHT,
    QUARANTINING,
    Journal,
    Row,
    iso_in,
    left_of,
    seconds_until,
)
from daemon.logs import bundle_log
from daemon.loop import release
from daemon.manifest import bundle_id_of
from daemon.report.notify import notify
from daemon.watching.scan import Candidate, candidate_for

# The transition's detail of an attempt that found a configuration problem (401,
# 403, 404: the url or token is ours to fix): a restart tries such a bundle at once,
# as a reload does.
PAUSED = "paused: configuration problem"

# The detail of a claim that did not happen, whose invoice file is not in the outbox.
NOT_HAPPENED_GONE = "claim did not happen; the invoice file is no longer in the outbox"

# The detail of the transition (claiming to claiming) that notes, durably, a claim cut
# short before any of its files moved (stranded.Stranded._cut_short): the latest of its
# row's, it is of that very claim (a claim made since writes one after it). Its row's
# history says so; a start ends such a claim as any whose work folder was never made
# (_never_made).
CUT_BEFORE_MOVE = "claim cut short before any of its files moved"

# The start time systemd is asked to add for each interrupted claim read again before
# READY (sd_notify EXTEND_TIMEOUT_USEC): far above what one bundle's read takes.
RECOVERY_READ_USEC = 60_000_000


class Recovery(Rereading, MovedWork):
    s: Settings
    j: Journal
    log: Any
    paused: set[int]
    _unfinished: set[int]  # claiming rows recover() could not finish (OSError)
    # Those of them whose invoice file was in the outbox (and such claims whose moved work
    # folder the start could not look for): invoice file -> row, for claim_waits.
    _claims_waiting: dict[str, int]
    _since_claim: set[int]  # see delivery/beforepost.BeforePost

    def recover(self) -> list[tuple[int, float]]:
        """Finish what a crash interrupted; the rows to hand to the workers and when.

        Only half-done claims are finished here (they touch the outbox, which
        this thread owns); archiving and delivery go through `attempt`, so a
        failure there is retried later instead of stopping the start.
        """
        due: list[tuple[int, float]] = []
        for row in self.j.rows(IN_FLIGHT):
            log = bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids)
            log.info("recovering bundle", state=row.state)
            followed = self._follow_moved(row, log)
            if followed is None:
                if row.state == CLAIMING:
                    self._stands_for_its_file(row)
                continue  # looked for again at each rescan (follow_moved_again)
            row = followed
            if row.state == CLAIMING and not self._finish_or_wait(row, log):
                continue
            due.append((row.id, self._when_due(row)))
        return due

    def _when_due(self, row: Row) -> float:
        """When a row in flight (a claim finished) is tried after a start: at once, but a
        retry's wait what is left of it."""
        if row.state == "retrying" and self.j.last_detail(row.id) == PAUSED:
            self.paused.add(row.id)  # the configuration may be fixed by now: at once
        elif row.state == "retrying" and row.next_attempt_at:
            return self._wait_left(row.id, row.next_attempt_at)
        return 0.0

    def follow_moved_again(self) -> list[tuple[int, float]]:
        """The rows whose work folder the start could not look for where the outbox moved
        to, looked for again (movedwork.MovedWork.followed_again, at each rescan): the rows
        to hand to the workers now, and when. A claim is left to finish_claims_again, at
        this rescan."""
        due: list[tuple[int, float]] = []
        for row in self.followed_again():
            if row.state == CLAIMING:
                self._unfinished.add(row.id)
            else:
                due.append((row.id, self._when_due(row)))
        return due

    def _wait_left(self, row_id: int, next_attempt_at: str) -> float:
        """What is left of a retry's wait, at most the wait as it was set: the wall clock
        stepped back while the daemon was down (an NTP step at boot) must not add its
        step to the wait — an hour back held a 300 s back-off for an hour (One clock)."""
        left = max(0.0, left_of(next_attempt_at, self.j.written_at(row_id)))
        if left < seconds_until(next_attempt_at) - 1:  # `status` and the page show it so
            self.j.update(row_id, next_attempt_at=iso_in(left))
        return left

    def _finish_or_wait(self, row: Row, log: Any) -> bool:
        """_finish_claim, or (OSError) the row left `claiming`, saying why, and tried again
        at each rescan (finish_claims_again): True if the bundle is now ours to finish."""
        try:
            done = self._finish_claim(row)
        except OSError as exc:
            # In words: the row's error is what `status` and the clerks' page show.
            error = (f"cannot finish an interrupted claim into {row.work_dir}: "
                     f"{describe(exc)} — tried again at each rescan")
            # Said in the row too: left `claiming` without why, it showed as on its way
            # ("delivering", the page's "Being sent") for as long as that took. Written
            # and said once, not at every rescan that finds it so.
            if error != row.last_error:
                self.j.update(row.id, last_error=error)
                log.error("cannot finish an interrupted claim; will retry at each rescan",
                          error=describe(exc))
            self._unfinished.add(row.id)
            self._stands_for_its_file(row)
            return False
        self._unfinished.discard(row.id)
        return done

    def finish_claims_again(self) -> tuple[list[int], list[Row]]:
        """The claims recover() could not finish, tried again (at each rescan: the share
        may be back, the folder put back): the rows now ours to deliver or quarantine, and
        those settling again (the claim did not happen, or its bundle changed), for the
        pipeline to take back (stranded.Stranded._take_back). Left to the next start, a
        bundle whose work folder was out of sight at the start waited for an admin to
        restart outboxd."""
        due: list[int] = []
        settling: list[Row] = []
        for row_id in sorted(self._unfinished):
            try:
                row = self.j.get(row_id)
                if row.state != CLAIMING:
                    self._unfinished.discard(row_id)
                    if row.state in IN_FLIGHT:
                        # A claim an error cut short after its row went on (finish_later:
                        # `quarantining` written, its papers' failure not): the workers
                        # finish it; left, it waited for a restart (queue() takes it once).
                        due.append(row_id)
                    elif row.state == "settling":
                        # Settled again, but the read of it for its hand-over was refused
                        # (below, or stranded._settle_again): handed back now. Left, it
                        # stood for no bundle, followed by nobody, until a restart.
                        settling.append(row)
                    continue
                log = bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids)
                if self._finish_or_wait(row, log):
                    log.info("interrupted claim finished", work_dir=row.work_dir)
                    due.append(row_id)
                elif (after := self.j.get(row_id)).state == "settling":
                    settling.append(after)
            except JournalLost:
                raise
            except JournalError:
                # A write refused (said by the journal, once): kept for the next rescan,
                # and the other claims tried; raised, it ended the rescan's turn.
                self._unfinished.add(row_id)
        return due, settling

    def to_finish(self, row_id: int) -> bool:
        """Whether finish_claims_again still has the row `row_id`: a claim to finish, or
        one settled again that it hands back to the pipeline at the next rescan."""
        return row_id in self._unfinished

    def _stands_for_its_file(self, row: Row) -> None:
        """A claim left waiting whose invoice file is in the outbox (or cannot be told not
        to be): that file is the claim's until it is finished (claim_waits). One whose file
        is not there stands for nothing in the outbox: a bundle dropped again under its
        name goes on, and waits behind it as a later version (docs/operations.md, Claims
        cut short)."""
        if maybe_there(self.s.outbox.path / row.invoice_file):
            self._claims_waiting[row.invoice_file] = row.id

    def claim_waits(self, key: str) -> bool:
        """Whether the invoice file `key` is a claim's that a start could not finish
        (its work folder or invoice file unanswered by the share, or its moved work folder
        not looked for): still `claiming`, it stands for the bundle until a rescan finishes
        it (Stranded.cut_pending). The bundle may still be whole in the outbox (a stop
        before the claim's first rename): read and decided meanwhile, it was quarantined
        as a duplicate of its own claim ("this exact bundle was being sent — remove it"),
        and a clerk who did so lost an invoice never sent."""
        row_id = self._claims_waiting.get(key)
        if row_id is None:
            return False
        if (row_id in self._unfinished or row_id in self._unfollowed) \
                and self.j.get(row_id).state == CLAIMING:
            return True
        del self._claims_waiting[key]
        return False

    def finish_later(self, row_id: int) -> None:
        """The `claiming` row `row_id`, a claim an error cut short at run time, finished
        as one a crash cut short, from the next rescan on (finish_claims_again); or a row
        an undone claim settled again whose read for its hand-over was refused, handed
        back to the pipeline at the next rescan."""
        self._unfinished.add(row_id)

    def _finish_claim(self, row: Row) -> bool:
        """A claim cut short by a crash: True if the bundle is now ours to finish."""
        assert row.work_dir
        work = Path(row.work_dir)
        try:
            # The rest of the bundle is moved into the work folder held, never through a
            # link put in its place or `.outboxd`'s (OSError naming it: the row says so,
            # and the next start tries again).
            held: int | None = hold_folder(work, within=self.s.outbox.path)
        except FileNotFoundError:
            held = None
        cand = candidate_for(self.s.outbox, row.invoice_file)
        # Each "is it there?" below by `there`: a look the share fails (EIO, ESTALE) raises
        # and the claim is finished at a later rescan (_finish_or_wait). os.path.lexists
        # took it for "gone": a claim whose invoice file lay in its work folder ended
        # `gone`, the bundle left in a folder no row names.
        if held is None and not there(cand.invoice):
            if self._never_made(row, work, cand):
                self.j.transition(row.id, "gone", NOT_HAPPENED_GONE, work_dir=None,
                                  last_error=None)
                return False
            # Neither the work folder nor the invoice file in the outbox, and the folder
            # may be out of sight: the share that holds processing/ is away (an outbox
            # mounted anew, empty, where the daemon started). Taken for "the claim did
            # not happen", the row went, and the bundle was left in a folder no row
            # names, for a person (orphans.py), when the share came back.
            raise FileNotFoundError(errno.ENOENT, "the work folder is not there and the "
                                    "invoice file is not in the outbox either (is the share "
                                    "mounted?) — if someone moved the folder, put it back "
                                    "under this name", str(work))
        found = False
        if held is not None:
            try:
                found = there(held_path(held) / row.invoice_file)
            except OSError:
                os.close(held)
                raise
        if held is None or not found:
            if held is not None:
                with contextlib.suppress(OSError):
                    if not os.listdir(held) and still_at(work, held):
                        work.rmdir()
                os.close(held)
            # The invoice file nowhere, and the work folder there without it: the way out
            # operations.md gives for a claim whose bundle is really gone (or whose bundle,
            # dropped again, another row has claimed). Settling, the row stood for no
            # bundle in the outbox until a restart.
            back = there(cand.invoice)
            self.j.transition(row.id, "settling" if back else "gone",
                              "claim did not happen" if back else NOT_HAPPENED_GONE,
                              work_dir=None, last_error=None)
            return False
        try:
            finish_claim(cand, held, self.s.outbox.completion == "marker",
                         companions=[release.path_for(cand, self.s.share)])
            os.fsync(held)
        finally:
            os.close(held)
        for folder in (work.parent, cand.invoice.parent):
            fsync_dir(folder)
        changed = self._check_claimed(row, cand, work)
        if changed is not None:
            return changed == QUARANTINING  # a quarantine is finished by an attempt
        if row.reasons:
            self.j.transition(row.id, QUARANTINING, "claim finished after restart",
                              last_error=None)
        else:
            self.j.transition(row.id, "delivering", "claim finished after restart",
                              last_error=None)
            # A row still `claiming` sent nothing (a hand-over's `delivering` is on disk
            # before its first POST): every POST of it is this process's, so its files
            # read with another id before one is sent as they are, not quarantined as
            # maybe posted (beforepost.BeforePost.may_have_reached).
            self._since_claim.add(row.id)
        return True

    def _never_made(self, row: Row, work: Path, cand: Candidate) -> bool:
        """A claim's missing work folder that was never made (a crash between the claim's
        record and its folder; the invoice file taken out of the outbox since, while
        outboxd was stopped): the outbox is there, and the processing folder there is the
        very one the claim was recorded for (row.claimed_in: a share away leaves an empty
        folder where it was mounted, and the processing folder a start makes there, or
        made there at an earlier start, is another) and holds no work folder of its name.
        A sidecar left in the outbox does not hold the claim: a work folder made in that
        very folder leaves it only by a person's hand (no daemon takes another's, and a
        row leaves its own only once archived or emptied), so the sidecar is what the
        clerk who took the invoice file back left — a SIGKILL before the move writes no
        note (CUT_BEFORE_MOVE) — or the rest of a claim whose folder someone moved away,
        taken as a folder moved by hand always is: the bundle is where they put it, and
        its attachments' folder waits in the outbox for its invoice file. Held, the start
        showed the bundle `retrying` for good, "is the share mounted?", of a folder never
        made on a share that was there. The mark is of the processing folder reached from
        the outbox, never through a link, and the work folder looked for again in that
        very folder: one moved aside, then put back as a link to it after the look for
        the work folder, was taken for the folder claimed in, holding no work folder."""
        return (row.claimed_in is not None and os.path.isdir(self.s.outbox.path)
                and folder_mark(work.parent, self.s.outbox.path, work.name) == row.claimed_in)

    def _check_claimed(self, row: Row, cand: Candidate, work: Path) -> str | None:
        """The check after a claim (claims.py), which the crash came before: the bundle
        read where it lies now must be the one the claim recorded. Other bytes go back
        to the outbox to settle again, so that what is sent or quarantined, and the
        duplicate and unattached decisions, are made for what is there; the same bytes
        are handed to delivery, read once. The state the row was put in, if other bytes
        were found (None: the same)."""
        # A full read (PDFs, images, pre-flight) before READY, one bundle after another: a
        # crash in a batch of claims leaves up to CLAIM_BATCH of them. Each asks systemd
        # for more time to start, so that they cannot add up to its start timeout.
        notify(f"EXTEND_TIMEOUT_USEC={RECOVERY_READ_USEC}")
        # Its files of several names made its own first, as the claim would have (a copy
        # a kill cut short removed): what is read, and sent, is the copy. OSError: the
        # claim is finished at a later rescan (_finish_or_wait).
        snap, seen = own_claimed(self._moved(row), self.s, bundle_log(
            self.log, row.invoice_file, row.bundle_id, row.invoice_ids))
        try:
            bundle = self._read_again(row, self.s)
        except Exception as exc:  # noqa: BLE001 - the attempt reads it again, says what is wrong
            if not isinstance(exc, InputError | OSError | ReaderFailed):  # not stop the start
                bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids
                           ).exception("unexpected error reading a claimed bundle again")
            return None
        # A copy begun in the sidecar before the crash (an in-progress name) is a change
        # too, as for the check after a claim (claims.py): the id does not cover it.
        busy = snap is not None and snap.busy
        # And a file that got another name since the copies were made (a link into the
        # work folder, or one made again for a file the copies found with one name): the
        # same bytes, but archived it would be a name of another's file (owncopy.py).
        late = linked_since(bundle, seen)
        if bundle_id_of(bundle) == row.bundle_id and not busy and late is None:
            self._validated[row.id] = bundle
            return None
        log = bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids)
        undone = unclaim(cand, work)
        stuck = undone.stuck
        if stuck == [work.name]:  # the folder itself swapped: the bundle is where it went
            self.j.transition(row.id, QUARANTINING, "work folder replaced", last_error=None,
                              reasons=reasons_of([stuck_in_work_folder(row.invoice_file,
                                                                       work, log)]))
            return QUARANTINING
        if stuck:
            self.j.transition(row.id, QUARANTINING, "changed while being claimed",
                              reasons=reasons_of([changed_during_claim(row.invoice_file, stuck)]),
                              last_error=None)
            log.warning("bundle changed while being claimed; quarantined beside the new files",
                        new_bundle_id=bundle_id_of(bundle), stuck=stuck)
            return QUARANTINING
        if undone.leftover is not None:
            log_leftover(log, work, undone.leftover)
        self.j.transition(row.id, "settling", "changed while being claimed", work_dir=None,
                          last_error=None)
        log.warning("bundle changed while being claimed (before a restart); settling again",
                    new_bundle_id=bundle_id_of(bundle), **({"changed": late} if late else {}))
        return "settling"
