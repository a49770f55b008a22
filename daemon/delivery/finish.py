"""Finish a claimed bundle: deliver it (with retries), then have it archived in
sent/ or quarantined (moves.py; its delivery recorded: delivered.py); and recover
whatever a crash interrupted after a claim.

Runs on the delivery workers. Every step is announced in the journal before
it takes effect, so `recover()` can always tell what was under way.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.archiving.moves import WORK_GONE, Moves
from daemon.bundle import Bundle, Finding, findings_of
from daemon.claiming.claim import held_work
from daemon.claiming.recovery import Recovery
from daemon.configuration.config import Settings
from daemon.delivery.answers import BODY_LIMIT
from daemon.delivery.beforepost import (
    BeforePost,
    never_reached,
    others_unknown,
    repeat_unknown,
)
from daemon.delivery.deliver import Deliverer, Shared
from daemon.delivery.delivered import Delivered
from daemon.delivery.pause import DeliveryPause
from daemon.delivery.retries import Retries
from daemon.delivery.sentelsewhere import SentElsewhere
from daemon.delivery.throttle import ReceiverHold
from daemon.delivery.versions import Versions
from daemon.einvoice import check_bundle
from daemon.errors import (
    InputError,
    JournalError,
    OutboxdError,
    Paused,
    Rejected,
    Retryable,
    describe,
)
from daemon.journal import (
    CLAIMING,
    DELIVERED,
    QUARANTINING,
    Journal,
)
from daemon.logs import bundle_log
from daemon.manifest import build_manifest, bundle_id_of
from daemon.reading.lookalikes import sent_names_distinct
from daemon.reading.match import assemble
from daemon.reading.readonce import KEPT_BYTES, keeping_reads
from daemon.report.clerkwords import rejection_fix
from daemon.validation.convert import materialise_bundle
from daemon.validation.validate import validate_bundle
from daemon.watching.foldermounts import FolderMounts
from daemon.watching.scan import Candidate


def evaluate(cand: Candidate, settings: Settings) -> Bundle:
    """Read, match and validate; raises InputError only if the invoice file is unreadable.
    Each file is opened and read once, for its hash and its checks alike (readonce.py)."""
    with keeping_reads(KEPT_BYTES):
        bundle = validate_bundle(assemble(cand, settings), settings.validation)
        bundle = sent_names_distinct(bundle, settings.delivery.safe_filenames)
        return check_bundle(bundle, settings)  # pre-flight, ubl-embedded (docs/einvoice.md)


def materialise_here(cand: Candidate, bundle: Bundle, work_dir: Path,
                     settings: Settings) -> Bundle:
    """A claimed bundle's images converted into its work folder, in this process (a
    pipeline without the daemon's readers: `readers.Readers.materialise` otherwise)."""
    return materialise_bundle(bundle, work_dir, settings.validation.max_image_pixels,
                              settings.outbox.path)


