"""A claim undone: after a failed move (permissions, a share that went away) or a bundle
that changed while it was claimed, what moved goes back into the outbox to settle again,
its files as the renames left them taken as still settled and read; a bundle that cannot
go back (a same-named newcomer, a link in its work folder's place) is quarantined
beside it, and one whose work folder is out of sight waits (stranded.py). Part of
`pipeline.Pipeline` (a mixin, as `claims.Claims`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from daemon.bundle import Finding
from daemon.claiming.claim import (
    Unclaimed,
    changed_during_claim,
    log_leftover,
    moved_candidate,
    not_moved,
    stuck_in_work_folder,
    unclaim,
)
from daemon.claiming.leftcopies import put_back_left
from daemon.claiming.stranded import Stranded
from daemon.fs.workfolder import folder_there
from daemon.logs import bundle_log
from daemon.loop.step import IDLE, Claim, Next
from daemon.watching.scan import Candidate
from daemon.watching.settle import SettleTracker
from daemon.watching.snapshot import snapshot


class Undoing(Stranded):
    """The undo steps of the claims (loop thread only)."""

    tracker: SettleTracker
    _claim_paused: dict[str, float]

    def _undo_claim(self, cand: Candidate, row_id: int, work: Path, why: str, log: Any,
                    moved: bool = True, copies: bool = True, **fields: Any) -> Next | None:
        """Put a claimed bundle back to settle again (None: the caller says why it went
        back). If a same-named file arrived in the meantime, ours cannot go back and is
        quarantined beside it instead (handed to the delivery workers when that move must
        be retried), and so is a bundle whose work folder is no longer the one claimed;
        that is logged here, as what happens to it. `moved=False`: nothing was moved, and
        the work folder is not even looked at (it may lie behind a link). `copies=False`:
        the claim made no copies (owncopy.py; its snapshot saw no file of several names),
        so none can be left at a temp name: not looked for."""
        if moved and not os.path.lexists(work):
            # lexists: a link in its place (even one leading nowhere) is there: unclaim
            # refuses it and the bundle is reported stuck, where it was claimed.
            return self._stranded_claim(cand, row_id, work, why, log)
        try:
            if moved and copies:
                # A file of several names a failed put-back of the claim's copies left at
                # a temp name (owncopy._put_back) back at its name first: never into the
                # outbox under the temp's; while it cannot be, the claim waits.
                put_back_left(work, moved_candidate(cand, work), self.s.outbox, log)
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

    def _claim_failed(self, c: Claim, row_id: int, exc: OSError, now: float,
                      moved: bool = True) -> Next:
        """Permissions, a share that went away: put back whatever moved and try
        again after a rescan period rather than at once. The files put back are as
        they were (_put_back), so what was read stands for that next claim."""
        key = c.cand.invoice.name
        assert c.known.bundle is not None
        log = bundle_log(self.log, key, c.known.bundle_id, c.known.bundle.invoice_ids)
        if not moved and folder_there(c.work, self.s.outbox.path) is True:
            # Its work folder was left (a claim removes it when nothing moved): a rename
            # that failed may have happened all the same (a network share's). Undone as
            # one that moved nothing, the row ended `gone` while the invoice file lay in
            # the folder; what is there is put back. A look that fails (the share gone
            # as the folder was to be made) keeps "nothing moved", which the claim saw
            # in the folder it made: undone as moved, the row waited `claiming` at every
            # rescan for a work folder perhaps never made, its bundle never claimed again.
            moved = True
        undone = self._undo_claim(c.cand, row_id, c.work, "claim failed", log, moved,
                                  bool(c.known.snap.linked), last_error=not_moved(exc))
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
