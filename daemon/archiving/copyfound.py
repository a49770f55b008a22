"""Whether an archive entry found at a bundle's target name is that bundle's work folder
copied there (a crash after a copy across file systems was put in place, before its
source was removed): then the source is removed as far as it was copied. Else the entry
is someone else's and the bundle goes beside it (archive.move_into_place). Anyone on the
share may write in sent/ and quarantine/: every look here is from a descriptor, never
through a link, and a file is a copy only when it is a file of its own.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from daemon.errors import InputError
from daemon.fs.fscopy import Copied, identity
from daemon.fs.fsdepth import fwalk_bounded
from daemon.fs.fsops import FOLDER_NOFOLLOW, open_in
from daemon.fs.fsread import CHUNK


def copy_at(day: int, target: Path, held: int, marked: bool = False) -> Copied | None:
    """holds_copy_of the entry at target's name in the day folder open at `day`; None
    when that is no folder (a link to anywhere, the work folder itself included, is
    someone else's, never looked through)."""
    try:
        entry = os.open(target.name, FOLDER_NOFOLLOW, dir_fd=day)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return None
        raise
    try:
        return holds_copy_of(entry, target, held, marked)
    finally:
        os.close(entry)


def holds_copy_of(entry: int, target: Path, held: int, marked: bool = False
                  ) -> Copied | None:
    """The files of the folder open at `held` that the entry open at `entry` (at `target`)
    holds with the same bytes (or link text), for remove_held, when the entry is this
    folder's copy: it holds them all. Else None. Both walked from their descriptors, never
    through a link, DEPTH_MAX levels deep at most. A file that is the very file of the
    work folder (one inode: a hard link someone made) is no copy: a copy is a file of its
    own.

    Never the receipt.json or reason.json alone: a clerk reads them in the processing
    folder, and a folder of theirs holding a copy of one at the entry name was taken for
    ours, the paper removed from the work folder and the bundle left in processing, its
    entry the clerk's folder. A file put into the work folder (or saved again) after the
    copy, before a crash cut its removal short, now sends the bundle beside the copy as
    a second, complete entry: nothing is removed that the entry found does not hold.

    `marked`: the work folder's KEPT mark names the entry (archive.py writes it once our
    copy is in place, before the source's removal): the entry is ours though the work
    folder holds more (files put in during the copy, folders deeper than a copy goes),
    and what it holds the same is returned."""
    compared: Copied = {}
    # Folders deeper than a copy goes (fsdepth) are never in one: not walked, not whole.
    deeper: list[str] = []
    for dirpath, _dirs, files, fd in fwalk_bounded(held, target, "walk", deeper.append,
                                                    onerror=_raise):
        copy = _folder_of_copy(entry, dirpath)
        try:
            for f in files:
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
                    if dirpath == "." and f in _PAPERS:
                        return None
                    return unmarked_copy(entry, target, held)
        finally:
            if copy is not None and copy != entry:
                os.close(copy)
    return compared if marked or not deeper else None


_PAPERS = ("receipt.json", "reason.json")


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
    except OSError:
        return None
    # Papers first: an entry of another delivery or quarantine of this bundle is told
    # from its paper alone, the attachments never read.
    tops.sort(key=lambda item: item[0] not in _PAPERS)
    if not any(f in _PAPERS for f, _st in tops):
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
    except OSError:
        if fd != entry:
            os.close(fd)
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