class Finisher(Moves, Recovery, Retries, SentElsewhere, BeforePost, Delivered):
    def __init__(self, settings: Settings, journal: Journal, deliverer: Deliverer) -> None:
        self.s = settings
        self.j = journal
        self.deliverers = Shared(deliverer)
        self.log = logs.get()
        self._move_faults: dict[int, tuple[int, float]] = {}  # see moves.Moves
        self.mounts = FolderMounts(settings)  # a reload's: Pipeline.reconfigure
        self.elsewhere: dict[str, dict[str, Any]] = {}  # the service's SentNews.in_flight
        self._unfinished: set[int] = set()  # see recovery.Recovery
        self._claims_waiting: dict[str, int] = {}  # see recovery.Recovery
        self._unfollowed: dict[int, str | None] = {}  # see recovery.Recovery
        self._hung: set[Path] = set()  # see recovery.Recovery
        self.clock: Callable[[], float] = time.monotonic  # the loop's, when it has one
        # Bundles validated before their claim, by row id, until they are finished.
        # Written by the loop thread, taken by delivery workers (dict operations
        # are atomic); after a restart a row is not here and is validated again.
        self._validated: dict[int, Bundle] = {}
        self._chosen_here: set[int] = set()  # see moves.Moves
        # Which configuration's format the checks in _validated were made for: raised by
        # a reload that switches it (read_claimed_again), with the checks dropped under
        # the lock, so that a check made for the old format during that reload is never
        # stored, nor posted with the new format's deliverer.
        self._checked_for = 0
        # Rows handed over at their claim whose `delivering` may not be written yet (the
        # hand-over's commit failed): kept apart from their checks, which a switch of
        # format drops, so that their attempt still records it and sends.
        self._handed_over: set[int] = set()
        # Rows whose POST was not counted first (_posting: the first after the claim) and
        # whose attempt then ended in a journal error, its outcome maybe unwritten: their
        # next attempt is counted, that POST with it, before its own POST goes out.
        self._unrecorded: set[int] = set()
        self._posting: set[int] = set()
        self._since_claim: set[int] = set()  # see beforepost.BeforePost
        # Rows handed over by a commit not yet known durable: its number (hand_over).
        self._handed_at: dict[int, int] = {}
        self._checks_lock = threading.Lock()
        # How a claimed bundle is read again after a restart: the daemon's reader
        # processes (readers.py) when it has them, else here.
        self.evaluate: Callable[[Candidate, Settings], Bundle] = evaluate
        # How a claimed bundle's images are converted to PDF into its work folder: in
        # the reader processes too when the daemon has them (decoding a large image
        # costs hundreds of MB, and several workers may convert at once), else here.
        self.materialise: Callable[[Candidate, Bundle, Path, Settings], Bundle] = \
            materialise_here
        # Where a delivered bundle's archive goes when it should wait for the
        # deliveries (the daemon's workers, workers.py); None: at once, here.
        self.archive_later: Callable[[int], None] | None = None
        # Rows whose last attempt was paused: a reload may have fixed what paused
        # them (workers add and remove, the loop copies; set operations are atomic).
        self.paused: set[int] = set()
        # Rows whose last attempt found the receiver's certificate untrusted: [delivery]
        # verify is the fix, so a reload tries them at once too (retries.py).
        self.untrusted: set[int] = set()
        # One bundle paused for a configuration problem holds back the others (pause.py);
        # `resume` (the loop's schedule) sends those held back once an answer ends it.
        self.pause = DeliveryPause(lambda: self.clock())
        # A receiver's 429/503 with Retry-After holds back every bundle (throttle.py);
        # `resume` wakes those held back when its first bundle after it is answered.
        self.throttle = ReceiverHold(lambda: self.clock())
        # A correction waits for the earlier version of its invoice (versions.py);
        # `resume` also wakes it when that one's attempt ends.
        self.versions = Versions(journal)
        # The service sets it before any attempt; a Finisher without a loop (tests) has
        # nobody to wake a row early: each comes at its own next attempt.
        self.resume: Callable[[int, float], None] = lambda row_id, delay: None

    @property
    def d(self) -> Deliverer:
        """The deliverer the next attempt takes."""
        return self.deliverers.current

    @d.setter
    def d(self, deliverer: Deliverer) -> None:
        self.deliverers.current = deliverer

    def read_claimed_again(self) -> None:
        """Every claimed bundle is read and checked again at its next attempt (called
        after `s` is the new configuration: a read begun after this one uses it)."""
        with self._checks_lock:
            self._checked_for += 1
            self._validated.clear()

    def hand_over(self, row_id: int, bundle: Bundle, commit: int = 0) -> None:
        """The validated bundle of a row just claimed, at its place in processing;
        `commit`: the number of the journal commit that recorded it `delivering`."""
        self._handed_over.add(row_id)
        if commit:
            self._handed_at[row_id] = commit
        self._since_claim.add(row_id)
        self._validated[row_id] = bundle

    def _checked_for_gone(self, checked_for: int, log: Any) -> bool:
        """A reload switched the format since the bundle was checked: nothing is decided
        on that check; the attempt comes again at once and checks it for the new one."""
        if checked_for == self._checked_for:
            return False
        log.info("delivery format changed by a reload during the attempt; the bundle is "
                 "checked again for the new format before anything is decided")
        return True

    def attempt(self, row_id: int) -> float | None:
        """One delivery attempt; the delay before the next one, or None when finished."""
        try:
            wait = self._attempt(row_id)
        except JournalError:
            if row_id in self._posting:
                self._unrecorded.add(row_id)
            raise
        finally:
            self._posting.discard(row_id)
            # Whatever its outcome: the bundles waiting for this one look again now.
            for later in self.versions.attempt_ended(row_id):
                self.resume(later, 0.0)
        if wait is None:
            self._unrecorded.discard(row_id)  # sent, quarantined or delivered: no more POST
            self._since_claim.discard(row_id)
            self._handed_at.pop(row_id, None)
        return wait

    def _attempt(self, row_id: int) -> float | None:
        self.paused.discard(row_id)  # until this attempt is paused again
        self.untrusted.discard(row_id)
        row = self.j.get(row_id)
        if (elsewhere := self.sent_elsewhere(row)) is not None:
            self.close_sent_elsewhere(row, elsewhere)  # else retried for ever
            return None
        wait = self._move_wait(row_id)
        if wait is not None:
            return wait  # a failed move is retried on its own back-off, not sooner
        if row.state == DELIVERED:
            # The receiver has it; only the archive move is left. Never POST again.
            return self.archive_sent(row_id, row)
        if row.state == QUARANTINING:
            return self.quarantine(row_id, findings_of(row.reasons))
        if row.state == CLAIMING and row_id in self._handed_over:
            # Claimed and checked, but the hand-over's commit failed (Claims._hand_over):
            # recorded now, before anything is sent (a JournalError: the workers retry).
            self.j.transition(row_id, "delivering", "claimed")  # durable: a POST follows
            row = self.j.get(row_id)
        self._handed_over.discard(row_id)
        if row.state not in ("delivering", "retrying"):
            return None  # finished meanwhile (quarantined, sent)
        log = bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids)
        if (earlier := self.versions.earlier(row)) is not None:
            return self.versions.wait(row, earlier, self.s.delivery.retry_max_seconds, log)

        def gone() -> float:
            # The share that holds processing/ went away (or someone moved the
            # folder): nothing to send and nothing to quarantine. Waited for, never
            # judged by a second look (back by then, it quarantined with no reason).
            return self._move_failed(row, f"{WORK_GONE.format(row.work_dir)} — is the "
                                     "share mounted?")

        def damaged(findings: list[Finding]) -> float | None:
            # Found while the share went away, maybe in the middle of reading: waited
            # for instead of judging a half-read bundle.
            return gone() if not self._work_present(row) else self.quarantine(row_id, findings)

        if not self._work_present(row):
            return gone()
        # Read again only after a restart; a bundle handed over at its claim was not.
        read_again = row_id not in self._validated
        read = self._read_claimed(row, log, damaged)
        if not isinstance(read, tuple):
            return read  # not read: waits, or quarantined (damaged)
        bundle, checked_for = read
        if read_again and not self._work_present(row):
            return gone()  # the share went away while the bundle was being read
        if read_again:
            kept = self._conversions_kept(row, bundle, checked_for, log)
            if not isinstance(kept, Bundle):
                return kept  # its earlier PDFs cannot be looked at now: waits
            bundle = kept
        if (changed := self._changed_after_post(row, bundle, log)) is not None:
            if self._checked_for_gone(checked_for, log):
                return 0.0  # its errors among the reasons may be the old format's
            return damaged(changed)  # before a conversion written anew replaces the PDF
        if any(a.converted for a in bundle.attachments):
            prepared = self._prepared(row, bundle, damaged)
            if not isinstance(prepared, Bundle):
                return prepared  # waits, or quarantined (damaged)
            bundle = prepared
        if self._checked_for_gone(checked_for, log):
            return 0.0  # before its errors quarantine it: they may be the old format's
        bid = bundle_id_of(bundle)
        if bundle.errors and not (read_again and self.sent_as_claimed(row, bundle, bid, log)):
            return damaged(self.judged_after_restart(row, list(bundle.errors)) if read_again
                           else list(bundle.errors))
        warnings = self.outgoing_warnings(bundle, bid)
        manifest = build_manifest(bundle, safe_filenames=self.s.delivery.safe_filenames,
                                  warnings=warnings, bundle_id=bid)
        if manifest["bundle_id"] != row.bundle_id:
            log.warning("bundle changed in the processing folder",
                        new_bundle_id=manifest["bundle_id"])
        unrecorded = row_id in self._unrecorded  # a POST the receiver saw, not recorded
        attempts = row.attempts + 1 + unrecorded

        def count() -> None:
            # Not durable: a crash after the POST leaves the row in flight either way,
            # and recovery posts again with the same Idempotency-Key.
            self.j.transition(row_id, "delivering", durable=False,
                              bundle_id=manifest["bundle_id"], attempts=attempts,
                              next_attempt_at=None)
            self._posting.discard(row_id)  # its POST counted: a later failed write missed none

        # The row is `delivering` since its claim. The first attempt after the claim has
        # its count written with its outcome (one commit less per bundle); a retry, an
        # attempt after a restart (which may follow a crash in a POST), or a bundle whose
        # id changed is recorded as under way before the POST.
        counted = (unrecorded or read_again or row.state != "delivering"
                   or row.next_attempt_at is not None or row.bundle_id != manifest["bundle_id"])
        if (handed := self._handed_at.get(row_id)) is not None:
            # `delivering` on disk before the first POST (mostly already, by the next
            # batch's claims): after a power cut a row back at `claiming` would be taken
            # for a claim that sent nothing, and a bundle changed in processing then
            # sent under a new key.
            self.j.durable_through(handed)
            del self._handed_at[row_id]
        deliverer = self.deliverers.take()  # this attempt's, even if a reload replaces it
        if self._checked_for_gone(checked_for, log):
            self.deliverers.give_back(deliverer)  # maybe the new format's already
            return 0.0
        if (held := self._held(deliverer, row_id, log)) is not None:
            self.deliverers.give_back(deliverer)
            return held
        if counted:
            count()  # a JournalError: no POST until the journal records it
            self._unrecorded.discard(row_id)
        else:
            self._posting.add(row_id)
        try:
            if (bind_journal := getattr(deliverer, "bind_journal", None)) is not None:
                # Documents already accepted (ubl-embedded); the bundle ids an answer
                # may name as another request's (HttpDeliverer.other_bundle).
                bind_journal(self.j)
            # Never a work folder (nor `.outboxd`) swapped for a link.
            with held_work(bundle, self.s.outbox.path) as rooted:
                receipt = deliverer.deliver(rooted, manifest)
        except InputError as exc:
            if not counted:
                count()
            return damaged([Finding(
                "processing-damaged", exc.file, f"{exc.message} (it changed in the processing "
                "folder)" + never_reached(exc, unrecorded or self.may_have_reached(row)))])
        except (Retryable, Paused) as exc:
            self._answered(deliverer, row_id, exc, log)
            return self._retry_later(row_id, attempts, exc, log, deliverer, row.invoice_file)
        except OSError as exc:
            # A file of the claimed bundle could not be opened for its part (no
            # descriptors left, a share that went away): the bundle is fine, so tried
            # again like a receiver that could not be reached, without a traceback.
            return self._retry_later(row_id, attempts, Retryable(
                f"cannot read the bundle's files to send them: {describe(exc)}"), log,
                deliverer)
        except Rejected as exc:
            self._answered(deliverer, row_id, None, log)
            if not counted:
                count()
            # str(exc) names what was refused: the bundle, or (ubl-embedded) the
            # document of which invoice, with the HTTP status.
            fix = exc.fix or rejection_fix(exc, bundle.invoice_ids)
            return self.quarantine(row_id, [Finding(
                "rejected", row.invoice_file, f"{exc}: {exc.body} — {fix}"
                + (others_unknown(exc, unrecorded or self.may_have_reached(row))
                   # A 422 to a second count is a repeat's already (outcome_unknown).
                   or repeat_unknown(exc, attempts == 1 and self.may_have_reached(row))),
                invoice_id=exc.invoice_id)])
        except OutboxdError:
            raise  # the journal's own (the workers retry it), or a deliverer's said plainly
        except Exception as exc:  # noqa: BLE001 - an answer or a fault nobody foresaw
            # Counted and explained like any failed attempt (status shows it), with the
            # traceback once in the log, instead of an attempt that left no trace; both
            # without the token, which an exception's text may quote.
            scrub = getattr(deliverer, "scrub", str)
            error = scrub(f"unexpected error while delivering ({type(exc).__name__}: "
                          f"{exc})")[:BODY_LIMIT]
            log.error("unexpected error while delivering", error=error,
                      traceback=scrub("".join(traceback.format_exception(exc))))
            return self._retry_later(row_id, attempts, Retryable(error), log)
        else:
            self._answered(deliverer, row_id, None, log)  # before the attempt is over
        finally:
            self._attempt_ended(deliverer, row_id)
            self.deliverers.give_back(deliverer)
        return self._delivered(row_id, row, manifest, receipt, attempts, deliverer)
