"""Fault injection with the real kernel: tmpfs mounts of a few MB, bind mounts,
`umount -l`, immutable files. Needs root (CI runs these as root); elsewhere
each test that mounts is skipped with the reason."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

OUTBOXD = [sys.executable, "-m", "daemon"]


def _run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


class Mounts:
    """Mount points made by one test; all lazily unmounted at its end."""

    def __init__(self) -> None:
        self.points: list[Path] = []

    def tmpfs(self, where: Path, size: str = "2m", source: str = "tmpfs") -> Path:
        """A tmpfs at `where`; `source`: the name the mount table gives it, as a share's
        //server/share (a stand-in for one share or another)."""
        where.mkdir(parents=True, exist_ok=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", source, str(where))
        self.points.append(where)
        return where

    def ext4(self, where: Path, size: str = "16M", *mkfs: str) -> Path:
        """A small ext4 file system (a loop-mounted image beside `where`, no blocks kept
        for root): unlike tmpfs, a full one refuses new folders too, as a real share's
        disk does. Skips the test where loop devices or mkfs.ext4 are not to be had.
        `mkfs`: more options (`-I 128`: inodes too small for times finer than a second,
        as a FAT disk or an old NFS server keeps them)."""
        image = where.with_name(where.name + ".img")
        with open(image, "wb") as fh:
            fh.truncate(_bytes(size))
        try:
            _run("mkfs.ext4", "-q", "-m", "0", *mkfs, str(image))
            where.mkdir(parents=True, exist_ok=True)
            _run("mount", "-o", "loop", str(image), str(where))
        except (subprocess.CalledProcessError, FileNotFoundError) as exc:
            pytest.skip(f"cannot make a loop-mounted ext4 here ({exc}): no mkfs.ext4 or no "
                        "loop device")
        self.points.append(where)
        return where

    def bind(self, src: Path, where: Path, readonly: bool = False) -> Path:
        where.mkdir(parents=True, exist_ok=True)
        _run("mount", "--bind", str(src), str(where))
        self.points.append(where)
        if readonly:
            _run("mount", "-o", "remount,ro,bind", str(where))
        return where

    def lazy_unmount(self, where: Path) -> None:
        _run("umount", "-l", str(where))
        self.points.remove(where)

    def cleanup(self) -> None:
        for p in reversed(self.points):
            subprocess.run(["umount", "-l", str(p)], capture_output=True)
        self.points.clear()


def _bytes(size: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    return int(size[:-1]) * units[size[-1].lower()] if size[-1].isalpha() else int(size)


def _can_mount(tmp: Path) -> str | None:
    if os.geteuid() != 0:
        return "needs root to mount tmpfs/bind mounts (CI runs these as root)"
    probe = tmp / ".mount-probe"
    probe.mkdir()
    try:
        _run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe))
    except (subprocess.CalledProcessError, FileNotFoundError) as exc:
        return f"cannot mount here ({exc}); a container without CAP_SYS_ADMIN?"
    _run("umount", str(probe))
    probe.rmdir()
    return None


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[Mounts]:
    why = _can_mount(tmp_path)
    if why:
        pytest.skip(why)
    m = Mounts()
    try:
        yield m
    finally:
        m.cleanup()


def fill(folder: Path) -> Path:
    """Fill the file system of `folder` to the last byte; the filler file is returned."""
    filler = folder / ".filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for block in (1 << 16, 512, 1):
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * block):
                    pass
    finally:
        os.close(fd)
    return filler


def status_json(config: Path) -> dict[str, Any]:
    import json
    out = subprocess.run([*OUTBOXD, "status", "--json", "-c", str(config)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def bundle_of(config: Path, invoice_file: str) -> dict[str, Any]:
    rows = [b for b in status_json(config)["bundles"] if b["invoice_file"] == invoice_file]
    assert rows, f"{invoice_file} not in status"
    return rows[-1]


def no_traceback(*logs: str) -> None:
    for text in logs:
        assert "Traceback" not in text and '"exception"' not in text, text[-3000:]
