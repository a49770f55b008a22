"""What other daemons sharing the outbox quarantined today (`QuarantineNews`, at the start
and each rescan: docs/operations.md, Several daemons on one share), for the status page's
"Quarantined today": their journals are not this one, but their folders lie in the one
quarantine/ the clerks look at.

A look lists today's folder of quarantine/ (UTC) once; only a name not seen before has
its reason.json read, once (bounded, never through a link, never a FIFO or device), and
those reads are paced as sentnews.py paces its receipts: a turn's budget at a time
(`go_on`), so that a day folder a share user filled with 100,000 entries never holds the
loop for more than that budget. The entries this daemon's journal names are its own and
are not read. Of the others only what the page lists is kept whole: the latest `checked`
(the page's FINISHED_SHOWN), by when each was quarantined; of the rest, when, to count
them and to know which comes up when one of those goes. Of the entries kept, each look
lstats the invoice file, as the page does for its own: one moved back into the outbox by
hand is no longer listed. A quiet quarantine/ costs one listing a rescan, nothing opened
and nothing sorted; a refresh never looks.
"""

from __future__ import annotations

import bisect
import errno
import heapq
import json
import os
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from daemon.errors import InputError
from daemon.fs.fsops import FOLDER_NOFOLLOW, NOT_THE_FILES_FAULT, open_in
from daemon.fs.fsread import read_bounded
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
# An entry that cannot be opened for these is not there now, rather than none of outboxd's.
_NOT_THERE_NOW = NOT_THE_FILES_FAULT | {errno.ENOENT}


@dataclass(frozen=True)
class Elsewhere:
    """An entry of today's quarantine/ that another daemon filed, as the page lists it."""

    folder: str  # its name in today's folder, as on disk
    since: str  # when it was quarantined (reason.json), as the journal writes times
    bundle_id: str  # "" when its reason.json cannot be used
    invoice_file: str  # "" likewise
    reasons: tuple[str, ...]  # "FILE: MESSAGE" lines; none: see its REASON.txt


def _never_spent() -> bool:
    return False


