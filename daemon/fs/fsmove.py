"""Moving with the safety rules built in (fswrite.py writes, fscopy.py copies).

A move is a rename that never replaces where it can be; across file systems it is
copy + fsync + rename + delete, so a crash leaves either the source or a complete
copy (the copy under way named for its daemon: partial_name), and the delete removes
only what was copied. A claimed bundle's work folder (held by `workfolder.hold_folder`)
is moved only while its name is still it, copied from and removed through its descriptor.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from daemon.fs.fscopy import (
    DEEP_COPY,
    Copied,
    Identity,
    copy_entry,
    copy_folder,
    identity,
)
from daemon.fs.fsdepth import TooDeep, beyond, remove_tree, too_deep
from daemon.fs.fsops import FOLDER, FOLDER_NOFOLLOW
from daemon.fs.fswrite import fsync_dir, held_path, rename_noreplace
from daemon.fs.workfolder import not_the_folder, still_at, still_held
from daemon.names import NAME_MAX, fit_name


def unchanged(then: Identity | None, st: os.stat_result) -> bool:
    """Whether the entry looked at as `st` is the one whose identity was `then`. A file
    of several names (hard links: one PDF in two invoices' folders) gets a new ctime
    when one of its names is removed, the removal of its copied source among them:
    with fewer links than it had, a ctime alone moved is no change of its bytes."""
    now = identity(st)
    return then is not None and then[:3] == now[:3] and (
        then[3] == now[3] or now[4] < then[4])


def _into_place(tmp: Path, dst: Path, made: int | None, into: int | None) -> None:
    """The copy at tmp renamed to dst, only while tmp is still what the copy made (`made`,
    open; None: a link or FIFO): one who may write in its folder could have swapped it
    for a link or a folder of theirs, which would then be taken for the copy. `into`:
    their folder, open (move_tree)."""
    if made is not None and not still_at(_in(into, tmp), made):
        raise _not_the_copy(tmp)
    _rename_into(tmp, dst, into, src_too=True)
    if made is not None and not still_at(_in(into, dst), made):
        with contextlib.suppress(OSError):
            _rename_into(dst, tmp, into, src_too=True)
        raise _not_the_copy(tmp)


def _not_the_copy(tmp: Path) -> OSError:
    return OSError(errno.EAGAIN, "the copy under way was moved away or replaced meanwhile "
                   "(by someone who may write in its folder); nothing was put in place, "
                   "the source is kept and copied again at the next try", str(tmp))


def _remove_copied(parent: int, name: str, rel: str, copied: Copied) -> list[str]:
    """Remove the entry `name` of the folder open at `parent` as far as `copied` has it
    (never through a link): a file only while it is the one copied, a folder once it is
    empty. What is left (rel paths): put there, or saved again, after it was copied."""
    try:
        st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return []
    if not stat.S_ISDIR(st.st_mode):
        if not unchanged(copied.get(rel), st):
            return [rel]
        os.unlink(name, dir_fd=parent)
        return []
    if beyond(rel):
        return [rel]  # never copied (copy_folder): put in since, and kept
    fd = os.open(name, FOLDER_NOFOLLOW, dir_fd=parent)
    try:
        left = _remove_copied_below(fd, rel, copied)
    finally:
        os.close(fd)
    if not left:
        try:
            os.rmdir(name, dir_fd=parent)
        except OSError as exc:  # not empty: something came after the listing above
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            left = [rel]
    return left


def _remove_copied_below(held: int, rel: str, copied: Copied) -> list[str]:
    return [gone for name in sorted(os.listdir(held))
            for gone in _remove_copied(held, name, os.path.join(rel, name), copied)]


def remove_held(path: Path, held: int, copied: Copied) -> list[Path]:
    """Remove the folder open at `held`, which lies at `path`, as far as it was copied
    (`copied`): what it holds reached from the descriptor (never through a link), the
    folder itself by its name only while that is still it and empty. A folder swapped
    for a link keeps whatever the link leads to; an empty folder of ours that was moved
    elsewhere stays there. What is left (a file a person put in, or saved again, while
    the folder was copied: never removed uncopied) is returned, at `path`."""
    left = _remove_copied_below(held, ".", copied)
    if not left and still_at(path, held):
        try:
            os.rmdir(path)
        except OSError as exc:
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            left = ["."]
    return [Path(os.path.normpath(path / rel)) for rel in left]


def remove_leftover(path: Path) -> None:
    """Remove a file or folder we made (a copy under way a crash left: partial_name);
    nothing if it is not there. A link is removed, never followed."""
    if not os.path.lexists(path):
        return
    if path.is_dir() and not path.is_symlink():
        remove_tree(path)  # refused by name past DEPTH_MAX, never a RecursionError
    else:
        path.unlink()


def remove_made(into: int, name: str) -> None:
    """remove_leftover of `name` in the folder open at `into`: a link is removed, never
    followed, nor is the folder reached through one."""
    try:
        st = os.stat(name, dir_fd=into, follow_symlinks=False)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        remove_tree(name, dir_fd=into, shown=held_path(into) / name)
    else:
        os.unlink(name, dir_fd=into)


TAG_MAX = 39
"""The bytes a daemon's tag in a partial copy's name takes at most (claim.copy_tag: a host
of up to 32 bytes, "-", 6 hex)."""


PARTIAL = ".partial"
"""How the name of a copy under way ends (partial_name)."""


def partial_name(dst: Path, tag: str = "") -> Path:
    """Where a copy across file systems to dst is made before it is renamed there:
    `.NAME.TAG.partial`. TAG is the daemon's (claim.copy_tag: its host and state dir), so
    that a copy another daemon makes to the same name at the same time (two daemons
    archiving into one sent/, the same bundle dropped again) is never taken for a leftover
    and removed under it, while a daemon restarted after a crash mid-copy finds its own.
    Without a tag (`outboxd retry`, and every copy of a version before the tag):
    `.NAME.partial`.

    NAME is cut (fit_name: the same NAME always gives the same cut, two give two) where
    the whole would not fit in a path component: archive entries a version before the tag
    named and journaled are up to 244 bytes long, without room for one."""
    suffix = f".{tag}{PARTIAL}" if tag else PARTIAL
    return dst.with_name(f".{fit_name(dst.name, NAME_MAX - 1 - len(os.fsencode(suffix)))}"
                         f"{suffix}")


def move_tree(src: Path, dst: Path, sync: bool = True, held: int | None = None,
              tag: str = "", into: int | None = None,
              before_rename: Callable[[Path], None] | None = None) -> list[Path]:
    """Move a file or folder to dst, which must not exist; what stayed at src (below).

    Same file system: one atomic rename. Across file systems: copy to a
    hidden temp name, fsync every file, rename into place, then delete the
    source — a crash leaves the source intact or a complete copy. Only what was
    copied is deleted: a file put into src, or saved again there, while it was
    copied (a clerk at work in a quarantined bundle) stays where it is, and its
    path is returned.
    `sync=False`: the caller syncs dst's folder after a same-file-system
    rename (it has more to sync there); the copy is synced before its source
    is deleted whatever the caller says. `held`: the folder at src, open
    (workfolder.hold_folder): only that folder is moved, copied from its descriptor and
    removed through it; OSError when src names anything else (a link put there). `tag`:
    the daemon's, in the temp name (partial_name). `into`: dst's folder, open (an
    archive's day folder, held by the caller): dst is made in that very folder, never
    through its path, and only while the path still names it (not_its_folder: a link
    someone who may write beside it put in its place would lead anywhere).
    `before_rename(dst)`: called once a copy is complete and synced, before it is renamed
    to dst (archive.py marks the work folder there: a crash at any point after the copy
    is in place then leaves proof of whose the copy is); raising, the copy is removed.
    """
    if into is None:
        dst.parent.mkdir(parents=True, exist_ok=True)
    else:
        _still_its_folder(dst, into)
    try:
        _rename(src, dst, held, into)
        if sync:
            fsync_dir(dst.parent) if into is None else os.fsync(into)
        return []
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # Named after the target and the daemon, not our pid: a restart after a crash
    # mid-copy finds and replaces its partial copy instead of leaving it behind.
    tmp = partial_name(dst, tag)
    remove_leftover(_in(into, tmp))
    copied: Copied = {}
    folder = os.open(dst.parent, FOLDER) if into is None else into
    made: int | None = None
    try:
        if held is None:
            parent = os.open(src.parent, FOLDER)
            try:
                made = copy_entry(parent, src.name, folder, tmp.name, copied, ".")
            finally:
                os.close(parent)
        else:
            made = copy_folder(held, folder, tmp.name, copied)
            st = os.fstat(held)
            os.utime(made, ns=(st.st_atime_ns, st.st_mtime_ns))
        if before_rename is not None:
            before_rename(dst)
        _into_place(tmp, dst, made, into)
        if into is not None and not still_at(dst.parent, into):
            remove_leftover(_in(into, dst))  # the source is whole: copied again next time
            raise not_its_folder(dst.parent)
    except BaseException as exc:
        # A full disk, a path too long, a share gone: the source is intact, so
        # a half copy is only litter in the archive. Retried later from scratch.
        with contextlib.suppress(OSError):
            # Where it was made: its folder (a day folder of sent/) may have been renamed
            # away since, with the copy in it, and another made at its name.
            remove_made(folder, tmp.name)
        if isinstance(exc, TooDeep) and exc.filename is None:  # the copy's, unnamed
            raise too_deep(src, DEEP_COPY) from None
        raise
    finally:
        if into is None:
            os.close(folder)
        if made is not None:
            os.close(made)
    fsync_dir(dst.parent) if into is None else os.fsync(into)
    if held is not None:
        return remove_held(src, held, copied)
    parent = os.open(src.parent, FOLDER)
    try:
        left = _remove_copied(parent, src.name, ".", copied)
    finally:
        os.close(parent)
    return [Path(os.path.normpath(src / rel)) for rel in left]


def _in(folder: int | None, path: Path) -> Path:
    """path, or its name in `folder` (open) when given: never through a link put in the
    folder's place since it was opened (held_path)."""
    return path if folder is None else held_path(folder) / path.name


def _rename_into(src: Path, dst: Path, into: int | None, src_too: bool = False) -> None:
    """rename_noreplace(src, dst), dst (and src, `src_too`) taken in `into` when given."""
    if into is None:
        rename_noreplace(src, dst)
    else:
        rename_noreplace(src, dst, into if src_too else None, into)


def not_its_folder(folder: Path) -> OSError:
    return OSError(errno.ELOOP, "is a symbolic link or no longer the folder outboxd made; "
                   "outboxd never moves a bundle through one — remove the link (outboxd "
                   "makes the folder again); the bundle stays in processing until then",
                   str(folder))


def _still_its_folder(dst: Path, into: int) -> None:
    if not still_at(dst.parent, into):
        raise not_its_folder(dst.parent)


def _rename(src: Path, dst: Path, held: int | None, into: int | None) -> None:
    """rename_noreplace(src, dst), of the held folder only: checked before, and after
    (a link swapped in between the two is put back and refused). Into `into` (see
    move_tree) only while dst's folder is still at its name: else put back, refused."""
    if held is not None:
        still_held(src, held)
    _rename_into(src, dst, into)
    there = _in(into, dst)
    if held is not None and not still_at(there, held):
        with contextlib.suppress(OSError):
            _rename_back(dst, src, into)
        raise not_the_folder(src)
    if into is not None and not still_at(dst.parent, into):
        _rename_back(dst, src, into)  # raises, the bundle where it was, if it cannot
        raise not_its_folder(dst.parent)


def _rename_back(dst: Path, src: Path, into: int | None) -> None:
    if into is None:
        rename_noreplace(dst, src)
    else:
        rename_noreplace(dst, src, into, None)
