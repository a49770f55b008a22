"""Permission changes count as changes (issue 6, case 4): an invoice file the daemon may
not read, fixed with chmod, is read again and sent without anyone touching it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LEAN, START_DEADLINE, Env
from helpers import drop_bundle, pdf_bytes, wait_for

from daemon.configuration.config import OutboxConfig
from daemon.watching.scan import candidate_for
from daemon.watching.snapshot import snapshot
from faults.conftest import OUTBOXD, no_traceback

NOBODY = 65534


def test_snapshot_changes_when_only_the_mode_changes(tmp_path: Path) -> None:
    """A chmod (same name, size and mtime) gives a different snapshot, so settling and
    reading start again."""
    cfg = OutboxConfig(path=tmp_path)
    (tmp_path / "INV-1.xml").write_bytes(b"<x/>")
    (tmp_path / "INV-1").mkdir()
    (tmp_path / "INV-1" / "a.pdf").write_bytes(b"%PDF")
    cand = candidate_for(cfg, "INV-1.xml")
    before = snapshot(cand, cfg)
    st = os.stat(tmp_path / "INV-1" / "a.pdf")
    os.chmod(tmp_path / "INV-1" / "a.pdf", 0o000)
    os.utime(tmp_path / "INV-1" / "a.pdf", ns=(st.st_atime_ns, st.st_mtime_ns))
    assert snapshot(cand, cfg) != before
    os.chmod(tmp_path / "INV-1" / "a.pdf", 0o644)
    os.chmod(tmp_path / "INV-1.xml", 0o600)
    assert snapshot(cand, cfg) != before


@pytest.fixture
def open_root() -> Iterator[Path]:
    """A folder the unprivileged user can reach (pytest's tmp folders are root-only)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run the daemon as another user")
    root = Path(tempfile.mkdtemp(prefix="outboxd-perm-"))
    os.chmod(root, 0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _quarantined_for_nobody(open_root: Path) -> tuple[Env, Path]:
    """An outbox and a quarantined INV-1 (its folder, reason.json, its journal row) owned
    by NOBODY, with a configuration anyone may read; the state dir is left to the test."""
    import json

    from helpers import ubl_invoice, write

    from daemon.journal import Journal
    env = Env(open_root)
    env.outbox.mkdir()
    env.write_config("http://127.0.0.1:9/bundles")
    folder = env.quarantine / "2026-11-26" / "INV-1--3f2a9c01b7e4"
    write(folder / "INV-1.xml", ubl_invoice("INV-1"))
    write(folder / "INV-1" / "a.pdf", pdf_bytes())
    write(folder / "reason.json", json.dumps({"invoice_file": "INV-1.xml"}).encode())
    env.state.mkdir()
    journal = Journal(env.state / "journal.sqlite3")
    journal.create("INV-1.xml", "quarantined", archive_dir=str(folder))
    journal.close()
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(env.outbox), str(env.quarantine)],
                   check=True)
    os.chmod(env.config, 0o644)  # whatever umask an earlier test in this process left
    return env, folder


def test_unreadable_invoice_fixed_with_chmod_is_sent(open_root: Path, receiver) -> None:
    """The daemon runs as an unprivileged user; an invoice file it may not read is reported
    (status shows the error), and after `chmod` alone it is read and sent."""
    env = Env(open_root)
    env.outbox.mkdir()
    env.write_config(receiver.url, **LEAN)  # what is read, not where: see conftest.LEAN
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(open_root)], check=True)
    log = open_root / "daemon.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                                 "--clear-groups", *OUTBOXD, "run", "-c", str(env.config)],
                                stderr=fh, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: "outboxd running" in log.read_text() or proc.poll() is not None,
                 timeout=START_DEADLINE, what="the daemon to start")
        assert proc.poll() is None, log.read_text()
        # Made ready outside the outbox, then moved in (sidecar first): `chown -R` of
        # the live outbox failed on a temporary of the daemon's status page renamed away
        # under it, and an invoice made unreadable only after it lay there could be read
        # and sent first, on a loaded host, so that no read error ever came.
        staging = open_root / "staging"
        staged = drop_bundle(staging, "INV-4", {"a.pdf": pdf_bytes()})
        subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(staging)], check=True)
        os.chmod(staged, 0o000)
        (staging / "INV-4").rename(env.outbox / "INV-4")
        inv = staged.rename(env.outbox / staged.name)
        wait_for(lambda: "bundle cannot be read" in log.read_text(), what="the read error")
        st = os.stat(inv)
        os.chmod(inv, 0o644)
        os.utime(inv, ns=(st.st_atime_ns, st.st_mtime_ns))  # only the mode changes
        wait_for(env.sent_bundles, what="the bundle sent after chmod")
        assert len(receiver.accepted()) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # no daemon left behind; the log check below says why
            proc.wait()
    no_traceback(log.read_text())


def test_retry_by_a_user_who_may_not_write_the_journal_moves_nothing(open_root: Path) -> None:
    """`outboxd retry` records the retry in the journal. Run by a user who may read but
    not write it (a member of the daemon's group), it refuses before moving anything
    (exit 1, naming the journal and whom to run it as): moved anyway, the bundle's row
    stayed `quarantined` with no folder behind it, and `status` listed it twice once it
    was quarantined again."""
    env, folder = _quarantined_for_nobody(open_root)
    os.chmod(env.state, 0o755)
    os.chmod(env.state / "journal.sqlite3", 0o644)  # readable, not writable, by NOBODY
    done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", *OUTBOXD, "retry", "-c", str(env.config),
                           "3f2a9c01b7e4"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "journal" in done.stderr and "sudo -u" in done.stderr
    assert "nothing was moved" in done.stderr
    assert (folder / "INV-1.xml").exists() and list(env.outbox.iterdir()) == []
    no_traceback(done.stderr)


