"""What other daemons sharing the outbox quarantined today (`QuarantineNews`, at the start
and each rescan: docs/operations.md, Several daemons on one share), for the status page's
"Quarantined today": their journals are not this one, but their folders lie in the one
quarantine/ the clerks look at.

A look lists today's folder of quarantine/ (UTC) once; only a name not seen before has
its reason.json read, once (bounded, never through a link, never a FIFO or device). The
entries this daemon's journal names are its own and are not read. Of the entries shown
(the latest `checked`: the page's FINISHED_SHOWN), each look lstats the invoice file, as
the page does for its own: one moved back into the outbox by hand is no longer listed.
A quiet quarantine/ costs one listing a rescan, nothing opened; a refresh never looks.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from daemon.errors import InputError
from daemon.fs.fsops import FOLDER_NOFOLLOW, open_in, read_bounded
from daemon.journal import journal_time
from daemon.names import printable

# A reason.json outboxd writes holds a reason a file, a few hundred bytes each: one over
# this is none of ours, and the page shows its folder without reasons.
REASON_LIMIT = 1 << 20
# What is kept of one, for the page: anyone on the share may write a reason.json, and a
# megabyte of reasons each, kept whole, made the clerks' page tens of MB, rewritten every
# few minutes and reloaded every 10 s. Outboxd's own hold a line or two a file of a
# bundle, each a name and a sentence; the rest is in the entry's REASON.txt.
REASONS_KEPT = 20
REASON_CHARS = 400
ID_CHARS = 64  # a bundle id: 64 hex digits
NAME_CHARS = 1024  # an invoice file's name, 255 bytes, control characters shown as \xNN


@dataclass(frozen=True)
class Elsewhere:
    """An entry of today's quarantine/ that another daemon filed, as the page lists it."""

    folder: str  # its name in today's folder, as on disk
    since: str  # when it was quarantined (reason.json), as the journal writes times
    bundle_id: str  # "" when its reason.json cannot be used
    invoice_file: str  # "" likewise
    reasons: tuple[str, ...]  # "FILE: MESSAGE" lines; none: see its REASON.txt


class QuarantineNews:
    """Today's entries of quarantine/ that this daemon's journal does not name (`shown`,
    the latest first); `look` says whether they changed, for the page to be written."""

    def __init__(self) -> None:
        self._where: tuple[Path, str] | None = None  # (quarantine/, today) known entries are of
        self._known: dict[str, Elsewhere | None] = {}  # name → entry; None: our own
        self.shown: tuple[Elsewhere, ...] = ()

    def look(self, quarantine_dir: Path, own: Callable[[], Collection[str]], checked: int,
             now: datetime | None = None) -> bool:
        """Look at today's folder; `own()`: the names there this daemon's journal has as
        quarantined (asked only when a name came); `checked`: of the latest this many,
        whether each is still there. True when what `shown` holds changed."""
        at = now or datetime.now(UTC)
        day = at.astimezone(UTC).strftime("%Y-%m-%d")
        if self._where != (quarantine_dir, day):  # a new day, or a reload naming another
            self._where, self._known = (quarantine_dir, day), {}
        try:  # quarantine/ as configured (it may be a link), its day folder never one
            fd = os.open(quarantine_dir / day, FOLDER_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            fd = None  # none yet (a link is no day folder of ours)
        except OSError:
            return False  # cannot be listed (a share away): shown as last looked at
        try:
            names = _names(fd) if fd is not None else set()
            if names is None:
                return False
            for name in set(self._known) - names:
                del self._known[name]  # gone (outboxd retry, or removed by hand)
            if fd is not None and (new := names - set(self._known)):
                ours = own()  # a journal query only when something came
                for name in new:
                    self._known[name] = None if name in ours else _entry(fd, name, day)
                # One of ours seen between its move into quarantine/ and its row's commit
                # (archiving runs off the loop) was taken for another's: never counted
                # twice once ours fall out of the page's rows.
                for name in ours & self._known.keys():
                    self._known[name] = None
            entries = sorted((e for e in self._known.values() if e is not None),
                             key=lambda e: (e.since, e.folder), reverse=True)
            # Moved back into the outbox by hand: the invoice file left its folder (one
            # lstat each, of the latest `checked` only; those before are counted as they
            # are).
            kept = tuple(e for e in entries[:checked] if fd is None or _still_there(fd, e)) \
                + tuple(entries[checked:])
        finally:
            if fd is not None:
                os.close(fd)
        changed = kept != self.shown
        self.shown = kept
        return changed


def _names(fd: int) -> set[str] | None:
    """The entries of the day folder open at `fd` (not dot-names: a copy still being
    made), None when it cannot be listed."""
    try:
        with os.scandir(fd) as it:
            return {e.name for e in it
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)}
    except OSError:
        return None


def _entry(day_fd: int, name: str, day: str) -> Elsewhere:
    """What reason.json says of the entry `name` of the day folder open at `day_fd`;
    where it cannot be used (none, a link, not JSON, not outboxd's), the folder alone,
    quarantined at its day's start. The entry is reached from the day folder, never
    through a link: one swapped in after the listing is not followed out of quarantine/.
    """
    fallback = Elsewhere(name, journal_time(None, f"{day}T00:00:00.000Z"), "", "", ())
    try:
        fd = os.open(name, FOLDER_NOFOLLOW, dir_fd=day_fd)
    except OSError:
        return fallback
    try:
        with open_in(fd, "reason.json", f"{name}/reason.json") as fh:
            data = read_bounded(fh, REASON_LIMIT)
        if data is None:
            return fallback
        reason = json.loads(data)
        listed = reason["reasons"]
        reasons = tuple(_cut(printable(f"{r['file']}: {r['message']}"), REASON_CHARS)
                        for r in listed[:REASONS_KEPT])
        if len(listed) > REASONS_KEPT:
            reasons += (f"… and {len(listed) - REASONS_KEPT} more: see its REASON.txt",)
        bundle_id, invoice = printable(str(reason["bundle_id"])), printable(
            str(reason["invoice_file"]))
        return Elsewhere(name, journal_time(reason.get("quarantined_at"), fallback.since),
                         bundle_id if len(bundle_id) <= ID_CHARS else "",
                         invoice if len(invoice) <= NAME_CHARS else "", reasons)
    except (OSError, InputError, ValueError, RecursionError, KeyError, TypeError,
            AttributeError):
        return fallback
    finally:
        os.close(fd)


def _cut(line: str, chars: int) -> str:
    return line if len(line) <= chars else line[:chars - 1] + "…"


def _still_there(day_fd: int, entry: Elsewhere) -> bool:
    """Whether the entry's invoice file is in its folder: looked up from the day folder,
    never through a link, and only by a plain name (reason.json is anyone's to write:
    "../../etc/x" would ask the page whether a file exists outside quarantine/)."""
    name = entry.invoice_file
    if not name or "/" in name or name in (".", ".."):
        return True
    try:
        fd = os.open(entry.folder, FOLDER_NOFOLLOW, dir_fd=day_fd)
    except FileNotFoundError:
        return False  # the folder went since the listing
    except OSError:
        return True  # cannot tell: a bundle that still waits for a fix must not vanish
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
    return True
