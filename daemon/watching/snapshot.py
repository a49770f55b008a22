"""The snapshot of one bundle that settling compares: names, sizes, modification and
change times, owner and mode, inode, of the invoice file, its marker, its sidecar (the
folder itself too) down to SNAPSHOT_DEPTH, the other invoice files of its sidecar and its
look-alikes. Never follows a link, never opens a file: lstat and folder listings only.
The listing of the outbox root it starts from is scan.py's.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from daemon.configuration.config import OutboxConfig
from daemon.fs.fsops import FOLDER_NOFOLLOW
from daemon.names import NameKind, classify, printable, spelling_twins
from daemon.watching.scan import Candidate

# Sidecars nest no deeper than SIDECAR/INVOICE_ID/FILE (depth 3, the outbox root's
# own entries counted as depth 1). The watchers (watch.py, poll.py) report entries
# one level deeper, so that a mistaken deeper copy is noticed; settling looks one
# level deeper still, so that a copy still writing there (an in-progress name, a
# growing file) holds the bundle instead of its being quarantined mid-copy. The
# rescan sees that level, no watcher does.
WATCHED_DEPTH = 4
SNAPSHOT_DEPTH = WATCHED_DEPTH + 1

# relative path, kind, size, mtime_ns, who may read it (mode, uid, gid), ctime_ns,
# inode: an unreadable file fixed with chmod/chown must count as a change, or it would
# never be read again. The change time, because size and modification time miss a file
# rewritten or replaced with both kept (a sync tool copying the source's time, a
# share that keeps times to the second): a bundle held or waiting on what was read
# before would go on showing that for good. A rename changes it too, so a sidecar
# moved away and back while a reader looked (and found it missing) is a change. The
# inode, because some shares keep no change time of their own (a CIFS server that
# reports the modification time as the change time): a file or folder replaced by
# another of the same size and times is still another file. The same fields as the
# poller compares (poll.py), so what it hints as changed is a change here too.
Entry = tuple[str, str, int, int, int, int, int, int, int]
# Where an Entry has them (Final: literal indexes, so a type checker knows their type).
MTIME: Final = 3
CTIME: Final = 7


@dataclass(frozen=True)
class Snapshot:
    entries: tuple[Entry, ...]
    busy: bool  # an in-progress name inside the sidecar: a copy is still at work
    # Folders of the sidecar that could not be listed, with why (a share's EIO or ESTALE,
    # no permission): entries unknown, not none. Never settled or judged (pipeline.py).
    unlisted: tuple[tuple[str, str], ...] = ()
    # Folders of the sidecar listed as folders and no longer one when opened (a clerk's
    # rename or removal, a file or link put in their place): a change under way, not a
    # fault. Such a look never settles (settle.py); the next one sees what they became.
    moved: tuple[str, ...] = ()
    # The regular files of the bundle (invoice file, marker, sidecar: paths as in
    # `entries`) that have other names too (hard links, st_nlink > 1), from the same lstat:
    # the claim makes each a copy of its own (claiming/owncopy.py). Not compared: a link
    # made or removed changes the file's change time, which `entries` holds.
    linked: tuple[str, ...] = field(default=(), compare=False)
    # How many seconds a rewrite of one of its files may go unseen (coarse_seconds): what
    # settling adds to the quiet period. Derived from `entries`, so not compared.
    coarse: int = field(default=0, compare=False)


# What opening a folder just listed says when it is not there as a folder any more: gone
# (ENOENT), a file in its place (ENOTDIR), a link in its place (ELOOP, O_NOFOLLOW).
_WENT: Final = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISDIR(mode):
        return "d"
    return "x"  # link, FIFO, socket, device: validation reports it


def _meta(st: os.stat_result) -> tuple[int, int, int, int, int, int]:
    return (st.st_mtime_ns, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_ctime_ns,
            st.st_ino)


def _walk(parent: int | None, name: str | Path, rel: str, depth: int, cfg: OutboxConfig,
          unlisted: list[tuple[str, str]], moved: list[str], linked: list[str]
          ) -> Iterator[tuple[Entry, bool]]:
    """The entries below the folder `name` (relative to the folder open at `parent`; None:
    a path). Each folder is opened relative to the one above it, held open while its
    entries are walked, and never through a link: a share user who swaps it, or a folder
    above it, for a link after its lstat gets nothing outside the outbox listed. One that
    cannot be opened or listed goes into `unlisted` with why; one that is no longer a
    folder when opened, into `moved`; a file with other names too, into `linked`."""
    try:
        fd = os.open(name, FOLDER_NOFOLLOW, dir_fd=parent)
    except OSError as exc:
        if exc.errno in _WENT:
            # Renamed, removed or replaced since its lstat (a clerk at work): what it
            # held is unknown, as for a folder that cannot be listed, but nothing is
            # wrong, and the rename's event or the quiet period's end looks again.
            moved.append(rel)
        else:
            unlisted.append((rel, exc.strerror or str(exc)))
        return
    try:
        try:
            with os.scandir(fd) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            unlisted.append((rel, exc.strerror or str(exc)))
            return
        for e in children:
            busy = classify(e.name, cfg.ignore_patterns) is NameKind.IN_PROGRESS
            child_rel = f"{rel}/{e.name}"
            try:
                st = e.stat(follow_symlinks=False)
            except FileNotFoundError:
                # Renamed or deleted while we looked (a copy finishing): something
                # is at work, so this snapshot must not settle.
                yield (child_rel, "gone", 0, 0, 0, 0, 0, 0, 0), True
                continue
            except OSError:
                # Listed but not looked at: a folder with read but no search permission,
                # a share's hiccup. The bundle may settle, and its read then says what is
                # wrong (the loop's look and the rescan must not fail for one bundle); a
                # chmod that mends it changes this entry, and the bundle is read again.
                yield (child_rel, "unreadable", 0, 0, 0, 0, 0, 0, 0), False
                continue
            kind = _kind(st.st_mode)
            if st.st_nlink > 1 and kind == "f":
                linked.append(child_rel)
            yield (child_rel, kind, st.st_size if kind == "f" else 0, *_meta(st)), busy
            if kind == "d" and depth + 1 < SNAPSHOT_DEPTH:  # its entries are at depth + 2
                yield from _walk(fd, e.name, child_rel, depth + 1, cfg, unlisted, moved,
                                 linked)
    finally:
        os.close(fd)


def _lstat(path: Path, root: Mapping[str, os.stat_result] | None) -> os.stat_result | None:
    if root is not None:
        return root.get(path.name)
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        # A name the file system cannot hold is nothing there, as workfolder.there says:
        # an invoice file's name at the limit makes its marker's (and a suffixed
        # sidecar's) longer. Raised, every look of such a bundle but a rescan's failed,
        # "cannot look at the bundle; will try again" at each (bench/fuzznames, seed 76).
        if exc.errno == errno.ENAMETOOLONG:
            return None
        raise


def _left(invoice: Path) -> bool:
    """The invoice file is not in the outbox now (its own lstat, not a listing's)."""
    try:
        os.lstat(invoice)
    except FileNotFoundError:
        return True
    except OSError:
        return False  # cannot tell: what could not be listed is said as it is
    return False


def same_lone_file(last: Snapshot | None, st: os.stat_result | None) -> bool:
    """`last` is of an invoice file alone (no sidecar, marker or copy at work) and
    `st` shows it unchanged: what snapshot() would return equals `last`."""
    if last is None or st is None or last.busy or len(last.entries) != 1:
        return False
    return last.entries[0][1:] == (_kind(st.st_mode), st.st_size, *_meta(st))


def snapshot(cand: Candidate, cfg: OutboxConfig,
             root: Mapping[str, os.stat_result] | None = None) -> Snapshot | None:
    """What settling compares; None if the invoice file is gone. `root`: the stats of
    a listing just taken (Listing.stats), instead of looking at each root name again."""
    st = _lstat(cand.invoice, root)
    if st is None:
        return None
    entries: list[Entry] = [(cand.invoice.name, _kind(st.st_mode), st.st_size, *_meta(st))]
    busy = False
    unlisted: list[tuple[str, str]] = []
    moved: list[str] = []
    linked = [cand.invoice.name] if _linked(st) else []
    if cfg.completion == "marker":
        mst = _lstat(cand.marker, root)
        if mst is not None:
            entries.append((cand.marker.name, _kind(mst.st_mode), mst.st_size, *_meta(mst)))
            if _linked(mst):
                linked.append(cand.marker.name)
    side = _lstat(cand.sidecar, root)
    if side is not None and stat.S_ISDIR(side.st_mode):  # lstat: a link is never followed
        # The folder itself too: its change time is all that a rename of it away and back
        # leaves behind (its entries keep theirs).
        entries.append((cand.sidecar.name, "d", 0, *_meta(side)))
        for entry, in_progress in _walk(None, cand.sidecar, cand.sidecar.name, 1, cfg,
                                        unlisted, moved, linked):
            entries.append(entry)
            busy = busy or in_progress
        # Another invoice file of this sidecar holds the bundle (`sidecar-shared`) while
        # the folder is there: that it went or came is a change of the bundle.
        for other in cand.sharers:
            ost = _lstat(cand.invoice.with_name(other), root)
            if ost is not None:
                entries.append((other, _kind(ost.st_mode), ost.st_size, *_meta(ost)))
        if (unlisted or moved) and _left(cand.invoice):
            # The bundle left while we looked: another outboxd's claim renames the invoice
            # file, then the sidecar (a rescan's stats are older still). Not a folder that
            # cannot be listed (an error) or that went under a clerk (a change).
            return None
    # An entry of the sidecar's name spelled otherwise (match.py reports it): that it
    # came or went is a change of the bundle, though its files are not.
    for twin in dict.fromkeys((*cand.look_alikes, *spelling_twins(cand.sidecar.name))):
        tst = _lstat(cand.sidecar.parent / twin, root)
        if tst is not None:
            entries.append((twin, _kind(tst.st_mode), 0, *_meta(tst)))
    return Snapshot(tuple(entries), busy, tuple(unlisted), tuple(moved), tuple(linked),
                    coarse_seconds(tuple(entries)))


# Times kept to the second or two: FAT disks (in a NAS, on a USB stick) keep 2 s, some SMB and
# NFSv3 servers 1 s. A file rewritten in place with its size kept, within the same second
# or two, then changes nothing a stat shows (size, times, inode alike), so the look that
# first saw a version may come up to that much before its last write.
_SECOND: Final = 1_000_000_000


def coarse_seconds(entries: tuple[Entry, ...]) -> int:
    """How long a rewrite of a file among `entries` may show no change (0: its times
    are finer than a second): 2 where a file's modification and change times are both
    whole even seconds (FAT's granule; a 1 s granule shows odd seconds too, and cannot be
    told from it by one time), 1 where they are whole seconds. Both: a change time finer
    than that shows every write, whatever a copy set the modification time to (`cp -p` or
    an unzip from a FAT disk). From the lstats the snapshot has: no look of its own. On a
    fine file system both are whole seconds once in a billion files."""
    coarse = 0
    for e in entries:
        if e[1] != "f":
            continue  # a folder's times change with its names, which entries hold anyway
        mtime, ctime = e[MTIME], e[CTIME]
        if mtime % _SECOND or ctime % _SECOND:
            continue
        coarse = max(coarse, 2 if not (mtime // _SECOND % 2 or ctime // _SECOND % 2) else 1)
    return coarse


def _linked(st: os.stat_result) -> bool:
    """A regular file with other names too (a hard link)."""
    return st.st_nlink > 1 and stat.S_ISREG(st.st_mode)


def unlisted_wait(snap: Snapshot, retry_seconds: float) -> str:
    """Why a bundle with a folder that cannot be listed does not move (status, the page)."""
    folder, why = snap.unlisted[0]
    more = f" (and {len(snap.unlisted) - 1} more)" if len(snap.unlisted) > 1 else ""
    # As the journal keeps every name: a name that is not UTF-8 cannot be written to it.
    return (f"cannot be looked at: the folder {printable(folder)}{more} cannot be listed "
            f"({why}), so "
            f"what it holds is unknown — outboxd looks again every {retry_seconds:g} s and "
            "decides nothing until it can; if this lasts, check that the share is reachable "
            "and mounted, and that outboxd's user may open the folder")
