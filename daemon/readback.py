"""Read sent/ back into the journal: whole into a fresh one (the journal is a working
record, sent/ the lasting one: docs/operations.md, Backup), and what other daemons
sharing the outbox archived there since the last look (`SentNews`, at the start and
each rescan: docs/operations.md, Several daemons on one share).

A journal that was lost (deleted, or moved away after corruption) must cost
no second sending: before anything is sent, the bundle ids of the receipts in
SENT/YYYY-MM-DD/*/receipt.json of the last `duplicate_window_days` are
recorded as sent, so an identical bundle dropped again is a duplicate. One
pass over the date folders, and only when the journal holds no row at all.

sent/ is visible to the people on the share: receipt.json is read through
fsops.read_regular, so a FIFO, link or device of that name is never opened
(opening a FIFO would block the start before READY, where no signal handler
can end it) — it is logged and counted as an entry without a receipt.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.answers import kept_receipt_id, no_lone_surrogates
from daemon.errors import ConfigError, InputError, JournalError
from daemon.fsops import read_regular
from daemon.journal import Journal, journal_time
from daemon.journal.records import iso_of
from daemon.notify import StartProgress

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def day_start(day: str) -> str | None:
    """The first moment of a day folder's UTC date as a journal time; None for a name
    that is no date (2026-02-30)."""
    try:
        return iso_of(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC))
    except ValueError:
        return None


def record_of(folder: Path, day: str | None = None) -> dict[str, Any] | None:
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
    """
    rec = receipt_record(folder, day)
    if isinstance(rec, Unreadable):
        logs.get().warning("receipt.json cannot be read; its bundle is not known as sent "
                           "until it can be", file=str(folder / "receipt.json"),
                           error=str(rec))
    return rec if isinstance(rec, dict) else None


class Unreadable(str):
    """What receipt_record says of a receipt.json there that could not be read (EIO,
    permissions): not the file's fault, so worth reading again."""


def receipt_record(folder: Path, day: str | None = None) -> dict[str, Any] | str:
    """record_of's record, or what is wrong with the entry's receipt (a str, said to
    the admin; an `Unreadable` when reading it failed). Raises as record_of."""
    path = folder / "receipt.json"
    if not os.path.lexists(path):
        return "it holds no receipt.json"
    try:
        # No paper limit: a receipt keeps the receiver's whole answer and the manifest
        # of every attachment, and one read back as "none" would let the bundle be sent
        # again (read_regular's own bound still stops a file of any size).
        data = read_regular(path, str(path))
    except OSError as exc:
        return Unreadable(f"its receipt.json cannot be read ({exc})")
    if data is None:
        return "its receipt.json is over 32 MiB, more than any receipt outboxd writes"
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


def _entry_record(folder: Path, day: str) -> dict[str, Any] | None:
    """record_of an entry of sent/, a receipt.json that is no regular file logged."""
    try:
        return record_of(folder, day)
    except InputError as exc:
        # Not opened, so the daemon goes on; the entry counts as one without a receipt
        # (its bundle id stays unknown to the journal).
        logs.get().warning(
            "receipt in sent/ not read back: it is not a regular file that can be read — "
            "put the entry's real receipt.json there or remove this one; until then that "
            "bundle dropped again is not seen as sent",
            file=exc.file, error=exc.message, code=exc.code)
        return None


