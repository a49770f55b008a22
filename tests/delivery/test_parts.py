"""A claimed bundle's files as the parts of its POST (daemon/delivery/parts.py)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from daemon.delivery.parts import OpenWhenRead
from daemon.errors import HostileInput, InputError


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_a_part_holds_a_descriptor_only_while_it_is_read_and_gives_its_bytes(
        tmp_path: Path) -> None:
    """httpx learns the size by seek/tell before anything is read, with no descriptor
    held; the bytes come in chunks, and the descriptor is closed at the end of the part."""
    path = tmp_path / "a.pdf"
    path.write_bytes(b"%PDF-" + b"x" * 995)
    before = open_fds()
    part = OpenWhenRead((tmp_path, "a.pdf"), "INV-1/a.pdf", 1000)
    assert open_fds() == before
    assert part.seek(0, os.SEEK_END) == 1000 and part.tell() == 1000
    part.seek(0)
    chunks = [part.read(300) for _ in range(4)]
    assert open_fds() == before  # read to its end: closed
    assert b"".join(chunks) == path.read_bytes()
    assert part.read(300) == b""


def test_a_file_changed_after_it_was_checked_is_never_sent_in_its_place(
        tmp_path: Path) -> None:
    """A size other than the one checked, or a file rewritten before its part is read,
    is an InputError naming the file (the bundle is quarantined as processing-damaged),
    not other bytes than the manifest's hash."""
    path = tmp_path / "a.pdf"
    path.write_bytes(b"%PDF-1.4 one")
    with pytest.raises(InputError, match="is not the file that was checked"):
        OpenWhenRead((tmp_path, "a.pdf"), "INV-1/a.pdf", 5)
    part = OpenWhenRead((tmp_path, "a.pdf"), "INV-1/a.pdf", 12)
    path.write_bytes(b"%PDF-1.4 two")
    os.utime(path, ns=(0, 1))
    with pytest.raises(InputError) as info:
        part.read(100)
    assert info.value.code == "processing-damaged" and info.value.file == "INV-1/a.pdf"


def test_a_file_rewritten_with_its_size_and_time_kept_never_gives_its_last_bytes(
        tmp_path: Path) -> None:
    """The file's owner (a clerk of the share's group may enter the processing folder)
    rewrites it after its check with as many bytes and puts its modification time back
    (os.utime, which needs no more than owning it): size and time are as checked, so
    only the bytes can tell. They are hashed as they are read, and at the end, before
    its last chunk is given, a hash other than the one checked is an InputError naming
    the file: the body stops short of its Content-Length and nothing whole is sent."""
    path = tmp_path / "a.pdf"
    checked = b"%PDF-1.4 " + b"1" * 200_000
    path.write_bytes(checked)
    sha = hashlib.sha256(checked).hexdigest()
    times = os.stat(path)
    part = OpenWhenRead((tmp_path, "a.pdf"), "INV-1/a.pdf", len(checked), sha)
    path.write_bytes(b"%PDF-1.4 " + b"9" * 200_000)
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))
    given = b""
    with pytest.raises(InputError) as info:
        while chunk := part.read(65536):
            given += chunk
    assert info.value.code == "processing-damaged" and info.value.file == "INV-1/a.pdf"
    assert len(given) < len(checked)
    path.write_bytes(checked)  # the checked bytes: given whole, the hash agrees
    whole = OpenWhenRead((tmp_path, "a.pdf"), "INV-1/a.pdf", len(checked), sha)
    assert b"".join(iter(lambda: whole.read(65536), b"")) == checked


def test_a_link_in_the_files_place_is_refused_before_anything_is_sent(
        tmp_path: Path) -> None:
    """As open_regular: a link is never followed, and said when the part is made."""
    (tmp_path / "real.pdf").write_bytes(b"%PDF")
    os.symlink(tmp_path / "real.pdf", tmp_path / "a.pdf")
    with pytest.raises(HostileInput):
        OpenWhenRead((tmp_path, "a.pdf"), "INV-1/a.pdf")


def test_a_part_rewound_while_open_is_read_again_from_its_start_and_checked_whole(
        tmp_path: Path) -> None:
    """A body read again while its part is open (a client rewinding it to send it once
    more): the seek goes to the open file, the bytes read from the start again are the
    file's, checked against the hash as a whole, and the file is closed at the end."""
    data = bytes(range(256)) * 64
    (tmp_path / "a.pdf").write_bytes(data)
    before = open_fds()
    part = OpenWhenRead((tmp_path, "a.pdf"), "INV-1/a.pdf", len(data),
                        hashlib.sha256(data).hexdigest())
    assert part.read(1000) == data[:1000] and open_fds() == before + 1
    assert part.seek(0) == 0 and part.tell() == 0
    assert part.read(-1) == data
    assert open_fds() == before
