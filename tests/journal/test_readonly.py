"""The journal read beside the daemon by `status` and `check` (daemon/journal/readonly.py)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from helpers import raised, without_blocking

from daemon.errors import JournalError
from daemon.journal import Journal, readonly
from daemon.journal.readonly import JournalReader, read_journal


def test_a_journal_no_daemon_has_open_is_read_without_making_files_beside_it(
        tmp_path: Path) -> None:
    """A journal closed by its daemon is one file: reading it leaves no -wal or -shm in
    the state dir (they would be the reading user's files, in the daemon's folder)."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
    j.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite3"]
    assert read_journal(path, lambda journal: journal.counts()["waiting"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite3"]


def test_a_journal_the_daemon_has_open_is_read_with_what_it_wrote_last(
        tmp_path: Path) -> None:
    """While the daemon holds the journal (its WAL there), a read sees its latest commit."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    try:
        j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
        assert (tmp_path / "journal.sqlite3-wal").exists()
        assert read_journal(path, lambda journal: journal.counts()["waiting"]) == 1
    finally:
        j.close()


@pytest.mark.parametrize("torn", [False, True])
def test_a_daemon_that_opens_the_journal_during_a_read_is_read_in_step_with(
        tmp_path: Path, torn: bool) -> None:
    """No -wal when the read began, so it read the file as is (immutable: no locks). A
    daemon that starts meanwhile writes, and its checkpoints change that file under the
    read: SQLite then may answer from half-written pages ("database disk image is
    malformed", which `status` calls a damaged journal to move away) or miss its rows.
    With its -wal there after the read, the journal is read again in step with it."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
    j.close()
    daemon: list[Journal] = []

    def read(journal: Journal) -> int:
        if not daemon:
            daemon.append(Journal(path))  # the daemon starts during the first read
            daemon[0].create("INV-2.xml", "waiting", unattached_ids=["INV-2"])
            if torn:
                raise sqlite3.DatabaseError("database disk image is malformed")
        return journal.counts()["waiting"]

    try:
        assert read_journal(path, read) == 2
    finally:
        daemon[0].close()


def test_a_journal_that_is_a_fifo_is_an_error_naming_it_not_a_hang(tmp_path: Path) -> None:
    """journal.sqlite3 a FIFO in the state dir: `outboxd status` hung for good in SQLite's
    open. It is refused without opening it, naming the file and what to do."""
    path = tmp_path / "journal.sqlite3"
    os.mkfifo(path)
    error = without_blocking(lambda: raised(lambda: read_journal(path, lambda j: j.counts())),
                             path, "read_journal")
    assert isinstance(error, JournalError)
    assert str(error).startswith(f"the journal {path} is a FIFO, not a file — move it away")


class TestJournalReader:
    """JournalReader: read_journal for the many questions of one run, one open."""

    def test_many_questions_are_read_from_one_open(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """200 questions open the journal once (read_journal opened it 200 times, about
        0.2 ms each); close() closes it, and the next question opens it again. Once a
        daemon opens the journal, it is opened again once, in step with it, not once a
        question."""
        path = tmp_path / "journal.sqlite3"
        j = Journal(path)
        j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
        j.close()
        opened: list[Path] = []

        class Counted(Journal):
            def __init__(self, at: Path, **kw: bool) -> None:
                opened.append(at)
                super().__init__(at, **kw)

        monkeypatch.setattr(readonly, "Journal", Counted)
        reader = JournalReader(path)
        assert [reader.read(lambda journal: journal.counts()["waiting"])
                for _ in range(200)] == [1] * 200
        assert opened == [path]
        reader.close()
        assert reader.read(lambda journal: journal.counts()["waiting"]) == 1
        assert opened == [path, path]
        reader.close()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["journal.sqlite3"]
        daemon = Journal(path)  # a daemon starts on it: its WAL file beside the journal
        try:
            assert [reader.read(lambda journal: journal.counts()["waiting"])
                    for _ in range(20)] == [1] * 20
            # Opened again once, in step with the daemon, and kept for the rest.
            assert opened == [path, path, path]
        finally:
            reader.close()
            daemon.close()

    def test_a_daemon_that_opens_the_journal_between_questions_is_read_in_step_with(
            self, tmp_path: Path) -> None:
        """Opened as one file (no daemon), then a daemon starts and writes: the next
        question sees its row, read again in step with it (immutable, the open would
        miss what sits in the daemon's WAL)."""
        path = tmp_path / "journal.sqlite3"
        j = Journal(path)
        j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
        j.close()
        reader = JournalReader(path)
        try:
            assert reader.read(lambda journal: journal.counts()["waiting"]) == 1
            daemon = Journal(path)
            try:
                daemon.create("INV-2.xml", "waiting", unattached_ids=["INV-2"])
                assert reader.read(lambda journal: journal.counts()["waiting"]) == 2
            finally:
                daemon.close()
        finally:
            reader.close()


def test_a_journal_emptied_under_its_daemon_is_said_damaged_and_its_wal_is_left_alone(
        tmp_path: Path) -> None:
    """A journal emptied (truncate -s 0) while its daemon runs: a read beside it (status,
    check) says it is damaged, to be moved away with its -wal and -shm, without SQLite
    opening it — SQLite deletes the -wal file beside a database of 0 bytes even opened
    read-only, and that WAL holds all that the daemon wrote since its last checkpoint
    (the status said "no such table: bundles" and left the state dir without it). It
    said "start outboxd: it takes an empty journal as a new one", which the start, which
    would drop that WAL, refuses now too."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    try:
        j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
        wal = tmp_path / "journal.sqlite3-wal"
        size = wal.stat().st_size
        os.truncate(path, 0)
        damaged = (r"is damaged \(0 bytes, beside a journal.sqlite3-wal file of [0-9,]+ "
                   r"bytes that holds its last writes\).* move it away, with the "
                   r"journal.sqlite3-wal and journal.sqlite3-shm files")
        with pytest.raises(JournalError, match=damaged):
            read_journal(path, lambda journal: journal.counts())
        with pytest.raises(JournalError, match=damaged):
            JournalReader(path).read(lambda journal: journal.counts())
        assert wal.exists() and wal.stat().st_size == size
        assert path.stat().st_size == 0
    finally:
        j.close()


def test_a_journal_of_0_bytes_without_a_wal_is_said_empty_to_be_started_on(
        tmp_path: Path) -> None:
    """A 0-byte journal with no WAL beside it (or an empty one) holds nothing to lose: a
    read says it is empty and that outboxd's start takes it as a new journal."""
    path = tmp_path / "journal.sqlite3"
    path.touch()
    with pytest.raises(JournalError, match=r"is empty \(0 bytes\).*start outboxd"):
        read_journal(path, lambda journal: journal.counts())
    Path(f"{path}-wal").touch()
    with pytest.raises(JournalError, match=r"is empty \(0 bytes\).*start outboxd"):
        read_journal(path, lambda journal: journal.counts())


def test_whether_the_journal_is_there_is_told_as_path_exists_tells_it_or_said_why_not(
        tmp_path: Path) -> None:
    """journal_there: not there for a path that does not exist, one below a file, or one
    below a link loop (as Path.exists() answers them); there for a journal; and, where
    this user cannot look into the state dir, a JournalError naming the state dir, why
    and the fix given, never an answer of "no journal"."""
    journal = tmp_path / "journal.sqlite3"
    assert not readonly.journal_there(journal, "run it as outboxd")
    (tmp_path / "file").write_bytes(b"")
    assert not readonly.journal_there(tmp_path / "file" / "journal.sqlite3", "fix")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert not readonly.journal_there(tmp_path / "loop" / "journal.sqlite3", "fix")
    Journal(journal).close()
    assert readonly.journal_there(journal, "fix")

    def refused(path: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    with pytest.MonkeyPatch.context() as m, pytest.raises(JournalError) as error:
        m.setattr(readonly.os, "stat", refused)
        readonly.journal_there(journal, "run it as outboxd")
    assert str(error.value) == (f"cannot look into the state dir {tmp_path} for the journal "
                                "(Permission denied); run it as outboxd")


def test_a_daemon_that_opens_the_journal_during_a_readers_later_question_is_read_again(
        tmp_path: Path) -> None:
    """JournalReader, opened as one file (no daemon), asked a second question during
    which a daemon starts and writes: the answer read from the file as it was is
    dropped, and the question asked again in step with the daemon's WAL — never an
    answer that misses the daemon's row (or meets its checkpoint half-way)."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
    j.close()
    reader = JournalReader(path)
    daemon: list[Journal] = []
    asked: list[int] = []

    def read(journal: Journal) -> int:
        if not daemon:
            daemon.append(Journal(path))  # the daemon starts during this question
            daemon[0].create("INV-2.xml", "waiting", unattached_ids=["INV-2"])
        asked.append(journal.counts()["waiting"])
        return asked[-1]

    try:
        assert reader.read(lambda journal: journal.counts()["waiting"]) == 1
        assert reader.read(read) == 2
        assert asked == [1, 2]  # the first answer, from the file as it was, dropped
    finally:
        reader.close()
        for opened in daemon:
            opened.close()


@pytest.mark.parametrize("reader", ["check", "status"])
def test_a_journal_held_locked_is_waited_for_once_a_command_not_once_a_look(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    """Another program holds the journal locked (a sqlite3 shell in exclusive mode): the
    first look of a command tries to read it in step and waits BUSY_SECONDS for the lock;
    every later look of that command (each bundle `check` checks, the second and third of
    `status`) tries in step without waiting, then reads the file as it is at once, with
    the same answers. Each look waited again before: 5 s a bundle for `check`, two waits
    for `status`."""
    import daemon.journal
    monkeypatch.setattr(daemon.journal, "BUSY_SECONDS", 0.2)
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
    j.close()
    tries: list[str] = []
    real = readonly._opened

    def opened(path: Path, read: object, immutable: bool, wait_for_locks: bool = True
               ) -> object:
        tries.append("as is" if immutable else "waits" if wait_for_locks else "in step")
        return real(path, read, immutable, wait_for_locks)  # type: ignore[arg-type]
    monkeypatch.setattr(readonly, "_opened", opened)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE bundles SET attempts = attempts")
        count = lambda journal: journal.counts()["waiting"]  # noqa: E731
        if reader == "check":
            r = JournalReader(path)
            answers = [r.read(count) for _ in range(3)]
            r.close()
        else:
            wait = readonly.OneWait()
            answers = [read_journal(path, count, wait) for _ in range(3)]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert answers == [1, 1, 1]
    # One try in step that waited; the later ones try in step without waiting.
    assert tries == ["waits", "as is", "in step", "as is", "in step", "as is"]


@pytest.mark.parametrize("reader", ["check", "status"])
def test_a_lock_let_go_after_a_commands_first_look_leaves_its_later_looks_in_step(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str) -> None:
    """The first look of a command found the journal held (a sqlite3 shell in exclusive
    mode) and read the file as it is. The shell ended; a daemon opened the journal and
    recorded a bundle, in its WAL only (not yet checkpointed). The command's later looks
    see that bundle: each still tries in step, only without waiting for a lock again. A
    lock once met made every later look of the run read the file alone, blind to the
    daemon's WAL — `check` of a whole outbox missed a `duplicate` sent a minute ago."""
    import daemon.journal
    monkeypatch.setattr(daemon.journal, "BUSY_SECONDS", 0.2)
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    j.create("INV-1.xml", "waiting", unattached_ids=["INV-1"])
    j.close()
    count = lambda journal: journal.counts()["waiting"]  # noqa: E731
    r, wait = JournalReader(path), readonly.OneWait()

    def look() -> int:
        return r.read(count) if reader == "check" else read_journal(path, count, wait)
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("PRAGMA locking_mode=EXCLUSIVE")
        holder.execute("BEGIN EXCLUSIVE")
        holder.execute("UPDATE bundles SET attempts = attempts")
        first = look()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    daemon_journal = Journal(path)
    try:
        daemon_journal.create("INV-2.xml", "waiting", unattached_ids=["INV-2"])
        assert (tmp_path / "journal.sqlite3-wal").exists()
        later = [look(), look()]
    finally:
        r.close()
        daemon_journal.close()
    assert (first, later) == (1, [2, 2])
