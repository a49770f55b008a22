"""Copying with the safety rules built in, for a move across file systems (fsmove.py).

A copy never follows a link nor opens a FIFO or device (each folder opened from the one
above, O_NOFOLLOW), makes what it copies in the folder it made, by descriptor, and syncs
every file before anything depends on it. It records what it took (`Copied`), so that
the removal of its source (fsmove.py) removes nothing put there, or saved again, since.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import stat
from pathlib import Path
from typing import BinaryIO, Protocol

from daemon.fs.fsdepth import beyond, too_deep
from daemon.fs.fsops import FOLDER_NOFOLLOW, kind_of, opened_if_regular
from daemon.fs.fsread import CHUNK
from daemon.fs.fswrite import add_group_write_fd
from daemon.names import NAME_MAX, fit_name


class Readable(Protocol):
    """What a copy reads from: an open file, or a claimed bundle's file that gives only
    the bytes checked (parts.OpenWhenRead)."""

    def read(self, size: int = -1, /) -> bytes: ...


def copy_file(src: Readable, dst: Path) -> None:
    """Copy an input file to a new dst (never through a link), fsynced. `src`: the file
    opened already, below its folder (a bundle's: parts.OpenWhenRead gives only the bytes
    checked); never a path, which a link swapped in since the check would lead astray."""
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


# A copy refuses folders nested more than DEPTH_MAX deep: at 400 levels it ran out of
# Python's recursion limit after it was in place, before its source was removed.
DEEP_COPY = "copy to another file system"


LeftOut = list[tuple[str, int]]
"""The sockets and devices of a folder a copy left out: name, mode."""

_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def copy_entry(parent: int, name: str, into: int, dst: str, copied: Copied, rel: str,
               left_out: LeftOut | None = None) -> int | None:
    """Copy the entry `name` of the folder open at `parent` without following links or
    opening FIFOs and devices (each folder opened from the one above, O_NOFOLLOW);
    fsync files. The copy is made as `dst` in the folder open at `into`, never by a
    path: the copy under way lies in a folder people may write in (the outbox, a day
    folder of sent/), where it could be swapped for a link meanwhile, and what was still
    to copy went through it (as root, for `retry`). Each file's identity before it was
    read goes into `copied` at `rel`. The file or folder made, open (the caller closes
    it); None for a link or FIFO made, or a socket or device left out: its name and mode
    go into `left_out` (copy_folder leaves a note in its place), or without one OSError
    (a socket moved on its own leaves nothing to put a note beside)."""
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    made: int | None = None
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, FOLDER_NOFOLLOW, dir_fd=parent)
        try:
            made = copy_folder(fd, into, dst, copied, rel)
        finally:
            os.close(fd)
    elif stat.S_ISREG(st.st_mode):
        made = copy_regular(parent, name, st, into, dst)
        copied[rel] = identity(st)
        return made
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=parent), dst, dir_fd=into)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst, 0o640, dir_fd=into)
    else:
        # A socket or device node carries no document and cannot be recreated
        # without privileges: left out, a note where it was instead.
        if left_out is None:
            raise OSError(errno.EINVAL, f"is a {kind_of(st.st_mode)}, which outboxd does not "
                          "copy to another file system", name)
        left_out.append((name, st.st_mode))
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


def copy_regular(parent: int, name: str, st: os.stat_result, into: int, dst: str) -> int:
    """The regular file `name` of the folder open at `parent`, looked at as `st`, copied
    as a new `dst` in the folder open at `into` (copy_entry's way: 0640 under the umask,
    group write as the file has it, its access and modification times), fsynced; the
    copy, open (the caller closes it). OSError (EAGAIN) if it is no regular file now."""
    file, _ = opened_if_regular(name, parent)
    if file is None:  # swapped since the look above: never opened
        raise OSError(errno.EAGAIN, "changed while it was copied", name)
    with os.fdopen(file, "rb") as fin:
        made = os.open(dst, _NEW_FILE, 0o640, dir_fd=into)
        try:
            _group_write_as(st, made)
            with open(made, "wb", closefd=False) as fout:
                copy_into(fin, fout)
            os.utime(made, ns=(st.st_atime_ns, st.st_mtime_ns))
        except BaseException:
            os.close(made)
            raise
    return made


def copy_folder(fd: int, into: int, dst: str, copied: Copied, rel: str = ".") -> int:
    """The folder open at `fd` copied as `dst` in the folder open at `into`
    (copy_entry); the folder made, open. OSError (ELOOP) below DEPTH_MAX levels."""
    if beyond(rel):
        raise too_deep(None, DEEP_COPY)  # named by move_tree: the source
    os.mkdir(dst, 0o750, dir_fd=into)
    out = os.open(dst, FOLDER_NOFOLLOW, dir_fd=into)
    try:
        _group_write_as(os.fstat(fd), out)
        left_out: LeftOut = []
        for name in sorted(os.listdir(fd)):
            made = copy_entry(fd, name, out, name, copied, os.path.join(rel, name), left_out)
            if made is not None:
                os.close(made)
        # After every entry is in: a note never takes the name of a file still to copy.
        for name, mode in left_out:
            _leave_note(out, name, mode)
        os.fsync(out)
    except BaseException:
        os.close(out)
        raise
    return out


_NOTE = ".not-copied.txt"


def _leave_note(into: int, name: str, mode: int) -> None:
    """A note in the folder open at `into` that `name`, a socket or device, was left out:
    NAME.not-copied.txt, NAME cut to fit one path component (fit_name), and -2, -3 …
    where the name is taken (a file of the bundle's own): a name that cannot be made
    would fail the archive on every try, for ever."""
    base = fit_name(name, NAME_MAX - len(_NOTE) - len("-999"))
    for n in itertools.count(1):
        try:
            fd = os.open(f"{base}{f'-{n}' if n > 1 else ''}{_NOTE}", _NEW_FILE, 0o640,
                         dir_fd=into)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as note:
            note.write(f"{name} was a {kind_of(mode)}; outboxd does not copy those.\n")
            # As every file of the copy: after the rename its socket is gone for good.
            note.flush()
            os.fsync(note.fileno())
        return


def _group_write_as(source: os.stat_result, made: int) -> None:
    """Group write on the copy open at `made` where its source had it: a rename on one
    file system keeps the modes of a bundle (a clerk's folders 2770, files 0660 on a
    group share), and a copy must leave the people of the group the same hold on it (to
    fix an attachment of a quarantined bundle in place). Nothing more: the rest stays
    the daemon's own (0750 / 0640), never anything for others."""
    if source.st_mode & stat.S_IWGRP:
        add_group_write_fd(made)


