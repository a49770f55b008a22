"""Replacing and removing outboxd's own files on the share (the status page,
NAME.errors.txt) without ever losing a person's file of the same name.

Each caller first looks at what is at the name and judges whether it is outboxd's; a
file a clerk puts there between that look and the rename or unlink must survive. So
the rename or unlink acts on the very file judged only: an exchange (replace_ours) or a
rename aside (remove_ours) in one step, then a check of what was moved, put back at once
when it is not the file judged.
"""

from __future__ import annotations

import errno
import os
import stat
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import NotOurs
from daemon.fs.fsops import kind_of, opened_if_regular
from daemon.fs.fswrite import (
    Stranded,
    free_name,
    fsync_dir,
    rename_exchange,
    rename_noreplace,
    written_temp,
)
from daemon.fs.temps import temp_prefix


@dataclass(frozen=True)
class Judged:
    """A file a look judged outboxd's own to replace or remove: open at `fd` (which
    keeps its inode from being reused: a person's file made at its name meanwhile never
    passes for it), as it was then (`st`)."""

    fd: int
    st: os.stat_result

    @classmethod
    def of(cls, fd: int) -> Judged:
        return cls(fd, os.fstat(fd))

    def is_it(self, st: os.stat_result) -> bool:
        """Whether `st` is that file, unchanged since (a rename changes neither)."""
        return identity(st) == identity(self.st)


def identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """A file as a look knows it: which file (device, inode) and as it was then."""
    return (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)


def opened(path: Path, refuse: Callable[[str], NotOurs]) -> Judged | None:
    """The start of a look: the regular file at `path`, open; None if nothing is there;
    `refuse(what)` raised naming what else is there (a folder, a link, a FIFO, a device:
    never opened) or a file outboxd may not read."""
    try:
        fd, mode = opened_if_regular(path)
    except FileNotFoundError:
        return None
    except PermissionError:
        raise refuse("is a file outboxd may not read") from None
    if fd is None:
        raise refuse("is a folder" if stat.S_ISDIR(mode) else f"is a {kind_of(mode)}")
    return Judged.of(fd)


# A look that judges what is at a name: the file open, if outboxd's own; None if
# nothing is there (replace_ours) or nothing of outboxd's (remove_ours); it raises to
# refuse (replace_ours: what is there is not outboxd's).
Look = Callable[[], Judged | None]
_TRIES = 3


def replace_ours(path: Path, data: bytes, look: Look, mode: int | None = None,
                 sync: bool = True) -> os.stat_result:
    """Write `data` at path as write_atomic does, replacing only a file `look` judges
    outboxd's own (NAME.errors.txt, the status page): a file a person puts at that
    name between the look and the rename is never replaced. The stat of the file written
    (as it now is at path: the identity to know it by later). `mode`, `sync`: as
    write_atomic's (sync=False: the caller syncs the file and its folder itself).

    With nothing at the name, the temp is renamed there only while that stays so
    (rename_noreplace). Over a file judged ours, it is exchanged with it
    (renameat2 RENAME_EXCHANGE, one step), and what the temp name then holds is checked:
    the very file judged (its inode, held open by the look, cannot have been reused) is
    removed; anything else was put there in the window, is exchanged back at once, and
    is looked at again (the look refuses it, or judges it anew). Where the file system has
    no exchange (NFS, SMB), the temp is renamed over the name right after the look: the
    best such a file system allows, as the only one-step operations it has either replace
    what is there or refuse to (a person's file that comes in those microseconds is lost).

    Left to chance: a kill of outboxd, or another outboxd sweeping this page name's
    temps at its start, in the microseconds between an exchange that brought in a
    person's file and the exchange back."""
    judged = look()  # before the temp is written: a refusal costs no write
    try:
        with written_temp(path, data, sync, mode) as (tmp, fd):
            written = os.fstat(fd)
            for attempt in range(_TRIES):
                if attempt:
                    judged = look()
                done = _replaced(tmp, path, judged)
                if judged is not None:
                    os.close(judged.fd)
                    judged = None
                if done:
                    break
            else:
                raise OSError(errno.EAGAIN, "changed by someone else at each of "
                              f"{_TRIES} tries; written again at the next", str(path))
    finally:
        if judged is not None:
            os.close(judged.fd)
    if sync:
        fsync_dir(path.parent)
    return written


def _replaced(tmp: Path, path: Path, judged: Judged | None) -> bool:
    """tmp renamed to path over nothing, or over `judged` only; False: look again."""
    if judged is None:
        try:
            rename_noreplace(tmp, path)
        except FileExistsError:
            return False  # one came at the name meanwhile
        return True
    try:
        if not rename_exchange(tmp, path):
            os.replace(tmp, path)
            return True
    except FileNotFoundError:
        return False  # ours went meanwhile
    if judged.is_it(os.lstat(tmp)):
        os.unlink(tmp)
        return True
    try:
        rename_exchange(tmp, path)
    except OSError as exc:
        _keep(tmp, path, exc)
    return False


def _keep(tmp: Path, path: Path, exc: OSError) -> None:
    """The person's file at tmp, which could not be exchanged back (exc), put back at
    its name if that is free now, else at a free name beside it: never left under a
    temp's name, which a sweep removes. Stranded (never removed) if neither can be."""
    for there in (path, free_name(path.parent, path.name)):
        try:
            rename_noreplace(tmp, there)
        except OSError:
            continue
        if there == path:
            return
        raise OSError(errno.EEXIST, f"a file put at {path.name} while outboxd replaced "
                      f"its own is kept as {there.name} (it could not be put back: "
                      f"{exc.strerror})", str(path))
    raise Stranded(exc.errno, f"a file put at {path.name} while outboxd replaced its own "
                   f"is at {tmp.name} and could not be put back ({exc.strerror}) — rename "
                   "it back", str(path))


def remove_ours(path: Path, look: Look) -> None:
    """Remove the file at path when `look` judges it outboxd's own, never a file a
    person put at that name after the look: it is first renamed to a temp name beside
    it (renameat2 RENAME_NOREPLACE), removed only if that is the very file judged (held
    open by the look: its inode cannot have been reused), else renamed back and looked
    at again. A rename is one step on every file system, NFS and SMB too.

    Left to chance: a kill of outboxd in the microseconds between that rename of a
    person's file and its rename back (it stays under the hidden temp name, where a
    sweep of temps may take it)."""
    for _ in range(_TRIES):
        judged = look()
        if judged is None:
            return
        try:
            if _removed(path, judged):
                return
        finally:
            os.close(judged.fd)
    raise OSError(errno.EAGAIN, f"changed by someone else at each of {_TRIES} tries; "
                  "removed at the next", str(path))


def _removed(path: Path, judged: Judged) -> bool:
    """path removed if it is `judged`; False: look again."""
    aside = path.with_name(f"{temp_prefix(path.name)}{uuid.uuid4().hex[:12]}")
    try:
        rename_noreplace(path, aside)
    except FileNotFoundError:
        return True  # gone already
    if judged.is_it(os.lstat(aside)):
        os.unlink(aside)
        return True
    try:
        rename_noreplace(aside, path)
    except FileExistsError:
        # Yet another came at the name: theirs is kept beside it, never removed.
        kept = free_name(path.parent, path.name)
        rename_noreplace(aside, kept)
        raise OSError(errno.EEXIST, f"two files were put at {path.name} while outboxd "
                      f"removed its own; the first is kept as {kept.name}",
                      str(path)) from None
    return False
