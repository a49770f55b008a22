"""What the archive finds at a bundle's entry name before it moves the work folder there:
its own copy (a crash after a copy across file systems: the source is removed as far as
it was copied), or someone else's entry, which the bundle goes beside. People on the
share may write in sent/ and quarantine/ and see each work folder's name (NAME--ID12 is
the entry's name): a link at the entry name, or in it, must never make the work folder
look copied, or its files are removed with no copy anywhere."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from exdev import exdev_for, killed_after_rename

from daemon.archiving import copyfound
from daemon.archiving.archive import move_into_place, place
from daemon.fs import fsmove

from .entries import entry_target, tree


def _work(root: Path) -> Path:
    """A claimed bundle in the processing folder, with its receipt written (as place()
    writes it before the move)."""
    work = root / "outbox" / ".outboxd" / "processing" / "INV-1--0123456789ab--h-1-abc"
    (work / "INV-1").mkdir(parents=True)
    (work / "INV-1.xml").write_bytes(b"<Invoice/>")
    (work / "INV-1" / "a.pdf").write_bytes(b"%PDF-a")
    (work / "receipt.json").write_bytes(b'{"bundle_id": "0123456789ab"}\n')
    return work




def test_a_link_at_the_entry_name_to_the_work_folder_is_not_taken_for_its_copy(
        tmp_path: Path) -> None:
    """A clerk puts a link to the bundle's own work folder at its entry name in sent/:
    looked through, the work folder was compared with itself, found "copied", and every
    file of the bundle removed; the entry was the link, leading nowhere. The link is
    someone else's: the bundle is archived whole beside it, the link left as it is."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    os.symlink(work, target)
    got = move_into_place(work, target, within=tmp_path / "outbox")
    assert got == target.with_name(target.name + "-2")
    assert tree(got) == content and not os.path.lexists(work)
    assert os.readlink(target) == str(work)


def test_a_link_inside_the_entry_to_a_folder_of_the_bundle_is_never_compared_through(
        tmp_path: Path) -> None:
    """The entry a real folder with the bundle's receipt (its bytes can be read in the
    processing folder) and, as the sidecar folder, a link to the work folder's own:
    looked through, the attachments were found "copied" and removed from the work folder,
    the entry holding them only through the link. They are never compared through it:
    the entry is no copy, and the bundle is archived whole beside it."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    target.mkdir()
    (target / "receipt.json").write_bytes((work / "receipt.json").read_bytes())
    os.symlink(work / "INV-1", target / "INV-1")
    got = move_into_place(work, target, within=tmp_path / "outbox")
    assert got == target.with_name(target.name + "-2")
    assert tree(got) == content and not os.path.lexists(work)


def test_a_folder_holding_a_copy_of_the_receipt_alone_is_not_taken_for_the_bundles_copy(
        tmp_path: Path) -> None:
    """A clerk copies the bundle's receipt.json (readable in the processing folder) into
    a folder of theirs at its entry name, with one attachment: the receipt alone made it
    the bundle's own earlier copy — the receipt and the attachment removed from the work
    folder, the rest left in processing marked kept, the clerk's folder named the archive.
    Only a folder holding every file of the work folder is its copy: the bundle is
    archived whole beside the clerk's folder, which stays as it was."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    (target / "INV-1").mkdir(parents=True)
    for name in ("receipt.json", "INV-1/a.pdf"):
        (target / name).write_bytes((work / name).read_bytes())
    clerks = tree(target)
    got = move_into_place(work, target, within=tmp_path / "outbox")
    assert got == target.with_name(target.name + "-2")
    assert tree(got) == content and not os.path.lexists(work)
    assert tree(target) == clerks


