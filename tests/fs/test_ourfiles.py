"""Replacing and removing outboxd's own files on the share (daemon/fs/ourfiles.py): a file
a person puts at the name between outboxd's look and its rename or unlink survives byte
for byte. The race is made deterministic: the look itself lets the person in, right
after it judged the name free or outboxd's."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from daemon.errors import NotOurs
from daemon.fs import ourfiles
from daemon.fs.ourfiles import Judged, remove_ours, replace_ours

OURS = b"<!-- written by outboxd -->"
THEIRS = b"the clerk's own notes, kept"


def judging(path: Path, then: Callable[[], None] | None = None) -> Callable[[], Judged | None]:
    """A look: nothing there → None; our mark → the file, open; else NotOurs. `then` runs
    once, right after the first look judged (the person's move in the window)."""
    pending = [then] if then else []

    def look() -> Judged | None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            judged = None
        else:
            if os.pread(fd, 100, 0) != OURS:
                os.close(fd)
                raise NotOurs(f"{path.name}: not ours")
            judged = Judged.of(fd)
        if pending:
            pending.pop()()
        return judged

    return look


def clerk_puts_theirs(path: Path, how: str) -> Callable[[], None]:
    """The person's file at `path`: saved over it (a new file renamed there), or ours
    deleted first and theirs made anew (the inode may be reused), or written in place."""
    def act() -> None:
        if how == "rename":
            (path.parent / "draft").write_bytes(THEIRS)
            os.rename(path.parent / "draft", path)
        elif how == "delete-then-create":
            path.unlink(missing_ok=True)
            path.write_bytes(THEIRS)
        else:
            path.write_bytes(THEIRS)  # in place: same inode, new content
    return act


def names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


class TestReplaceOurs:
    def test_replaces_outboxds_own_file_and_leaves_no_temp(self, tmp_path: Path) -> None:
        """The normal path: our file at the name is replaced whole; the stat returned is
        that of the file now at the name."""
        page = tmp_path / "status.html"
        page.write_bytes(OURS)
        written = replace_ours(page, OURS + b"new", judging(page))
        assert page.read_bytes() == OURS + b"new"
        assert (written.st_dev, written.st_ino) == (os.lstat(page).st_dev,
                                                   os.lstat(page).st_ino)
        assert names(tmp_path) == ["status.html"]

    def test_writes_where_nothing_is_and_refuses_a_persons_file(self, tmp_path: Path) -> None:
        """Nothing at the name: written. A person's file there: the look refuses, the file
        is untouched and no temp stays."""
        page = tmp_path / "status.html"
        replace_ours(page, OURS, judging(page))
        assert page.read_bytes() == OURS
        page.write_bytes(THEIRS)
        with pytest.raises(NotOurs):
            replace_ours(page, OURS, judging(page))
        assert page.read_bytes() == THEIRS and names(tmp_path) == ["status.html"]

    @pytest.mark.parametrize("how", ["rename", "delete-then-create", "in-place"])
    def test_a_persons_file_put_over_ours_after_the_look_survives(
            self, tmp_path: Path, how: str) -> None:
        """Ours was judged; before the rename a clerk saves a file of that name: it is
        exchanged back at once, looked at again and refused, byte for byte as it was."""
        page = tmp_path / "status.html"
        page.write_bytes(OURS)
        with pytest.raises(NotOurs):
            replace_ours(page, OURS + b"new", judging(page, clerk_puts_theirs(page, how)))
        assert page.read_bytes() == THEIRS
        assert names(tmp_path) == ["status.html"]

    def test_a_persons_file_put_where_nothing_was_after_the_look_survives(
            self, tmp_path: Path) -> None:
        """The name was free when looked at; a clerk's file comes before the rename: the
        rename does not replace it, and the next look refuses it."""
        page = tmp_path / "status.html"
        with pytest.raises(NotOurs):
            replace_ours(page, OURS, judging(page, clerk_puts_theirs(page, "in-place")))
        assert page.read_bytes() == THEIRS and names(tmp_path) == ["status.html"]

    def test_without_an_exchange_the_file_is_replaced_as_before(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file system without RENAME_EXCHANGE (NFS, SMB): ours is still replaced (a
        rename right after the look), and a person's file is still refused by the look."""
        monkeypatch.setattr(ourfiles, "rename_exchange", lambda a, b: False)
        page = tmp_path / "status.html"
        page.write_bytes(OURS)
        replace_ours(page, OURS + b"new", judging(page))
        assert page.read_bytes() == OURS + b"new" and names(tmp_path) == ["status.html"]
        page.write_bytes(THEIRS)
        with pytest.raises(NotOurs):
            replace_ours(page, OURS, judging(page))
        assert page.read_bytes() == THEIRS

    def test_a_persons_file_that_cannot_be_exchanged_back_is_kept_beside_it(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Should the exchange back fail, the person's file is not left under the temp's
        name (a sweep would remove it): it is kept at a free name beside, and the error
        says which."""
        fail_after_first_exchange(monkeypatch)
        page = tmp_path / "status.html"
        page.write_bytes(OURS)
        with pytest.raises(OSError, match="is kept as status.html-2"):
            replace_ours(page, OURS + b"new", judging(page, clerk_puts_theirs(page, "rename")))
        assert (tmp_path / "status.html-2").read_bytes() == THEIRS
        assert page.read_bytes() == OURS + b"new"
        assert names(tmp_path) == ["status.html", "status.html-2"]

    def test_a_persons_file_that_cannot_be_moved_at_all_is_never_removed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Should no rename put it back either, the person's file stays where the exchange
        put it, and the error says where: the temp is not removed then."""
        fail_after_first_exchange(monkeypatch)

        def no_rename(src: Path, dst: Path) -> None:
            raise OSError(errno.EIO, "Input/output error")

        monkeypatch.setattr(ourfiles, "rename_noreplace", no_rename)
        page = tmp_path / "status.html"
        page.write_bytes(OURS)
        with pytest.raises(OSError, match="could not be put back") as raised:
            replace_ours(page, OURS + b"new", judging(page, clerk_puts_theirs(page, "rename")))
        [kept] = [n for n in names(tmp_path) if n != "status.html"]
        assert kept in str(raised.value)
        assert (tmp_path / kept).read_bytes() == THEIRS


def fail_after_first_exchange(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every exchange after the first fails, as an I/O error would."""
    real = ourfiles.rename_exchange
    calls: list[int] = []

    def exchange_once(a: Path, b: Path) -> bool:
        calls.append(1)
        if len(calls) > 1:
            raise OSError(errno.EIO, "Input/output error")
        return real(a, b)

    monkeypatch.setattr(ourfiles, "rename_exchange", exchange_once)


class TestRemoveOurs:
    def test_removes_outboxds_own_file_and_leaves_a_persons(self, tmp_path: Path) -> None:
        """The normal path: ours goes, nothing else is left; a person's file (the look says
        None) stays; nothing at the name is fine."""
        errors = tmp_path / "INV-1.errors.txt"
        errors.write_bytes(OURS)
        remove_ours(errors, judging(errors))
        assert names(tmp_path) == []
        remove_ours(errors, judging(errors))
        errors.write_bytes(THEIRS)

        def look() -> Judged | None:
            try:
                return judging(errors)()
            except NotOurs:
                return None
        remove_ours(errors, look)
        assert errors.read_bytes() == THEIRS and names(tmp_path) == ["INV-1.errors.txt"]

    @pytest.mark.parametrize("how", ["rename", "delete-then-create", "in-place"])
    def test_a_persons_file_put_over_ours_after_the_look_survives(
            self, tmp_path: Path, how: str) -> None:
        """Ours was judged; before the unlink a clerk saves a file of that name: it is put
        back under its name, byte for byte, and nothing else is left."""
        errors = tmp_path / "INV-1.errors.txt"
        errors.write_bytes(OURS)
        act = clerk_puts_theirs(errors, how)
        looks: list[int] = []

        def look() -> Judged | None:
            looks.append(1)
            try:
                return judging(errors, act if len(looks) == 1 else None)()
            except NotOurs:
                return None
        remove_ours(errors, look)
        assert errors.read_bytes() == THEIRS
        assert names(tmp_path) == ["INV-1.errors.txt"]
        assert len(looks) == 2  # looked at again after the put-back


def changed_after_each_look(path: Path) -> Callable[[], Judged | None]:
    """A look that judges the file ours, after which, each time, someone saves a new
    file of that content over it (a new inode: never the file judged)."""
    def look() -> Judged | None:
        judged = judging(path)()
        (path.parent / "draft").write_bytes(OURS)
        os.rename(path.parent / "draft", path)
        return judged
    return look


class TestChangedAtEachTry:
    """A name whose file changes after every look is given up after a few tries with
    EAGAIN naming it (tried again at the next write or removal), and whatever is at the
    name then stays, with no temp left beside it."""

    def test_a_replace_gives_up_and_leaves_the_file_last_put_there(
            self, tmp_path: Path) -> None:
        page = tmp_path / "status.html"
        page.write_bytes(OURS)
        with pytest.raises(OSError) as info:
            replace_ours(page, OURS + b"new", changed_after_each_look(page))
        assert info.value.errno == errno.EAGAIN and info.value.filename == str(page)
        assert "at each of 3 tries" in str(info.value)
        assert page.read_bytes() == OURS and names(tmp_path) == ["status.html"]

    def test_a_removal_gives_up_and_leaves_the_file_last_put_there(
            self, tmp_path: Path) -> None:
        errors = tmp_path / "INV-1.errors.txt"
        errors.write_bytes(OURS)
        with pytest.raises(OSError) as info:
            remove_ours(errors, changed_after_each_look(errors))
        assert info.value.errno == errno.EAGAIN and info.value.filename == str(errors)
        assert errors.read_bytes() == OURS and names(tmp_path) == ["INV-1.errors.txt"]
