"""The pipeline for one bundle up to its claim: settle → read → match →
validate → decide → claim. What follows the claim (deliver, archive,
quarantine, recovery) is `finish.Finisher`.

This module decides and sequences; the modules it calls do the work. Every
step that changes the world is announced in the journal first.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.bundle import Bundle, Finding
from daemon.claim import claim, taken_meanwhile, unclaim, work_dir_for
from daemon.config import Settings
from daemon.deliver import Deliverer
from daemon.errors import ClaimLost, InputError
from daemon.finish import Finisher, bind, evaluate, reasons_of
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
from daemon.scan import Candidate, Listing, Snapshot, snapshot
from daemon.settle import SettleTracker

ERRORS_HEADER = ("# outboxd: this bundle is held because of the errors below. Fix them;\n"
                 "# it is checked again on every change and this file goes away once it passes.\n")


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
    def __init__(self, settings: Settings, journal: Journal, deliverer: Deliverer) -> None:
        self.s = settings
        self.j = journal
        self.finish = Finisher(settings, journal, deliverer)
        self.tracker = SettleTracker(settings.outbox.settle_seconds)
        self.known: dict[str, _Known] = {}
        self._claim_paused: dict[str, float] = {}  # invoice file -> monotonic retry time
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
    def step(self, cand: Candidate, now: float) -> int | None:
        """Look at one invoice file in the outbox; a journal row id once it is claimed."""
        key = cand.invoice.name
        snap = snapshot(cand, self.s.outbox)
        row = self.j.live_row(key)
        if snap is None:
            self.forget(key)
            if row:
                self.j.transition(row.id, "gone", "the invoice file left the outbox")
            return None
        marker_missing = (self.s.outbox.completion == "marker"
                          and not os.path.lexists(cand.marker))
        if not self.tracker.observe(key, snap, now) or marker_missing:
            self._live(row, key, "settling")
            return None
        if self._claim_paused.get(key, 0.0) > now:
            return None
        known = self.known.get(key)
        if known is None or known.snap != snap:
            known = self._read(cand, snap)
        if known.bundle is None:
            if known.error:
                self._live(row, key, "settling", last_error=known.error)
            return None
        if row is not None and row.last_error and row.state in LIVE:
            self.j.update(row.id, last_error=None)  # it reads now
        return self._decide(cand, known, row)

    def _read(self, cand: Candidate, snap: Snapshot) -> _Known:
        key = cand.invoice.name
        try:
            bundle = evaluate(cand, self.s)
        except (InputError, OSError) as exc:
            if taken_meanwhile(cand):
                # Another daemon on the share claimed it while we read: normal work.
                self.log.info("bundle taken by another daemon while being read",
                              invoice_file=key)
                known = _Known(snap, None, "")
            else:
                # Logged once per snapshot: it is read again only when something changes.
                self.log.error("bundle cannot be read", invoice_file=key, error=str(exc))
                known = _Known(snap, None, "", error=str(exc))
        except Exception:  # noqa: BLE001 - a bug on one odd file must not flood the log
            self.log.exception("unexpected error reading bundle", invoice_file=key)
            known = _Known(snap, None, "")
        else:
            known = _Known(snap, bundle, bundle_id_of(bundle))
        self.known[key] = known
        return known

    def _live(self, row: Row | None, key: str, state: str, **fields: Any) -> None:
        if row is None:
            self.j.create(key, state, **fields)
        elif row.state != state or any(getattr(row, k) != v for k, v in fields.items()):
            self.j.transition(row.id, state, **fields)

    def _decide(self, cand: Candidate, known: _Known, row: Row | None) -> int | None:
        bundle, bid, key = known.bundle, known.bundle_id, cand.invoice.name
        assert bundle is not None
        policy = self.s.policy
        if bundle.errors:
            if policy.invalid == "hold":
                self._errors_file(cand, known, bundle.errors)
                self._live(row, key, "held", bundle_id=bid, reasons=reasons_of(bundle.errors))
                return None
            return self._claim(cand, known, row, list(bundle.errors))
        self._errors_file(cand, known, ())
        if self.j.was_sent(bid) and policy.duplicates == "quarantine":
            return self._claim(cand, known, row, [Finding(
                "duplicate", key, f"this exact bundle ({bid[:12]}) was sent before — remove "
                "it, or change it if it is meant to be a new bundle")])
        unattached = bundle.unattached_ids
        if unattached and policy.unattached != "send":
            deadline = row.deadline if row and row.deadline else (
                None if policy.unattached == "hold" else iso_in(policy.attachment_wait_seconds))
            if deadline is None or datetime.now(UTC) < parse_iso(deadline):
                self._live(row, key, "waiting", bundle_id=bid, deadline=deadline,
                           invoice_ids=list(bundle.invoice_ids), unattached_ids=list(unattached))
                return None
            if policy.unattached == "quarantine":
                return self._claim(cand, known, row, [Finding(
                    "unattached-invoice", key, f"invoice(s) {', '.join(unattached)} had no "
                    f"attachments after {policy.attachment_wait_seconds:g} s — add them to the "
                    "sidecar folder and move the bundle back into the outbox")])
        return self._claim(cand, known, row, [])

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
                    **fields: Any) -> int | None:
        """Put a claimed bundle back to settle again; if a same-named file arrived in the
        meantime, ours cannot go back and is quarantined beside it instead (the row id
        is returned when that move must be retried by the workers)."""
        stuck = unclaim(cand, work) if work.exists() else []
        if stuck:
            return self._quarantine_now(row_id, [Finding(
                "changed-during-claim", cand.invoice.name, f"while this bundle was being "
                f"claimed, new files named {', '.join(stuck)} appeared in the outbox; this is "
                "the earlier version — compare the two and move the right one back into the "
                "outbox")])
        self.j.transition(row_id, "settling", why, work_dir=None, **fields)
        return None

    def _quarantine_now(self, row_id: int, reasons: list[Finding]) -> int | None:
        """Quarantine at claim time; a move that failed is handed to the workers' timers."""
        return None if self.finish.quarantine(row_id, reasons) is None else row_id

    def _claim(self, cand: Candidate, known: _Known, row: Row | None,
               reasons: list[Finding]) -> int | None:
        assert known.bundle is not None
        bundle, bid, key = known.bundle, known.bundle_id, cand.invoice.name
        work = work_dir_for(self.s.processing_dir, cand.name, bid)
        fields = {"bundle_id": bid, "invoice_ids": list(bundle.invoice_ids),
                  "unattached_ids": list(bundle.unattached_ids), "work_dir": str(work),
                  "reasons": reasons_of(reasons)}
        if row is None:
            row_id = self.j.create(key, CLAIMING, **fields)
        else:
            row_id = row.id
            self.j.transition(row_id, CLAIMING, **fields)
        self.forget(key)
        log = self._bind(key, bid, bundle.invoice_ids)
        try:
            moved = claim(cand, work, self.s.outbox.completion == "marker")
        except ClaimLost:
            self.j.transition(row_id, "gone", "claimed by another daemon", work_dir=None)
            log.info("bundle taken by another daemon")
            return None
        except OSError as exc:
            # Permissions, a share that went away: put back whatever moved and
            # try again after a rescan period rather than on every tick.
            pending = self._undo_claim(cand, row_id, work, "claim failed",
                                       last_error=f"cannot move into processing: {exc}")
            log.error("cannot claim bundle; will try again", error=str(exc),
                      retry_in=self.s.outbox.rescan_seconds)
            self._claim_paused[key] = time.monotonic() + self.s.outbox.rescan_seconds
            return pending
        # The files may have changed between validation and the move. The id
        # covers every byte (hashes), so matching again is enough: no need to
        # parse PDFs and images a second time.
        try:
            after = bundle_id_of(assemble(moved, self.s))
        except InputError:
            after = ""
        if after != bid:
            log.info("bundle changed while being claimed; settling again")
            return self._undo_claim(cand, row_id, work, "changed while being claimed")
        if reasons:
            return self._quarantine_now(row_id, reasons)
        self.j.transition(row_id, "delivering", "claimed")
        log.info("bundle claimed", attachments=len(bundle.attachments),
                 unattached_ids=list(bundle.unattached_ids))
        return row_id

    def forget(self, key: str) -> None:
        self.tracker.forget(key)
        self.known.pop(key, None)

    def forget_vanished(self, listing: Listing) -> None:
        """Live rows of a previous run whose invoice file is no longer in the outbox."""
        for row in self.j.rows(LIVE):
            if row.invoice_file not in listing.candidates:
                self.j.transition(row.id, "gone", "not in the outbox at start")
