"""A folder of a bundle swapped for a link to a folder outside the outbox, and a watch
on that outside folder that tells whether anything in it was opened or listed.

The swap is made at a chosen moment without timing races: either before the function
under test is called, or from an audit hook (sys.addaudithook) at the moment the
function is about to open or list a given name (CPython audits `open`, `os.open` and
`os.scandir` before the system call), i.e. between the check and the open. The watch is
inotify's IN_OPEN on the outside folder: the kernel reports every open of the folder
(a listing) and of every file in it, whatever path or descriptor it was reached by.
"""

from __future__ import annotations

import ctypes
import os
import struct
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_IN_OPEN = 0x20
_EVENT = struct.Struct("iIII")
_libc = ctypes.CDLL(None, use_errno=True)


def swap_for_link(folder: Path, outside: Path) -> Path:
    """Move `folder` aside (to NAME.real) and put a link to `outside` in its place, as a
    share user could; returns where the real folder went."""
    real = folder.with_name(folder.name + ".real")
    os.rename(folder, real)
    os.symlink(outside, folder)
    return real


def linked_aside_before(call: Callable[[Any, Path], Any], aside: Path
                        ) -> Callable[[Any, Path], Any]:
    """`call(cand, folder)`, the folder first moved to `aside` and a link to it put in its
    place: the bundle is whole behind the link (to stand in for unclaim, say)."""
    def swapped_then(cand: Any, folder: Path) -> Any:
        folder.rename(aside)
        folder.symlink_to(aside)
        return call(cand, folder)
    return swapped_then


@contextmanager
def opened_in(folder: Path) -> Iterator[list[str]]:
    """The names opened in `folder` while the block runs ("" for the folder itself,
    opened to be listed), filled in when the block ends."""
    fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
    if fd < 0:
        raise OSError(ctypes.get_errno(), "inotify_init1")
    names: list[str] = []
    try:
        if _libc.inotify_add_watch(fd, os.fsencode(folder), _IN_OPEN) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch", str(folder))
        yield names
        while True:
            try:
                data = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            at = 0
            while at < len(data):
                _wd, _mask, _cookie, size = _EVENT.unpack_from(data, at)
                at += _EVENT.size
                names.append(data[at:at + size].rstrip(b"\0").decode())
                at += size
    finally:
        os.close(fd)


# One audit hook for the whole test run (a hook cannot be removed): it calls the action
# armed by swap_when_opened, at most once.
_armed: list[Callable[[str, tuple[Any, ...]], bool]] = []
_AUDITED = {"open", "os.scandir", "os.listdir"}
# A rename, for swap_when_renamed only (a rename's first argument is its source).
_RENAMED = "os.rename"


def _hook(event: str, args: tuple[Any, ...]) -> None:
    if (event in _AUDITED or event == _RENAMED) and _armed:
        action = _armed[0]
        if action(event, args):
            _armed.clear()


_installed = False


@contextmanager
def swap_when_opened(name: str, folder: Path, outside: Path, renamed: bool = False
                     ) -> Iterator[list[Path]]:
    """While the block runs: at the first open or listing of a path whose last part is
    `name` (a relative name opened from a folder's descriptor counts as well), swap
    `folder` for a link to `outside` (swap_for_link), just before the system call.
    Yields a list that holds the real folder's new place once the swap was made.
    `renamed`: at the first rename of a path whose last part is `name` instead (just
    before it moves), e.g. a claim's rename of the invoice file into its work folder."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    done: list[Path] = []

    def action(event: str, args: tuple[Any, ...]) -> bool:
        if (event == _RENAMED) != renamed:
            return False
        path = args[0] if args else None
        if isinstance(path, int) or path is None:
            return False
        if os.path.basename(os.fsdecode(path)) != name:
            return False
        _armed.clear()  # the swap's own renames are audited too
        done.append(swap_for_link(folder, outside))
        return True

    _armed[:] = [action]
    try:
        yield done
    finally:
        _armed.clear()


@contextmanager
def when_opened(name: str, action: Callable[[], None]) -> Iterator[list[bool]]:
    """While the block runs: at the first open of a path whose last part is `name` (a
    relative name opened from a folder's descriptor counts as well), `action()` just
    before the system call (e.g. the file moved aside: a share that blinks). Yields a
    list that holds True once it ran."""
    global _installed
    if not _installed:
        sys.addaudithook(_hook)
        _installed = True
    done: list[bool] = []

    def run(event: str, args: tuple[Any, ...]) -> bool:
        path = args[0] if args else None
        if event == _RENAMED or isinstance(path, int) or path is None:
            return False
        if os.path.basename(os.fsdecode(path)) != name:
            return False
        _armed.clear()  # the action's own calls are audited too
        action()
        done.append(True)
        return True

    _armed[:] = [run]
    try:
        yield done
    finally:
        _armed.clear()
