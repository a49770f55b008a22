"""The mark an archive leaves in a work folder it could not empty (KEPT): files put into
it while it was copied into the archive on another file system stay there, said, and
the orphan sweep knows the folder for what it is. Also the proof, after a crash at any
point once the copy is in place, that the entry it names is this folder's copy: it is
written once the copy is complete, before its rename (archive._move).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.archiving.archive_papers import reason_of
from daemon.archiving.copyfound import KEPT, PROOFS, holds_paper
from daemon.archiving.papers import names_bundle
from daemon.errors import InputError
from daemon.fs.fsops import FOLDER_NOFOLLOW, NOT_THE_FILES_FAULT, open_in
from daemon.fs.fsread import read_bounded
from daemon.fs.workfolder import still_at


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
    archived into `target` (KEPT): our own mark, in place of any file of that name (an
    earlier archive's, or one a share user put there, which the copy then still held:
    the removal took it for copied and removed it first, the proof with it). Our mark
    for `target` stays: never a moment without it."""
    if kept_for(held) == str(target):
        return
    drop_mark(held)
    try:
        fd = os.open(KEPT, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o640, dir_fd=held)
    except FileExistsError:
        return  # a folder of that name, or a file put there just now: left as it is
    with os.fdopen(fd, "wb") as fh:
        fh.write(os.fsencode(target))
        fh.flush()
        os.fsync(fh.fileno())
    os.fsync(held)


def drop_mark(held: int, work: Path | None = None) -> None:
    """Remove a KEPT mark from the folder open at `held` before it is moved into the
    archive: never a mark in an entry (where a stale one named another entry, or one a
    share user wrote named their own folder). A mark is no money data, and outboxd writes
    its own once the copy is complete (mark_kept); a folder of that name is someone's and stays.
    `work`: the folder's path, to say so in the log (a mark found there is not ours for
    this archive: it was written for another entry, or by someone else); None for our own
    mark for this archive's entry, which a crash before the copy's rename left."""
    named = kept_for(held)
    try:
        if stat.S_ISDIR(os.stat(KEPT, dir_fd=held, follow_symlinks=False).st_mode):
            return
        os.unlink(KEPT, dir_fd=held)
    except FileNotFoundError:
        return
    if work is not None:
        logs.get().warning(f"a {KEPT} file in the work folder, which outboxd did not write "
                           "for this archive, was removed before the move: it is outboxd's "
                           "mark and never goes into an archive entry",
                           work_dir=str(work), named=named)


def marked_for(held: int, day: int, target: Path,
               papers: Mapping[str, bytes] | None = None) -> bool:
    """Whether the work folder open at `held` is marked (KEPT) for the entry `target`, in
    the day folder open at `day`, and the entry proves the mark ours: it holds this
    bundle's receipt.json or reason.json byte for byte (`papers`, the journal's, when
    given; else the work folder's own). A share user may write anywhere in the share: a
    mark of theirs with a folder of theirs at the name it gives made the archive take
    their folder for the bundle's copy — the journal saying the bundle was archived
    there, the bundle left in processing."""
    if kept_for(held) != str(target):
        return False
    return _entry_proves(day, target, lambda entry: holds_paper(entry, held, papers))


def named_for(held: int, id12: str | None, day: int, target: Path) -> bool:
    """Whether the work folder open at `held`, which holds no paper any more (a crash
    part-way through its removal took it), is marked (KEPT) for the entry `target` in
    the day folder open at `day`, and that entry holds a receipt.json or reason.json
    (a regular file) naming a bundle whose id begins with `id12`, the one the work
    folder's own name carries (claim.work_dir_for): the mark is then ours. A mark alone
    is never enough: a share user's, naming a folder of theirs holding copies of the
    bundle's files, had the bundle — never sent — removed from processing as archived
    there. A folder that still holds its paper is proven by it (marked_for) or not."""
    if not id12 or kept_for(held) != str(target) or any(_there(held, n) for n in PROOFS):
        return False

    def names_it(entry: int) -> bool:
        for name in PROOFS:
            try:
                with open_in(entry, name, name) as fh:
                    data = read_bounded(fh, RECEIPT_MAX)
            except OSError as exc:
                if exc.errno in NOT_THE_FILES_FAULT:
                    # The share's EIO or stale handle: no answer, raised (the archive's move,
                    # or the orphan sweep, looks again). Taken for "no paper", the bundle's
                    # own files were kept in processing, said to be in no archive entry.
                    raise
                continue  # missing: no paper of ours
            except InputError:
                continue  # unreadable, or a link, FIFO or device: no paper of ours
            if data is not None and names_bundle(data, id12):
                return True
        return False
    return _entry_proves(day, target, names_it)


