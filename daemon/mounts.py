"""Which file system a path is on: the watcher picks polling on a network file system
(watch.py), and a directory target's start sweep trusts a folder's lock only on a
local one (directory.py); both ask on_network_share. A directory target's writes, and
the moves into sent/, quarantine/ and processing/ (foldermounts.py), also wait while
their share is unmounted (SameMount). Apart from watch.py so that a
delivery, and the commands that read bundles, need not import the watcher (watchdog).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path

NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph",
              "fuse.glusterfs", "davfs", "fuse.rclone"}


# The kernel writes a space, tab, newline and backslash in a mount point as a
# three-digit octal escape (\040, \011, \012, \134); a share mounted at such a path
# would otherwise be missed and taken for local.
_OCTAL = re.compile(r"\\([0-7]{3})")


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)


def on_network_share(path: Path) -> bool:
    """Whether path is on a network file system, or on a share mounted on demand whose
    file system cannot be seen yet (taken for a network one, not for a local disk)."""
    # A share mounted on demand (fstab's x-systemd.automount) shows only its autofs
    # entry in the mount table until something looks inside it: a stat of the folder
    # itself makes the automounter mount it first. An error there (the folder not
    # there yet, no access) leaves the answer to the table as it stands; the caller
    # reports a missing folder itself.
    with contextlib.suppress(OSError):
        os.stat(path)
    kind = fs_type(path)
    # Still under autofs after that look: the automounter slow, or the look refused.
    return kind in NETWORK_FS or kind == "autofs"


def fs_type(path: Path) -> str | None:
    """The file-system type of the mount holding path, from /proc/self/mounts."""
    mount = mount_of(path)
    return mount[1] if mount is not None else None


def mount_of(path: Path) -> tuple[str, str] | None:
    """(mount point, file-system type) of the mount holding path: the longest mount
    point above it, and of two at the same point the later, which is mounted over the
    earlier (a share mounted on demand over its autofs entry). None if unknown."""
    try:
        target = os.path.realpath(path)
        best: tuple[str, str] | None = None
        with open("/proc/self/mounts", encoding="utf-8") as fh:
            for line in fh:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount = _unescape(parts[1])
                if (target == mount or target.startswith(mount.rstrip("/") + "/")) \
                        and len(mount) >= len(best[0] if best else ""):
                    best = mount, parts[2]
        return best
    except OSError:
        return None


class SameMount:
    """The mount a folder is on, as first seen, and whether it is still on it. A share
    unmounted from under a folder written to (a directory target that a transfer agent
    reads) leaves its empty mount point on the local disk: a write lands there, where
    no one looking at the share sees it, and the share hides it for good once it is
    mounted again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: tuple[int, int] | None = None  # the folder's (device, inode) last seen
        self.mount: tuple[str, str] | None = None

    def changed(self) -> tuple[tuple[str, str] | None, tuple[str, str] | None] | None:
        """None while the folder is on the mount first seen (the first call sees it);
        else that mount and the one it is on now, each (point, type). OSError if the
        folder cannot be opened."""
        seen = _identity(self.path)
        if seen == self.seen:
            return None
        now = mount_of(self.path)
        if self.seen is not None and now != self.mount:
            return self.mount, now
        # First seen; or the same share mounted again: a network file system gets a new
        # device number at each mount, a share mounted on demand after each idle timeout;
        # or the folder made again by hand on the same mount (a new inode).
        self.seen, self.mount = seen, now
        return None


def _identity(path: Path) -> tuple[int, int]:
    """The folder's device and inode. The device alone misses a bind mount of a folder
    of the same file system as its mount point (/data/share bound at /srv/share): when
    the bind goes, the bare mount point has the same device, and only the inode tells."""
    # Opened, not stat'ed: a stat of a share's mount point leaves a share mounted on
    # demand unmounted and sees the automounter's entry; an open mounts it.
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        return st.st_dev, st.st_ino
    finally:
        os.close(fd)
