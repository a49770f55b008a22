"""A claimed bundle's files as the parts of its POST (daemon/parts.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.errors import HostileInput, InputError
from daemon.parts import OpenWhenRead


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


def test_a_link_in_the_files_place_is_refused_before_anything_is_sent(
        tmp_path: Path) -> None:
    """As open_regular: a link is never followed, and said when the part is made."""
    (tmp_path / "real.pdf").write_bytes(b"%PDF")
    os.symlink(tmp_path / "real.pdf", tmp_path / "a.pdf")
    with pytest.raises(HostileInput):
        OpenWhenRead((tmp_path, "a.pdf"), "INV-1/a.pdf")
