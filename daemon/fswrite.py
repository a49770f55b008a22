"""Writing and moving with the safety rules built in.

A file is written whole or not at all (temp name, fsync, rename); a folder
the daemon writes in is never reached through a symbolic link; archive moves
are rename where possible and copy + fsync + rename + delete across file
systems, so a crash leaves either the source or a complete copy. Inputs are
opened by `fsops.py`.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import stat
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from daemon.fsops import CHUNK, FOLDER, FOLDER_NOFOLLOW, kind_of, open_regular, opened_if_regular
from daemon.temps import create_locked, temp_prefix
from daemon.workfolder import not_the_folder, still_at, still_held


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
    made here. NotADirectoryError (its filename the part) when one of them is a link or
    no folder. ROOT itself is followed (a configured path may be a link)."""
    fd = os.open(root, FOLDER)
    try:
        for part in parts:
            try:
                os.mkdir(part, dir_fd=fd)
                new = True
            except FileExistsError:
                new = False
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
    name in it, even under O_NOFOLLOW, which concerns the last name only)."""
    return Path(f"/proc/self/fd/{fd}")


def add_group_write(folder: Path) -> None:
    """Give a folder group write permission, never through a link someone may have put
    in its place."""
    fd = os.open(folder, FOLDER_NOFOLLOW)
    try:
        add_group_write_fd(fd)
    finally:
        os.close(fd)


def add_group_write_fd(fd: int) -> None:
    """Give the folder open at fd group write permission."""
    mode = os.fstat(fd).st_mode
    if not mode & stat.S_IWGRP:
        os.fchmod(fd, stat.S_IMODE(mode) | stat.S_IWGRP)


def add_group_write_below(held: int) -> None:
    """Give the folder open at `held` and every folder below it group write permission,
    each reached from its parent's descriptor (os.fwalk), never by a path: a folder
    swapped for a link meanwhile, in a folder others may write in, is never followed."""
    for _folder, _dirs, _files, fd in os.fwalk(dir_fd=held):
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


def _rename2(src: Path, dst: Path, flags: int) -> bool:
    """renameat2(src, dst, flags): True once done, False where it is not supported;
    else the OSError (FileExistsError, FileNotFoundError …) naming both."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(src), _AT_FDCWD, os.fsencode(dst), flags) == 0:
        return True
    err = ctypes.get_errno()
    if err in _UNSUPPORTED:
        return False
    raise OSError(err, os.strerror(err), str(src), None, str(dst))


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename without ever replacing what is at dst (os.rename would, silently).

    renameat2(RENAME_NOREPLACE) makes the check and the rename one step, so a
    file an ERP drops under the same name at that moment is never replaced.
    File systems without it (NFS, SMB) fall back to check-then-rename.
    """
    if _rename2(src, dst, _RENAME_NOREPLACE):
        return
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "target exists", str(dst))
    os.rename(src, dst)


def rename_exchange(a: Path, b: Path) -> bool:
    """Exchange what is at a and at b in one step (renameat2 RENAME_EXCHANGE); both must
    exist (FileNotFoundError). False where the file system has no such rename (NFS,
    SMB): nothing was done."""
    return _rename2(a, b, _RENAME_EXCHANGE)


def copy_file(src: Path | BinaryIO, dst: Path) -> None:
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


def copy_into(fin: BinaryIO, fout: BinaryIO) -> None:
    """The rest of fin into fout, fsynced."""
    shutil.copyfileobj(fin, fout, CHUNK)
    fout.flush()
    os.fsync(fout.fileno())


def _copy_entry(parent: int, name: str, dst: Path) -> None:
    """Copy the entry `name` of the folder open at `parent` without following links or
    opening FIFOs and devices (each folder opened from the one above, O_NOFOLLOW);
    fsync files."""
    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
    if stat.S_ISDIR(st.st_mode):
        fd = os.open(name, FOLDER_NOFOLLOW, dir_fd=parent)
        try:
            _copy_folder(fd, dst)
        finally:
            os.close(fd)
    elif stat.S_ISREG(st.st_mode):
        file, _ = opened_if_regular(name, parent)
        if file is None:  # swapped since the look above: never opened
            raise OSError(errno.EAGAIN, "changed while it was copied", name)
        with os.fdopen(file, "rb") as fin:
            copy_file(fin, dst)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(name, dir_fd=parent), dst)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dst, 0o640)
    else:
        # A socket or device node carries no document and cannot be recreated
        # without privileges; leave a note where it was instead.
        note = dst.with_name(dst.name + ".not-copied.txt")
        note.write_text(f"{name} was a {kind_of(st.st_mode)}; outboxd does not copy "
                        "those.\n", encoding="utf-8")
        return
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _copy_folder(fd: int, dst: Path) -> None:
    os.mkdir(dst, 0o750)
    for name in sorted(os.listdir(fd)):
        _copy_entry(fd, name, dst / name)
    fsync_dir(dst)


def remove_held(path: Path, held: int) -> None:
    """Remove the folder open at `held`, which lies at `path`: what it holds reached from
    the descriptor (shutil.rmtree with dir_fd never follows a link), the folder itself
    by its name only while that is still it. A folder swapped for a link keeps whatever
    the link leads to; an empty folder of ours that was moved elsewhere stays there."""
    for name in os.listdir(held):
        if stat.S_ISDIR(os.stat(name, dir_fd=held, follow_symlinks=False).st_mode):
            shutil.rmtree(name, dir_fd=held)
        else:
            os.unlink(name, dir_fd=held)
    if still_at(path, held):
        os.rmdir(path)


def _remove(path: Path) -> None:
    """Remove a file or folder we made; nothing if it is not there."""
    if not os.path.lexists(path):
        return
    shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()


def move_tree(src: Path, dst: Path, sync: bool = True, held: int | None = None) -> None:
    """Move a file or folder to dst, which must not exist.

    Same file system: one atomic rename. Across file systems: copy to a
    hidden temp name, fsync every file, rename into place, then delete the
    source — a crash leaves the source intact or a complete copy.
    `sync=False`: the caller syncs dst's folder after a same-file-system
    rename (it has more to sync there); the copy is synced before its source
    is deleted whatever the caller says. `held`: the folder at src, open
    (workfolder.hold_folder): only that folder is moved, copied from its descriptor and
    removed through it; OSError when src names anything else (a link put there).
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        _rename(src, dst, held)
        if sync:
            fsync_dir(dst.parent)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    # Named after the target, not our pid: a restart after a crash mid-copy
    # finds and replaces the partial copy instead of leaving it behind.
    tmp = dst.with_name(f".{dst.name}.partial")
    _remove(tmp)
    try:
        if held is None:
            parent = os.open(src.parent, FOLDER)
            try:
                _copy_entry(parent, src.name, tmp)
            finally:
                os.close(parent)
        else:
            _copy_folder(held, tmp)
            st = os.fstat(held)
            os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        rename_noreplace(tmp, dst)
    except BaseException:
        # A full disk, a path too long, a share gone: the source is intact, so
        # a half copy is only litter in the archive. Retried later from scratch.
        with contextlib.suppress(OSError):
            _remove(tmp)
        raise
    fsync_dir(dst.parent)
    if held is not None:
        remove_held(src, held)
    else:
        shutil.rmtree(src) if src.is_dir() and not src.is_symlink() else src.unlink()


def _rename(src: Path, dst: Path, held: int | None) -> None:
    """rename_noreplace(src, dst), of the held folder only: checked before, and after
    (a link swapped in between the two is put back and refused)."""
    if held is not None:
        still_held(src, held)
    rename_noreplace(src, dst)
    if held is not None and not still_at(dst, held):
        with contextlib.suppress(OSError):
            rename_noreplace(dst, src)
        raise not_the_folder(src)
