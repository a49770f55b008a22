"""File-system primitives with the safety rules built in.

Every input is opened here: never through a symbolic link, never a FIFO,
socket or device (opening a FIFO would block the daemon forever). Archive
moves are rename where possible and copy + fsync + rename + delete across
file systems, so a crash leaves either the source or a complete copy.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any, BinaryIO

from daemon.errors import HostileInput, InputError

CHUNK = 1 << 16


def kind_of(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symbolic link"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device file"


def open_regular(path: Path, rel: str | None = None) -> BinaryIO:
    """Open a regular file for reading, refusing links, FIFOs, sockets and devices.

    O_NOFOLLOW refuses a link in the last component; O_NONBLOCK keeps a FIFO
    that slipped in between lstat and open from blocking us; fstat then
    checks what we actually opened.
    """
    shown = rel or path.name
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise HostileInput("symlink", shown, "is a symbolic link; outboxd never follows "
                               "links — put the file itself in the folder") from None
        raise InputError("unreadable", shown, f"cannot be read ({exc.strerror}) — check the "
                         "file's permissions") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise HostileInput("not-a-file", shown, f"is a {kind_of(st.st_mode)}, not a regular "
                           "file — put a regular file there")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def hash_file(path: Path, rel: str | None = None) -> tuple[int, str]:
    """Size and SHA-256 of a regular file, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    with open_regular(path, rel) as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Write a whole file or nothing: temp name, fsync, rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def free_name(parent: Path, name: str) -> Path:
    """NAME, else NAME-2, NAME-3 … : the first that does not exist in parent."""
    candidate = parent / name
    n = 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = parent / f"{name}-{n}"
    return candidate


def rename_noreplace(src: Path, dst: Path) -> None:
    """Rename without ever replacing what is at dst (os.rename would, silently)."""
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(errno.EEXIST, "target exists", str(dst))
    os.rename(src, dst)


def move_tree(src: Path, dst: Path) -> None:
    """Move a file or folder to dst, which must not exist.

    Same file system: one atomic rename. Across file systems: copy to a
    hidden temp name, fsync every file, rename into place, then delete the
    source — a crash leaves the source intact or a complete copy.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        rename_noreplace(src, dst)
        fsync_dir(dst.parent)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    tmp = dst.with_name(f".{dst.name}.partial-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp) if tmp.is_dir() else tmp.unlink()
    if src.is_dir():
        shutil.copytree(src, tmp, symlinks=True)
    else:
        shutil.copy2(src, tmp, follow_symlinks=False)
    for root, _dirs, files in os.walk(tmp):
        for f in files:
            p = Path(root, f)
            if p.is_file() and not p.is_symlink():
                with open(p, "rb") as fh:
                    os.fsync(fh.fileno())
        fsync_dir(Path(root))
    rename_noreplace(tmp, dst)
    fsync_dir(dst.parent)
    shutil.rmtree(src) if src.is_dir() and not src.is_symlink() else src.unlink()
