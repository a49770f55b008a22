"""An error of a write made through a folder held by descriptor (fswrite.held_path) is
shown with the folder's real path, never /proc/self/fd/N, and a refused write with the
fix: the folder's owner and mode against outboxd's user."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import structlog

from daemon.archiving.archive import place
from daemon.configuration.config import Settings
from daemon.configuration.deciding import Deciding
from daemon.errors import describe
from daemon.fs.fdnames import real_name
from daemon.fs.fsops import opened_if_regular
from daemon.fs.fswrite import held_path, write_atomic

NOBODY = 65534
OLD_UID = 54321  # the service user's uid before a migration: no user has it here


@pytest.fixture
def immutable(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be created in, not even by root (chattr +i)."""
    folder = tmp_path / "work"
    folder.mkdir()
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root and ext4/xfs/btrfs)")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], capture_output=True)


def test_a_write_refused_in_a_held_folder_names_the_folder_and_what_refuses(
        immutable: Path) -> None:
    """write_atomic through held_path into an immutable folder: the line names the
    folder's own path (not /proc/self/fd/N) and, as its mode would let the write, points
    at the attribute (lsattr) instead of a chmod that would change nothing."""
    fd = os.open(immutable, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            write_atomic(held_path(fd) / "receipt.json", b"{}")
    finally:
        os.close(fd)
    line = describe(caught.value, writing=True)
    assert "/proc/self/fd" not in line, line
    assert f"({immutable}/" in line, line
    assert f"lsattr -d {immutable}" in line, line


def test_a_held_folders_number_reused_on_another_thread_keeps_this_threads_name(
        tmp_path: Path) -> None:
    """A descriptor closed after its error, its number then taken by another thread for
    another folder before the line is shown: the line still names the first folder."""
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    other.mkdir()
    fd = os.open(first, os.O_RDONLY | os.O_DIRECTORY)
    failed = str(held_path(fd) / ".receipt.json.tmp-0a1b")
    os.close(fd)

    def reuse() -> None:
        again = os.open(other, os.O_RDONLY | os.O_DIRECTORY)
        try:
            if again != fd:
                os.dup2(again, fd)
            held_path(fd)
        finally:
            os.close(fd)
            if again != fd:
                os.close(again)
    thread = threading.Thread(target=reuse)
    thread.start()
    thread.join()
    assert real_name(failed) == f"{first}/.receipt.json.tmp-0a1b"


def test_a_name_of_no_folder_held_is_shown_as_it_is() -> None:
    """Only a /proc/self/fd/N that held_path named is rewritten: another path, or a
    number never held on this thread, stays as the error gave it."""
    assert real_name("/srv/outbox/INV-1.xml") == "/srv/outbox/INV-1.xml"
    assert real_name("/proc/self/fd/99999/x") == "/proc/self/fd/99999/x"


def test_a_number_whose_folder_cannot_be_said_any_more_forgets_the_name_it_had(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """held_path of a descriptor number /proc cannot name drops what that number named
    before (another folder, since closed): an error through it is shown as it is, never
    with the earlier folder's path."""
    (tmp_path / "earlier").mkdir()
    fd = os.open(tmp_path / "earlier", os.O_RDONLY | os.O_DIRECTORY)
    try:
        held_path(fd)
        assert real_name(f"/proc/self/fd/{fd}/x") == f"{tmp_path}/earlier/x"

        def no_proc(path: object) -> str:
            raise OSError(2, "No such file or directory", str(path))
        monkeypatch.setattr(os, "readlink", no_proc)
        held_path(fd)
    finally:
        os.close(fd)
    assert real_name(f"/proc/self/fd/{fd}/x") == f"/proc/self/fd/{fd}/x"


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A folder another user can reach (pytest's tmp folders are root's only)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a folder of another uid and write as nobody")
    root = Path(tempfile.mkdtemp(prefix="outboxd-fdnames-"))
    os.chmod(root, 0o755)
    # The folders the test makes open to others too: an earlier test's `main` leaves the
    # process's umask at outboxd's 027, and NOBODY could then enter none of them.
    umask = os.umask(0o022)
    try:
        yield root
    finally:
        os.umask(umask)
        shutil.rmtree(root, ignore_errors=True)


def _as_nobody(work: Callable[[], str]) -> str:
    """What `work()` says, run in a child process as NOBODY (forked: this interpreter lies
    in a folder NOBODY may not enter)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never back into pytest
        code = 1
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            os.write(write, work().encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        line = fh.read().decode()
    assert os.waitpid(pid, 0)[1] == 0
    return line


def _placed(work: Path, target: Path) -> str:
    """describe() of the OSError that place(work, target) raises, or "archived"."""
    try:
        place(work, target, {"receipt.json": b"{}"}, "0" * 64)
    except OSError as exc:
        return describe(exc, writing=True)
    return "archived"


def test_an_archive_after_a_change_of_uid_names_the_work_folder_its_owner_and_the_fix(
        open_root: Path) -> None:
    """The migration trial: the work folder in processing/ still belongs to the old uid,
    mode 0750, its group the new user's; the archive of a delivered bundle (place, run
    as the new user) cannot write its receipt there. The line names that folder, its
    owner and mode, the user outboxd runs as, and the chgrp/chmod that lets it write —
    no /proc/self/fd."""
    work = open_root / "processing" / "INV-1--0123"
    work.mkdir(parents=True)
    (work / "INV-1.xml").write_bytes(b"<Invoice/>")
    os.chown(work, OLD_UID, NOBODY)  # the new user may enter and read it, not write
    os.chmod(work, 0o750)
    (open_root / "sent").mkdir()
    os.chown(open_root / "sent", NOBODY, NOBODY)
    line = _as_nobody(lambda: _placed(work, open_root / "sent" / "2026-01-02" / "INV-1--0123"))
    assert "/proc/self/fd" not in line, line
    assert line.startswith(f"Permission denied ({work}/"), line
    assert f"{work} (owner {OLD_UID}, mode 0750) is not writable by " in line, line
    assert f"&& chmod g+rwx {work}" in line, line
    assert (work / "INV-1.xml").is_file()  # nothing lost: the bundle stays where it was


def _frozen(folder: Path) -> None:
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i is not available here (needs root and ext4/xfs/btrfs)")


def test_the_main_write_failures_through_held_folders_never_show_proc_self_fd(
        tmp_path: Path) -> None:
    """The lines of the failures seen in the field, each made for real with an immutable
    folder: the archive's receipt in the work folder (place) and the settings
    fingerprint in .outboxd/deciding (its warning). None names /proc/self/fd; each names
    the folder that refused."""
    work = tmp_path / "processing" / "INV-1--0123"
    work.mkdir(parents=True)
    (work / "INV-1.xml").write_bytes(b"<Invoice/>")
    deciding = tmp_path / "outbox" / ".outboxd" / "deciding"
    deciding.mkdir(parents=True)
    frozen = [work, deciding]
    try:
        for folder in frozen:
            _frozen(folder)
        with pytest.raises(OSError) as caught:
            place(work, tmp_path / "sent" / "2026-01-02" / work.name, {"receipt.json": b"{}"},
                  "0" * 64)
        lines = {work: describe(caught.value, writing=True)}
        with structlog.testing.capture_logs() as logs:
            Deciding("hosta-111111").publish(Settings(
                outbox={"path": tmp_path / "outbox"}, delivery={"url": "http://127.0.0.1:9/"}))
        [warned] = [e for e in logs if "fingerprint" in e["event"]]
        lines[deciding] = warned["error"]
    finally:
        for folder in frozen:
            subprocess.run(["chattr", "-i", str(folder)], capture_output=True)
    for folder, line in lines.items():
        assert "/proc/self/fd" not in line, line
        assert f"({folder}/" in line and f"lsattr -d {folder}" in line, line


def test_a_file_that_cannot_be_opened_is_named_not_a_folder_once_held_at_its_number(
        open_root: Path) -> None:
    """A clerk's file outboxd's user may not read (mode 0600, another owner): the
    reopen through /proc/self/fd/H of its handle is refused. H is the number of a folder
    this thread held just before (its descriptor closed since): the line names the file,
    never that folder (which fdnames remembered for H) nor /proc/self/fd."""
    outbox, held = open_root / "outbox", open_root / "sent-day"
    outbox.mkdir()
    held.mkdir()
    secret = outbox / "INV-9.pdf"
    secret.write_bytes(b"%PDF-1.4")
    os.chmod(secret, 0o600)  # root's: NOBODY may look at it, not open it

    def reopened() -> str:
        folder = os.open(outbox, os.O_RDONLY | os.O_DIRECTORY)
        number = os.open(held, os.O_RDONLY | os.O_DIRECTORY)
        held_path(number)
        os.close(number)  # the handle below takes this lowest free number
        try:
            opened_if_regular("INV-9.pdf", folder)
        except OSError as exc:
            return f"{exc.filename}|{describe(exc)}"
        return "opened"
    line = _as_nobody(reopened)
    filename, said = line.split("|", 1)
    assert filename == str(secret), line
    assert said == f"Permission denied ({secret})", line


def test_an_error_naming_its_file_in_bytes_says_the_name_as_a_str_one_does() -> None:
    """An OSError whose filename came as bytes (a call made with a bytes path; a name
    that is not UTF-8) is said with the file's name as text, the same as when it came as
    a str — never as Python's b'...' form."""
    import errno
    as_bytes = describe(OSError(errno.EACCES, "Permission denied", b"/outbox/caf\xe9.xml"))
    as_str = describe(OSError(errno.EACCES, "Permission denied",
                              os.fsdecode(b"/outbox/caf\xe9.xml")))
    assert as_bytes == as_str and "b'" not in as_bytes and "/outbox/caf" in as_bytes
