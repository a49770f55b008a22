"""A work folder held (workfolder.hold_folder) never through a link inside the outbox; a
look at one (entry_at, there, folder_mark) that the share fails is no answer."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from helpers import looks_fail

from daemon.errors import HostileInput
from daemon.fs.workfolder import entry_at, folder_mark, hold_folder, still_at, there


def _linked_dot_outboxd(tmp_path: Path) -> tuple[Path, Path]:
    """An outbox whose `.outboxd` is a link to a folder holding processing/W; W's path."""
    outbox, elsewhere = tmp_path / "outbox", tmp_path / "elsewhere"
    (elsewhere / "processing" / "W").mkdir(parents=True)
    outbox.mkdir()
    (outbox / ".outboxd").symlink_to(elsewhere)
    return outbox, outbox / ".outboxd" / "processing" / "W"


def test_a_work_folder_behind_a_dot_outboxd_made_a_link_is_refused_naming_the_link(
        tmp_path: Path) -> None:
    """Held within the outbox, a work folder whose `.outboxd` is a link is not opened:
    the admin's error names `.outboxd` as the link and says to put the folder back."""
    outbox, work = _linked_dot_outboxd(tmp_path)
    with pytest.raises(OSError) as raised:
        hold_folder(work, within=outbox)
    assert raised.value.errno == errno.ELOOP
    assert raised.value.filename == str(outbox / ".outboxd")
    assert "put the folder itself back under this name" in str(raised.value)


def test_a_work_folder_behind_a_dot_outboxd_made_a_link_is_refused_in_the_clerks_words(
        tmp_path: Path) -> None:
    """With a file of the bundle named (the clerk's), as folder_below refuses a link on
    the way: HostileInput naming that file and the link."""
    outbox, work = _linked_dot_outboxd(tmp_path)
    with pytest.raises(HostileInput) as raised:
        hold_folder(work, "INV-1.xml", within=outbox)
    assert raised.value.file == "INV-1.xml"
    assert "lies in .outboxd, which is a symbolic link" in raised.value.message


def test_a_work_folder_outside_the_outbox_is_held_by_its_path_as_configured(
        tmp_path: Path) -> None:
    """[paths] processing outside the outbox is the admin's: a link on the way there is
    followed; the work folder itself is still never a link."""
    (tmp_path / "real" / "processing" / "W").mkdir(parents=True)
    (tmp_path / "mnt").symlink_to(tmp_path / "real")
    fd = hold_folder(tmp_path / "mnt" / "processing" / "W", within=tmp_path / "outbox")
    try:
        assert os.fstat(fd).st_ino == os.stat(tmp_path / "real" / "processing" / "W").st_ino
    finally:
        os.close(fd)
    (tmp_path / "real" / "processing" / "L").symlink_to(tmp_path / "real")
    with pytest.raises(OSError) as raised:
        hold_folder(tmp_path / "mnt" / "processing" / "L", within=tmp_path / "outbox")
    assert raised.value.errno == errno.ELOOP


def test_a_folder_of_the_same_inode_number_on_another_file_system_is_not_the_one_held(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """still_at compares the file system as well as the inode number: a folder in the work
    folder's place with the same number on another device (a share mounted over its name,
    another file system's folder moved in) is not the folder held, and nothing is removed
    or moved by that name; the very folder is."""
    work = tmp_path / "W"
    work.mkdir()
    fd = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert still_at(work, fd)
        real = os.lstat(work)
        fields = list(real[:10])
        fields[2] = real.st_dev + 1  # st_dev: the same inode number, another file system
        elsewhere = os.stat_result(fields)
        monkeypatch.setattr(os, "lstat", lambda path, *a, **k: elsewhere
                            if Path(path) == work else real)
        assert not still_at(work, fd)
    finally:
        os.close(fd)


def _stat_fails(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    """os.stat and os.lstat of `name` (by a folder's descriptor or a path ending in it)
    fail with `code`, as a share half away answers."""
    looks_fail(monkeypatch, name, code, ("stat", "lstat"))


@pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE, errno.ENOTCONN],
                         ids=["EIO", "ESTALE", "ENOTCONN"])
def test_a_look_the_share_fails_is_no_answer_that_nothing_is_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """entry_at and there raise when the look fails but for "no such file" (a share's
    I/O error, stale handle, lost connection), by a folder's descriptor or by path: taken
    for "nothing there", an archive entry was archived again beside, a receipt read back
    as none, a work folder taken for one never made. Gone is False, as before."""
    (tmp_path / "W").mkdir()
    _stat_fails(monkeypatch, "W", code)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for look in (lambda: entry_at(tmp_path / "W", fd), lambda: entry_at(tmp_path / "W"),
                     lambda: there(tmp_path / "W")):
            with pytest.raises(OSError) as raised:
                look()
            assert raised.value.errno == code
        assert not entry_at(tmp_path / "gone", fd) and not there(tmp_path / "gone")
        assert not there(tmp_path / "gone" / "below")
    finally:
        os.close(fd)


def test_a_name_longer_than_the_file_system_holds_is_nothing_there(tmp_path: Path) -> None:
    """A name the file system cannot hold (ENAMETOOLONG) is nothing there, by path or by a
    folder's descriptor: an invoice file's name at the limit makes its release file's and
    marker's names longer, and their look raised, so the claim of such a bundle failed
    for good ("cannot move into processing: File name too long")."""
    long = tmp_path / ("B" * 250 + ".send-anyway")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert not there(long) and not entry_at(long) and not entry_at(long, fd)
    finally:
        os.close(fd)


def test_a_work_folder_the_share_cannot_look_at_is_not_taken_for_one_never_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """folder_mark(…, without=W), which a start asks to end a claim whose work folder was
    never made (recovery._never_made), raises when the look for W fails with EIO, inside
    the outbox and at the admin's path alike: it gave the processing folder's mark, as
    for one holding no W, and the claim ended `gone` with its bundle in W."""
    outbox = tmp_path / "outbox"
    (outbox / ".outboxd" / "processing" / "W").mkdir(parents=True)
    (tmp_path / "elsewhere" / "W").mkdir(parents=True)
    _stat_fails(monkeypatch, "W", errno.EIO)
    with pytest.raises(OSError):
        folder_mark(outbox / ".outboxd" / "processing", outbox, "W")
    with pytest.raises(OSError):
        folder_mark(tmp_path / "elsewhere", outbox, "W")
    assert folder_mark(outbox / ".outboxd" / "processing", outbox, "X") is not None
