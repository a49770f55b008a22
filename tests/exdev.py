"""A move across file systems without a second file system: a no-replace rename in
daemon.fs.fsmove fails with EXDEV, so move_tree copies."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def exdev_for(monkeypatch: pytest.MonkeyPatch, work: Path,
              meanwhile: Callable[[], object] = lambda: None) -> None:
    """The archive on another file system than the work folder: the rename of `work` in
    daemon.fs.fsmove fails with EXDEV, so the move copies; every other rename goes on as
    it is, `meanwhile` run just before it (as the complete copy is renamed into place)."""
    rename = fsmove.rename_noreplace

    def across(src: Path, dst: Path, *at: int | None) -> None:
        if Path(src) == work:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        meanwhile()
        rename(src, dst, *at)
    monkeypatch.setattr(fsmove, "rename_noreplace", across)


def killed_after_rename(monkeypatch: pytest.MonkeyPatch, killed: BaseException) -> None:
    """The daemon killed (`killed` raised) right after a complete copy was renamed into
    place (fsmove._into_place), before anything else: before its folder's sync and any
    removal of the source."""
    into_place = fsmove._into_place

    def then_killed(*args: Any) -> None:
        into_place(*args)
        raise killed
    monkeypatch.setattr(fsmove, "_into_place", then_killed)


KILLS = ("copied", "marked", "renamed", "removing", "removed")
"""The points of an archive's move across file systems a kill is tried at (killed_at)."""


def killed_at(monkeypatch: pytest.MonkeyPatch, work: Path, at: str, killed: BaseException,
              during_copy: Callable[[], object] = lambda: None) -> None:
    """The archive of `work` on another file system (exdev_for), the daemon killed
    (`killed` raised) at `at` of its move: the copy complete, before the work folder's
    mark (`copied`); the mark written, before the rename (`marked`); right after the
    rename (`renamed`); after the first file of the source removed (`removing`); once the
    removal is done, before anything else (`removed`). `during_copy`: run once the copy
    is made (a clerk saving a file into the work folder meanwhile)."""
    from daemon.archiving import archive
    exdev_for(monkeypatch, work)
    copy_folder = fsmove.copy_folder

    def copied(*args: Any) -> int:
        made = copy_folder(*args)
        during_copy()
        if at == "copied":
            os.close(made)
            raise killed
        return made
    monkeypatch.setattr(fsmove, "copy_folder", copied)
    if at == "marked":
        def never(*_: object) -> None:
            raise killed
        monkeypatch.setattr(fsmove, "_into_place", never)
    elif at == "renamed":
        killed_after_rename(monkeypatch, killed)
    elif at == "removing":
        unlink = os.unlink

        def then_killed(path: str, *, dir_fd: int | None = None) -> None:
            unlink(path, dir_fd=dir_fd)
            raise killed
        monkeypatch.setattr(fsmove.os, "unlink", then_killed)
    elif at == "removed":
        move_tree = archive.move_tree

        def moved_then_killed(*args: Any, **kwargs: Any) -> list[Path]:
            move_tree(*args, **kwargs)
            raise killed
        monkeypatch.setattr(archive, "move_tree", moved_then_killed)
