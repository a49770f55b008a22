"""Which file system a path is on: the watcher picks polling on a network file system
(watch.py), and a directory target's start sweep trusts a folder's lock only on a
local one (directory.py); both ask on_network_share. A directory target's writes, and
the moves into sent/, quarantine/ and processing/ (foldermounts.py), also wait while
their share is unmounted (SameMount). hangwatch.py finds the shares mounted inside the
outbox (points_below). Apart from watch.py so that a
delivery, and the commands that read bundles, need not import the watcher (watchdog).
"""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from typing import NamedTuple

NETWORK_FS = {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph",
              "fuse.glusterfs", "davfs", "fuse.rclone",
              # A VM host's shared folder, cluster and parallel file systems, a bucket:
              # what the host or another node writes raises no inotify event here.
              "virtiofs", "vboxsf", "fuse.vmhgfs-fuse", "lustre", "gpfs", "fuse.s3fs",
              "ocfs2", "gfs2"}


class Mount(NamedTuple):
    """What tells one mount from another, from /proc/self/mountinfo. Two alike are the
    same share mounted again: its mount ID is new at each mount, and so is a network
    file system's device number (and a share's mounted on demand, after each idle
    timeout), so neither is kept. Another share mounted at the point (the wrong
    //server/share), or the lower of two stacked mounts showing through once the upper
    is gone, differs in its source or root even where its type is the same."""

    point: str  # where it is mounted
    type: str  # its file-system type: cifs, nfs4, ext4 …
    source: str  # what is mounted: //server/share, server:/export, /dev/sdb1
    root: str  # the folder of that file system mounted there: "/", or a bind's folder


def shown(mount: Mount | None) -> str:
    """A mount as a line for the admin names it: `cifs //fs/finance mounted at /srv/sent`."""
    if mount is None:
        return "an unknown mount"
    folder = f" (its folder {mount.root})" if mount.root != "/" else ""
    return f"{mount.type} {mount.source}{folder} mounted at {mount.point}"


# The kernel writes a space, tab, newline and backslash in a mount point as a
# three-digit octal escape (\040, \011, \012, \134) in a mount point, root and
# source; a share mounted at such a path would otherwise be missed and taken for local.
_OCTAL = re.compile(rb"\\([0-7]{3})")


def _unescape(field: bytes) -> str:
    # Bytes, decoded as the file system's names are (os.fsdecode, as realpath gives the
    # path it is compared with): a name that is not UTF-8 is still a name.
    return os.fsdecode(_OCTAL.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), field))


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
    """The file-system type of the mount holding path, from /proc/self/mountinfo."""
    mount = mount_of(path)
    return mount.type if mount is not None else None


def mount_of(path: Path) -> Mount | None:
    """The mount holding path: the longest mount point above it, and of two at the same
    point the one mounted over the other (a share mounted on demand over its autofs
    entry). None if unknown."""
    found = mount_with_options(path)
    return found[0] if found is not None else None


def mount_with_options(path: Path) -> tuple[Mount, tuple[str, ...]] | None:
    """The mount holding path (as mount_of), with its options as the table lists them:
    the mount point's (rw, relatime …), then the file system's own (NFS's acregmax=…,
    CIFS's actimeo=…). Apart from Mount: a share mounted again with other options is
    still the same share. None if unknown."""
    try:
        target = os.path.realpath(path)
        best: tuple[Mount, tuple[str, ...]] | None = None
        best_parent = -1
        # Read as bytes: any user who may mount (FUSE, a USB stick's label) chooses a
        # mount point's bytes, and one not UTF-8 made every read of the table fail.
        with open("/proc/self/mountinfo", "rb") as fh:
            for line in fh:
                entry = _entry(line)
                if entry is None:
                    continue
                ident, parent, mount, options = entry
                if not (target == mount.point
                        or target.startswith(mount.point.rstrip("/") + "/")):
                    continue
                if best is None or len(mount.point) > len(best[0].point) or (
                        mount.point == best[0].point and ident != best_parent):
                    # At the same point: the later line, unless it is the mount the one
                    # found is mounted on (the table lists a mount's parent first as a
                    # rule, but a mount moved with --move may come after it).
                    best, best_parent = (mount, options), parent
        return best
    except OSError:
        return None


def points_below(folder: Path) -> list[Path]:
    """The mount points below `folder` (not `folder` itself), parents first, as
    /proc/self/mountinfo lists them. No look at the folder: one whose share hangs would
    hold the caller (hangwatch.py) with it. So `folder` is taken as written, and a mount
    reached through a symlink in it is not found. [] where the table cannot be read."""
    above = os.path.normpath(folder).rstrip("/") + "/"
    found: dict[str, None] = {}  # in the table's order; a point mounted over once
    try:
        with open("/proc/self/mountinfo", "rb") as fh:
            for line in fh:
                entry = _entry(line)
                if entry is not None and entry[2].point.startswith(above):
                    found[entry[2].point] = None
    except OSError:
        return []
    return [Path(p) for p in found]


def _entry(line: bytes) -> tuple[int, int, Mount, tuple[str, ...]] | None:
    """(mount ID, parent's mount ID, the mount, its options) of one line of
    /proc/self/mountinfo:
    `ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL…] - TYPE SOURCE SUPEROPTIONS`.
    None for a line that is not one."""
    # Split at the single spaces the kernel writes between fields, and nowhere else: it
    # escapes only space, tab, newline and backslash in a name, so a name may hold any
    # other character that str.split() takes for a space (U+00A0, U+3000, \x1c …),
    # and the fields after it were shifted (a mount taken for another, or for none).
    fields = line.rstrip(b"\n").split(b" ")
    try:
        dash = fields.index(b"-", 6)
        mount = Mount(_unescape(fields[4]), _unescape(fields[dash + 1]),
                      _unescape(fields[dash + 2]), _unescape(fields[3]))
        ident, parent = int(fields[0]), int(fields[1])
    except (ValueError, IndexError):
        return None
    supers = _unescape(fields[dash + 3]) if len(fields) > dash + 3 else ""
    options = tuple(o for o in f"{_unescape(fields[5])},{supers}".split(",") if o)
    return ident, parent, mount, options


class SameMount:
    """The mount a folder is on, as first seen, and whether it is still on it. A share
    unmounted from under a folder written to (a directory target that a transfer agent
    reads) leaves its empty mount point on the local disk: a write lands there, where
    no one looking at the share sees it, and the share hides it for good once it is
    mounted again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: tuple[int, int] | None = None  # the folder's (device, inode) last seen
        self.mount: Mount | None = None

    def changed(self) -> tuple[Mount | None, Mount | None] | None:
        """None while the folder is on the mount first seen (the first call sees it);
        else that mount and the one it is on now. OSError if the folder cannot be
        opened."""
        seen = _identity(self.path)
        if seen == self.seen and os.major(seen[0]) != 0:
            # The same folder of the same disk. A network share, tmpfs or FUSE file system
            # has an anonymous device number (major 0), which the kernel gives the next
            # such mount once it is unmounted, and its root may have any other's inode (a
            # FUSE root's is always 1): another share mounted there can look the same, so
            # for those the mount table is read at each look.
            return None
        now = mount_of(self.path)
        if self.seen is not None and now != self.mount:
            return self.mount, now
        # First seen; or the same share mounted again (Mount: the same source, root, type
        # and point; a new device number); or the folder made again by hand on the same
        # mount (a new inode).
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
