"""A sidecar whose name misses its invoice file by a typo (`INV-7100/` for
`INV-7010.xml`): the real daemon, watcher and receiver. Nothing is matched by it; the
status page lists it as a folder without an invoice file, and the waiting invoice, the
page's row and the log say, as a hint, to rename it (docs/folder-convention.md, section 6)."""

from __future__ import annotations

import json

import pytest
from conftest import Env, Receiver
from helpers import Page, pdf_bytes, ubl_invoice, wait_for, write

# Lean daemons; their clerks' page paced at 0.5 s (these tests read it).
pytestmark = pytest.mark.usefixtures("lean", "quick_page", "quick_settle")

HINT = ("a folder INV-7100/ has no invoice file; if it holds INV-7010's attachments, "
        "rename it to INV-7010/")


def _page(env: Env) -> Page:
    path = env.outbox / "outboxd-status.html"
    return Page(path.read_text() if path.exists() else "")


def test_a_typo_folder_is_listed_and_hinted_on_the_waiting_row_by_events_alone(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Under "hold", INV-7010.xml waits; INV-7100/ (made before it, a timesheet in it)
    is listed under "Folders without an invoice file", named close to INV-7010.xml, and
    the waiting row and the log carry the hint — from the watcher's events, well before
    a rescan (60 s here). Renamed as told, the folder leaves the list and the invoice is
    sent with its attachment."""
    env.write_config(receiver.url, policy={"unattached": "hold"},
                     outbox={"rescan_seconds": 60})
    daemon = start_daemon()
    write(env.outbox / "INV-7100" / "timesheet.pdf", pdf_bytes(text_marker="ts"))
    write(env.outbox / "INV-7010.xml", ubl_invoice("INV-7010"))
    wait_for(lambda: HINT in _page(env).text.get("waiting", ""), timeout=20,
             what="the hint on the waiting row")
    lone = _page(env).rows["lone"]
    assert len(lone) == 1 and lone[0].startswith("INV-7100/\t")
    assert "named close to INV-7010.xml, which waits for attachments" in lone[0]
    wait_for(lambda: HINT in daemon.stderr(), what="the hint in the log")
    line = next(json.loads(x) for x in daemon.stderr().splitlines() if HINT in x)
    assert line["invoice_file"] == "INV-7010.xml" and line["folders"] == ["INV-7100/"]
    assert receiver.requests() == []  # nothing matched by the hint
    (env.outbox / "INV-7100").rename(env.outbox / "INV-7010")
    wait_for(lambda: len(receiver.accepted()) == 1, what="INV-7010 sent once renamed")
    wait_for(lambda: "lone" not in _page(env).text, what="the folder off the list")


def test_sent_without_attachments_at_the_deadline_the_log_says_the_close_folder_stays(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Under "warn", INV-7010.xml goes out without attachments at its deadline; the log's
    line says a folder close to its name has no invoice file, and that folder stays in
    the outbox, untouched, listed on the page."""
    env.write_config(receiver.url, policy={"unattached": "warn", "attachment_wait_seconds": 1})
    daemon = start_daemon()
    write(env.outbox / "INV-7100" / "timesheet.pdf", pdf_bytes(text_marker="ts"))
    write(env.outbox / "INV-7010.xml", ubl_invoice("INV-7010"))
    wait_for(lambda: len(receiver.accepted()) == 1, what="INV-7010 sent without attachments")
    wait_for(lambda: "invoice to be sent without attachments; a folder named close to its "
             "own has no invoice file" in daemon.stderr(), what="the warning at the send")
    assert (env.outbox / "INV-7100" / "timesheet.pdf").exists()
    wait_for(lambda: any(r.startswith("INV-7100/\t") for r in _page(env).rows.get("lone", [])),
             what="the folder still listed")


def test_a_folder_of_attachments_that_came_too_late_is_no_hint_for_another_invoice(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """INV-7011.xml went out without attachments; its folder INV-7011/ came after it, and
    the page lists it under "Folders nothing is sent from" (send the files another way).
    INV-7010.xml, sent without attachments at its deadline, must not be told in the log
    (nor a quarantine's REASON.txt) to rename INV-7011/ to INV-7010/ — that folder holds
    INV-7011's files, and the page, which leaves it out of the lone folders, says so."""
    # A folder come too late is found at a rescan: every second here. Each invoice goes
    # at its deadline, 0.3 s after it came: when, the test does not look at.
    env.write_config(receiver.url, policy={"unattached": "warn", "attachment_wait_seconds": 0.3},
                     outbox={"rescan_seconds": 1})
    daemon = start_daemon()
    write(env.outbox / "INV-7011.xml", ubl_invoice("INV-7011"))
    wait_for(lambda: len(receiver.accepted()) == 1, what="INV-7011 sent without attachments")
    write(env.outbox / "INV-7011" / "timesheet.pdf", pdf_bytes(text_marker="late"))
    wait_for(lambda: any(r.startswith("INV-7011\t") for r in _page(env).rows.get("strays", [])),
             timeout=20, what="INV-7011/ listed as come too late")
    write(env.outbox / "INV-7010.xml", ubl_invoice("INV-7010"))
    wait_for(lambda: len(receiver.accepted()) == 2, what="INV-7010 sent without attachments")
    # Its warning, if any, comes before its claim, and so before this line.
    wait_for(lambda: daemon.stderr().count('"event": "bundle sent"') == 2,
             what="INV-7010's sent line")
    assert "a folder named close to its own has no invoice file" not in daemon.stderr()
    assert (env.outbox / "INV-7011" / "timesheet.pdf").exists()
