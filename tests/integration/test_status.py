"""`outboxd status` reads the journal the running daemon writes."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from conftest import OUTBOXD, Env, Receiver
from helpers import Page, answering_receiver, drop_bundle, pdf_bytes, ubl_invoice, wait_for

# Daemons here start lean (conftest.LEAN): `status` reads the journal, whoever read the bundles.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")

JSON_BUNDLE_KEYS = {"bundle_id", "invoice_file", "invoice_ids", "state", "since", "deadline",
                    "unattached_ids", "attempts", "next_attempt_at", "last_error", "reasons",
                    "receipt_id", "folder", "answer"}


def status(env: Env, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OUTBOXD, "status", "-c", str(env.config), *extra],
                          capture_output=True, text=True, timeout=60)


def test_status_json_counts_sent_quarantined_and_waiting(env: Env, receiver: Receiver,
                                                         start_daemon) -> None:
    """status --json counts bundles per state and lists each with the keys docs/operations.md names;
    an unattached invoice under "hold" is listed as waiting with its ids."""
    env.write_config(receiver.url, policy={"unattached": "hold"})
    before = status(env, "--json")
    assert before.returncode == 0
    assert json.loads(before.stdout)["counts"] == dict.fromkeys(
        ("settling", "waiting", "held", "delivering", "retrying", "sent", "quarantined"), 0)

    start_daemon()
    drop_bundle(env.outbox, "INV-8001", {"a.pdf": pdf_bytes()})
    # Of the wrong type: quarantined at once (an empty file would be held a grace first).
    drop_bundle(env.outbox, "INV-8002", {"scan.pdf": b"MZ\x90\x00" + b"\x00" * 200})
    drop_bundle(env.outbox, "INV-8003", {})
    wait_for(lambda: env.sent_bundles() and env.quarantined(), what="sent and quarantined")

    def counts() -> dict[str, int]:
        return json.loads(status(env, "--json").stdout)["counts"]
    # The archive folder appears just before its journal row says so (sent and
    # quarantined are recorded once the folder is synced): wait for the rows too.
    wait_for(lambda: (lambda c: c["waiting"] == c["sent"] == c["quarantined"] == 1)(counts()),
             what="one bundle waiting, one sent, one quarantined")
    data = json.loads(status(env, "--json").stdout)
    assert data["counts"]["sent"] == 1 and data["counts"]["quarantined"] == 1
    by_file = {b["invoice_file"]: b for b in data["bundles"]}
    assert all(set(b) == JSON_BUNDLE_KEYS for b in data["bundles"])
    assert by_file["INV-8001.xml"]["state"] == "sent"
    assert by_file["INV-8002.xml"]["reasons"][0]["code"] == "extension-mismatch"
    waiting = by_file["INV-8003.xml"]
    assert waiting["state"] == "waiting" and waiting["unattached_ids"] == ["INV-8003"]
    assert waiting["deadline"] is None  # hold: no deadline
    assert (env.outbox / "INV-8003.xml").exists()  # waiting bundles stay in the outbox

    text = status(env).stdout
    assert "Waiting for attachments:" in text and "INV-8003.xml" in text


# Invoice files a clerk can name so on the share and outboxd takes (ids of the same
# trouble): U+2028 (a line's end to many readers) before a forged line, the
# right-to-left override, a zero-width space; HTML for the status page. C1's CSI only in
# an id: a name holding it is a bad name (CSI_NAME), never a bundle.
TROUBLESOME = {"INV-ls\u2028  INV-FAKE.xml [FAKE] at 2031": "ID-ls\u20281",
               "INV-csi": "ID-csi\x9b2J", "INV-bidi\u202elmx.pdf": "ID-bidi\u202e1",
               "INV-zw\u200b1": "ID-zw\u200b1", "INV-<img src=x onerror=alert(1)>": "ID-html"}
RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u200b]")
CSI_NAME = "INV-csi\x9b2J.xml"


@pytest.mark.usefixtures("quick_page")  # it waits for the page to list the invoices
def test_names_from_the_share_show_as_codes_in_status_check_and_page_json_keeps_them_exact(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Invoice files dropped under names that trouble a terminal: `outboxd status` shows
    each name and id as its codes, one line a bundle (no forged line); `status --json`
    holds none of those characters raw in its text, yet gives scripts each exact name
    and id; `outboxd check` and the status page show them as status does, the page
    with a name's HTML as text."""
    env.write_config(receiver.url, policy={"unattached": "hold"})
    start_daemon()
    for name, invoice_id in TROUBLESOME.items():
        drop_bundle(env.outbox, name, {}, ubl_invoice(invoice_id))
    (env.outbox / CSI_NAME).write_bytes(ubl_invoice("ID-csi2"))
    wait_for(lambda: json.loads(status(env, "--json").stdout)["counts"]["waiting"] == 5,
             what="the five invoices waiting for attachments")

    text = status(env).stdout
    lines = text.rstrip("\n").split("\n")
    assert RAW.findall(text) == [] and text.splitlines() == lines
    assert not any(line.startswith("  INV-FAKE") for line in lines)
    for shown in ("INV-ls\\u2028  INV-FAKE.xml [FAKE] at 2031.xml [ID-ls\\u20281]",
                  "INV-csi.xml [ID-csi\\x9b2J]",
                  "INV-bidi\\u202elmx.pdf.xml [ID-bidi\\u202e1]",
                  "INV-zw\\u200b1.xml [ID-zw\\u200b1]"):
        assert sum(line.startswith(f"  {shown} ") for line in lines) == 1, (shown, text)

    as_json = status(env, "--json").stdout
    assert RAW.findall(as_json) == []
    assert as_json.splitlines() == as_json.rstrip("\n").split("\n")
    listed = {b["invoice_file"]: b["invoice_ids"] for b in json.loads(as_json)["bundles"]}
    assert listed == {f"{name}.xml": [i] for name, i in TROUBLESOME.items()}

    checked = subprocess.run([*OUTBOXD, "check", "-c", str(env.config), str(env.outbox)],
                             capture_output=True, text=True, timeout=60).stdout
    assert RAW.findall(checked) == []
    assert checked.splitlines() == checked.rstrip("\n").split("\n")
    assert "INV-ls\\u2028  INV-FAKE.xml [FAKE] at 2031.xml" in checked
    assert "INV-csi\\x9b2J.xml: the name holds a control character (\\x9b) — rename the " \
        "file  [bad-name]" in checked

    page_file = env.outbox / "outboxd-status.html"
    wait_for(lambda: page_file.exists() and "ID-html" in page_file.read_text(),
             what="the page listing the invoices")
    html = page_file.read_text()
    assert RAW.findall(html) == [] and "<img" not in html
    page = Page(html)
    assert not any(tag == "img" for tag, _ in page.tags)
    waiting = page.text["waiting"]
    for shown in ("INV-ls\\u2028  INV-FAKE.xml [FAKE] at 2031.xml", "INV-csi.xml",
                  "INV-bidi\\u202elmx.pdf.xml", "INV-zw\\u200b1.xml",
                  "INV-<img src=x onerror=alert(1)>.xml"):
        assert shown in waiting, (shown, waiting)