@pytest.mark.parametrize("command,run_as", [
    ("status", "or as a member of its group outboxd"),
    ("retry", "or as root"),
])
def test_status_and_retry_by_a_user_who_may_not_enter_the_state_dir_say_so_in_one_line(
        open_root: Path, command: str, run_as: str) -> None:
    """`outboxd status` or `retry` run by an account that may not enter the state dir (a
    clerk's; here mode 000): Path.exists() raised PermissionError there, and the command
    ended with the generic line about a path's permissions and disk space. It says in one
    line that it cannot look into the state dir, naming it, and whom to run it as; exit 1,
    no traceback, and retry moves nothing."""
    env, folder = _quarantined_for_nobody(open_root)
    os.chmod(env.state, 0o000)
    args = [command, "-c", str(env.config)] + (["3f2a9c01b7e4"] if command == "retry" else [])
    try:
        done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                               "--clear-groups", *OUTBOXD, *args],
                              capture_output=True, text=True, timeout=60)
    finally:
        os.chmod(env.state, 0o750)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr == (
        f"outboxd: cannot look into the state dir {env.state} for the journal (Permission "
        f"denied); {'nothing was moved — ' if command == 'retry' else ''}run it as the "
        f"daemon's user (sudo -u outboxd outboxd {command}{' …' if command == 'retry' else ''}"
        f") {run_as}{', which may read the state dir' if command == 'status' else ''}\n")
    assert done.stdout == ""
    assert (folder / "INV-1.xml").exists() and list(env.outbox.iterdir()) == []
    no_traceback(done.stderr)


@pytest.mark.parametrize("command", ["status", "retry"])
def test_the_hints_name_the_user_the_state_dir_belongs_to(
        open_root: Path, made_user: str, command: str) -> None:
    """A drop-in runs the daemon as another user than outboxd (`User=`; systemd gives it
    the state dir): status and retry by a user who may not enter the state dir name that
    user to run them as (and status its group), not outboxd, which may not exist there."""
    env, _ = _quarantined_for_nobody(open_root)
    shutil.chown(env.state, made_user, made_user)
    os.chmod(env.state, 0o700)
    args = [command, "-c", str(env.config)] + (["3f2a9c01b7e4"] if command == "retry" else [])
    done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", *OUTBOXD, *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"(sudo -u {made_user} outboxd {command}" in done.stderr
    assert "sudo -u outboxd" not in done.stderr
    if command == "status":
        assert f"or as a member of its group {made_user}," in done.stderr
    no_traceback(done.stderr)


# outboxd as Python 3.13 and later run it: their Path.exists() is os.path.exists(),
# False for a path it may not look at, where 3.11 and 3.12 raise PermissionError.
_PATHLIB_313 = ("import os, pathlib, sys; pathlib.Path.exists = lambda self, *, "
                "follow_symlinks=True: (os.path.exists if follow_symlinks else "
                "os.path.lexists)(self); from daemon.cli import main; sys.exit(main())")


@pytest.mark.parametrize("python", ["this", "3.13"])
def test_attach_of_a_file_behind_a_folder_closed_to_its_user_says_so_in_one_line(
        open_root: Path, python: str) -> None:
    """`sudo -u outboxd outboxd attach INV-1 ~/timesheet.pdf`, as commands.md showed it:
    a home folder is closed to other users (0700 on Debian 12), Path.exists() raised
    PermissionError, and attach ended with the generic line about a path that should be
    readable *and writable* and a disk with space. It says in one line that FILE cannot
    be reached by this user, naming the file and the user, and the fix (copy it for that
    user alone); exit 1, nothing in the outbox changes. Also under Python
    3.13's pathlib, whose Path.exists() says False there: attach said the file "does
    not exist", and the admin went looking for a typo."""
    from helpers import ubl_invoice, write
    env = Env(open_root)
    write(env.outbox / "INV-1.xml", ubl_invoice("INV-1"))
    env.write_config("http://127.0.0.1:9/bundles")
    os.chmod(env.config, 0o644)
    subprocess.run(["chown", "-R", f"{NOBODY}:{NOBODY}", str(env.outbox)], check=True)
    home = open_root / "home"
    write(home / "timesheet.pdf", pdf_bytes())
    os.chmod(home, 0o700)  # root's, as an admin's home folder is theirs
    done = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups",
                           *(OUTBOXD if python == "this" else [sys.executable, "-c",
                                                                _PATHLIB_313]),
                           "attach", "-c", str(env.config), "INV-1",
                           str(home / "timesheet.pdf")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    [line] = done.stderr.splitlines()
    assert str(home / "timesheet.pdf") in line and "Permission denied" in line
    assert "nobody" in line and "copy it" in line and "nothing was changed" in line
    # The copy it advises is that user's alone: "such as /tmp" made one anyone may read.
    assert f"sudo install -o nobody -m 0600 {home / 'timesheet.pdf'} /tmp/" in line
    assert "disk" not in line
    assert sorted(p.name for p in env.outbox.iterdir()) == ["INV-1.xml"]
    no_traceback(done.stderr)
