"""daemon/watching/mounts.py: which mount a folder is on, read from /proc/self/mountinfo as the
kernel writes it, and whether a folder is still on the share it was first seen on
(SameMount). The real mounts are in tests/faults/test_mounts.py; here the kernel's
answers (the table, a folder's device number) are stood in for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import fake_mountinfo

from daemon.watching import mounts
from daemon.watching.mounts import Mount, SameMount, mount_of, shown

SENT = Path("/srv/outbox-sent")
# The lines as the kernel writes them: ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL…]
# - TYPE SOURCE SUPEROPTIONS.
ROOT_FS = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
FINANCE = "40 22 0:51 / /srv/outbox-sent rw,relatime shared:90 - cifs //fs/finance rw,vers=3.1.1\n"


class _Kernel:
    """The mount table and the folder's device and inode numbers as a test sets them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, table: str, device: int) -> None:
        self.table, self.folder = table, (device, 2)
        fake_mountinfo(monkeypatch, lambda: self.table)
        monkeypatch.setattr(mounts, "_identity", lambda path: self.folder)

    def now(self, table: str, device: int, inode: int = 2) -> None:
        self.table, self.folder = table, (device, inode)


def test_a_mount_is_read_with_its_source_and_root_past_the_optional_fields() -> None:
    """mountinfo's optional fields (shared:, master:, any number of them) come before the
    "-"; the type, source and root are read after and before them, each with the kernel's
    octal escapes decoded (a space in a share's name, a bind's folder, a mount point)."""
    table = (ROOT_FS +
             "41 22 0:52 / /srv/two\\040words rw shared:91 master:3 propagate_from:2 - cifs "
             "//fs/finance\\040dept rw\n"
             "42 22 8:1 /data/sent\\011tab /srv/bound rw - ext4 /dev/sda1 rw\n"
             "garbage line\n")
    with pytest.MonkeyPatch.context() as mp:
        fake_mountinfo(mp, table)
        assert mount_of(Path("/srv/two words/sent")) == Mount(
            "/srv/two words", "cifs", "//fs/finance dept", "/")
        assert mount_of(Path("/srv/bound")) == Mount("/srv/bound", "ext4", "/dev/sda1",
                                                     "/data/sent\ttab")
        assert mount_of(Path("/var/lib")) == Mount("/", "ext4", "/dev/sda1", "/")


def test_a_mount_point_not_utf8_or_holding_a_space_the_kernel_leaves_is_read() -> None:
    """The kernel escapes only space, tab, newline and backslash: a mount point any user
    may choose (a FUSE mount, a USB stick's label) can hold bytes that are not UTF-8, or
    a character str.split() takes for a space (U+00A0, U+3000, \\x1c), or bytes.split()
    does (a form feed, a vertical tab, a carriage return). Such a line is
    read as the mount it is, and the others with it: the table is neither unreadable
    (every look at any folder's mount failed) nor its fields shifted (a share taken for
    the disk below it, so the outbox watched by inotify and its bundles missed)."""
    odd = "/srv/b\udcffad"  # the byte 0xff, as os.fsdecode gives it
    table = (ROOT_FS +
             f"60 22 0:70 / {odd} rw - fuse.sshfs user@host:/x rw\n"
             "61 22 0:71 / /srv/finance\u00a0share rw - cifs //fs/finance rw\n"
             "62 22 0:72 / /srv/\u7d4c\u7406\u3000x rw - nfs4 fs:/x\x1cy rw\n"
             "63 22 0:73 / /home/eve/m\x1c-\x1cnfs4\x1cz rw - tmpfs none rw\n"
             "64 22 0:74 / /srv/form\x0cfeed\r rw - nfs4 fs:/ff rw\n"
             + FINANCE)
    with pytest.MonkeyPatch.context() as mp:
        fake_mountinfo(mp, table)
        assert mount_of(SENT / "2026-01-01") == Mount(str(SENT), "cifs", "//fs/finance", "/")
        assert mount_of(Path(odd) / "a") == Mount(odd, "fuse.sshfs", "user@host:/x", "/")
        assert mount_of(Path("/srv/finance\u00a0share/outbox")) == Mount(
            "/srv/finance\u00a0share", "cifs", "//fs/finance", "/")
        assert mount_of(Path("/srv/\u7d4c\u7406\u3000x")) == Mount(
            "/srv/\u7d4c\u7406\u3000x", "nfs4", "fs:/x\x1cy", "/")
        assert mount_of(Path("/home/eve/m")) == Mount("/", "ext4", "/dev/sda1", "/")
        assert mount_of(Path("/srv/form\x0cfeed\r/outbox")) == Mount(
            "/srv/form\x0cfeed\r", "nfs4", "fs:/ff", "/")


def test_of_two_mounts_at_one_point_the_one_mounted_over_the_other_is_taken() -> None:
    """Stacked at one point, the upper mount is the one a folder there is on: the later
    line, unless that line is the lower one, on which the earlier is mounted (the table
    can list a mount moved with --move after what is mounted over it)."""
    lower = "50 22 0:60 / /srv/outbox-sent rw - cifs //fs/old rw\n"
    upper = "51 50 0:61 / /srv/outbox-sent rw - cifs //fs/finance rw\n"
    with pytest.MonkeyPatch.context() as mp:
        for table in (ROOT_FS + lower + upper, ROOT_FS + upper + lower):
            fake_mountinfo(mp, table)
            assert mount_of(SENT / "2026-01-01") == Mount(str(SENT), "cifs", "//fs/finance",
                                                          "/"), table


