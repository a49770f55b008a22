"""The end of a claimed bundle on disk: archived in sent/ or quarantined, each
move (the papers written into the work folder, then one rename) retried on a
back-off of its own when it fails — a full disk, a share gone (or unmounted from
under sent/ or quarantine/: foldermounts.py), an immutable file — without posting
again or recording an outcome before its folder is there. A part of `Finisher` (a
mixin: it shares its journal, settings and the per-row state of the deliveries).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from daemon.archiving.archive import place, target_for
from daemon.archiving.archive_papers import reason_papers, reason_record, receipt_papers
from daemon.archiving.copyfound import numbers_beside
from daemon.archiving.reasontext import outcome_unknown
from daemon.bundle import Bundle, Finding, reasons_of
from daemon.claiming.claim import copy_tag
from daemon.configuration.config import Settings
from daemon.delivery.answers import web_page_warning
from daemon.delivery.backoff import backoff
from daemon.errors import describe
from daemon.fs.fsmove import PARTIAL, remove_made
from daemon.fs.fsops import FOLDER_NOFOLLOW
from daemon.fs.workfolder import link_inside
from daemon.journal import QUARANTINING, Journal, Row, iso_in, now_iso, parse_iso
from daemon.logs import bundle_log
from daemon.names import converted_folder, embedded_folder, stem
from daemon.watching.foldermounts import FolderMounts

# How a failed move's error begins (its row's last_error, after it where and why): the
# clerks' page tells each in plain words by these (report/clerkwords.py), as the
# admin's words name folders, owners, modes and commands a clerk cannot act on.
ARCHIVE_FAILED = "delivered (receipt {}), but cannot be archived in"
QUARANTINE_FAILED = "cannot be moved into quarantine"
# A claimed bundle whose work folder is gone (its share away, the folder moved by hand):
# nothing to send, nothing to quarantine until it is back (finish.py).
WORK_GONE = "the processing folder {} or the invoice file in it is not there"


class Moves:
    s: Settings
    j: Journal
    log: Any
    clock: Callable[[], float]
    mounts: FolderMounts  # sent/ and quarantine/ on the mounts they were on at the start
    # Moves that failed, per row: how many times in a row, and the monotonic time
    # before which it is not tried again.
    _move_faults: dict[int, tuple[int, float]]
    _validated: dict[int, Bundle]
    # Rows whose archive folder this run chose and journaled: no older version's copy can
    # lie under way into one of those (_drop_older_copy), so none is looked for.
    _chosen_here: set[int]

    def _work_present(self, row: Row) -> bool:
        """The work folder and its invoice file are there (else the share is away, or
        someone moved them). A link in the work folder's place, or in `.outboxd`'s or
        processing/'s inside the outbox, counts as there, whether or not it leads
        anywhere: the read or the move that follows refuses it and says so, rather than
        "is the share mounted?" for ever."""
        if row.work_dir is None:
            return False
        try:
            return link_inside(Path(row.work_dir), self.s.outbox.path) or \
                Path(row.work_dir, row.invoice_file).is_file()
        except OSError:
            return False

    def _move_wait(self, row_id: int) -> float | None:
        fault = self._move_faults.get(row_id)
        if fault is None:
            return None
        left = fault[1] - self.clock()
        return left if left > 0 else None

    def _move_failed(self, row: Row, error: str,
                     event: str = "bundle cannot be moved; will retry",
                     expected: bool = False) -> float:
        """Record why a move (or another write of ours) failed and when it is tried next;
        the row keeps its state (never sent or quarantined before the folder is there).
        `expected`: nothing went wrong (the daemon is stopping), logged at info."""
        failures = self._move_faults.get(row.id, (0, 0.0))[0] + 1
        cfg = self.s.delivery
        delay = max(cfg.retry_base_seconds, backoff(failures, cfg.retry_base_seconds,
                                                    cfg.retry_max_seconds, None))
        self._move_faults[row.id] = (failures, self.clock() + delay)
        fields: dict[str, Any] = {"last_error": error, "next_attempt_at": iso_in(delay)}
        if row.state in ("delivering", "retrying"):
            # With the event as the detail, also when the row was retrying already: after a
            # pause (finish.PAUSED) it now waits for this, and a restart must not take it
            # for a configuration problem and try it at once.
            self.j.transition(row.id, "retrying", event, **fields)
        else:
            self.j.update(row.id, **fields)
        log = bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids)
        (log.info if expected else log.error if failures == 1 else log.warning)(
            event, error=error, failures=failures,
            retry_in=round(delay, 3))
        return delay

    def _place(self, row: Row, root: Path, papers: dict[str, bytes], failure: str,
               at: str) -> Path | float:
        """Write the papers into the work folder and move it under root (in the day folder
        of `at`): the folder the bundle now lies in (papers and move on disk), or the
        delay before the move is tried again."""
        assert row.work_dir and row.bundle_id
        target = self._target(row, root, at)
        if (away := self.mounts.away(root)) is not None:
            # Its share unmounted: the bare mount point would take the entry unseen.
            return self._move_failed(row, f"{failure} {target}: {away}")
        work = Path(row.work_dir)
        if row.archive_dir and row.id not in self._chosen_here:
            self._drop_older_copy(row, target)
        try:
            target = place(work, target, papers, row.bundle_id,
                           copy_tag(self.s.paths.state_dir), self.s.outbox.path,
                           beside=lambda free: self._chose(row, free))
        except OSError as exc:
            return self._move_failed(row, f"{failure} {target}: {describe(exc, writing=True)}")
        self._move_faults.pop(row.id, None)
        self._validated.pop(row.id, None)
        self._chosen_here.discard(row.id)
        return target

    def archive_sent(self, row_id: int, row: Row | None = None) -> float | None:
        """Archive a delivered bundle in sent/; `row`: its row as just written, if known."""
        row = row or self.j.get(row_id)
        assert row.bundle_id and row.response
        self.j.make_durable()  # the receipt and the archive folder, before the move
        response = row.response
        # Sent since its delivery, which names its day folder: a bundle delivered just
        # before midnight and archived after it is yesterday's, in sent/ and in the
        # views' "sent today" alike.
        delivered_at = response.get("delivered_at") or now_iso()
        placed = self._place(row, self.s.sent_dir, receipt_papers(response),
                             ARCHIVE_FAILED.format(row.receipt_id),
                             delivered_at)
        if not isinstance(placed, Path):
            return placed
        self.j.transition(row_id, "sent", durable=False, since=delivered_at,
                          archive_dir=str(placed),
                          last_error=None,  # a failed move before this one is over
                          response=sent_record(response))
        # The manifest's warnings go with this one line, at warning level: one log
        # record per bundle sent, also when only the archive was left after a restart.
        warnings = (response.get("manifest") or {}).get("warnings") or []
        # A 2xx that was a web page (a portal's, a maintenance page) is sent, as the
        # protocol says; the admin hears that it was not the operator's kind of answer.
        page = web_page_warning(response.get("response") or {})
        extra = {**({"warnings": warnings} if warnings else {}),
                 **({"answer": page} if page else {})}
        log = bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids)
        (log.warning if extra else log.info)(
            "bundle sent", receipt_id=row.receipt_id, attempts=response.get("attempts"),
            archive=str(placed), **extra)
        return None

    def quarantine(self, row_id: int, reasons: list[Finding]) -> float | None:
        """Quarantine a claimed bundle; None when done, else the delay before the move is
        tried again (the row stays `quarantining` with last_error meanwhile)."""
        first = self.j.get(row_id).state != QUARANTINING
        cleared: dict[str, Any] = {"last_error": None} if first else {}
        self.j.transition(row_id, QUARANTINING, reasons=reasons_of(reasons), **cleared)
        row = self.j.get(row_id)
        assert row.bundle_id
        # Seconds, as reason.json always had them; from the journal, so that a retried
        # move writes the very same papers (see archive_papers.reason_record).
        at = parse_iso(row.since).strftime("%Y-%m-%dT%H:%M:%SZ")
        # ubl-embedded: documents the receiver already took are delivered, whatever
        # became of the rest; the papers name them (and their receipts), or the clerk
        # may send them again. From the journal, where each was recorded before the
        # next POST, so a retried move writes the same papers.
        accepted = list(self.j.documents_of(row_id).values())
        record = reason_record(row.bundle_id, row.invoice_file, reasons, at, accepted,
                               invoice_ids=row.invoice_ids,
                               converted=self._converted_in(row),
                               embedded=self._embedded_in(row),
                               outcome_unknown=outcome_unknown(row.attempts, reasons))
        placed = self._place(row, self.s.quarantine_dir, reason_papers(record),
                             QUARANTINE_FAILED, row.since)
        if not isinstance(placed, Path):
            return placed
        # Quarantined since it was decided (reason.json's quarantined_at, its folder's day),
        # not since a move that had to be retried; a failed move before this one is over
        # (its error kept, `status` showed it beside a bundle lying in quarantine/).
        self.j.transition(row_id, "quarantined", durable=False, since=row.since,
                          archive_dir=str(placed), last_error=None)
        bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids).warning(
            "bundle quarantined", reasons=[r.line() for r in reasons], archive=str(placed))
        return None

    def _converted_in(self, row: Row) -> str | None:
        """The folder of PDFs made of the bundle's images (convert_images) that its work
        folder holds beside the sidecar, which goes into quarantine with it; None when
        there is none (nothing converted, or quarantined before the delivery made it).
        Also where a move before a crash took it: the papers written again must say the
        same."""
        return self._folder_in(row, converted_folder(stem(row.invoice_file)
                                                     + self.s.outbox.sidecar_suffix))

    def _embedded_in(self, row: Row) -> str | None:
        """The folder of documents ubl-embedded kept before posting them (NAME.embedded/,
        einvoice/transport.keep) that goes into quarantine with the bundle, as
        _converted_in: named like the invoice file, REASON.txt's "move the folder named
        like the invoice file back" sent clerks to put it into the outbox, where it is
        never sent and waits for an invoice file of its name for good."""
        return self._folder_in(row, embedded_folder(
            row.invoice_file, stem(row.invoice_file) + self.s.outbox.sidecar_suffix))

    def _folder_in(self, row: Row, name: str) -> str | None:
        """`name` when the work folder (or the archive entry a move before a crash made)
        holds a folder of that name; else None."""
        for folder in (row.work_dir, row.archive_dir):
            try:
                found = os.lstat(Path(folder) / name) if folder else None
            except OSError:
                continue
            if found is not None and stat.S_ISDIR(found.st_mode):
                return name
        return None

    def _drop_older_copy(self, row: Row, target: Path) -> None:
        """Remove the copies under way into `target`, the archive folder journaled for this
        row, that a version before the per-daemon copy names left (`.NAME.partial`, and
        `.NAME-2.partial` … where NAME was taken: _older_copies): it was this journal's
        daemon's, killed mid-copy before an upgrade. That version replaced it at its next
        try; this one's copy has another name and would leave it for good, a whole
        bundle's bytes hidden in the archive. Only for a folder an earlier run journaled:
        into one this run chose no older version of this journal's daemon ever copied, and
        such a name there is another daemon's copy under way (its stats and paths were
        also ~70 µs of every archive)."""
        log = bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids)
        # Looked for and removed in the day folder held, never through a link: anyone on the
        # share may put one in its place, and a file of that name wherever it led was removed.
        try:
            day = os.open(target.parent, FOLDER_NOFOLLOW)
        except OSError:
            return  # no day folder (or a link in its place, which the move refuses, naming it)
        try:
            for older in _older_copies(day, target):
                try:
                    remove_made(day, older.name)
                except OSError as exc:
                    # The archive goes on; the leftover is litter only, said so.
                    log.warning("cannot remove the copy an older outboxd left under way; "
                                "remove it by hand", partial=str(older),
                                error=describe(exc, writing=True))
                    continue
                log.info("removed the copy an older outboxd left under way",
                         partial=str(older))
        finally:
            os.close(day)

    def _chose(self, row: Row, beside: Path) -> None:
        """The name beside the journaled one that the bundle is moved to (that one taken
        by someone else's entry, or a link), journaled before the move as the first was:
        after a crash the retry looks there. Looking at the name taken instead, it found
        its own copy (another file system, killed before the source's removal) under no
        name it looked at and archived the bundle a second time, or (renamed) reported
        the bundle archived in the other entry, or not there at all."""
        self._chosen_here.add(row.id)
        self.j.update(row.id, archive_dir=str(beside))

    def _target(self, row: Row, root: Path, at: str) -> Path:
        """The archive folder, chosen once and journaled before the move."""
        if row.archive_dir:
            return Path(row.archive_dir)
        assert row.bundle_id
        target = target_for(root, stem(row.invoice_file), row.bundle_id, at)
        self._chosen_here.add(row.id)
        self.j.update(row.id, archive_dir=str(target))
        return target


def sent_record(receipt: dict[str, Any]) -> dict[str, Any]:
    """What the journal keeps of a receipt once its entry is in sent/: the receiver's
    answer (`outboxd status` looks at it for a web page in place of the operator's
    answer). The rest, the manifest above all, is in the entry's receipt.json, the
    lasting record, and is never read from the journal again: kept there too it was half
    of every sent row (1.5 KB of 2.5 KB a bundle, a year of 400 bundles a day 150 MB)."""
    return {"response": receipt.get("response")}


def _older_copies(day: int, target: Path) -> Iterator[Path]:
    """Those of the copies a version before the per-daemon copy names made under way into
    `target` that lie in its day folder (open at `day`): `.NAME.partial`; where NAME was
    taken by another entry, `.NAME-N.partial` for the NAME-N it chose, the first free
    then (archive.move_into_place, fswrite.free_name). Every such N found in one listing,
    as copy_beside finds the entries beside: looked at name by name up to the first
    NAME-N free now, an entry between removed since the copy was made (NAME-2 gone, the
    copy under way into NAME-3) hid it. That version never cut such a name (its entry
    names leave room for `.` and `.partial`), so each is `.NAME-N.partial` as it is."""
    under_way = [n[1:-len(PARTIAL)] for n in os.listdir(day)
                 if n.startswith(".") and n.endswith(PARTIAL)]
    if target.name in under_way:
        yield target.with_name(f".{target.name}{PARTIAL}")
    for n in numbers_beside(under_way, target.name):
        yield target.with_name(f".{target.name}-{n}{PARTIAL}")
