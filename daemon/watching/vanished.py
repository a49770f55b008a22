"""A sidecar that vanished while its invoice file stayed: confirmed gone by a fresh
listing of the outbox before the bundle is claimed without it.

On a network share a folder that is there can look absent: a client that cached a
failed lookup of its name (NFS's negative dentries) answers the lstat with ENOENT
while the folder's own listing still shows it. Taken for gone, the invoice would be
sent (`unattached = "send"`, a release file, a wait's end) or quarantined without
its attachments. A clerk who removes the folder on purpose looks the same to an
lstat. So a sidecar that went is a change (the snapshot differs, the quiet period
begins again), and the first claim after it waits one rescan period more, then lists
the outbox root once: not listed there, it was removed, and the claim goes on; listed,
it is still there — tried again every rescan period, said in status, never claimed
without it. A listing of the root that lists the name but cannot lstat it marks the
bundle too (`scan.Listing.vanished`): at a start there is no earlier look to compare.

Cheap: a bundle is looked at here only when a step saw its sidecar go, or a listing
found it so; the root is listed once per such claim, never per poll or rescan.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from daemon.watching.scan import Candidate
from daemon.watching.snapshot import Snapshot


@dataclass(frozen=True)
class Wait:
    """A claim put off: when to step the bundle again, and why (its row's last error)."""

    at: float
    why: str


def _has(snap: Snapshot, sidecar: str) -> bool:
    # The sidecar's own entry follows the invoice file's and the marker's (snapshot.snapshot).
    return any(e[0] == sidecar and e[1] == "d" for e in snap.entries[1:3])


def _still_listed(cand: Candidate) -> str | None:
    """Whether a fresh listing of the outbox root has the sidecar's name: None if not (or
    not as a folder: no sidecar); else what its lstat says now ("" once it works)."""
    with os.scandir(cand.sidecar.parent) as it:
        entry = next((e for e in it if e.name == cand.sidecar.name), None)
    if entry is None:
        return None
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError as exc:
        return exc.strerror or str(exc)
    return "" if stat.S_ISDIR(st.st_mode) else None


class Vanished:
    """The bundles whose sidecar went and is not yet confirmed gone (loop thread only)."""

    def __init__(self) -> None:
        # invoice file -> when its claim may look at the root (None: no claim put off yet)
        self._due: dict[str, float | None] = {}

    def seen(self, key: str, sidecar: str, last: Snapshot | None, snap: Snapshot) -> None:
        """A step's look, `last` the one before: a sidecar that was there and is not."""
        if _has(snap, sidecar):
            self._due.pop(key, None)
        elif last is not None and _has(last, sidecar):
            self._due.setdefault(key, None)

    def noted(self, key: str) -> None:
        """The root's listing has the sidecar's name, and its lstat said it is not there."""
        self._due.setdefault(key, None)

    def forget(self, key: str) -> None:
        self._due.pop(key, None)

    def wait(self, cand: Candidate, now: float, period: float) -> Wait | None:
        """Whether a claim of `cand` waits for its sidecar to be confirmed gone (`period`:
        the rescan interval); None: nothing vanished, or confirmed gone by a listing. An
        OSError of that listing is the caller's (it cannot be looked at: tried again)."""
        key = cand.invoice.name
        if key not in self._due:
            return None
        side = cand.sidecar.name
        due = self._due[key]
        if due is None or now < due:
            at = self._due[key] = now + period if due is None else due
            return Wait(at, f"its folder {side} went away while it settled: outboxd looks "
                        f"at the outbox once more, within {period:g} s, before it sends "
                        "or quarantines the invoice without that folder — if the folder "
                        "should be there, put it back")
        trouble = _still_listed(cand)
        if trouble is None:
            del self._due[key]  # removed (by a clerk): the claim goes on without it
            return None
        self._due[key] = now + period
        if not trouble:  # there again: the step that follows sees it (a change)
            return Wait(now, f"its folder {side} is back")
        return Wait(now + period, (
            f"its folder {side} is in the outbox's listing but cannot be looked at "
            f"({trouble}), as a network share's client that cached an earlier lookup "
            f"answers — nothing is sent or quarantined without it; outboxd looks again "
            f"every {period:g} s; if this lasts, have the admin check the share's mount"))
