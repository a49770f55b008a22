"""Inputs opened safely: no links, FIFOs, sockets or devices (reads: test_fsread.py)."""

from __future__ import annotations

import errno
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from helpers import raised, without_blocking
from swaps import opened_in, swap_for_link

from daemon.errors import HostileInput, InputError
from daemon.fs import fsops, namedreads, workfolder
from daemon.fs.fsops import folder_below, open_below, open_in, open_regular


class TestOpenRegular:
    def test_reads_regular_file(self, tmp_path: Path) -> None:
        """A regular file opens and reads normally."""
        f = tmp_path / "a.pdf"
        f.write_bytes(b"%PDF-1.7")
        with open_regular(f) as fh:
            assert fh.read() == b"%PDF-1.7"

    def test_refuses_symlink(self, tmp_path: Path) -> None:
        """A symbolic link (even to a regular file) is refused with code `symlink`."""
        real = tmp_path / "real.pdf"
        real.write_bytes(b"x")
        link = tmp_path / "link.pdf"
        link.symlink_to(real)
        with pytest.raises(HostileInput) as info:
            open_regular(link, "INV-1/link.pdf")
        assert info.value.code == "symlink" and info.value.file == "INV-1/link.pdf"

    def test_refuses_fifo_without_hanging(self, tmp_path: Path) -> None:
        """A FIFO is refused with code `not-a-file` at once (no writer: a plain open would
        block forever)."""
        fifo = tmp_path / "pipe.pdf"
        os.mkfifo(fifo)
        info = without_blocking(lambda: raised(lambda: open_regular(fifo)), fifo, "open_regular")
        assert isinstance(info, HostileInput)
        assert info.code == "not-a-file" and "FIFO" in info.message

    def test_a_reopen_through_proc_of_another_file_is_refused_never_read(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A file is read through /proc/self/fd only while that reopens the very file
        looked at: something mounted over /proc that hands back another file is refused
        (EXDEV, naming the fix), and that other file's bytes are never returned."""
        path = tmp_path / "a.pdf"
        path.write_bytes(b"%PDF-looked-at")
        other = tmp_path / "other.pdf"
        other.write_bytes(b"%PDF-other")
        real_open = os.open

        def proc_elsewhere(p: Any, flags: int, *args: Any, **kw: Any) -> int:
            if str(p).startswith("/proc/self/fd/"):
                return real_open(other, flags)
            return real_open(p, flags, *args, **kw)
        monkeypatch.setattr(fsops.os, "open", proc_elsewhere)
        with pytest.raises(OSError) as info:
            open_regular(path)
        assert info.value.errno == errno.EXDEV and "/proc is not the kernel's" in str(info.value)

    def test_refuses_directory(self, tmp_path: Path) -> None:
        """A directory is refused with code `not-a-file`."""
        (tmp_path / "d.pdf").mkdir()
        with pytest.raises(HostileInput) as info:
            open_regular(tmp_path / "d.pdf")
        assert info.value.code == "not-a-file" and "directory" in info.value.message

    def test_refuses_socket(self, tmp_path: Path) -> None:
        """A UNIX socket is refused (as not-a-file or unreadable), never read."""
        path = tmp_path / "s.pdf"
        s = socket.socket(socket.AF_UNIX)
        try:
            s.bind(str(path))
            with pytest.raises(InputError):
                open_regular(path)
        finally:
            s.close()

    def test_missing_file_is_input_error(self, tmp_path: Path) -> None:
        """A file that cannot be opened is an InputError `unreadable`, not an OSError."""
        with pytest.raises(InputError) as info:
            open_regular(tmp_path / "nope.pdf")
        assert info.value.code == "unreadable"

    @pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE, errno.EIO, errno.ESTALE])
    def test_a_fault_of_the_machine_or_share_is_no_finding_about_the_file(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """No descriptors left or a share gone is raised as the OSError it is, for the
        caller to try again; an "unreadable" finding would quarantine a good bundle for
        it. A permission error is the file's: a finding naming it and the fix."""
        path = tmp_path / "a.pdf"
        path.write_bytes(b"%PDF")

        def refuse(p: object, *args: object, **kw: object) -> int:
            raise OSError(code, os.strerror(code), str(p))
        monkeypatch.setattr(fsops.os, "open", refuse)
        with pytest.raises(OSError) as info:
            open_regular(path, "INV-1/a.pdf")
        assert not isinstance(info.value, InputError) and info.value.errno == code

        def deny(p: object, *args: object, **kw: object) -> int:
            raise PermissionError(errno.EACCES, "Permission denied", str(p))
        monkeypatch.setattr(fsops.os, "open", deny)
        with pytest.raises(InputError, match="check the file's permissions") as denied:
            open_regular(path, "INV-1/a.pdf")
        assert denied.value.code == "unreadable" and denied.value.file == "INV-1/a.pdf"


def test_only_a_regular_file_itself_is_a_regular_file(tmp_path: Path) -> None:
    """is_regular_file: a link to a regular file is none (never followed), nor a name
    too long for the file system (no ValueError or OSError out of it)."""
    (tmp_path / "a.pdf").write_bytes(b"%PDF")
    (tmp_path / "link.pdf").symlink_to(tmp_path / "a.pdf")
    assert fsops.is_regular_file(tmp_path / "a.pdf")
    assert not fsops.is_regular_file(tmp_path / "link.pdf")
    assert not fsops.is_regular_file(tmp_path / ("x" * 300))


class TestOpenBelow:
    """A bundle's files and folders, opened below the folder holding the invoice file (the
    outbox, or the work folder): that root as configured (it may be a link), every
    folder below it from the one above with O_NOFOLLOW, so no link is followed."""

    @pytest.fixture
    def root(self, tmp_path: Path) -> Path:
        (tmp_path / "outbox" / "INV-1" / "ID").mkdir(parents=True)
        (tmp_path / "outbox" / "INV-1" / "ID" / "a.pdf").write_bytes(b"%PDF-inside")
        (tmp_path / "outside").mkdir()
        (tmp_path / "outside" / "a.pdf").write_bytes(b"%PDF-outside")
        return tmp_path / "outbox"

    def test_while_a_folder_is_held_a_file_below_another_root_is_refused(
            self, root: Path, tmp_path: Path) -> None:
        """While a claimed bundle's folder is held (opened_from), a file asked for below
        any other root is refused, never opened by its path (which would follow a link
        put in place of a folder on the way: what the folder is held against)."""
        held = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with fsops.opened_from(root, held):
                assert open_below(root, "INV-1/ID/a.pdf").read() == b"%PDF-inside"
                with pytest.raises(RuntimeError) as refused:
                    open_below(tmp_path / "outside", "a.pdf")
        finally:
            os.close(held)
        assert "a.pdf" in str(refused.value) and str(root) in str(refused.value)

    def test_while_a_folder_is_held_its_files_below_are_opened_from_it_not_by_its_path(
            self, root: Path, tmp_path: Path) -> None:
        """While the folder is held (opened_from), a file in a folder below it is reached
        from the descriptor held: the folder moved away and a link to an outside folder
        holding the same path put at its name, the held folder's file is read, never the
        outside one. Only that root is held (held_for): another root has none."""
        (tmp_path / "outside" / "INV-1" / "ID").mkdir(parents=True)
        (tmp_path / "outside" / "INV-1" / "ID" / "a.pdf").write_bytes(b"%PDF-outside")
        held = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            swap_for_link(root, tmp_path / "outside")
            with fsops.opened_from(root, held):
                assert fsops.held_for(root) == held
                assert fsops.held_for(tmp_path / "outside") is None
                with open_below(root, "INV-1/ID/a.pdf") as fh:
                    assert fh.read() == b"%PDF-inside"
        finally:
            os.close(held)

    def test_a_file_below_the_root_is_read_and_the_root_may_be_a_link(
            self, root: Path, tmp_path: Path) -> None:
        """The file opens through its folders; an outbox configured as a link (the admin's
        choice) is followed, as the folder the rest is found below."""
        with open_below(root, "INV-1/ID/a.pdf") as fh:
            assert fh.read() == b"%PDF-inside"
        (tmp_path / "share").symlink_to(root)
        with open_below(tmp_path / "share", "INV-1/ID/a.pdf") as fh:
            assert fh.read() == b"%PDF-inside"

    @pytest.mark.parametrize("swapped", ["INV-1", "INV-1/ID"])
    def test_a_folder_on_the_way_that_is_a_link_is_refused_naming_it(
            self, root: Path, tmp_path: Path, swapped: str) -> None:
        """The sidecar, or a folder in it, made a link to an outside folder holding a file
        of the same name at the same place: HostileInput `symlink` naming the file, the
        folder that is a link and the fix; the outside file is never opened."""
        outside = tmp_path / "outside"
        (outside / "ID").mkdir()
        (outside / "ID" / "a.pdf").write_bytes(b"%PDF-outside")
        swap_for_link(root / swapped, outside)
        with opened_in(outside) as opened, opened_in(outside / "ID") as opened_deeper, \
                pytest.raises(HostileInput) as info:
            open_below(root, "INV-1/ID/a.pdf")
        assert opened == [] and opened_deeper == []
        assert (info.value.code, info.value.file) == ("symlink", "INV-1/ID/a.pdf")
        assert info.value.message == (f"lies in {swapped}, which is a symbolic link; outboxd "
                                      "never follows links — put the folder itself there")

    def test_the_file_is_named_as_shown_and_the_folder_by_its_path_below_the_root(
            self, root: Path, tmp_path: Path) -> None:
        """`shown` (the file as the clerk knows it: an image whose PDF is sent) names the
        file; the folder refused is named by its path below the root."""
        swap_for_link(root / "INV-1" / "ID", tmp_path / "outside")
        with pytest.raises(HostileInput) as info:
            open_below(root, "INV-1/ID/a.pdf", "INV-1/ID/a.png")
        assert info.value.file == "INV-1/ID/a.png"
        assert info.value.message.startswith("lies in INV-1/ID, which is a symbolic link")

    def test_a_fifo_or_a_file_on_the_way_is_refused_without_waiting(
            self, root: Path, tmp_path: Path) -> None:
        """A FIFO where a folder belongs is refused at once (never opened: it would block),
        with `not-a-folder` saying what it is; so is a regular file."""
        shutil.rmtree(root / "INV-1" / "ID")
        os.mkfifo(root / "INV-1" / "ID")
        info = without_blocking(lambda: raised(lambda: open_below(root, "INV-1/ID/a.pdf")),
                                root / "INV-1" / "ID", "open_below")
        assert isinstance(info, HostileInput)
        assert (info.code, info.file) == ("not-a-folder", "INV-1/ID/a.pdf")
        assert info.message == ("lies in INV-1/ID, which is a FIFO — put the folder itself "
                                "there")
        os.unlink(root / "INV-1" / "ID")
        (root / "INV-1" / "ID").write_bytes(b"")
        with pytest.raises(HostileInput, match="which is a file — put the folder"):
            open_below(root, "INV-1/ID/a.pdf")

    def test_the_file_itself_is_refused_as_open_regular_refuses_it(
            self, root: Path, tmp_path: Path) -> None:
        """The last part a link or a FIFO: the same errors as open_regular's."""
        target = root / "INV-1" / "ID" / "a.pdf"
        target.unlink()
        target.symlink_to(tmp_path / "outside" / "a.pdf")
        with pytest.raises(HostileInput) as link:
            open_below(root, "INV-1/ID/a.pdf")
        assert (link.value.code, link.value.file) == ("symlink", "INV-1/ID/a.pdf")
        target.unlink()
        os.mkfifo(target)
        fifo = without_blocking(lambda: raised(lambda: open_below(root, "INV-1/ID/a.pdf")),
                                target, "open_below")
        assert isinstance(fifo, HostileInput)
        assert "is a FIFO, not a regular file" in fifo.message

    def test_a_folder_on_the_way_that_is_gone_or_unreadable_names_the_file(
            self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A folder gone meanwhile is `unreadable`; one outboxd's user may not open (the
        test runs as root: the refusal is put in os.open's place) is `unreadable-folder`
        with the fix; neither is an OSError with the server's path."""
        with pytest.raises(InputError) as gone:
            open_below(root, "INV-9/a.pdf")
        assert (gone.value.code, gone.value.file) == ("unreadable", "INV-9/a.pdf")
        real = os.open

        def deny(name: Any, flags: int, *args: Any, dir_fd: int | None = None) -> int:
            if name == "ID":
                raise PermissionError(errno.EACCES, "Permission denied", name)
            return real(name, flags, *args, dir_fd=dir_fd)
        monkeypatch.setattr(fsops.os, "open", deny)
        with pytest.raises(InputError) as denied:
            open_below(root, "INV-1/ID/a.pdf")
        assert (denied.value.code, denied.value.file) == ("unreadable-folder", "INV-1/ID/a.pdf")
        assert denied.value.message.startswith("lies in INV-1/ID, which cannot be read "
                                               "(permission denied) — give outboxd's user")
        assert str(root) not in str(denied.value)

    def test_a_folder_is_held_open_for_its_listing(self, root: Path, tmp_path: Path) -> None:
        """folder_below gives the folder itself: listed from its descriptor, what is in it
        stays what was there when it was opened, whatever its path becomes."""
        with folder_below(root, "INV-1/ID") as fd:
            swap_for_link(root / "INV-1", tmp_path / "outside")
            assert os.listdir(fd) == ["a.pdf"]
            with open_in(fd, "a.pdf", "INV-1/ID/a.pdf") as fh:
                assert fh.read() == b"%PDF-inside"


class TestHoldFolder:
    """A claimed bundle's work folder, held by one function for every step after the claim:
    never through a link, refused in the clerk's words (a bundle read for delivery,
    `shown`) or the admin's (not_the_folder), whichever the caller reads out."""

    @pytest.fixture
    def work(self, tmp_path: Path) -> Path:
        (tmp_path / "processing" / "INV-1--w").mkdir(parents=True)
        (tmp_path / "processing" / "INV-1--w" / "INV-1.xml").write_bytes(b"<Invoice/>")
        (tmp_path / "outside").mkdir()
        return tmp_path / "processing" / "INV-1--w"

    def test_the_folder_is_held_whatever_its_name_becomes(self, work: Path,
                                                          tmp_path: Path) -> None:
        """Held, the folder is listed from its descriptor even after its name is swapped
        for a link; the name is then no longer it (still_held says so, for the admin)."""
        with workfolder.held_folder(work, "INV-1.xml") as fd:
            swap_for_link(work, tmp_path / "outside")
            assert os.listdir(fd) == ["INV-1.xml"]
            assert not workfolder.still_at(work, fd)
            with pytest.raises(OSError) as gone:
                workfolder.still_held(work, fd)
        assert gone.value.errno == errno.ELOOP and gone.value.filename == str(work)
        assert "put the bundle's folder itself back" in (gone.value.strerror or "")

    @pytest.mark.parametrize("from_outbox", [False, True])
    def test_a_link_in_its_place_is_refused_naming_it_to_clerk_and_admin(
            self, work: Path, tmp_path: Path, from_outbox: bool) -> None:
        """A link where the work folder was: the clerk reads the invoice file's
        `symlink` error naming the work folder; the admin reads not_the_folder, reached
        from the outbox (`within`) or not: the work folder is the link, no folder on the
        way to it."""
        within = tmp_path if from_outbox else None
        swap_for_link(work, tmp_path / "outside")
        with pytest.raises(HostileInput) as clerk:
            workfolder.hold_folder(work, "INV-1.xml", within)
        assert (clerk.value.code, clerk.value.file) == ("symlink", "INV-1.xml")
        assert clerk.value.message.startswith("lies in INV-1--w, which is a symbolic link")
        with pytest.raises(OSError) as admin:
            workfolder.hold_folder(work, within=within)
        assert admin.value.errno == errno.ELOOP and admin.value.filename == str(work)
        assert "put the bundle's folder itself back" in (admin.value.strerror or "")
        assert "no longer the folder outboxd claimed" in (admin.value.strerror or "")

    def test_a_file_in_its_place_is_no_folder_to_clerk_and_admin(self, work: Path) -> None:
        """A file where the work folder was: `not-a-folder` saying it is a file for the
        clerk, not_the_folder for the admin."""
        shutil.rmtree(work)
        work.write_bytes(b"not a folder")
        with pytest.raises(HostileInput) as clerk:
            workfolder.hold_folder(work, "INV-1.xml")
        assert (clerk.value.code, clerk.value.file) == ("not-a-folder", "INV-1.xml")
        assert clerk.value.message.startswith("lies in INV-1--w, which is a file")
        with pytest.raises(OSError) as admin:
            workfolder.hold_folder(work)
        assert admin.value.errno == errno.ELOOP and admin.value.filename == str(work)

    def test_a_missing_folder_is_unreadable_for_the_clerk_and_not_found_for_the_admin(
            self, work: Path) -> None:
        """Gone (moved away by hand, a share that went): the clerk's `unreadable` naming
        the invoice file; the admin's FileNotFoundError as it is (recovery tells that
        apart from a link)."""
        shutil.rmtree(work)
        with pytest.raises(InputError) as clerk:
            workfolder.hold_folder(work, "INV-1.xml")
        assert (clerk.value.code, clerk.value.file) == ("unreadable", "INV-1.xml")
        with pytest.raises(FileNotFoundError):
            workfolder.hold_folder(work)

    def test_a_folder_that_may_not_be_read_is_said_as_such(
            self, work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Permission denied on the work folder (never on the processing folder): the
        clerk's `unreadable-folder` naming where the invoice file lies; the admin's
        PermissionError as it is."""
        real = os.open

        def deny(name: Any, flags: int, *args: Any, dir_fd: int | None = None) -> int:
            if str(name).endswith("INV-1--w"):
                raise PermissionError(errno.EACCES, "Permission denied", str(name))
            return real(name, flags, *args, dir_fd=dir_fd)
        monkeypatch.setattr(fsops.os, "open", deny)
        with pytest.raises(InputError) as clerk:
            workfolder.hold_folder(work, "INV-1.xml")
        assert (clerk.value.code, clerk.value.file) == ("unreadable-folder", "INV-1.xml")
        assert clerk.value.message.startswith("lies in INV-1--w, which cannot be read")
        with pytest.raises(PermissionError):
            workfolder.hold_folder(work)


def test_an_input_file_is_read_in_blocks_of_its_file_systems_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads of an input file are buffered as open() buffers them, a block of the file
    system at a time (on a network share, where a read is a round trip, up to 1 MiB), not
    in the interpreter's fixed 8 KiB: the reads are named (namedreads.named_reads), and a
    wrapper that lost the block size made a share's reads many small ones."""
    path = tmp_path / "scan.pdf"
    path.write_bytes(b"%PDF-1.7\n" + b"x" * 100_000)
    sizes: list[int] = []
    real = namedreads._readinto

    def seen(raw: Any, buffer: Any) -> int | None:
        sizes.append(len(memoryview(buffer)))
        return real(raw, buffer)

    monkeypatch.setattr(namedreads, "_readinto", seen)
    with open_regular(path) as fh:
        assert fh.read(10) == b"%PDF-1.7\nx"
    assert sizes[0] == os.stat(path).st_blksize
