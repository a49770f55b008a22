"""A damaged journal (daemon/journal/guarded.py): whichever statement meets the damage,
a read of the views as much as a write, it is the one error that stops the daemon and
says what to do, never sqlite3's own; and a journal file cut short is noticed by the
journal's look at its file, before a read meets it."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from daemon.errors import JournalLost
from daemon.journal import Journal, guarded
from daemon.journal.readonly import read_journal

PAGE = 4096


def written_journal(path: Path, rows: int = 200) -> None:
    """A journal of `rows` rows, closed: its pages in the file, none in a WAL file."""
    j = Journal(path)
    for i in range(rows):
        j.create(f"INV-{i}.xml", "settling", "found " + "x" * 200, durable=False)
    j.close()


def damaged_journal(path: Path, rows: int = 200) -> None:
    """A journal of `rows` rows, closed (its pages in the file), then every page but the
    first (the header and the list of tables) overwritten with 0xff: no valid page."""
    written_journal(path, rows)
    size = path.stat().st_size
    assert size > 2 * PAGE
    with path.open("r+b") as f:
        f.seek(PAGE)
        f.write(b"\xff" * (size - PAGE))


def torn_journal(path: Path) -> None:
    """A journal of 200 rows, closed, then the head of its twelfth page (one of the
    transitions' table, which a start reads no row of) overwritten: what a `cp` taken
    while the daemon checkpointed leaves, a page of another moment. Its header still fits
    its size (guarded.header_fits), and the rows of its bundles still read."""
    written_journal(path)
    with path.open("r+b") as f:
        f.seek(11 * PAGE)
        f.write(b"\x5a" * 16)


# Each a way the daemon reads or writes the journal, as its loop, its status page, its
# STATUS= line and its workers do.
USES: dict[str, Callable[[Journal], Any]] = {
    "summary": lambda j: j.summary(),
    "counts": lambda j: j.counts(),
    "recent": lambda j: j.recent(),
    "unfinished": lambda j: j.unfinished(),
    "folders_on": lambda j: j.folders_on("quarantined", "2031-05-06"),
    "get": lambda j: j.get(1),
    "write": lambda j: j.create("NEW.xml", "settling"),
}


@pytest.mark.parametrize("use", list(USES))
def test_any_statement_that_meets_damage_raises_journal_lost_and_the_journal_stays_lost(
        tmp_path: Path, use: str) -> None:
    """A read (summary() for STATUS=, the page's lists, a row) or a write that meets a
    damaged page raises JournalLost saying the file is damaged and to move it away
    (sent/ read back) — not sqlite3.DatabaseError, which ended the daemon with a
    traceback, nor a write failure blaming free space; from then on check(), which the
    loop calls each turn, raises it too, so the daemon stops whichever thread met it."""
    path = tmp_path / "journal.sqlite3"
    damaged_journal(path)
    j = Journal(path)  # the first page is whole: it opens
    try:
        with pytest.raises(JournalLost) as met:
            USES[use](j)
        message = str(met.value)
        assert f"{path} is damaged (database disk image is malformed)" in message
        assert "move it away" in message and "sent/" in message
        assert "free space" not in message
        with pytest.raises(JournalLost, match="is damaged"):
            j.check()
        with pytest.raises(JournalLost, match="is damaged"):
            j.create("LATER.xml", "settling")
    finally:
        j.close()


def test_a_guarded_connection_without_the_journals_mapping_raises_sqlites_error_as_is(
        tmp_path: Path) -> None:
    """guarded.Connection's own default: damage met by a connection the journal gave no
    mapping raises SQLite's error unchanged (it raised TypeError: the default was bound
    to the connection as a method)."""
    path = tmp_path / "journal.sqlite3"
    damaged_journal(path)
    db = sqlite3.connect(path, factory=guarded.Connection)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="malformed"):
            db.execute("SELECT * FROM bundles").fetchall()
    finally:
        db.close()


def test_a_journal_that_is_no_database_any_more_is_damaged_at_open(tmp_path: Path) -> None:
    """A journal file overwritten whole ("file is not a database") stops the start with
    the same words, not "check [paths] state_dir and its permissions"."""
    path = tmp_path / "journal.sqlite3"
    path.write_bytes(b"not a journal " * 1000)
    with pytest.raises(JournalLost, match=r"is damaged \(file is not a database\).*move it"):
        Journal(path)


def test_a_command_reading_a_damaged_journal_says_it_is_damaged(tmp_path: Path) -> None:
    """`status`, `check` (read_journal, read-only) on a damaged journal: the same error."""
    path = tmp_path / "journal.sqlite3"
    damaged_journal(path)
    with pytest.raises(JournalLost, match="is damaged"):
        read_journal(path, lambda j: j.recent())


def test_a_journal_damaged_past_its_header_stops_the_daemons_start_not_a_commands(
        tmp_path: Path) -> None:
    """A journal whose header fits but a page past it is damaged (a copy torn by `cp`
    while the daemon wrote, restored): the daemon's open (whole=True) reads every page
    once and raises JournalLost naming the file, what SQLite found and the fix, before
    anything is written into it — the file stays as found. It opened without a look, and
    the first read of the bad page stopped the daemon wherever it met it (mid-delivery).
    A command's open (status) makes no such look: it stays quick."""
    path = tmp_path / "journal.sqlite3"
    torn_journal(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        assert guarded.header_fits(fd, path.stat().st_size)  # no look at its size tells
    finally:
        os.close(fd)
    before = path.read_bytes()
    with pytest.raises(JournalLost) as met:
        Journal(path, whole=True)
    message = str(met.value)
    assert message.startswith(f"the journal {path} is damaged (SQLite's quick_check: "
                              "*** in database main *** ")
    assert "move it away" in message and "sent/" in message and ".backup" in message
    assert "\n" not in message
    assert path.read_bytes() == before
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0
    j = Journal(path)  # a command's open
    try:
        assert j.counts()["settling"] == 200
    finally:
        j.close()


def test_a_whole_journal_and_a_new_one_open_for_the_daemon(tmp_path: Path) -> None:
    """The look at every page passes a whole journal, its last writes still in its WAL
    file, and a journal not there yet (a first start)."""
    path = tmp_path / "journal.sqlite3"
    Journal(path, whole=True).close()
    j = Journal(path)
    j.create("INV-1.xml", "settling", "found", durable=True)
    try:
        assert Path(f"{path}-wal").stat().st_size > 0
        again = Journal(path, whole=True)
        try:
            assert again.counts()["settling"] == 1
        finally:
            again.close()
    finally:
        j.close()


def test_a_journal_file_cut_short_under_the_journal_is_noticed_by_check(
        tmp_path: Path) -> None:
    """The journal file cut short under an open journal whose reads SQLite still answers
    from its cache and WAL file: check() (each turn of the loop, each durable write)
    raises JournalLost saying it is damaged — emptied to 0 bytes, or cut to its first
    page (which a checkpoint writes back after `truncate -s 0`)."""
    for cut in (0, PAGE):
        path = tmp_path / f"cut{cut}.sqlite3"
        written_journal(path)
        j = Journal(path)
        try:
            j.check()  # whole: nothing to say
            os.truncate(path, cut)
            with pytest.raises(JournalLost, match=r"is damaged \(the file shrank from"):
                j.check()
            with pytest.raises(JournalLost, match="is damaged"):
                j.create("LATER.xml", "settling")
        finally:
            j.close()


def test_a_journal_cut_short_when_its_look_cannot_tell_is_looked_at_again(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file shorter than its header says, whose read afresh cannot tell now (locked by
    another process, say): check() says nothing yet, and the next check() looks again and
    finds it damaged. The size was taken as looked at, so no check() looked again while
    the file kept that size: the damage went unnoticed until a statement met it."""
    path = tmp_path / "journal.sqlite3"
    written_journal(path)
    j = Journal(path)
    try:
        j.check()
        pages = path.stat().st_size // PAGE
        with path.open("r+b") as f:  # a page more than before, ten fewer than it says
            f.seek(28)
            f.write((pages + 11).to_bytes(4, "big"))
            f.seek(0, os.SEEK_END)
            f.write(bytes(PAGE))
        real_fault = guarded.fault
        answers: list[object] = []

        def fault(p: str) -> object:
            answers.append(guarded.Unsure.NOW if not answers else real_fault(p))
            return answers[-1]
        monkeypatch.setattr(guarded, "fault", fault)
        j.check()  # cannot tell now
        with pytest.raises(JournalLost, match="is damaged"):
            j.check()
        assert answers[0] is guarded.Unsure.NOW and len(answers) == 2
    finally:
        j.close()


def test_a_journal_growing_at_checkpoints_is_not_cut_short(tmp_path: Path) -> None:
    """The file grows as SQLite's checkpoints copy the WAL into it: each look at a larger
    file, its header fitting its size, finds nothing wrong."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    try:
        sizes = set()
        for i in range(3000):  # some 1,000 pages a checkpoint
            j.create(f"INV-{i}.xml", "settling", "found " + "x" * 200, durable=False)
            if i % 100 == 0:
                j.check()
                sizes.add(path.stat().st_size)
        assert len(sizes) > 2, sizes
    finally:
        j.close()


# A process with an open journal whose last 5 rows are in its WAL file only: the file is
# emptied under it, check() finds it damaged, and the process closes the journal (as the
# daemon's stop does) and ends (as the daemon then does: at its end Python collects what
# is left, a connection too).
EMPTIED_THEN_CLOSED = """
import os, sys
from pathlib import Path
from daemon.errors import JournalLost
from daemon.journal import Journal, guarded
path = Path(sys.argv[1])
j = Journal(path)
for i in range(200):
    j.create(f"INV-{i}.xml", "settling", "found " + "x" * 200, durable=False)
j.close()
j = Journal(path)
for i in range(5):
    j.create(f"NEW-{i}.xml", "settling", durable=False)
os.truncate(path, 0)
try:
    j.check()
except JournalLost:
    print(os.path.getsize(f"{path}-wal"))
    j.close()
"""


def test_a_damaged_journal_and_its_wal_file_stay_as_found_through_close_and_exit(
        tmp_path: Path) -> None:
    """A journal found damaged is not written into as the daemon stops: its close (and
    the process's end) leaves the emptied file at 0 bytes and the WAL file beside it,
    whole — the rows written since the last checkpoint, which the admin is told to move
    away with it. SQLite's close checkpointed: it copied the WAL's pages into the damaged
    file and deleted the WAL file."""
    path = tmp_path / "journal.sqlite3"
    done = subprocess.run([sys.executable, "-c", EMPTIED_THEN_CLOSED,
                           str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    wal_size = int(done.stdout)
    assert wal_size > 0
    assert path.stat().st_size == 0
    assert Path(f"{path}-wal").stat().st_size == wal_size


# Another process's write to the journal, as `outboxd retry` makes one while the daemon
# runs: its close checkpoints the WAL into the file and deletes the WAL file if no other
# process holds a lock on the file.
OTHER_WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("CREATE TABLE IF NOT EXISTS other (x)")
db.execute("INSERT INTO other VALUES (1)")
db.close()
"""


def test_the_look_at_a_grown_journal_keeps_the_lock_that_keeps_its_wal(tmp_path: Path) -> None:
    """check() looks at the file's header when its size changed. That look opened and
    closed a descriptor of the file, and on Linux a close drops every lock the process
    holds on the file, SQLite's too: the next writer of another process (`outboxd retry`)
    then checkpointed and deleted the WAL under the running daemon, which stopped at its
    next sync ("could not be synced to disk"). The journal's lock holds after the look:
    another process's write and close leave the WAL file, and the journal writes on."""
    path = tmp_path / "journal.sqlite3"
    j = Journal(path)
    try:
        grown = False
        for i in range(3000):  # until a checkpoint grows the file, and check() looks
            j.create(f"INV-{i}.xml", "settling", "found " + "x" * 200, durable=False)
            before = j._size
            j.check()
            if j._size != before and j._size > 0:
                grown = True
                break
        assert grown, "the file never grew: no look at its header was made"
        subprocess.run([sys.executable, "-c", OTHER_WRITER, str(path)], check=True,
                       timeout=60)
        assert Path(f"{path}-wal").exists(), "another process's close deleted the WAL"
        j.create("INV-after.xml", "settling", "found", durable=True)
        j.check()
    finally:
        j.close()


def test_the_header_look_reads_64k_pages_and_trusts_only_a_valid_page_count(
        tmp_path: Path) -> None:
    """header_fits: a journal of 64 KiB pages (the header's page size 1 means 65536) cut
    by a page is cut short; a page count the header does not vouch for (bytes 24-27 and
    92-95 differ: written by a SQLite that did not keep it) is not held against the
    file's size."""
    path = tmp_path / "big.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA page_size = 65536")
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [(b"x" * 1000,) for _ in range(200)])
    db.commit()
    db.close()
    size = path.stat().st_size
    assert int.from_bytes(path.read_bytes()[16:18], "big") == 1 and size > 2 * 65536
    fd = os.open(path, os.O_RDONLY)
    try:
        assert guarded.header_fits(fd, size)
        assert not guarded.header_fits(fd, size - 65536)
        with path.open("r+b") as f:  # the count no longer vouched for
            f.seek(92)
            f.write(b"\xff\xff\xff\xff")
        assert guarded.header_fits(fd, size - 65536)
    finally:
        os.close(fd)


def test_a_look_afresh_finds_the_bundles_table_gone_and_leaves_an_empty_file_alone(
        tmp_path: Path) -> None:
    """fault(): a file that reads whole but holds no table of bundles (another program's
    database in its place) is at fault; an empty file is not looked into at all: SQLite
    would delete the WAL file beside it, the only copy of what the daemon wrote since
    its last checkpoint."""
    other = tmp_path / "other.sqlite3"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t (x)")
    db.commit()
    db.close()
    found = guarded.fault(str(other))
    assert isinstance(found, sqlite3.DatabaseError) and "bundles is gone" in str(found)
    written_journal(tmp_path / "whole.sqlite3")
    assert guarded.fault(str(tmp_path / "whole.sqlite3")) is None
    empty = tmp_path / "empty.sqlite3"
    empty.touch()
    wal = tmp_path / "empty.sqlite3-wal"
    wal.write_bytes(b"\x37\x7f\x06\x82" + bytes(28))  # a WAL file's header, more or less
    assert guarded.fault(str(empty)) is None
    assert wal.read_bytes()[:4] == b"\x37\x7f\x06\x82"


def test_a_journal_file_written_over_in_place_by_another_file_is_noticed_by_check(
        tmp_path: Path) -> None:
    """The journal file written over in place while the daemon runs (`cat notes.txt >
    journal.sqlite3`, larger than it was): its head is no SQLite header any more, and
    check() raises JournalLost saying it is damaged, before anything more is written."""
    path = tmp_path / "journal.sqlite3"
    written_journal(path)
    j = Journal(path)
    try:
        j.check()
        size = path.stat().st_size
        with path.open("r+b") as f:
            f.write(b"notes of a clerk\n" * (size // 17 + PAGE))
        with pytest.raises(JournalLost, match="is damaged"):
            j.check()
    finally:
        j.close()


def test_a_look_afresh_at_a_torn_journal_says_what_quick_check_found_on_one_line(
        tmp_path: Path) -> None:
    """fault() on a journal whose header fits but a page past it is torn (a `cp` taken
    while the daemon checkpointed): the error it gives is SQLite's quick_check answer,
    on one line, for the message that names the file and the fix."""
    path = tmp_path / "journal.sqlite3"
    torn_journal(path)
    found = guarded.fault(str(path))
    assert isinstance(found, sqlite3.DatabaseError)
    assert str(found).startswith("SQLite's quick_check: *** in database main *** ")
    assert "\n" not in str(found)


class _Met(Exception):
    """What the test's mapping turns damage into (the journal's is JournalLost)."""


def _half_damaged(path: Path) -> guarded.Connection:
    """A database of 2,000 rows over many pages, closed, then its second half of pages
    overwritten with 0xff; opened through guarded.Connection with damage mapped to _Met.
    A statement's first rows read whole; its later ones meet the damage."""
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE t (x)")
    db.executemany("INSERT INTO t VALUES (?)", [("y" * 200,) for _ in range(2000)])
    db.commit()
    db.close()
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.seek(size // 2 // PAGE * PAGE)
        f.write(b"\xff" * (size - size // 2 // PAGE * PAGE))
    conn = sqlite3.connect(path, factory=guarded.Connection)
    conn.damaged = lambda exc: _Met(str(exc))  # type: ignore[method-assign, assignment]
    return conn


# Each way rows are fetched, or statements run, on a guarded connection.
FETCHES: dict[str, Callable[[guarded.Connection], Any]] = {
    "fetchall": lambda db: db.execute("SELECT x FROM t").fetchall(),
    "fetchone": lambda db: [r for r in iter(db.execute("SELECT x FROM t").fetchone, None)],
    "fetchmany": lambda db: db.execute("SELECT x FROM t").fetchmany(5000),
    "iteration": lambda db: list(db.execute("SELECT x FROM t")),
    "executemany": lambda db: db.executemany("INSERT INTO t VALUES (?)", [("z",)] * 9),
    "executescript": lambda db: db.executescript("SELECT count(*) FROM t; "
                                                 "INSERT INTO t VALUES ('z');"),
}


@pytest.mark.parametrize("fetch", list(FETCHES))
def test_damage_met_past_a_statements_first_rows_is_mapped_however_they_are_fetched(
        tmp_path: Path, fetch: str) -> None:
    """A damaged page met only after a statement's first rows read whole (the damage
    lies further in the file) is the connection's mapped error whichever way the rows
    are fetched, or statements run — the journal's JournalLost, never sqlite3's own
    DatabaseError, which ended the daemon with a traceback."""
    db = _half_damaged(tmp_path / "half.sqlite3")
    try:
        assert db.execute("SELECT x FROM t").fetchone() == ("y" * 200,)  # a whole page
        with pytest.raises(_Met, match="malformed"):
            FETCHES[fetch](db)
    finally:
        db.close()
