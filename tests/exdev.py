"""A move across file systems without a second file system: the first no-replace rename
in daemon.fs.fsmove fails with EXDEV, so move_tree copies."""

from __future__ import annotations

import errno
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.fs import fsmove


def exdev_then(monkeypatch: pytest.MonkeyPatch,
               meanwhile: Callable[[], None]) -> list[object]:
    """Make the first no-replace rename in daemon.fs.fsmove fail with EXDEV, as across file
    systems, and run `meanwhile` once the copy is complete, just before it is renamed
    into place: a person at work in the source folder during the copy. The (source,
    destination) of each rename asked."""
    real = fsmove.rename_noreplace
    calls: list[object] = []

    def rename(src: Path, dst: Path) -> None:
        calls.append((src, dst))
        if len(calls) == 1:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        if len(calls) == 2:
            meanwhile()
        real(src, dst)

    monkeypatch.setattr(fsmove, "rename_noreplace", rename)
    return calls


def exdev_once(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Make the first no-replace rename in daemon.fs.fsmove fail with EXDEV, as across file
    systems; the (source, destination) of each rename asked."""
    return exdev_then(monkeypatch, lambda: None)
