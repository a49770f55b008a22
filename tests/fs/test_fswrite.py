"""Writing safely: atomic writes, no-replace renames, the folders checked for links."""

from __future__ import annotations

import ctypes
import errno
import os
from pathlib import Path

import pytest

from daemon.fs import fswrite
from daemon.fs.fsdepth import DEPTH_MAX
from daemon.fs.fswrite import (
    folders_below,
    free_name,
    make_folders_below,
    rename_noreplace,
    write_atomic,
    write_json,
)


class TestWriteAtomic:
    def test_write_atomic_replaces_a_link_at_the_target_without_following_it(
            self, tmp_path: Path) -> None:
        """A symlink where NAME.errors.txt goes is replaced by our file; its target is
        never written."""
        outside = tmp_path / "outside.txt"
        outside.write_bytes(b"precious")
        (tmp_path / "x.errors.txt").symlink_to(outside)
        write_atomic(tmp_path / "x.errors.txt", b"ours")
        assert outside.read_bytes() == b"precious"
        assert not (tmp_path / "x.errors.txt").is_symlink()
        assert (tmp_path / "x.errors.txt").read_bytes() == b"ours"

    def test_writes_and_leaves_no_temp(self, tmp_path: Path) -> None:
        """write_atomic writes the whole file and leaves no temp file behind."""
        write_atomic(tmp_path / "a.txt", b"hello")
        assert (tmp_path / "a.txt").read_bytes() == b"hello"
        assert os.listdir(tmp_path) == ["a.txt"]

    def test_replaces_existing(self, tmp_path: Path) -> None:
        """An existing file is replaced in one step."""
        (tmp_path / "a.txt").write_bytes(b"old content that is longer")
        write_atomic(tmp_path / "a.txt", b"new")
        assert (tmp_path / "a.txt").read_bytes() == b"new"
        assert os.listdir(tmp_path) == ["a.txt"]

    def test_write_json_utf8(self, tmp_path: Path) -> None:
        """write_json writes UTF-8 JSON (not \\u escapes) ending in a newline."""
        write_json(tmp_path / "r.json", {"name": "Tidrapport Å"})
        text = (tmp_path / "r.json").read_text("utf-8")
        assert "Å" in text and text.endswith("\n")


