"""Locks on folders: a temp folder its writer holds is never swept, a killed writer's
is, without following a link or emptying a folder published meanwhile; a folder locked
for a block is held for it, and given up in time when someone holds it for good."""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from typing import Any

import pytest
from flocks import ended_within, no_locks

from daemon.fs.folderlocks import drop_folder_unless_held, folder_locked


def test_a_folder_lock_is_held_for_the_block_and_dropped_after(tmp_path: Path) -> None:
    """folder_locked holds an exclusive lock on the folder while its block runs: another
    run asking for it meanwhile is refused (it would wait), and gets it after."""
    other = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with folder_locked(tmp_path):
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)


def test_a_folder_lock_by_its_path_is_never_taken_through_a_link(tmp_path: Path) -> None:
    """folder_locked refuses a link in the folder's place (an OSError), and never locks
    the folder it leads to."""
    (tmp_path / "outside").mkdir()
    (tmp_path / "ID").symlink_to(tmp_path / "outside")
    with pytest.raises(OSError):
        with folder_locked(tmp_path / "ID"):
            pass
    other = os.open(tmp_path / "outside", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(other)


def test_a_folder_lock_someone_holds_for_good_is_given_up_naming_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone who may open a folder may flock it (a clerk's account on this host, for a
    sidecar or quarantine/): held for good, folder_locked waited for ever, and `attach`
    or `retry` with it. It now gives up after LOCK_WAIT_SECONDS with BlockingIOError
    naming the folder, and takes a lock let go within that time."""
    import daemon.fs.folderlocks as folderlocks
    monkeypatch.setattr(folderlocks, "LOCK_WAIT_SECONDS", 0.3)
    other = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)

        def lock() -> None:
            with folder_locked(tmp_path):
                pass
        exc = ended_within(10, lock)
        assert isinstance(exc, BlockingIOError) and exc.filename == str(tmp_path)
        assert exc.errno == errno.EWOULDBLOCK and "held locked by another process" in str(exc)
    finally:
        os.close(other)
    assert ended_within(10, lock) is None


def test_a_temp_folder_nested_a_thousand_deep_is_set_aside_and_refused_by_name(
        tmp_path: Path, deep_tree: Any) -> None:
    """A temp folder someone nested 1,100 deep (no writer of ours makes one deeper than a
    bundle's two levels): its removal ran out of Python's recursion limit, a
    RecursionError. It is set aside (its name is free for a new write) and its removal
    refused with an OSError naming it where it now is, and the bound; it stays whole."""
    folder = tmp_path / ".tmp-bundle"
    folder.mkdir()
    deep_tree(folder, 1100)
    with pytest.raises(OSError, match="more than 64 deep") as refused:
        drop_folder_unless_held(folder)
    assert refused.value.errno == errno.ELOOP
    [aside] = os.listdir(tmp_path)
    assert aside.startswith(".tmp-bundle.gone-") and refused.value.filename == str(
        tmp_path / aside)
    assert (tmp_path / aside / ("d/" * 1100) / "f.pdf").exists()


class TestFolderSweepsLeaveWhatIsNotTheirs:
    """A sweep of temp folders removes only the leftover it looked at: never what a writer
    holds, nor what took its name meanwhile, nor what a link put in its place leads to."""

    def test_a_temp_folder_a_writer_holds_is_left_and_taken_once_let_go(
            self, tmp_path: Path) -> None:
        """drop_folder_unless_held leaves a temp folder its writer holds (hold_new_folder)
        and says so (False); once the writer's descriptor is closed it is removed."""
        from daemon.fs.folderlocks import hold_new_folder
        folder = tmp_path / ".entry.tmp"
        fd = hold_new_folder(folder)
        try:
            (folder / "paper.json").write_bytes(b"{}")
            assert drop_folder_unless_held(folder) is False
            assert (folder / "paper.json").exists()
        finally:
            os.close(fd)
        assert drop_folder_unless_held(folder) is True
        assert os.listdir(tmp_path) == []

    def test_without_locks_only_a_temp_folder_untouched_long_enough_is_removed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Where no lock can be asked (NFS without lockd), a writer's liveness is told by
        age: with `older_than`, a folder changed more recently is left, an older one is
        removed."""
        monkeypatch.setattr(fcntl, "flock", no_locks)
        folder = tmp_path / ".entry.tmp"
        folder.mkdir()
        assert drop_folder_unless_held(folder, older_than=3600) is False
        assert folder.is_dir()
        hours_ago = folder.stat().st_mtime - 2 * 3600
        os.utime(folder, (hours_ago, hours_ago))
        assert drop_folder_unless_held(folder, older_than=3600) is True
        assert not folder.exists()

    def test_a_temp_folder_replaced_after_its_lock_is_left(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The temp folder moved away and another put at its name between the sweep's
        open and its rename: the one now at the name is not the one judged, and stays."""
        import daemon.fs.folderlocks as folderlocks
        folder = tmp_path / ".entry.tmp"
        folder.mkdir()
        real_lock = folderlocks.try_lock

        def replaced_after(fd: int) -> bool | None:
            held = real_lock(fd)
            folder.rename(tmp_path / "moved")
            folder.mkdir()
            (folder / "new.json").write_bytes(b"{}")
            return held
        monkeypatch.setattr(folderlocks, "try_lock", replaced_after)
        assert drop_folder_unless_held(folder) is False
        assert (folder / "new.json").exists()

    def test_a_temp_folder_swapped_for_a_link_before_its_rename_loses_the_link_only(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The temp folder swapped for a link to another folder between the sweep's last
        look and its rename aside: the link is removed, set aside or not, and what it
        leads to is never touched."""
        import daemon.fs.folderlocks as folderlocks
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "precious").write_bytes(b"theirs")
        folder = tmp_path / ".entry.tmp"
        folder.mkdir()
        real_still_at = folderlocks.still_at

        def swapped_after_the_look(path: Path, fd: int) -> bool:
            there = real_still_at(path, fd)
            if path == folder:
                folder.rename(tmp_path / "moved")
                folder.symlink_to(outside)
            return there
        monkeypatch.setattr(folderlocks, "still_at", swapped_after_the_look)
        assert drop_folder_unless_held(folder) is True
        assert (outside / "precious").read_bytes() == b"theirs"
        assert sorted(os.listdir(tmp_path)) == ["moved", "outside"]


def test_a_link_or_a_file_at_a_temp_folders_name_is_removed_never_followed(
        tmp_path: Path) -> None:
    """drop_folder_unless_held on a name a share user put a link (to a folder of
    theirs) or a plain file at: the name is removed (True: nothing left there), and what
    the link leads to keeps all it holds."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_bytes(b"theirs")
    link, file = tmp_path / ".entry.tmp", tmp_path / ".other.tmp"
    link.symlink_to(outside)
    file.write_bytes(b"litter")
    assert drop_folder_unless_held(link) is True
    assert drop_folder_unless_held(file) is True
    assert sorted(os.listdir(tmp_path)) == ["outside"]
    assert (outside / "precious").read_bytes() == b"theirs"


def test_a_temp_folder_its_writer_publishes_just_before_the_sweeps_rename_is_left_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer unseen by the lock (another host on NFS) renames its temp folder into
    place between the sweep's last look and its rename aside: the sweep's rename finds
    nothing (True: nothing at the temp's name), and the published folder keeps all it
    holds — never emptied for the temp it was a moment before."""
    import daemon.fs.folderlocks as folderlocks
    folder = tmp_path / ".entry.tmp"
    folder.mkdir()
    (folder / "receipt.json").write_bytes(b"{}")
    published = tmp_path / "entry"
    real_still_at = folderlocks.still_at

    def published_after_the_look(path: Path, fd: int) -> bool:
        there = real_still_at(path, fd)
        if path == folder:
            folder.rename(published)
        return there

    monkeypatch.setattr(folderlocks, "still_at", published_after_the_look)
    assert drop_folder_unless_held(folder) is True
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["entry"]
    assert (published / "receipt.json").read_bytes() == b"{}"