def test_an_entry_of_hard_links_to_the_work_folders_files_is_no_copy(tmp_path: Path) -> None:
    """An entry whose files are the work folder's own (hard links: one inode) is not a
    copy, which is a file of its own: the bundle goes beside it, whole."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    (target / "INV-1").mkdir(parents=True)
    for name in content:
        os.link(work / name, target / name)
    got = move_into_place(work, target, within=tmp_path / "outbox")
    assert got == target.with_name(target.name + "-2")
    assert tree(got) == content and tree(target) == content


def test_a_link_at_the_entry_name_is_no_finished_move_of_a_work_folder_gone(
        tmp_path: Path) -> None:
    """The work folder gone and a link at the entry name (to any folder): not reported as
    the bundle archived there by an earlier run, but as neither being there."""
    work = _work(tmp_path)
    target = entry_target(tmp_path)
    os.rename(work, tmp_path / "elsewhere")
    os.symlink(tmp_path / "elsewhere", target)
    with pytest.raises(FileNotFoundError, match="not in the archive either"):
        move_into_place(work, target, within=tmp_path / "outbox")



class _Killed(BaseException):
    """The daemon killed part-way through removing the source after the copy."""


def test_a_crash_part_way_through_the_removal_after_a_copy_leaves_one_whole_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Archived across file systems; a clerk saves a file into the work folder during the
    copy, and the daemon is killed when the removal of the copied source has taken the
    attachment only. The retry found no whole copy at the entry name and archived the
    leftovers beside it as the bundle's entry (the journal naming a folder without the
    attachment). It finds its own copy (the work folder marked for it before the removal
    began): the entry is the one archive, whole; the rest of the copied files leave the
    work folder, the clerk's file stays there, marked kept."""
    work = _work(tmp_path)
    papers = {"receipt.json": (work / "receipt.json").read_bytes()}
    content = tree(work)
    target = entry_target(tmp_path)
    exdev_for(monkeypatch, work,
                         lambda: (work / "INV-1" / "b.pdf").write_bytes(b"%PDF-late"))
    real_unlink = os.unlink

    def unlink(path: str, *, dir_fd: int | None = None) -> None:
        real_unlink(path, dir_fd=dir_fd)
        if path == "a.pdf":
            raise _Killed
    monkeypatch.setattr(fsmove.os, "unlink", unlink)
    with pytest.raises(_Killed):
        place(work, target, papers, "0123456789ab", within=tmp_path / "outbox")
    monkeypatch.undo()
    assert tree(target) == content and not os.path.exists(work / "INV-1" / "a.pdf")

    assert place(work, target, papers, "0123456789ab", within=tmp_path / "outbox") == target
    assert os.listdir(target.parent) == [target.name]
    assert tree(target) == content
    assert tree(work) == {".outboxd-kept": os.fsencode(target), "INV-1/b.pdf": b"%PDF-late"}


def test_a_copy_across_file_systems_leaves_no_mark_when_the_source_is_all_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mark made before the removal (the proof of whose the copy is) goes with the
    emptied work folder: nothing is left in processing after a whole archive."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    exdev_for(monkeypatch, work, lambda: None)
    assert move_into_place(work, target, within=tmp_path / "outbox") == target
    assert tree(target) == content and not os.path.lexists(work)


