"""Read quarantine/ back into a fresh journal, beside sent/ (readback.restore_sent): a
journal lost (deleted, or moved away after corruption) must not make `outboxd status` and
the status page call the bundles waiting in quarantine/ for a fix none (docs/operations.md,
Backup).

Only entries outboxd made, told as the orphan sweep tells its own papers from a share
user's: a folder QUARANTINE/YYYY-MM-DD/NAME--ID12[-N] (no link, no dot-name), its
reason.json a regular file that names a bundle whose id begins with that ID12 and an
invoice file by a plain name (papers.paper_of). And only while the bundle is still
there: an entry whose invoice file a clerk moved back into the outbox to send it again is
not recorded (quarantinenews.invoice_in_entry, as the page looks). Within the same
window of day folders as sent/.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.archiving.dayfolder import day_start, days_in_window
from daemon.archiving.kept import entry_reason
from daemon.archiving.papers import entry_bundle, paper_of
from daemon.archiving.quarantinenews import invoice_in_entry
from daemon.delivery.answer_json import no_lone_surrogates
from daemon.errors import InputError, describe
from daemon.fs.fsops import FOLDER_NOFOLLOW
from daemon.journal import journal_time


def quarantine_records(quarantine_dir: Path, window_days: int,
                       progress: Callable[[str], None] = lambda day: None,
                       ) -> tuple[list[dict[str, Any]], int]:
    """Records (as Journal.import_sent takes them for quarantined rows) of the entries of
    quarantine/ outboxd made whose bundle is still there, and how many entries were
    passed over (not outboxd's, or its bundle moved back). A quarantine/ that cannot be
    read is logged and read as empty: nothing is sent twice for it, and the start goes on."""
    try:
        days = days_in_window(quarantine_dir, window_days)
    except OSError as exc:
        logs.get().warning("quarantine/ cannot be listed; the bundles there are not read "
                           "back into the new journal (status does not show them) — fix "
                           "its permissions or mount its share, then restart",
                           folder=str(quarantine_dir), error=describe(exc))
        return [], 0
    records: list[dict[str, Any]] = []
    passed = 0
    for day in days:
        try:
            fd = os.open(quarantine_dir / day, FOLDER_NOFOLLOW)
        except OSError as exc:
            _unreadable_day(quarantine_dir / day, exc)
            continue
        try:
            with os.scandir(fd) as it:
                names = sorted(e.name for e in it if not e.name.startswith(".")
                               and e.is_dir(follow_symlinks=False))
            for name in names:
                rec = _record(quarantine_dir / day / name, fd, day)
                if rec is None:
                    passed += 1
                else:
                    records.append(rec)
        except OSError as exc:
            _unreadable_day(quarantine_dir / day, exc)
        finally:
            os.close(fd)
        progress(day)
    return records, passed


def _unreadable_day(folder: Path, exc: OSError) -> None:
    """A day folder that cannot be opened or listed: said, and the others read on."""
    logs.get().warning("a day folder in quarantine/ cannot be read; its bundles are not "
                       "read back — fix its permissions, then restart",
                       folder=str(folder), error=describe(exc))


def _record(entry: Path, day_fd: int, day: str) -> dict[str, Any] | None:
    """The quarantined row of one entry, or None where it is not outboxd's or its bundle
    is no longer there."""
    try:
        reason = entry_reason(entry)
    except (OSError, InputError, ValueError, RecursionError):
        return None  # a link, a FIFO, not JSON: no paper of ours
    if reason is None or not paper_of(entry_bundle(entry.name), reason):
        return None
    invoice_file = reason["invoice_file"]
    if not invoice_in_entry(day_fd, entry.name, invoice_file):
        return None  # moved back into the outbox (or removed): no longer quarantined
    ids, reasons = reason.get("invoice_ids"), reason.get("reasons")
    # Each value as the journal can store it (a reason.json edited by hand may hold a lone
    # surrogate escape); reasons as written, one a hand edited read as
    # `unreadable-reasons` (records.decoded).
    return {"bundle_id": no_lone_surrogates(reason["bundle_id"]),
            "invoice_file": no_lone_surrogates(invoice_file),
            "invoice_ids": [no_lone_surrogates(i) for i in ids if isinstance(i, str)]
            if isinstance(ids, list) else [],
            "reasons": json.loads(no_lone_surrogates(json.dumps(
                reasons if isinstance(reasons, list) else [], ensure_ascii=False))),
            "archive_dir": os.fsencode(entry).decode("utf-8", "replace"),
            "since": journal_time(reason.get("quarantined_at"), day_start(day))}
