"""The real name of a folder held by descriptor, for the lines people read.

A folder the daemon writes in is reached through its descriptor as
/proc/self/fd/N/NAME (fswrite.held_path): no link swapped in for it is ever followed.
An OSError of such a write names /proc/self/fd/N/NAME, which no admin can look up (N is
closed by the time they read it) and which says nothing of which folder refused. Each
held_path remembers what the kernel says the folder open at N is (its readlink), and
an error's names are given back as that folder's path before they are shown.

Kept per thread: a descriptor closed after an error and its number reused by another
thread for another folder, before the first has shown its line, must not lend that
line the other folder's name. No import of outboxd's own: errors.describe uses it.
"""

from __future__ import annotations

import os
import re
import threading

PROC_FD = "/proc/self/fd/"
_HELD = re.compile(r"/proc/self/fd/(\d+)(?=/|$)")
_local = threading.local()


def _names() -> dict[int, str]:
    names: dict[int, str] | None = getattr(_local, "names", None)
    if names is None:
        names = _local.names = {}
    return names


def remember(fd: int) -> None:
    """Note the path of the folder open at fd, as the kernel names it now (where it is,
    whatever path it was opened by). Nothing noted where /proc cannot say it."""
    try:
        _names()[fd] = os.readlink(f"{PROC_FD}{fd}")
    except OSError:
        _names().pop(fd, None)


def real_name(name: str) -> str:
    """`name` with a /proc/self/fd/N at its start given back as the path of the folder
    held at N when held_path was last called for N on this thread; unchanged where none
    was noted."""
    found = _HELD.match(name)
    if found is None or (folder := _names().get(int(found[1]))) is None:
        return name
    return folder + name[found.end():]


def shown_name(name: object) -> str:
    """An OSError's filename (a str, bytes or a path) as a line shows it: real_name's."""
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    return real_name(os.fspath(name) if isinstance(name, os.PathLike) else str(name))