def test_the_look_at_an_entry_stops_at_its_first_file_unlike_the_work_folders(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bundle dropped again the same day finds its first entry at the name, alike but
    for its papers: the look read every file of both (a bundle of hundreds of MB read
    twice, at claim time on the loop) to learn what its first differing file told. It
    stops there: the attachments below are never read, and the bundle goes beside."""
    work = _work(tmp_path)
    for i in range(50):
        (work / "INV-1" / f"b{i}.pdf").write_bytes(b"%PDF-" + bytes([i]) * 1000)
    target = entry_target(tmp_path)
    shutil.copytree(work, target)
    (target / "receipt.json").write_bytes(b'{"bundle_id": "0123456789ab", "other": 1}\n')
    read = _files_read(monkeypatch)
    got = move_into_place(work, target, within=tmp_path / "outbox")
    assert got == target.with_name(target.name + "-2")
    assert len(read) <= 2 and not any(name.endswith(".pdf") for name in read)


def test_the_entries_of_a_bundle_resent_all_day_are_told_apart_by_their_papers_alone(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clerk resends the same bundle all day: NAME, NAME-2 … NAME-6 hold it, alike but
    for their papers. The look at the name and beside it (copy_beside: the orphan sweep,
    a retry) compared the files in the order the folder lists them, which may put the
    invoice file before the paper: each entry's invoice file was read whole, with the
    work folder's, before the paper told it apart (hundreds of entries of a PDF invoice:
    GBs read on the loop). The papers are compared first, whatever the listing order:
    no invoice file or attachment is read, and the bundle goes to NAME-7."""
    work = _work(tmp_path)
    (work / "INV-1.xml").write_bytes(b"<Invoice>" + b"x" * 100_000 + b"</Invoice>")
    content = tree(work)
    target = entry_target(tmp_path)
    for n in range(1, 7):
        entry = target if n == 1 else target.with_name(f"{target.name}-{n}")
        shutil.copytree(work, entry)
        (entry / "receipt.json").write_bytes(b'{"bundle_id": "0123456789ab", "n": %d}\n' % n)
    walk = copyfound.fwalk_bounded

    def papers_listed_last(*args: object, **kwargs: object
                           ) -> Iterator[tuple[str, list[str], list[str], int]]:
        for top, dirs, files, fd in walk(*args, **kwargs):  # type: ignore[arg-type]
            yield top, dirs, sorted(files, key=lambda f: f in copyfound.PROOFS), fd
    monkeypatch.setattr(copyfound, "fwalk_bounded", papers_listed_last)
    read = _files_read(monkeypatch)
    got = move_into_place(work, target, within=tmp_path / "outbox")
    assert got == target.with_name(target.name + "-7")
    assert tree(got) == content and not os.path.lexists(work)
    assert read and set(read) == {"receipt.json"}


def test_a_whole_copy_beside_a_taken_name_is_found_by_a_retry_that_was_not_told_of_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Across file systems, beside someone else's entry at the name: killed once the copy
    at NAME-2 was in place, the work folder not marked for it (a build that marked it
    only after the rename; a folder named as the mark in the work folder), the journal's
    word of NAME-2 lost too (the orphan sweep retries at the name it works out, NAME). The
    retry copied the bundle once more, to NAME-3: two entries of one bundle. It finds its
    whole copy at NAME-2 and removes the source: one entry."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    target.mkdir()
    (target / "INV-1.xml").write_bytes(b"<Invoice>someone else's</Invoice>")
    _copied_unmarked_then_killed(monkeypatch, work, target, tmp_path)
    beside = target.with_name(target.name + "-2")
    assert tree(beside) == content == tree(work)

    assert move_into_place(work, target, within=tmp_path / "outbox") == beside
    assert sorted(os.listdir(target.parent)) == [target.name, beside.name]
    assert tree(beside) == content and not os.path.lexists(work)


def test_a_whole_copy_beside_a_gap_left_by_a_removed_entry_is_found_by_the_retry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Across file systems, NAME, NAME-2 and NAME-3 someone else's entries: killed once
    the copy at NAME-4 was in place unmarked (an older build's), the journal lost too; then a clerk
    removed NAME-3. The look beside the name stopped at the first free one, NAME-3, and
    the retry archived the bundle there: two entries of one bundle. It looks at every
    NAME-N in the day folder: the copy at NAME-4 is found, the source removed, no entry
    made."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    others = [target] + [target.with_name(f"{target.name}-{n}") for n in (2, 3)]
    for other in others:
        other.mkdir(parents=True)
        (other / "INV-1.xml").write_bytes(b"<Invoice>someone else's</Invoice>")
    _copied_unmarked_then_killed(monkeypatch, work, target, tmp_path)
    copy = target.with_name(target.name + "-4")
    assert tree(copy) == content == tree(work)
    shutil.rmtree(others[2])

    assert move_into_place(work, target, within=tmp_path / "outbox") == copy
    assert sorted(os.listdir(target.parent)) == sorted(
        [target.name, f"{target.name}-2", copy.name])
    assert tree(copy) == content and not os.path.lexists(work)


def test_an_entry_beside_the_name_removed_once_listed_is_passed_and_the_bundle_archived(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The look beside a taken name lists the day folder once; a clerk removes NAME-2
    after that listing, before it is opened. It is passed as no copy (the move failing
    on it instead left the bundle in processing until the next try), and the bundle is
    archived whole at the first free name, NAME-2."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    target.mkdir(parents=True)
    (target / "INV-1.xml").write_bytes(b"<Invoice>someone else's</Invoice>")
    gone = f"{target.name}-2"
    listdir = os.listdir

    def listed_before_removed(path: object = ".") -> list[str]:
        names = listdir(path)  # type: ignore[call-overload]
        return names + [gone] if target.name in names and gone not in names else names
    monkeypatch.setattr(copyfound.os, "listdir", listed_before_removed)
    got = move_into_place(work, target, within=tmp_path / "outbox")
    assert got == target.with_name(gone)
    assert tree(got) == content and not os.path.lexists(work)


def test_an_entry_beside_the_name_that_lacks_a_file_and_its_paper_is_no_copy(
        tmp_path: Path) -> None:
    """The look beside a taken name takes for the bundle's only a whole copy or an older
    build's copy holding the bundle's own paper: an entry at NAME-2 holding all but one
    attachment and another receipt (another delivery of the bundle) is left as it is,
    nothing is removed from the work folder for it, and the bundle is archived whole at
    NAME-3."""
    work = _work(tmp_path)
    content = tree(work)
    target = entry_target(tmp_path)
    target.mkdir()
    (target / "INV-1.xml").write_bytes(b"<Invoice>someone else's</Invoice>")
    beside = target.with_name(target.name + "-2")
    shutil.copytree(work, beside)
    (beside / "INV-1" / "a.pdf").unlink()
    (beside / "receipt.json").write_text('{"receipt_id": "another delivery"}')
    got = move_into_place(work, target, within=tmp_path / "outbox")
    assert got == target.with_name(target.name + "-3")
    assert tree(got) == content and not os.path.lexists(work)
    assert "INV-1/a.pdf" not in tree(beside)


def test_an_older_builds_unmarked_copy_with_a_late_file_left_is_the_one_entry(
        tmp_path: Path) -> None:
    """Upgrading from a build before the KEPT mark: it copied the bundle into sent/ on
    another file system, a clerk saved a note into the work folder meanwhile, and it was
    killed part-way through removing the source (the attachment gone), leaving no mark.
    The retry took the entry for someone else's and archived the rest beside it as a
    second entry NAME--ID-2, the journal naming it: a note never sent shown as sent.
    The entry holding the work folder's invoice file and receipt the same is its copy:
    the one entry, as it was; the invoice and receipt leave the work folder, the note
    stays there, marked kept."""
    work = _work(tmp_path)
    papers = {"receipt.json": (work / "receipt.json").read_bytes()}
    content = tree(work)
    target = entry_target(tmp_path)
    shutil.copytree(work, target)
    (work / "INV-1" / "a.pdf").unlink()
    (work / "INV-1" / "note.pdf").write_bytes(b"%PDF-late")
    assert place(work, target, papers, "0123456789ab", within=tmp_path / "outbox") == target
    assert os.listdir(target.parent) == [target.name]
    assert tree(target) == content
    assert tree(work) == {".outboxd-kept": os.fsencode(target), "INV-1/note.pdf": b"%PDF-late"}


def test_an_unmarked_entry_lacking_the_work_folders_invoice_is_not_its_copy(
        tmp_path: Path) -> None:
    """An entry at the name holding the receipt and attachments the same but not the
    invoice file still in the work folder is no older build's copy (a clerk's folder):
    the bundle goes beside it, whole, and the folder stays as it was."""
    work = _work(tmp_path)
    (work / "INV-1" / "note.pdf").write_bytes(b"%PDF-late")
    content = tree(work)
    target = entry_target(tmp_path)
    shutil.copytree(work, target)
    (target / "INV-1.xml").unlink()
    (target / "INV-1" / "note.pdf").unlink()
    theirs = tree(target)
    got = move_into_place(work, target, within=tmp_path / "outbox")
    assert got == target.with_name(target.name + "-2")
    assert tree(got) == content and tree(target) == theirs and not os.path.lexists(work)


def _files_read(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names copyfound compares byte for byte from now on, in order."""
    read: list[str] = []
    same_bytes = copyfound._same_bytes

    def counted(folder: int, copy: int, name: str) -> bool:
        read.append(name)
        return same_bytes(folder, copy, name)
    monkeypatch.setattr(copyfound, "_same_bytes", counted)
    return read


def _copied_unmarked_then_killed(monkeypatch: pytest.MonkeyPatch, work: Path, target: Path,
                                 tmp_path: Path) -> None:
    """Across file systems, the work folder copied into the archive (beside `target` when
    that is taken) unmarked, as an older build left it (it marked only after the rename),
    and the daemon killed right after the copy's rename into place."""
    from daemon.archiving import archive
    exdev_for(monkeypatch, work, lambda: None)
    monkeypatch.setattr(archive, "mark_kept", lambda *_: None)
    killed_after_rename(monkeypatch, _Killed())
    with pytest.raises(_Killed):
        move_into_place(work, target, within=tmp_path / "outbox")
    monkeypatch.undo()


def test_the_names_beside_are_those_free_name_writes_in_numeric_order() -> None:
    """NAME-2, NAME-3 … NAME-10 are the names beside NAME (in numeric order: NAME-10 after
    NAME-9); NAME-1, NAME-02, NAME-x and another name's are not, so no folder a clerk
    named so is looked into as the bundle's copy."""
    names = ["x-10", "x-9", "x-1", "x-02", "x-2", "x-x", "x-", "y-3", "x-3-2", "x"]
    assert copyfound.numbers_beside(names, "x") == [2, 9, 10]


def test_an_entry_the_share_cannot_read_is_no_answer_whether_it_is_our_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry's paper, a folder of it, or the work folder's listing fails with EIO as
    the archive compares them (the share half away): raised, the archive tried again.
    Taken for "no paper of ours", "no such folder in the copy" or "not an older build's
    copy", a copy in place lost its proof and the bundle was archived again beside it."""
    work = _work(tmp_path)
    target = entry_target(tmp_path)
    shutil.copytree(work, target)
    papers = {"receipt.json": (work / "receipt.json").read_bytes()}
    eio = OSError(errno.EIO, os.strerror(errno.EIO))
    real_open_in, real_open, real_listdir = copyfound.open_in, os.open, os.listdir

    def open_in(folder: int, name: str, *args: Any, **kw: Any) -> Any:
        if name == "receipt.json":
            raise eio
        return real_open_in(folder, name, *args, **kw)

    def failing_open(path: Any, *args: Any, **kw: Any) -> int:
        if path == "INV-1" and kw.get("dir_fd") is not None:
            raise eio
        return real_open(path, *args, **kw)

    def listdir(path: Any = ".") -> list[str]:
        if isinstance(path, int):
            raise eio
        return real_listdir(path)
    entry, held = (os.open(p, os.O_RDONLY | os.O_DIRECTORY) for p in (target, work))
    try:
        assert copyfound.holds_paper(entry, held, papers)
        with monkeypatch.context() as m:
            m.setattr(copyfound, "open_in", open_in)
            with pytest.raises(OSError):
                copyfound.holds_paper(entry, held, papers)
        with monkeypatch.context() as m:
            m.setattr(os, "open", failing_open)
            with pytest.raises(OSError):
                copyfound._folder_of_copy(entry, "./INV-1")
        with monkeypatch.context() as m:
            m.setattr(os, "listdir", listdir)
            with pytest.raises(OSError):
                copyfound.unmarked_copy(entry, target, held)
    finally:
        os.close(entry)
        os.close(held)
