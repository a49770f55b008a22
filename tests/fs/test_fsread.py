"""Files read within a limit or hashed, and the admin's files (daemon/fs/fsread.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from helpers import raised, without_blocking

from daemon.errors import HostileInput
from daemon.fs.fsops import open_regular
from daemon.fs.fsread import (
    CHUNK,
    NotAFile,
    hash_file,
    open_if_regular,
    read_admin_file,
    read_bounded,
    read_regular,
)


class TestHashFile:
    def test_hash_file(self, tmp_path: Path) -> None:
        """hash_file gives size and SHA-256 over content larger than one chunk."""
        data = os.urandom(CHUNK * 2 + 17)
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
            refused = without_blocking(lambda p=path: raised(lambda: open_if_regular(p)),
                                       tmp_path / "fifo", "open_if_regular")
            assert isinstance(refused, NotAFile)
            assert str(refused).startswith(f"is {what}, not a")


class TestReadAdminFile:
    """Files the configuration names: links followed (the admin chose the path), but no
    FIFO, socket or device is read, and the size is bounded."""

    def test_a_link_to_a_file_is_followed(self, tmp_path: Path) -> None:
        (tmp_path / "real").write_bytes(b"secret\n")
        (tmp_path / "link").symlink_to(tmp_path / "real")
        assert read_admin_file(tmp_path / "link", 100) == b"secret\n"

    def test_a_fifo_is_refused_without_waiting_for_a_writer(self, tmp_path: Path) -> None:
        os.mkfifo(tmp_path / "fifo")
        refused = without_blocking(lambda: raised(lambda: read_admin_file(tmp_path / "fifo",
                                                                          100)),
                                   tmp_path / "fifo", "read_admin_file")
        assert isinstance(refused, NotAFile)
        assert "is a FIFO, not a regular file" in str(refused)

    def test_a_device_and_a_folder_are_refused(self, tmp_path: Path) -> None:
        with pytest.raises(NotAFile, match="is a device file"):
            read_admin_file(Path("/dev/zero"), 100)
        with pytest.raises(NotAFile, match="is a folder"):
            read_admin_file(tmp_path, 100)

    def test_more_than_the_limit_is_refused(self, tmp_path: Path) -> None:
        (tmp_path / "big").write_bytes(b"x" * 101)
        with pytest.raises(NotAFile, match="larger than 100 bytes"):
            read_admin_file(tmp_path / "big", 100)
