"""Folders nested hundreds or thousands deep (made from each folder's descriptor, as
mkdirat in a loop: the path outgrows PATH_MAX), and their removal without recursion:
shutil.rmtree, and pytest's own removal of old temp folders, recurse past Python's
limit on them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

_FOLDER = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


def nested(top: Path, depth: int, name: str = "d") -> None:
    """depth folders `name` one in another below top, a file at the bottom."""
    fd = os.open(top, _FOLDER)
    for _ in range(depth):
        os.mkdir(name, dir_fd=fd)
        inner = os.open(name, _FOLDER, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open("f.pdf", os.O_WRONLY | os.O_CREAT, 0o640, dir_fd=fd))
    os.close(fd)


def remove_below(top: Path) -> None:
    """Everything below top removed, deepest first, one folder open per level (no
    recursion); nothing if top is not there."""
    try:
        stack = [(os.open(top, _FOLDER), "")]
    except FileNotFoundError:
        return
    while stack:
        fd = stack[-1][0]
        inner = None
        for name in os.listdir(fd):
            if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                inner = name
                break
            os.unlink(name, dir_fd=fd)
        if inner is not None:
            stack.append((os.open(inner, _FOLDER, dir_fd=fd), inner))
            continue
        os.close(fd)
        name = stack.pop()[1]
        if stack:
            os.rmdir(name, dir_fd=stack[-1][0])
