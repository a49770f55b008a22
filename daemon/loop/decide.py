"""What the policies make of a bundle that was read (docs/folder-convention.md): held
with its errors file beside it ([policy] invalid), a duplicate quarantined ([policy]
duplicates), an invoice without attachments waiting until its deadline, then
quarantined or sent ([policy] unattached; a release file sends it at once), else
claimed. Part of `pipeline.Pipeline` (a mixin: the pipeline's live rows and its
memory of what was read; a decision to send or quarantine ends in `claims.Claims`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from daemon import logs
from daemon.archiving.papers import PAPER_NAME_CODE
from daemon.bundle import Finding, reasons_of
from daemon.claiming.claims import Claims
from daemon.errors import failure_key
from daemon.journal import Row, iso_in, left_of, now_iso, readable, seconds_until
from daemon.loop import release, sentbefore, unattached
from daemon.loop.errorsfile import HeldErrors, errors_file_for, report_failure, tried_again
from daemon.loop.step import IDLE, Known, Next
from daemon.reading.sharedsidecar import is_shared
from daemon.validation.cutshort import grace_seconds, looks_cut_short, while_held
from daemon.watching import lonefolders
from daemon.watching.scan import Candidate
from daemon.watching.settle import SettleTracker
from daemon.watching.vanished import Vanished, Wait


class Decisions(Claims):
    """The decision on a read bundle (loop thread only)."""

    _due: dict[str, tuple[str, float]]  # invoice file -> (deadline, monotonic time due)
    _resumed: set[str]
    errors_files: HeldErrors  # what each NAME.errors.txt explains
    tracker: SettleTracker
    vanished: Vanished
    news_of: Callable[[str], object]  # the service's Changes.news_of
    # The lone folders named close to a bundle's invoice file (OutboxIndex.near): told
    # as a hint, never matched.
    near_folders: Callable[[Candidate], list[str]]
    # invoice file -> the hint last logged for it, as (bundle id, outcome, folders):
    # a claim that keeps failing decides the bundle again at every rescan.
    _near_said: dict[str, tuple[str, str, tuple[str, ...]]]

    if TYPE_CHECKING:
        # The pipeline's: declared for mypy only, so that no stand-in here can come
        # before it in the pipeline's bases (tests/loop/test_service.py).
        def _live(self, row: Row | None, key: str, state: str, detail: str = "",
                  since: str | None = None, **fields: Any) -> None: ...

    def _decide(self, cand: Candidate, known: Known, row: Row | None, now: float) -> Next:
        bundle, bid, key = known.bundle, known.bundle_id, cand.invoice.name
        self._resumed.discard(key)
        assert bundle is not None
        policy = self.s.policy
        # A sidecar shared with another invoice file is held whatever the policy: moved
        # to quarantine/ with the folder, this bundle would take the other's attachments.
        # So is a part at a paper's name: its quarantine would wait at that name for good.
        if bundle.errors and (policy.invalid == "hold" or is_shared(bundle.errors)
                              or any(f.code == PAPER_NAME_CODE for f in bundle.errors)):
            again = self._errors_file(cand, known, bundle.errors, now)
            self._live(row, key, "held", bundle_id=bid, invoice_ids=list(bundle.invoice_ids),
                       reasons=reasons_of(bundle.errors))
            return Next(at=again) if again is not None else IDLE
        if (until := self._grace_until(key, known, now)) is not None:
            shown = while_held(bundle.errors, known.grace_said)
            again = self._errors_file(cand, known, shown, now)
            self._live(row, key, "held", bundle_id=bid, invoice_ids=list(bundle.invoice_ids),
                       reasons=reasons_of(shown))
            return Next(at=until if again is None else min(until, again))
        # Not held (it passes, or is quarantined after a reload set invalid = "quarantine"):
        # an errors file written while it was held must not stay behind in the outbox.
        self._errors_file(cand, known, ())
        if bundle.errors:
            return self._go(cand, known, row, list(bundle.errors), now)
        if policy.duplicates == "quarantine":
            self.news_of(bid)  # another daemon's receipt of it, listed and not read yet
        if (self.claiming(bid) or self.j.was_sent(bid)) and policy.duplicates == "quarantine":
            return self._go(cand, known, row, [self._duplicate(key, bid)], now)
        rule = unattached.plan(bundle, cand, self.s, release.release_file(
            cand, self.s.share)) if bundle.unattached_ids else None  # no lstat for the rest
        if rule is not None and rule.waits:  # not sent at once: by the policy or a release
            deadline = self._deadline(row, key, bundle.invoice_ids)
            left = None if deadline is None else self._due_in(key, deadline, now)
            if left is None or left > 0:
                if row is None or row.state != "waiting":
                    self._near_hint(cand, known, "invoice waits for attachments")
                began = self._wait_began(row, bundle.invoice_ids)
                self._live(row, key, "waiting", since=began, wait_began=began, bundle_id=bid,
                           deadline=deadline, invoice_ids=list(bundle.invoice_ids),
                           unattached_ids=list(rule.unattached_ids))
                return IDLE if left is None else Next(at=now + left)
            if rule.outcome == unattached.WAIT_THEN_QUARANTINE:
                said = self._near_hint(cand, known, "invoice to be quarantined for want of "
                                       "attachments")
                return self._go(cand, known, row, [
                    f if not said else replace(f, message=f"{f.message}; {said}")
                    for f in rule.findings(ended=deadline)], now)
        if rule is not None:
            self._near_hint(cand, known, "invoice to be sent without attachments")
        return self._go(cand, known, row, [], now)

    def _duplicate(self, key: str, bid: str) -> Finding:
        """The duplicate finding, naming when the bundle went and its folder in sent/, as
        `outboxd check` does: REASON.txt's "was sent before" left the clerk nothing to
        look for. Bare where the journal has no row of it yet (a claim in flight)."""
        before = self.j.sent_before(bid)
        if before is None:
            return sentbefore.duplicate(key, bid)
        return sentbefore.duplicate(key, bid, sentbefore.when_sent(
            before, self.s.sent_dir, readable, "the status page lists it"))

    def _near_hint(self, cand: Candidate, known: Known, what: str) -> str:
        """A lone folder named close to the invoice file's: said in the log, as a hint
        (it may be another invoice's, dropped before its invoice file); the hint, or "".

        Said when the outcome (`what`) is decided, before the claim, so worded as what
        is to happen; and once for the bundle and outcome: a claim that fails (a full
        share, a sidecar gone but not yet confirmed gone) decides it again at each
        rescan, which is no news."""
        folders = self.near_folders(cand)
        if not folders:
            return ""
        said = lonefolders.hints(folders, cand.name, cand.sidecar.name)
        assert known.bundle is not None
        told = (known.bundle_id, what, tuple(folders))
        if self._near_said.get(cand.invoice.name) == told:
            return said
        self._near_said[cand.invoice.name] = told
        logs.bundle_log(self.log, cand.invoice.name, known.bundle_id,
                        known.bundle.invoice_ids).warning(
            f"{what}; a folder named close to its own has no invoice file",
            folders=[f"{f}/" for f in folders], hint=said)
        return said

    def _go(self, cand: Candidate, known: Known, row: Row | None, reasons: list[Finding],
            now: float) -> Next:
        """Claim the bundle, to send or quarantine it; not while a sidecar that went
        away is not yet confirmed gone (vanished.py): it stays, settling, saying why."""
        try:
            wait = self.vanished.wait(cand, now, self.s.outbox.rescan_seconds)
        except OSError as exc:  # the outbox's listing failed: not confirmed, tried again
            wait = Wait(now + self.s.outbox.rescan_seconds,
                        f"its folder {cand.sidecar.name} went away, and the outbox cannot be "
                        f"listed to confirm it ({exc.strerror or exc}) — outboxd tries again")
        if wait is None:
            return self._claim(cand, known, row, reasons, now)
        self._live(row, cand.invoice.name, "settling", last_error=wait.why)
        return Next(at=wait.at)

    def _grace_until(self, key: str, known: Known, now: float) -> float | None:
        """When a version that looks cut short (cutshort.py) is quarantined if it has not
        changed: a grace after it settled, counted on the loop's clock from when this
        version was first seen, as its settling was (one held unchanged for longer
        under invalid = "hold" before a reload is quarantined at once; a restart sees it
        anew and waits again). None once that time has come, or for any other version;
        a change is another version. None under completion = "marker": the marker says
        the copy is done."""
        assert known.bundle is not None
        if self.s.outbox.completion == "marker" or not looks_cut_short(known.bundle.errors):
            return None
        if known.grace_until is None:
            ready = self.tracker.ready_at(key)
            assert ready is not None  # it settled
            known.grace_until = ready + grace_seconds(self.s.outbox.settle_seconds)
            # A second more: readable() drops the fraction, and "waits until 14:03:12"
            # must not come before the quarantine.
            known.grace_said = readable(iso_in(known.grace_until - now + 1))
            if known.grace_until > now:
                logs.bundle_log(self.log, key, known.bundle_id, known.bundle.invoice_ids
                                ).info("bundle looks cut short; held in case it is still "
                                       "being copied", quarantine_in=known.grace_until - now)
        return known.grace_until if known.grace_until > now else None

    def _deadline(self, row: Row | None, key: str, ids: tuple[str, ...]) -> str | None:
        """The end of an unattached bundle's wait ([policy] unattached), as the journal keeps it
        (wall-clock: it survives a restart). None under hold, whatever an earlier policy
        set. Fixed when the wait starts, for the invoices then in the file: a changed
        attachment_wait_seconds applies to waits that start after it (the page showed
        this one's deadline); other invoices under the same file name wait anew."""
        if self.s.policy.unattached == "hold":
            return None
        if row is not None and row.deadline and set(row.invoice_ids) == set(ids):
            # The same invoices (a re-export may reorder them).
            return self._stepped_back(row, key, row.deadline)
        return iso_in(self.s.policy.attachment_wait_seconds)

    def _stepped_back(self, row: Row, key: str, deadline: str) -> str:
        """`deadline` as this process first reads it (at a start, or a reload): moved
        nearer where the wall clock is now before the row's wait began, so stepped back
        since (a server whose clock ran a day ahead, put right by NTP at boot) — it ends
        when as much is left as when the row was last written (journal.left_of), and the
        deadline the page and `status` show is the one it waits for. A wait the loop
        has read is on its monotonic clock already (_due_in)."""
        began = row.wait_began or row.since
        if self._due.get(key, ("",))[0] == deadline or seconds_until(began) <= 0:
            return deadline  # read before, or the clock is not before the wait's start
        return iso_in(max(0.0, left_of(deadline, self.j.written_at(row.id))))

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

    def _errors_file(self, cand: Candidate, known: Known, errors: tuple[Finding, ...],
                     now: float | None = None) -> float | None:
        """Write NAME.errors.txt for a held bundle, or take it out of that file once it
        passes (the file goes when no bundle of the NAME is held).

        Only a file that carries our header is ours to replace or remove; a
        person's file of that name is left alone. Done once per snapshot, unless it
        failed for a reason that passes with no change of the bundle (a full disk, a
        quota, permissions): then the loop's time to try again (rescan_seconds after
        `now`, the loop's clock; None without it), for the clerk would otherwise never
        get the file of a bundle that stays as it is.
        """
        if known.errors_file_done is bool(errors):
            return None
        known.errors_file_done = bool(errors)
        log = logs.bundle_log(self.log, cand.invoice.name, known.bundle_id or None,
                              known.bundle.invoice_ids if known.bundle else ())
        try:
            written = self.errors_files.update(cand, errors, log)
        except OSError as exc:
            if failure_key(exc) != known.errors_file_error:  # said once, not at each try
                report_failure(log, errors_file_for(cand), exc)
            if not tried_again(exc):
                return None
            known.errors_file_done, known.errors_file_error = None, failure_key(exc)
            return None if now is None else now + self.s.outbox.rescan_seconds
        if known.errors_file_error:
            known.errors_file_error = ""
            if written and errors:  # not a clerk's file found there meanwhile, kept
                log.info("errors file beside the invoice file written now",
                         file=errors_file_for(cand).name)
        return None

    def _clear_errors_file(self, cand: Candidate, row: Row) -> None:
        """Take a held bundle that left the outbox out of its NAME.errors.txt (only ours):
        removed, or rewritten for another invoice file of the NAME still held."""
        self._write_errors_file(cand, (), logs.bundle_log(
            self.log, cand.invoice.name, row.bundle_id, row.invoice_ids))

    def _write_errors_file(self, cand: Candidate, errors: tuple[Finding, ...],
                           log: Any) -> None:
        try:
            self.errors_files.update(cand, errors, log)
        except OSError as exc:
            report_failure(log, errors_file_for(cand), exc)  # held (or passes) all the same
