"""Watch: turn file-system events into hints, and keep the watcher alive.

Events only say "look at this name again"; the scan decides what is there.
inotify sees no writes made by other hosts on network file systems, so
`watch = "auto"` polls there. watchdog's emitter thread can die (share gone,
queue overflow) while the observer looks alive: `ensure_alive()` restarts it.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

# Claiming renames a watched sidecar into .outboxd/processing, still inside the
# watched tree; watchdog then re-registers the folder and warns about it. The
# warning is about its own bookkeeping, not about lost events.
warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning,
                        module="watchdog")

_READ_ONLY_EVENTS = {"opened", "closed_no_write"}

NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph",
              "fuse.glusterfs", "davfs", "fuse.rclone"}


def fs_type(path: Path) -> str | None:
    """The file-system type of the mount holding path, from /proc/self/mounts."""
    try:
        target = os.path.realpath(path)
        best, best_type = "", None
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = parts[1].replace("\\040", " ")
                if (target == mount or target.startswith(mount.rstrip("/") + "/")) \
                        and len(mount) > len(best):
                    best, best_type = mount, parts[2]
        return best_type
    except OSError:
        return None


def choose_mode(mode: str, path: Path) -> str:
    if mode != "auto":
        return mode
    return "polling" if fs_type(path) in NETWORK_FS else "inotify"


class _Hints(FileSystemEventHandler):
    def __init__(self, root: Path, on_hint: Callable[[str], None]) -> None:
        self.root = str(root)
        self.on_hint = on_hint

    def _top(self, path: str | bytes) -> str | None:
        p = os.fsdecode(path)
        rel = os.path.relpath(p, self.root)
        if rel.startswith(".."):
            return None
        return rel.split(os.sep, 1)[0]

    def on_any_event(self, event: FileSystemEvent) -> None:
        # Our own reads (hashing, validating) raise "opened" and "closed_no_write"
        # events; taking them as hints would wake the loop in a busy circle.
        if event.event_type in _READ_ONLY_EVENTS:
            return
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path:
                top = self._top(path)
                # Dot-names (our own .outboxd/ among them) are never bundles.
                if top and not top.startswith("."):
                    self.on_hint(top)


class Watcher:
    def __init__(self, root: Path, mode: str, poll_interval: float,
                 on_hint: Callable[[str], None]) -> None:
        self.root = root
        self.mode = choose_mode(mode, root)
        self.poll_interval = poll_interval
        self.on_hint = on_hint
        self._observer: BaseObserver | None = None
        self._lock = threading.Lock()
        self.restarts = 0

    def start(self) -> None:
        with self._lock:
            observer: BaseObserver = (PollingObserver(timeout=self.poll_interval)
                                      if self.mode == "polling" else Observer())
            observer.schedule(_Hints(self.root, self.on_hint), str(self.root), recursive=True)
            observer.daemon = True
            observer.start()
            self._observer = observer

    def alive(self) -> bool:
        obs = self._observer
        if obs is None or not obs.is_alive():
            return False
        # The observer thread can outlive its emitters; check those too.
        return all(e.is_alive() for e in obs.emitters)

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
            try:
                obs.stop()
                obs.join(timeout=2)
            except (OSError, RuntimeError):
                pass
