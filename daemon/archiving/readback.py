"""Read sent/ back into the journal: whole into a fresh one (the journal is a working
record, sent/ the lasting one: docs/operations.md, Backup); one entry's receipt as the
journal keeps it (`receipt_record`, also for what other daemons archived there:
sentnews.py).

A journal that was lost (deleted, or moved away after corruption) must cost
no second sending: before anything is sent, the bundle ids of the receipts in
SENT/YYYY-MM-DD/*/receipt.json of the last `duplicate_window_days` are
recorded as sent, so an identical bundle dropped again is a duplicate. One
pass over the date folders, and only when the journal holds no row at all.

sent/ is visible to the people on the share: receipt.json is read through
fsread.read_regular, so a FIFO, link or device of that name is never opened
(opening a FIFO would block the start before READY, where no signal handler
can end it) — it is logged and counted as an entry without a receipt.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.archiving.dayfolder import day_start, days_in_window
from daemon.archiving.quarantineback import quarantine_records
from daemon.delivery.answer_json import no_lone_surrogates
from daemon.delivery.answers import kept_receipt_id
from daemon.errors import ConfigError, InputError, describe
from daemon.fs.fsops import FOLDER_NOFOLLOW
from daemon.fs.fsread import read_regular
from daemon.fs.workfolder import entry_at
from daemon.journal import Journal, journal_time
from daemon.report.notify import StartProgress


def record_of(folder: Path, day: str | None = None,
              at: int | None = None) -> dict[str, Any] | None:
    """What the journal needs from one archive entry; None if it has no receipt.json or
    one that is not a usable receipt (cut short, not JSON, unreadable, over 32 MiB; one
    that cannot be read is logged here).

    `day`: the date of the sent/ folder the entry lies in. A delivery time that cannot
    be read is taken as that day's start, which is the day the entry was filed under,
    rather than now: otherwise a journal read back would count an old bundle as
    "sent today". Without a day (or one that is no date), now.

    Raises InputError (HostileInput for a FIFO, socket, device or link) when
    receipt.json is there but is not a regular file that can be read: it is never
    opened, and each caller decides what such an entry means to it.
    `at`: `folder` held open, its receipt.json read from it (errors still name `folder`).
    """
    rec = receipt_record(folder, day, at)
    if isinstance(rec, Unreadable):
        logs.get().warning("receipt.json cannot be read; its bundle is not known as sent "
                           "until it can be", file=str(folder / "receipt.json"),
                           error=str(rec))
    return rec if isinstance(rec, dict) else None


NO_RECEIPT = "it holds no receipt.json"


class Unreadable(str):
    """What receipt_record says of a receipt.json there that could not be read (EIO,
    permissions): not the file's fault, so worth reading again."""


# The values (objects, arrays and their items) a receipt.json may hold. Anyone who may
# write in sent/ can put one there: 32 MiB of `{},` parsed took 870 MB in the daemon's
# own process (and at start, before READY, for each such entry). At this bound a
# parse costs about 40 MB, 110 MB with the 32 MiB in long strings; a receipt of 50,000
# attachments still fits.
MAX_RECEIPT_VALUES = 1 << 19


def _values_at_least(data: bytes) -> int:
    """At least the values in the JSON text `data` (a count of the bytes that begin or
    part them; those inside strings counted too, so never fewer)."""
    return data.count(b",") + data.count(b"{") + data.count(b"[")


def receipt_record(folder: Path, day: str | None = None,
                   at: int | None = None) -> dict[str, Any] | str:
    """record_of's record, or what is wrong with the entry's receipt (a str, said to
    the admin; an `Unreadable` when reading it failed). Raises as record_of."""
    path = folder / "receipt.json"
    try:
        if not entry_at(path, at):
            return NO_RECEIPT
    except OSError as exc:
        # A share's EIO or stale handle as it was looked for: read again, never taken for
        # an entry without a receipt (its bundle then not known as sent, and said so).
        return Unreadable(f"its receipt.json cannot be looked at ({exc})")
    try:
        # No paper limit: a receipt keeps the receiver's whole answer and the manifest
        # of every attachment, and one read back as "none" would let the bundle be sent
        # again (read_regular's own bound still stops a file of any size).
        data = read_regular(path, str(path), at=at)
    except OSError as exc:
        return Unreadable(f"its receipt.json cannot be read ({exc})")
    if data is None:
        return "its receipt.json is over 32 MiB, more than any receipt outboxd writes"
    if _values_at_least(data) > MAX_RECEIPT_VALUES:
        return (f"its receipt.json holds over {MAX_RECEIPT_VALUES} values, more than any "
                "receipt outboxd writes")
    try:
        receipt = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser goes
        return ("its receipt.json is not JSON (empty or cut short: written when its "
                "host crashed?)" if data.strip() else "its receipt.json is empty")
    try:
        manifest = receipt["manifest"]
        invoice = manifest["invoice_file"]
        # Each value as the journal can store it: a receipt made or edited by hand (sent/
        # is on the share) may hold a lone surrogate escape, an object where outboxd
        # writes text, or sit in a folder whose name is not UTF-8; raised out of the look,
        # such a value stopped the daemon (and each start after).
        return {"bundle_id": _kept(manifest["bundle_id"]),
                "invoice_file": _kept(invoice.get("original_name") or invoice["name"]),
                "invoice_ids": [_kept(i["id"]) for i in manifest.get("invoices", [])],
                "archive_dir": _kept(os.fsencode(folder).decode("utf-8", "replace")),
                "receipt_id": kept_receipt_id(receipt.get("response")),
                "delivered_at": journal_time(receipt.get("delivered_at"),
                                             day_start(day) if day else None)}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return ("its receipt.json is not a receipt outboxd writes (no manifest with a "
                "bundle_id and an invoice_file)")


