"""A retry killed between its journal mark and its moves: the row quarantined again.

`outboxd retry` marks a bundle's quarantined row `gone` (RETRIED_DETAIL, its quarantine
folder kept in archive_dir) before it moves the files back, holding the folder locked
(flock) from before the mark to the end of the moves (actions/retry_record.recorded_first).
Killed in between (SIGKILL, an OOM kill, a power loss), the journal said the bundle went
back while it lay whole in quarantine/, and `status` and the page left it out. At the
start and each rescan the daemon looks at the rows so marked lately: one whose folder
it can lock (no retry holds it: the kernel ended a killed one's lock) and that still
holds the invoice file is quarantined again, with what to do. One a retry still holds,
or whose look the share fails, is looked at again at the next rescan; one whose folder
is gone, or no longer holds the invoice file, was moved back, and is left as it is; so is
one whose invoice file is back all the same (across file systems a move is copy, rename
into place, then removal of the source: killed before the removal, the file is in both
places), its folder said to be a leftover.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon import logs
from daemon.archiving.archive_papers import reason_of
from daemon.errors import InputError, describe
from daemon.fs.fsops import FOLDER_NOFOLLOW, opened_if_regular
from daemon.fs.temps import try_lock
from daemon.fs.workfolder import still_at
from daemon.journal import RETRIED_DETAIL, parse_iso
from daemon.journal.records import journal_time
from daemon.names import printable, stem

if TYPE_CHECKING:
    from daemon.configuration.config import Settings
    from daemon.journal import Journal, Row

# How far back the marks are looked at: `status` lists the quarantined of the last week.
DAYS = 7
# Where the quarantine folder's file system gives no lock (NFS without lockd), whether a
# retry still runs cannot be told: a mark this much older than now (the journal's wall
# clock) is taken for a retry that ended. No retry of one bundle's files takes an hour.
NO_LOCK_SECONDS = 3600.0
# Touched by `outboxd retry` in the state dir before it marks a row
# (retry_record.recorded_first): the daemon asks the journal for marked rows only after
# that (and at its start).
RETRIED_NAME = "outboxd.retried"
# How long after it saw a touch the daemon goes on looking at each rescan (its monotonic
# clock: the file's time is the wall clock's, which may step meanwhile): a retry marks
# its rows at once, unless the journal is held locked by another process (5 s at most).
TOUCHED = 300.0
INTERRUPTED = ("retry interrupted: outboxd retry was stopped after it marked the bundle "
               "moved back and before it moved the invoice file; the bundle is still in "
               "quarantine")


@dataclass
class Interrupted:
    """A row quarantined again: what the log says of it."""
    row: Row
    folder: Path
    back: list[str]  # names of the bundle the killed retry had moved into the outbox


class InterruptedRetries:
    """The looks, remembering the rows found really moved back (never looked at again)."""

    def __init__(self, wall: Callable[[], float] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        # Marks (their transition ids), not rows: a row quarantined again is the one the
        # next retry marks, and that retry may be killed too.
        self._settled: set[int] = set()
        self._wall = wall or time.time  # the journal's clock: its times are wall-clock
        self._touch_seen: tuple[int, int] | None | bool = False  # False: never looked
        self._clock = clock or time.monotonic
        self._touch_at: float | None = None  # when a touch was first seen (self._clock)
        self._pending = False  # a row left for a later look (a retry at work, EIO)
        self._unsure: set[int] = set()  # marks whose failed look was said (once each)

    def look(self, journal: Journal, settings: Settings, log: Any) -> list[Interrupted]:
        """The rows marked retried lately looked at; those quarantined again, each logged.
        Asked of the journal at the start, and then only when a retry ran lately
        (_retry_lately) or a row was left for a later look: a rescan of an outbox where
        nothing happens sends the journal no query."""
        if not self._retry_lately(settings.paths.state_dir) and not self._pending:
            return []
        found: list[Interrupted] = []
        marked = journal.retried_lately(DAYS)
        self._pending = any(mark not in self._settled for _, mark, _ in marked)
        for row_id, mark, quarantined_at in marked:
            if mark in self._settled:
                continue
            row = journal.get(row_id)
            try:
                outcome = self._one(journal, settings, row, mark, quarantined_at, log)
            except OSError as exc:
                # The share failed the look (EIO, ESTALE): it cannot tell, so neither
                # moved back nor still there. Looked at again at the next rescan.
                if mark in self._unsure:
                    continue
                self._unsure.add(mark)
                logs.bundle_log(log, row.invoice_file, row.bundle_id, row.invoice_ids).info(
                    "cannot tell yet whether outboxd retry moved the bundle back: its "
                    "quarantine folder cannot be looked at; looked at again at the next "
                    "rescan", folder=row.archive_dir, error=describe(exc))
                continue
            if outcome is None:
                continue
            found.append(outcome)
            said = "" if not outcome.back else (
                f" (already back in the outbox: {', '.join(map(printable, outcome.back))})")
            logs.bundle_log(log, row.invoice_file, row.bundle_id, row.invoice_ids).warning(
                f"{INTERRUPTED}{said}; it is listed as quarantined again — "
                f"{_run_again(row)} to move the rest back", folder=str(outcome.folder))
        return found

    def _retry_lately(self, state_dir: Path) -> bool:
        """Whether a retry touched RETRIED_NAME since the last look, or that was seen
        within TOUCHED: it does so before its mark, so a mark it commits (a journal
        another process holds is waited for) after a look that found none is looked for
        again."""
        try:
            st = os.lstat(state_dir / RETRIED_NAME)
        except OSError:
            seen = None
        else:
            seen = (st.st_ino, st.st_mtime_ns)
        changed = seen != self._touch_seen
        first = self._touch_seen is False
        self._touch_seen = seen
        # At the start the file's age is known by the wall clock alone (it says whether a
        # retry touched it lately); after that, a change is a touch now.
        if changed and seen is not None and (
                not first or abs(self._wall() - seen[1] / 1e9) < TOUCHED):
            self._touch_at = self._clock()
        return changed or (self._touch_at is not None and
                           self._clock() - self._touch_at < TOUCHED)

    def _one(self, journal: Journal, settings: Settings, row: Row, mark: int,
             quarantined_at: str | None, log: Any) -> Interrupted | None:
        """None: left (moved back for good, settled; or a retry runs: looked at again)."""
        judged = _judged(row, self._wall(), mark, journal, settings.outbox.path)
        if judged in (MOVED, COPIED):
            self._settled.add(mark)
            if judged == COPIED:
                logs.bundle_log(log, row.invoice_file, row.bundle_id, row.invoice_ids).warning(
                    COPIED_BACK, folder=row.archive_dir)
            return None
        if judged == LATER:
            return None
        assert isinstance(judged, int)
        folder = Path(row.archive_dir or "")
        try:
            now = journal.get(row.id)
            if now.state != "gone" or journal.last_detail(row.id) != RETRIED_DETAIL:
                return None  # a retry put it back meanwhile (refused), or else ended it
            back = _back_already(judged, row.invoice_file, settings)
            detail = INTERRUPTED + (f" (already back in the outbox: {', '.join(back)})"
                                    if back else "") + f" — {_run_again(row)}"
            # Under the lock: a retry started now waits for it, then marks the row anew.
            journal.transition(row.id, "quarantined", detail,
                               since=_quarantined_at(folder, judged, quarantined_at),
                               archive_dir=row.archive_dir)
            self._settled.add(mark)
            return Interrupted(row, folder, back)
        finally:
            os.close(judged)  # drops the lock


def _run_again(row: Row) -> str:
    """The command that moves the rest back, naming the bundle as `retry` takes it (the
    first 12 hex digits of its id), as REASON.txt names it: the admin need not look it up."""
    return (f"run outboxd retry {row.bundle_id[:12]} again" if row.bundle_id
            else "run outboxd retry again")


# What _judged says of a row marked retried but for the folder it hands back.
MOVED = "moved"  # the retry moved the bundle back (or its folder is no longer ours)
LATER = "later"  # a retry holds the folder now, or may (no lock to ask): look again
# The invoice file both in the folder and back (across file systems a move is copy,
# rename into place, removal of the source: the retry was killed before the removal).
COPIED = "copied"
COPIED_BACK = ("outboxd retry was stopped after it had copied the bundle back into the "
               "outbox and before it removed it from quarantine (or the same files were "
               "dropped into the outbox again): the bundle is back (it is not listed as "
               "quarantined), and its quarantine folder, still holding a copy of the "
               "invoice file, is a leftover — look through it, then remove it by hand; do "
               "not retry it")


def _judged(row: Row, now: float, mark: int, journal: Journal, outbox: Path) -> str | int:
    """MOVED, LATER, COPIED, or the bundle's quarantine folder open at the descriptor
    returned, held locked (the caller closes it), with the invoice file still in it and
    not back: the retry that marked the row (its transition `mark`) was stopped before
    its move. OSError where the share cannot tell (EIO, ESTALE). `now`: the wall clock,
    against the journal's time of the mark."""
    assert row.archive_dir is not None  # retried_lately's rows have it
    folder = Path(row.archive_dir)
    try:
        fd = os.open(folder, FOLDER_NOFOLLOW)
    except (FileNotFoundError, NotADirectoryError):
        return MOVED  # emptied and removed by the retry
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        return MOVED  # a link in its place: not ours, never followed
    try:
        held = try_lock(fd)
        if held is False:
            judged: str | int = LATER  # a retry moves it now (or waits to): its end tells
        elif held is None and now - parse_iso(row.since).timestamp() < NO_LOCK_SECONDS:
            judged = LATER  # no lock to ask: a retry may still run
        elif not still_at(folder, fd) or not _holds(fd, row.invoice_file):
            judged = MOVED  # the invoice file went back: the retry ended
        elif journal.folder_taken_after(row.archive_dir, row.id):
            judged = MOVED  # moved back, and the bundle quarantined again into its path
        elif _quarantined_after(folder, fd, row.since):
            judged = MOVED  # the same, by another host's daemon
        elif _copied_back(fd, row, mark, journal, outbox):
            judged = COPIED
        else:
            judged = fd
    except BaseException:
        os.close(fd)
        raise
    if judged != fd:
        os.close(fd)
    return judged


