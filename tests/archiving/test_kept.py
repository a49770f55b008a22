"""The KEPT mark (.outboxd-kept) in a work folder: trusted only when the entry it names
proves it ours (it holds the bundle's receipt.json or reason.json byte for byte), and
always the archive's own — never one found in the folder, never carried into an entry.
A share user may write anywhere in the share, the processing folder included."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from exdev import KILLS, exdev_for, killed_at
from helpers import looks_fail
from structlog.testing import capture_logs

from daemon.archiving import kept
from daemon.archiving.archive import place
from daemon.archiving.kept import KEPT
from daemon.fs import fsmove

from .entries import entry_target, tree

BID = "0123456789abcdef" * 4
PAPERS = {"receipt.json": b'{"bundle_id": "' + BID.encode() + b'"}\n'}


def _work(root: Path) -> Path:
    work = root / "outbox" / ".outboxd" / "processing" / "INV-1--0123456789ab--h-1-abc"
    (work / "INV-1").mkdir(parents=True)
    (work / "INV-1.xml").write_bytes(b"<Invoice>ours</Invoice>")
    (work / "INV-1" / "a.pdf").write_bytes(b"%PDF-same")
    (work / "INV-1" / "b.pdf").write_bytes(b"%PDF-only-ours")
    return work





def test_a_mark_a_share_user_wrote_for_a_folder_of_theirs_is_no_proof_the_bundle_is_archived(
        tmp_path: Path) -> None:
    """A share user writes a mark naming the bundle's entry into its work folder, and puts
    a folder of theirs (sharing one attachment) at that name. The archive took their
    folder for the bundle's copy: the receipt written into it, the shared attachment
    removed from the work folder, the rest left in processing, and the entry the journal
    records theirs. Their folder holds no receipt of this bundle: the mark is not
    trusted, the bundle is archived whole beside it, their folder left as it was."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    (target / "INV-1").mkdir(parents=True)
    (target / "INV-1.xml").write_bytes(b"<Invoice>someone else</Invoice>")
    (target / "INV-1" / "a.pdf").write_bytes(b"%PDF-same")
    theirs = tree(target)
    (work / KEPT).write_bytes(os.fsencode(target))
    placed = place(work, target, PAPERS, BID, within=tmp_path / "outbox")
    assert placed == target.with_name(target.name + "-2")
    assert tree(placed) == {**content, **PAPERS}
    assert tree(target) == theirs
    assert not os.path.lexists(work)


