"""The journal under faults (issue 6, cases 5 and 6): a full state disk is reported as what
it is, once, with back-off; a journal deleted while the daemon runs stops the daemon, and the
fresh journal it restarts on still knows what `sent/` holds."""

from __future__ import annotations

import json
import os
import signal

import pytest
from conftest import Env
from helpers import drop_bundle, pdf_bytes, ubl_invoice, wait_for

from faults.conftest import Mounts, bundle_of, fill, no_traceback

# Daemons here start lean (conftest.LEAN): the journal's faults do not depend on where bundles are
# read.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def test_full_state_disk_reports_the_real_error_once_and_recovers(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """Case 5: with the state dir's file system full, the log says "database or disk is full"
    (not a failed ROLLBACK), without traceback and once, however often the journal's
    back-off tries again, and no line says the bundle is settling while no row could
    record it (honest state); once space is freed the bundle is sent."""
    # Room for the compiled e-invoice rules (cached in state_dir) and the journal.
    mounts.tmpfs(env.state, "64m")
    env.write_config(receiver.url)
    daemon = start_daemon()
    filler = fill(env.state)
    drop_bundle(env.outbox, "INV-5", {"a.pdf": pdf_bytes()})
    wait_for(lambda: "disk is full" in daemon.stderr(), what="the journal error")
    # Each write attempt of the journal writes to its WAL file, which sets the file's mtime
    # even when the write fails (the kernel updates it before it looks for space): a new
    # mtime while the disk is full is one more failed attempt.
    wal = env.state / "journal.sqlite3-wal"
    attempts = [wal.stat().st_mtime_ns]  # the first attempt, the one that was logged

    def tried_again() -> bool:
        if (mtime := wal.stat().st_mtime_ns) != attempts[-1]:
            attempts.append(mtime)
        return len(attempts) >= 3

    wait_for(tried_again, timeout=60, interval=0.02,
             what="the journal's back-off to try twice more on the full disk")
    log = daemon.stderr()
    assert "journal writable again" not in log, log[-3000:]  # each attempt failed
    assert "cannot rollback" not in log
    assert sum("disk is full" in line for line in log.splitlines()) == 1, log[-3000:]
    assert not [line for line in log.splitlines() if '"bundle settling"' in line], log[-3000:]
    filler.unlink()
    wait_for(env.sent_bundles, timeout=30, what="the bundle sent once space is back")
    assert len(receiver.accepted()) == 1
    [recovered] = [json.loads(line) for line in daemon.stderr().splitlines()
                   if "journal writable again" in line]
    assert recovered["failures"] >= len(attempts), recovered
    no_traceback(daemon.stderr())


@pytest.mark.usefixtures("quick_page")
def test_full_state_disk_is_said_on_the_clerks_page_until_the_journal_is_written_again(
        env: Env, mounts: Mounts, receiver, start_daemon) -> None:
    """The state dir (its own small tmpfs) fills while the daemon runs, and an invoice
    file is dropped (alone: no new folder, which would ask for the page by itself):
    nothing can be recorded, so no row changes, yet the page in the outbox (on another
    disk) says at its top, in a clerk's words, that nothing is sent, that nothing is lost
    and to tell the admin. Once space is back the file is recorded and listed, and the
    page no longer says so."""
    mounts.tmpfs(env.state, "8m")
    env.write_config(receiver.url)
    daemon = start_daemon()
    page = env.outbox / "outboxd-status.html"
    wait_for(page.exists, what="the first page")
    filler = fill(env.state)
    drop_bundle(env.outbox, "INV-6", {})
    wait_for(lambda: "disk is full" in daemon.stderr(), what="the journal error")
    wait_for(lambda: "Nothing is being sent at the moment" in page.read_text("utf-8"),
             what="the page to say why nothing moves")
    assert "state_dir" not in page.read_text("utf-8")
    filler.unlink()
    wait_for(lambda: "Nothing is being sent" not in page.read_text("utf-8")
             and "INV-6.xml" in page.read_text("utf-8"), timeout=30,
             what="the page listing the file, without it")
    no_traceback(daemon.stderr())


def test_journal_deleted_while_running_stops_daemon_and_costs_no_second_sending(
        env: Env, receiver, start_daemon) -> None:
    """Case 6: the journal deleted under a running daemon is noticed: it stops with a clear
    error and a non-zero exit. Restarted on a fresh journal, it reads the bundle ids back
    from sent/ receipts, so the identical bundle dropped again is a duplicate, not a second
    POST."""
    env.write_config(receiver.url)
    daemon = start_daemon()
    att, inv = pdf_bytes(), ubl_invoice("INV-6")
    drop_bundle(env.outbox, "INV-6", {"a.pdf": att}, invoice=inv)
    wait_for(env.sent_bundles, what="the first sending")
    for suffix in ("", "-wal", "-shm"):
        (env.state / f"journal.sqlite3{suffix}").unlink(missing_ok=True)
    code = wait_for(lambda: daemon.popen.poll(), timeout=20,
                    what="the daemon to stop on a lost journal")
    assert code not in (0, None, -signal.SIGKILL)
    assert "journal" in daemon.stderr() and "deleted or replaced" in daemon.stderr()
    no_traceback(daemon.stderr())
    # Under [log] format = "json" the line that says why it stopped is JSON too.
    last = json.loads(daemon.stderr().strip().splitlines()[-1])
    assert last["event"] == "outboxd stopped" and "deleted or replaced" in last["error"]

    again = start_daemon()
    drop_bundle(env.outbox, "INV-6", {"a.pdf": att}, invoice=inv)
    [dup] = wait_for(env.quarantined, what="the identical bundle quarantined as duplicate")
    assert "duplicate" in (dup / "REASON.txt").read_text()
    assert bundle_of(env.config, "INV-6.xml")["state"] == "quarantined"
    assert len(receiver.accepted()) == 1 and len(receiver.requests()) == 1
    assert len(env.sent_bundles()) == 1
    no_traceback(again.stderr())


def test_journal_emptied_while_running_stops_daemon_cleanly_and_restarts_on_a_new_one(
        env: Env, receiver, start_daemon) -> None:
    """The journal emptied (`truncate -s 0`) under a running daemon is a damaged journal:
    the daemon stops at once with a clear error that says so and what to do, a non-zero
    exit and no traceback, as for a deleted one, instead of going on from SQLite's cache
    and WAL, or ending with "database disk image is malformed" and a traceback where a
    read first met the lost pages. Its supervisor's restart begins a new journal that
    reads what was sent back from sent/: the identical bundle again is a duplicate."""
    env.write_config(receiver.url)
    first = start_daemon()
    att, inv = pdf_bytes(), ubl_invoice("INV-7")
    drop_bundle(env.outbox, "INV-7", {"a.pdf": att}, invoice=inv)
    wait_for(env.sent_bundles, what="the first sending")
    assert first.stop() == 0  # a clean stop writes the journal's rows into its file
    journal = env.state / "journal.sqlite3"
    assert journal.stat().st_size > 0
    daemon = start_daemon()
    os.truncate(journal, 0)
    # Anything that turns the loop (here a file dropped) looks at the journal file.
    drop_bundle(env.outbox, "INV-8", {"a.pdf": pdf_bytes()})
    code = wait_for(lambda: daemon.popen.poll(), timeout=20,
                    what="the daemon to stop on a damaged journal")
    assert code not in (0, None, -signal.SIGKILL)
    no_traceback(daemon.stderr())
    last = json.loads(daemon.stderr().strip().splitlines()[-1])
    assert last["event"] == "outboxd stopped", last
    assert "journal.sqlite3 is damaged" in last["error"] and "move it away" in last["error"]
    assert "sent/" in last["error"] and "free space" not in daemon.stderr()
    # Its stop wrote nothing into the damaged file (a close's checkpoint would have), and
    # left the WAL file the line tells the admin to move away with it.
    assert journal.stat().st_size == 0
    assert (env.state / "journal.sqlite3-wal").exists()

    again = start_daemon()
    drop_bundle(env.outbox, "INV-7", {"a.pdf": att}, invoice=inv)
    [dup] = wait_for(env.quarantined, what="the identical bundle quarantined as duplicate")
    assert "duplicate" in (dup / "REASON.txt").read_text()
    wait_for(lambda: len(env.sent_bundles()) == 2, what="INV-8 sent by the restarted daemon")
    assert len(receiver.accepted()) == 2
    no_traceback(again.stderr())
