"""Settle: a bundle is ready when nothing in it has changed for settle_seconds.

"Close-write" does not mean "done": scanners and SMB copies close and
reopen files, so only a snapshot (names, sizes, times) that stays the same
for the whole period counts, and any change restarts the clock. The period is
counted on the daemon's monotonic clock from when a change was seen; the files'
times (the file server's clock, which may be off) are only compared with each
other. Where those times are kept to the second or two (a FAT disk in a NAS), a
rewrite within that granule shows no change, and the period is that much longer.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from daemon.watching.snapshot import CTIME, MTIME, Entry, Snapshot


@dataclass
class _Seen:
    snapshot: Snapshot
    since: float  # monotonic time the snapshot last changed
    first: bool = False  # as at this process's first look: no change seen since


def _untimed(e: Entry) -> tuple[object, ...]:
    """An entry without what a rename changes: a file's change time, and a folder's
    modification time as well (some file systems count the rewrite of its ".." as
    one). Its inode stays: a rename keeps it, a file put in its place does not."""
    kept = (*e[:CTIME], *e[CTIME + 1:])
    return (*kept[:MTIME], *kept[MTIME + 1:]) if e[1] == "d" else kept


# How soon a bundle whose last look saw a folder go is looked at again at the earliest
# (with a quiet period shorter than this): a clerk's rename is over by then, and its
# own event brings the look sooner where the watcher sees it.
MOVED_AGAIN = 1.0


class SettleTracker:
    def __init__(self, settle_seconds: float) -> None:
        self.settle_seconds = settle_seconds
        self._seen: dict[str, _Seen] = {}

    def observe(self, key: str, snap: Snapshot, now: float) -> bool:
        """Record what key looks like now; True once it has been still long enough."""
        seen = self._seen.get(key)
        if seen is None or seen.snapshot != snap or snap.moved:
            # A look that saw a folder go (Snapshot.moved) is a change however like the
            # last (a share without change times can show two alike): never settled, as
            # what the folder held is unknown; its quiet period starts again from it.
            self._seen[key] = _Seen(snap, now, first=seen is None)
            # settle_seconds = 0 means "as soon as we have looked once".
            return self.settle_seconds == 0 and not snap.busy and not snap.moved
        return not snap.busy and now - seen.since >= self.quiet_seconds(seen.snapshot)

    def quiet_seconds(self, snap: Snapshot) -> float:
        """How long `snap` must stay unchanged: settle_seconds, and on a file system that
        keeps times to the second or two (Snapshot.coarse) that much more. There a file
        rewritten in place with its size kept shows no change until its granule ends,
        so the look that saw a version may come up to a granule before its last write:
        without it, a writer that paused for settle_seconds less a granule (a copy that
        makes the file its full size first) was claimed mid-write, and a quiet period of
        a second on a FAT disk's 2 s times could end before the file's last write. Not
        with settle_seconds = 0, which asks for no wait at all."""
        return self.settle_seconds + snap.coarse if self.settle_seconds > 0 else 0

    def written_before(self, snap: Snapshot) -> bool:
        """Every file in snap was last written a whole quiet period before the latest
        change the file system recorded in the bundle (its newest change time: the
        sidecar or a file moved or renamed in): the bundle was finished elsewhere and
        moved in, the usual way an ERP drops one. Such a version is likely to settle
        unchanged, so it may be read while the period runs (it still settles before
        any claim, and a read of a version that then changes is thrown away). A copy
        at work has a file written as lately as that change and is not read before it
        settles. Both times are the file server's own: on a share whose clock is
        minutes off outboxd's, or with files dated 1980 or 2100, the daemon's clock
        would read every copy at work as written long ago, or nothing ever so."""
        if snap.busy or not snap.entries:
            return False
        limit = max(e[CTIME] for e in snap.entries) - int(self.settle_seconds * 1e9)
        return all(e[MTIME] <= limit for e in snap.entries if e[1] == "f")

    def put_back(self, key: str, before: Snapshot, after: Snapshot,
                 moved: Container[str]) -> bool:
        """A claim undone: `after` is what `key` looks like once outboxd's own renames put
        the root entries `moved` back. If it differs from `before` (what was read) in
        their change times alone, which those renames changed, it takes before's place,
        still as settled as before was: True. Else it is a change like any other."""
        seen = self._seen.get(key)
        if seen is None or seen.snapshot != before or before.busy != after.busy \
                or len(before.entries) != len(after.entries):
            return False
        if not all(b == a or (b[0] in moved and _untimed(b) == _untimed(a))
                   for b, a in zip(before.entries, after.entries, strict=True)):
            return False
        seen.snapshot = after
        return True

    def still_since(self, key: str) -> float | None:
        """Since when key has looked as it does now (monotonic); None if never seen."""
        seen = self._seen.get(key)
        return seen.since if seen else None

    def first_look(self, key: str) -> bool:
        """Key looks as at this process's first look at it: since then no change was seen,
        so how long it was unchanged before is for its files' times to say."""
        seen = self._seen.get(key)
        return seen is not None and seen.first

    def ready_at(self, key: str) -> float | None:
        """When key's quiet period ends if nothing changes; None if never seen. After a
        look that saw a folder go, no sooner than MOVED_AGAIN after it: such a look never
        settles, and with settle_seconds = 0 its quiet period would end at once, over
        and over — a folder gone at every look (a share's stale cache) kept the loop
        looking at it at full speed for as long as that lasted."""
        seen = self._seen.get(key)
        if seen is None:
            return None
        wait = self.quiet_seconds(seen.snapshot)
        if seen.snapshot.moved:
            wait = max(wait, MOVED_AGAIN)
        return seen.since + wait

    def last(self, key: str) -> Snapshot | None:
        seen = self._seen.get(key)
        return seen.snapshot if seen else None

    def forget(self, key: str) -> None:
        self._seen.pop(key, None)


# A look (the snapshot) walks every entry of the bundle: 8-11 µs an entry was
# measured on a local disk. Events may have a bundle looked at again no sooner
# than this much an entry after its last look: about a tenth of the loop's time.
PACE_PER_ENTRY = 100e-6
PACE_FROM = 20  # entries: a smaller bundle (2 ms between looks at most) is not paced


class Pacer:
    """How soon an event may make the loop look at a bundle again.

    A look walks the bundle's whole sidecar, so a copy of many files into it, one
    event a file, would cost a walk of all files so far for each new one:
    quadratic (2,000 files copied over 7 s kept the loop busy for 6.1 s). A bundle
    of n entries (PACE_FROM or more) is looked at again, on an event, no sooner
    than n × PACE_PER_ENTRY after its last look (0.2 s for 2,000 files), by a
    timer: one look for all the events meanwhile. Counted in entries, not timed:
    a walk timed on a busy host (other threads holding the interpreter lock, a
    stolen CPU) would pace ordinary bundles too. A change is seen at most that
    much later, and the quiet period counts from when it is seen, so no bundle
    settles sooner. Timers and the rescan are not paced.
    """

    def __init__(self) -> None:
        self._next: dict[str, float] = {}  # only bundles of PACE_FROM entries or more

    def looked(self, key: str, at: float, entries: int) -> None:
        if entries >= PACE_FROM:
            self._next[key] = at + entries * PACE_PER_ENTRY
        else:
            self._next.pop(key, None)

    def not_before(self, key: str, now: float) -> float | None:
        """When an event may have key looked at, if not now."""
        due = self._next.get(key)
        return due if due is not None and due > now else None

    def forget(self, key: str) -> None:
        self._next.pop(key, None)
