"""How deep outboxd goes below a folder it copies, walks or removes: DEPTH_MAX levels.

Each level of a copy, a walk (os.fwalk) or a removal (shutil.rmtree) takes a frame or
more of Python's recursion: a tree about a thousand deep, which anyone who may write in
the outbox, sent/ or quarantine/ can make (mkdirat in a loop), ran out of the recursion
limit — a RecursionError, no OSError: a traceback instead of a refusal, and whatever
the caller was doing left half done. A bundle holds two levels (nested-too-deep refuses
more); outboxd never makes a deeper tree, so a bound far below the limit costs nothing.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from daemon.fs.fsops import FOLDER_NOFOLLOW

DEPTH_MAX = 64
"""Levels of folders below the one a copy, walk or removal starts from that it goes into:
each holds a descriptor or two and two or three frames while the levels below are done."""


class TooDeep(OSError):
    """too_deep's refusal (ELOOP): told apart by its type, as a link swapped in gives an
    ELOOP too, and not by its words."""


def too_deep(folder: Path | str | None, what: str) -> TooDeep:
    """The refusal of a tree deeper than DEPTH_MAX below `folder` (None: named by the
    caller, who knows which): `what` outboxd does not do to it ("copy to another file
    system", "walk")."""
    words = (f"folders nested more than {DEPTH_MAX} deep below it, which outboxd does not "
             f"{what} — move the innermost folders up, or out")
    if folder is None:
        return TooDeep(errno.ELOOP, words)
    return TooDeep(errno.ELOOP, words, str(folder))


def beyond(rel: str) -> bool:
    """Whether `rel`, a path below where a copy or removal started ("a/b"), is more than
    DEPTH_MAX levels down: never copied, walked or removed."""
    return rel.count("/") > DEPTH_MAX


def fwalk_bounded(held: int, where: Path | str, what: str,
                  deeper: Callable[[str], None] | None = None,
                  onerror: Callable[[OSError], None] | None = None,
                  ) -> Iterator[tuple[str, list[str], list[str], int]]:
    """os.fwalk of the folder open at `held` (top-down from ".", never through a link),
    never into a folder more than DEPTH_MAX levels below it. A folder at that depth that
    holds folders is yielded, then: without `deeper`, too_deep(`where`, `what`) is
    raised; with it, it is told each of those folders' paths (below `held`, as fwalk
    gives them) and they are left out."""
    for top, dirs, files, fd in os.fwalk(".", dir_fd=held, onerror=onerror):
        yield top, dirs, files, fd
        if dirs and top.count("/") >= DEPTH_MAX:  # "." is 0, "./a" 1 …
            if deeper is None:
                raise too_deep(where, what)
            for name in dirs:
                deeper(os.path.join(top, name))
            dirs[:] = []


def remove_tree(path: Path | str, ignore_errors: bool = False, dir_fd: int | None = None,
                shown: Path | str | None = None) -> None:
    """shutil.rmtree of the folder at path (in the folder open at dir_fd, when given; never
    through a link; `ignore_errors` as rmtree's), refused with too_deep(shown or path,
    "remove") when it goes more than DEPTH_MAX levels down: looked at first, so that
    nothing of such a tree is removed. One made deeper between the look and the removal
    (by whoever may write in it) is refused the same way, part of it removed: never a
    RecursionError."""
    where = path if shown is None else shown
    fd = os.open(path, FOLDER_NOFOLLOW, dir_fd=dir_fd)
    try:
        for _ in fwalk_bounded(fd, where, "remove"):
            pass
    finally:
        os.close(fd)
    try:
        shutil.rmtree(path, ignore_errors=ignore_errors, dir_fd=dir_fd)
    except RecursionError:
        raise too_deep(where, "remove") from None
