"""Poll: the watcher for network shares, where inotify sees no other host's writes.

Every `poll_interval_seconds` one walk: the outbox root's entries (dot-names
skipped, so our own `.outboxd/` is never entered) and, under each top-level
folder, its entries down to `snapshot.WATCHED_DEPTH` (the root's entries are
depth 1) — what an inotify watch would report.
Each entry costs exactly one lstat (the DirEntry's stat without following
links), each walked folder one listing: no file is opened, a link to a folder
is an entry and never walked. A folder is opened for its listing relative to
its parent, held open meanwhile, and never through a link: one swapped in for
it, or for a folder above it, after its lstat is never walked. Nothing
deeper is polled: a folder inside SIDECAR/ID/ is refused as nested too deep,
and mending that shows at the depths polled. The periodic rescan catches
whatever a poll missed, one level deeper too (a copy still writing there keeps
its bundle from settling).

Each top-level name keeps what its entries looked like; the walk is compared
with the last one by dict lookups, so a poll in which a thousand folders were
renamed costs what a quiet poll costs. Every top-level name with an entry
added, removed or changed is hinted once per poll.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from daemon.fs.fsops import FOLDER, FOLDER_NOFOLLOW
from daemon.fs.workfolder import folder_identity
from daemon.osthreads import show_name
from daemon.watching.snapshot import WATCHED_DEPTH

# The hint for "the outbox itself cannot be listed" (the inotify watcher's too): no entry
# is named "/", so it is no bundle's.
ROOT_LOST = "/"

# os.scandir of a folder held open (its descriptor): the entries' lstat is relative to it.
Scandir = Callable[[int], AbstractContextManager[Iterator[os.DirEntry[str]]]]

# mode, size, mtime_ns, ctime_ns, inode, uid, gid: a rewrite shows in size or
# mtime, chmod/chown in mode, uid, gid (and ctime, which a share may not keep),
# a file renamed over another in the inode. A folder that could not be listed
# gets _UNLISTED appended: becoming listable again is a change too.
State = tuple[int, ...]
_UNLISTED = (-1,)

# A top-level folder's entries by path below it ("" for the folder itself); a
# top-level name that is not a folder is its State alone, not a dict of one.
Tree = dict[str, State]
Walk = dict[str, State | Tree]

JOIN_SECONDS = 2.0  # how long stop() waits for a walk stuck on a hung share


def _state(st: os.stat_result) -> State:
    return (st.st_mode, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
            st.st_uid, st.st_gid)


class Poller:
    """Polls the outbox on its own thread ("watcher-poll") and hints changed top names."""

    def __init__(self, root: Path, interval: float, on_hint: Callable[[str], None],
                 scandir: Scandir = os.scandir) -> None:
        self.root = root
        self.interval = interval
        self.on_hint = on_hint
        self._scandir = scandir
        self._last: Walk | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._lost = False
        self._identity: tuple[int, int] | None = None  # the root's (dev, inode) at start

    def start(self) -> None:
        """Take the first walk here (it only records, so whatever changes once start()
        returns is hinted) and poll from then on. Raises OSError when the root cannot be
        listed; the caller logs it and tries again at the next rescan."""
        self._identity = folder_identity(self.root)
        self.poll()
        self._thread = threading.Thread(target=self._run, name="watcher-poll", daemon=True)
        self._thread.start()
        show_name(self._thread, "watcher-poll")

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._lost

    def stop(self) -> None:
        self._stopping.set()
        # Bounded: a walk blocked on a hung share must not hang the daemon's stop;
        # the thread is a daemon thread and ends its walk at the next folder.
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(JOIN_SECONDS)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            try:
                changed = self.poll()
            except OSError:
                if self._identity is not None and folder_identity(self.root) == self._identity:
                    # The same folder, one listing failed (a share's EIO or ESTALE mid-way):
                    # the next poll compares with the last whole walk, so nothing is lost.
                    # One that keeps failing is the rescan's to say (an outage).
                    continue
                # The root cannot be listed (the share went away): the thread ends,
                # alive() says so, and the loop, told at once, rescans, which restarts
                # it (or logs why not, and tries again at the next rescan).
                self._lost = True  # dead from now: the rescan it asks for restarts it
                self.on_hint(ROOT_LOST)
                return
            for top in changed:
                if self._stopping.is_set():
                    return
                self.on_hint(top)

    def poll(self) -> list[str]:
        """One walk, compared with the last: the top-level names that changed, each
        once (none at the first walk, which only records; none if stopped meanwhile).
        Raises OSError when the root itself cannot be listed."""
        now = self._walk()
        if now is None:
            return []
        last, self._last = self._last, now
        if last is None:
            return []
        changed = [top for top, seen in now.items() if last.get(top) != seen]
        changed.extend(top for top in last if top not in now)
        return changed

    def _walk(self) -> Walk | None:
        walk: Walk = {}
        # The root is the admin's path (a link there is theirs to make); below it, none.
        root = os.open(self.root, FOLDER)
        try:
            # Dot-names are skipped before they cost an lstat: .outboxd/ is our own.
            for name, st in self._list(root, skip_dots=True):
                if not stat.S_ISDIR(st.st_mode):
                    walk[name] = _state(st)
                    continue
                tree: Tree = {}
                if not self._tree(root, name, "", 1, _state(st), tree):
                    return None
                walk[name] = tree
        finally:
            os.close(root)
        return walk

    def _tree(self, parent: int, name: str, key: str, depth: int, state: State,
              into: Tree) -> bool:
        """Record the folder `name` of the folder open at `parent`, at `depth` (`key`: its
        path below the top-level folder), and its entries down to WATCHED_DEPTH into
        `into`; False if a stop came meanwhile."""
        if self._stopping.is_set():
            return False
        try:
            # O_NOFOLLOW: a link put in its place since its lstat is refused (ELOOP), and
            # one put in place of a folder above it is not on the way (parent is held).
            fd = os.open(name, FOLDER_NOFOLLOW, dir_fd=parent)
        except OSError:
            # Not permitted, gone or replaced since its parent was listed: no entries
            # this poll, and its lstat then shows what it became.
            into[key] = state + _UNLISTED
            return True
        try:
            try:
                children = self._list(fd)
            except OSError:
                into[key] = state + _UNLISTED
                return True
            into[key] = state
            for child_name, st in children:
                child = f"{key}/{child_name}" if key else child_name
                if stat.S_ISDIR(st.st_mode) and depth + 1 < WATCHED_DEPTH:
                    if not self._tree(fd, child_name, child, depth + 1, _state(st), into):
                        return False
                else:
                    into[child] = _state(st)
            return True
        finally:
            os.close(fd)

    def _list(self, folder: int, skip_dots: bool = False) -> list[tuple[str, os.stat_result]]:
        """The entries of the folder open at `folder` with their lstat, read in full before
        any is walked, so no listing stays open across the walk below it (only the
        folders above it, WATCHED_DEPTH at most). Raises OSError if it cannot be listed."""
        found: list[tuple[str, os.stat_result]] = []
        with self._scandir(folder) as it:
            for e in it:
                if skip_dots and e.name.startswith("."):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    # Gone since it was listed, or not ours to look at: absent this poll,
                    # so its coming back is a change.
                    continue
                found.append((e.name, st))
        return found
