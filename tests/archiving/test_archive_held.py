"""The archive and the quarantine reach a claimed bundle's work folder only through the
folder they hold open: a work folder swapped for a link (by a user of the share, whose
outbox holds .outboxd/processing/) at any moment of the move makes outboxd write,
copy, rename or remove nothing outside it, and the bundle stays where it is."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from exdev import exdev_for
from swaps import swap_for_link

from daemon import logs
from daemon.archiving import archive
from daemon.archiving.kept import KEPT
from daemon.fs import fsmove

BID = "0123456789abcdef" * 4
PAPERS = {"receipt.json": b'{"bundle_id": "' + BID.encode() + b'"}\n'}


def _work(root: Path) -> Path:
    work = root / "processing" / "INV-1--0123"
    (work / "INV-1").mkdir(parents=True)
    (work / "INV-1.xml").write_bytes(b"<Invoice/>")
    (work / "INV-1" / "a.pdf").write_bytes(b"%PDF-a")
    return work


def _outside(root: Path) -> Path:
    outside = root / "outside"
    (outside / "INV-1").mkdir(parents=True)
    (outside / "INV-1.xml").write_bytes(b"not ours")
    return outside



def _listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_a_work_folder_that_is_a_link_is_neither_written_into_nor_moved(
        tmp_path: Path) -> None:
    """Swapped before the archive: OSError naming the work folder and the fix; no paper
    is written where the link leads, and the link is not moved into the archive."""
    work, outside = _work(tmp_path), _outside(tmp_path)
    real = swap_for_link(work, outside)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    with pytest.raises(OSError) as caught:
        archive.place(work, target, PAPERS, BID)
    assert caught.value.filename == str(work)
    assert "put the bundle's folder itself back" in str(caught.value)
    assert _listing(outside) == ["INV-1", "INV-1.xml"]
    assert work.is_symlink() and not os.path.lexists(target)
    assert _listing(real) == ["INV-1", "INV-1.xml", "INV-1/a.pdf"]


@pytest.mark.parametrize("across", [False, True], ids=["rename", "copy"])
def test_a_work_folder_swapped_after_its_papers_were_written_is_not_moved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, across: bool) -> None:
    """Swapped for a link after the papers went into the folder held and before the move
    (in one file system, or to another one: a copy): the link is neither renamed into
    the archive nor copied from, nothing where it leads is removed, and the real folder
    keeps the bundle and its papers."""
    work, outside = _work(tmp_path), _outside(tmp_path)
    made = archive.hold_day
    moved: list[Path] = []

    def swap_then_make(folder: Path, within: Path | None = None) -> int:
        moved.append(swap_for_link(work, outside))
        return made(folder, within)

    monkeypatch.setattr(archive, "hold_day", swap_then_make)
    if across:
        exdev_for(monkeypatch, work)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    with pytest.raises(OSError, match="no longer the folder outboxd claimed"):
        archive.place(work, target, PAPERS, BID)
    assert _listing(outside) == ["INV-1", "INV-1.xml"]
    assert work.is_symlink() and os.listdir(target.parent) == []
    assert _listing(moved[0]) == ["INV-1", "INV-1.xml", "INV-1/a.pdf", "receipt.json"]


def test_a_link_swapped_in_at_the_rename_itself_is_put_back_and_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Swapped between the last look and the rename: what was renamed is found not to
    be the folder held, is renamed back under the work folder's name, and the move is
    refused; the archive holds nothing, the link leads where it did."""
    work, outside = _work(tmp_path), _outside(tmp_path)
    rename = fsmove.rename_noreplace
    moved: list[Path] = []

    def swap_then_rename(src: Path, dst: Path, *at: int | None) -> None:
        if Path(src) == work and not moved:
            moved.append(swap_for_link(work, outside))
        rename(src, dst, *at)

    monkeypatch.setattr(fsmove, "rename_noreplace", swap_then_rename)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    with pytest.raises(OSError, match="no longer the folder outboxd claimed"):
        archive.place(work, target, PAPERS, BID)
    assert work.is_symlink() and os.readlink(work) == str(outside)
    assert os.listdir(target.parent) == []
    assert _listing(outside) == ["INV-1", "INV-1.xml"]
    assert "receipt.json" in os.listdir(moved[0])


