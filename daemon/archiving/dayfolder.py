"""The folders an archive entry is made in, held open: its day folder in sent/ or
quarantine/ (made where missing, its name synced), and the entry itself — never through
a link a user of the share put in the place of either (people on the share may write in
sent/ and quarantine/).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from daemon.fs.fsmove import not_its_folder
from daemon.fs.fsops import FOLDER, FOLDER_NOFOLLOW
from daemon.fs.fswrite import refuse_links
from daemon.fs.workfolder import made_within


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
