"""Which file system a path is on: the watcher picks polling on a network file system
(watch.py), and a directory target's start sweep trusts a folder's lock only on a
local one (directory.py); both ask on_network_share. Apart from watch.py so that a
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