@pytest.mark.parametrize("across", [False, True], ids=["rename", "copy"])
def test_a_mark_found_in_the_work_folder_never_travels_into_the_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, across: bool) -> None:
    """A stale mark in the work folder (an earlier archive's, or a share user's, naming
    another entry) was moved or copied into the archive entry with the bundle: an entry
    holding a mark that names somewhere else. The entry holds the bundle and its papers
    only; the log says the mark was removed, naming the folder and what it named."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    (work / KEPT).write_bytes(b"/somewhere/else")
    if across:
        exdev_for(monkeypatch, work)
    with capture_logs() as logged:
        assert place(work, target, PAPERS, BID, within=tmp_path / "outbox") == target
    [said] = [e for e in logged if e["log_level"] == "warning"]
    assert said["work_dir"] == str(work) and said["named"] == "/somewhere/else"
    assert tree(target) == {**content, **PAPERS}
    assert not os.path.lexists(work)


class _Killed(BaseException):
    """The daemon killed part-way through removing the source after the copy."""


def test_a_crash_at_the_first_removal_after_a_copy_leaves_the_archives_own_mark(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A stale mark in the work folder was kept in place of the archive's own: copied with
    the bundle, it sorted first and was the first file removed, so a crash right after
    left the folder unmarked, the proof of whose the copy is gone. The work folder holds
    the archive's own mark, naming the entry, until its removal is done; the retry then
    finishes it, leaving one whole entry."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    (work / KEPT).write_bytes(b"/somewhere/else")
    in_place: list[bool] = []
    exdev_for(monkeypatch, work, lambda: in_place.append(True))
    real_unlink = os.unlink

    def unlink(path: str, *, dir_fd: int | None = None) -> None:
        real_unlink(path, dir_fd=dir_fd)
        if in_place:  # the first file removed once the copy is in place
            raise _Killed
    monkeypatch.setattr(fsmove.os, "unlink", unlink)
    with pytest.raises(_Killed):
        place(work, target, PAPERS, BID, within=tmp_path / "outbox")
    monkeypatch.undo()
    assert (work / KEPT).read_bytes() == os.fsencode(target)
    assert place(work, target, PAPERS, BID, within=tmp_path / "outbox") == target
    assert os.listdir(target.parent) == [target.name]
    assert tree(target) == {**content, **PAPERS}
    assert not os.path.lexists(work)


def test_a_kill_before_the_copy_is_renamed_into_place_redoes_it_at_the_same_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Across file systems, the work folder is marked for its entry once the copy is
    complete and synced, before the rename (a kill just after the rename then leaves the
    proof of whose the copy is). Killed before that rename: the retry redoes the copy at
    the same name — one entry, holding no mark — and the mark, ours for that entry, goes
    without being said to be someone else's."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    exdev_for(monkeypatch, work)

    def killed(*_: object) -> None:
        raise _Killed
    monkeypatch.setattr(fsmove, "_into_place", killed)
    with pytest.raises(_Killed):
        place(work, target, PAPERS, BID, within=tmp_path / "outbox")
    monkeypatch.undo()
    assert (work / KEPT).read_bytes() == os.fsencode(target)
    assert os.listdir(target.parent) == []  # the copy under way removed
    exdev_for(monkeypatch, work)
    with capture_logs() as logged:
        assert place(work, target, PAPERS, BID, within=tmp_path / "outbox") == target
    assert [e for e in logged if e["log_level"] != "debug"] == []
    assert os.listdir(target.parent) == [target.name]
    assert tree(target) == {**content, **PAPERS}
    assert not os.path.lexists(work)


@pytest.mark.parametrize("linked", ["entry", "day"])
def test_the_reason_of_a_marked_quarantine_entry_is_never_read_through_a_link(
        tmp_path: Path, linked: str) -> None:
    """entry_reason (the orphan sweep's record of a kept folder's quarantine) reads the
    entry's reason.json; an entry or day folder a share user swapped for a link to a
    folder of theirs elsewhere is refused (OSError), never read as the bundle's."""
    from daemon.archiving.kept import entry_reason
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "reason.json").write_text('{"bundle_id": "x", "invoice_file": "X.xml"}')
    target = tmp_path / "quarantine" / "2026-01-01" / "INV-1--0123456789ab"
    target.mkdir(parents=True)
    (target / "reason.json").write_text('{"bundle_id": "ours", "invoice_file": "INV-1.xml"}')
    assert entry_reason(target) == {"bundle_id": "ours", "invoice_file": "INV-1.xml"}
    swapped = target if linked == "entry" else target.parent
    aside = swapped.with_name(swapped.name + ".aside")
    swapped.rename(aside)
    if linked == "entry":
        swapped.symlink_to(elsewhere)
    else:
        (elsewhere / target.name).mkdir()
        (elsewhere / target.name / "reason.json").write_text('{"bundle_id": "x"}')
        swapped.symlink_to(elsewhere)
    with pytest.raises(OSError):
        entry_reason(target)



