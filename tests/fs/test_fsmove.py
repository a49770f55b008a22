"""Moving safely (fsmove.py): one rename on one file system, copy + fsync + rename +
delete across file systems, never replacing a target; the copy under way named for its
daemon, and only what was copied removed. How the copy itself treats links, FIFOs and
deep trees: test_fscopy.py."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from exdev import exdev_once, exdev_then

from daemon.fs import fsdepth, fsmove
from daemon.fs.fsmove import move_tree


class TestMoveTree:
    def _tree(self, root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    def test_same_file_system_is_one_rename(self, tmp_path: Path) -> None:
        """On one file system the folder is renamed (same inode), parents created."""
        src = tmp_path / "src"
        (src / "sub").mkdir(parents=True)
        (src / "sub" / "f").write_bytes(b"1")
        ino = src.stat().st_ino
        dst = tmp_path / "a" / "b" / "dst"
        move_tree(src, dst)
        assert dst.stat().st_ino == ino and not src.exists()

    def test_never_replaces_existing_target(self, tmp_path: Path) -> None:
        """An existing dst is an error; the source is untouched."""
        (tmp_path / "src").mkdir()
        (tmp_path / "src" / "f").write_bytes(b"1")
        (tmp_path / "dst").mkdir()
        with pytest.raises(FileExistsError):
            move_tree(tmp_path / "src", tmp_path / "dst")
        assert (tmp_path / "src" / "f").exists()

    def test_folder_across_file_systems(self, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
        """EXDEV: the copy is complete (nested files, bytes, a symlink kept as a link, not
        followed), the source is gone and no temp folder is left."""
        src = tmp_path / "src"
        (src / "INV-1" / "INV-2").mkdir(parents=True)
        (src / "INV-1.xml").write_bytes(b"<Invoice/>")
        (src / "INV-1" / "INV-2" / "c.pdf").write_bytes(os.urandom(100_000))
        (src / "INV-1" / "link.pdf").symlink_to("/etc/passwd")
        expected = self._tree(src)
        calls = exdev_once(monkeypatch)
        dst = tmp_path / "archive" / "day" / "INV-1--x"
        move_tree(src, dst)
        monkeypatch.undo()
        assert len(calls) >= 2  # the copy was renamed into place
        assert not src.exists()
        assert (dst / "INV-1" / "link.pdf").is_symlink()
        assert os.readlink(dst / "INV-1" / "link.pdf") == "/etc/passwd"
        got = {k: v for k, v in self._tree(dst).items() if k != "INV-1/link.pdf"}
        assert got == {k: v for k, v in expected.items() if k != "INV-1/link.pdf"}
        assert os.listdir(dst.parent) == ["INV-1--x"]

    def test_single_file_across_file_systems(self, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
        """A single file moved across file systems: copied, source removed."""
        src = tmp_path / "f.xml"
        src.write_bytes(b"data")
        exdev_once(monkeypatch)
        move_tree(src, tmp_path / "out" / "f.xml")
        monkeypatch.undo()
        assert (tmp_path / "out" / "f.xml").read_bytes() == b"data" and not src.exists()
        assert os.listdir(tmp_path / "out") == ["f.xml"]

    def test_stale_partial_copy_is_replaced(self, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
        """A leftover partial copy from a crashed attempt does not end up in dst."""
        src = tmp_path / "src"
        src.mkdir()
        (src / "f").write_bytes(b"new")
        dst = tmp_path / "out" / "dst"
        stale = dst.with_name(".dst.partial")
        stale.mkdir(parents=True)
        (stale / "junk").write_bytes(b"junk")
        exdev_once(monkeypatch)
        move_tree(src, dst)
        monkeypatch.undo()
        assert sorted(os.listdir(dst)) == ["f"]
        assert os.listdir(dst.parent) == ["dst"]

    def test_a_daemon_replaces_its_own_leftover_copy_and_never_anothers(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The copy under way is named for its daemon (partial_name's tag): a retry after a
        crash mid-copy replaces that daemon's own leftover, while another daemon's copy to
        the same name (under way on another host sharing the archive) is left as it is."""
        src = tmp_path / "src"
        src.mkdir()
        (src / "f").write_bytes(b"new")
        dst = tmp_path / "out" / "dst"
        mine, theirs = (fsmove.partial_name(dst, t) for t in ("hosta-aaaaaa", "hostb-bbbbbb"))
        for partial in (mine, theirs):
            partial.mkdir(parents=True)
            (partial / "f").write_bytes(b"half")
        exdev_once(monkeypatch)
        move_tree(src, dst, tag="hosta-aaaaaa")
        monkeypatch.undo()
        assert sorted(os.listdir(dst)) == ["f"] and (dst / "f").read_bytes() == b"new"
        assert sorted(os.listdir(dst.parent)) == [".dst.hostb-bbbbbb.partial", "dst"]
        assert (theirs / "f").read_bytes() == b"half"

    def test_the_copy_name_of_a_long_entry_an_older_version_named_fits_and_is_its_own(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An archive entry journaled by a version before the per-daemon copy names is up
        to 244 bytes long: its copy under way, with the longest tag, is cut to fit one
        path component (else 'File name too long' on every try), the same each time, and
        two entries that differ only past the cut get two copy names."""
        tag = "h" * 32 + "-abcdef"
        one, two = (tmp_path / "out" / ("L" * 226 + f"--{i}0123456789a-999") for i in (1, 2))
        names = [fsmove.partial_name(d, tag).name for d in (one, two, one)]
        assert all(len(n.encode()) <= 255 and n.endswith(f".{tag}.partial") for n in names)
        assert names[0] == names[2] != names[1]
        src = tmp_path / "src"
        src.mkdir()
        (src / "f").write_bytes(b"new")
        exdev_once(monkeypatch)
        move_tree(src, one, tag=tag)
        monkeypatch.undo()
        assert os.listdir(one.parent) == [one.name] and (one / "f").read_bytes() == b"new"

    def test_a_copy_whose_day_folder_is_replaced_meanwhile_is_removed_where_it_was_made(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """One who may write in sent/ renames the day folder away while a bundle is copied
        into it and makes a new one of that name: the rename into place is refused (tried
        again later), and the copy under way, made in the folder that was renamed, was
        then looked for by its path in the new one: a whole bundle's copy stayed hidden in
        the renamed folder for good. It is removed from the folder it was made in."""
        src = tmp_path / "work" / "INV-1--x"
        (src / "INV-1").mkdir(parents=True)
        (src / "INV-1.xml").write_bytes(b"<Invoice/>")
        (src / "INV-1" / "a.pdf").write_bytes(b"%PDF-1.4 a")
        day = tmp_path / "sent" / "2026-01-05"
        dst = day / "INV-1--x"

        def replace_day() -> None:
            day.rename(day.with_name("renamed"))
            day.mkdir()
        exdev_then(monkeypatch, replace_day)
        with pytest.raises(OSError):
            move_tree(src, dst, tag="hosta-aaaaaa")
        monkeypatch.undo()
        assert os.listdir(day) == [] and os.listdir(day.with_name("renamed")) == []
        assert sorted(str(p.relative_to(src)) for p in src.rglob("*")) == [
            "INV-1", "INV-1.xml", "INV-1/a.pdf"]

    def test_other_errors_propagate(self, tmp_path: Path) -> None:
        """A missing source is an error, not a silent success."""
        with pytest.raises(OSError):
            move_tree(tmp_path / "missing", tmp_path / "dst")


class TestWhatCameDuringACopy:
    """Across file systems the source is removed after its copy: only what was copied
    goes; a file a person put into (or saved again in) the source meanwhile is kept."""

    def _bundle(self, root: Path) -> Path:
        src = root / "quarantine" / "INV-1--x"
        (src / "INV-1").mkdir(parents=True)
        (src / "INV-1.xml").write_bytes(b"<Invoice/>")
        (src / "INV-1" / "a.pdf").write_bytes(b"%PDF-1.4 a")
        return src

    def _move_writing(self, root: Path, monkeypatch: pytest.MonkeyPatch, rel: str,
                      data: bytes) -> tuple[Path, Path, list[Path]]:
        """The bundle moved across file systems while its file `rel` is written with `data`
        during the copy: (that file in the source, the destination, what move_tree left)."""
        src = self._bundle(root)
        written = src / rel
        exdev_then(monkeypatch, lambda: written.write_bytes(data))
        dst = root / "outbox" / "INV-1--x"
        left = move_tree(src, dst)
        monkeypatch.undo()
        return written, dst, left

    def test_a_file_dropped_into_the_sidecar_during_the_copy_is_kept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        late, dst, left = self._move_writing(tmp_path, monkeypatch, "INV-1/late.pdf",
                                             b"%PDF-1.4 late")
        src = tmp_path / "quarantine" / "INV-1--x"
        assert late.read_bytes() == b"%PDF-1.4 late"
        assert left == [late]
        assert sorted(p.name for p in dst.rglob("*")) == ["INV-1", "INV-1.xml", "a.pdf"]
        assert not (src / "INV-1.xml").exists() and not (src / "INV-1" / "a.pdf").exists()

    def test_a_file_saved_again_during_the_copy_is_kept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        again, dst, left = self._move_writing(tmp_path, monkeypatch, "INV-1/a.pdf",
                                              b"%PDF-1.4 a, corrected")
        assert again.read_bytes() == b"%PDF-1.4 a, corrected"
        assert left == [again]
        assert (dst / "INV-1" / "a.pdf").read_bytes() == b"%PDF-1.4 a"

    def test_a_single_file_replaced_during_its_copy_is_kept(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        src = tmp_path / "q" / "INV-1.xml"
        src.parent.mkdir()
        src.write_bytes(b"<Invoice/>")

        def replaced() -> None:
            (tmp_path / "q" / "new").write_bytes(b"<Invoice>new</Invoice>")
            os.replace(tmp_path / "q" / "new", src)

        exdev_then(monkeypatch, replaced)
        left = move_tree(src, tmp_path / "out" / "INV-1.xml")
        monkeypatch.undo()
        assert src.read_bytes() == b"<Invoice>new</Invoice>" and left == [src]
        assert (tmp_path / "out" / "INV-1.xml").read_bytes() == b"<Invoice/>"

    def test_without_a_change_nothing_is_left(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        src = self._bundle(tmp_path)
        exdev_then(monkeypatch, lambda: None)
        assert move_tree(src, tmp_path / "outbox" / "INV-1--x") == []
        assert not src.exists()

    def test_two_names_of_one_file_are_both_removed_once_copied(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """One PDF hard-linked into two invoices' folders (an ERP's `cp -l`, a clerk's
        `ln`): both names are copied, and both go. Unlinking the first changes the
        file's ctime (its link count), which is no change a person made: the second
        name is not kept as if saved again during the copy."""
        src = self._bundle(tmp_path)
        (src / "INV-2").mkdir()
        os.link(src / "INV-1" / "a.pdf", src / "INV-2" / "a.pdf")
        exdev_then(monkeypatch, lambda: None)
        dst = tmp_path / "outbox" / "INV-1--x"
        assert move_tree(src, dst) == []
        monkeypatch.undo()
        assert not src.exists()
        assert (dst / "INV-2" / "a.pdf").read_bytes() == b"%PDF-1.4 a"


def test_a_held_folder_moved_away_is_emptied_and_the_folder_at_its_name_left(
        tmp_path: Path) -> None:
    """remove_held removes what was copied from the folder held, and the folder by its
    name only while that name is still it: moved away, ours stays empty where it went,
    and an empty folder someone made at its name since is not removed."""
    work = tmp_path / "INV-1--x"
    work.mkdir()
    (work / "INV-1.xml").write_bytes(b"<Invoice/>")
    held = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        copied = {"./INV-1.xml": fsmove.identity(os.lstat(work / "INV-1.xml"))}
        work.rename(tmp_path / "moved")
        work.mkdir()
        assert fsmove.remove_held(work, held, copied) == []
    finally:
        os.close(held)
    assert os.listdir(tmp_path / "moved") == [] and work.is_dir()


def test_a_new_ctime_is_a_change_unless_the_file_lost_a_name(tmp_path: Path) -> None:
    """unchanged: a file whose ctime moved while it kept its names (saved again with its
    size and mtime put back, as `rsync -t` or `touch -r` do) was changed, and is kept;
    one whose ctime moved as it lost a name (its copied twin removed) was not."""
    then = os.stat_result((0o100640, 7, 1, 2, 0, 0, 10, 0, 0, 0,
                           0.0, 0.0, 0.0, 0, 5_000, 6_000))
    assert fsmove.identity(then) == (7, 10, 5_000, 6_000, 2)

    def now(ctime_ns: int, nlink: int) -> os.stat_result:
        return os.stat_result((0o100640, 7, 1, nlink, 0, 0, 10, 0, 0, 0,
                               0.0, 0.0, 0.0, 0, 5_000, ctime_ns))
    assert fsmove.unchanged(fsmove.identity(then), now(6_000, 2))
    assert fsmove.unchanged(fsmove.identity(then), now(9_000, 1))
    assert not fsmove.unchanged(fsmove.identity(then), now(9_000, 2))
    assert not fsmove.unchanged(None, now(6_000, 2))


def test_a_leftover_copy_a_thousand_deep_is_refused_naming_it_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deep_tree: object) -> None:
    """A folder at this daemon's copy-under-way name holding folders 1,100 deep (no copy
    of ours is deeper than fsdepth.DEPTH_MAX: someone made it there) was removed by
    shutil.rmtree before the copy, which ran out of Python's recursion limit: a
    traceback on every try, half of it removed. The move is refused, naming it and the
    bound; it and the source stay whole."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"new")
    dst = tmp_path / "out" / "dst"
    partial = fsmove.partial_name(dst, "hosta-aaaaaa")
    partial.mkdir(parents=True)
    deep_tree(partial, 1100)  # type: ignore[operator]
    exdev_once(monkeypatch)
    with pytest.raises(OSError, match="more than 64 deep") as raised:
        move_tree(src, dst, tag="hosta-aaaaaa")
    monkeypatch.undo()
    assert raised.value.filename == str(partial)
    assert (src / "f").read_bytes() == b"new" and not os.path.lexists(dst)
    assert (partial / ("d/" * 1100) / "f.pdf").exists()  # 2,200 bytes: within PATH_MAX


