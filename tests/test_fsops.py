"""File-system primitives: inputs opened safely, atomic writes, moves across file systems."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
import stat
from pathlib import Path

import pytest

from daemon import fsops
from daemon.errors import HostileInput, InputError
from daemon.fsops import (
    NotAFile,
    folders_below,
    free_name,
    hash_file,
    move_tree,
    open_if_regular,
    open_regular,
    read_admin_file,
    read_bounded,
    read_regular,
    rename_noreplace,
    write_atomic,
    write_json,
)


class TestOpenRegular:
    def test_reads_regular_file(self, tmp_path: Path) -> None:
        """A regular file opens and reads normally."""
        f = tmp_path / "a.pdf"
        f.write_bytes(b"%PDF-1.7")
        with open_regular(f) as fh:
            assert fh.read() == b"%PDF-1.7"

    def test_refuses_symlink(self, tmp_path: Path) -> None:
        """A symbolic link (even to a regular file) is refused with code `symlink`."""
        real = tmp_path / "real.pdf"
        real.write_bytes(b"x")
        link = tmp_path / "link.pdf"
        link.symlink_to(real)
        with pytest.raises(HostileInput) as info:
            open_regular(link, "INV-1/link.pdf")
        assert info.value.code == "symlink" and info.value.file == "INV-1/link.pdf"

    def test_refuses_fifo_without_hanging(self, tmp_path: Path) -> None:
        """A FIFO is refused with code `not-a-file` at once (no writer: a plain open would
        block forever)."""
        fifo = tmp_path / "pipe.pdf"
        os.mkfifo(fifo)
        with pytest.raises(HostileInput) as info:
            open_regular(fifo)
        assert info.value.code == "not-a-file" and "FIFO" in info.value.message

    def test_refuses_directory(self, tmp_path: Path) -> None:
        """A directory is refused with code `not-a-file`."""
        (tmp_path / "d.pdf").mkdir()
        with pytest.raises(HostileInput) as info:
            open_regular(tmp_path / "d.pdf")
        assert info.value.code == "not-a-file" and "directory" in info.value.message

    def test_refuses_socket(self, tmp_path: Path) -> None:
        """A UNIX socket is refused (as not-a-file or unreadable), never read."""
        path = tmp_path / "s.pdf"
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(str(path))
            with pytest.raises(InputError):
                open_regular(path)
        finally:
            s.close()

    def test_missing_file_is_input_error(self, tmp_path: Path) -> None:
        """A file that cannot be opened is an InputError `unreadable`, not an OSError."""
        with pytest.raises(InputError) as info:
            open_regular(tmp_path / "nope.pdf")
        assert info.value.code == "unreadable"

    @pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.EIO, errno.ESTALE])
    def test_a_fault_of_the_machine_or_share_is_no_finding_about_the_file(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """No descriptors left or a share gone is raised as the OSError it is, for the
        caller to try again; an "unreadable" finding would quarantine a good bundle for
        it. A permission error is the file's: a finding naming it and the fix."""
        path = tmp_path / "a.pdf"
        path.write_bytes(b"%PDF")

        def refuse(p: object, *args: object, **kw: object) -> int:
            raise OSError(code, os.strerror(code), str(p))
        monkeypatch.setattr(fsops.os, "open", refuse)
        with pytest.raises(OSError) as info:
            open_regular(path, "INV-1/a.pdf")
        assert not isinstance(info.value, InputError) and info.value.errno == code

        def deny(p: object, *args: object, **kw: object) -> int:
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        monkeypatch.setattr(fsops.os, "open", deny)
        with pytest.raises(InputError, match="check the file's permissions") as denied:
            open_regular(path, "INV-1/a.pdf")
        assert denied.value.code == "unreadable" and denied.value.file == "INV-1/a.pdf"

    def test_hash_file(self, tmp_path: Path) -> None:
        """hash_file gives size and SHA-256 over content larger than one chunk."""
        data = os.urandom(fsops.CHUNK * 2 + 17)
        f = tmp_path / "big.bin"
        f.write_bytes(data)
        assert hash_file(f) == (len(data), hashlib.sha256(data).hexdigest())


