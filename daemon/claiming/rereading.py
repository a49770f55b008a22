"""A claimed bundle read again for its delivery attempt where its check from the claim
is gone (a restart, a reload that switched the format), its read's errors told apart:
the bundle's own (to `damaged`: quarantined) or the machine's (a reader gone, no
descriptors left, a share away: tried again on the move back-off); and, after a
restart, one the rules in force now find errors in, sent as it was checked at its claim
when its sending may have begun. A part of `finish.Finisher` (a mixin, through
`recovery.Recovery`: it shares the bundles read for delivery and their lock).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.bundle import Bundle, Finding
from daemon.claiming.claim import moved_candidate, read_in_place
from daemon.configuration.config import Settings
from daemon.errors import InputError, OutboxdError, ReaderFailed, ReaderStopped, describe
from daemon.fs.fsops import read_again_later
from daemon.journal import Row
from daemon.watching.scan import Candidate, candidate_for


class Rereading:
    s: Settings
    log: Any
    _validated: dict[int, Bundle]
    _checked_for: int  # see finish.Finisher
    _checks_lock: threading.Lock
    evaluate: Callable[[Candidate, Settings], Bundle]
    _move_failed: Callable[..., float]  # moves.Moves
    may_have_reached: Callable[[Row], bool]  # beforepost.BeforePost

    def sent_as_claimed(self, row: Row, bundle: Bundle, bid: str, log: Any) -> bool:
        """A claimed bundle read again after a restart, its files those its claim
        recorded, in which the rules in force now (a new version's, a setting changed
        meanwhile) find errors: True, and it is sent as it was checked at its claim. Its
        sending may have begun (a POST cut short may have reached the receiver):
        quarantined, REASON.txt would say nothing was sent, and the corrected copy the
        clerk then drops would reach the receiver as a second, different bundle. A claim
        cut short (recover) sent nothing, and is checked by the rules in force."""
        if bid != row.bundle_id:
            return False  # other bytes than were claimed: judged as they are
        if not self.may_have_reached(row):
            # No POST of it yet (a claim recovery finished whose check there failed, a
            # row handed over here and read again after a reload): nothing the receiver
            # may hold, so judged by the rules in force, as a claim cut short is.
            return False
        if row.channel is not None and bundle.channel != row.channel:
            # The same bytes on another channel (an attachments.toml edited in processing,
            # [validation] channel changed): checked for none it would go out on, so
            # judged as it is. No bundle goes out on a channel it was not checked for.
            return False
        if self.s.delivery.format == "ubl-embedded":
            # Each document is built and checked at delivery and none may go unchecked
            # (a reload or restart may also have switched the format since the claim);
            # documents already accepted are in the journal, and REASON.txt names them.
            return False
        log.warning("bundle claimed before the restart is sent as it was checked then; "
                    "the rules in force now find errors in it",
                    errors=[f.line() for f in bundle.errors])
        return True

    def _read_claimed(self, row: Row, log: Any,
                      damaged: Callable[[list[Finding]], float | None]
                      ) -> tuple[Bundle, int] | float | None:
        """The claimed bundle for its attempt (`_claimed_bundle`), or what its read's error
        means: the bundle's own fault goes to `damaged`; the machine's waits for the
        next try on the move back-off (`_unreadable_again`)."""
        try:
            return self._claimed_bundle(row)
        except (InputError, OSError) as exc:
            if isinstance(exc, OSError) and read_again_later(exc):
                # No descriptors left, a share gone, a file listed and gone at its open (a
                # share that blinked): the machine's, not the bundle's. Quarantined, a
                # claimed bundle a blink hid for a moment went to quarantine/ with "cannot
                # be read"; read again, a file really removed is missing from the listing,
                # and the bundle is judged for that (changed after its claim).
                return self._unreadable_again(row, describe(exc))
            return damaged([Finding(
                "processing-damaged", row.invoice_file, f"cannot be read in the processing "
                f"folder ({exc}) — check it and move it back to the outbox")])
        # A reader gone, a parser's bug: not the bundle's fault. Recovery lets the start
        # go on past such an error for this read. Said in the row (retrying, last_error)
        # and tried again on the move back-off, as a failed conversion is; never
        # quarantined for it, never a row `delivering` unexplained.
        except ReaderFailed as exc:
            return self._unreadable_again(row, str(exc), expected=isinstance(exc, ReaderStopped))
        except OutboxdError:
            raise  # the journal's own: the workers retry it
        except Exception as exc:  # noqa: BLE001 - see above
            log.exception("unexpected error reading a claimed bundle again")
            return self._unreadable_again(row, repr(exc))

    def _claimed_bundle(self, row: Row) -> tuple[Bundle, int]:
        """The bundle to deliver: as validated before the claim, or (after a restart or
        a switch of format, when that is gone) read and validated again in processing;
        with the format's generation it was checked for (`_checked_for`)."""
        checked_for = self._checked_for  # first: `s` is at least as new as this
        validated = self._validated.get(row.id)
        if validated is None:
            validated = self._read_again(row, self.s)
            with self._checks_lock:
                if checked_for == self._checked_for:  # else made for a format now gone
                    self._validated[row.id] = validated
        return validated, checked_for

    def _read_again(self, row: Row, settings: Settings) -> Bundle:
        """The row's bundle read, matched and validated again where it lies in its work
        folder, the folder held meanwhile (read_in_place)."""
        return read_in_place(Path(row.work_dir or ""),
                             lambda: self.evaluate(self._moved(row), settings),
                             self.s.outbox.path)

    def _moved(self, row: Row) -> Candidate:
        """The row's bundle as it lies in its work folder."""
        assert row.work_dir is not None
        return moved_candidate(candidate_for(self.s.outbox, row.invoice_file),
                               Path(row.work_dir))

    def _unreadable_again(self, row: Row, why: str, expected: bool = False) -> float:
        return self._move_failed(row, f"cannot read the bundle again in {row.work_dir}: {why}",
                                 "bundle cannot be prepared for delivery; will retry",
                                 expected)
