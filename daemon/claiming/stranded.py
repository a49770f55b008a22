"""Stranded claims: a claim that can be neither undone nor finished now, because its work
folder is out of sight (the share away) or a move back was refused, waits as `claiming`,
saying why, and is tried again at each rescan; and a claim that did not go through, its
row handed back to the pipeline as the one row of its bundle. Part of
`pipeline.Pipeline` (a mixin, as `claims.Claims`: it shares the pipeline's live rows
and its journal).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.claiming.recovery import CUT_BEFORE_MOVE, NOT_HAPPENED_GONE
from daemon.configuration.config import Settings
from daemon.delivery.finish import Finisher
from daemon.errors import JournalError, JournalLost
from daemon.fs.workfolder import folder_there, maybe_there
from daemon.journal import CLAIMING, LIVE, Journal, Row
from daemon.logs import bundle_log
from daemon.loop.step import IDLE, Next
from daemon.watching.scan import Candidate

# What the row of a claim cut short says until the rescan finishes it (_cut_short).
# The detail that replaces CUT_BEFORE_MOVE once the work folder of such a claim is found
# (_end_unmoved): files may have moved, so it is finished as a crash's claim.
WORK_FOLDER_THERE = ("claim cut short; its work folder is there (a move that failed may "
                     "have happened): finished as a crash's claim")

CUT_SHORT = ("its claim was cut short by an unexpected error (the log says which) — "
             "finished at the next rescan: sent, or back in the outbox settling again")


class Stranded:
    """The stranded-claim steps of the pipeline (loop thread only)."""

    s: Settings
    j: Journal
    log: Any
    finish: Finisher
    live: dict[str, Row]
    # Claims to undo whose work folder was not there: row id -> (bundle, folder, why).
    _stranded: dict[int, tuple[Candidate, Path, str]]
    # Claims cut short by an error no claim expects: invoice file -> row id (_cut_short).
    _cut: dict[str, int]
    # Those of them cut short before any of their files moved (_end_unmoved).
    _unmoved: set[int]
    # Rows settling again beside another row of their name, whose end the journal refused
    # (_take_back): ended at the next rescan (_end_refused_again).
    _beside: set[int]

    if TYPE_CHECKING:
        # The claims' (claims.py): declared for mypy only, so that no stand-in here can
        # come before it in the pipeline's bases (tests/loop/test_service.py).
        def _undo_claim(self, cand: Candidate, row_id: int, work: Path, why: str, log: Any,
                        moved: bool = True, copies: bool = True,
                        **fields: Any) -> Next | None: ...

    def _stranded_claim(self, cand: Candidate, row_id: int, work: Path, why: str,
                        log: Any, failed: OSError | None = None) -> Next:
        """A claim to undo whose work folder is not there after files moved into it: the
        share that holds it went away (or someone moved the folder); or (`failed`) whose
        files could not all be moved back. Not all is back in the outbox, so the row stays
        `claiming` and says why (status: retrying), and the undo is made again once the
        folder is there (retry_stranded, at each rescan). Taken for "nothing moved", it
        settled and then went `gone` while the bundle sat in a folder no row named, for
        good. After a restart, recovery finishes the claim."""
        if failed is None:
            error = (f"its work folder {work} is not there (is the share mounted?) — the "
                     "bundle goes back into the outbox when it is")
            event = "claim cannot be undone: its work folder is not there"
        else:
            error = (f"cannot move the bundle back from {work} into the outbox: "
                     f"{failed.strerror or failed} — tried again at each rescan")
            event = "claim cannot be undone: its files cannot go back into the outbox"
        self._stranded[row_id] = (cand, work, why)
        # Written and said once, not at every rescan that finds it so (each write would
        # also have the status page written again).
        if self.j.get(row_id).last_error != error:
            self.j.update(row_id, last_error=error)
            log.warning(f"{event}; tried again at each rescan", work_dir=str(work),
                        reason=why, **({"error": str(failed)} if failed else {}))
        return IDLE

    def _cut_short(self, key: str, row_id: int, exc: Exception,
                   moved: bool = True) -> Exception:
        """A claim that raised what no claim expects (a journal write refused while its
        failure was undone: one full disk holding the outbox and the state folder; or a
        bug): its row `claiming`, its files wherever the error left them. Finished as a
        claim a crash cut short is (recovery: the rest moved in and sent, or the row
        settling again with its bundle back in the outbox), at each rescan until that can
        be done; its invoice file is not decided on meanwhile (cut_pending). Left so, the
        row counted its bundle as on its way until a restart, and the next look at the
        invoice file in the outbox quarantined it as a duplicate of itself. Its row says
        why it waits, and stands for the bundle meanwhile: no look at its files makes it
        a second (Pipeline._live) — one showed `settling` without a reason beside it,
        the claim's shown on its way, until the rescan. `exc`, for the loop to say;
        `moved=False`: cut short before any of its files moved (_end_unmoved)."""
        self._cut[key] = row_id
        if not moved:
            self._unmoved.add(row_id)
        self.finish.finish_later(row_id)
        with contextlib.suppress(JournalError):  # refused (often the error itself): it waits
            if self.j.get(row_id).state == CLAIMING:  # not one gone on (`quarantining`)
                # Cut short before its move (which drops it), the row the claim was decided
                # from was still followed as live under that name: a look at the files
                # wrote over the claim's state from there (an edit made it `settling`, the
                # file taken back `gone`), and the claim was never finished. Another row
                # live under the name (a bundle dropped again while a stranded claim
                # waited), or this one settling again (taken back), is the bundle's: it stays.
                if (followed := self.live.get(key)) is not None and followed.id == row_id:
                    del self.live[key]
                if moved:
                    self.j.update(row_id, last_error=CUT_SHORT)
                else:
                    # Noted in the journal, not only in _unmoved: the row's history says
                    # that no file moved (a restart before the rescan ends the claim `gone`
                    # if the clerk took the invoice file back, as any claim whose work
                    # folder was never made: Recovery._never_made).
                    self.j.transition(row_id, CLAIMING, CUT_BEFORE_MOVE, last_error=CUT_SHORT)
        return exc

    def cut_pending(self, key: str) -> bool:
        """Whether the invoice file `key` waits for its claim cut short (_cut_short), or
        one a start could not finish (Recovery.claim_waits), to be finished."""
        if self.finish.claim_waits(key):
            return True
        row_id = self._cut.get(key)
        if row_id is None:
            return False
        # Or settled again and waiting to be handed back at the next rescan (its read for
        # the hand-over refused: _settle_again, Recovery.finish_claims_again) while the
        # pipeline follows no row under its name: it stands for the bundle meanwhile.
        if self.j.get(row_id).state == CLAIMING \
                or (key not in self.live and self.finish.to_finish(row_id)):
            return True
        del self._cut[key]
        return False

    def retry_stranded(self) -> list[int]:
        """Each claim _stranded_claim left, undone now that its work folder is there
        again, and each claim a restart could not finish (recovery), tried again; the rows
        to hand to the delivery workers (claims finished, a quarantine whose move failed)."""
        due: list[int] = []
        for row_id, (cand, work, why) in list(self._stranded.items()):
            if not os.path.lexists(work):
                continue
            del self._stranded[row_id]
            try:
                row = self.j.get(row_id)
                log = bundle_log(self.log, cand.invoice.name, row.bundle_id, row.invoice_ids)
                nxt = self._undo_claim(cand, row_id, work, why, log, last_error=None)
                state = self.j.get(row_id).state
            except JournalLost:
                raise
            except Exception as exc:  # noqa: BLE001 - one claim's, as at its claim
                # Its row's write refused after the files moved back (one full disk): raised,
                # it ended the rescan, the claim was retried no more, and the bundle back in
                # the outbox became its own duplicate. Finished as a crash's claim is.
                self._cut_short(cand.invoice.name, row_id, exc)
                if not getattr(exc, "reported", False):  # the journal says its own, once
                    bundle_log(self.log, cand.invoice.name, None, ()).error(
                        "unexpected error undoing a claim; finished at the next rescan",
                        exc_info=exc)
                continue
            if nxt is None and state == "gone":
                log.warning("work folder there again without the bundle, which is not in "
                            "the outbox either: the claim ends as one that did not happen",
                            work_dir=str(work))
            elif nxt is None:
                log.info("work folder there again; bundle put back into the outbox, "
                         "settling again", work_dir=str(work))
            elif nxt.claimed is not None:
                due.append(nxt.claimed)
        self._end_refused_again()
        self._end_unmoved()
        finished, settling = self.finish.finish_claims_again()
        for row in settling:
            self._take_back(row)
        return due + finished

    def _end_unmoved(self) -> None:
        """Each claim cut short before any of its files moved whose invoice file has left
        the outbox since (a clerk took it back): ended `gone` as a claim that did not
        happen. Finished as a crash's claim is, it waited at each rescan, while its sidecar
        was still in the outbox, for a work folder that was never made ("is the share
        mounted?"), as a claim whose invoice file may have moved into a folder out of
        sight. One whose invoice file is there is finished so (settling again), and so is
        one whose work folder is there (its move may have happened); a write refused keeps
        it for the next rescan."""
        for row_id in sorted(self._unmoved):
            try:
                row = self.j.get(row_id)
                if row.state != CLAIMING:  # finished (settling again, sent), or ended
                    self._unmoved.discard(row_id)
                elif maybe_there(self.s.outbox.path / row.invoice_file):
                    pass  # finished as a crash's claim is (settling again), or waits
                elif row.work_dir and (there := folder_there(Path(row.work_dir),
                                                             self.s.outbox.path)) is None:
                    # Cannot tell now (the share away): taken for there, the note that no
                    # file moved was dropped, and once the share was back without a
                    # folder the claim waited "is the share mounted?" for one never made.
                    pass  # looked at again at the next rescan
                elif row.work_dir and there:
                    # Its work folder is there: a rename that failed may have happened all
                    # the same (a network share's, sent again after its answer was lost).
                    # Ended `gone`, its invoice file lay in a folder no row named; it is
                    # finished as a crash's claim (finish_claims_again, next), and no
                    # longer noted as cut short before any file moved (its history).
                    self.j.transition(row_id, CLAIMING, WORK_FOLDER_THERE)
                    self._unmoved.discard(row_id)
                else:
                    self.j.transition(row_id, "gone", NOT_HAPPENED_GONE, work_dir=None,
                                      last_error=None)
                    self._unmoved.discard(row_id)
            except JournalLost:
                raise
            except JournalError:
                pass  # said by the journal, once; kept for the next rescan

    def _end_refused_again(self) -> None:
        """Each row whose end beside another row of its name the journal refused
        (_take_back), handed back again: ended beside the row the pipeline follows under
        its name now; with none, taken back as the one row of the bundle in the outbox,
        or (no invoice file of that name there: the other row claimed it, or it left)
        ended as a claim that did not happen (a start's `waiting` or `held` row: as a
        second row of its name). A write refused again keeps it for the next rescan."""
        for row_id in sorted(self._beside):
            try:
                row = self.j.get(row_id)
                if row.state not in LIVE:  # a start's may be waiting or held
                    self._beside.discard(row_id)
                elif row.invoice_file not in self.live \
                        and not maybe_there(self.s.outbox.path / row.invoice_file):
                    # A start's `waiting` or `held` row was never claimed (_end_beside).
                    self.j.transition(row_id, "gone", NOT_HAPPENED_GONE
                                      if row.state == "settling" else
                                      f"a second row of this invoice file ({row.state}); "
                                      "the invoice file is no longer in the outbox")
                    self._beside.discard(row_id)
                else:
                    self._take_back(row)  # kept in _beside while refused, not said again
            except JournalLost:
                raise
            except JournalError:
                pass  # said by the journal, once; kept for the next rescan

    def _settle_again(self, row_id: int, key: str, why: str, **fields: Any) -> None:
        """A claim undone, its bundle back in the outbox under `key`: the row settles
        again, as the pipeline's (_take_back). With no invoice file of that name in the
        outbox (its work folder came back empty: operations.md's way out for a bundle
        lost with it), the row ends `gone`, as recovery ends such a claim: settling, it
        stood for no bundle, shown so until a restart."""
        if not maybe_there(self.s.outbox.path / key):
            self.j.transition(row_id, "gone", NOT_HAPPENED_GONE, work_dir=None,
                              **{**fields, "last_error": None})
            return
        self.j.transition(row_id, "settling", why, work_dir=None, **fields)
        try:
            row = self.j.get(row_id)
        except JournalLost:
            raise
        except JournalError as exc:
            # Settled, but not handed back: raised, the row was no claim to finish any
            # more (not `claiming`) nor followed, and the next look at the invoice file
            # gave the bundle a second row. It stands for the bundle (cut_pending) until
            # the next rescan hands it back (finish_claims_again), said once.
            self._cut[key] = row_id
            self.finish.finish_later(row_id)
            if not exc.reported:  # the journal says its own, once
                bundle_log(self.log, key, None, ()).error(
                    "cannot read back a claim's row settling again; handed back to the "
                    "pipeline at the next rescan", row=row_id, error=str(exc))
            return
        self._take_back(row)

    def _take_back(self, row: Row) -> None:
        """A row settling again after a claim that did not go through, handed back to the
        pipeline: it is the one row of its bundle, which the next step of its invoice file
        settles, claims and sends (or finds gone). Left in the journal only, the pipeline
        gave the bundle a second row and sent that, while this one showed `settling` until
        a restart. If the pipeline already follows a bundle under that name (stepped
        before the rescan that ended the claim, or dropped again meanwhile), that row goes
        on, and this one ends: at the next rescan if the journal refuses that now (one
        full disk) — raised, it ended the rescan's turn, and the row, out of the claims
        tried again, stayed a second `settling` row of the name until a restart."""
        other = self.live.get(row.invoice_file)
        if other is not None and other.id != row.id:
            self.end_beside_or_later(row, other)
            return
        if other is None and not maybe_there(self.s.outbox.path / row.invoice_file):
            # Its invoice file left while the row waited to be handed back (its read
            # refused): that look found no row and the loop dropped the name, so nothing
            # would step it again — followed, it showed `settling` until a restart (one
            # the pipeline follows already, its step ends). A write refused hands it back
            # again at the next rescan.
            try:
                self.j.transition(row.id, "gone", NOT_HAPPENED_GONE, work_dir=None)
            except JournalLost:
                raise
            except JournalError:
                self.finish.finish_later(row.id)
                return
            self._beside.discard(row.id)
            return
        self.live[row.invoice_file] = row
        self._beside.discard(row.id)

    def end_beside_or_later(self, row: Row, other: Row) -> None:
        """_end_beside; or, the journal refusing that end (one full disk), `row` kept to
        end at the next rescan (_end_refused_again), said once, not again at each rescan
        refused the same end. Never followed by the pipeline meanwhile (`other` is), so
        never decided or claimed: the bundle has one row that can be sent. Also a start's
        (Pipeline.start), which stopped there, for systemd to start it again."""
        try:
            self._end_beside(row, other)
        except JournalLost:
            raise
        except JournalError as exc:
            if not exc.reported and row.id not in self._beside:  # the journal's, once
                bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids).error(
                    "cannot end a second row of the invoice file beside the row of its "
                    "bundle; tried again at the next rescan", row=other.id, error=str(exc))
            self._beside.add(row.id)
            return
        self._beside.discard(row.id)

    def _end_beside(self, row: Row, other: Row) -> None:
        """`row`, a claim's that did not go through, ends `gone`: `other` already stands
        for the bundle in the outbox under that name. Durable: lost in a crash, the next
        start found two rows for one name (and ends one of them so, Pipeline.start). A
        start's `waiting` or `held` row was never claimed: its detail says it was a
        second row of the name, not that a claim did not happen."""
        if row.state == "settling":
            what, event = "claim did not happen", "claim ended"
        else:
            what, event = f"a second row of this invoice file ({row.state})", \
                "second row of the invoice file ended"
        self.j.transition(row.id, "gone", f"{what}; the bundle now in the outbox under "
                          f"this name goes on as row {other.id}")
        bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids).info(
            f"{event}; the bundle in the outbox under its name has a row already",
            row=other.id)