class QuarantineNews:
    """Today's entries of quarantine/ that this daemon's journal does not name: the latest
    (`shown`, the latest first, those still there) and how many earlier ones there are
    (`more`, counted, never listed); `look` and `go_on` say whether these changed, for
    the page to be written. `pending`: names listed whose reason.json waits for `go_on`."""

    def __init__(self) -> None:
        self._where: tuple[Path, str] | None = None  # (quarantine/, today) known entries are of
        self._checked = 0
        self.shown: tuple[Elsewhere, ...] = ()
        self.more = 0
        self._afresh()

    def _afresh(self) -> None:
        self._listed: set[str] = set()  # every name of the last listing: ours, read or not
        self._ours: set[str] = set()
        self._queue: deque[str] = deque()  # listed, not read yet (and not ours)
        self._since: dict[str, str] = {}  # read: name → when quarantined
        # The latest `checked` of `_since`, as (since, name) in ascending order, each kept
        # whole with whether its invoice file was there when last looked at.
        self._top: list[tuple[str, str]] = []
        self._kept: dict[str, tuple[Elsewhere, bool]] = {}
        self._refill = False  # one of `_top` went: the next latest come up

    @property
    def pending(self) -> bool:
        return bool(self._queue)

    @property
    def day(self) -> str:
        """The UTC day (YYYY-MM-DD) whose folder `shown` and `more` are of; "" before the
        first look."""
        return self._where[1] if self._where is not None else ""

    def look(self, quarantine_dir: Path, own: Callable[[], Collection[str]], checked: int,
             now: datetime | None = None, spent: Callable[[], bool] = _never_spent) -> bool:
        """Look at today's folder; `own()`: the names there this daemon's journal has as
        quarantined (asked only when a name came); `checked`: how many the page lists,
        each looked at whether still there; `spent()`, asked after each reason.json read:
        the caller's budget is used up, the rest waits for `go_on` (without one, all are
        read now). True when `shown` or `more` changed."""
        at = now or datetime.now(UTC)
        day = at.astimezone(UTC).strftime("%Y-%m-%d")
        new_day = day != self.day
        if self._where != (quarantine_dir, day) or checked != self._checked:
            self._afresh()  # a new day, or a reload naming another quarantine/
            self._where, self._checked = (quarantine_dir, day), checked
        fd = self._day_folder()
        if fd == -1:
            return False  # cannot be listed (a share away): shown as last looked at
        try:
            names = _names(fd) if fd is not None else set()
            if names is None:
                return False
            gone = self._listed - names
            for name in gone:
                self._forget(name)  # gone (outboxd retry, or removed by hand)
            self._listed -= gone
            if fd is not None and (new := names - self._listed):
                self._listed |= new
                ours = set(own()) & self._listed  # a journal query only when something came
                self._queue.extend(n for n in new if n not in ours)
                # One of ours seen between its move into quarantine/ and its row's commit
                # (archiving runs off the loop) was taken for another's: never counted
                # twice once ours fall out of the page's rows.
                for name in ours - self._ours:
                    self._forget(name)
                self._ours |= ours
            # A new day is news though its list reads as the last one did (both empty):
            # the page keeps only the entries of its own today (`day`).
            return self._read_on(fd, spent, recheck=True) or new_day
        finally:
            if fd is not None:
                os.close(fd)

    def go_on(self, spent: Callable[[], bool] = _never_spent) -> bool:
        """Read the reason.json files the looks queued until `spent()` (asked after each,
        so at least one is read) or none is left; True when `shown` or `more` changed."""
        if not self._queue:
            return False
        fd = self._day_folder()
        if fd is None or fd == -1:
            # Gone, or cannot be opened: the next look lists them again (kept queued, the
            # loop would come back for them at once, turn after turn).
            self._listed -= set(self._queue)
            self._queue.clear()
            return False
        try:
            return self._read_on(fd, spent, recheck=False)
        finally:
            os.close(fd)

    def _day_folder(self) -> int | None:
        """Today's folder open; None when there is none, -1 when it cannot be opened."""
        assert self._where is not None
        quarantine_dir, day = self._where
        try:  # quarantine/ as configured (it may be a link), its day folder never one
            return os.open(quarantine_dir / day, FOLDER_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return None  # none yet (a link is no day folder of ours)
        except OSError:
            return -1

    def _forget(self, name: str) -> None:
        self._ours.discard(name)
        since = self._since.pop(name, None)
        if since is not None and self._kept.pop(name, None) is not None:
            del self._top[bisect.bisect_left(self._top, (since, name))]
            self._refill = True
        # One still queued is skipped when its turn comes (_read_on).

    def _read_on(self, fd: int | None, spent: Callable[[], bool], recheck: bool) -> bool:
        """Read queued entries within the budget, bring the latest up where one of them
        went, and (`recheck`: at a look) see whether each kept one is still there."""
        assert self._where is not None
        day = self._where[1]
        while fd is not None and self._queue:
            name = self._queue.popleft()
            if name not in self._listed or name in self._ours or name in self._since:
                continue  # gone or ours since it was queued
            entry = _entry(fd, name, day)
            if entry is None:
                # Gone since it was listed (or its share failed it): not recorded, and no
                # longer listed, so the next look reads it if it is back — recorded as a
                # folder without reasons, it was never read again, and, quarantined "at
                # midnight", counted among the earliest rather than shown.
                self._listed.discard(name)
            else:
                self._add(fd, entry)
            if spent():
                break
        if self._refill and fd is not None:
            self._refill = False
            # Of the rest, the latest come up (only when one of the latest went): the
            # only pass over every entry, and their reason.json read again.
            want = heapq.nlargest(self._checked - len(self._top),
                                  ((s, n) for n, s in self._since.items() if n not in self._kept))
            for _, name in want:
                came = _entry(fd, name, day)
                if came is None:  # gone since: as above, read again if it is back
                    self._forget(name)
                    self._listed.discard(name)
                    self._refill = True
                    continue
                self._since[name] = came.since
                self._top.append((came.since, name))
                self._kept[name] = (came, _still_there(fd, came))
            self._top.sort()
        if recheck and fd is not None:
            self._kept = {n: (e, _still_there(fd, e)) for n, (e, _) in self._kept.items()}
        shown = tuple(self._kept[n][0] for _, n in reversed(self._top) if self._kept[n][1])
        more = len(self._since) - len(self._top)
        changed = (shown, more) != (self.shown, self.more)
        self.shown, self.more = shown, more
        return changed

    def _add(self, fd: int, entry: Elsewhere) -> None:
        """A read entry: counted, and kept whole if among the latest."""
        key = (entry.since, entry.folder)
        self._since[entry.folder] = entry.since
        if len(self._top) < self._checked or key > self._top[0]:
            bisect.insort(self._top, key)
            self._kept[entry.folder] = (entry, _still_there(fd, entry))
            if len(self._top) > self._checked:
                _, out = self._top.pop(0)
                del self._kept[out]


def _names(fd: int) -> set[str] | None:
    """The entries of the day folder open at `fd` (not dot-names: a copy still being
    made), None when it cannot be listed."""
    try:
        with os.scandir(fd) as it:
            return {e.name for e in it
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)}
    except OSError:
        return None


def _entry(day_fd: int, name: str, day: str) -> Elsewhere | None:
    """What reason.json says of the entry `name` of the day folder open at `day_fd`;
    where it cannot be used (none, a link, not JSON, not outboxd's), the folder alone,
    quarantined at its day's start; None where the entry is not there now (gone, or the
    share's error: to be read when it is back). The entry is reached from the day folder,
    never through a link: one swapped in after the listing is not followed out of
    quarantine/."""
    fallback = Elsewhere(name, journal_time(None, f"{day}T00:00:00.000Z"), "", "", ())
    try:
        fd = os.open(name, FOLDER_NOFOLLOW, dir_fd=day_fd)
    except OSError as exc:
        return None if exc.errno in _NOT_THERE_NOW else fallback
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
    """Whether the entry's invoice file is in its folder (invoice_in_entry)."""
    return invoice_in_entry(day_fd, entry.folder, entry.invoice_file)


def invoice_in_entry(day_fd: int, folder: str, name: str) -> bool:
    """Whether the invoice file `name` is in the entry `folder` of the day folder open at
    `day_fd`: looked up from the day folder, never through a link, and only by a plain
    name (reason.json is anyone's to write: "../../etc/x" would ask whether a file exists
    outside quarantine/). Where it cannot be told, True: a bundle that still waits for a
    fix must not vanish from the page or `status`."""
    if not name or "/" in name or name in (".", ".."):
        return True
    try:
        fd = os.open(folder, FOLDER_NOFOLLOW, dir_fd=day_fd)
    except FileNotFoundError:
        return False  # the folder went since the listing
    except OSError:
        return True
    try:
        os.stat(name, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    except OSError:
        return True
    finally:
        os.close(fd)
    return True
