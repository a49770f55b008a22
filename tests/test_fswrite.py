"""Writing safely: atomic writes, no-replace renames, moves across file systems, the
folders checked for links."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from daemon import fswrite
from daemon.fswrite import (
    folders_below,
    free_name,
    move_tree,
    rename_noreplace,
    write_atomic,
    write_json,
)


class TestWriteAtomic:
    def test_write_atomic_replaces_a_link_at_the_target_without_following_it(
            self, tmp_path: Path) -> None:
        """A symlink where NAME.errors.txt goes is replaced by our file; its target is
        never written."""
        outside = tmp_path / "outside.txt"
        outside.write_bytes(b"precious")
        (tmp_path / "x.errors.txt").symlink_to(outside)
        write_atomic(tmp_path / "x.errors.txt", b"ours")
        assert outside.read_bytes() == b"precious"
        assert not (tmp_path / "x.errors.txt").is_symlink()
        assert (tmp_path / "x.errors.txt").read_bytes() == b"ours"

    def test_writes_and_leaves_no_temp(self, tmp_path: Path) -> None:
        """write_atomic writes the whole file and leaves no temp file behind."""
        write_atomic(tmp_path / "a.txt", b"hello")
        assert (tmp_path / "a.txt").read_bytes() == b"hello"
        assert os.listdir(tmp_path) == ["a.txt"]

    def test_replaces_existing(self, tmp_path: Path) -> None:
        """An existing file is replaced in one step."""
        (tmp_path / "a.txt").write_bytes(b"old content that is longer")
        write_atomic(tmp_path / "a.txt", b"new")
        assert (tmp_path / "a.txt").read_bytes() == b"new"
        assert os.listdir(tmp_path) == ["a.txt"]

    def test_write_json_utf8(self, tmp_path: Path) -> None:
        """write_json writes UTF-8 JSON (not \\u escapes) ending in a newline."""
        write_json(tmp_path / "r.json", {"name": "Tidrapport Å"})
        text = (tmp_path / "r.json").read_text("utf-8")
        assert "Å" in text and text.endswith("\n")


class TestNames:
    def test_free_name(self, tmp_path: Path) -> None:
        """free_name gives NAME, then NAME-2, NAME-3; a dangling link also counts as taken."""
        assert free_name(tmp_path, "x") == tmp_path / "x"
        (tmp_path / "x").mkdir()
        assert free_name(tmp_path, "x") == tmp_path / "x-2"
        (tmp_path / "x-2").symlink_to(tmp_path / "missing")
        assert free_name(tmp_path, "x") == tmp_path / "x-3"

    def test_rename_noreplace(self, tmp_path: Path) -> None:
        """rename_noreplace never replaces an existing target."""
        (tmp_path / "a").write_bytes(b"a")
        (tmp_path / "b").write_bytes(b"b")
        with pytest.raises(FileExistsError):
            rename_noreplace(tmp_path / "a", tmp_path / "b")
        assert (tmp_path / "a").read_bytes() == b"a" and (tmp_path / "b").read_bytes() == b"b"


def exdev_once(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make the first no-replace rename in daemon.fswrite fail with EXDEV, as across file
    systems."""
    real = fswrite.rename_noreplace
    calls: list[object] = []

    def rename(src: Path, dst: Path) -> None:
        calls.append((src, dst))
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst)

    monkeypatch.setattr(fswrite, "rename_noreplace", rename)
    return calls


