"""What other daemons sharing the outbox archived in sent/ since the last look, recorded
in this journal as sent (`SentNews`, at the start and each rescan: docs/operations.md,
Several daemons on one share).

The loop's share of a look is bounded: the listing queues the names not known, and their
receipts are read a turn's budget at a time (`go_on`), so that a busy shared sent/ (tens
of thousands of entries another daemon filed while this one was down) never holds the
loop — fresh bundles, the systemd watchdog's keep-alive — for more than that budget.
"""

from __future__ import annotations

import errno
import os
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.archiving.readback import NO_RECEIPT, Unreadable, receipt_record
from daemon.errors import InputError, JournalError, describe
from daemon.fs.fsops import FOLDER_NOFOLLOW
from daemon.journal import NEWS_DETAIL, Journal
from daemon.journal.records import iso_of

# What another daemon archived lies in the day folder of its delivery (UTC, by its own
# clock): yesterday's (delivered before midnight, looked at after it, or a clock a little
# behind), today's, and tomorrow's (a clock a little ahead). Older ones are not looked at.
NEWS_DAYS = (-1, 0, 1)
# A day's first look knows the journal's rows delivered from two days before it; later
# looks those delivered since a little before the last look (a move into sent/ that
# took longer costs one read of its receipt, which the journal then finds sent).
_SEED = timedelta(days=2)
_SINCE_LAST = timedelta(minutes=10)
# An entry's folder name ends in the first 12 hex digits of its bundle id (archive.target_for,
# "-2", "-3" … when the name was taken).
_ID12 = re.compile(r".*--([0-9a-f]{12})(?:-[0-9]+)?", re.DOTALL)
UNUSABLE = ("receipt in sent/ not usable, so this daemon does not know the entry's bundle "
            "as sent and would send it again if it were dropped here — if the daemon that "
            "archived it runs (or starts) again it writes the receipt anew, which is then "
            "read; else put the entry's own receipt.json back (from a backup), or move the "
            "folder out of sent/ if it is no delivered bundle")
# What a listed entry that was not there when opened is remembered as, at first (_not_there).
_LISTED_ONLY = object()
NOT_THERE = ("an entry of sent/ is listed but cannot be opened, so this daemon does not "
             "know the entry's bundle as sent and would send it again if it were dropped "
             "here; opened again once its receipt.json can be seen, or once it leaves the "
             "listing and comes back")
NOT_THERE_FIX = ("a share's stale listing (its directory cache) passes by itself; if it "
                 "stays, remount the share, or look for the entry on the file server")


def _receipt_seen(folder: Path) -> object:
    """An entry's receipt.json as its lstat shows it, to tell when it changed: None when
    there is none; one that cannot be looked at is always new."""
    try:
        st = os.lstat(folder / "receipt.json")
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return object()
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_mode


def _held_entry(day_folder: Path, name: str) -> int:
    """The entry `name` of `day_folder` open as a folder, each reached without following
    a link."""
    day_fd = os.open(day_folder, FOLDER_NOFOLLOW)
    try:
        return os.open(name, FOLDER_NOFOLLOW, dir_fd=day_fd)
    finally:
        os.close(day_fd)


def _start_of(day: str) -> datetime:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)


