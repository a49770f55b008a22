"""The mark an archive leaves in a work folder it could not empty (KEPT): files put into
it while it was copied into the archive on another file system stay there, said, and
the orphan sweep knows the folder for what it is. Also the proof, after a crash part-way
through the source's removal, that the entry it names is this folder's copy.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from daemon import logs
from daemon.errors import InputError
from daemon.fs.fsops import open_in
from daemon.fs.fsread import read_bounded
from daemon.fs.workfolder import still_at

KEPT = ".outboxd-kept"
"""The mark an archive leaves in a work folder that keeps files put into it while it was
copied into the archive on another file system (fsmove.move_tree removes only what it
copied); its text is the archive entry. The orphan sweep reports such a folder as kept,
never sends nor moves what is in it, and removes it once nothing but the mark is left.
Written (synced) as soon as the copy is in place, before any of the source is removed:
a crash part-way through the removal leaves the proof that the entry is this folder's
copy though it holds files the entry does not; removed with the emptied folder."""


def unmarked(work: Path, held: int, left: list[Path]) -> list[Path]:
    """What a removal after a copy left besides the KEPT mark made before it; when that
    is nothing, the mark and the emptied work folder go."""
    mark = work / KEPT
    if mark not in left:
        return left
    rest = [p for p in left if p != mark]
    if rest:
        return rest
    with contextlib.suppress(FileNotFoundError):
        os.unlink(KEPT, dir_fd=held)
    if still_at(work, held):
        try:
            os.rmdir(work)
        except OSError as exc:  # something put in since: marked again and said
            if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                raise
            return [work]
    return []


def said_left(work: Path, held: int, target: Path, left: list[Path]) -> None:
    """Files put into the work folder (or saved again there) while it was copied into the
    archive on another file system (or after, a crash before its removal): not in the
    entry, kept where they are, and said. The
    folder they keep in processing/ is then no bundle's: marked (KEPT) so that the orphan
    sweep says why it is there instead of taking it for one a person copied in."""
    if left:
        with contextlib.suppress(OSError):  # unmarked, it is still never sent from
            if still_at(work, held):
                mark_kept(held, target)
        logs.get().warning("files put into a work folder while it was being archived "
                           "are not in the archive entry; kept in the work folder "
                           "— move them where they belong; once they are out, the next "
                           "rescan removes the folder",
                           work_dir=str(work), archive=str(target),
                           kept=[str(p) for p in left])


def mark_kept(held: int, target: Path | str) -> None:
    """Mark the folder open at `held` as kept for files put into it while it was
    archived into `target` (KEPT); an existing mark stays as it is."""
    try:
        fd = os.open(KEPT, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o640, dir_fd=held)
    except FileExistsError:
        return  # an earlier archive's mark (or someone's file of that name): kept as it is
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.fsencode(target))
        fh.flush()
        os.fsync(fh.fileno())
    os.fsync(held)


def kept_for(held: int) -> str | None:
    """The archive entry a KEPT mark in the folder open at `held` names; None when the
    folder has no mark. A mark that is not a regular file outboxd can read is never
    opened (a FIFO): the entry is then unknown ("")."""
    try:
        os.stat(KEPT, dir_fd=held, follow_symlinks=False)
    except FileNotFoundError:
        return None
    try:
        with open_in(held, KEPT, KEPT) as fh:
            data = read_bounded(fh, 4096)
    except (OSError, InputError):
        return ""
    return os.fsdecode(data) if data is not None else ""
