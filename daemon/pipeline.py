"""The pipeline for one bundle: settle → read → match → validate → decide →
claim → deliver → archive, and recovery of whatever a crash interrupted.

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
from daemon.archive import (
    move_into_place,
    reason_record,
    target_for,
    write_reasons,
    write_receipt,
)
from daemon.bundle import Bundle, Finding
from daemon.claim import claim, finish_claim, moved_candidate, unclaim, work_dir_for
from daemon.config import Settings
from daemon.deliver import Deliverer, backoff
from daemon.errors import ClaimLost, InputError, Paused, Rejected, Retryable
from daemon.fsops import write_atomic
from daemon.journal import (
    CLAIMING,
    DELIVERED,
    LIVE,
    QUARANTINING,
    Journal,
    Row,
    iso_in,
    now_iso,
    parse_iso,
)
from daemon.manifest import build_manifest, bundle_id_of
from daemon.match import assemble
from daemon.names import stem
from daemon.scan import Candidate, Listing, Snapshot, snapshot
from daemon.settle import SettleTracker
from daemon.validate import validate_bundle

BODY_LIMIT = 2000
ERRORS_HEADER = ("# outboxd: this bundle is held because of the errors below. Fix them;\n"
                 "# it is checked again on every change and this file goes away once it passes.\n")


@dataclass
class _Known:
    """What a settled snapshot was found to be, so it is read only once."""

    snap: Snapshot
    bundle: Bundle | None  # None: the invoice file itself could not be read
    bundle_id: str
    errors_file_done: bool = False  # NAME.errors.txt written (hold) or cleared (passing)


def _errors_file_text(path: Path) -> str | None:
    """NAME.errors.txt if it is a regular file we can read, else None."""
    try:
        if not path.is_file() or path.is_symlink():
            return None
        return path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _reasons(findings: list[Finding] | tuple[Finding, ...]) -> list[dict[str, str]]:
    return [{"code": f.code, "file": f.file, "message": f.message} for f in findings]


def _findings(reasons: list[dict[str, Any]]) -> list[Finding]:
    return [Finding(r["code"], r["file"], r["message"]) for r in reasons]


class Pipeline:
    def __init__(self, settings: Settings, journal: Journal, deliverer: Deliverer) -> None:
        self.s = settings
        self.j = journal
        self.d = deliverer
        self.tracker = SettleTracker(settings.outbox.settle_seconds)
        self.known: dict[str, _Known] = {}
        self._claim_paused: dict[str, float] = {}  # invoice file -> monotonic retry time
        self.log = logs.get()

    # -- reading ---------------------------------------------------------------
    def candidate(self, invoice_file: str) -> Candidate:
        name = stem(invoice_file)
        root = self.s.outbox.path
        return Candidate(name, root / invoice_file, root / (name + self.s.outbox.sidecar_suffix),
                         root / (name + self.s.outbox.marker_suffix))

    def evaluate(self, cand: Candidate) -> Bundle:
        """Read, match and validate; raises InputError only if the invoice file is unreadable."""
        return validate_bundle(assemble(cand, self.s), self.s.validation)

    def _bind(self, invoice_file: str, bundle_id: str | None, ids: list[str] | tuple[str, ...]
              ) -> Any:
        return self.log.bind(bundle_id=bundle_id, invoice_file=invoice_file,
                             invoice_ids=list(ids))

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
            return None
        return self._decide(cand, known, row)

    def _read(self, cand: Candidate, snap: Snapshot) -> _Known:
        key = cand.invoice.name
        try:
            bundle = self.evaluate(cand)
        except (InputError, OSError) as exc:
            # Logged once per snapshot: it is read again only when something changes.
            self.log.error("bundle cannot be read", invoice_file=key, error=str(exc))
            known = _Known(snap, None, "")
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
                self._live(row, key, "held", bundle_id=bid, reasons=_reasons(bundle.errors))
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
                    log: Any, **fields: Any) -> None:
        """Put a claimed bundle back to settle again; if a same-named file arrived in the
        meantime, ours cannot go back and is quarantined beside it instead."""
        stuck = unclaim(cand, work) if work.exists() else []
        if stuck:
            self.quarantine(row_id, [Finding(
                "changed-during-claim", cand.invoice.name, f"while this bundle was being "
                f"claimed, new files named {', '.join(stuck)} appeared in the outbox; this is "
                "the earlier version — compare the two and move the right one back into the "
                "outbox")])
            return
        self.j.transition(row_id, "settling", why, work_dir=None, **fields)

    def _claim(self, cand: Candidate, known: _Known, row: Row | None,
               reasons: list[Finding]) -> int | None:
        assert known.bundle is not None
        bundle, bid, key = known.bundle, known.bundle_id, cand.invoice.name
        work = work_dir_for(self.s.processing_dir, cand.name, bid)
        fields = {"bundle_id": bid, "invoice_ids": list(bundle.invoice_ids),
                  "unattached_ids": list(bundle.unattached_ids), "work_dir": str(work),
                  "reasons": _reasons(reasons)}
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
            self._undo_claim(cand, row_id, work, "claim failed", log,
                             last_error=f"cannot move into processing: {exc}")
            log.error("cannot claim bundle; will try again", error=str(exc),
                      retry_in=self.s.outbox.rescan_seconds)
            self._claim_paused[key] = time.monotonic() + self.s.outbox.rescan_seconds
            return None
        # The files may have changed between validation and the move. The id
        # covers every byte (hashes), so matching again is enough: no need to
        # parse PDFs and images a second time.
        try:
            after = bundle_id_of(assemble(moved, self.s))
        except InputError:
            after = ""
        if after != bid:
            self._undo_claim(cand, row_id, work, "changed while being claimed", log)
            log.info("bundle changed while being claimed; settling again")
            return None
        if reasons:
            self.quarantine(row_id, reasons)
            return None
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

    # -- after the claim -------------------------------------------------------
    def _claimed_bundle(self, row: Row) -> Bundle:
        assert row.work_dir is not None
        return self.evaluate(moved_candidate(self.candidate(row.invoice_file),
                                             Path(row.work_dir)))

    def outgoing_warnings(self, bundle: Bundle, bid: str) -> list[Finding]:
        name = bundle.invoice_file.name
        out = list(bundle.warnings)
        for invoice_id in bundle.unattached_ids:
            out.append(Finding("unattached-invoice", name, f"invoice {invoice_id} is sent "
                               "without attachments", "warning", invoice_id))
        for invoice_id in self.j.sent_invoice_ids(list(bundle.invoice_ids), bid):
            out.append(Finding("invoice-id-already-sent", name, f"invoice {invoice_id} was "
                               "already sent in another bundle", "warning", invoice_id))
        return out

    def attempt(self, row_id: int) -> float | None:
        """One delivery attempt; the delay before the next one, or None when finished."""
        row = self.j.get(row_id)
        if row.state == DELIVERED:
            # The receiver has it; only the archive move is left. Never POST again.
            self.archive_sent(row_id)
            return None
        if row.state == QUARANTINING:
            self.quarantine(row_id, _findings(row.reasons))
            return None
        if row.state not in ("delivering", "retrying"):
            return None  # finished meanwhile (quarantined, sent)
        log = self._bind(row.invoice_file, row.bundle_id, row.invoice_ids)
        try:
            bundle = self._claimed_bundle(row)
        except (InputError, OSError) as exc:
            self.quarantine(row_id, [Finding("processing-damaged", row.invoice_file,
                                             f"cannot be read in the processing folder ({exc})"
                                             " — check it and move it back to the outbox")])
            return None
        if bundle.errors:
            self.quarantine(row_id, list(bundle.errors))
            return None
        warnings = self.outgoing_warnings(bundle, bundle_id_of(bundle))
        manifest = build_manifest(bundle, safe_filenames=self.s.delivery.safe_filenames,
                                  warnings=warnings)
        if manifest["bundle_id"] != row.bundle_id:
            log.warning("bundle changed in the processing folder",
                        new_bundle_id=manifest["bundle_id"])
        attempts = row.attempts + 1
        self.j.transition(row_id, "delivering", bundle_id=manifest["bundle_id"],
                          attempts=attempts, next_attempt_at=None)
        try:
            receipt = self.d.deliver(bundle, manifest)
        except InputError as exc:
            self.quarantine(row_id, [Finding("processing-damaged", exc.file, f"{exc.message} "
                                             "(it changed in the processing folder)")])
            return None
        except (Retryable, Paused) as exc:
            paused = isinstance(exc, Paused)
            cfg = self.s.delivery
            delay = cfg.retry_max_seconds if paused else backoff(
                attempts, cfg.retry_base_seconds, cfg.retry_max_seconds, exc.retry_after)
            error = str(exc) + (f": {exc.body[:200]}" if exc.body else "")
            self.j.transition(row_id, "retrying", attempts=attempts, last_error=error,
                              next_attempt_at=iso_in(delay))
            (log.error if paused else log.warning)(
                "delivery paused: configuration problem" if paused else "delivery failed; "
                "will retry", error=error, attempts=attempts, retry_in=round(delay, 3))
            return delay
        except Rejected as exc:
            self.quarantine(row_id, [Finding(
                "rejected", row.invoice_file, f"the receiver answered HTTP {exc.status}: "
                f"{exc.body[:BODY_LIMIT]} — fix what the receiver names, then move the bundle "
                "back into the outbox")])
            return None
        record = {"manifest": manifest, "response": receipt.as_dict(), "attempts": attempts,
                  "delivered_at": now_iso()}
        self.j.transition(row_id, DELIVERED, response=record, receipt_id=receipt.receipt_id,
                          last_error=None)
        for w in warnings:
            log.warning("sent with warning", code=w.code, file=w.file, message=w.message)
        self.archive_sent(row_id)
        return None

    def archive_sent(self, row_id: int) -> None:
        row = self.j.get(row_id)
        assert row.work_dir and row.bundle_id and row.response
        target = self._target(row, self.s.sent_dir)
        work = Path(row.work_dir)
        if work.exists():
            write_receipt(work, row.response)
        target = move_into_place(work, target)
        self.j.transition(row_id, "sent", archive_dir=str(target))
        self._bind(row.invoice_file, row.bundle_id, row.invoice_ids).info(
            "bundle sent", receipt_id=row.receipt_id, attempts=row.response.get("attempts"),
            archive=str(target))

    def quarantine(self, row_id: int, reasons: list[Finding]) -> None:
        self.j.transition(row_id, QUARANTINING, reasons=_reasons(reasons))
        row = self.j.get(row_id)
        assert row.work_dir and row.bundle_id
        target = self._target(row, self.s.quarantine_dir)
        work = Path(row.work_dir)
        if work.exists():
            write_reasons(work, reason_record(row.bundle_id, row.invoice_file, reasons))
        target = move_into_place(work, target)
        self.j.transition(row_id, "quarantined", archive_dir=str(target))
        self._bind(row.invoice_file, row.bundle_id, row.invoice_ids).warning(
            "bundle quarantined", reasons=[r.line() for r in reasons], archive=str(target))

    def _target(self, row: Row, root: Path) -> Path:
        """The archive folder, chosen once and journaled before the move."""
        if row.archive_dir:
            return Path(row.archive_dir)
        assert row.bundle_id
        target = target_for(root, stem(row.invoice_file), row.bundle_id)
        self.j.update(row.id, archive_dir=str(target))
        return target

    # -- recovery ----------------------------------------------------------------
    def recover(self) -> list[tuple[int, float]]:
        """Finish what a crash interrupted; the rows to hand to the workers and when.

        Only half-done claims are finished here (they touch the outbox, which
        this thread owns); archiving and delivery go through `attempt`, so a
        failure there is retried later instead of stopping the start.
        """
        due: list[tuple[int, float]] = []
        for row in self.j.rows((CLAIMING, "delivering", "retrying", DELIVERED, QUARANTINING)):
            log = self._bind(row.invoice_file, row.bundle_id, row.invoice_ids)
            log.info("recovering bundle", state=row.state)
            delay = 0.0
            if row.state == CLAIMING:
                try:
                    if not self._finish_claim(row):
                        continue
                except OSError as exc:
                    log.error("cannot finish an interrupted claim; will retry at next start",
                              error=str(exc))
                    continue
            elif row.state == "retrying" and row.next_attempt_at:
                delay = max(0.0, (parse_iso(row.next_attempt_at)
                                  - datetime.now(UTC)).total_seconds())
            due.append((row.id, delay))
        return due

    def _finish_claim(self, row: Row) -> bool:
        """A claim cut short by a crash: True if the bundle is now ours to finish."""
        assert row.work_dir
        work = Path(row.work_dir)
        if not (work / row.invoice_file).exists():
            if work.is_dir() and not any(work.iterdir()):
                work.rmdir()
            self.j.transition(row.id, "settling", "claim did not happen", work_dir=None)
            return False
        finish_claim(self.candidate(row.invoice_file), work, self.s.outbox.completion == "marker")
        if row.reasons:
            self.j.transition(row.id, QUARANTINING, "claim finished after restart")
        else:
            self.j.transition(row.id, "delivering", "claim finished after restart")
        return True
