"""Watch: turn file-system events into hints, and keep the watcher alive.

Events only say "look at this name again" (the top-level name of the outbox
they touched); the scan decides what is there. inotify sees no writes made by
other hosts on network file systems, so `watch = "auto"` polls there.

inotify mode uses watchdog's `InotifyFD` (one inotify descriptor, one reader
thread, callbacks per watch) with watches of our own: the outbox root and
each sidecar folder with its invoice subfolders, never `.outboxd/` or other
dot-folders. watchdog's recursive observer was measured to cost more CPU
than the rest of the daemon in a burst of renames: it pairs every
IN_MOVED_FROM with its IN_MOVED_TO by a linear search of a delayed queue and
follows our own claims into the processing folder; a hint needs neither.
A queue overflow asks the loop for a full rescan, once the watcher has watched the
outbox's folders again as they are (a sidecar made while events were lost had no
watch). A watch that cannot be added for want of room (the inotify watch limit)
makes the watcher dead: the loop's restart then fails and says so with the fix
(outage.py), and lists the outbox every few seconds meanwhile. Polling mode is our own
poller (poll.py): one lstat per entry per poll over the same names, never
`.outboxd/`. A watcher whose thread died (share gone) is restarted by
`ensure_alive()` at the next rescan.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from watchdog.observers.inotify_c import (
    CallbackId,
    InotifyConstants,
    InotifyEvent,
    InotifyFD,
    Mask,
    WatchDescriptor,
)

from daemon.fs.workfolder import folder_identity
from daemon.osthreads import show_name
from daemon.watching.mounts import on_network_share
from daemon.watching.poll import ROOT_LOST, Poller
from daemon.watching.snapshot import WATCHED_DEPTH

# A folder renamed back into place keeps its inode, and a folder made with its
# subfolder at once is added twice (as the new sidecar's subfolder and at its own
# event): inotify hands out the same watch descriptor and watchdog warns that our
# callback is registered again. That is its own bookkeeping, not a lost event. The
# warning is raised in the name of watchdog's caller (stacklevel): this module.
warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning,
                        module=r"(watchdog(\..*)?|daemon\.watch)")

OVERFLOW = ""  # the hint for "events were lost": the loop rescans everything
# ROOT_LOST (poll.py), the hint for "the outbox folder itself went away" (removed, moved
# aside, unmounted, or the share cannot be listed): the loop says so at once and rescans,
# which restarts the watcher or logs why it cannot.

# Folder levels watched: each watch reports its folder's entries, so the watches
# see entries down to snapshot.WATCHED_DEPTH.
WATCH_DEPTH = WATCHED_DEPTH - 1
_C = InotifyConstants
_MASK = Mask(_C.IN_CREATE | _C.IN_DELETE | _C.IN_MODIFY | _C.IN_CLOSE_WRITE | _C.IN_ATTRIB
             | _C.IN_MOVED_FROM | _C.IN_MOVED_TO | _C.IN_DELETE_SELF | _C.IN_MOVE_SELF
             | _C.IN_DONT_FOLLOW
             | _C.IN_ONLYDIR | _C.IN_EXCL_UNLINK)
_NEW_DIR = _C.IN_CREATE | _C.IN_MOVED_TO
_ID = CallbackId(1)
# add_watch failing for want of room, not for the folder: the watch limit
# (fs.inotify.max_user_watches), kernel memory. A folder gone or unreadable is the
# scan's to report; these leave a folder unwatched that nobody is told of.
_NO_ROOM = {errno.ENOSPC, errno.ENOMEM, errno.EMFILE}

def choose_mode(mode: str, path: Path) -> str:
    if mode != "auto":
        return mode
    # A share's events from other hosts never reach inotify, nor do they on a share
    # mounted on demand whose file system cannot be seen yet: poll there.
    return "polling" if on_network_share(path) else "inotify"


class _OutboxInotify:
    """Non-recursive inotify watches on the outbox root and its sidecar folders.

    A watch descriptor maps to the relative path it watches; the first part
    of that path is the top-level name an event on it is a hint for.
    """

    def __init__(self, root: Path, on_hint: Callable[[str], None]) -> None:
        self.root = root
        self.on_hint = on_hint
        self._fd = InotifyFD()  # our own descriptor and thread, not watchdog's shared one
        self._rel: dict[WatchDescriptor, str] = {}
        self._wd: dict[str, WatchDescriptor] = {}
        # The watched paths under each top-level name: a claim drops a sidecar's
        # watches without going through every watch of the outbox.
        self._under: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._named: set[int] = set()  # threads that have called us, named "watcher"
        self._stopped = False
        self._no_room: OSError | None = None  # a watch that could not be added: dead
        self._add("")  # raises OSError when the outbox is not there
        # A watch follows its folder's inode: the outbox moved aside (and another made in
        # its place) would go on being watched where nobody drops anything.
        self._identity = folder_identity(root)
        self._fd.start()
        show_name(self._fd, "watcher")
        try:
            self._watch_folders()  # raises OSError at the watch limit
        except OSError:
            self.stop()
            raise

    def _watch_folders(self) -> None:
        """Watch every folder of the outbox as it is now (one already watched keeps its
        watch). Raises OSError when a watch cannot be added for want of room."""
        with os.scandir(self.root) as it:
            tops = [e.name for e in it
                    if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
        for name in tops:
            self._add_tree(name)

    def _add(self, rel: str) -> None:
        path = os.fsencode(self.root / rel if rel else self.root)
        wd = self._fd.add_callback(path, _MASK, self, _ID)
        with self._lock:
            self._rel[wd] = rel
            self._wd[rel] = wd
            self._under.setdefault(rel.split("/", 1)[0], set()).add(rel)

    def _add_tree(self, rel: str) -> None:
        """Watch a folder and its subfolders down to WATCH_DEPTH; gone ones are skipped.
        Raises OSError when a watch cannot be added for want of room (_NO_ROOM)."""
        try:
            self._add(rel)
            if rel.count("/") + 1 >= WATCH_DEPTH:
                return
            with os.scandir(self.root / rel) as it:
                subs = [e.name for e in it if e.is_dir(follow_symlinks=False)]
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                raise
            return  # gone again, or not a folder: its event (or the rescan) tells the loop
        for name in subs:
            self._add_tree(f"{rel}/{name}")

    def _drop_tree(self, rel: str) -> None:
        """Stop watching a folder that left its place (renamed, claimed, deleted)."""
        with self._lock:
            gone = [(self._wd[r], r) for r in self._under.get(rel.split("/", 1)[0], ())
                    if (r == rel or r.startswith(rel + "/")) and r in self._wd]
            for wd, r in gone:
                self._rel.pop(wd, None)
                self._forget(r)
        with contextlib.suppress(OSError, KeyError):
            self._fd.remove_callbacks([(wd, _ID) for wd, _ in gone])

    # -- watchdog's WatchCallback protocol, called on the InotifyFD thread ------------
    # (watchdog 7.1.1 and later: on a dispatcher thread that InotifyFD starts for
    # itself, which we get no handle to, so it is named when it first calls us).
    def _name_caller(self) -> None:
        ident = threading.get_ident()
        if ident not in self._named:
            self._named.add(ident)
            show_name(threading.current_thread(), "watcher")

    def on_event(self, event: InotifyEvent) -> None:
        self._name_caller()
        with self._lock:
            rel = self._rel.get(event.wd)
        if rel == "" and event.mask & _C.IN_MOVE_SELF:
            self.on_hint(ROOT_LOST)  # alive() says False from now on: the path is another's
            return
        if rel is None or not event.name:
            return  # a watch we dropped, or an event on the watched folder itself
        name = os.fsdecode(event.name)
        if not rel and name.startswith("."):
            return  # dot-names (our own .outboxd/ among them) are never bundles
        child = f"{rel}/{name}" if rel else name
        if event.mask & _C.IN_ISDIR:
            if event.mask & _NEW_DIR and child.count("/") < WATCH_DEPTH:
                try:
                    self._add_tree(child)
                except OSError as exc:
                    self._out_of_room(exc)
            elif event.mask & _C.IN_MOVED_FROM:
                self._drop_tree(child)
        self.on_hint(child.split("/", 1)[0])

    def on_watch_deleted(self, wd: WatchDescriptor) -> None:
        with self._lock:
            rel = self._rel.pop(wd, None)
            if rel is not None and self._wd.get(rel) == wd:
                self._forget(rel)
        # Removed or unmounted: no event comes from it any more. Not our own stop, whose
        # close deletes every watch: the restart after an outbox went said so a second time
        # and looked at once again, outside the back-off of its outage.
        if rel == "" and not self._stopped:
            self.on_hint(ROOT_LOST)

    def _forget(self, rel: str) -> None:
        """rel is no longer watched (called under the lock; its descriptor is gone)."""
        del self._wd[rel]
        top = rel.split("/", 1)[0]
        under = self._under.get(top)
        if under is not None:
            under.discard(rel)
            if not under:
                del self._under[top]

    def _out_of_room(self, exc: OSError) -> None:
        """A folder that cannot be watched would change unseen until a rescan, silently:
        the watcher is dead from now on, and the rescan asked for restarts it (or says
        why it cannot, and lists the outbox every few seconds meanwhile)."""
        self._no_room = exc
        self.on_hint(OVERFLOW)

    def on_queue_overflow(self) -> None:
        # Folders made or moved in while events were lost have no watch yet; watchdog
        # tells on_events_lost (the loop's rescan) only after this has returned.
        try:
            self._watch_folders()
        except OSError as exc:
            if exc.errno in _NO_ROOM:
                self._no_room = exc
            # Else the outbox cannot be listed: its own watch's deletion, or the rescan,
            # says so.
        self.on_hint(OVERFLOW)

    def on_events_lost(self) -> None:
        """watchdog 7.1.1 and later, after on_queue_overflow: without it the overflow's
        dispatch fails, and the watcher stops until the next rescan restarts it. The
        loss is already hinted (a rescan comes at once); a second hint is the same."""
        self.on_hint(OVERFLOW)

    def alive(self) -> bool:
        with self._lock:
            watching_root = "" in self._wd
        return (self._fd.is_alive() and watching_root and self._no_room is None
                and folder_identity(self.root) == self._identity)

    def stop(self) -> None:
        self._stopped = True
        with contextlib.suppress(OSError):
            self._fd.stop()


class Watcher:
    def __init__(self, root: Path, mode: str, poll_interval: float,
                 on_hint: Callable[[str], None]) -> None:
        self.root = root
        self.requested = mode
        # What "auto" picks is chosen at each start, from the mount table as it is then
        # (read once per start: on a host with thousands of mounts that read is not free).
        self.mode = mode
        self.poll_interval = poll_interval
        self.on_hint = on_hint
        self._observer: _OutboxInotify | Poller | None = None
        self._lock = threading.Lock()
        self.restarts = 0

    def start(self) -> None:
        with self._lock:
            # Chosen again at every (re)start: a share mounted over the outbox's folder
            # since the last start (or gone from it) changes what "auto" must pick.
            self.mode = choose_mode(self.requested, self.root)
            if self.mode != "polling":
                self._observer = _OutboxInotify(self.root, self.on_hint)
                return
            poller = Poller(self.root, self.poll_interval, self.on_hint)
            poller.start()  # raises OSError when the outbox is not there
            self._observer = poller

    def alive(self) -> bool:
        obs = self._observer
        return obs is not None and obs.alive()

    def ensure_alive(self) -> bool:
        """Restart a dead watcher; True if a restart was needed.

        Raises OSError when it cannot start (the outbox is gone for now); the
        caller logs that and tries again at the next rescan.
        """
        if self.alive():
            return False
        self.stop()
        self.restarts += 1
        self.start()
        return True

    def stop(self) -> None:
        with self._lock:
            obs, self._observer = self._observer, None
        if obs is not None:
            obs.stop()
