"""A claimed bundle made ready for its POST in its work folder: its converted images
written there (those an earlier attempt wrote kept, when they are still the bytes its
bundle id names), and a bundle whose files changed after a POST of unknown outcome
stopped before it goes out under another Idempotency-Key (docs/architecture.md, "After a
restart a claimed bundle is read and validated again").

A part of `finish.Finisher` (a mixin): it shares the journal's row, the settings, the
conversions' hook and the move back-off.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from daemon.archiving.reasontext import NEVER_REACHED, OUTCOME_UNKNOWN
from daemon.bundle import Attachment, Bundle, Finding
from daemon.configuration.config import Settings
from daemon.errors import InputError, ReaderFailed, ReaderStopped, Rejected, describe
from daemon.fs.fsops import NOT_THE_FILES_FAULT, open_below
from daemon.fs.fsread import changed_since, hash_of
from daemon.fs.fswrite import held_path
from daemon.fs.workfolder import hold_folder
from daemon.journal import Row
from daemon.manifest import bundle_id_of
from daemon.validation.convert import converted_path
from daemon.watching.scan import Candidate

Damaged = Callable[[list[Finding]], float | None]


def changed_after_post(earlier_id: str) -> str:
    """The reason of a bundle read again with another id than `earlier_id`, under which
    a POST that may have reached the receiver went (its first 12 characters, as the
    archive folders and `status` show an id). Its files changed in processing, or they
    are the same and a configuration changed before a restart (or a reload of the
    format), or an upgrade, reads them otherwise (a document type, an image's
    conversion): which, the read cannot tell, so the reason names both — said as an
    edit alone, it sent the admin who restarted looking for who touched the folder."""
    return (f"the bundle read again after {OUTCOME_UNKNOWN} is not the one that attempt "
            f"posted (bundle {earlier_id[:12]}): its files were changed in the processing "
            "folder, or a changed configuration or an upgraded outboxd reads them otherwise "
            "(a document type, an image's conversion), so the receiver may hold "
            "the earlier version; it was not sent again under another Idempotency-Key, "
            "which the receiver could not recognise as the same invoice — check with the "
            "operator whether it has that bundle before dropping this one into the outbox "
            "again")


def others_unknown(exc: Rejected, posted_before: bool) -> str:
    """What the refusal of one invoice's document (ubl-embedded) leaves unknown of the
    file's others, said after its reason ('' for nothing): it answers for its own key
    only. Those posted in this attempt without an answer that they were not taken (a
    timeout, a 5xx: the transport goes on past them), and, when an earlier POST may
    have reached the receiver (`posted_before`), every one not accepted yet. Its words
    hold OUTCOME_UNKNOWN, so the papers say to ask the operator, not "Nothing was
    delivered" (reasontext.outcome_unknown)."""
    which = exc.pending if posted_before else exc.unanswered
    if exc.invoice_id is None or not which:
        return ""
    many = len(which) > 1
    return (f"; the document{'s' if many else ''} of invoice {', '.join(which)} may "
            f"have reached the receiver by {OUTCOME_UNKNOWN}")


def repeat_unknown(exc: Rejected, posted_before: bool) -> str:
    """What a 422 to the first counted POST adds to its reason ('' for nothing) when a
    POST that no count shows may have gone out before it (`posted_before`: one of an
    earlier process, as a crash in a first POST, whose count is written with its
    outcome, leaves none): the 422 may then answer a repeat, the receiver holding that
    POST's content under the key, so the papers say to ask the operator, as for a 422 to
    a counted repeat (reasontext.outcome_unknown reads the words). In the reason, which
    the journal keeps, so a move retried after another restart writes the same papers."""
    if not posted_before or exc.status != 422:
        return ""
    return BEFORE_RESTART


# Said after a reason when a POST of the bundle before a restart may have reached the
# receiver: the words hold OUTCOME_UNKNOWN, which reasontext.outcome_unknown reads.
BEFORE_RESTART = ("; a POST of it before a restart may have reached the receiver by "
                  f"{OUTCOME_UNKNOWN}")


