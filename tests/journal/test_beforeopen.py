"""The journal's file looked at before SQLite opens it (daemon/journal/beforeopen.py),
as the daemon's Journal meets it. (The read-only readers' meeting: journal/
test_readonly.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daemon.errors import JournalError
from daemon.journal import Journal


@pytest.mark.parametrize("suffix", ["", "-wal", "-shm"])
def test_a_journal_or_a_file_of_it_that_is_a_fifo_is_refused_naming_it(
        tmp_path: Path, suffix: str) -> None:
    """journal.sqlite3, or its -wal or -shm beside it, a FIFO: `outboxd retry` and
    `outboxd run` open the journal to write, where SQLite opened the FIFO and said
    "disk I/O error — check permissions". Refused before SQLite opens anything,
    naming the file, what it is and to move it away."""
    from helpers import raised, without_blocking
    path = tmp_path / "journal.sqlite3"
    if suffix:
        Journal(path).close()  # a journal there, its -wal and -shm gone with the close
    fifo = Path(f"{path}{suffix}")
    os.mkfifo(fifo)
    error = without_blocking(lambda: raised(lambda: Journal(path)), fifo, "Journal")
    assert isinstance(error, JournalError)
    assert str(error).startswith(str(fifo)) or str(error).startswith(f"the journal {fifo}")
    assert "is a FIFO" in str(error) and "move it away" in str(error)


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_a_file_beside_the_journal_that_is_a_link_is_refused_not_followed(
        tmp_path: Path, suffix: str) -> None:
    """The -wal or -shm beside the journal a symbolic link, even to a regular file: SQLite
    would write the journal's pages where it leads (outside the state dir). Refused before
    SQLite opens anything, naming it; what it leads to is left as it was."""
    path = tmp_path / "journal.sqlite3"
    Journal(path).close()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"")
    Path(f"{path}{suffix}").symlink_to(elsewhere)
    with pytest.raises(JournalError, match="move it away") as refused:
        Journal(path)
    assert str(refused.value).startswith(f"{path}{suffix}")
    assert "symbolic link" in str(refused.value)
    assert elsewhere.read_bytes() == b""
