"""Archive: move a finished bundle into sent/ or quarantine/ with its papers.

Layout (docs/folder-convention.md, After delivery): ROOT/YYYY-MM-DD/NAME--BUNDLEID12/
(UTC date, `-2`, `-3` … when taken) holding the bundle as it was in the outbox plus receipt.json,
or reason.json and REASON.txt. The papers are written into the work folder
first, so the one move that follows carries a complete archive entry; they,
the entry and its day folder are synced once, after the move (`place`). What the
papers say, and their writing, is archive_papers.py's.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from daemon import logs
from daemon.archiving.archive_papers import write_papers
from daemon.archiving.copyfound import copy_at, copy_beside
from daemon.archiving.dayfolder import hold_day, hold_entry
from daemon.archiving.kept import (
    drop_mark,
    kept_for,
    mark_kept,
    marked_for,
    named_for,
    said_left,
    unmarked,
)
from daemon.claiming.workname import work_bundle
from daemon.errors import InputError, describe
from daemon.fs.fsmove import TAG_MAX, move_tree, partial_name, remove_held, remove_made
from daemon.fs.fsops import FOLDER_NOFOLLOW
from daemon.fs.fsread import read_regular
from daemon.fs.fswrite import (
    add_group_write_fd,
    free_name,
    fsync_file,
    held_path,
)
from daemon.fs.temps import drop_unfinished
from daemon.fs.workfolder import entry_at, hold_folder, link_inside, still_at, there
from daemon.journal.records import utc_day
from daemon.names import NAME_MAX, fit_bytes

# Room left in a path component for free_name's "-NNN" and move_tree's ".NAME.TAG.partial".
_ARCHIVE_NAME_MAX = NAME_MAX - 15 - (TAG_MAX + 1)


def target_for(root: Path, name: str, bundle_id: str, at: str | None = None) -> Path:
    """entry_name, or the first name free beside it (`-2`, `-3` …): chosen once and
    journaled before the move."""
    entry = entry_name(root, name, bundle_id, at)
    return free_name(entry.parent, entry.name)


def entry_name(root: Path, name: str, bundle_id: str, at: str | None = None) -> Path:
    """ROOT/YYYY-MM-DD/NAME--ID12, NAME shortened if the folder name would not fit, taken
    or not. The date is the UTC day of `at` (a journal time: when the bundle was
    delivered, or quarantined), else today's: the day the views count the bundle under.
    Without the journal's word of the name (the orphan sweep) the move starts here: a
    copy a crash left at it, or beside it, is found (move_into_place), never passed."""
    day = utc_day(at) if at else datetime.now(UTC).strftime("%Y-%m-%d")
    tail = f"--{bundle_id[:12]}"
    return root / day / (fit_bytes(name, _ARCHIVE_NAME_MAX - len(tail)) + tail)


def move_into_place(work: Path, target: Path, sync: bool = True, held: int | None = None,
                    tag: str = "", day: int | None = None, within: Path | None = None,
                    beside: Callable[[Path], None] | None = None) -> Path:
    """Move work → target; safe to call again after a crash at any point in it.

    Returns where the bundle now lies: `target`, or a free name beside it if
    `target` was taken by something that is not this bundle. `sync=False`
    leaves the sync of target's folder to the caller (`place`). `held`: the work
    folder, open (workfolder.hold_folder; else opened here): a link put in its place
    is never followed, moved, copied from nor removed through (OSError). `tag`: see
    fsmove.partial_name. `day`: target's day folder, held by the caller (dayfolder.hold_day; else
    held here). `within`: the outbox (hold_folder, dayfolder.hold_day). `beside`: told the free
    name before the bundle is moved there instead of `target` (the caller journals it: a
    retry after a crash must look where its own copy or the bundle is)."""
    # `there`: a look at the work folder that the share fails (EIO) raises, the move is
    # retried. os.path.lexists took it for "moved already", and an entry at the target
    # (another daemon's of this name) was reported as this bundle's archive.
    if not there(work):
        if _folder_at(target):
            return target  # an earlier run finished the move
        # Neither is there: a share that went away (processing lives on it), or
        # a folder removed by hand. Never report a move that did not happen.
        raise FileNotFoundError(errno.ENOENT, "the processing folder is not there (is the "
                                "share mounted?) and the bundle is not in the archive either",
                                str(work))
    if held is None:
        held = hold_folder(work, within=within)
        try:
            return move_into_place(work, target, sync, held, tag, day, within, beside)
        finally:
            os.close(held)
    if day is None:
        day = hold_day(target.parent, within)
        try:
            return move_into_place(work, target, sync, held, tag, day, within, beside)
        finally:
            os.close(day)
    # The entry looked for, and made, in the day folder held, by its name: never through
    # a link put in its place, or in the day folder's (move_tree refuses the move then).
    if entry_at(target, held=day):
        # Our copy, put in place before a crash cut the source's removal short (or came
        # before it): a whole copy, one the mark names holding the papers just written
        # (the journal's), or an older build's (copyfound.holds_copy_of).
        compared = copy_at(day, target, held, marked=marked_for(held, day, target))
        if compared is not None:
            # Crashed after the cross-file-system copy was renamed into place (only once
            # complete and fsynced), before or while the source was deleted.
            said_left(work, held, target,
                       unmarked(work, held, remove_held(work, held, compared)))
            return target
        # Someone else's entry (two daemons, a duplicate archived at the same time), or a
        # link: beside it, unless a crash (the journal's word of the name beside lost with
        # it) left our whole copy there already: never copied again as one more entry.
        found = copy_beside(day, target, held)
        if found is not None:
            said_left(work, held, found[0],
                      unmarked(work, held, remove_held(work, held, found[1])))
            return found[0]
        _leave_name(target, day, held, tag)
        target = _beside(target, day, beside)
    try:
        left = _move(work, target, sync, held, tag, day)
    except OSError as exc:
        # Taken between the look and the rename (a second daemon on the share, a clerk):
        # the rename never replaces it (rename_noreplace; a folder onto a folder that is
        # not empty, where that falls back to a plain rename). Beside it, as above.
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) \
                or not entry_at(target, held=day):
            raise
        target = _beside(target, day, beside)
        left = _move(work, target, sync, held, tag, day)
    said_left(work, held, target, unmarked(work, held, left))
    return target


def _move(work: Path, target: Path, sync: bool, held: int, tag: str, day: int
          ) -> list[Path]:
    """move_tree of the work folder open at `held` to `target` in the day folder open at
    `day`. A mark the folder holds never travels into the entry (drop_mark): ours for
    `target`, from a kill before the copy's rename (no entry there: the caller looked),
    goes quietly; any other is said. Across file systems the
    folder is marked (KEPT) for `target` once the copy is complete and synced, before it
    is renamed into place: a kill at any point after the rename leaves the proof that the
    entry is this folder's copy though files put in during the copy stay behind (without
    it, the retry took the entry for someone else's and archived the folder again beside
    it). A move that fails with its copy not in place takes the mark away again."""
    drop_mark(held, None if kept_for(held) == str(target) else work)
    try:
        return move_tree(work, target, sync=sync, held=held, tag=tag, into=day,
                         before_rename=partial(mark_kept, held))
    except OSError as exc:
        # Refused or taken (EEXIST: someone else's entry there): no copy of ours in
        # place. A removal that failed after the rename keeps its mark. Any mark: one
        # cut short (a full disk as it was written) named no entry and was said to be
        # someone else's at the next try.
        if kept_for(held) is not None and (
                exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or not entry_at(target, held=day)):
            drop_mark(held)
        raise


def _leave_name(target: Path, day: int, held: int, tag: str) -> None:
    """What this daemon left for a move to `target`, which someone else's entry took
    since (a kill after the copy was made, before its rename): its copy under way there
    (`.NAME.TAG.partial`, this daemon's by its tag, as move_tree would have replaced it)
    is removed from the day folder open at `day`, and its mark for `target` dropped
    quietly — else the copy stayed in the archive for good, a whole bundle's bytes, and
    the move beside warned that the mark was someone else's."""
    partial = partial_name(target, tag)
    try:
        remove_made(day, partial.name)
    except OSError as exc:
        # The archive goes on beside: the leftover is litter only, said so.
        logs.get().warning("cannot remove this outboxd's copy under way into an archive "
                           "folder someone else's entry took since; remove it by hand",
                           partial=str(partial), error=describe(exc, writing=True))
    if kept_for(held) == str(target):
        drop_mark(held)


def _beside(target: Path, day: int, told: Callable[[Path], None] | None) -> Path:
    """The first name free beside `target` in its day folder open at `day`, told to
    `told` before anything is moved there."""
    free = target.parent / free_name(held_path(day), target.name).name
    if told is not None:
        told(free)
    return free


def _folder_at(path: Path) -> bool:
    """A folder at `path`, not a link (which may lead to any folder, and is no entry)."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _someone_elses(entry: Path, papers: Mapping[str, bytes], bundle_id: str) -> bool:
    """The entry's first paper is readable and names another bundle: not ours to touch."""
    try:
        # Never through a link, never a FIFO or device a share user put there. No paper
        # limit: a receipt keeps the receiver's whole answer, and another bundle's large
        # receipt taken for "not readable" would be written over.
        data = read_regular(entry / next(iter(papers)))
        if data is None:
            return False
        found = json.loads(data)
        named = found.get("bundle_id") or found["manifest"]["bundle_id"]
    except (OSError, InputError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError):
        # Missing, cut short by a power loss, or not ours to judge (RecursionError: JSON
        # nested deeper than the parser goes, which no receipt or reason is): rewrite.
        return False
    return named != bundle_id


def place(work: Path, target: Path, papers: Mapping[str, bytes], bundle_id: str,
          tag: str = "", within: Path | None = None,
          beside: Callable[[Path], None] | None = None) -> Path:
    """Write the papers into the work folder and move it to target; where the entry now
    lies (see move_into_place, and for `tag`). On return the papers, the entry and its
    folder are on disk. Safe to call again after a crash or power loss at any point: the
    papers are written from the journal, not from what the disk holds.

    The papers get no sync of their own before the move: one sync of each paper, of
    the entry and of its folder after the rename covers them and the rename at once
    (on ext4 the first of them commits everything, the others find nothing to do),
    instead of a sync of the paper, the work folder and the target folder in turn.
    `within`: the outbox, from which the work folder is reached (hold_folder): a
    `.outboxd` made a link would have a folder behind it archived in the bundle's place.
    `beside`: see move_into_place.
    """
    # A `.outboxd` made a link counts as there (held and refused, naming the link), never
    # as a work folder gone: "is the share mounted?" would send the admin astray. Looked
    # for first: a link that leads to itself fails the look by path (ELOOP), which
    # `there` raises as it is, naming neither the link nor the fix.
    present = link_inside(work, within) or there(work)
    kept = present and _kept_after(work, target, within, papers)
    if present and not kept:
        # The work folder held open, never through a link a user of the share put in its
        # place (OSError naming it: the bundle stays, and its row says why): the papers
        # are written into, and the folder moved, copied and removed as, that very folder.
        held = hold_folder(work, within=within)
        try:
            here = held_path(held)
            # A kill inside an earlier write of the papers (a retried archive) left its
            # temp file here; it must not travel into the entry.
            drop_unfinished(here, papers)
            write_papers(here, papers, sync=False)
            day = hold_day(target.parent, within)
            try:
                placed = move_into_place(work, target, sync=False, held=held, tag=tag,
                                         day=day, within=within, beside=beside)
                # Renamed (one file system): the papers are synced in the folder held.
                # Else the entry is a copy whose every file was synced before it was renamed.
                moved = still_at(held_path(day) / placed.name, held)
                _writable_as_root(placed, day)
                if moved:
                    for name in papers:
                        fsync_file(here / name)
                    os.fsync(held)
                os.fsync(day)
            finally:
                os.close(day)
        finally:
            os.close(held)
        return placed
    # Moved before a crash (raises when the target is not there either), or copied, the
    # work folder kept (KEPT) for files put in during the copy (never a second entry). A
    # power loss may have kept the rename and lost the papers' unsynced bytes: written
    # again, unless the folder is another bundle's entry that took this name.
    placed = target if kept else move_into_place(work, target, sync=False, tag=tag,
                                                 within=within, beside=beside)
    # Written in the entry held, in its day folder held: never through a link someone
    # who may write in the archive put in the place of either.
    day = hold_day(placed.parent, within)
    try:
        entry = hold_entry(day, placed)
        try:
            here = held_path(entry)
            if _someone_elses(here, papers, bundle_id):
                return placed
            drop_unfinished(here, papers)
            write_papers(here, papers, sync=False)
            _writable_as_root(placed, day)
            for name in papers:
                fsync_file(here / name)
            os.fsync(entry)
        finally:
            os.close(entry)
        os.fsync(day)
    finally:
        os.close(day)
    if kept:
        _drop_copied(work, placed, within, papers)
    return placed


def _drop_copied(work: Path, placed: Path, within: Path | None,
                 papers: Mapping[str, bytes]) -> None:
    """The work folder KEPT for the entry `placed` after a crash part-way through its
    removal: what the entry holds the same is removed, the rest kept (and said)."""
    held = hold_folder(work, within=within)
    try:
        left = drop_archived(work, held, placed, within, papers)
        if left is not None:
            said_left(work, held, placed, left)
    finally:
        os.close(held)


def drop_archived(work: Path, held: int, placed: Path, within: Path | None = None,
                  papers: Mapping[str, bytes] | None = None) -> list[Path] | None:
    """From the work folder open at `held`, KEPT for the entry `placed` (its copy was in
    place before the removal began): what the entry holds the same removed. What is left
    besides the mark (nothing: the mark and the emptied folder are gone too); None when
    no folder is at the entry's name (moved away, a link: nothing is removed for it), or
    the mark is not proven ours: by `papers` when given, else by the work folder's own
    paper (marked_for), or, where a crash took that with the removal, by the entry's
    paper naming the bundle the work folder's name carries (named_for). A mark is never
    trusted alone, not even with a whole copy at the name it gives: anyone on the share
    may write one, and a folder of theirs holding copies of a bundle never sent."""
    if not _folder_at(placed):
        return None  # never a day folder made for a mark that names no entry
    day = hold_day(placed.parent, within)
    try:
        if not (marked_for(held, day, placed, papers) or papers is None
                and named_for(held, work_bundle(work.name), day, placed)):
            return None
        compared = copy_at(day, placed, held, marked=True)
    finally:
        os.close(day)
    if compared is None:
        return None
    return unmarked(work, held, remove_held(work, held, compared))


def _kept_after(work: Path, target: Path, within: Path | None,
                papers: Mapping[str, bytes]) -> bool:
    """The work folder is one an archive into `target` kept (KEPT names it) and the entry
    is there, holding the bundle's `papers` (the journal's) byte for byte: the bundle was
    archived, only the journal's word of it was lost. A folder without them is not our
    copy, whatever a mark says (a share user may write one, and a folder at the name it
    gives). No entry at the name: our mark from a crash before the copy's rename (or a
    stale one), and the archive is done again (move_into_place). Anything else at the
    entry's name counts, never looked through: a link a clerk put there (dangling, or to
    a file) made the kept folder's leftovers archived beside it
    as the bundle's entry; the entry's hold that follows refuses a link, naming it
    (not_its_folder), and the archive waits for the folder to be put back."""
    held = hold_folder(work, within=within)
    try:
        if kept_for(held) != str(target):
            return False
        try:
            mode = os.lstat(target).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return False
        # Any other failure (the share's EIO) raises: taken for "no entry", the kept
        # folder's files were archived again, a second entry beside our copy.
        if not stat.S_ISDIR(mode):
            return True
        day = hold_day(target.parent, within)
        try:
            return marked_for(held, day, target, papers)
        finally:
            os.close(day)
    finally:
        os.close(held)


def _writable_as_root(placed: Path, day: int) -> None:
    """The entry and its day folder (open at `day`) group-writable when the archive root
    is (the tmpfiles snippet makes quarantine/ so, sent/ not): the people on the share
    fix a quarantined bundle where it lies and move it back into the outbox, which takes
    write permission on the folder it leaves. umask 027 would make every folder the
    daemon creates read-only for them. The entry is opened from the day folder held,
    never through a link put in the place of either."""
    try:
        if not os.lstat(placed.parent.parent).st_mode & stat.S_IWGRP:
            return
        entry = os.open(placed.name, FOLDER_NOFOLLOW, dir_fd=day)
        try:
            add_group_write_fd(entry)
        finally:
            os.close(entry)
        add_group_write_fd(day)
    except OSError:
        pass  # the bundle is archived; a folder someone else owns keeps its mode