def interrupted_rows(journal: Journal, outbox: Path, now: float | None = None) -> list[Row]:
    """For `outboxd status`, which writes nothing: the rows marked retried lately whose
    bundle is whole in quarantine/ with no retry at work, as the daemon's next look will
    record them (quarantined, since their quarantine). A look that fails leaves a row out,
    as before."""
    shown = []
    for row_id, mark, quarantined_at in journal.retried_lately(DAYS):
        row = journal.get(row_id)
        try:
            judged = _judged(row, time.time() if now is None else now, mark, journal,
                             outbox)
        except OSError:
            continue
        if isinstance(judged, int):
            try:
                since = _quarantined_at(Path(row.archive_dir or ""), judged, quarantined_at)
            finally:
                os.close(judged)
            shown.append(replace(row, state="quarantined", since=since or row.since))
    return shown


def _quarantined_at(folder: Path, fd: int, transition_at: str | None) -> str | None:
    """When the bundle was quarantined, for the row's `since` (the page's day, status's
    week): as its reason.json says (what a journal read back from quarantine/ has too),
    else the row's latest transition into quarantine (a row put back by a refused retry
    keeps its earlier time, which no transition records), else now (None)."""
    try:
        record = reason_of(folder, at=fd)
    except (InputError, OSError, ValueError, RecursionError):
        record = None
    if record is None or "quarantined_at" not in record:
        return transition_at
    return journal_time(record["quarantined_at"], transition_at)