@pytest.mark.parametrize("clerk", [False, True], ids=["alone", "clerk"])
@pytest.mark.parametrize("taken", [False, True], ids=["free", "taken"])
@pytest.mark.parametrize("at", KILLS)
def test_a_kill_at_any_point_of_a_copy_leaves_one_entry_at_the_journaled_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: str, taken: bool,
        clerk: bool) -> None:
    """Across file systems, the archive killed at any point of its move (the name free,
    or taken by someone else's entry: beside it, at NAME-2, journaled before the move),
    a clerk saving a file into the work folder during the copy or not. The retry at the
    journaled name leaves one entry of the bundle there, holding it whole with its
    papers; someone else's entry as it was; nothing of the work folder lost: a clerk's
    file saved during a copy that was put in place stays in the work folder (marked) and
    is said; one saved during a copy a kill kept from being put in place is in the
    copy made again."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    journaled = [target]
    if taken:
        target.mkdir()
        (target / "INV-1.xml").write_bytes(b"<Invoice>someone else's</Invoice>")
    theirs = tree(target) if taken else None
    killed_at(monkeypatch, work, at, _Killed(),
              lambda: clerk and (work / "note.txt").write_bytes(b"a clerk's note"))
    with pytest.raises(_Killed):
        place(work, target, PAPERS, BID, within=tmp_path / "outbox",
              beside=journaled.append)
    monkeypatch.undo()
    exdev_for(monkeypatch, work)
    with capture_logs() as logged:
        placed = place(work, journaled[-1], PAPERS, BID, within=tmp_path / "outbox",
                       beside=journaled.append)
    entry = target.with_name(target.name + "-2") if taken else target
    assert placed == entry == journaled[-1]
    assert sorted(os.listdir(target.parent)) == sorted({target.name, entry.name})
    if taken:
        assert tree(target) == theirs
    note = {"note.txt": b"a clerk's note"} if clerk else {}
    put_in_place = at not in ("copied", "marked")
    assert tree(entry) == {**content, **PAPERS, **({} if put_in_place else note)}
    if clerk and put_in_place:
        assert sorted(os.listdir(work)) == [KEPT, "note.txt"]
        assert (work / KEPT).read_bytes() == os.fsencode(entry)
        [said] = [e for e in logged if e.get("kept")]
        assert said["kept"] == [str(work / "note.txt")] and said["archive"] == str(entry)
    else:
        assert not os.path.lexists(work)
    assert [e for e in logged if e["log_level"] not in ("debug", "info")
            and not e.get("kept")] == []


def test_a_mark_cut_short_by_a_full_disk_is_taken_away_with_the_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Across file systems, the disk of the work folder full as the mark is written before
    the copy's rename: the move fails, its copy removed, the bundle in processing. The
    mark, cut short, named no entry and stayed: the next try removed it saying outboxd
    had not written it. The failed move takes it away; the next try archives the bundle
    whole, saying nothing of a mark."""
    from daemon.archiving import kept
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    exdev_for(monkeypatch, work)
    fdopen = os.fdopen

    class Full:
        """The mark's file, its disk filling up after its first bytes."""

        def __init__(self, fd: int, mode: str) -> None:
            self.fh = fdopen(fd, mode)

        def __enter__(self) -> Full:
            return self

        def __exit__(self, *_: object) -> None:
            self.fh.close()

        def write(self, data: bytes) -> None:
            self.fh.write(data[:3])
            self.fh.flush()
            raise OSError(28, "No space left on device")
    def opened(fd: int, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" in mode and os.readlink(f"/proc/self/fd/{fd}").endswith(KEPT):
            return Full(fd, mode)
        return fdopen(fd, mode, *args, **kwargs)
    monkeypatch.setattr(kept.os, "fdopen", opened)
    with pytest.raises(OSError, match="No space"):
        place(work, target, PAPERS, BID, within=tmp_path / "outbox")
    monkeypatch.undo()
    assert not os.path.lexists(work / KEPT)
    assert os.listdir(target.parent) == []
    exdev_for(monkeypatch, work)
    with capture_logs() as logged:
        assert place(work, target, PAPERS, BID, within=tmp_path / "outbox") == target
    assert [e for e in logged if e["log_level"] != "debug"] == []
    assert tree(target) == {**content, **PAPERS} and not os.path.lexists(work)


@contextmanager
def _held(folder: Path) -> Iterator[int]:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield fd
    finally:
        os.close(fd)


def test_marking_again_for_the_entry_it_names_keeps_the_very_mark(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mark for an entry is never taken away to be written again (a kill in between
    left a copy in place with no proof it is this folder's): marking for the entry it
    names already leaves the file as it is."""
    work, target = _work(tmp_path), entry_target(tmp_path)
    with _held(work) as held:
        kept.mark_kept(held, target)
        before = os.stat(work / KEPT).st_ino
        def removed(*_: Any, **__: Any) -> None:
            raise AssertionError("the mark was removed")

        with monkeypatch.context() as patched:
            patched.setattr(os, "unlink", removed)
            kept.mark_kept(held, target)
    assert os.stat(work / KEPT).st_ino == before
    assert (work / KEPT).read_bytes() == os.fsencode(target)


def test_a_folder_at_the_marks_name_is_someones_and_left_as_it_is(tmp_path: Path) -> None:
    """A folder named .outboxd-kept in the work folder is not a mark: dropping the mark
    before a move leaves it (and what is in it), without an error that would stop the
    archive, and no mark is written in its place."""
    work, target = _work(tmp_path), entry_target(tmp_path)
    (work / KEPT).mkdir()
    (work / KEPT / "notes.txt").write_bytes(b"mine")
    with _held(work) as held:
        kept.drop_mark(held, work)
        kept.mark_kept(held, target)
    assert (work / KEPT / "notes.txt").read_bytes() == b"mine"


def test_a_mark_for_another_entry_is_no_proof_for_this_one(tmp_path: Path) -> None:
    """The entry at this name holds the bundle's receipt byte for byte, but the work
    folder's mark names another entry: not marked for this one (a stale mark, or one a
    share user wrote)."""
    work, target = _work(tmp_path), entry_target(tmp_path)
    target.mkdir()
    (target / "receipt.json").write_bytes(PAPERS["receipt.json"])
    (work / KEPT).write_bytes(os.fsencode(target.with_name("OTHER--456789abcdef")))
    with _held(work) as held, _held(target.parent) as day:
        assert not kept.marked_for(held, day, target, PAPERS)
        (work / KEPT).write_bytes(os.fsencode(target))
        assert kept.marked_for(held, day, target, PAPERS)


def test_a_mark_naming_no_entry_of_the_archive_is_disowned(tmp_path: Path) -> None:
    """A work folder holding its receipt, marked for a folder outside sent/ and
    quarantine/ (a share user's): the mark is shown not to be ours, and the orphan sweep
    archives the folder instead of keeping it for good."""
    work, target = _work(tmp_path), entry_target(tmp_path)
    (work / "receipt.json").write_bytes(PAPERS["receipt.json"])
    elsewhere = tmp_path / "elsewhere" / "2026-01-01" / target.name
    elsewhere.mkdir(parents=True)
    (elsewhere / "receipt.json").write_bytes(PAPERS["receipt.json"])
    (work / KEPT).write_bytes(os.fsencode(elsewhere))
    roots = (target.parent.parent, tmp_path / "outbox" / "quarantine")
    with _held(work) as held:
        assert kept.disowned(held, roots)


def test_a_mark_that_is_a_fifo_is_a_mark_never_opened(tmp_path: Path) -> None:
    """A FIFO at the mark's name is never opened (that would block the daemon): it is
    a mark naming no entry that can be known (""), not "no mark at all"."""
    work = _work(tmp_path)
    os.mkfifo(work / KEPT)
    with _held(work) as held:
        assert kept.kept_for(held) == ""


def test_a_folder_that_still_holds_its_paper_is_proven_by_it_alone(tmp_path: Path) -> None:
    """The work folder still holds its receipt.json; the entry its mark names holds a
    receipt naming the bundle, but other bytes (a clerk's edited copy, another delivery):
    that is no proof by the bundle's name (named_for, for a folder whose paper a cut-short
    removal took), and nothing of the folder is removed for it."""
    work, target = _work(tmp_path), entry_target(tmp_path)
    (work / "receipt.json").write_bytes(PAPERS["receipt.json"])
    target.mkdir()
    (target / "receipt.json").write_bytes(b'{"bundle_id": "' + BID.encode() + b'", "x": 1}\n')
    (work / KEPT).write_bytes(os.fsencode(target))
    with _held(work) as held, _held(target.parent) as day:
        assert not kept.named_for(held, BID[:12], day, target)
        (work / "receipt.json").unlink()
        assert kept.named_for(held, BID[:12], day, target)


@pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE])
def test_an_entry_paper_the_share_fails_to_open_is_no_answer_by_the_bundles_name(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """The work folder's paper went with a removal a crash cut short; the entry its mark
    names holds the bundle's receipt, but the share fails its open (EIO, ESTALE): that
    is no answer, raised (the archive's move, the orphan sweep look again). Taken for no
    paper, the bundle's own files were kept in processing, said to be in no entry."""
    work, target = _work(tmp_path), entry_target(tmp_path)
    target.mkdir()
    (target / "receipt.json").write_bytes(PAPERS["receipt.json"])
    (work / KEPT).write_bytes(os.fsencode(target))
    with _held(work) as held, _held(target.parent) as day:
        with pytest.MonkeyPatch.context() as m:
            looks_fail(m, "receipt.json", code, ("open",))
            with pytest.raises(OSError) as raised:
                kept.named_for(held, BID[:12], day, target)
            assert raised.value.errno == code
        assert kept.named_for(held, BID[:12], day, target)


def test_a_mark_the_share_fails_to_read_is_no_answer(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A KEPT mark the share fails to open (EIO) is neither "no mark" nor one naming no
    entry (""): it raises. Taken for one naming no entry, a folder still holding its
    receipt was disowned (its mark shown not ours) and archived again beside its copy."""
    work, target = _work(tmp_path), entry_target(tmp_path)
    (work / "receipt.json").write_bytes(PAPERS["receipt.json"])
    (work / KEPT).write_bytes(os.fsencode(target))
    with _held(work) as held:
        looks_fail(monkeypatch, KEPT, calls=("open",))
        with pytest.raises(OSError):
            kept.kept_for(held)
        with pytest.raises(OSError):
            kept.disowned(held, (target.parent.parent,))


def test_files_left_after_an_archive_mark_only_the_folder_still_at_its_place(
        tmp_path: Path) -> None:
    """Files left in the work folder after its copy into the archive are said; the folder
    is marked only while it is still the work folder at its path — one moved away since
    (a clerk took it back into the outbox) gets no mark of outboxd's."""
    work, target = _work(tmp_path), entry_target(tmp_path)
    with _held(work) as held:
        moved = tmp_path / "moved-away"
        os.rename(work, moved)
        kept.said_left(work, held, target, [work / "INV-1" / "b.pdf"])
    assert not (moved / KEPT).exists()


def test_a_file_dropped_into_a_work_folder_as_its_mark_goes_keeps_the_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The removal after a copy left only the archive's KEPT mark: the mark goes, then the
    emptied work folder — but a file a clerk drops into it between the two keeps the
    folder (and the file), returned as left for the caller to say, never removed."""
    work = tmp_path / "INV-1--x"
    work.mkdir()
    (work / KEPT).write_bytes(b"/somewhere")
    real_rmdir = os.rmdir

    def rmdir_after_a_drop(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == work:
            (work / "late.pdf").write_bytes(b"%PDF-1.4 late")
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", rmdir_after_a_drop)
    held = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert kept.unmarked(work, held, [work / KEPT]) == [work]
    finally:
        os.close(held)
    assert os.listdir(work) == ["late.pdf"]
    assert (work / "late.pdf").read_bytes() == b"%PDF-1.4 late"


def test_an_entry_the_share_cannot_open_neither_proves_nor_disowns_the_mark(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A work folder holding its receipt, kept for its entry in sent/ (holding the same),
    whose open fails with EIO (the share half away): no answer, raised (the sweep and the
    archive look again). Taken for "no entry there", the mark was disowned and the folder
    archived again, a second entry of the bundle beside its copy."""
    work, target = _work(tmp_path), entry_target(tmp_path)
    (work / "receipt.json").write_bytes(PAPERS["receipt.json"])
    target.mkdir()
    (target / "receipt.json").write_bytes(PAPERS["receipt.json"])
    (work / KEPT).write_bytes(os.fsencode(target))
    roots = (target.parent.parent, tmp_path / "outbox" / "quarantine")
    real_open = os.open

    def failing(path: Any, *args: Any, **kw: Any) -> int:
        if path == target.name:
            raise OSError(errno.EIO, os.strerror(errno.EIO), path)
        return real_open(path, *args, **kw)
    with _held(work) as held:
        assert not kept.disowned(held, roots)
        with monkeypatch.context() as m:
            m.setattr(os, "open", failing)
            with pytest.raises(OSError):
                kept.disowned(held, roots)
