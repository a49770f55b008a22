"""A folder of a sidecar that is gone whenever it is opened, look after look: said once it
has lasted a rescan period, so that a bundle kept settling by it shows why.

A folder listed (lstat) as a folder and no longer one when the snapshot opens it is a
clerk's rename under way (`Snapshot.moved`): each such look is a change, and the bundle
settles anew (settle.py). A rename is over by the next look. One that is not — a network
share's client whose cache keeps showing a folder its server no longer has (NFS or CIFS
with stale entries), a program that keeps renaming or replacing the folder — keeps the
bundle settling for ever, which status and the page showed as nothing at all and the log
at no level above info. So once every look for a rescan period (`rescan_seconds`, two
looks at least) has seen a folder go, the bundle's row says which folder, why it cannot
settle and what to do, and the log says it once, at warning; the first look that sees no
folder go clears the row, with one info line. A rescan period, as a folder that went
away (vanished.py) waits one: longer than a clerk's rename, and than a share client's
default attribute cache (60 s on NFS), whose stale entries pass by themselves.

What settles, and when, is settle.py's alone: nothing here changes it.
"""

from __future__ import annotations

from typing import Any

from daemon import logs
from daemon.watching.snapshot import Snapshot

FIX = ("if a person or a program keeps renaming, moving or replacing that folder, stop it; "
       "if nothing does, the share's client shows a folder its server no longer has (a "
       "stale cache): remount the share, and check its attribute cache settings (actimeo; "
       "lookupcache on NFS)")


def kept_moving_wait(snap: Snapshot, period: float) -> str:
    """Why a bundle whose looks keep seeing a folder go does not move (status, the page)."""
    folder = snap.moved[0]
    more = f" (and {len(snap.moved) - 1} more)" if len(snap.moved) > 1 else ""
    return (f"cannot settle: the folder {folder}{more} is listed as a folder but is gone "
            f"(or a file or link) whenever outboxd opens it, at every look for {period:g} s "
            "or more, so what it holds is unknown and nothing is decided — if a person or a "
            "program keeps renaming, moving or replacing it, stop that; if nothing does, "
            "have the admin remount the network share or check its attribute cache")


class KeptMoving:
    """The bundles whose looks keep seeing a folder go (the loop's thread only)."""

    def __init__(self, log: Any) -> None:
        self.log = log
        # invoice file -> monotonic time of the first of the looks in a row that saw one go
        self._since: dict[str, float] = {}
        self._said: set[str] = set()  # those whose row says so (and the log has said it)

    def seen(self, key: str, snap: Snapshot, now: float, period: float) -> str | None:
        """A step's look at `key` (one whose folders could all be opened or were seen go):
        why its bundle cannot settle, once its looks have seen a folder go for `period`
        (the rescan interval); "" at the first look after that which saw none go (what its
        row said is over); else None."""
        if not snap.moved:
            since = self._since.pop(key, None)
            if key not in self._said:
                return None
            self._said.discard(key)
            logs.bundle_log(self.log, key, None, ()).info(
                "the bundle's folders stay put as they are opened again; it settles",
                moving_seconds=round(now - since, 1) if since is not None else None)
            return ""
        since = self._since.setdefault(key, now)
        if now - since < period:
            return None
        if key not in self._said:
            self._said.add(key)
            logs.bundle_log(self.log, key, None, ()).warning(
                "a folder of the bundle is gone whenever it is opened; the bundle cannot "
                "settle", folder=snap.moved[0], moving_seconds=round(now - since, 1), fix=FIX)
        return kept_moving_wait(snap, period)

    def forget(self, key: str) -> None:
        self._since.pop(key, None)
        self._said.discard(key)
