"""A share that hangs: a FUSE mount whose server never answers, as an NFS mount (hard,
the default) to a file server that is down, or a FUSE file system stopped. Every look
at a path under it blocks, killably, until the connection is closed; then it fails with
ENOTCONN. Root only (mount(2)); no FUSE library is needed: the file system is never
served, so nothing but the kernel's /dev/fuse is used."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_MS_NOSUID, _MS_NODEV = 2, 4
_MNT_DETACH = 2


@contextmanager
def hung_share(where: Path) -> Iterator[Path]:
    """Mount a share that never answers on the folder `where` (made if missing) for the
    block; skips the test where that cannot be done (not root, no /dev/fuse)."""
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.skip("a hung share needs root and /dev/fuse (CI runs this as root)")
    where.mkdir(parents=True, exist_ok=True)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/dev/fuse", os.O_RDWR)
    opts = f"fd={fd},rootmode=40000,user_id=0,group_id=0".encode()
    if libc.mount(b"outboxd-hung", os.fsencode(where), b"fuse", _MS_NOSUID | _MS_NODEV,
                  opts) != 0:
        err = ctypes.get_errno()
        os.close(fd)
        pytest.skip(f"cannot mount a FUSE file system here: {os.strerror(err)}")
    try:
        yield where
    finally:
        # Closing the connection ends every look still waiting (ENOTCONN), then the
        # mount itself can go.
        os.close(fd)
        libc.umount2(os.fsencode(where), _MNT_DETACH)