class TestReadBounded:
    @pytest.mark.parametrize("size", [0, 1, 999, 1000])
    def test_up_to_the_limit_is_read_whole(self, tmp_path: Path, size: int) -> None:
        """A file of at most `limit` bytes comes back whole."""
        data = os.urandom(size)
        f = tmp_path / "a.bin"
        f.write_bytes(data)
        assert read_regular(f, limit=1000) == data

    def test_over_the_limit_is_none(self, tmp_path: Path) -> None:
        """A file over the limit is not read into memory: None."""
        f = tmp_path / "a.bin"
        f.write_bytes(b"x" * 1001)
        assert read_regular(f, limit=1000) is None

    def test_file_growing_past_the_limit_is_none(self, tmp_path: Path) -> None:
        """A file that grows past the limit after it was opened is cut off: None, and
        what it holds within the limit comes back whole."""
        f = tmp_path / "a.bin"
        f.write_bytes(b"x" * 10)
        with open_regular(f) as fh, open(f, "ab") as writer:
            writer.write(b"y" * 2000)
            writer.flush()
            assert read_bounded(fh, 1000) is None
        with open_regular(f) as fh, open(f, "ab") as writer:
            fh.read(5)
            writer.write(b"z" * 3)
            writer.flush()
            assert read_bounded(fh, 3000) == b"x" * 5 + b"y" * 2000 + b"z" * 3

    def test_refuses_what_open_regular_refuses(self, tmp_path: Path) -> None:
        """read_regular opens like open_regular: a link is refused, never followed."""
        real = tmp_path / "real.bin"
        real.write_bytes(b"x")
        link = tmp_path / "link.bin"
        link.symlink_to(real)
        with pytest.raises(HostileInput):
            read_regular(link)


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
    """Make the first no-replace rename in daemon.fsops fail with EXDEV, as across file
    systems."""
    real = fsops.rename_noreplace
    calls: list[object] = []

    def rename(src: Path, dst: Path) -> None:
        calls.append((src, dst))
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real(src, dst)

    monkeypatch.setattr(fsops, "rename_noreplace", rename)
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
            fsops.rename_noreplace(tmp_path / "a", tmp_path / "b")
        assert (tmp_path / "b").read_bytes() == b"theirs"
        assert (tmp_path / "a").read_bytes() == b"ours"

    def test_other_errors_propagate(self, tmp_path: Path) -> None:
        """A missing source is an error, not a silent success."""
        with pytest.raises(OSError):
            move_tree(tmp_path / "missing", tmp_path / "dst")


class TestOpenIfRegular:
    """What is already at a name outboxd writes (the directory target): a file read, and
    anything else named, never opened, followed or waited on."""

    def test_a_file_is_opened_and_nothing_there_is_none(self, tmp_path: Path) -> None:
        (tmp_path / "a.xml").write_bytes(b"<a/>")
        with open_if_regular(tmp_path / "a.xml") as fh:  # type: ignore[union-attr]
            assert fh.read() == b"<a/>"
        assert open_if_regular(tmp_path / "none.xml") is None

    def test_a_fifo_a_link_a_device_and_a_folder_are_named_not_opened(
            self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "fifo")
        (tmp_path / "link").symlink_to(tmp_path / "fifo")
        for path, what in [(tmp_path / "fifo", "a FIFO"), (tmp_path / "link", "a symbolic link"),
                           (Path("/dev/zero"), "a device file"), (tmp_path, "a folder")]:
            with pytest.raises(NotAFile, match=f"^is {what}, not a"):
                open_if_regular(path)


class TestReadAdminFile:
    """Files the configuration names: links followed (the admin chose the path), but no
    FIFO, socket or device is read, and the size is bounded."""

    def test_a_link_to_a_file_is_followed(self, tmp_path: Path) -> None:
        (tmp_path / "real").write_bytes(b"secret\n")
        (tmp_path / "link").symlink_to(tmp_path / "real")
        assert read_admin_file(tmp_path / "link", 100) == b"secret\n"

    def test_a_fifo_is_refused_without_waiting_for_a_writer(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "fifo")
        with pytest.raises(NotAFile, match="is a FIFO, not a regular file"):
            read_admin_file(tmp_path / "fifo", 100)

    def test_a_device_and_a_folder_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(NotAFile, match="is a device file"):
            read_admin_file(Path("/dev/zero"), 100)
        with pytest.raises(NotAFile, match="is a folder"):
            read_admin_file(tmp_path, 100)

    def test_more_than_the_limit_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "big").write_bytes(b"x" * 101)
        with pytest.raises(NotAFile, match="larger than 100 bytes"):
            read_admin_file(tmp_path / "big", 100)


def test_the_folders_checked_for_links_are_those_inside_the_outbox_only(
        tmp_path: Path) -> None:
    """Inside the outbox every folder down to the one written is checked (anyone on the
    share may put a link there); outside, only the folder itself (its parents are the
    admin's choice)."""
    outbox = tmp_path / "outbox"
    assert folders_below(outbox, outbox / ".outboxd" / "processing") == [
        outbox / ".outboxd", outbox / ".outboxd" / "processing"]
    assert folders_below(outbox, tmp_path / "srv" / "sent") == [tmp_path / "srv" / "sent"]