def never_reached(exc: InputError, posted_before: bool) -> str:
    """What a delivery stopped at a file changed in processing adds to its reason ('' for
    nothing): with no POST before it that may have reached the receiver, nor a document
    of this one (ubl-embedded) left unanswered, none of it did — the part of a changed
    file is cut off before its end, a document is built before it is posted — so the
    papers say "Nothing was delivered", not to ask the operator (the attempt is counted
    all the same: reasontext.outcome_unknown reads these words)."""
    if posted_before or exc.unanswered:
        return ""
    return f"; {NEVER_REACHED}"


class BeforePost:
    s: Settings
    log: Any
    _move_faults: dict[int, tuple[int, float]]  # see moves.Moves
    _unrecorded: set[int]  # see finish.Finisher
    # Rows whose every POST this process made (claimed and handed over here): for any
    # other, a POST before a crash or a power loss may have reached the receiver
    # without a count that says so (a first attempt's is written with its outcome).
    _since_claim: set[int]
    _validated: dict[int, Bundle]
    _checked_for: int
    _checks_lock: threading.Lock
    materialise: Callable[[Candidate, Bundle, Path, Settings], Bundle]
    _move_failed: Callable[..., float]  # moves.Moves
    _moved: Callable[[Row], Candidate]  # rereading.Rereading

    def may_have_reached(self, row: Row) -> bool:
        """Whether a POST under the row's bundle id may have reached the receiver: one
        counted, one not counted yet (a journal error after it), or one of an earlier
        process (a crash or a power loss cuts a POST short with no record of it)."""
        return row.attempts > 0 or row.id in self._unrecorded or row.id not in self._since_claim

    def judged_after_restart(self, row: Row, errors: list[Finding]) -> list[Finding]:
        """The errors that quarantine a bundle read again after a restart and not sent as
        claimed (read for another channel, or documents built at delivery), the first
        saying, when a POST of it before the restart may have reached the receiver (a
        crash in its first POST leaves no count), that it may have: its papers said
        "Nothing was delivered", and the copy a clerk fixed and dropped again reached the
        receiver as a second bundle."""
        # Said of a POST an earlier process made (or one of ours no count records): the
        # POSTs this process counted (a row read again at a reload) are in `attempts`,
        # which the papers read as it is, and no restart came before them.
        if not errors or (row.id in self._since_claim and row.id not in self._unrecorded):
            return errors
        first = errors[0]
        return [replace(first, message=first.message + BEFORE_RESTART), *errors[1:]]

    def _changed_after_post(self, row: Row, bundle: Bundle, log: Any) -> list[Finding] | None:
        """The reasons to quarantine a bundle whose files changed since a POST of unknown
        outcome under the row's id (its own errors after them), or None to go on. Sent
        under its new id, the receiver would take the changed bundle for another one and
        the invoice might go out twice. Nothing posted before: what the files say now was
        validated again, and is sent."""
        bid = bundle_id_of(bundle)
        if row.bundle_id is None or bid == row.bundle_id or not self.may_have_reached(row):
            return None
        log.warning("bundle read again with another id (its files changed in processing, "
                    "or a changed configuration or an upgrade reads them otherwise) after "
                    "a delivery attempt whose outcome is not known; quarantined, not sent "
                    "under another Idempotency-Key", new_bundle_id=bid, attempts=row.attempts)
        return [Finding("processing-damaged", row.invoice_file,
                        changed_after_post(row.bundle_id)), *bundle.errors]

    def _conversions_kept(self, row: Row, bundle: Bundle, checked_for: int, log: Any
                          ) -> Bundle | float:
        """The bundle read again after a restart, its converted images taken as the PDFs
        an earlier attempt wrote into the work folder, when those are exactly what the
        row's bundle id names (so what that attempt's POST carried). A conversion is the
        same bytes only with the same Pillow and zlib: converted again after an upgrade,
        the bundle had another id, and went out under another Idempotency-Key (or, now,
        was quarantined) though nobody touched it. Else the bundle as read. Kept for the
        attempts after this one too (`_validated`), which would write the PDF anew.
        A float (the wait before the next attempt, which reads the bundle again) when a
        look at the folder or a PDF the share or the machine fails (NOT_THE_FILES_FAULT:
        EIO, ESTALE, no descriptors left) cannot tell: taken for "not written", the bundle
        converted anew was judged changed after its POST and quarantined."""
        if row.bundle_id is None or not any(a.converted for a in bundle.attachments) \
                or bundle_id_of(bundle) == row.bundle_id:
            return bundle
        work = Path(row.work_dir or "")
        try:
            # Held, never through a link in its place; each PDF opened below it as a
            # bundle's file is (no link followed, no FIFO opened).
            held = hold_folder(work, within=self.s.outbox.path)
        except OSError as exc:
            if exc.errno in NOT_THE_FILES_FAULT:
                return self._kept_unknown(row, exc)
            return bundle  # judged as read; the attempt says what became of the folder
        except InputError:
            return bundle
        try:
            written = [self._written(held, work, a) for a in bundle.attachments]
        except OSError as exc:
            if exc.errno in NOT_THE_FILES_FAULT:
                return self._kept_unknown(row, exc)
            return bundle  # one not written: converted anew, judged so
        except InputError:
            return bundle  # one not written (or not a file): converted anew, judged so
        finally:
            os.close(held)
        if None in written:
            return bundle  # an image changed since its PDF was written: judged as read
        kept = replace(bundle, attachments=tuple(a for a in written if a is not None))
        if bundle_id_of(kept) != row.bundle_id:
            return bundle  # other bytes than the earlier attempt's: judged as read
        with self._checks_lock:
            if checked_for == self._checked_for:  # else checked for a format now gone
                self._validated[row.id] = kept
        log.info("converted images kept as an earlier attempt wrote them; converted again "
                 "they give other bytes (another Pillow or zlib)", new_bundle_id=bundle_id_of(
                     bundle))
        return kept

    def _kept_unknown(self, row: Row, exc: OSError) -> float:
        """The wait of a bundle whose earlier PDFs could not be looked at (_conversions_kept):
        read again, as a whole, at its next attempt (dropped from `_validated`)."""
        with self._checks_lock:
            self._validated.pop(row.id, None)
        return self._move_failed(row, f"cannot read the PDFs an earlier attempt converted in "
                                 f"{row.work_dir}: {describe(exc)}", "bundle cannot be "
                                 "prepared for delivery; will retry")

    @staticmethod
    def _written(held: int, work: Path, att: Attachment) -> Attachment | None:
        """`att` with the size and hash of the PDF of it in the work folder (held); None
        when the image was changed or replaced after that PDF was written (its ctime,
        which no copy tool sets back, is later): the PDF is then an old picture's, and
        kept, it sent that picture again, the new one archived in sent/ beside it as if
        delivered — while the bundle changed after a POST is to be quarantined."""
        if att.converted is None:
            return att
        rel = converted_path(work, att).relative_to(work).as_posix()
        with open_below(held_path(held), rel) as fh, \
                open_below(held_path(held), att.rel) as image:
            if changed_since(image, fh):
                return None
            size, sha256 = hash_of(fh)
        return replace(att, converted=replace(att.converted, size=size, sha256=sha256))

    def _prepared(self, row: Row, bundle: Bundle, damaged: Damaged) -> Bundle | float | None:
        """The bundle with its converted images written into the claimed work folder (only
        now: nothing is written before the claim), or what its failure means."""
        try:
            bundle = self.materialise(self._moved(row), bundle, Path(row.work_dir or ""),
                                      self.s)
            # Written: failed writes before this one no longer count in a row, so a
            # move that fails after the POST waits the first back-off, not a longer one.
            self._move_faults.pop(row.id, None)
            return bundle
        except InputError as exc:
            return damaged([Finding(exc.code, exc.file, exc.message)])
        except (OSError, ReaderFailed) as exc:
            # No descriptors left, a full disk or a share gone while reading the image
            # or writing its PDF, or a reader that died under the conversion each
            # time (the daemon stopping, too): the bundle is fine, so it waits and
            # tries again, as a failed move does; never quarantined, and never
            # converted here instead.
            why = (f"cannot read an image or write its PDF in {row.work_dir}: "
                   f"{describe(exc, writing=True)}" if isinstance(exc, OSError) else
                   f"cannot convert an image to PDF: {exc}")
            return self._move_failed(row, why, "bundle cannot be prepared for delivery; "
                                     "will retry", expected=isinstance(exc, ReaderStopped))
