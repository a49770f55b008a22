"""NAME.errors.txt's leftovers with the real daemon and watchdog observer: a temp of it
that a kill left in the outbox goes at the next start, and a clerk's notes typed into
it stay, as NAME.errors.txt.edited, when the file goes."""

from __future__ import annotations

import pytest
from conftest import Env, Receiver, journal_states
from helpers import wait_for, write

from daemon.loop.errorsfile import ERRORS_HEADER

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def test_a_start_sweeps_errors_file_temps_and_an_edited_errors_file_is_kept(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Before the start: a temp of INV-1.errors.txt a killed outboxd left, and a clerk's
    `.INV-1.errors.txt.notes`. The daemon's start removes the temp only. INV-1.xml (empty)
    is held; the clerk adds a note to INV-1.errors.txt, then takes INV-1.xml out of the
    outbox: the errors file goes, and the edited one is kept as INV-1.errors.txt.edited."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 600},
                     policy={"invalid": "hold", "unattached": "send"})
    left = write(env.outbox / ".INV-1.errors.txt.tmp-0123456789ab", b"# outboxd: half")
    notes = write(env.outbox / ".INV-1.errors.txt.notes", b"mine")
    write(env.outbox / "INV-1.xml", b"")
    start_daemon()
    errors_file = env.outbox / "INV-1.errors.txt"
    wait_for(lambda: journal_states(env) == {"INV-1.xml": "held"} and errors_file.exists(),
             what="INV-1.xml held, with its errors file")
    assert not left.exists()
    assert notes.read_bytes() == b"mine"
    text = errors_file.read_text("utf-8")
    assert text.startswith(ERRORS_HEADER)

    edited = text + "Jane: the ERP export is broken, ticket 4711\n"
    errors_file.write_text(edited, "utf-8")
    (env.outbox / "INV-1.xml").rename(env.root / "INV-1.xml")  # taken out of the outbox
    wait_for(lambda: not errors_file.exists(), what="INV-1.errors.txt removed")
    assert (env.outbox / "INV-1.errors.txt.edited").read_text("utf-8") == edited
