"""Writing with the safety rules built in.

A file is written whole or not at all (temp name, fsync, rename); a folder
the daemon writes in is never reached through a symbolic link; a rename never
replaces what a person put at its name meanwhile. Moves and copies (archive moves
across file systems too) are `fsmove.py`'s and `fscopy.py`'s; inputs are opened by
`fsops.py`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from daemon.fs.fdnames import PROC_FD, remember
from daemon.fs.fsdepth import fwalk_bounded
from daemon.fs.fsops import FOLDER, FOLDER_NOFOLLOW, kind_of, opened_if_regular
from daemon.fs.temps import create_locked, temp_prefix


def folders_below(root: Path, folder: Path) -> list[Path]:
    """`folder` and each folder between it and `root`, when it lies inside `root` (the
    outbox, where anyone on the share may put a link); else `folder` alone (its
    ancestors are the admin's choice)."""
    try:
        rel = folder.relative_to(root)
    except ValueError:
        return [folder]
    return [root.joinpath(*rel.parts[:n]) for n in range(1, len(rel.parts) + 1)]


def refuse_links(folders: Iterable[Path]) -> None:
    """OSError naming the first of `folders` that is a symbolic link: a folder the daemon
    writes in is never reached through one (it could lead anywhere). One that does
    not exist yet is fine: it is made, not followed (and one that cannot be looked at
    fails on its own when it is written)."""
    for folder in folders:
        try:
            mode = os.lstat(folder).st_mode
        except OSError:
            continue
        if stat.S_ISLNK(mode):
            raise OSError(errno.ELOOP, "is a symbolic link; outboxd never writes through "
                          "one — remove the link (a folder is made in its place)", str(folder))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, FOLDER)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Sync root and every folder below it, deepest first: the entries of what was
    written in them are on disk before a rename of root publishes it all."""
    for folder, _dirs, _files in os.walk(root, topdown=False):
        fsync_dir(Path(folder))


def make_folders_below(root: Path, parts: Iterable[str],
                       made: Callable[[int], None] | None = None) -> int:
    """ROOT/PART/PART… made where missing and opened, each reached from its parent's
    descriptor and never through a link (O_NOFOLLOW): a folder a user of the share swaps
    for a link between a check and the writes cannot send them elsewhere. The open
    descriptor of the last folder (the caller closes it; held_path names that very
    folder for path-based calls); `made` is called with the descriptor of each folder
    made here. Each folder made is synced into its parent, once. NotADirectoryError (its
    filename the part) when one of them is a link or no folder. ROOT itself is followed
    (a configured path may be a link)."""
    fd = os.open(root, FOLDER)
    try:
        for part in parts:
            try:
                os.mkdir(part, dir_fd=fd)
                new = True
            except FileExistsError:
                new = False
            else:
                # The new folder's entry in its parent: what is written inside it later
                # syncs that folder (write_atomic), never its parent, so a power loss
                # could take the folder, and what was synced into it, away.
                try:
                    os.fsync(fd)
                except OSError:
                    # Left, the folder would be found made at the next try and its entry
                    # never synced (and attach's "nothing was changed" would not hold).
                    with contextlib.suppress(OSError):
                        os.rmdir(part, dir_fd=fd)
                    raise
            try:
                inner = os.open(part, FOLDER_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise NotADirectoryError(errno.ENOTDIR, "a link or no folder",
                                             part) from None
                raise
            os.close(fd)
            fd = inner
            if new and made is not None:
                made(fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def held_path(fd: int) -> Path:
    """The folder open at fd, by a name that stays that folder whatever becomes of the
    path it was opened by (Linux's /proc/self/fd: followed as a folder on the way to a
    name in it, even under O_NOFOLLOW, which concerns the last name only). Its real
    path is noted for the errors of what is done through it (fdnames.real_name)."""
    remember(fd)
    return Path(f"{PROC_FD}{fd}")


def add_group_write_fd(fd: int) -> None:
    """Give the folder (or file) open at fd group write permission."""
    mode = os.fstat(fd).st_mode
    if not mode & stat.S_IWGRP:
        os.fchmod(fd, stat.S_IMODE(mode) | stat.S_IWGRP)


def add_group_write_below(held: int, where: Path) -> None:
    """Give the folder open at `held` (at `where`) and every folder below it group write
    permission, each reached from its parent's descriptor (os.fwalk), never by a path: a
    folder swapped for a link meanwhile, in a folder others may write in, is never
    followed. Folders more than fsdepth.DEPTH_MAX deep are not: OSError naming `where`
    once those above have it."""
    for _folder, _dirs, _files, fd in fwalk_bounded(held, where, "walk"):
        add_group_write_fd(fd)


class Stranded(OSError):
    """A person's file is at a temp's name and could not be put back at its own: the temp
    is never removed then."""


@contextlib.contextmanager
def written_temp(path: Path, data: bytes, sync: bool, mode: int | None
                  ) -> Iterator[tuple[Path, int]]:
    """A new temp file beside path holding `data` (fsynced unless not `sync`), and its
    descriptor: locked while the block runs (no sweep takes it before its rename), and
    removed if the block raises — unless the block says a person's file is at its name
    then (Stranded)."""
    tmp = path.with_name(f"{temp_prefix(path.name)}{uuid.uuid4().hex[:12]}")
    fd = create_locked(tmp)
    try:
        with os.fdopen(fd, "wb") as fh:
            if mode is not None:
                os.fchmod(fd, mode)
            fh.write(data)
            fh.flush()  # all of it in the file before its rename, synced or not
            if sync:
                os.fsync(fd)
            yield tmp, fd
    except Stranded:
        raise
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_atomic(path: Path, data: bytes, sync: bool = True, mode: int | None = None) -> None:
    """Write a whole file or nothing: temp name, fsync, rename, fsync the folder.

    The temp name is new (O_EXCL) and never followed (O_NOFOLLOW): a link a
    share user planted under a guessable name cannot redirect the write.
    `sync=False` skips both syncs: for a caller that syncs the file and its
    folder itself before anything depends on them (`archive.place`). `mode`: the
    file's permissions whatever the umask, set on the temp before its rename (a chmod
    of the final name would follow a link put there meanwhile). Whatever is at path
    is replaced: for a name a person may use too, replace_ours.
    """
    with written_temp(path, data, sync, mode) as (tmp, _fd):
        os.replace(tmp, path)  # still locked: no sweep takes it before the rename
    if sync:
        fsync_dir(path.parent)


def fsync_file(path: Path) -> None:
    """Sync a file written earlier without a sync of its own: an archive entry's paper,
    in a folder people on the share may write in (the work folder in the outbox, sent/,
    quarantine/). One of them may have put a FIFO, device or link in its place: that is
    never opened nor followed (opened_if_regular), but an OSError naming it; the
    archive's next tries say so too (write_papers writes over no file it did not write)
    until someone removes it."""
    fd, mode = opened_if_regular(path)
    if fd is None:
        raise OSError(errno.EINVAL, f"is a {kind_of(mode)}, not the file outboxd wrote "
                      "there; outboxd never opens nor replaces one — remove it, and the "
                      "next try writes the file again", str(path))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def free_name(parent: Path, name: str) -> Path:
    """NAME, else NAME-2, NAME-3 … : the first that does not exist in parent."""
    candidate = parent / name
    n = 1
    while os.path.lexists(candidate):  # one lstat: a dangling link counts as taken too
        n += 1
        candidate = parent / f"{name}-{n}"
    return candidate


_AT_FDCWD = -100
_RENAME_NOREPLACE = 1
_RENAME_EXCHANGE = 2
# What renameat2 answers where the file system (NFS, SMB, some FUSE) or the kernel has
# no such rename.
_UNSUPPORTED = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})
_renameat2: Any = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
    _renameat2.restype = ctypes.c_int


def _at(path: Path, folder: int | None) -> tuple[int, bytes]:
    """path for an *at() call: by its name in `folder` (open) when given, else as is."""
    return (_AT_FDCWD, os.fsencode(path)) if folder is None else (folder,
                                                                  os.fsencode(path.name))


def _rename2(src: Path, dst: Path, flags: int, src_dir: int | None = None,
             dst_dir: int | None = None) -> bool:
    """renameat2(src, dst, flags): True once done, False where it is not supported;
    else the OSError (FileExistsError, FileNotFoundError …) naming both. `src_dir`,
    `dst_dir`: see rename_noreplace."""
    if _renameat2 is None:
        return False
    if _renameat2(*_at(src, src_dir), *_at(dst, dst_dir), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_noreplace(src: Path, dst: Path, src_dir: int | None = None,
                     dst_dir: int | None = None) -> None:
    """Rename without ever replacing what is at dst (os.rename would, silently).

    renameat2(RENAME_NOREPLACE) makes the check and the rename one step, so a
    file an ERP drops under the same name at that moment is never replaced.
    File systems without it (NFS, SMB) fall back to check-then-rename.
    `src_dir`, `dst_dir`: the folder of src, of dst, open: the name is taken in that
    very folder, never through a link put in its place meanwhile (the paths name them
    in errors).
    """
    if _rename2(src, dst, _RENAME_NOREPLACE, src_dir, dst_dir):
        return
    try:
        os.stat(_at(dst, dst_dir)[1], dir_fd=dst_dir, follow_symlinks=False)
    except FileNotFoundError:
        pass
    else:
        raise FileExistsError(errno.EEXIST, "target exists", str(dst))
    try:
        os.rename(_at(src, src_dir)[1], _at(dst, dst_dir)[1], src_dir_fd=src_dir,
                  dst_dir_fd=dst_dir)
    except OSError as exc:
        # By a held folder the names given are bare: the error would name a file in
        # the working folder, and a refusal's fix (errors.describe) that folder.
        raise OSError(exc.errno, exc.strerror, str(src), None, str(dst)) from None


def rename_exchange(a: Path, b: Path) -> bool:
    """Exchange what is at a and at b in one step (renameat2 RENAME_EXCHANGE); both must
    exist (FileNotFoundError). False where the file system has no such rename (NFS,
    SMB): nothing was done."""
    return _rename2(a, b, _RENAME_EXCHANGE)
