"""The folders bundles are moved into — sent/, quarantine/ and the processing folder —
kept to the file system each was on when outboxd started (or when a reload named another
folder). A share unmounted from under one leaves its bare mount point on the local disk:
an archive entry made there is seen by no clerk, and hidden for good once the share is
mounted again (sent/ is the lasting record, read back after a journal loss; quarantine/
is where the clerks learn what failed); a claim made there leaves a bundle in flight under
it. While a folder is off its mount nothing is moved into it: the move or claim waits,
retried, with a line naming the folder and both mounts.

Each look costs an open and fstat of the folder; the mount table is read too for a folder
on a share (mounts.SameMount), and when the folder is missing.
"""

from __future__ import annotations

from pathlib import Path

from daemon.configuration.config import Settings
from daemon.errors import describe
from daemon.watching.mounts import SameMount, mount_of, shown


def _keys(settings: Settings) -> tuple[tuple[Path, str], ...]:
    return ((settings.sent_dir, "[paths] sent"), (settings.quarantine_dir, "[paths] quarantine"),
            (settings.processing_dir, "[paths] processing"))


class FolderMounts:
    """The mounts of one configuration's folders (any thread: a look only sets what it
    saw, and two looks at once see the same)."""

    def __init__(self, settings: Settings, earlier: FolderMounts | None = None) -> None:
        """`earlier`: the running configuration's, at a reload. A folder it named too keeps
        the mount noted then: a reload made while a share is away (a new token, say) must
        not take the bare mount point for the folder's home."""
        kept = earlier._mounts if earlier is not None else {}
        self._mounts: dict[Path, tuple[SameMount, str]] = {}
        for folder, key in _keys(settings):
            if folder in kept:
                self._mounts[folder] = kept[folder][0], key
                continue
            seen = SameMount(folder)
            try:
                seen.changed()  # the first look notes the mount
            except OSError:
                pass  # not there yet (a processing folder made at the first claim): noted then
            self._mounts[folder] = seen, key

    def away(self, folder: Path) -> str | None:
        """Why nothing may be moved into `folder` now (its share unmounted, or another
        file system mounted there), for the bundle's row and the log; None when it is on
        the mount first seen, or when it cannot be looked at for another reason (the move
        itself then says what is wrong)."""
        if folder not in self._mounts:
            return None
        seen, key = self._mounts[folder]
        try:
            moved = seen.changed()
        except FileNotFoundError as exc:
            if seen.seen is None:
                return None  # never seen: nothing to compare with
            # Missing: removed by hand (made again by the move, as ever), or a share
            # unmounted from above it (then the move would make it on the local disk).
            there = mount_of(folder)
            if there == seen.mount:
                return None
            return (f"{key} {folder} is not there ({describe(exc)}): it was on "
                    f"{shown(seen.mount)} when outboxd started, and that file system is "
                    f"not mounted now ({folder} would be made on {shown(there)}) — is its "
                    "share unmounted? Nothing is moved there until the share is back; "
                    "mount it, and the bundle goes on by itself")
        except OSError:
            return None
        if moved is None:
            return None
        then, now = (shown(m) for m in moved)
        return (f"{key} {folder} is not on the file system it was on when outboxd started "
                f"({then}; now {now}) — is its share unmounted? Nothing is moved there "
                "until that share is back; mount it, and the bundle goes on by itself. If "
                "the folder is meant to be where it is now, restart outboxd")
