"""daemon/watching/foldermounts.py: which of sent/, quarantine/ and processing/ are off the mount
they were on when outboxd started. The real unmount is in tests/faults/test_archive_mounts.py;
here the kernel's answers (a folder's device, the mount table) are stood in for."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from daemon.configuration.config import Settings
from daemon.configuration.config_folders import prepare_folders
from daemon.watching import mounts
from daemon.watching.foldermounts import FolderMounts
from daemon.watching.mounts import Mount

DISK = Mount("/", "ext4", "/dev/sda1", "/")


def _settings(tmp_path: Path, sent: str = "sent") -> Settings:
    (tmp_path / "outbox").mkdir(exist_ok=True)
    s = Settings(outbox={"path": str(tmp_path / "outbox")},
                 paths={"state_dir": str(tmp_path / "state"), "sent": str(tmp_path / sent)},
                 delivery={"url": "http://127.0.0.1:9/"})
    prepare_folders(s)
    return s


class _Kernel:
    """Each folder's device and mount as a test sets them (every folder else: device 1 on
    the disk mounted at /)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.devices: dict[Path, int] = {}
        self.mounts: dict[Path, Mount] = {}
        monkeypatch.setattr(mounts, "_identity", self._identity)
        monkeypatch.setattr(mounts, "mount_of", self._mount)
        monkeypatch.setattr("daemon.watching.foldermounts.mount_of", self._mount)

    def _identity(self, path: Path) -> tuple[int, int]:
        if not Path(path).is_dir():
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return self.devices.get(Path(path), 1), 1  # (device, inode)

    def _mount(self, path: Path) -> Mount | None:
        return self.mounts.get(Path(path), DISK)

    def share_at(self, folder: Path, device: int, source: str = "//fs/finance") -> None:
        self.devices[folder], self.mounts[folder] = device, Mount(str(folder), "cifs",
                                                                  source, "/")

    def unmount(self, folder: Path) -> None:
        self.devices.pop(folder), self.mounts.pop(folder)


def test_a_folder_on_its_share_is_fine_and_off_it_is_named_with_both_mounts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ on a share at the start: while there, nothing to say; unmounted, the line names
    the key, the folder, the share's mount and the local disk's; mounted again (a new
    device number, as a remount gets), nothing to say again."""
    kernel = _Kernel(monkeypatch)
    kernel.share_at(tmp_path / "sent", 40)
    s = _settings(tmp_path)
    folders = FolderMounts(s)
    assert folders.away(s.sent_dir) is None
    kernel.unmount(tmp_path / "sent")
    line = folders.away(s.sent_dir)
    assert line is not None and line.startswith(f"[paths] sent {s.sent_dir} ")
    assert f"cifs //fs/finance mounted at {s.sent_dir}; now ext4 /dev/sda1 mounted at /" in line
    assert folders.away(s.quarantine_dir) is None  # on the disk it was on
    kernel.share_at(tmp_path / "sent", 41)
    assert folders.away(s.sent_dir) is None


def test_a_folder_removed_by_hand_on_its_own_file_system_is_not_held_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ removed by hand, its file system still mounted: the archive makes it again as
    it always did (no wait for a share that never went away)."""
    _Kernel(monkeypatch)
    s = _settings(tmp_path)
    folders = FolderMounts(s)
    shutil.rmtree(s.sent_dir)
    assert folders.away(s.sent_dir) is None


def test_a_folder_inside_a_share_that_went_is_held_back_though_missing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ a folder inside a share: with the share unmounted it is missing, and making it
    again would make it on the local disk: held back, the line saying it is not there and
    which file system it was on."""
    kernel = _Kernel(monkeypatch)
    (tmp_path / "share").mkdir()
    s = _settings(tmp_path, "share/sent")
    kernel.share_at(s.sent_dir, 40)
    kernel.mounts[s.sent_dir] = Mount(str(tmp_path / "share"), "nfs4", "srv:/finance", "/")
    folders = FolderMounts(s)
    shutil.rmtree(tmp_path / "share")
    (tmp_path / "share").mkdir()  # the bare mount point
    kernel.unmount(s.sent_dir)
    line = folders.away(s.sent_dir)
    assert line is not None and "is not there" in line
    assert f"nfs4 srv:/finance mounted at {tmp_path / 'share'}" in line
    assert "ext4 /dev/sda1 mounted at /" in line


def test_a_reload_keeps_the_mount_of_the_start_for_a_folder_it_still_names(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload made while sent/'s share is away (a new token, say) must not take the bare
    mount point for sent/'s home: it is still held back after the reload. A folder the
    reload names anew is noted as it is then."""
    kernel = _Kernel(monkeypatch)
    kernel.share_at(tmp_path / "sent", 40)
    s = _settings(tmp_path)
    folders = FolderMounts(s)
    kernel.unmount(tmp_path / "sent")
    reloaded = FolderMounts(s, folders)
    assert reloaded.away(s.sent_dir) is not None
    elsewhere = _settings(tmp_path, "sent2")
    assert FolderMounts(elsewhere, folders).away(elsewhere.sent_dir) is None


def test_a_bind_mount_of_a_folder_of_the_same_disk_is_missed_by_no_device_number(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ a bind mount of a folder of the file system its mount point is on: unbound,
    the bare mount point has the same device number but another inode; held back all the
    same, the line naming the bind's mount and the disk's."""
    kernel = _Kernel(monkeypatch)
    s = _settings(tmp_path)
    inode = {"now": 500}
    monkeypatch.setattr(mounts, "_identity", lambda p: (1, inode["now"] if Path(p) ==
                                                        s.sent_dir else 1))
    kernel.mounts[s.sent_dir] = Mount(str(s.sent_dir), "ext4", "/dev/sda1", "/data/sent")
    folders = FolderMounts(s)
    assert folders.away(s.sent_dir) is None
    inode["now"] = 7  # the bind gone: the bare mount point, same disk
    kernel.mounts.pop(s.sent_dir)
    line = folders.away(s.sent_dir)
    assert line is not None and (f"ext4 /dev/sda1 (its folder /data/sent) mounted at "
                                 f"{s.sent_dir}; now ext4 /dev/sda1 mounted at /") in line