class TestNames:
    def test_free_name(self, tmp_path: Path) -> None:
        """free_name gives NAME, then NAME-2, NAME-3; a dangling link also counts as taken."""
        assert free_name(tmp_path, "x") == tmp_path / "x"
        (tmp_path / "x").mkdir()
        assert free_name(tmp_path, "x") == tmp_path / "x-2"
        (tmp_path / "x-2").symlink_to(tmp_path / "missing")
        assert free_name(tmp_path, "x") == tmp_path / "x-3"

    def test_never_replaces_a_file_that_appears_at_the_target(self, tmp_path: Path) -> None:
        """rename_noreplace refuses an existing file target and leaves both files as they were."""
        (tmp_path / "a").write_bytes(b"ours")
        (tmp_path / "b").write_bytes(b"theirs")
        with pytest.raises(FileExistsError):
            fswrite.rename_noreplace(tmp_path / "a", tmp_path / "b")
        assert (tmp_path / "b").read_bytes() == b"theirs"
        assert (tmp_path / "a").read_bytes() == b"ours"

    @pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
    def test_where_the_file_system_has_no_such_rename_it_checks_then_renames(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """A file system without renameat2's no-replace (NFS, SMB answer EINVAL or
        EOPNOTSUPP; an old kernel ENOSYS) falls back to a look then a rename: a free name is
        taken, and anything at the target, a dangling link too, is never replaced."""
        def unsupported(*args: object) -> int:
            ctypes.set_errno(code)
            return -1
        monkeypatch.setattr(fswrite, "_renameat2", unsupported)
        (tmp_path / "a").write_bytes(b"ours")
        (tmp_path / "b").symlink_to(tmp_path / "missing")
        with pytest.raises(FileExistsError):
            rename_noreplace(tmp_path / "a", tmp_path / "b")
        assert (tmp_path / "b").is_symlink() and (tmp_path / "a").read_bytes() == b"ours"
        rename_noreplace(tmp_path / "a", tmp_path / "c")
        assert (tmp_path / "c").read_bytes() == b"ours" and not (tmp_path / "a").exists()


def test_the_folders_checked_for_links_are_those_inside_the_outbox_only(
        tmp_path: Path) -> None:
    """Inside the outbox every folder down to the one written is checked (anyone on the
    share may put a link there); outside, only the folder itself (its parents are the
    admin's choice)."""
    outbox = tmp_path / "outbox"
    assert folders_below(outbox, outbox / ".outboxd" / "processing") == [
        outbox / ".outboxd", outbox / ".outboxd" / "processing"]
    assert folders_below(outbox, tmp_path / "srv" / "sent") == [tmp_path / "srv" / "sent"]


def test_rename_exchange_swaps_two_files_in_one_step(tmp_path: Path) -> None:
    """rename_exchange swaps what two names hold (each file keeps its inode); with one of
    them missing it fails and nothing moves."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"A")
    b.write_bytes(b"B")
    inode_a = os.lstat(a).st_ino
    assert fswrite.rename_exchange(a, b)
    assert a.read_bytes() == b"B" and b.read_bytes() == b"A"
    assert os.lstat(b).st_ino == inode_a
    with pytest.raises(FileNotFoundError):
        fswrite.rename_exchange(a, tmp_path / "missing")
    assert a.read_bytes() == b"B" and sorted(os.listdir(tmp_path)) == ["a", "b"]


def test_group_write_below_a_tree_a_thousand_deep_is_refused_past_the_bound_not_a_traceback(
        tmp_path: Path, deep_tree) -> None:
    """`outboxd retry` gives a bundle put back into the outbox group write on every
    folder (fwalk): below a quarantined sidecar holding folders 1,100 deep it ran out of
    Python's recursion limit, a traceback after the bundle had moved, its papers left in
    quarantine. The folders down to fsdepth.DEPTH_MAX get it; then an OSError naming the
    folder and the bound."""
    top = tmp_path / "INV-1"
    top.mkdir(mode=0o750)
    deep_tree(top, 1100)
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError, match=f"more than {DEPTH_MAX} deep") as raised:
            fswrite.add_group_write_below(fd, top)
    finally:
        os.close(fd)
    assert raised.value.filename == str(top)
    assert top.stat().st_mode & 0o020 and (top / "d" / "d").stat().st_mode & 0o020


def test_a_folder_made_is_synced_into_its_parent_once_after_it_is_made(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """make_folders_below (NAME.embedded/ in the work folder before a POST, NAME.converted/)
    made the folder without a sync of its parent: write_atomic syncs the file and the new
    folder, not the new folder's entry, so a power loss right after the POST could lose
    the folder with the document kept in it. Now the parent is synced after each mkdir,
    holding the new entry — once per folder made, none for one that was there already.
    (That the entry survives a power loss needs a real power cut; only the sync is seen.)"""
    work = tmp_path / "work"
    (work / "old").mkdir(parents=True)
    synced: list[tuple[int, frozenset[str]]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append((os.fstat(fd).st_ino, frozenset(os.listdir(fd))))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    os.close(make_folders_below(work, ["INV-1.embedded"]))
    assert synced == [(work.stat().st_ino, frozenset({"old", "INV-1.embedded"}))]
    synced.clear()
    os.close(make_folders_below(work, ["INV-1.embedded"]))  # the next document: no sync
    os.close(make_folders_below(work, ["old"]))
    assert synced == []
    os.close(make_folders_below(work, ["old", "a", "b"]))
    assert synced == [((work / "old").stat().st_ino, frozenset({"a"})),
                      ((work / "old" / "a").stat().st_ino, frozenset({"b"}))]


def test_made_is_told_only_of_the_folders_made_never_of_one_found_there(
        tmp_path: Path) -> None:
    """make_folders_below calls `made` with each folder it made, in order, and never with
    one found there (attach takes back what it made when it fails: a clerk's own folder,
    told as made, would be removed)."""
    (tmp_path / "INV-1").mkdir()
    made: list[int] = []
    os.close(make_folders_below(tmp_path, ["INV-1", "ID", "sub"],
                                lambda fd: made.append(os.fstat(fd).st_ino)))
    assert made == [(tmp_path / "INV-1" / "ID").stat().st_ino,
                    (tmp_path / "INV-1" / "ID" / "sub").stat().st_ino]


def test_a_folder_whose_parent_cannot_be_synced_is_taken_back_and_synced_at_the_next_try(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The parent's sync failing (EIO on a share) left the folder made: the next try (a
    delivery's retry) found it there and never synced its entry, and attach, which
    removes only the folders it was told it made, left an empty sidecar behind while
    saying nothing was changed. Now the folder just made is removed again before the
    error, so the next try makes it anew and syncs its parent."""
    import errno

    work = tmp_path / "work"
    work.mkdir()
    synced: list[int] = []
    real = os.fsync

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing)
    with pytest.raises(OSError, match="Input/output"):
        make_folders_below(work, ["INV-1.embedded"])
    assert os.listdir(work) == []

    def fsync(fd: int) -> None:
        synced.append(os.fstat(fd).st_ino)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    os.close(make_folders_below(work, ["INV-1.embedded"]))
    assert synced == [work.stat().st_ino]


def test_a_write_syncs_its_file_before_the_rename_and_its_folder_after(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """write_atomic syncs the temp holding the bytes before it takes the name, then the
    folder holding the new name; with sync=False neither (its caller syncs both). That
    a power loss then keeps them needs a power cut: only the syncs are seen here."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(tmp_path / "a.txt", b"x")
    [temp, folder] = synced
    assert os.path.basename(temp).startswith(".a.txt.tmp-") and folder == str(tmp_path)
    synced.clear()
    write_atomic(tmp_path / "b.txt", b"x", sync=False)
    assert synced == []


def test_without_renameat2_a_failed_rename_into_a_held_folder_names_both_paths_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a share without renameat2 (NFS, SMB) the rename is a plain one by the held
    folder's descriptor, and its error held the bare name of the destination: the line
    for a refused move into sent/'s day folder then looked at the daemon's working
    folder ("." — under systemd "/") and told the admin to make that writable. The
    error names src and dst by their paths, as renameat2's does."""
    monkeypatch.setattr(fswrite, "_renameat2", None)
    src, day = tmp_path / "processing" / "INV-1--abc", tmp_path / "sent" / "2031-05-06"
    day.mkdir(parents=True)
    src.parent.mkdir()  # src itself is not there: the rename fails (ENOENT)
    held = os.open(day, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileNotFoundError) as caught:
            rename_noreplace(src, day / src.name, None, held)
    finally:
        os.close(held)
    assert os.fsdecode(caught.value.filename) == str(src)
    assert os.fsdecode(caught.value.filename2) == str(day / src.name)
