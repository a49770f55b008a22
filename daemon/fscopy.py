"""Copying with the safety rules built in, for a move across file systems (fsmove.py).

A copy never follows a link nor opens a FIFO or device (each folder opened from the one
above, O_NOFOLLOW), makes what it copies in the folder it made, by descriptor, and syncs
every file before anything depends on it. It records what it took (`Copied`), so that
the removal of its source (fsmove.py) removes nothing put there, or saved again, since.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO, Protocol

from daemon.fsops import CHUNK, FOLDER_NOFOLLOW, kind_of, open_regular, opened_if_regular
from daemon.fswrite import add_group_write_fd


class Readable(Protocol):
    """What a copy reads from: an open file, or a claimed bundle's file that gives only
    the bytes checked (parts.OpenWhenRead)."""

    def read(self, size: int = -1, /) -> bytes: ...


def copy_file(src: Path | Readable, dst: Path) -> None:
    """Copy a regular input file to a new dst (never through a link), fsynced. `src`: its
    path, or the file opened already (a bundle's, opened below its folder: open_below)."""
    if isinstance(src, Path):
        with open_regular(src) as fin:
            copy_file(fin, dst)
        return
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o640)
    with os.fdopen(fd, "wb") as fout:
        copy_into(src, fout)


def copy_into(fin: Readable, fout: BinaryIO) -> None:
    """The rest of fin into fout, fsynced."""
    shutil.copyfileobj(fin, fout, CHUNK)
    fout.flush()
    os.fsync(fout.fileno())


Identity = tuple[int, int, int, int, int]
Copied = dict[str, Identity]
"""What a copy took, for the removal of its source: each entry's path below the source
(`.` the source itself) and its identity as it was looked at before it was read."""


def identity(st: os.stat_result) -> Identity:
    # Inode, size and both times: a file saved again in place changes size or times, a
    # new one saved over it by rename has another inode. The link count: see unchanged.
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_nlink)


DEPTH_MAX = 64
"""How deep a copy across file systems goes: each level holds two descriptors and two
frames of the copy (three of its source's removal) while the levels below are copied, and
a tree hundreds deep (a bundle may hold two levels, nested-too-deep refuses more) ran out
of Python's recursion limit after its copy was in place, before its source was removed."""

TOO_DEEP = (f"folders nested more than {DEPTH_MAX} deep below it, which outboxd does not "
             "copy to another file system — move the innermost folders up, or out")


_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_entry(parent: int, name: str, into: int, dst: str, copied: Copied, rel: str
                ) -> int | None:
    """Copy the entry `name` of the folder open at `parent` without following links or
    opening FIFOs and devices (each folder opened from the one above, O_NOFOLLOW);
    fsync files. The copy is made as `dst` in the folder open at `into`, never by a
    path: the copy under way lies in a folder people may write in (the outbox, a day
    folder of sent/), where it could be swapped for a link meanwhile, and what was still
    to copy went through it (as root, for `retry`). Each file's identity before it was
    read goes into `copied` at `rel`. The file or folder made, open (the caller closes
    it); None for a link, FIFO or note made."""
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    made: int | None = None
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, FOLDER_NOFOLLOW, dir_fd=parent)
        try:
            made = copy_folder(fd, into, dst, copied, rel)
        finally:
            os.close(fd)
    elif stat.S_ISREG(st.st_mode):
        file, _ = opened_if_regular(name, parent)
        if file is None:  # swapped since the look above: never opened
            raise OSError(errno.EAGAIN, "changed while it was copied", name)
        with os.fdopen(file, "rb") as fin:
            made = os.open(dst, _NEW_FILE, 0o640, dir_fd=into)
            try:
                _group_write_as(st, made)
                with open(made, "wb", closefd=False) as fout:
                    copy_into(fin, fout)
            except BaseException:
                os.close(made)
                raise
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=parent), dst, dir_fd=into)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst, 0o640, dir_fd=into)
    else:
        # A socket or device node carries no document and cannot be recreated
        # without privileges; leave a note where it was instead.
        with os.fdopen(os.open(f"{dst}.not-copied.txt", _NEW_FILE, 0o640, dir_fd=into),
                       "w", encoding="utf-8") as note:
            note.write(f"{name} was a {kind_of(st.st_mode)}; outboxd does not copy those.\n")
        copied[rel] = identity(st)
        return None
    times = (st.st_atime_ns, st.st_mtime_ns)
    try:
        if made is None:
            os.utime(dst, ns=times, dir_fd=into, follow_symlinks=False)
        else:
            os.utime(made, ns=times)
    except BaseException:
        if made is not None:
            os.close(made)
        raise
    copied[rel] = identity(st)
    return made


def copy_folder(fd: int, into: int, dst: str, copied: Copied, rel: str = ".") -> int:
    """The folder open at `fd` copied as `dst` in the folder open at `into`
    (copy_entry); the folder made, open. OSError (ELOOP) below DEPTH_MAX levels."""
    if rel.count("/") > DEPTH_MAX:
        raise OSError(errno.ELOOP, TOO_DEEP)
    os.mkdir(dst, 0o750, dir_fd=into)
    out = os.open(dst, FOLDER_NOFOLLOW, dir_fd=into)
    try:
        _group_write_as(os.fstat(fd), out)
        for name in sorted(os.listdir(fd)):
            made = copy_entry(fd, name, out, name, copied, os.path.join(rel, name))
            if made is not None:
                os.close(made)
        os.fsync(out)
    except BaseException:
        os.close(out)
        raise
    return out


def _group_write_as(source: os.stat_result, made: int) -> None:
    """Group write on the copy open at `made` where its source had it: a rename on one
    file system keeps the modes of a bundle (a clerk's folders 2770, files 0660 on a
    group share), and a copy must leave the people of the group the same hold on it (to
    fix an attachment of a quarantined bundle in place). Nothing more: the rest stays
    the daemon's own (0750 / 0640), never anything for others."""
    if source.st_mode & stat.S_IWGRP:
        add_group_write_fd(made)