class TestMoveTree:
    def _tree(self, root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def test_same_file_system_is_one_rename(self, tmp_path: Path) -> None:
        """On one file system the folder is renamed (same inode), parents created."""
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "f").write_bytes(b"1")
        ino = src.stat().st_ino
        dst = tmp_path / "a" / "b" / "dst"
        move_tree(src, dst)
        assert dst.stat().st_ino == ino and not src.exists()

    def test_never_replaces_existing_target(self, tmp_path: Path) -> None:
        """An existing dst is an error; the source is untouched."""
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "f").write_bytes(b"1")
        (tmp_path / "dst").mkdir()
        with pytest.raises(FileExistsError):
            move_tree(tmp_path / "src", tmp_path / "dst")
        assert (tmp_path / "src" / "f").exists()

    def test_folder_across_file_systems(self, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        """EXDEV: the copy is complete (nested files, bytes, a symlink kept as a link, not
        followed), the source is gone and no temp folder is left."""
        src = tmp_path / "src"
        (src / "INV-1" / "INV-2").mkdir(parents=True)
        (src / "INV-1.xml").write_bytes(b"<Invoice/>")
        (src / "INV-1" / "INV-2" / "c.pdf").write_bytes(os.urandom(100_000))
        (src / "INV-1" / "link.pdf").symlink_to("/etc/passwd")
        expected = self._tree(src)
        calls = exdev_once(monkeypatch)
        dst = tmp_path / "archive" / "day" / "INV-1--x"
        move_tree(src, dst)
        monkeypatch.undo()
        assert len(calls) >= 2  # the copy was renamed into place
        assert not src.exists()
        assert (dst / "INV-1" / "link.pdf").is_symlink()
        assert os.readlink(dst / "INV-1" / "link.pdf") == "/etc/passwd"
        got = {k: v for k, v in self._tree(dst).items() if k != "INV-1/link.pdf"}
        assert got == {k: v for k, v in expected.items() if k != "INV-1/link.pdf"}
        assert os.listdir(dst.parent) == ["INV-1--x"]

    def test_single_file_across_file_systems(self, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
        """A single file moved across file systems: copied, source removed."""
        src = tmp_path / "f.xml"
        src.write_bytes(b"data")
        exdev_once(monkeypatch)
        move_tree(src, tmp_path / "out" / "f.xml")
        monkeypatch.undo()
        assert (tmp_path / "out" / "f.xml").read_bytes() == b"data" and not src.exists()
        assert os.listdir(tmp_path / "out") == ["f.xml"]

    def test_stale_partial_copy_is_replaced(self, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """A leftover partial copy from a crashed attempt does not end up in dst."""
        src = tmp_path / "src"
        src.mkdir()
        (src / "f").write_bytes(b"new")
        dst = tmp_path / "out" / "dst"
        stale = dst.with_name(".dst.partial")
        stale.mkdir(parents=True)
        (stale / "junk").write_bytes(b"junk")
        exdev_once(monkeypatch)
        move_tree(src, dst)
        monkeypatch.undo()
        assert sorted(os.listdir(dst)) == ["f"]
        assert os.listdir(dst.parent) == ["dst"]

    def test_fifo_across_file_systems_is_recreated_not_opened(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A FIFO in a quarantined sidecar is recreated as a FIFO on the other side (opening
        it would block forever); the regular files are copied."""
        src = tmp_path / "src"
        src.mkdir()
        os.mkfifo(src / "pipe.pdf")
        (src / "a.pdf").write_bytes(b"%PDF-1.4")
        exdev_once(monkeypatch)
        dst = tmp_path / "out" / "dst"
        move_tree(src, dst)
        monkeypatch.undo()
        assert stat.S_ISFIFO(os.lstat(dst / "pipe.pdf").st_mode)
        assert (dst / "a.pdf").read_bytes() == b"%PDF-1.4" and not src.exists()

    def test_never_replaces_a_file_that_appears_at_the_target(self, tmp_path: Path) -> None:
        """rename_noreplace refuses an existing file target and leaves both files as they were."""
        (tmp_path / "a").write_bytes(b"ours")
        (tmp_path / "b").write_bytes(b"theirs")
        with pytest.raises(FileExistsError):
            fswrite.rename_noreplace(tmp_path / "a", tmp_path / "b")
        assert (tmp_path / "b").read_bytes() == b"theirs"
        assert (tmp_path / "a").read_bytes() == b"ours"

    def test_other_errors_propagate(self, tmp_path: Path) -> None:
        """A missing source is an error, not a silent success."""
        with pytest.raises(OSError):
            move_tree(tmp_path / "missing", tmp_path / "dst")


def test_the_folders_checked_for_links_are_those_inside_the_outbox_only(
        tmp_path: Path) -> None:
    """Inside the outbox every folder down to the one written is checked (anyone on the
    share may put a link there); outside, only the folder itself (its parents are the
    admin's choice)."""
    outbox = tmp_path / "outbox"
    assert folders_below(outbox, outbox / ".outboxd" / "processing") == [
        outbox / ".outboxd", outbox / ".outboxd" / "processing"]
    assert folders_below(outbox, tmp_path / "srv" / "sent") == [tmp_path / "srv" / "sent"]


def test_rename_exchange_swaps_two_files_in_one_step(tmp_path: Path) -> None:
    """rename_exchange swaps what two names hold (each file keeps its inode); with one of
    them missing it fails and nothing moves."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"A")
    b.write_bytes(b"B")
    inode_a = os.lstat(a).st_ino
    assert fswrite.rename_exchange(a, b)
    assert a.read_bytes() == b"B" and b.read_bytes() == b"A"
    assert os.lstat(b).st_ino == inode_a
    with pytest.raises(FileNotFoundError):
        fswrite.rename_exchange(a, tmp_path / "missing")
    assert a.read_bytes() == b"B" and sorted(os.listdir(tmp_path)) == ["a", "b"]