def _kept(value: object) -> str:
    return no_lone_surrogates(str(value))


def _entry_record(folder: Path, day: str, day_fd: int) -> dict[str, Any] | None:
    """record_of an entry of sent/ (of the day folder open at `day_fd`), read from the
    entry held open; None, logged, for a receipt.json that is no regular file or an entry
    that is no folder by now (a link swapped in since the listing)."""
    try:
        at = os.open(folder.name, FOLDER_NOFOLLOW, dir_fd=day_fd)
    except FileNotFoundError:
        return None  # gone since the listing: an entry without a receipt, as before
    except OSError as exc:
        logs.get().warning(
            "entry in sent/ not read back: it cannot be opened as a folder (a link put in "
            "its place is never followed) — put the entry's folder itself back; until then "
            "that bundle dropped again is not seen as sent", folder=str(folder),
            error=describe(exc))
        return None
    try:
        return record_of(folder, day, at)
    except InputError as exc:
        # Not opened, so the daemon goes on; the entry counts as one without a receipt
        # (its bundle id stays unknown to the journal).
        logs.get().warning(
            "receipt in sent/ not read back: it is not a regular file that can be read — "
            "put the entry's real receipt.json there or remove this one; until then that "
            "bundle dropped again is not seen as sent",
            file=exc.file, error=exc.message, code=exc.code)
        return None
    finally:
        os.close(at)


def sent_records(sent_dir: Path, window_days: int,
                 progress: Callable[[str], None] = lambda day: None,
                 ) -> tuple[list[dict[str, Any]], int]:
    """Records for every receipt in the window (days_in_window), and how many entries had
    none usable; `progress(day)` after each day folder.

    Each day folder, and each entry in it, is opened from the one above without following
    a link (as quarantineback reads quarantine/): a share user who swaps a day folder for
    a link to a folder of their own after the listing would otherwise have its receipts
    read back, and a real invoice refused as a duplicate of a bundle never sent."""
    try:
        days = days_in_window(sent_dir, window_days)
    except OSError as exc:
        # Nothing may be sent before sent/ is read back: the start stops, saying why
        # (a share away, permissions), and its supervisor tries again.
        raise ConfigError(f"[paths] sent = {str(sent_dir)!r} cannot be listed to read back "
                          f"what was sent into the new journal ({exc.strerror or exc}) — "
                          "mount its share or fix its permissions; nothing is sent "
                          "before it is read") from None
    records: list[dict[str, Any]] = []
    unusable = 0
    for day in days:
        try:
            fd = os.open(sent_dir / day, FOLDER_NOFOLLOW)
        except OSError as exc:
            _unreadable_day(sent_dir / day, exc)
            continue
        try:
            with os.scandir(fd) as it:
                names = [e.name for e in it if not e.name.startswith(".")
                         and e.is_dir(follow_symlinks=False)]  # not a .partial copy, litter
            for name in names:
                rec = _entry_record(sent_dir / day / name, day, fd)
                if rec is None:
                    unusable += 1
                else:
                    records.append(rec)
        except OSError as exc:
            # Permissions changed by hand, a share's hiccup (at the open or in the middle
            # of the listing): the start goes on (nothing is sent before this pass ends),
            # and the day's bundles not read are not known as sent.
            _unreadable_day(sent_dir / day, exc)
            continue
        finally:
            os.close(fd)
        progress(day)
    return records, unusable


def _unreadable_day(folder: Path, exc: OSError) -> None:
    """A day folder that cannot be opened (a link by now too) or listed: said, and the
    others read on."""
    logs.get().warning("a day folder in sent/ cannot be read; its receipts are not "
                       "read back — fix its permissions, then restart to read it",
                       folder=str(folder), error=describe(exc))


def restore_sent(journal: Journal, sent_dir: Path, window_days: int,
                 quarantine_dir: Path | None = None) -> int:
    """On an empty journal, record what sent/ holds (and, given `quarantine_dir`, the
    bundles waiting in quarantine/: quarantineback.py); the number of bundles read back
    from sent/."""
    if not journal.is_empty():
        return 0
    records, unusable = sent_records(
        sent_dir, window_days, StartProgress("reading sent/ back into a new journal"))
    quarantined, passed = quarantine_records(
        quarantine_dir, window_days, StartProgress("reading quarantine/ back into a new "
                                                   "journal")) if quarantine_dir else ([], 0)
    if records or quarantined:
        journal.import_sent(records, quarantined=quarantined)
    log = logs.get()
    if records or unusable:
        log.warning("new journal: bundle ids read back from sent/ receipts", bundles=len(records),
                    without_receipt=unusable, window_days=window_days, sent=str(sent_dir))
    if quarantined or passed:
        log.warning("new journal: bundles still waiting in quarantine/ read back as "
                    "quarantined", bundles=len(quarantined), passed_over=passed,
                    window_days=window_days, quarantine=str(quarantine_dir))
    return len(records)
