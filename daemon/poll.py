"""Poll: the watcher for network shares, where inotify sees no other host's writes.

Every `poll_interval_seconds` one walk: the outbox root's entries (dot-names
skipped, so our own `.outboxd/` is never entered) and, under each top-level
folder, its entries down to `scan.WATCHED_DEPTH` (the root's entries are
depth 1) — what an inotify watch would report.
Each entry costs exactly one lstat (the DirEntry's stat without following
links), each walked folder one listing: nothing is opened, a link to a folder
is an entry and never walked. Nothing deeper is polled: a folder inside
SIDECAR/ID/ is refused as nested too deep, and mending that shows at the
depths polled. The periodic rescan catches whatever a poll missed, one level
deeper too (a copy still writing there keeps its bundle from settling).

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

from daemon.osthreads import show_name
from daemon.scan import WATCHED_DEPTH

Scandir = Callable[[str], AbstractContextManager[Iterator[os.DirEntry[str]]]]

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

    def start(self) -> None:
        """Take the first walk here (it only records, so whatever changes once start()
        returns is hinted) and poll from then on. Raises OSError when the root cannot be
        listed; the caller logs it and tries again at the next rescan."""
        self.poll()
        self._thread = threading.Thread(target=self._run, name="watcher-poll", daemon=True)
        self._thread.start()
        show_name(self._thread, "watcher-poll")

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

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
                # The root cannot be listed (the share went away): the thread ends,
                # alive() says so, and the next rescan restarts it (or logs why not).
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
        # Dot-names are skipped before they cost an lstat: .outboxd/ is our own.
        for name, path, st in self._list(str(self.root), skip_dots=True):
            if not stat.S_ISDIR(st.st_mode):
                walk[name] = _state(st)
                continue
            tree: Tree = {}
            if not self._tree(path, "", 1, _state(st), tree):
                return None
            walk[name] = tree
        return walk

    def _tree(self, path: str, key: str, depth: int, state: State, into: Tree) -> bool:
        """Record the folder at `depth` (`key`: its path below the top-level folder) and
        its entries down to WATCHED_DEPTH into `into`; False if a stop came meanwhile."""
        if self._stopping.is_set():
            return False
        try:
            children = self._list(path)
        except OSError:
            # Not permitted, or gone since its parent was listed: no entries this poll.
            into[key] = state + _UNLISTED
            return True
        into[key] = state
        for name, child_path, st in children:
            child = f"{key}/{name}" if key else name
            if stat.S_ISDIR(st.st_mode) and depth + 1 < WATCHED_DEPTH:
                if not self._tree(child_path, child, depth + 1, _state(st), into):
                    return False
            else:
                into[child] = _state(st)
        return True

    def _list(self, path: str, skip_dots: bool = False) -> list[tuple[str, str, os.stat_result]]:
        """A folder's entries with their lstat, read in full before any is walked, so no
        listing stays open across the walk below it. Raises OSError if it cannot be listed."""
        found: list[tuple[str, str, os.stat_result]] = []
        with self._scandir(path) as it:
            for e in it:
                if skip_dots and e.name.startswith("."):
                    continue
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    # Gone since it was listed, or not ours to look at: absent this poll,
                    # so its coming back is a change.
                    continue
                found.append((e.name, e.path, st))
        return found
