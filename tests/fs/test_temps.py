"""Temp files and their sweeps: a killed writer's temp is swept, a live writer's never."""

from __future__ import annotations

import errno
import fcntl
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from flocks import ended_within, no_locks

from daemon.fs.fswrite import write_atomic
from daemon.fs.temps import create_locked, drop_stale_copies, drop_unfinished


class TestSweeps:
    def test_the_temp_file_of_a_killed_write_is_dropped_and_nothing_else(
            self, tmp_path: Path) -> None:
        """A process killed inside write_atomic, after the temp file and before the rename,
        leaves the temp file, whose lock the kernel dropped with the process;
        drop_unfinished removes it (a link of that shape too, without following it) and
        leaves every other name, however alike, and a folder."""
        kill_inside_write = (
            "import os, sys; from pathlib import Path; from daemon.fs import fswrite\n"
            "os.replace = lambda *a: os.kill(os.getpid(), 9)\n"
            "fswrite.write_atomic(Path(sys.argv[1]) / 'receipt.json', b'{}')\n")
        done = subprocess.run([sys.executable, "-c", kill_inside_write, str(tmp_path)])
        assert done.returncode == -signal.SIGKILL
        [left] = os.listdir(tmp_path)
        assert left.startswith(".receipt.json.tmp-")
        outside = tmp_path / "outside"
        outside.write_bytes(b"precious")
        (tmp_path / ".reason.json.tmp-0123456789ab").symlink_to(outside)
        kept = [".receipt.json.tmp-0123456789abc", ".receipt.json.tmp-XYZ", "receipt.json",
                ".x.receipt.json.tmp-0123456789ab", ".reason.json.tmp-ba9876543210", "outside"]
        for name in kept[:-2]:
            (tmp_path / name).write_bytes(b"theirs")
        (tmp_path / ".reason.json.tmp-ba9876543210").mkdir()  # a folder is never ours
        drop_unfinished(tmp_path, ["receipt.json", "reason.json"])
        assert sorted(os.listdir(tmp_path)) == sorted(kept)
        assert outside.read_bytes() == b"precious"

    def test_the_temp_of_a_write_still_under_way_is_not_swept(self, tmp_path: Path) -> None:
        """A temp whose writer is alive (it holds the lock) survives both sweeps; once the
        writer is gone (its file closed, the lock dropped), the next sweep removes it."""
        held = tmp_path / ".receipt.json.tmp-0123456789ab"
        copy = tmp_path / ".scan.pdf.1234abcd.tmp"
        fds = [create_locked(held), create_locked(copy)]
        drop_unfinished(tmp_path, ["receipt.json"])
        drop_stale_copies(tmp_path, "scan.pdf", "[0-9a-f]{8}")
        assert held.exists() and copy.exists()
        for fd in fds:
            os.close(fd)
        drop_unfinished(tmp_path, ["receipt.json"])
        drop_stale_copies(tmp_path, "scan.pdf", "[0-9a-f]{8}")
        assert os.listdir(tmp_path) == []

    def test_a_write_whose_temp_is_swept_before_its_lock_makes_it_again(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Between creating the temp and locking it, a sweep may take it: the writer finds
        its file unlinked and makes it again, so the write still lands."""
        import daemon.fs.temps as temps
        real_flock, swept = temps.fcntl.flock, []

        def sweep_first(fd: int, op: int) -> None:
            if not swept:  # the writer's first try; the sweep's own comes after
                swept.append(True)
                drop_unfinished(tmp_path, ["a.txt"])  # a concurrent run's sweep, just now
            real_flock(fd, op)
        monkeypatch.setattr(temps.fcntl, "flock", sweep_first)
        write_atomic(tmp_path / "a.txt", b"hello")
        assert swept and (tmp_path / "a.txt").read_bytes() == b"hello"
        assert os.listdir(tmp_path) == ["a.txt"]


def _nfs_flock(real: Callable[[int, int], None]) -> Callable[[int, int], None]:
    """flock as an NFS (or SMB) client emulates it, with a byte-range lock on the whole
    file: an exclusive lock needs a descriptor open for writing (EBADF otherwise)."""
    def flock(fd: int, op: int) -> None:
        if op & fcntl.LOCK_EX and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise OSError(errno.EBADF, os.strerror(errno.EBADF))
        real(fd, op)
    return flock


class TestOnAShare:
    def test_a_sweep_on_nfs_takes_a_dead_writers_temp_and_leaves_a_live_ones(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Where an exclusive lock needs a file open for writing (NFS, SMB), the sweep
        still removes the temp a killed write left (it would otherwise fail, or stay and
        keep its bundle from settling) and still leaves the temp of a live writer."""
        import daemon.fs.temps as temps
        monkeypatch.setattr(temps.fcntl, "flock", _nfs_flock(temps.fcntl.flock))
        dead = tmp_path / ".receipt.json.tmp-0123456789ab"
        dead.write_bytes(b"half")  # its writer was killed: no lock on it
        copy = tmp_path / ".scan.pdf.1234abcd.tmp"
        held = tmp_path / ".reason.json.tmp-ba9876543210"
        live = create_locked(held)
        (tmp_path / ".scan.pdf.0000abcd.tmp").write_bytes(b"killed attach")
        fd = create_locked(copy)
        try:
            drop_unfinished(tmp_path, ["receipt.json", "reason.json"])
            drop_stale_copies(tmp_path, "scan.pdf", "[0-9a-f]{8}")
            assert sorted(os.listdir(tmp_path)) == sorted([copy.name, held.name])
        finally:
            os.close(fd)
            os.close(live)

    def test_where_no_lock_can_be_had_temps_are_written_and_swept_as_before(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An NFS mount without its lock daemon answers every flock with ENOLCK: the
        status page, the papers and errors.txt are written all the same, and a killed
        write's temp is swept, instead of every write failing for want of a lock."""
        import daemon.fs.temps as temps
        monkeypatch.setattr(temps.fcntl, "flock", no_locks)
        (tmp_path / ".a.txt.tmp-0123456789ab").write_bytes(b"half")
        drop_unfinished(tmp_path, ["a.txt"])
        write_atomic(tmp_path / "a.txt", b"hello")
        assert os.listdir(tmp_path) == ["a.txt"]
        assert (tmp_path / "a.txt").read_bytes() == b"hello"


def _locked_as_made(monkeypatch: pytest.MonkeyPatch,
                    let_go: Callable[[int, str], None] | None = None) -> list[int]:
    """Another holder's flock on each new temp (`.….tmp-…`) the instant it is made, before
    its writer's, on a descriptor of its own (as another process's is). `let_go`, given,
    is that holder's own next step, run in a thread with its descriptor and the temp's
    path once the writer's first try is refused: a holder of an instant. Without it, the
    lock is held for good. The holder's descriptors are returned (open ones: to close)."""
    import threading

    import daemon.fs.temps as temps
    real_flock, theirs = temps.fcntl.flock, []

    def locked_first(fd: int, op: int) -> None:
        made = os.readlink(f"/proc/self/fd/{fd}")
        first = ".tmp-" in made and not theirs
        if first:
            theirs.append(os.open(made, os.O_RDONLY))
            real_flock(theirs[0], fcntl.LOCK_EX)
        try:
            real_flock(fd, op)
        except BlockingIOError:
            if first and let_go is not None:
                threading.Thread(target=let_go, args=(theirs[0], made), daemon=True).start()
            raise
    monkeypatch.setattr(temps.fcntl, "flock", locked_first)
    return theirs


def _let_go_after_a_few_ms(fd: int, path: str) -> None:
    """A holder that only looks: its lock dropped a few ms later, the file left."""
    import time
    time.sleep(0.005)  # the other process's own instant, no wait of the test's
    os.close(fd)


def _sweep_after_a_few_ms(fd: int, path: str) -> None:
    """A concurrent run's sweep that took the temp for a leftover: locked, unlinked a few
    ms later (an unlink on a share is a round trip), let go."""
    import time
    time.sleep(0.005)
    os.unlink(path)
    os.close(fd)


def test_a_new_temp_locked_for_an_instant_is_kept_and_written_at_the_first_attempt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another process that locks a temp as it is made and lets go a few ms later: the
    writer waits for that instant and keeps the file it made. It gave up at once, so the
    errors file or status page waited a whole rescan period and `attach` failed."""
    temp = tmp_path / ".a.txt.tmp-0123456789ab"
    theirs = _locked_as_made(monkeypatch, _let_go_after_a_few_ms)
    fd = create_locked(temp)
    try:
        assert theirs  # it was held as made
        assert os.fstat(fd).st_ino == os.lstat(temp).st_ino  # the file first made
        with pytest.raises(BlockingIOError):  # and now locked by its writer
            other = os.open(temp, os.O_RDONLY)
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(other)
    finally:
        os.close(fd)


def test_a_write_whose_new_temp_a_concurrent_sweep_holds_for_an_instant_lands(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A second daemon on the share (or an `attach` of the same name) sweeping its litter
    takes a writer's temp made that instant for a leftover: locks it, unlinks it, lets
    go. The write makes its temp again and lands, instead of failing with "locked by
    another process"."""
    theirs = _locked_as_made(monkeypatch, _sweep_after_a_few_ms)
    write_atomic(tmp_path / "a.txt", b"hello")
    assert theirs
    assert os.listdir(tmp_path) == ["a.txt"]
    assert (tmp_path / "a.txt").read_bytes() == b"hello"


def test_a_new_temp_someone_else_locks_for_good_is_given_up_within_the_bound_and_removed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A temp in the outbox is group-readable: a clerk's process that opens and flocks it
    between its creation and its writer's lock held the writer (the daemon's loop writing
    an errors file, `attach` its copy) for good, then for LOCK_WAIT_SECONDS (120 s). The
    writer now tries for SWEEP_HOLD_SECONDS (50 ms) at most, then gives up with
    BlockingIOError naming the temp, and removes it (it is its own, not to be left in the
    outbox for the clerks to see)."""
    import time

    import daemon.fs.folderlocks as folderlocks
    temp = tmp_path / ".a.txt.tmp-0123456789ab"
    monkeypatch.setattr(folderlocks, "LOCK_WAIT_SECONDS", 20.0)  # bounds the old wait here
    theirs = _locked_as_made(monkeypatch)
    started = time.monotonic()
    try:
        exc = ended_within(10, lambda: create_locked(temp))
    finally:
        took = time.monotonic() - started
        for fd in theirs:
            os.close(fd)
    assert took < 0.5, f"gave up after {took:.3f} s"
    assert isinstance(exc, BlockingIOError) and exc.filename == str(temp)
    assert "locked by another process" in str(exc)
    assert not os.path.lexists(temp)


def test_after_a_temp_held_for_good_the_next_ones_are_given_up_without_waiting(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process that locks every new temp would cost the loop SWEEP_HOLD_SECONDS for each
    held bundle at each rescan (1,000 of them: 50 s, near systemd's WatchdogSec). Once one
    temp was given up as held for good, the next ones within HELD_FOR_GOOD_QUIET_SECONDS
    are tried once and given up; after that quiet time the bounded wait is back."""
    import daemon.fs.temps as temps
    tries: list[int] = []
    monkeypatch.setattr(temps, "try_lock", lambda fd: tries.append(fd) or False)
    now = [1000.0]
    monkeypatch.setattr(temps.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(temps.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))

    def tries_to_give_up(name: str) -> int:
        tries.clear()
        with pytest.raises(BlockingIOError):
            create_locked(tmp_path / name)
        assert not os.path.lexists(tmp_path / name)
        return len(tries)

    assert tries_to_give_up(".a.tmp-1") > 1  # the first one is waited for, bounded
    now[0] += 1.0
    assert tries_to_give_up(".b.tmp-2") == 1  # the next, at once
    now[0] += temps.HELD_FOR_GOOD_QUIET_SECONDS
    assert tries_to_give_up(".c.tmp-3") > 1  # quiet long enough: waited for again


def test_a_temp_held_for_good_in_one_folder_does_not_stop_the_wait_in_another(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The quiet time after a give-up is the folder's where it happened: a clerk's tool
    locking every new temp in the outbox must not make a delivery worker's temp in the
    [delivery] target (or sent/) give up at once on a clean-up's instant hold — a
    delivery then failed and waited for its back-off — nor the reverse make the loop's
    errors files give up; and those threads share the one module."""
    import daemon.fs.temps as temps
    outbox, target = tmp_path / "outbox", tmp_path / "target"
    outbox.mkdir()
    target.mkdir()
    refusals = {"outbox": 10**6, "target": 1}  # held for good there; a sweep's instant here
    monkeypatch.setattr(temps, "try_lock", lambda fd: _refused_in(fd, refusals))
    now = [1000.0]
    monkeypatch.setattr(temps.time, "monotonic", lambda: now[0])
    monkeypatch.setattr(temps.time, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    with pytest.raises(BlockingIOError):
        create_locked(outbox / ".a.tmp-1")
    now[0] += 1.0
    fd = create_locked(target / ".b.tmp-2")  # waited for the instant, within the bound
    os.close(fd)
    assert os.path.exists(target / ".b.tmp-2")
    with pytest.raises(BlockingIOError):  # the held folder stays quiet: no wait there
        create_locked(outbox / ".c.tmp-3")


def _refused_in(fd: int, refusals: dict[str, int]) -> bool:
    """try_lock's stand-in: False while the folder of the file at fd has refusals left."""
    folder = os.path.basename(os.path.dirname(os.readlink(f"/proc/self/fd/{fd}")))
    if refusals[folder] > 0:
        refusals[folder] -= 1
        return False
    return True


class TestSweepsLeaveWhatIsNotTheirs:
    """A sweep removes only the leftover it looked at: never what a writer holds, nor
    what took its name meanwhile, nor what a link put in its place leads to."""

    def test_a_temp_replaced_between_the_look_and_the_open_is_left(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A killed write's temp replaced, between the sweep's look and its open, by a new
        write's file of the same name (not yet locked): the new file is left for a later
        sweep to judge, never removed unlocked."""
        import daemon.fs.temps as temps
        temp = tmp_path / ".a.txt.tmp-0123456789ab"
        temp.write_bytes(b"killed")
        real_open = temps._open_to_lock

        def replaced_first(path: str) -> int | None:
            (tmp_path / "new").write_bytes(b"a new write's")
            os.replace(tmp_path / "new", path)
            return real_open(path)
        monkeypatch.setattr(temps, "_open_to_lock", replaced_first)
        drop_unfinished(tmp_path, ["a.txt"])
        assert temp.read_bytes() == b"a new write's"

    def test_a_lock_refused_as_smb_refuses_it_counts_as_held(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """SMB (and POSIX byte-range locks) say "held by another" with EACCES: the temp of
        a writer alive on another host is left, as for EWOULDBLOCK."""
        import daemon.fs.temps as temps

        def held_on_smb(fd: int, op: int) -> None:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        monkeypatch.setattr(temps.fcntl, "flock", held_on_smb)
        temp = tmp_path / ".a.txt.tmp-0123456789ab"
        temp.write_bytes(b"being written")
        drop_unfinished(tmp_path, ["a.txt"])
        assert temp.exists()

    def test_a_link_to_a_folder_under_a_temps_name_is_removed_never_followed(
            self, tmp_path: Path) -> None:
        """A link of a temp's name to a folder is no folder of the sweep's to leave: the
        link goes, and the folder it leads to keeps what it holds."""
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "precious").write_bytes(b"theirs")
        (tmp_path / ".a.txt.tmp-0123456789ab").symlink_to(outside)
        drop_unfinished(tmp_path, ["a.txt"])
        assert os.listdir(tmp_path) == ["outside"]
        assert (outside / "precious").read_bytes() == b"theirs"

    def test_unlink_if_still_removes_only_the_file_open(self, tmp_path: Path) -> None:
        """unlink_if_still leaves what another put at the name since (their file), and
        removes the name while it is still the file open."""
        from daemon.fs.temps import unlink_if_still
        path = tmp_path / ".a.txt.tmp-0123456789ab"
        path.write_bytes(b"ours")
        fd = os.open(path, os.O_RDONLY)
        try:
            (tmp_path / "theirs").write_bytes(b"theirs")
            os.replace(tmp_path / "theirs", path)
            unlink_if_still(path, fd)
            assert path.read_bytes() == b"theirs"
        finally:
            os.close(fd)
        fd = os.open(path, os.O_RDONLY)
        try:
            unlink_if_still(path, fd)
        finally:
            os.close(fd)
        assert not path.exists()


def test_temps_and_temp_folders_are_made_for_outboxd_and_its_group_only(
        tmp_path: Path) -> None:
    """Whatever the umask, a file written (0640) and a temp folder held (0750) give others
    nothing: a temp in the outbox may hold a receipt or a reason before its rename."""
    from daemon.fs.folderlocks import hold_new_folder
    old = os.umask(0)
    try:
        write_atomic(tmp_path / "a.txt", b"x")
        fd = hold_new_folder(tmp_path / ".entry.tmp")
        os.close(fd)
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / ".entry.tmp").stat().st_mode & 0o777 == 0o750