def sent_records(sent_dir: Path, window_days: int,
                 progress: Callable[[str], None] = lambda day: None,
                 ) -> tuple[list[dict[str, Any]], int]:
    """Records for every receipt in the window, and how many entries had none usable;
    `progress(day)` after each day folder."""
    oldest = (datetime.now(UTC) - timedelta(days=window_days)).strftime("%Y-%m-%d")
    records: list[dict[str, Any]] = []
    unusable = 0
    try:
        days = sorted(e.name for e in os.scandir(sent_dir)
                      if _DAY.fullmatch(e.name) and e.name >= oldest
                      and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return [], 0
    except OSError as exc:
        # Nothing may be sent before sent/ is read back: the start stops, saying why
        # (a share away, permissions), and its supervisor tries again.
        raise ConfigError(f"[paths] sent = {str(sent_dir)!r} cannot be listed to read back "
                          f"what was sent into the new journal ({exc.strerror or exc}) — "
                          "mount its share or fix its permissions; nothing is sent "
                          "before it is read") from None
    for day in days:
        try:
            with os.scandir(sent_dir / day) as it:
                for entry in it:
                    if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                        continue  # a .partial copy or litter
                    rec = _entry_record(Path(entry.path), day)
                    if rec is None:
                        unusable += 1
                    else:
                        records.append(rec)
        except OSError as exc:
            # Permissions changed by hand, a share's hiccup (at the open or in the middle
            # of the listing): the start goes on (nothing is sent before this pass ends),
            # and the day's bundles not read are not known as sent.
            logs.get().warning("a day folder in sent/ cannot be read; its receipts are not "
                               "read back — fix its permissions, then restart to read it",
                               folder=str(sent_dir / day), error=str(exc))
            continue
        progress(day)
    return records, unusable


def restore_sent(journal: Journal, sent_dir: Path, window_days: int) -> int:
    """On an empty journal, record what sent/ holds; the number of bundles read back."""
    if not journal.is_empty():
        return 0
    records, unusable = sent_records(
        sent_dir, window_days, StartProgress("reading sent/ back into a new journal"))
    if records:
        journal.import_sent(records)
    log = logs.get()
    if records or unusable:
        log.warning("new journal: bundle ids read back from sent/ receipts", bundles=len(records),
                    without_receipt=unusable, window_days=window_days, sent=str(sent_dir))
    return len(records)


# What another daemon archived lies in the day folder of its delivery (UTC, by its own
# clock): yesterday's (delivered before midnight, looked at after it, or a clock a little
# behind), today's, and tomorrow's (a clock a little ahead). Older ones are not looked at.
NEWS_DAYS = (-1, 0, 1)
NEWS_DETAIL = "sent by another daemon: read from sent/"
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


def _start_of(day: str) -> datetime:
    return datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)


class SentNews:
    """The bundles other daemons (hosts sharing the outbox, each with its own journal)
    archived in sent/ since the last look, recorded as sent in this journal, so that the
    same bundle dropped again here is a duplicate and its invoice ids already sent.

    A look lists the day folders of NEWS_DAYS and compares their entries' names with
    those it knows (seeded from the journal's own archive folders the first time a day is
    looked at); only the receipt.json of a name not known is read, once. A quiet sent/
    costs three listings a look, nothing opened.
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

    def look(self, journal: Journal, sent_dir: Path, now: datetime | None = None,
             progress: Callable[[str], None] = lambda part: None) -> int:
        """Record what is new in `sent_dir`; the number of bundles learned. (A reload may
        name another sent/: its names are then looked at afresh.) `progress(part)` before
        each receipt read: the look at start, before READY, reads every receipt of three
        busy day folders that this journal does not know (StartProgress)."""
        if sent_dir != self.sent_dir:
            self.sent_dir, self._known, self._failing, self._last = sent_dir, {}, {}, None
            self._unusable = {}
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
        records: list[dict[str, Any]] = []
        read: list[tuple[set[str], str]] = []
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
            for name in names - known:
                progress(f"{day}/{name}")
                known.add(name)
                read.append((known, name))
                rec = self._read(day, name)
                if rec is None:
                    continue
                if not journal.was_sent(rec["bundle_id"]):
                    records.append(rec)
                elif journal.in_flight(rec["bundle_id"]):
                    self.in_flight[rec["bundle_id"]] = rec
        for bundle_id in [b for b in self.in_flight if not journal.in_flight(b)]:
            del self.in_flight[bundle_id]  # closed, or finished here after all
        self._last = at
        if not records:
            return 0
        try:
            journal.import_sent(records, NEWS_DETAIL)
        except JournalError:
            for known, name in read:  # the journal said why; read again at the next look
                known.discard(name)
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
        """Entries whose receipt could not be used: forgotten once gone from the listing,
        read again (taken out of `known`) once their receipt.json changed. An lstat each."""
        assert self.sent_dir is not None
        unusable = self._unusable.get(day, {})
        for name in list(unusable):
            if name not in names:
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
            rec = receipt_record(folder, day)
        except InputError as exc:  # never opened
            rec = f"its receipt.json is not a regular file outboxd may open ({exc.message})"
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
        if isinstance(rec, Unreadable):
            seen = object()  # the share's or the permissions' fault: read at each look
        if unusable.get(name, (None, ""))[1] != rec:
            logs.get().warning(UNUSABLE, folder=str(folder), error=str(rec))
        unusable[name] = (seen, str(rec))
        return None

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
                "permissions (or the share)", folder=str(self.sent_dir / day), error=str(exc))
