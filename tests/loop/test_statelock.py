"""One daemon per state dir (daemon/loop/statelock.py): a second process is refused, naming the
first; `status` can tell whether one runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.loop import statelock
from daemon.loop.statelock import StateDirTaken, hold, release, running

HOLDER = ("import sys; from pathlib import Path; from daemon.loop.statelock import hold; "
          "hold(Path(sys.argv[1])); print('held', flush=True); sys.stdin.read()")


@pytest.fixture
def other_process(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Another process that holds tmp_path as its state dir until it is ended."""
    p = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline() == "held\n"  # waits for it
    yield p
    p.kill()
    p.wait()


def test_a_second_process_on_the_state_dir_is_refused_naming_the_first(
        tmp_path: Path, other_process: subprocess.Popen[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While another process holds the state dir, hold() stops with a line naming its
    process id, the lock file and the fix; once that process is gone, hold() succeeds
    (the lock went with it, whatever way it ended)."""
    monkeypatch.setattr(statelock, "TAKE_SECONDS", 0.2)
    assert running(tmp_path) is True
    with pytest.raises(StateDirTaken) as info:
        hold(tmp_path)
    assert f"process {other_process.pid}" in str(info.value)
    assert "outboxd.pid" in str(info.value) and "own [paths] state_dir" in str(info.value)
    other_process.kill()
    other_process.wait()
    assert running(tmp_path) is False
    hold(tmp_path)
    try:
        assert (tmp_path / "outboxd.pid").read_text() == f"{os.getpid()}\n"
    finally:
        release(tmp_path)


def test_within_one_process_the_state_dir_is_held_as_often_as_it_is_taken(
        tmp_path: Path) -> None:
    """A daemon started again in the same process (as tests do) is the same daemon: it
    takes the state dir again, and the lock goes only with the last release."""
    hold(tmp_path)
    hold(tmp_path)
    release(tmp_path)
    assert running(tmp_path) is True
    release(tmp_path)
    assert statelock._held == {}
    assert running(tmp_path) is False


def test_whether_a_daemon_runs_cannot_be_told_without_the_lock_file(tmp_path: Path) -> None:
    """A state dir no daemon of this version has used: `status` says nothing either way."""
    assert running(tmp_path) is None


def test_a_full_state_dir_ends_the_start_naming_the_lock_file_and_holding_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The state dir's disk is full when the daemon writes its process id into the lock
    file (injected: ENOSPC at that write; tests/faults/test_full_share.py has real full
    disks): the error names that file, so the admin's line says which disk to free (a
    write through a descriptor names none), and the lock is not kept: once there is room,
    the next start in this process takes it."""
    import errno

    def full(fd: int, data: bytes, offset: int) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(statelock.os, "pwrite", full)
    with pytest.raises(OSError) as info:
        hold(tmp_path)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(tmp_path / statelock.LOCK_NAME)
    assert statelock._held == {} and running(tmp_path) is False
    monkeypatch.undo()
    hold(tmp_path)
    assert running(tmp_path) is True
    release(tmp_path)


def test_a_lock_file_that_is_a_fifo_is_refused_naming_it(
        tmp_path: Path) -> None:
    """outboxd.pid a FIFO in the state dir: the start opened it and ended in "Invalid
    argument — check that the path exists" (its truncation), naming nothing. It is
    refused by its name before any open, and `status` cannot tell whether a daemon runs
    rather than taking a FIFO for a lock file."""
    from helpers import raised, without_blocking

    from daemon.errors import OutboxdError
    fifo = tmp_path / statelock.LOCK_NAME
    os.mkfifo(fifo)
    error = without_blocking(lambda: raised(lambda: hold(tmp_path)), fifo, "hold")
    assert isinstance(error, OutboxdError) and not isinstance(error, StateDirTaken)
    assert str(error).startswith(f"{fifo}, the file by which one outboxd holds its state "
                                 "dir, is a FIFO, not a file — move it away")
    assert statelock._held == {}
    assert running(tmp_path) is None


def test_ready_is_told_only_for_the_daemon_holding_the_state_dir_after_ready(
        tmp_path: Path) -> None:
    """The mark of READY=1 a killed daemon left is not the next one's: a start that holds
    the state dir removes it, and is not ready until it marks READY itself; its stop
    removes the mark; when it started is when it took the lock."""
    (tmp_path / statelock.READY_NAME).write_text("4242\n")  # a daemon killed when ready
    hold(tmp_path)
    try:
        assert not (tmp_path / statelock.READY_NAME).exists()  # whatever process it names
        ready, started = statelock.readiness(tmp_path)
        assert ready is False and started is not None
        assert started == os.stat(tmp_path / statelock.LOCK_NAME).st_mtime
        statelock.mark_ready(tmp_path)
        assert statelock.readiness(tmp_path)[0] is True
        assert (tmp_path / statelock.READY_NAME).read_text() == f"{os.getpid()}\n"
    finally:
        release(tmp_path)
    assert not (tmp_path / statelock.READY_NAME).exists()
    assert (tmp_path / statelock.LOCK_NAME).read_text() == f"{os.getpid()}\n"  # a bare pid


def test_a_daemon_of_an_older_build_is_not_read_as_starting(tmp_path: Path) -> None:
    """A daemon of a build before the marks (still running between an upgrade and its
    restart, or started again after going back) holds the lock and makes neither mark: its
    readiness cannot be told (None), not "not ready yet" (which said nothing is sent while
    it sent); a mark a killed daemon left, naming another process, does not count either.
    The marks of the process holding the lock do: starting, then ready."""
    (tmp_path / statelock.LOCK_NAME).write_text("999999\n")  # the older daemon's pid
    assert statelock.readiness(tmp_path)[0] is None
    for name in (statelock.READY_NAME, statelock.STARTING_NAME):
        (tmp_path / name).write_text("4242\n")  # left by a daemon killed meanwhile
        assert statelock.readiness(tmp_path)[0] is None
    (tmp_path / statelock.STARTING_NAME).write_text("999999\n")
    assert statelock.readiness(tmp_path)[0] is False
    (tmp_path / statelock.READY_NAME).write_text("999999\n")
    assert statelock.readiness(tmp_path)[0] is True
    hold(tmp_path)  # a start of this build: starting, whatever was left
    try:
        assert (tmp_path / statelock.STARTING_NAME).read_text() == f"{os.getpid()}\n"
        assert statelock.readiness(tmp_path)[0] is False
        statelock.mark_ready(tmp_path)
        assert not (tmp_path / statelock.STARTING_NAME).exists()
        assert statelock.readiness(tmp_path)[0] is True
    finally:
        release(tmp_path)
    assert not (tmp_path / statelock.STARTING_NAME).exists()


def test_a_start_writes_its_bare_process_id_over_a_longer_one_a_killed_daemon_left(
        tmp_path: Path) -> None:
    """The lock file holds only this daemon's process id, even where a killed daemon's
    was longer: scripts read it as a bare number, and `hold` names the holder by it."""
    (tmp_path / statelock.LOCK_NAME).write_text("1234567890\n")
    hold(tmp_path)
    try:
        assert (tmp_path / statelock.LOCK_NAME).read_text() == f"{os.getpid()}\n"
    finally:
        release(tmp_path)


def test_a_start_that_meets_a_status_asking_waits_for_it_rather_than_refusing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`status` holds a shared lock on the lock file for a moment: a start that meets it
    tries again (within TAKE_SECONDS) and takes the state dir once it is given back,
    instead of ending as if another daemon ran."""
    import fcntl
    path = tmp_path / statelock.LOCK_NAME
    path.write_text("")
    asking = os.open(path, os.O_RDONLY)
    fcntl.flock(asking, fcntl.LOCK_SH)
    tries: list[float] = []

    def status_done(seconds: float) -> None:  # the start's wait: the status ends meanwhile
        tries.append(seconds)
        os.close(asking)

    monkeypatch.setattr(statelock.time, "sleep", status_done)
    hold(tmp_path)
    try:
        assert len(tries) == 1 and statelock.running(tmp_path) is True
    finally:
        release(tmp_path)


def test_only_the_process_holding_the_state_dir_marks_it_ready(tmp_path: Path) -> None:
    """mark_ready() in a process that does not hold the state dir (`outboxd run` that
    never took it) writes no ready mark: `status` would read another's state from it."""
    statelock.mark_ready(tmp_path)
    assert not (tmp_path / statelock.READY_NAME).exists()


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_folder_at_the_ready_marks_name_ends_the_start_naming_it_and_holding_nothing(
        tmp_path: Path) -> None:
    """A folder at STATE_DIR/outboxd.ready (an admin's mkdir, a restore gone wrong): a
    start cannot clear the mark a killed daemon left there, so `status` could read it as
    ready. The start ends with an error naming that path, and the state dir is not held:
    once the folder is moved away, the next start takes it."""
    (tmp_path / statelock.READY_NAME).mkdir()
    before = _open_fds()
    with pytest.raises(OSError) as info:
        hold(tmp_path)
    assert info.value.filename == str(tmp_path / statelock.READY_NAME)
    assert statelock._held == {} and running(tmp_path) is False
    assert _open_fds() == before
    (tmp_path / statelock.READY_NAME).rmdir()
    hold(tmp_path)
    assert running(tmp_path) is True
    release(tmp_path)


def test_a_lock_that_cannot_be_taken_at_all_ends_the_start_without_a_leaked_descriptor(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """flock refused for another reason than a holder (ENOLCK: a state dir on an NFS
    mount without lock support; injected): the start ends with that error, holding
    nothing and leaving no descriptor of the lock file open; `status` then cannot tell
    whether a daemon runs rather than saying none does."""
    import errno

    def no_locks(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(statelock.fcntl, "flock", no_locks)
    before = _open_fds()
    with pytest.raises(OSError) as info:
        hold(tmp_path)
    assert info.value.errno == errno.ENOLCK
    assert statelock._held == {} and _open_fds() == before
    assert running(tmp_path) is None


def test_a_holder_whose_lock_file_names_no_process_is_refused_without_a_process_id(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The lock is held but outboxd.pid holds no process id (a holder that has not
    written it yet): the refusal says another outboxd runs, without a made-up id."""
    import fcntl
    monkeypatch.setattr(statelock, "TAKE_SECONDS", 0.1)
    lock = tmp_path / statelock.LOCK_NAME
    lock.write_text("not a number\n")
    fd = os.open(lock, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(StateDirTaken) as info:
            hold(tmp_path)
    finally:
        os.close(fd)
    assert str(info.value).startswith(f"another outboxd runs with the state dir {tmp_path} ")


def test_when_a_daemon_started_and_whether_it_is_ready_are_unknown_without_a_lock_file(
        tmp_path: Path) -> None:
    """readiness() of a state dir whose lock file went (removed by hand): neither ready
    nor starting, and no start time — `status` says it cannot tell."""
    (tmp_path / statelock.READY_NAME).write_text(f"{os.getpid()}\n")
    assert statelock.readiness(tmp_path) == (None, None)