def test_the_same_share_mounted_again_is_the_same_mount(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The share unmounted and mounted again: a new mount ID, a new device number, other
    options — the same source, root, type and point, so the folder is still at home."""
    kernel = _Kernel(monkeypatch, ROOT_FS + FINANCE, 51)
    seen = SameMount(SENT)
    assert seen.changed() is None
    kernel.now(ROOT_FS + "77 22 0:88 / /srv/outbox-sent ro,noatime shared:93 - cifs "
               "//fs/finance rw,vers=3.0\n", 88)
    assert seen.changed() is None


def test_another_share_of_the_same_type_mounted_at_the_point_is_not_the_share(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin mounts the wrong //server/share at the point: same type, same point, but
    another source. SameMount says so (both mounts, each named with its source), and goes
    on saying so until the right share is back."""
    kernel = _Kernel(monkeypatch, ROOT_FS + FINANCE, 51)
    seen = SameMount(SENT)
    assert seen.changed() is None
    kernel.now(ROOT_FS + "60 22 0:70 / /srv/outbox-sent rw - cifs //fs/hr rw\n", 70)
    moved = seen.changed()
    assert moved is not None
    assert [shown(m) for m in moved] == [f"cifs //fs/finance mounted at {SENT}",
                                         f"cifs //fs/hr mounted at {SENT}"]
    assert seen.changed() is not None
    kernel.now(ROOT_FS + FINANCE.replace("0:51", "0:72"), 72)
    assert seen.changed() is None


def test_the_lower_of_two_stacked_shares_showing_through_is_not_the_share(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Two shares of one type stacked at the point: the upper (the folder's) unmounted,
    the lower shows through, with another device number. It is not the share."""
    lower = "50 22 0:60 / /srv/outbox-sent rw - nfs4 srv:/old rw\n"
    kernel = _Kernel(monkeypatch, ROOT_FS + lower +
                     "51 50 0:61 / /srv/outbox-sent rw - nfs4 srv:/finance rw\n", 61)
    seen = SameMount(SENT)
    assert seen.changed() is None
    kernel.now(ROOT_FS + lower, 60)
    moved = seen.changed()
    assert moved is not None and [m.source if m else None for m in moved] == [
        "srv:/finance", "srv:/old"]


def test_a_bind_mount_of_another_folder_of_the_same_disk_is_not_the_share(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The point bound to another folder of the same disk: same source and type, another
    root (the folder bound), and the line names it."""
    bind = "42 22 8:1 {} /srv/outbox-sent rw - ext4 /dev/sdb1 rw\n"
    kernel = _Kernel(monkeypatch, ROOT_FS + bind.format("/finance/sent"), 1)
    seen = SameMount(SENT)
    assert seen.changed() is None
    kernel.now(ROOT_FS + bind.format("/hr/sent"), 1, inode=3)  # the same disk
    moved = seen.changed()
    assert moved is not None
    assert shown(moved[1]) == f"ext4 /dev/sdb1 (its folder /hr/sent) mounted at {SENT}"


def test_another_share_given_the_device_number_the_share_had_is_not_the_share(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel gives the anonymous device number (major 0) a share had to the next one
    mounted after it, and two shares' roots can have one inode number (a FUSE root's is
    always 1): the folder looks the same to fstat, and the table still tells."""
    kernel = _Kernel(monkeypatch, ROOT_FS + FINANCE, 51)
    seen = SameMount(SENT)
    assert seen.changed() is None
    kernel.now(ROOT_FS + "60 22 0:51 / /srv/outbox-sent rw - cifs //fs/hr rw\n", 51)
    assert seen.changed() is not None


def test_a_folder_on_a_disk_is_looked_at_without_reading_the_table_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A disk's device number is its own: while it and the folder's inode are the same,
    a look costs an open and fstat, no read of the mount table."""
    disk = os.makedev(8, 17)
    kernel = _Kernel(monkeypatch, ROOT_FS + "42 22 8:17 / /srv/outbox-sent rw - ext4 "
                     "/dev/sdb1 rw\n", disk)
    reads: list[None] = []
    fake_mountinfo(monkeypatch, lambda: reads.append(None) or kernel.table)
    seen = SameMount(SENT)
    assert seen.changed() is None and seen.changed() is None
    assert len(reads) == 1


def test_the_mounts_below_a_folder_are_read_from_the_table_alone(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """points_below lists the mount points under a folder (a sidecar's share, one whose
    name the kernel escapes), parents first and each once (a share mounted over another),
    not the folder itself nor a sibling sharing its name's start (/srv/outbox2), and
    without a look at the folder: hangwatch.py asks it while the outbox may hang."""
    fake_mountinfo(monkeypatch, ROOT_FS +
                   "41 22 0:52 / /srv/outbox rw - cifs //fs/outbox rw\n"
                   "42 41 0:53 / /srv/outbox/INV\\0401 rw - cifs //fs/inv1 rw\n"
                   "43 22 0:54 / /srv/outbox2/x rw - cifs //fs/other rw\n"
                   "44 42 0:55 / /srv/outbox/INV\\0401/deep rw - nfs4 fs:/deep rw\n"
                   "45 42 0:56 / /srv/outbox/INV\\0401 rw - cifs //fs/inv1b rw\n")
    looked: list[str] = []
    for look in ("stat", "lstat", "scandir", "listdir"):
        monkeypatch.setattr(os, look, lambda *a, **k: looked.append(str(a[0])))
    assert mounts.points_below(Path("/srv/outbox/")) == [
        Path("/srv/outbox/INV 1"), Path("/srv/outbox/INV 1/deep")]
    assert looked == []