def test_a_leftover_copy_made_a_thousand_deep_during_its_removal_is_refused_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, deep_tree: Any) -> None:
    """The same leftover, shallow when looked at and nested 1,100 deep by whoever may
    write there before shutil.rmtree reaches it: a RecursionError went up through the
    move (a traceback, the bundle's move never retried as an OSError). The move is
    refused naming it and the bound; the source stays whole."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"new")
    dst = tmp_path / "out" / "dst"
    partial = fsmove.partial_name(dst, "hosta-aaaaaa")
    (partial / "a").mkdir(parents=True)
    real = fsdepth.fwalk_bounded

    def looked_then_nested(*args: Any, **kwargs: Any) -> Iterator[Any]:
        yield from real(*args, **kwargs)
        deep_tree(partial / "a", 1100)
    monkeypatch.setattr(fsdepth, "fwalk_bounded", looked_then_nested)
    monkeypatch.setattr(fsmove, "fwalk_bounded", looked_then_nested, raising=False)
    exdev_once(monkeypatch)
    with pytest.raises(OSError, match="more than 64 deep") as raised:
        move_tree(src, dst, tag="hosta-aaaaaa")
    monkeypatch.undo()
    assert raised.value.filename == str(partial)
    assert (src / "f").read_bytes() == b"new" and not os.path.lexists(dst)


class TestAFileDroppedAsTheCopiedFolderIsRemoved:
    """remove_held empties a folder of what was copied, then removes the folder itself:
    a file a clerk drops into it between the two is kept, with its folder, and named as
    left over — never lost with a folder taken for empty."""

    def _removed_dropping(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          into: str) -> tuple[Path, list[Path]]:
        """A work folder (INV-1.xml, INV-1/a.pdf) copied whole, then removed while a
        late.pdf is dropped into its folder `into` (relative) just before that folder's
        own removal: (the work folder, what remove_held left)."""
        work = tmp_path / "INV-1--x"
        (work / "INV-1").mkdir(parents=True)
        (work / "INV-1.xml").write_bytes(b"<Invoice/>")
        (work / "INV-1" / "a.pdf").write_bytes(b"%PDF-1.4 a")
        copied = {f"./{rel}": fsmove.identity(os.lstat(work / rel))
                  for rel in ("INV-1.xml", "INV-1", "INV-1/a.pdf")}
        target = work / into
        real_rmdir = os.rmdir

        def rmdir_after_a_drop(path: Any, *, dir_fd: int | None = None) -> None:
            at = Path(path) if dir_fd is None else Path(f"/proc/self/fd/{dir_fd}", path)
            if at.resolve() == target.resolve() and not (target / "late.pdf").exists():
                (target / "late.pdf").write_bytes(b"%PDF-1.4 late")
            real_rmdir(path, dir_fd=dir_fd)

        monkeypatch.setattr(os, "rmdir", rmdir_after_a_drop)
        held = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
        try:
            left = fsmove.remove_held(work, held, copied)
        finally:
            os.close(held)
            monkeypatch.undo()
        return work, left

    def test_a_file_dropped_into_the_sidecar_before_its_removal_keeps_it(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        work, left = self._removed_dropping(tmp_path, monkeypatch, "INV-1")
        assert left == [work / "INV-1"]
        assert (work / "INV-1" / "late.pdf").read_bytes() == b"%PDF-1.4 late"
        assert not (work / "INV-1.xml").exists() and not (work / "INV-1" / "a.pdf").exists()

    def test_a_file_dropped_into_the_work_folder_before_its_removal_keeps_it(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        work, left = self._removed_dropping(tmp_path, monkeypatch, ".")
        assert left == [work]
        assert os.listdir(work) == ["late.pdf"]
        assert (work / "late.pdf").read_bytes() == b"%PDF-1.4 late"


def test_a_copy_swapped_for_anothers_folder_as_it_is_renamed_is_never_put_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Across file systems, one who may write in the archive's day folder swaps the copy
    under way for a folder of theirs between the last look at it and its rename into
    place: what the rename put at the entry's name is not the copy, so it goes back
    under the copy's name at once (outboxd's own dot-name, emptied as at each try's
    start), nothing is left at the entry's name, the move fails with EAGAIN (tried again
    later) and the source is kept whole."""
    src = tmp_path / "work" / "INV-1--x"
    (src / "INV-1").mkdir(parents=True)
    (src / "INV-1.xml").write_bytes(b"<Invoice/>")
    (src / "INV-1" / "a.pdf").write_bytes(b"%PDF-1.4 a")
    day = tmp_path / "sent" / "2026-01-05"
    dst = day / "INV-1--x"
    real_rename_into = fsmove._rename_into
    swapped: list[str] = []

    def swapped_first(s: Path, d: Path, into: int | None, src_too: bool = False) -> None:
        if src_too and not swapped:
            at = day if into is None else Path(f"/proc/self/fd/{into}")
            swapped.append(s.name)
            os.rename(at / s.name, tmp_path / "ours-moved-away")
            (at / s.name).mkdir()
            (at / s.name / "theirs.txt").write_bytes(b"theirs")
        real_rename_into(s, d, into, src_too)

    exdev_then(monkeypatch, lambda: None)
    monkeypatch.setattr(fsmove, "_rename_into", swapped_first)
    with pytest.raises(OSError) as info:
        move_tree(src, dst, tag="hosta-aaaaaa")
    monkeypatch.undo()
    assert info.value.errno == errno.EAGAIN and "nothing was put in place" in str(info.value)
    assert swapped and os.listdir(day) == []
    assert sorted(str(p.relative_to(src)) for p in src.rglob("*")) == [
        "INV-1", "INV-1.xml", "INV-1/a.pdf"]