def _quarantined_after(folder: Path, fd: int, mark_at: str) -> bool:
    """Whether the folder open at fd is a quarantine made after the retry's mark (its
    time `mark_at`, the row's since), as its reason.json says: the bundle moved back and
    quarantined again into the same path by another host's daemon on the share, whose
    row this journal does not have (this daemon's names the folder before its move:
    folder_taken_after). Unreadable: not known to be."""
    try:
        record = reason_of(folder, at=fd)
        return record is not None and \
            parse_iso(str(record["quarantined_at"])) > parse_iso(mark_at)
    except (InputError, OSError, KeyError, TypeError, ValueError, OverflowError,
            RecursionError):
        return False


def _copied_back(fd: int, row: Row, mark: int, journal: Journal, outbox: Path) -> bool:
    """Whether the invoice file still in the quarantine folder open at fd is back all the
    same: the daemon made a row of the bundle after the mark (it took the copy from the
    outbox), or the outbox holds a regular file of its name with the same bytes (a file
    of that name with others is a clerk's new one: the bundle is still in quarantine). A
    look at the outbox that fails counts as not back."""
    if row.bundle_id and journal.came_back_after(row.bundle_id, mark):
        return True
    try:
        there, _ = opened_if_regular(row.invoice_file, fd)
    except OSError:
        return False
    if there is None:
        return False
    try:
        back, _ = opened_if_regular(outbox / row.invoice_file)
    except OSError:
        back = None
    try:
        return back is not None and _same_bytes(there, back)
    finally:
        os.close(there)
        if back is not None:
            os.close(back)


def _same_bytes(a: int, b: int) -> bool:
    """Whether the regular files open at a and b hold the same bytes (a read that fails:
    not known the same)."""
    try:
        if os.fstat(a).st_size != os.fstat(b).st_size:
            return False
        while True:
            x, y = os.read(a, 1 << 16), os.read(b, 1 << 16)
            if x != y:
                return False
            if not x:
                return True
    except OSError:
        return False


def _holds(fd: int, name: str) -> bool:
    """Whether the folder open at fd holds `name` (never followed); a look the share
    fails raises: it cannot tell."""
    try:
        os.lstat(name, dir_fd=fd)
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def _back_already(fd: int, invoice_file: str, settings: Settings) -> list[str]:
    """The bundle's other names (sidecar, marker, release file) not in its quarantine
    folder but in the outbox: moved back by the retry before it was stopped (retry moves
    those first, the invoice file last). Named, so that the admin knows a second retry
    puts the invoice file beside them. A look that fails counts as not moved."""
    name = stem(invoice_file)
    names = [name + settings.outbox.sidecar_suffix, name + settings.outbox.marker_suffix,
             name + settings.share.release_suffix]
    back = []
    for other in dict.fromkeys(names):
        try:
            if _holds(fd, other):
                continue
            os.lstat(settings.outbox.path / other)
        except OSError:
            continue
        back.append(other)
    return back
