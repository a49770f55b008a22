"""Whether an archive entry found at a bundle's target name is that bundle's work folder
copied there (a crash after a copy across file systems was put in place, before its
source was removed): then the source is removed as far as it was copied. Else the entry
is someone else's and the bundle goes beside it (archive.move_into_place), unless its
whole copy lies at a name beside already (copy_beside). Anyone on the
share may write in sent/ and quarantine/: every look here is from a descriptor, never
through a link, and a file is a copy only when it is a file of its own.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from pathlib import Path

from daemon.errors import InputError
from daemon.fs.fscopy import Copied, identity
from daemon.fs.fsdepth import fwalk_bounded
from daemon.fs.fsops import FOLDER_NOFOLLOW, NOT_THE_FILES_FAULT, open_in
from daemon.fs.fsread import CHUNK

KEPT = ".outboxd-kept"
"""The mark an archive leaves in a work folder that keeps files put into it while it was
copied into the archive on another file system (fsmove.move_tree removes only what it
copied); its text is the archive entry. The orphan sweep reports such a folder as kept,
never sends nor moves what is in it, and removes it once nothing but the mark is left.
Written (synced) once the copy is complete, before it is renamed into place: a crash at
any point after that rename (before the removal, or part-way through it) leaves the
proof that the entry is this folder's copy though it holds files the entry does not —
once the entry shows it ours (kept.marked_for); removed with the emptied folder. One
naming an entry that is not there is from a crash before the rename: the copy is made
again at that name. Here, not in kept.py, because the
look at a copy leaves it out: it is never in an entry (kept.drop_mark)."""


def copy_at(day: int, target: Path, held: int, marked: bool = False, older: bool = True
            ) -> Copied | None:
    """holds_copy_of the entry at target's name in the day folder open at `day`; None
    when that is no folder (a link to anywhere, the work folder itself included, is
    someone else's, never looked through), or none any more (removed since it was seen)."""
    try:
        entry = os.open(target.name, FOLDER_NOFOLLOW, dir_fd=day)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
            return None
        raise
    try:
        return holds_copy_of(entry, target, held, marked, older)
    finally:
        os.close(entry)


def copy_beside(day: int, target: Path, held: int) -> tuple[Path, Copied] | None:
    """The entry beside `target` in the day folder open at `day` (NAME-2, NAME-3 …, every
    one there, in numeric order) that is the work folder's (open at `held`) copy, and
    what it holds the same: a whole copy, every file byte for byte (unmarked), or an
    older build's cut short in its removal (unmarked_copy) — a crash after the copy to a
    name beside a taken one was in place unmarked (an older build marked only after the
    removal, and journaled no name beside; a folder at the mark's name in the work
    folder takes its place), or with the journal's word of that name lost (the orphan
    sweep) — never copied again as one more entry. None when none is."""
    # One listing, not a look at each name up to the first free one: an entry between
    # removed since the copy was made (NAME-3 gone, the copy at NAME-4) hid the copy,
    # and the bundle was archived a second time. Each compared by its paper first.
    for n in numbers_beside(os.listdir(day), target.name):
        other = target.with_name(f"{target.name}-{n}")
        # An older build's too (unmarked_copy: the invoice file and this delivery's or
        # quarantine's own paper among what it holds the same): builds before the name
        # beside was journaled went beside the name the journal gave, and one killed
        # in the removal with a clerk's late file in the sidecar left exactly that.
        compared = copy_at(day, other, held)
        if compared is not None:
            return other, compared
    return None


def numbers_beside(names: list[str], name: str) -> list[int]:
    """The N of each NAME-N among `names`, N ≥ 2 written as free_name writes it (ASCII
    digits, no leading zero), in numeric order: NAME-10 after NAME-9."""
    prefix = f"{name}-"
    found = []
    for entry in names:
        digits = entry[len(prefix):]
        if entry.startswith(prefix) and digits.isascii() and digits.isdigit() \
                and not digits.startswith("0") and int(digits) >= 2:
            found.append(int(digits))
    return sorted(found)


def holds_copy_of(entry: int, target: Path, held: int, marked: bool = False,
                  older: bool = True) -> Copied | None:
    """The files of the folder open at `held` that the entry open at `entry` (at `target`)
    holds with the same bytes (or link text), for remove_held, when the entry is this
    folder's copy; else None. Both walked from their descriptors, never through a link,
    DEPTH_MAX levels deep at most. A file that is the very file of the work folder (one
    inode: a hard link someone made) is no copy: a copy is a file of its own.

    The one rule, in three cases. The entry is this folder's copy when it holds every
    file of it (a whole copy); or, `marked`, when the folder's KEPT mark names it and it
    holds the bundle's paper (kept.marked_for: the mark is written once the copy is
    complete, before its rename into place), though the folder holds more (files put in
    during the copy, folders deeper than a copy goes); or, `older`, when it is the
    unmarked copy of a build that wrote no mark before the rename (unmarked_copy),
    looked for only at the name the journal gave. Never by the receipt.json or
    reason.json alone: a clerk reads them in the processing folder, and a folder of
    theirs holding a copy of one at the entry name was taken for ours. In every case
    nothing is removed that the entry does not hold."""
    compared: Copied = {}
    # Folders deeper than a copy goes (fsdepth) are never in one: not walked, not whole.
    deeper: list[str] = []
    for dirpath, _dirs, files, fd in fwalk_bounded(held, target, "walk", deeper.append,
                                                    onerror=_raise):
        copy = _folder_of_copy(entry, dirpath)
        try:
            # The papers first, whatever order the folder lists its files in: an entry of
            # another delivery or quarantine of this bundle (a clerk's resent duplicate,
            # NAME, NAME-2 … each looked at by copy_beside) differs in its paper alone,
            # told from it without reading the invoice file of each, at MBs a time.
            for f in sorted(files, key=lambda f: dirpath != "." or f not in PROOFS):
                if f == KEPT and dirpath == ".":
                    continue  # never in an entry (kept.drop_mark): no file of the bundle
                # Looked at before it is compared: saved again meanwhile, it is not the
                # file compared, and remove_held keeps it.
                st = os.stat(f, dir_fd=fd, follow_symlinks=False)
                same = copy is not None and _same_entry(fd, copy, f, st)
                if same:
                    compared[os.path.join(dirpath, f)] = identity(st)
                elif not marked:
                    # No copy: the rest is not read (a bundle quarantined twice a day
                    # finds its first entry at the name, and may be hundreds of MB).
                    # Unless an older build's copy, which left no mark: see unmarked_copy.
                    if not older or (dirpath == "." and f in PROOFS):
                        return None
                    return unmarked_copy(entry, target, held)
        finally:
            if copy is not None and copy != entry:
                os.close(copy)
    return compared if marked or not deeper else None


PROOFS = ("receipt.json", "reason.json")
"""The papers that prove a KEPT mark ours (kept.marked_for): the journal keeps what they
say, and a retried archive writes the very same bytes again."""


def holds_paper(entry: int, held: int, papers: Mapping[str, bytes] | None = None) -> bool:
    """Whether the entry open at `entry` holds this bundle's receipt.json or reason.json
    byte for byte, as a file of its own: `papers`' (the journal's) when given, else the
    ones in the work folder open at `held`."""
    for name in PROOFS:
        if papers is not None:
            if name in papers and _holds_bytes(entry, name, papers[name]):
                return True
            continue
        try:
            st = os.stat(name, dir_fd=held, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if _same_entry(held, entry, name, st):
            return True
    return False


def _holds_bytes(entry: int, name: str, expected: bytes) -> bool:
    # A share's EIO or stale handle (open_in raises those as they are) raises: no answer.
    # Taken for "no paper of ours", a copy in place lost its proof and the bundle was
    # archived again beside it, a second entry.
    try:
        with open_in(entry, name, name) as fh:
            return fh.read(len(expected) + 1) == expected
    except InputError:
        return False  # missing, unreadable, or a link, FIFO or device: no paper of ours


def unmarked_copy(entry: int, target: Path, held: int) -> Copied | None:
    """The files of the work folder open at `held` that the entry open at `entry` holds
    the same, when the entry is the copy an older build made before it was killed
    part-way through the source's removal, with files put in (or saved again) during the
    copy left in the work folder: builds before the KEPT mark left none, and the
    whole-copy rule sent the bundle beside its own copy as a second entry NAME--ID-2
    holding the late files too, never sent yet shown as sent. Such an entry holds every
    file still at the top of the work folder (the invoice file, the papers) with the
    same bytes, a paper (receipt.json or reason.json, written from the journal: this one
    delivery or quarantine) among them; what the removal took already is missing from
    the work folder, not from the entry. A clerk's folder holding copies of the receipt
    and some attachments lacks the invoice file. Else None."""
    try:
        tops = [(f, os.stat(f, dir_fd=held, follow_symlinks=False))
                for f in os.listdir(held)]
    except OSError as exc:
        if exc.errno in NOT_THE_FILES_FAULT:
            raise  # no answer (the share away): the archive looks again
        return None
    # Papers first: an entry of another delivery or quarantine of this bundle is told
    # from its paper alone, the attachments never read.
    tops.sort(key=lambda item: item[0] not in PROOFS)
    if not any(f in PROOFS for f, _st in tops):
        return None
    for f, st in tops:
        if not stat.S_ISDIR(st.st_mode) and not _same_entry(held, entry, f, st):
            return None
    compared: Copied = {}
    deeper: list[str] = []
    for dirpath, _dirs, files, fd in fwalk_bounded(entry, target, "walk", deeper.append,
                                                    onerror=_raise):
        work = _folder_of_copy(held, dirpath)
        if work is None:
            continue  # removed already (or a link in its place: never looked through)
        try:
            for f in files:
                try:
                    st = os.stat(f, dir_fd=work, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # removed before the crash
                if _same_entry(work, fd, f, st):  # else saved again since: kept
                    compared[os.path.join(dirpath, f)] = identity(st)
        finally:
            if work != held:
                os.close(work)
    return compared


def _folder_of_copy(entry: int, dirpath: str) -> int | None:
    """The folder `dirpath` ("./A/B") of the entry open at `entry`, open (the caller closes
    it unless it is `entry`), each folder on the way opened without following a link;
    None where there is none (or a link: it leads out of the entry, to what may be the
    work folder itself, whose files would be found "copied" and removed)."""
    fd = entry
    try:
        for part in dirpath.split("/")[1:]:
            inner = os.open(part, FOLDER_NOFOLLOW, dir_fd=fd)
            if fd != entry:
                os.close(fd)
            fd = inner
    except OSError as exc:
        if fd != entry:
            os.close(fd)
        if exc.errno in NOT_THE_FILES_FAULT:
            raise  # no answer (the share away), not "no such folder in the copy"
        return None
    return fd


def _same_entry(folder: int, copy: int, name: str, st: os.stat_result) -> bool:
    """Whether `name` in the folder open at `copy` is a copy of `name` (looked at as `st`)
    in the one open at `folder`: a link of the same text, or another regular file of the
    same bytes."""
    try:
        there = os.stat(name, dir_fd=copy, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        return stat.S_ISLNK(there.st_mode) and \
            os.readlink(name, dir_fd=folder) == os.readlink(name, dir_fd=copy)
    return stat.S_ISREG(st.st_mode) and stat.S_ISREG(there.st_mode) \
        and (there.st_dev, there.st_ino) != (st.st_dev, st.st_ino) \
        and _same_bytes(folder, copy, name)


def _raise(exc: OSError) -> None:
    raise exc  # a folder that cannot be listed is not known to be copied


def _same_bytes(folder: int, copy: int, name: str) -> bool:
    try:
        with open_in(folder, name, name) as fin, open_in(copy, name, name) as fout:
            while (chunk := fin.read(CHUNK)) == fout.read(CHUNK):
                if not chunk:
                    return True
    except InputError:
        pass  # a link or a FIFO put in either place since it was looked at: no copy
    return False