class SentNews:
    """The bundles other daemons (hosts sharing the outbox, each with its own journal)
    archived in sent/ since the last look, recorded as sent in this journal, so that the
    same bundle dropped again here is a duplicate and its invoice ids already sent.

    A look lists the day folders of NEWS_DAYS and compares their entries' names with
    those it knows (seeded from the journal's own archive folders the first time a day is
    looked at); only the receipt.json of a name not known is read, once. A quiet sent/
    costs three listings a look, nothing opened. Names not known wait in a queue, read
    within the caller's budget; `pending` says that some wait for `go_on`.
    """

    def __init__(self) -> None:
        self.sent_dir: Path | None = None
        # Receipts read here of bundles this journal has on their way (delivering,
        # retrying): another daemon took the bundle over and archived it. By bundle id,
        # kept while such a row is there (its name is known, so its receipt is not read
        # again), for the finisher to close the row once its work folder is gone for
        # good (sentelsewhere.py). Only the loop writes; delivery workers read.
        self.in_flight: dict[str, dict[str, Any]] = {}
        self._known: dict[str, set[str]] = {}
        self._failing: dict[str, int] = {}  # day → errno, said once until it changes
        # day → entry → (its receipt.json as last seen, what was said of it): an entry
        # whose receipt could not be used is said once, and read again when its
        # receipt.json changes (the other host, restarted after a crash, writes it anew).
        self._unusable: dict[str, dict[str, tuple[object, str]]] = {}
        self._last: datetime | None = None  # the wall time of the last look
        # (day, name) listed, not read yet: in their day's known names already, so a look
        # meanwhile does not queue them twice.
        self._queue: deque[tuple[str, str]] = deque()
        # The same, by the 12 hex digits their folder name ends in ("" for a name that
        # ends in none), for `first`; an entry in _queue but no longer in _waiting was
        # read by it already.
        self._by_id: dict[str, list[tuple[str, str]]] = {}
        self._waiting: set[tuple[str, str]] = set()

    @property
    def pending(self) -> bool:
        """Receipts listed and not read yet: `go_on` reads on."""
        return bool(self._queue)

    def look(self, journal: Journal, sent_dir: Path, now: datetime | None = None,
             progress: Callable[[str], None] = lambda part: None,
             spent: Callable[[], bool] = lambda: False) -> int:
        """Record what is new in `sent_dir`; the number of bundles learned. (A reload may
        name another sent/: its names are then looked at afresh.) `progress(part)` before
        each receipt read: the look at start, before READY, reads every receipt of three
        busy day folders that this journal does not know (StartProgress). `spent()`, asked
        after each receipt read: the caller's budget is used up, the rest waits for
        `go_on` (without one, every receipt is read now)."""
        if sent_dir != self.sent_dir:
            self.sent_dir, self._known, self._failing, self._last = sent_dir, {}, {}, None
            self._unusable, self._queue, self._by_id, self._waiting = {}, deque(), {}, set()
        at = now or datetime.now(UTC)
        days = [(at + timedelta(days=d)).strftime("%Y-%m-%d") for d in NEWS_DAYS]
        for gone in set(self._known) - set(days):
            del self._known[gone]
        for gone in set(self._unusable) - set(days):
            del self._unusable[gone]
        # A day out of the window is never looked at again: kept, a share whose day
        # folders cannot be read would leave one entry a day for the daemon's life.
        for gone in set(self._failing) - set(days):
            del self._failing[gone]
        for day in days:
            names = self._names(day)
            if names is None:
                continue
            known = self._known.get(day)
            if known is None:
                known = self._known[day] = self._seed(journal, day, _start_of(day) - _SEED)
            elif names - known and self._last is not None:
                # This daemon's own entries archived since the last look: known by the
                # journal's few rows since then, not read.
                known |= self._seed(journal, day, self._last - _SINCE_LAST)
            self._changed_again(day, names, known)
            new = names - known
            known |= new
            for name in new:
                self._queue.append((day, name))
                self._waiting.add((day, name))
                ours = _ID12.fullmatch(name)
                self._by_id.setdefault(ours.group(1) if ours else "", []).append((day, name))
        self._last = at
        return self.go_on(journal, progress, spent)

    def go_on(self, journal: Journal, progress: Callable[[str], None] = lambda part: None,
              spent: Callable[[], bool] = lambda: False) -> int:
        """Read the receipts the looks queued until `spent()` (asked after each, so at
        least one is read) or none is left, and record what they say in one transaction;
        the number of bundles learned."""
        return self._record(journal, self._next(), progress, spent)

    def first(self, journal: Journal, bundle_id: str) -> int:
        """Before the bundle `bundle_id` dropped here is decided: the queued receipts that
        may be its own (their folder names end in its id's first 12 hex digits, or in
        none) are read now, not at their turn. A look read every receipt at once, so a
        bundle another daemon sent and a clerk dropped again was a duplicate; queued,
        its receipt could come after the decision, and the bundle was sent again."""
        if not self._queue:
            return 0
        items = [item for key in (bundle_id[:12].lower(), "")
                 for item in self._by_id.pop(key, ()) if item in self._waiting]
        if not items:
            return 0
        self._waiting.difference_update(items)
        return self._record(journal, iter(items), lambda part: None, lambda: False)

    def _next(self) -> Iterator[tuple[str, str]]:
        """The queue's entries in turn, but those `first` read already."""
        while self._queue:
            item = self._queue.popleft()
            if item in self._waiting:
                self._waiting.discard(item)
                yield item

    def _record(self, journal: Journal, items: Iterable[tuple[str, str]],
                progress: Callable[[str], None], spent: Callable[[], bool]) -> int:
        records: list[dict[str, Any]] = []
        read: list[tuple[str, str]] = []
        for day, name in items:
            progress(f"{day}/{name}")
            read.append((day, name))
            rec = self._read(day, name)
            if rec is not None:
                if not journal.was_sent(rec["bundle_id"]):
                    records.append(rec)
                elif journal.in_flight(rec["bundle_id"]):
                    self.in_flight[rec["bundle_id"]] = rec
            if spent():
                break
        if not self._waiting:
            self._by_id.clear()  # its lists hold only entries read
        for bundle_id in [b for b in self.in_flight if not journal.in_flight(b)]:
            del self.in_flight[bundle_id]  # closed, or finished here after all
        if not records:
            return 0
        try:
            journal.import_sent(records, NEWS_DETAIL)
        except JournalError:
            for day, name in read:  # the journal said why; read again at the next look
                self._known.get(day, set()).discard(name)
            return 0
        logs.get().info("bundles other daemons sent, read from sent/", bundles=len(records),
                        files=[r["invoice_file"] for r in records[:10]])
        return len(records)

    def _seed(self, journal: Journal, day: str, since: datetime) -> set[str]:
        """The names of the day folder's entries of this journal's rows sent since
        `since` (their delivery): what this daemon archived there itself."""
        assert self.sent_dir is not None
        folder = self.sent_dir / day
        return {Path(d).name for d in journal.archived_since(iso_of(since))
                if Path(d).parent == folder}

    def _changed_again(self, day: str, names: set[str], known: set[str]) -> None:
        """Entries whose receipt could not be used: read again (taken out of `known`) once
        their receipt.json changed, an lstat each, or once they are listed again after they
        left the listing. What was said of one is kept meanwhile (until its day leaves the
        window), so that a share whose listing flickers has it said once, not at each
        return — forgotten, it was read as new and said again, look after look. One passed
        over without a word (_not_there's first time) is forgotten: at its return it is
        the first time again."""
        assert self.sent_dir is not None
        unusable = self._unusable.get(day, {})
        for name in list(unusable):
            if name not in names:
                known.discard(name)  # read if it is listed again
                if not unusable[name][1]:
                    del unusable[name]
            elif _receipt_seen(self.sent_dir / day / name) != unusable[name][0]:
                known.discard(name)

    def _read(self, day: str, name: str) -> dict[str, Any] | None:
        """The record of one entry's receipt; None, said once, when it cannot be used."""
        assert self.sent_dir is not None
        folder = self.sent_dir / day / name
        unusable = self._unusable.setdefault(day, {})
        seen = _receipt_seen(folder)  # before the read: a change after it is read next time
        try:
            # The day folder and the entry held, neither through a link (as readback): one
            # swapped in since the listing would have a share user's receipt taken as
            # another daemon's, and a real invoice then refused as a duplicate.
            at = _held_entry(self.sent_dir / day, name)
        except FileNotFoundError as exc:
            rec: dict[str, Any] | str = NO_RECEIPT
            missing: OSError | None = exc
        except OSError as exc:
            rec = (f"the entry cannot be opened as a folder ({exc.strerror or exc}; a link "
                   "put in its place is never followed) — put the entry's folder itself back")
        else:
            missing = None
            try:
                rec = receipt_record(folder, day, at)
            except InputError as exc:  # never opened
                rec = f"its receipt.json is not a regular file outboxd may open ({exc.message})"
            finally:
                os.close(at)
        if isinstance(rec, dict):
            unusable.pop(name, None)
            ours = _ID12.fullmatch(name)
            if ours and not rec["bundle_id"].startswith(ours.group(1)):
                # Taken all the same: the receipt is the record of what was sent (the
                # folder renamed, or the receipt copied from another entry, whose bundle
                # then is sent too); refused, its bundle could be sent a second time.
                logs.get().warning(
                    "receipt in sent/ names another bundle than its folder does; its bundle "
                    "is taken as sent, as the receipt says — if the receipt was copied in "
                    "from another entry, put the entry's own receipt.json back",
                    folder=str(folder), bundle_id=rec["bundle_id"], folder_id=ours.group(1))
            return rec
        if rec == NO_RECEIPT and not os.path.lexists(folder):  # gone since its open too
            self._not_there(day, name, seen, missing or FileNotFoundError(
                errno.ENOENT, os.strerror(errno.ENOENT), name))
            return None
        if isinstance(rec, Unreadable):
            seen = object()  # the share's or the permissions' fault: read at each look
        if unusable.get(name, (None, ""))[1] != rec:
            logs.get().warning(UNUSABLE, folder=str(folder), error=str(rec))
        unusable[name] = (seen, str(rec))
        return None

    def _not_there(self, day: str, name: str, seen: object, missing: OSError) -> None:
        """An entry listed, but not there when opened. At first it went since the
        listing (an admin's day folder moved aside, a share's blip the mount check does
        not see): not said, and looked at again at the next look — read if still listed,
        forgotten if not, and read once it is listed again (_changed_again); kept known
        without that, a bundle another daemon sent stayed unknown here for good. Not there
        again at the next look, the share lists what it cannot open (a stale directory
        cache on a network share): said once, with the fix, and opened again only once
        its receipt.json can be seen or it leaves the listing — it was opened at every
        look, silently."""
        assert self.sent_dir is not None
        unusable = self._unusable.setdefault(day, {})
        said = f"{describe(missing)} — {NOT_THERE_FIX}"
        was = unusable.get(name)
        if was is None or (was[0] is not _LISTED_ONLY and was[1] != said):
            unusable[name] = (_LISTED_ONLY, "")
            return
        if was[1] != said:
            logs.get().warning(NOT_THERE, folder=str(self.sent_dir / day / name),
                               error=describe(missing), fix=NOT_THERE_FIX)
        unusable[name] = (seen, said)

    def _names(self, day: str) -> set[str] | None:
        """The entries of one day folder (not dot-names: a copy still being made), None
        when there is none; never through a link."""
        assert self.sent_dir is not None
        folder = self.sent_dir / day
        try:
            fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            self._cannot_read(day, exc)
            return None
        try:
            # The listing fails too when a share drops meanwhile (EIO, ENOTCONN).
            with os.scandir(fd) as it:
                names = {e.name for e in it if not e.name.startswith(".")
                         and e.is_dir(follow_symlinks=False)}
        except OSError as exc:
            self._cannot_read(day, exc)
            return None
        finally:
            os.close(fd)
        self._failing.pop(day, None)
        return names

    def _cannot_read(self, day: str, exc: OSError) -> None:
        """Said once per day folder until its error changes; its names wait."""
        assert self.sent_dir is not None
        if self._failing.get(day) != exc.errno:
            self._failing[day] = exc.errno or 0
            logs.get().warning(
                "a day folder in sent/ cannot be read; what other daemons sent there is "
                "not known here, so a bundle dropped again may be sent again — fix its "
                "permissions (or the share)", folder=str(self.sent_dir / day), error=describe(exc))
