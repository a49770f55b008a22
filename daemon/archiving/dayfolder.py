"""The folders an archive entry is made in, held open: its day folder in sent/ or
quarantine/ (made where missing, its name synced), and the entry itself — never through
a link a user of the share put in the place of either (people on the share may write in
sent/ and quarantine/). And the day folders read back into a new journal: which lie in
the window, and the day each names.
"""

from __future__ import annotations

import errno
import os
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from daemon.fs.fsmove import not_its_folder
from daemon.fs.fsops import FOLDER, FOLDER_NOFOLLOW
from daemon.fs.fswrite import refuse_links
from daemon.fs.workfolder import made_within
from daemon.journal.records import iso_of

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def hold_day(folder: Path, within: Path | None = None) -> int:
    """The day folder of an archive entry, open (the caller closes it); made where
    missing, its name synced then. Never one that is a link, nor inside an archive
    folder that is one: people on the share may write in sent/ and quarantine/, and a
    link there could lead anywhere (move_tree refuses one swapped in after this too).
    An archive folder the admin put inside `within` (the outbox) is reached from it,
    each folder made where missing, and the day folder made and opened at its
    descriptor: a link swapped in on the way after a look is never followed."""
    if within is not None and folder.parent.is_relative_to(within):
        root = made_within(folder.parent, within)
        try:
            return _day_in(root, folder)
        finally:
            os.close(root)
    refuse_links((folder.parent,))
    try:
        os.mkdir(folder)
        new = True
    except FileExistsError:
        new = False
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
        new = True
    root = os.open(folder.parent, FOLDER)
    try:
        return _day_in(root, folder, new)
    finally:
        os.close(root)


def _day_in(root: int, folder: Path, new: bool | None = None) -> int:
    """The day folder `folder` of the archive folder open at `root`, open; made there
    unless `new` says whether it was made already, and then the name synced."""
    if new is None:
        try:
            os.mkdir(folder.name, dir_fd=root)
            new = True
        except FileExistsError:
            new = False
    try:
        fd = os.open(folder.name, FOLDER_NOFOLLOW, dir_fd=root)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise not_its_folder(folder) from None
        raise
    if new:
        try:
            os.fsync(root)
        except BaseException:
            os.close(fd)
            raise
    return fd


def hold_entry(day: int, placed: Path) -> int:
    """The archive entry `placed`, open from its day folder held (the caller closes it);
    not_its_folder when a link or no folder is at its name."""
    try:
        return os.open(placed.name, FOLDER_NOFOLLOW, dir_fd=day)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise not_its_folder(placed) from None
        raise


def day_start(day: str) -> str | None:
    """The first moment of a day folder's UTC date as a journal time; None for a name
    that is no date (2026-02-30)."""
    try:
        return iso_of(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC))
    except ValueError:
        return None


def _day_of(name: str) -> date | None:
    """The date a day folder's name (YYYY-MM-DD) says; None for one that is no date
    (2026-13-45)."""
    try:
        return date.fromisoformat(name)
    except ValueError:
        return None


def days_in_window(root: Path, window_days: int) -> list[str]:
    """The day folders (YYYY-MM-DD, no link) of an archive folder within the window, oldest
    first; none when it is not there (OSError when it cannot be listed).

    The window ends at today, or at the newest day folder where that is older: a server
    whose clock is years ahead (a dead clock battery, before NTP answers) read no receipt
    back, and every invoice dropped again was sent a second time."""
    try:
        days = sorted(e.name for e in os.scandir(root)
                      if _DAY.fullmatch(e.name) and e.is_dir(follow_symlinks=False))
    except FileNotFoundError:
        return []
    today = datetime.now(UTC).date()
    end = min(today, max(filter(None, map(_day_of, days)), default=today))
    try:
        oldest = (end - timedelta(days=window_days)).isoformat()
    except OverflowError:  # a window reaching before year 1 (a folder named 0001-01-01)
        oldest = ""
    return [d for d in days if d >= oldest]