def _entry_proves(day: int, target: Path, proof: Callable[[int], bool]) -> bool:
    """proof(descriptor) of the entry `target` in the day folder open at `day`; False
    where there is none there, or a link."""
    try:
        entry = os.open(target.name, FOLDER_NOFOLLOW, dir_fd=day)
    except OSError as exc:
        if exc.errno in NOT_THE_FILES_FAULT:
            # A share's EIO or stale handle: no answer. Taken for "no copy of ours", the
            # proof was lost (a kept folder disowned, archived again as a second entry).
            raise
        return False  # none there, or a link: no copy of ours
    try:
        return proof(entry)
    finally:
        os.close(entry)


RECEIPT_MAX = 1 << 25
"""The largest receipt.json read for the bundle id it names (fsread.read_regular's
bound, as sent/ is read back): it keeps the receiver's whole answer."""


def disowned(held: int, roots: tuple[Path, ...]) -> bool:
    """Whether the KEPT mark of the work folder open at `held` is shown not to be ours:
    the folder holds a receipt.json or reason.json that the entry the mark names (in one
    of `roots`: sent/, quarantine/) does not hold byte for byte — or the mark names no
    entry there. Our mark is made once the copy is complete, before its rename, so while
    the folder still holds its paper, the entry holds the very same (marked_for), or is
    not there yet (a crash before the rename: the folder is still whole). The orphan sweep
    then takes the folder for an unmarked one, instead of one whose bundle is archived,
    and archives it (archive.move_into_place: at the name the mark gives, the mark
    dropped quietly). A
    folder whose paper went with a removal that a crash cut short cannot be told: its
    mark stands."""
    if not any(_there(held, name) for name in PROOFS):
        return False
    target = Path(kept_for(held) or "/")
    if target.parent.parent not in roots:
        return True
    # The archive folder by its path (the admin's), its day folder and the entry (the
    # share's) each opened without following a link.
    try:
        root = os.open(target.parent.parent, FOLDER_NOFOLLOW)
    except OSError as exc:
        if exc.errno in NOT_THE_FILES_FAULT:
            raise  # cannot tell (the share away): the sweep looks again
        return True
    try:
        day = os.open(target.parent.name, FOLDER_NOFOLLOW, dir_fd=root)
    except OSError as exc:
        if exc.errno in NOT_THE_FILES_FAULT:
            raise
        return True
    finally:
        os.close(root)
    try:
        return not marked_for(held, day, target)
    finally:
        os.close(day)


def entry_reason(target: Path) -> dict[str, Any] | None:
    """The reason.json of the quarantine entry `target` a mark names (archive_papers.
    reason_of, raising as it does; OSError where the entry cannot be opened): its
    archive folder by its path (the admin's), its day folder and the entry (the
    share's) each opened without following a link."""
    root = os.open(target.parent.parent, FOLDER_NOFOLLOW)
    try:
        day = os.open(target.parent.name, FOLDER_NOFOLLOW, dir_fd=root)
    finally:
        os.close(root)
    try:
        entry = os.open(target.name, FOLDER_NOFOLLOW, dir_fd=day)
    finally:
        os.close(day)
    try:
        return reason_of(target, at=entry)
    finally:
        os.close(entry)


def _there(held: int, name: str) -> bool:
    try:
        os.stat(name, dir_fd=held, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def kept_for(held: int) -> str | None:
    """The archive entry a KEPT mark in the folder open at `held` names; None when the
    folder has no mark. A mark that is not a regular file outboxd can read is never
    opened (a FIFO): the entry is then unknown (""). A look the share fails (EIO,
    ESTALE) raises."""
    try:
        os.stat(KEPT, dir_fd=held, follow_symlinks=False)
    except FileNotFoundError:
        return None
    try:
        with open_in(held, KEPT, KEPT) as fh:
            data = read_bounded(fh, 4096)
    except OSError as exc:
        if exc.errno in NOT_THE_FILES_FAULT:
            # Cannot tell (the share's EIO): raised, looked at again. Taken for a mark
            # naming no entry, a folder still holding its paper was disowned (its mark
            # shown not ours) and archived as a second entry beside our copy.
            raise
        return ""
    except InputError:
        return ""
    return os.fsdecode(data) if data is not None else ""
