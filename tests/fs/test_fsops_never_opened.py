"""A FIFO or device put where a file was looked at is never opened, not even for a moment:
opening one can act on it (a tape rewinds, a FIFO's writer is let through), so checking
what was opened afterwards is too late. Each way fsops opens an input is called on one
directly, as if it had been swapped in between the caller's look and the open."""

from __future__ import annotations

import os
import platform
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from swaps import opened_in

from daemon.errors import HostileInput
from daemon.fs.fsops import folder_below, open_below, open_in, open_regular
from daemon.fs.fsread import NotAFile, open_if_regular, read_admin_file


def _in_folder(path: Path) -> object:
    with folder_below(path.parent) as fd:
        return open_in(fd, path.name, path.name)


OPENERS: dict[str, Callable[[Path], object]] = {
    "open_in": _in_folder,
    "open_regular": open_regular,
    "open_below": lambda path: open_below(path.parent, path.name),
    "open_if_regular": open_if_regular,
    "read_admin_file": lambda path: read_admin_file(path, 100),
}

# The number of openat(2), to tell a thread blocked in it from one not there yet.
_OPENAT = {"x86_64": 257, "aarch64": 56}.get(platform.machine())


def _in_open(thread: threading.Thread) -> bool:
    """Whether `thread` is asleep in openat (a FIFO's writer waiting for a reader). A
    writer let through is woken at once, inside the reader's open: it is no longer
    asleep ("S") there when that open returns — runnable, or out of openat waiting for
    the interpreter lock — so no time has to pass to tell."""
    task = f"/proc/self/task/{thread.native_id}"
    with open(f"{task}/syscall") as fh:
        in_openat = fh.read().split(" ", 1)[0] == str(_OPENAT)
    with open(f"{task}/stat") as fh:
        asleep = fh.read().rsplit(")", 1)[1].split()[0] == "S"
    return in_openat and asleep


@pytest.mark.skipif(_OPENAT is None, reason="openat's number on this machine is not known")
@pytest.mark.parametrize("opener", OPENERS)
def test_a_fifo_is_refused_without_letting_its_waiting_writer_through(
        tmp_path: Path, opener: str) -> None:
    """A writer blocked in open(fifo, O_WRONLY) is let through only when a reader opens the
    FIFO: refused, it must still be waiting (an open with O_NONBLOCK and a look after it,
    as before, let it through)."""
    fifo = tmp_path / "INV-1.xml"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: os.close(os.open(fifo, os.O_WRONLY)),
                              daemon=True)
    writer.start()
    deadline = time.monotonic() + 10
    while not _in_open(writer):
        assert writer.is_alive() and time.monotonic() < deadline, "the writer never waited"
        time.sleep(0.005)
    try:
        with pytest.raises((HostileInput, NotAFile), match="is a FIFO, not a regular file"):
            OPENERS[opener](fifo)
        assert writer.is_alive() and _in_open(writer), \
            f"{opener} opened the FIFO: its writer was let through"
    finally:
        os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # lets the writer end
        writer.join(timeout=10)


@pytest.mark.parametrize("opener", OPENERS)
def test_a_device_is_refused_without_being_opened(tmp_path: Path, opener: str) -> None:
    """A character device (one like /dev/null, made in the test folder) is refused as a
    device file, and the kernel reports no open of it (inotify's IN_OPEN, which a mere
    look through an O_PATH handle does not raise)."""
    device = tmp_path / "a.pdf"
    try:
        os.mknod(device, stat.S_IFCHR | 0o600, os.stat("/dev/null").st_rdev)
    except PermissionError:
        pytest.skip("making a device node needs root")
    with opened_in(tmp_path) as opened:
        with pytest.raises((HostileInput, NotAFile), match="is a device file, not a regular"):
            OPENERS[opener](device)
    assert "a.pdf" not in opened