def test_a_bundle_a_web_page_answered_is_marked_in_status_and_its_json(
        env: Env, start_daemon) -> None:
    """A 2xx with an HTML page (a captive portal's, a load balancer's) is sent, as the
    protocol says, but the operator may not have the bundle: `outboxd status` marks it
    under "Sent recently" with what to ask, and --json gives the warning under `answer`;
    a bundle the operator's JSON answered carries neither."""
    page = b"<!DOCTYPE html>\n<html><body><h1>Service under maintenance</h1></body></html>"
    answers = [(200, "text/html", page),
               (201, "application/json", json.dumps({"receipt_id": "R-2"}).encode())]
    with answering_receiver(lambda: answers.pop(0)) as url:
        env.write_config(url)
        start_daemon()
        drop_bundle(env.outbox, "INV-1", {"timesheet.pdf": pdf_bytes()})
        wait_for(lambda: len(env.sent_bundles()) == 1, what="INV-1 in sent/")
        drop_bundle(env.outbox, "INV-2", {"timesheet.pdf": pdf_bytes()})
        wait_for(lambda: len(env.sent_bundles()) == 2, what="INV-2 in sent/")

        def both_sent() -> dict[str, dict] | None:
            sent = {b["invoice_file"]: b for b in json.loads(status(env, "--json").stdout)
                    ["bundles"] if b["state"] == "sent"}
            return sent if len(sent) == 2 else None
        by_file = wait_for(both_sent, what="both sent in status --json")
    assert by_file["INV-1.xml"]["answer"].startswith("the answer (HTTP 200) was a web page")
    assert "ask the operator whether it has the bundle" in by_file["INV-1.xml"]["answer"]
    assert by_file["INV-2.xml"]["answer"] is None
    text = status(env).stdout
    [one] = [line for line in text.splitlines() if line.startswith("  INV-1.xml")]
    [two] = [line for line in text.splitlines() if line.startswith("  INV-2.xml")]
    assert "the answer was a web page" in one and "ask the operator" in one
    assert "web page" not in two
