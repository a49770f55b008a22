"""daemon/watching/sharecache.py: whether the outbox's share may show another machine's writes
later than settle_seconds, judged from /proc/self/mountinfo as the kernel writes it (the
table stood in for, as in test_mounts.py: NFS lists only the cache options not at their
default; CIFS lists actimeo=, or acregmax= and acdirmax= when they differ)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import fake_mountinfo

from daemon.watching.sharecache import LateShare, caching, late_share

OUTBOX = Path("/srv/outbox")
ROOT_FS = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
NFS_LINE = ("40 22 0:51 / /srv/outbox rw,relatime shared:90 - {type} srv:/finance "
            "rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,{options}hard,proto=tcp,"
            "timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.2,local_lock=none,addr=10.0.0.1\n")
CIFS_LINE = ("40 22 0:51 / /srv/outbox rw,relatime shared:90 - {type} //fs/finance "
             "rw,vers=3.1.1,cache=strict,username=outboxd,uid=990,noforceuid,gid=990,"
             "noforcegid,addr=10.0.0.1,file_mode=0640,dir_mode=0750,soft,nounix,serverino,"
             "mapposix,rsize=4194304,wsize=4194304,bsize=1048576,echo_interval=60,"
             "{options}\n")


def _late(monkeypatch: pytest.MonkeyPatch, line: str, settle: float = 5.0) -> LateShare | None:
    fake_mountinfo(monkeypatch, ROOT_FS + line)
    return late_share(OUTBOX, settle)


def test_nfs_at_its_defaults_is_warned_of_with_each_value_the_time_and_the_fix(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """NFS at the kernel's defaults (the table names no cache option): a new file may be
    seen up to 60 s late (acdirmax, acregmax), beyond settle_seconds = 5. The warning
    names the outbox, the mount, each value (marked as the default), the settle time,
    and the fix: settle_seconds above 60, or actimeo=1 / lookupcache=none."""
    late = _late(monkeypatch, NFS_LINE.format(type="nfs4", options=""))
    assert late is not None and late.caching.seconds == 60
    words = late.words()
    assert "the outbox /srv/outbox is on nfs4 srv:/finance mounted at /srv/outbox" in words
    assert ("up to 60 s late (acregmin=3 (default), acregmax=60 (default), acdirmin=30 "
            "(default), acdirmax=60 (default)); with [outbox] settle_seconds = 5") in words
    assert words.endswith("set [outbox] settle_seconds above 60, or mount the share with "
                          "actimeo=1 (or lookupcache=none); a reload (systemctl reload "
                          "outboxd) checks again")
    assert late.fields()["cache_seconds"] == 60 and late.fields()["settle_seconds"] == 5


def test_the_longest_of_the_nfs_times_counts_though_others_are_short(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """acdirmax lowered to 2 leaves acregmax at its 60: a file's new size or times may
    still be seen a minute late; and acregmax lowered to 1 leaves acdirmax at its 60: a
    new file in a sidecar may be listed a minute late. Also under plain "nfs" (version 3)."""
    late = _late(monkeypatch, NFS_LINE.format(type="nfs", options="acdirmin=1,acdirmax=2,"))
    assert late is not None and late.caching.seconds == 60
    assert "acdirmin=1, acdirmax=2" in late.caching.options
    late = _late(monkeypatch, NFS_LINE.format(type="nfs", options="acregmin=1,acregmax=1,"))
    assert late is not None and late.caching.seconds == 60
    assert "acregmax=1, acdirmin=30 (default), acdirmax=60 (default)" in late.caching.options


@pytest.mark.parametrize("options", [
    "acregmin=1,acregmax=1,acdirmin=1,acdirmax=1,",  # actimeo=1, as the kernel lists it
    "actimeo=1,",  # as fstab or a table that keeps it names it
    "acregmin=0,acregmax=0,acdirmin=0,acdirmax=0,",  # actimeo=0: 0 s is a time, no cache
    "noac,acregmin=0,acregmax=0,acdirmin=0,acdirmax=0,",  # noac, as the kernel lists it
    "noac,",
    "lookupcache=none,",  # every lookup asks the server, and brings fresh attributes
])
def test_nfs_with_a_short_cache_or_none_is_not_warned_of(
        monkeypatch: pytest.MonkeyPatch, options: str) -> None:
    assert _late(monkeypatch, NFS_LINE.format(type="nfs4", options=options)) is None


def test_nfs_with_actimeo_1_and_a_settle_time_of_1_or_less_is_told_to_cache_nothing(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """actimeo=1 is not shorter than settle_seconds = 1: warned of (the attachment is seen
    as the bundle settles, or just after), and actimeo=1 is not offered as the fix."""
    late = _late(monkeypatch, NFS_LINE.format(
        type="nfs4", options="acregmin=1,acregmax=1,acdirmin=1,acdirmax=1,"), settle=1.0)
    assert late is not None
    assert "above 1, or mount the share with lookupcache=none (or noac)" in late.fix()


def test_a_positive_only_lookup_cache_does_not_shorten_the_attribute_cache(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """lookupcache=pos (as the kernel lists "positive") caches no failed lookups, but a
    listing and a file's times are still cached a minute: warned of, the option named."""
    late = _late(monkeypatch, NFS_LINE.format(type="nfs4", options="lookupcache=pos,"))
    assert late is not None and late.caching.options.endswith(", lookupcache=pos")


