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
from daemon.fs.fsops import read_regular
from daemon.journal import journal_time
from daemon.names import printable

# A reason.json outboxd writes holds a reason a file, a few hundred bytes each: one over
# this is none of ours, and the page shows its folder without reasons.
REASON_LIMIT = 1 << 20


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
        folder = quarantine_dir / day
        names = _names(folder)
        if names is None:  # cannot be listed (a share away): shown as last looked at
            return False
        for name in set(self._known) - names:
            del self._known[name]  # gone (outboxd retry, or removed by hand)
        if new := names - set(self._known):
            ours = own()  # a journal query only when something came
            for name in new:
                self._known[name] = None if name in ours else _entry(folder / name, day)
        entries = sorted((e for e in self._known.values() if e is not None),
                         key=lambda e: (e.since, e.folder), reverse=True)
        # Moved back into the outbox by hand: the invoice file left its folder (one lstat
        # each, of the latest `checked` only; those before are counted as they are).
        kept = tuple(e for e in entries[:checked] if _still_there(folder, e)) \
            + tuple(entries[checked:])
        changed = kept != self.shown
        self.shown = kept
        return changed


def _names(folder: Path) -> set[str] | None:
    """The entries of a day folder (not dot-names: a copy still being made); empty when
    there is none yet, None when it cannot be listed. Never through a link."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return set()
    except OSError:
        return None
    try:
        with os.scandir(fd) as it:
            return {e.name for e in it
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)}
    except OSError:
        return None
    finally:
        os.close(fd)


def _entry(folder: Path, day: str) -> Elsewhere:
    """What reason.json says of an entry; where it cannot be used (none, a link, not
    JSON, not outboxd's), the folder alone, quarantined at its day's start."""
    fallback = Elsewhere(folder.name, journal_time(None, f"{day}T00:00:00.000Z"), "", "", ())
    try:
        data = read_regular(folder / "reason.json", str(folder / "reason.json"),
                            REASON_LIMIT)
        if data is None:
            return fallback
        reason = json.loads(data)
        reasons = tuple(printable(f"{r['file']}: {r['message']}") for r in reason["reasons"])
        return Elsewhere(folder.name, journal_time(reason.get("quarantined_at"),
                                                   fallback.since),
                         printable(str(reason["bundle_id"])),
                         printable(str(reason["invoice_file"])), reasons)
    except (OSError, InputError, ValueError, RecursionError, KeyError, TypeError,
            AttributeError):
        return fallback


def _still_there(folder: Path, entry: Elsewhere) -> bool:
    if not entry.invoice_file:
        return True
    try:
        os.lstat(folder / entry.folder / entry.invoice_file)
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell: a bundle that still waits for a fix must not vanish
    return True
