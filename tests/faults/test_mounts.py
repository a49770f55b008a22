"""daemon/watching/mounts.py with the real kernel: SameMount tells the share a folder was first
seen on from another share mounted at the same point, or from a lower mount showing
through, and takes the same share mounted again for itself (tmpfs mounts named as
shares, bind mounts). Needs root; skipped with the reason elsewhere."""

from __future__ import annotations

from pathlib import Path

from daemon.watching.mounts import Mount, SameMount, mount_of
from faults.conftest import Mounts


def test_another_share_mounted_at_the_point_is_told_from_the_share_mounted_again(
        tmp_path: Path, mounts: Mounts) -> None:
    """sent/'s share unmounted, another of the same type mounted there: not the share;
    that one unmounted and the share mounted again (another device number): the share."""
    sent = mounts.tmpfs(tmp_path / "sent", source="//fs/finance")
    seen = SameMount(sent)
    assert seen.changed() is None
    assert mount_of(sent) == Mount(str(sent), "tmpfs", "//fs/finance", "/")
    mounts.lazy_unmount(sent)
    mounts.tmpfs(sent, source="//fs/hr")
    moved = seen.changed()
    assert moved is not None and [m.source if m else None for m in moved] == [
        "//fs/finance", "//fs/hr"]
    mounts.lazy_unmount(sent)
    mounts.tmpfs(sent, source="//fs/finance")
    assert seen.changed() is None


def test_the_lower_of_two_stacked_shares_showing_through_is_not_the_share(
        tmp_path: Path, mounts: Mounts) -> None:
    """Two shares of one type stacked at the point; the upper, the folder's, unmounted:
    the lower one shows through, and is not the share."""
    sent = mounts.tmpfs(tmp_path / "sent", source="//fs/old")
    mounts.tmpfs(sent, source="//fs/finance")
    seen = SameMount(sent)
    assert seen.changed() is None and seen.mount and seen.mount.source == "//fs/finance"
    mounts.lazy_unmount(sent)
    moved = seen.changed()
    assert moved is not None and moved[1] and moved[1].source == "//fs/old"


def test_a_bind_mount_of_another_folder_of_the_disk_is_not_the_share(
        tmp_path: Path, mounts: Mounts) -> None:
    """The point bound to another folder of the same file system (same source and type):
    its root tells it from the folder bound there first."""
    disk = mounts.tmpfs(tmp_path / "disk", source="/dev/sdz1")
    (disk / "finance").mkdir(), (disk / "hr").mkdir()
    sent = mounts.bind(disk / "finance", tmp_path / "sent")
    seen = SameMount(sent)
    assert seen.changed() is None and seen.mount and seen.mount.root == "/finance"
    mounts.lazy_unmount(sent)
    mounts.bind(disk / "hr", sent)
    moved = seen.changed()
    assert moved is not None and moved[1] and moved[1].root == "/hr"
    mounts.lazy_unmount(sent)
    mounts.bind(disk / "finance", sent)
    assert seen.changed() is None


def test_a_mount_any_user_may_name_neither_hides_the_share_nor_stops_the_look(
        tmp_path: Path, mounts: Mounts) -> None:
    """A mount point any user may choose (FUSE, a USB stick's label) with a byte that is
    not UTF-8, or a character the kernel does not escape but str.split() splits at
    (\\x1c, U+3000): the share beside it is still found as the share, and such a mount
    as itself; before, the first made every look at any folder's mount raise
    UnicodeDecodeError (the daemon's start, each move into sent/), the second was read
    with its fields shifted."""
    share = mounts.tmpfs(tmp_path / "share", source="//fs/finance")
    odd = mounts.tmpfs(tmp_path / "b\udcffad", source="eve")
    spaced = mounts.tmpfs(tmp_path / "m\x1c-\x1cnfs4\u3000x", source="//fs/eve\u3000x")
    assert mount_of(share / "sent") == Mount(str(share), "tmpfs", "//fs/finance", "/")
    assert mount_of(odd) == Mount(str(odd), "tmpfs", "eve", "/")
    assert mount_of(spaced) == Mount(str(spaced), "tmpfs", "//fs/eve\u3000x", "/")
    assert SameMount(share).changed() is None