@pytest.mark.parametrize("options", ["actimeo=1,closetimeo=1", "actimeo=1", ""])
def test_cifs_with_actimeo_1_or_at_its_default_is_not_warned_of(
        monkeypatch: pytest.MonkeyPatch, options: str) -> None:
    """CIFS caches 1 s unless told otherwise, whatever the kernel: actimeo=1 as every
    kernel since 2.6.37 lists it, and a table with no actimeo at all (older kernels)."""
    assert _late(monkeypatch, CIFS_LINE.format(type="cifs", options=options)) is None
    default = caching("cifs", ())
    assert default is not None and default.seconds == 1


@pytest.mark.parametrize("options, seconds, shown", [
    # Linux 5.13 on: the two listed apart when they differ.
    ("acdirmax=30,acregmax=1,closetimeo=1", 30, "acregmax=1, acdirmax=30"),
    # Linux 5.12: actimeo (files), then acdirmax.
    ("actimeo=1,acdirmax=30", 30, "acregmax=1, acdirmax=30"),
    ("actimeo=60,closetimeo=1", 60, "actimeo=60"),  # files and folders alike
])
def test_cifs_caching_folders_or_files_longer_than_settle_time_is_warned_of(
        monkeypatch: pytest.MonkeyPatch, options: str, seconds: int, shown: str) -> None:
    """The longest of the file and folder times, each named as the kernel set it."""
    late = _late(monkeypatch, CIFS_LINE.format(type="smb3", options=options))
    assert late is not None and late.caching.seconds == seconds
    assert late.caching.options == shown
    assert f"set [outbox] settle_seconds above {seconds}, or mount the share with actimeo=1" \
        in late.fix()


def test_cifs_at_its_default_with_a_settle_time_under_a_second_is_warned_of(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """settle_seconds = 0.3 on CIFS at its 1 s default: warned of, the default named, and
    actimeo=0 as the mount's fix."""
    late = _late(monkeypatch, CIFS_LINE.format(type="cifs", options=""), settle=0.3)
    assert late is not None and late.caching.options == "actimeo=1 (default)"
    assert "mount the share with actimeo=0" in late.fix()


def test_a_local_disk_or_an_unknown_mount_is_not_warned_of(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """ext4 (the outbox on the root disk, or a disk of its own), a share still under its
    automounter's entry, and a mount table that cannot be read: no warning."""
    assert _late(monkeypatch, "") is None
    assert _late(monkeypatch, "40 22 8:17 / /srv/outbox rw - ext4 /dev/sdb1 rw\n",
                 settle=0) is None
    assert _late(monkeypatch, "40 22 0:40 / /srv/outbox rw - autofs systemd-1 rw\n") is None

    def unreadable() -> str:
        raise PermissionError(13, "Permission denied")
    fake_mountinfo(monkeypatch, unreadable)
    assert late_share(OUTBOX, 5.0) is None


def test_a_share_above_the_outbox_is_the_one_judged(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox a folder inside the NFS share: the share's mount holds it."""
    fake_mountinfo(monkeypatch, ROOT_FS + NFS_LINE.format(type="nfs4", options="").replace(
        "/srv/outbox", "/srv"))
    late = late_share(OUTBOX / "invoices", 5.0)
    assert late is not None and late.mount.point == "/srv"