def test_a_copy_across_file_systems_removes_only_the_folder_held(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After the copy into the archive (another file system), the source is removed from
    the folder held: a work folder swapped for a link just then keeps what the link
    leads to, and the entry is complete."""
    work, outside = _work(tmp_path), _outside(tmp_path)
    remove = fsmove.remove_held
    moved: list[Path] = []

    def swap_after_publish(path: Path, *args: Any) -> list[Path]:
        moved.append(swap_for_link(work, outside))
        return remove(path, *args)

    exdev_for(monkeypatch, work)
    monkeypatch.setattr(fsmove, "remove_held", swap_after_publish)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    assert archive.place(work, target, PAPERS, BID) == target
    assert moved, "the swap was made"
    assert _listing(outside) == ["INV-1", "INV-1.xml"]
    assert _listing(target) == ["INV-1", "INV-1.xml", "INV-1/a.pdf", "receipt.json"]
    assert _listing(moved[0]) == []  # emptied from its descriptor, left where it went


def test_an_earlier_complete_copy_is_recognised_from_the_folder_held(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after the cross-file-system copy was renamed into place: the retry finds
    the complete copy (compared from the folder held) and removes the work folder."""
    work = _work(tmp_path)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    exdev_for(monkeypatch, work)
    remove = fsmove.remove_held
    died: list[Any] = []

    def dies(path: Path, *_: object) -> None:
        died.append(path)
        raise KeyboardInterrupt

    monkeypatch.setattr(fsmove, "remove_held", dies)
    with pytest.raises(KeyboardInterrupt):
        archive.place(work, target, PAPERS, BID)
    monkeypatch.setattr(fsmove, "remove_held", remove)
    assert archive.place(work, target, PAPERS, BID) == target
    assert not os.path.lexists(work)
    assert [p.name for p in target.parent.iterdir()] == [target.name]


def test_a_file_dropped_into_the_work_folder_during_a_copy_into_the_archive_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Archive on another file system: a file a user of the share puts into the work
    folder while it is copied is not in the entry, and is never removed with the folder:
    it stays in the work folder, with the folder, and the log names it."""
    warned: list[dict[str, Any]] = []
    work, target, late = _dropped_into_during_the_copy(tmp_path, monkeypatch, warned)
    assert archive.place(work, target, PAPERS, BID) == target
    assert late.read_bytes() == b"%PDF-late"
    assert _listing(work) == [KEPT, "INV-1", "INV-1/late.pdf"]
    assert _listing(target) == ["INV-1", "INV-1.xml", "INV-1/a.pdf", "receipt.json"]
    assert [w["kept"] for w in warned] == [[str(late)]]


def test_a_kept_work_folder_is_marked_with_its_entry_and_never_archived_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The work folder kept for a file dropped in during the copy is marked with the
    archive entry (KEPT, for the orphan sweep). An archive tried again (the
    journal's word of the first one lost) finds the entry done: the dropped file is not
    copied into a second entry beside it, nor papers written into the kept folder."""
    work, target, _ = _dropped_into_during_the_copy(tmp_path, monkeypatch)
    assert archive.place(work, target, PAPERS, BID) == target
    assert (work / KEPT).read_bytes() == os.fsencode(target)
    assert archive.place(work, target, PAPERS, BID) == target
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert _listing(work) == [KEPT, "INV-1", "INV-1/late.pdf"]
    assert _listing(target) == ["INV-1", "INV-1.xml", "INV-1/a.pdf", "receipt.json"]


@pytest.mark.parametrize("lead", ["nowhere", "a file"])
def test_a_link_at_a_kept_work_folders_entry_name_is_no_archive_and_its_leftovers_stay(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lead: str) -> None:
    """A work folder kept for a file dropped in during the copy; the journal's word of the
    archive lost (a crash), and a clerk moved the entry away and put a link at its name
    (dangling, or to a file). Looked at through the link, the entry was not there: the
    kept folder — the late file and the mark, not the bundle — was archived beside the
    link as the bundle's entry. The link is never looked through: the archive fails,
    naming it, and the kept folder stays as it was."""
    work, target, _ = _dropped_into_during_the_copy(tmp_path, monkeypatch)
    assert archive.place(work, target, PAPERS, BID) == target
    os.rename(target, tmp_path / "moved-away")
    if lead == "a file":
        (tmp_path / "a-file").write_bytes(b"x")
    os.symlink(tmp_path / ("a-file" if lead == "a file" else "nowhere"), target)
    with pytest.raises(OSError, match="symbolic link"):
        archive.place(work, target, PAPERS, BID)
    assert sorted(os.listdir(target.parent)) == [target.name]
    assert _listing(work) == [KEPT, "INV-1", "INV-1/late.pdf"]


def test_a_link_at_the_entry_name_of_a_folder_marked_for_another_entry_is_gone_beside(
        tmp_path: Path) -> None:
    """A work folder whose mark names some other entry (stale, or a share user's) is
    not kept for this one: a link at its own entry's name is someone else's, and the
    bundle is archived beside it — never "the entry is there" for a link, which left the
    archive failing on it for good."""
    work = _work(tmp_path)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    target.parent.mkdir(parents=True)
    (work / KEPT).write_bytes(os.fsencode(target.with_name("OTHER--4567")))
    os.symlink(tmp_path / "nowhere", target)
    placed = archive.place(work, target, PAPERS, BID)
    assert placed == target.with_name(f"{target.name}-2")
    assert _listing(placed) == ["INV-1", "INV-1.xml", "INV-1/a.pdf", "receipt.json"]
    assert os.path.islink(target) and not os.path.lexists(work)


def test_a_file_put_into_the_work_folder_between_a_crash_and_the_retry_is_kept_not_archived_twice(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after the cross-file-system copy was renamed into place, before its source
    was removed; a user of the share then puts a file into the work folder and saves one
    of the bundle's again. The retry knows the entry for this very bundle's copy (the work
    folder was marked for it before the removal began): it removes what the entry holds
    as it is and keeps the rest in the work folder, marked and said, as a file put in
    during the copy is — no second entry NAME--ID-2 whose invoice is not the one sent,
    named by the journal as the bundle's archive."""
    work = _work(tmp_path)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    exdev_for(monkeypatch, work)

    def dies(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fsmove, "remove_held", dies)
    with pytest.raises(KeyboardInterrupt):
        archive.place(work, target, PAPERS, BID)
    monkeypatch.undo()
    (work / "INV-1" / "late.pdf").write_bytes(b"%PDF-late")
    (work / "INV-1.xml").write_bytes(b"<Invoice>saved again</Invoice>")
    warned: list[dict[str, Any]] = []
    monkeypatch.setattr(logs, "get", lambda: _Log(warned))
    assert archive.place(work, target, PAPERS, BID) == target
    assert [p.name for p in target.parent.iterdir()] == [target.name]
    assert _listing(target) == ["INV-1", "INV-1.xml", "INV-1/a.pdf", "receipt.json"]
    assert (target / "INV-1.xml").read_bytes() == b"<Invoice/>"
    assert _listing(work) == [KEPT, "INV-1", "INV-1.xml", "INV-1/late.pdf"]
    assert (work / KEPT).read_bytes() == os.fsencode(target)
    assert [sorted(w["kept"]) for w in warned] == [
        sorted([str(work / "INV-1" / "late.pdf"), str(work / "INV-1.xml")])]


def test_an_entry_under_the_name_with_another_receipt_is_not_taken_for_the_copy(
        tmp_path: Path) -> None:
    """An entry under the target name that holds the bundle's files but another receipt
    (the same bundle archived by another daemon) is not this work folder's copy: nothing
    is removed from the work folder for it, which goes to a free name beside it."""
    work = _work(tmp_path)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    (target / "INV-1").mkdir(parents=True)
    (target / "INV-1.xml").write_bytes(b"<Invoice/>")
    (target / "INV-1" / "a.pdf").write_bytes(b"%PDF-a")
    (target / "receipt.json").write_bytes(b'{"bundle_id": "' + BID.encode() + b'", "x": 1}\n')
    assert archive.place(work, target, PAPERS, BID) == target.with_name(target.name + "-2")
    assert (target / "receipt.json").read_bytes() != PAPERS["receipt.json"]
    assert not os.path.lexists(work)


def test_a_file_dropped_into_the_work_folder_after_an_earlier_copy_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash after the copy into the archive: the retry removes from the work folder
    only what it found in the complete copy, never a file put there since."""
    work = _work(tmp_path)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    exdev_for(monkeypatch, work)

    def dies(*_: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(fsmove, "remove_held", dies)
    with pytest.raises(KeyboardInterrupt):
        archive.place(work, target, PAPERS, BID)
    monkeypatch.undo()
    compare = archive.copy_at
    late = work / "INV-1" / "late.pdf"

    def then_drop(day: int, target: Path, held: int, marked: bool = False) -> Any:
        found = compare(day, target, held, marked)
        late.write_bytes(b"%PDF-late")
        return found

    monkeypatch.setattr(archive, "copy_at", then_drop)
    monkeypatch.setattr(logs, "get", lambda: _Log([]))
    assert archive.place(work, target, PAPERS, BID) == target
    assert _listing(work) == [KEPT, "INV-1", "INV-1/late.pdf"]
    assert (target / "INV-1" / "a.pdf").read_bytes() == b"%PDF-a"


class _Log:
    def __init__(self, warned: list[dict[str, Any]]) -> None:
        self.warned = warned

    def warning(self, _event: str, **fields: Any) -> None:
        self.warned.append(fields)


def _dropped_into_during_the_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                  warned: list[dict[str, Any]] | None = None
                                  ) -> tuple[Path, Path, Path]:
    """A work folder to be archived on another file system, and the file a user of the
    share drops into it as the copy is published: (work folder, entry, dropped file).
    The archive's warnings go to `warned`."""
    work = _work(tmp_path)
    late = work / "INV-1" / "late.pdf"
    exdev_for(monkeypatch, work)
    _drop_before_publishing(monkeypatch, late)
    monkeypatch.setattr(logs, "get", lambda: _Log([] if warned is None else warned))
    return work, tmp_path / "sent" / "2026-01-01" / "INV-1--0123", late


def _drop_before_publishing(monkeypatch: pytest.MonkeyPatch, late: Path) -> None:
    """A user of the share writes `late` into the work folder just as the complete copy
    is published (renamed from its .partial name into place)."""
    rename = fsmove.rename_noreplace

    def drop_then_publish(src: Path, dst: Path, *at: int | None) -> None:
        if Path(src).name.endswith(".partial"):
            late.write_bytes(b"%PDF-late")
        rename(src, dst, *at)

    monkeypatch.setattr(fsmove, "rename_noreplace", drop_then_publish)


def _placed_behind_a_linked_dot_outboxd(tmp_path: Path, to: Path
                                        ) -> tuple[pytest.ExceptionInfo[OSError], Path]:
    """archive.place of a work folder reached from the outbox whose `.outboxd` a share user
    moved aside (to `aside`) and replaced by a link to `to`: what it raised (naming
    `.outboxd`, nothing archived) and the real work folder's path in `aside`."""
    outbox = tmp_path / "outbox"
    work = _work(outbox / ".outboxd")
    (outbox / ".outboxd").rename(tmp_path / "aside")
    (outbox / ".outboxd").symlink_to(to)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    with pytest.raises(OSError) as caught:
        archive.place(work, target, PAPERS, BID, within=outbox)
    assert caught.value.filename == str(outbox / ".outboxd")
    assert not os.path.lexists(target)
    return caught, tmp_path / "aside" / "processing" / work.name


def test_a_dot_outboxd_made_a_link_has_no_folder_behind_it_archived(tmp_path: Path) -> None:
    """Reached from the outbox (`within`), a work folder whose `.outboxd` a share user
    replaced by a link to a folder holding one of the same name: nothing is written
    there nor moved into the archive; OSError naming `.outboxd`, and the bundle's own
    folder is left as it was."""
    fake = _work(tmp_path / "elsewhere")
    _, real = _placed_behind_a_linked_dot_outboxd(tmp_path, tmp_path / "elsewhere")
    assert _listing(fake) == ["INV-1", "INV-1.xml", "INV-1/a.pdf"]
    assert _listing(real) == ["INV-1", "INV-1.xml", "INV-1/a.pdf"]


def test_a_dot_outboxd_made_a_link_to_an_empty_folder_is_named_not_taken_for_a_share_away(
        tmp_path: Path) -> None:
    """`.outboxd` replaced by a link to a folder without the work folder: the archive
    neither looks for the work folder behind the link ("processing folder is not there
    (is the share mounted?)") nor archives anything; OSError naming `.outboxd`."""
    (tmp_path / "empty" / "processing").mkdir(parents=True)
    caught, real = _placed_behind_a_linked_dot_outboxd(tmp_path, tmp_path / "empty")
    assert "share mounted" not in str(caught.value)
    assert _listing(real) == ["INV-1", "INV-1.xml", "INV-1/a.pdf"]


def test_a_dot_outboxd_made_a_link_to_itself_is_named_not_a_bare_link_loop(
        tmp_path: Path) -> None:
    """`.outboxd` replaced by a link that leads to itself: the look at the work folder by
    its path failed with ELOOP, which the strict look (EIO is no answer) raised as it
    was — "Too many levels of symbolic links" of the work folder, the link unnamed —
    before the look for a link on the way that names `.outboxd` and the fix. The archive
    names `.outboxd`, and the bundle stays where it is."""
    caught, real = _placed_behind_a_linked_dot_outboxd(
        tmp_path, tmp_path / "outbox" / ".outboxd")
    assert "never follows a link" in str(caught.value)
    assert _listing(real) == ["INV-1", "INV-1.xml", "INV-1/a.pdf"]


@pytest.mark.parametrize("made", [False, True], ids=["new-archive", "archive-there"])
def test_an_archive_folder_inside_the_outbox_is_never_reached_through_a_link_there(
        tmp_path: Path, made: bool) -> None:
    """[paths] sent inside the outbox (OUTBOX/archive/sent): a share user who replaced
    OUTBOX/archive by a link to a folder outside has no bundle moved out of the outbox
    where it leads, nor a folder made there; OSError naming the link, the bundle stays
    in its work folder. With the folder itself back, it is archived (its folders made
    from the outbox down where missing)."""
    outbox = tmp_path / "outbox"
    work = _work(outbox / ".outboxd")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    if made:
        (elsewhere / "sent" / "2026-01-01").mkdir(parents=True)
    (outbox / "archive").symlink_to(elsewhere)
    target = outbox / "archive" / "sent" / "2026-01-01" / "INV-1--0123"
    with pytest.raises(OSError) as caught:
        archive.place(work, target, PAPERS, BID, within=outbox)
    assert caught.value.filename == str(outbox / "archive")
    assert _listing(elsewhere) == (["sent", "sent/2026-01-01"] if made else [])
    assert _listing(work)[:3] == ["INV-1", "INV-1.xml", "INV-1/a.pdf"]
    (outbox / "archive").unlink()
    placed = archive.place(work, target, PAPERS, BID, within=outbox)
    assert placed == target and (target / "INV-1.xml").read_bytes() == b"<Invoice/>"
    assert not os.path.lexists(work)


def test_an_archive_folder_outside_the_outbox_made_a_link_is_never_written_through(
        tmp_path: Path) -> None:
    """[paths] sent outside the outbox, its folder replaced by a link (to a folder
    anywhere): no day folder is made, nor the bundle moved, where it leads; OSError
    naming the link, and the bundle stays in its work folder."""
    work = _work(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "sent").symlink_to(elsewhere)
    target = tmp_path / "sent" / "2026-01-01" / "INV-1--0123"
    with pytest.raises(OSError) as caught:
        archive.place(work, target, PAPERS, BID)
    assert caught.value.filename == str(tmp_path / "sent")
    assert _listing(elsewhere) == []
    assert _listing(work)[:3] == ["INV-1", "INV-1.xml", "INV-1/a.pdf"]
