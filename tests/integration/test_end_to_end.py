"""End to end: `outboxd run` as a subprocess posting over HTTP on 127.0.0.1 to the
reference receiver (served on a thread of the test process), the real watchdog
observer on a temp outbox, real SQLite, real PDFs."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import OUTBOXD, SHIPPED, Env, Receiver, journal_states
from helpers import (
    drop_bundle,
    inotify_fds,
    needs_proc,
    outbox_names,
    pdf_bytes,
    process_thread_names,
    ubl_invoice,
    wait_for,
    write,
)

# Daemons here start lean (conftest.LEAN); the tests that run the reader processes and
# pre-flight as shipped say so: the main delivery, the quarantine reasons that cross
# from a reader, and the hostile files a reader must not follow or open.
pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_dropped_bundle_is_posted_once_and_archived_byte_identical(env: Env, receiver: Receiver,
                                                                   start_daemon) -> None:
    """A sidecar bundle dropped sidecar-first is delivered once, manifest matching the files,
    and archived in sent/ with receipt.json, leaving outbox and processing empty."""
    env.write_config(receiver.url, **SHIPPED)
    start_daemon()
    atts = {"timesheet.pdf": pdf_bytes(2), "delivery-note.pdf": pdf_bytes(1)}
    invoice = ubl_invoice("INV-1001")
    drop_bundle(env.outbox, "INV-1001", atts, invoice)

    [archived] = wait_for(env.sent_bundles, what="the bundle in sent/")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    [accepted] = receiver.accepted()
    assert len(receiver.requests()) == 1

    receipt = json.loads((archived / "receipt.json").read_text())
    manifest = receipt["manifest"]
    assert accepted["idempotency_key"] == manifest["bundle_id"]
    assert archived.name == f"INV-1001--{manifest['bundle_id'][:12]}"
    assert manifest["invoice_file"] == {"name": "INV-1001.xml", "original_name": "INV-1001.xml",
                                        "size": len(invoice), "sha256": sha(invoice),
                                        "format": "ubl"}
    [inv] = manifest["invoices"]
    assert inv["id"] == "INV-1001"
    assert [(a["part"], a["original_name"], a["sha256"], a["size"], a["document_type"])
            for a in inv["attachments"]] == [
        ("attachment-1", "delivery-note.pdf", sha(atts["delivery-note.pdf"]),
         len(atts["delivery-note.pdf"]), "Attachment"),
        ("attachment-2", "timesheet.pdf", sha(atts["timesheet.pdf"]),
         len(atts["timesheet.pdf"]), "Attachment"),
    ]
    assert [a["pages"] for a in inv["attachments"]] == [1, 2]
    assert receipt["response"]["status"] == 201
    assert receipt["response"]["receipt_id"].startswith("rcpt-")
    assert receipt["attempts"] == 1
    # docs/folder-convention.md, section 7: the receiver's body kept beside its status,
    # and when it was delivered.
    assert set(receipt) >= {"manifest", "response", "attempts", "delivered_at"}
    assert set(receipt["response"]) >= {"status", "body", "receipt_id"}
    assert receipt["response"]["body"]["receipt_id"] == receipt["response"]["receipt_id"]
    assert receipt["delivered_at"].endswith("Z")
    assert archived.parent.name == receipt["delivered_at"][:10]  # its UTC day folder

    # Byte-identical in sent/ (original layout) and in the receiver's store.
    assert (archived / "INV-1001.xml").read_bytes() == invoice
    for name, data in atts.items():
        assert (archived / "INV-1001" / name).read_bytes() == data
    stored = receiver.store / manifest["bundle_id"]
    assert (stored / "INV-1001.xml").read_bytes() == invoice
    assert json.loads((stored / "manifest.json").read_text()) == manifest
    # An auditor rebuilds the manifest part's very bytes from receipt.json
    # (docs/operations.md, "Proving what was sent"); the store keeps what it received.
    assert (stored / "manifest.json").read_bytes() == json.dumps(
        manifest, ensure_ascii=False).encode("utf-8")
    # Left in the outbox: the work folder and the status page for the share.
    assert outbox_names(env.outbox) == [".outboxd", "outboxd-status.html"]
    assert list(env.processing.iterdir()) == []


def test_bundle_present_before_start_is_delivered_by_the_startup_scan(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Bundles dropped while the daemon was down are found by the startup scan."""
    env.write_config(receiver.url)
    drop_bundle(env.outbox, "INV-2001", {"contract.pdf": pdf_bytes()})
    start_daemon()
    [archived] = wait_for(env.sent_bundles, what="the bundle in sent/")
    assert (archived / "INV-2001" / "contract.pdf").exists()
    assert len(receiver.accepted()) == 1


def test_bad_attachments_quarantine_their_bundle_and_others_still_go_out(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Oversize and disguised-executable attachments each quarantine their own bundle
    with a REASON.txt naming the file and the rule; a good bundle is still delivered. An
    empty attachment, which a copy that stalled leaves, is held meanwhile, its errors file
    saying it looks cut short and is quarantined after the grace unless it changes."""
    env.write_config(receiver.url, validation={"max_attachment_bytes": 50_000}, **SHIPPED)
    start_daemon()
    drop_bundle(env.outbox, "INV-EMPTY", {"empty.pdf": b""})
    big = pdf_bytes()
    drop_bundle(env.outbox, "INV-BIG", {"big.pdf": big + b"%" * (50_001 - len(big))})
    drop_bundle(env.outbox, "INV-EXE", {"invoice-scan.pdf": b"MZ\x90\x00" + b"\x00" * 200})
    drop_bundle(env.outbox, "INV-GOOD", {"ok.pdf": pdf_bytes()})

    wait_for(lambda: len(env.quarantined()) == 2 and len(env.sent_bundles()) == 1,
             what="two quarantined bundles and one sent")
    held = env.outbox / "INV-EMPTY.errors.txt"
    wait_for(held.exists, what="the errors file of the empty attachment's bundle")
    assert "INV-EMPTY/empty.pdf: " in held.read_text() and re.search(
        r"it looks cut short — outboxd waits until \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC in "
        r"case it is still being copied", held.read_text())
    assert (env.outbox / "INV-EMPTY" / "empty.pdf").exists()
    reasons = {q.name.split("--")[0]: (q / "REASON.txt").read_text() for q in env.quarantined()}
    assert "INV-BIG/big.pdf" in reasons["INV-BIG"]
    assert "is 50.0 KB (50,001 bytes); at most 50 KB (50,000 bytes) is taken" \
        in reasons["INV-BIG"]
    assert "INV-EXE/invoice-scan.pdf" in reasons["INV-EXE"]
    assert "executable" in reasons["INV-EXE"]
    for q in env.quarantined():
        record = json.loads((q / "reason.json").read_text())
        assert record["invoice_file"] == q.name.split("--")[0] + ".xml"
        assert record["reasons"] and all(r["code"] and r["file"] for r in record["reasons"])
        assert (q / record["invoice_file"]).exists()  # the input travels with its reasons
    assert [r["idempotency_key"] for r in receiver.accepted()] == [
        json.loads((env.sent_bundles()[0] / "receipt.json").read_text())["manifest"]["bundle_id"]]


def test_restart_after_delivery_sends_nothing_again(env: Env, receiver: Receiver,
                                                    start_daemon) -> None:
    """A daemon restarted after a delivery neither finds nor sends that bundle again."""
    env.write_config(receiver.url)
    first = start_daemon()
    drop_bundle(env.outbox, "INV-3001", {"a.pdf": pdf_bytes()})
    wait_for(env.sent_bundles, what="the first delivery")
    assert first.stop() == 0
    second = start_daemon()
    # A second bundle proves the restarted daemon is working before we judge the first.
    drop_bundle(env.outbox, "INV-3002", {"b.pdf": pdf_bytes(3)})
    wait_for(lambda: len(env.sent_bundles()) == 2, what="the second delivery")
    assert second.popen.poll() is None
    assert len(receiver.requests()) == 2
    assert len({r["idempotency_key"] for r in receiver.accepted()}) == 2


def test_transient_receiver_errors_are_retried_until_delivered(env: Env, start_receiver,
                                                               start_daemon) -> None:
    """503 and 429 answers are retried with backoff; the bundle is delivered, not dropped."""
    flaky = start_receiver("--fail-first", "503,429")
    env.write_config(flaky.url)
    start_daemon()
    drop_bundle(env.outbox, "INV-4001", {"a.pdf": pdf_bytes()})
    [archived] = wait_for(env.sent_bundles, what="delivery after retries")
    assert [r["status"] for r in flaky.requests()] == [503, 429, 201]
    assert json.loads((archived / "receipt.json").read_text())["attempts"] == 3


def test_a_receiver_naming_bundles_by_its_own_sha256_gets_each_sent_in_one_attempt(
        env: Env, start_receiver, start_daemon) -> None:
    """A receiver whose 201 names, as `bundle_id`, a SHA-256 of its own (the reference
    receiver's --own-ids: of the manifest it stored), in our ids' form but none of ours:
    each bundle is sent on its first answer and archived with that answer. Taken for
    another bundle's answer, each was asked again for ever under the same key, and none
    reached sent/."""
    own = start_receiver("--own-ids")
    env.write_config(own.url)
    daemon = start_daemon()
    for n in range(1, 4):
        drop_bundle(env.outbox, f"INV-410{n}", {"a.pdf": pdf_bytes(n)})
    wait_for(lambda: len(env.sent_bundles()) == 3, what="three bundles in sent/")
    assert [r["status"] for r in own.requests()] == [201] * 3
    for entry in env.sent_bundles():
        receipt = json.loads((entry / "receipt.json").read_text())
        theirs, ours = receipt["response"]["body"]["bundle_id"], receipt["manifest"]["bundle_id"]
        assert receipt["attempts"] == 1 and len(theirs) == 64 and theirs != ours
    assert "another request" not in daemon.stderr()


def test_retry_after_is_a_floor_even_above_retry_max_seconds(env: Env, start_receiver,
                                                             start_daemon) -> None:
    """A 429 with Retry-After: 1 while retry_max_seconds = 0.1: the next attempt comes no
    sooner than 1 s later (Retry-After is a floor, even above the cap)."""
    busy = start_receiver("--fail-first", "429", "--retry-after", "1")
    env.write_config(busy.url, delivery={"retry_max_seconds": 0.1})
    start_daemon()
    drop_bundle(env.outbox, "INV-4002", {"a.pdf": pdf_bytes()})
    wait_for(env.sent_bundles, what="delivery after the Retry-After pause")
    first, second = busy.requests()
    assert (first["status"], second["status"]) == (429, 201)
    assert second["monotonic"] - first["monotonic"] >= 1.0


def test_a_correction_exported_while_the_first_version_is_retried_goes_out_after_it(
        env: Env, start_receiver, start_daemon) -> None:
    """INV-1.xml is put off by the receiver (503, Retry-After 3 s); the ERP exports the
    corrected INV-1.xml meanwhile. The correction is not posted before the first version
    is accepted, `outboxd status` says what it waits for, and it follows once that one is
    there: the receiver gets the versions in the order they were exported."""
    busy = start_receiver("--fail-first", "503", "--retry-after", "3")
    env.write_config(busy.url)
    start_daemon()
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes(1, "first")})
    [put_off] = wait_for(busy.requests, what="the first version put off")
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes(1, "corrected")},
                invoice=ubl_invoice("INV-1").replace(b"REF-42", b"REF-43"))

    def waiting() -> list[str]:
        rows = json.loads(subprocess.run(
            [*OUTBOXD, "status", "-c", str(env.config), "--json"], capture_output=True,
            text=True, timeout=60).stdout)["bundles"]
        return [r["last_error"] for r in rows if r["state"] == "retrying"
                and "waits for INV-1.xml" in (r["last_error"] or "")]
    [why] = wait_for(waiting, what="the correction waiting, saying why")
    assert f"bundle {put_off['idempotency_key'][:12]}" in why
    wait_for(lambda: len(env.sent_bundles()) == 2, timeout=30, what="both versions sent")
    requests = busy.requests()
    assert [r["status"] for r in requests] == [503, 201, 201]
    first_key = put_off["idempotency_key"]
    assert [r["idempotency_key"] == first_key for r in requests] == [True, True, False]
    receipts = [json.loads((b / "receipt.json").read_text()) for b in env.sent_bundles()]
    warned = {r["manifest"]["bundle_id"]: [w["code"] for w in r["manifest"]["warnings"]]
              for r in receipts}
    assert warned == {first_key: [], requests[2]["idempotency_key"]: [
        "invoice-id-already-sent"]}

def test_401s_hold_back_every_bundle_until_one_is_accepted_then_the_rest_go_at_once(
        env: Env, start_receiver, start_daemon) -> None:
    """Five bundles; the receiver answers the first two POSTs 401. No other bundle is
    posted before retry_max_seconds have passed (each was, and earned its own 401, every
    retry_max_seconds), the waiting ones say why in `outboxd status`; then one goes
    first and, once accepted, the others follow without waiting another period."""
    refusing = start_receiver("--fail-first", "401,401")
    # Long enough for `outboxd status` (a second or more on a loaded host) to be asked
    # within the pause; the four deliveries after it take some 0.2 s.
    pause = 3
    env.write_config(refusing.url, delivery={"retry_max_seconds": pause, "concurrency": 1})
    for n in range(5):
        drop_bundle(env.outbox, f"INV-{n}", {"a.pdf": pdf_bytes(1, f"INV-{n}")})
    start_daemon()

    def waiting() -> list[str]:
        rows = json.loads(subprocess.run(
            [*OUTBOXD, "status", "-c", str(env.config), "--json"], capture_output=True,
            text=True, timeout=60).stdout)["bundles"]
        return [r["last_error"] for r in rows
                if "waiting while deliveries are paused" in (r["last_error"] or "")]
    [why, *_] = wait_for(waiting, what="bundles held back, saying why")
    assert "HTTP 401: check [delivery] url and token" in why
    wait_for(lambda: len(env.sent_bundles()) == 5, timeout=60, what="all five sent")
    requests = refusing.requests()
    assert [r["status"] for r in requests] == [401, 401, 201, 201, 201, 201, 201]
    assert requests[2]["monotonic"] - requests[1]["monotonic"] >= 0.9 * pause  # it held
    assert requests[-1]["monotonic"] - requests[2]["monotonic"] < pause  # no second pause


def test_receiver_rejection_quarantines_with_status_and_body(env: Env, start_receiver,
                                                             start_daemon) -> None:
    """A 4xx rejection quarantines the bundle; REASON.txt gives the HTTP status."""
    picky = start_receiver("--fail-first", "415")
    env.write_config(picky.url)
    start_daemon()
    drop_bundle(env.outbox, "INV-5001", {"a.pdf": pdf_bytes()})
    [q] = wait_for(env.quarantined, what="the rejected bundle in quarantine/")
    assert "HTTP 415" in (q / "REASON.txt").read_text()
    assert env.sent_bundles() == []


def test_files_that_are_not_invoices_are_left_alone(env: Env, receiver: Receiver,
                                                    start_daemon) -> None:
    """Litter and in-progress names in the outbox root are never moved or sent."""
    env.write_config(receiver.url)
    for name in ("Thumbs.db", "notes.docx", "INV-9.xml.part", "~$draft.xml"):
        write(env.outbox / name, b"x")
    start_daemon()
    drop_bundle(env.outbox, "INV-6001", {"a.pdf": pdf_bytes()})
    wait_for(env.sent_bundles, what="the real bundle")
    assert sorted(p.name for p in env.outbox.iterdir()
                  if p.name != "outboxd-status.html") == sorted(
        [".outboxd", "Thumbs.db", "notes.docx", "INV-9.xml.part", "~$draft.xml"])


def test_unattached_invoice_waits_then_goes_out_with_a_warning(env: Env, receiver: Receiver,
                                                               start_daemon) -> None:
    """Under the default "warn" policy an invoice without attachments waits
    attachment_wait_seconds in the outbox, then is sent with an unattached-invoice warning."""
    wait_seconds = 1.0
    env.write_config(receiver.url, policy={"attachment_wait_seconds": wait_seconds})
    start_daemon()
    dropped = time.monotonic()
    drop_bundle(env.outbox, "INV-9001", {})

    def decided() -> str | None:
        state = journal_states(env).get("INV-9001.xml")
        return None if state in (None, "settling") else state

    # The daemon must say it waits: "not sent yet" alone is already true at the drop.
    state = wait_for(decided, what="the daemon's decision on the invoice")
    assert state == "waiting", f"an unattached invoice under 'warn' went to {state!r}, not waiting"
    [archived] = wait_for(env.sent_bundles, what="the unattached invoice to be sent")
    [posted] = receiver.requests()
    # Both are the host's monotonic clock; the deadline is kept in milliseconds, hence 0.01.
    # A lower bound only: how soon after the wait it goes out is not asserted.
    assert posted["monotonic"] - dropped >= wait_seconds - 0.01, (
        f"sent {posted['monotonic'] - dropped:.3f} s after the drop, "
        f"before attachment_wait_seconds = {wait_seconds}")
    manifest = json.loads((archived / "receipt.json").read_text())["manifest"]
    assert manifest["invoices"] == [{"id": "INV-9001", "attachments": []}]
    assert [(w["code"], w["invoice_id"]) for w in manifest["warnings"]] == [
        ("unattached-invoice", "INV-9001")]


def test_attachments_added_while_waiting_go_out_with_the_invoice(env: Env, receiver: Receiver,
                                                                 start_daemon) -> None:
    """An invoice that arrives first waits; attachments added to its sidecar meanwhile are
    sent with it, without a warning."""
    env.write_config(receiver.url, policy={"attachment_wait_seconds": 60})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-9002", {})
    wait_for(lambda: "waiting" in json.dumps(journal_states(env)), what="the invoice to wait")
    write(env.outbox / "INV-9002" / "late.pdf", pdf_bytes())
    [archived] = wait_for(env.sent_bundles, what="the completed bundle in sent/")
    manifest = json.loads((archived / "receipt.json").read_text())["manifest"]
    assert [a["original_name"] for a in manifest["invoices"][0]["attachments"]] == ["late.pdf"]
    assert manifest["warnings"] == []
    assert daemon.popen.poll() is None



def test_invalid_bundle_under_hold_stays_with_an_errors_file_until_fixed(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """[policy] invalid = "hold": the bundle stays in the outbox with NAME.errors.txt naming
    the file and rule; once fixed it is sent and the errors file goes away."""
    env.write_config(receiver.url, policy={"invalid": "hold"})
    start_daemon()
    drop_bundle(env.outbox, "INV-9101", {"scan.pdf": b"", "ok.pdf": pdf_bytes()})
    errors_file = env.outbox / "INV-9101.errors.txt"
    wait_for(errors_file.exists, what="the errors file")
    assert "INV-9101/scan.pdf" in errors_file.read_text()
    assert (env.outbox / "INV-9101" / "scan.pdf").exists() and env.quarantined() == []

    write(env.outbox / "INV-9101" / "scan.pdf", pdf_bytes())  # the person fixes it
    [archived] = wait_for(env.sent_bundles, what="the fixed bundle in sent/")
    assert not errors_file.exists()
    assert (archived / "INV-9101" / "scan.pdf").exists()


def test_a_sidecar_named_in_other_case_holds_the_invoice_until_renamed(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """The ERP's INV-1.xml waits for attachments; a Windows clerk makes inv-1/ beside it
    and puts the timesheet there (one name to Windows, two to Linux). The daemon holds
    the invoice with sidecar-spelling, naming the folder and the case difference, and
    sends nothing (before, the folder was ignored and the invoice went out without it).
    Renamed to INV-1, the bundle goes out with the timesheet. The rescan is far off:
    the watcher's events do it."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 600},
                     policy={"unattached": "hold", "invalid": "hold"})
    start_daemon()
    write(env.outbox / "INV-1.xml", ubl_invoice("INV-1"))
    wait_for(lambda: journal_states(env).get("INV-1.xml") == "waiting",
             what="INV-1.xml to wait for attachments")
    timesheet = pdf_bytes(2)
    write(env.outbox / "inv-1" / "timesheet.pdf", timesheet)
    wait_for(lambda: journal_states(env).get("INV-1.xml") == "held", what="INV-1.xml held")
    errors_file = env.outbox / "INV-1.errors.txt"
    wait_for(errors_file.exists, what="the errors file")
    assert "inv-1: this folder looks like the sidecar INV-1 of INV-1.xml, but the two names " \
        "differ only in upper and lower case" in errors_file.read_text(encoding="utf-8")
    db = sqlite3.connect(env.state / "journal.sqlite3")
    try:
        [(reasons,)] = db.execute("SELECT reasons FROM bundles WHERE invoice_file = "
                                  "'INV-1.xml' AND state = 'held'").fetchall()
    finally:
        db.close()
    assert [(r["code"], r["file"]) for r in json.loads(reasons)] == [
        ("sidecar-spelling", "inv-1")]
    assert receiver.requests() == [] and env.sent_bundles() == []

    (env.outbox / "inv-1").rename(env.outbox / "INV-1")  # the clerk's fix
    [archived] = wait_for(env.sent_bundles, what="the bundle in sent/")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    manifest = json.loads((archived / "receipt.json").read_text())["manifest"]
    assert [a["original_name"] for a in manifest["invoices"][0]["attachments"]] == [
        "timesheet.pdf"]
    assert (archived / "INV-1" / "timesheet.pdf").read_bytes() == timesheet
    assert len(receiver.accepted()) == 1 and not errors_file.exists()


@needs_proc  # the daemon's threads and descriptors are read through Linux's /proc
def test_polling_watcher_finds_bundles_without_inotify(env: Env, receiver: Receiver,
                                                       start_daemon) -> None:
    """watch = "polling" (as on NFS/SMB mounts) runs the poller's thread (poll.py) and no
    inotify at all, and discovers a new bundle from its own polls, long before the periodic
    rescan would."""
    env.write_config(receiver.url, outbox={"watch": "polling", "poll_interval_seconds": 0.2,
                                           "rescan_seconds": 600})
    daemon = start_daemon()  # the watcher is started before "outboxd running" is logged
    pid = daemon.popen.pid
    # The startup log only repeats the config; what runs is seen in the daemon's process.
    threads = process_thread_names(pid)
    assert "watcher-poll" in threads, f"no poller among threads {sorted(threads)}"
    assert inotify_fds(pid) == [], f"the daemon holds inotify fds {inotify_fds(pid)}"
    drop_bundle(env.outbox, "INV-9201", {"a.pdf": pdf_bytes()})
    wait_for(env.sent_bundles, timeout=15, what="delivery found by polling")
    assert inotify_fds(pid) == [], f"the daemon holds inotify fds {inotify_fds(pid)}"


def test_hostile_inputs_are_quarantined_without_following_or_blocking(
        env: Env, receiver: Receiver, start_daemon, tmp_path: Path) -> None:
    """A symlink out of the outbox, a FIFO in a sidecar and an XML invoice with an external
    entity each quarantine their bundle; nothing is followed, opened or expanded, and a good
    bundle still goes out."""
    import os
    env.write_config(receiver.url, **SHIPPED)
    start_daemon()
    secret_data = pdf_bytes()
    secret = write(tmp_path / "outside" / "secret.pdf", secret_data)
    (env.outbox / "INV-H1").mkdir()
    (env.outbox / "INV-H1" / "link.pdf").symlink_to(secret)
    drop_bundle(env.outbox, "INV-H1", {})
    (env.outbox / "INV-H2").mkdir()
    os.mkfifo(env.outbox / "INV-H2" / "pipe.pdf")
    drop_bundle(env.outbox, "INV-H2", {})
    xxe = (b'<?xml version="1.0"?>\n<!DOCTYPE Invoice [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'\n<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&x;'
           b'</Invoice>\n')
    drop_bundle(env.outbox, "INV-H3", {"a.pdf": pdf_bytes()}, invoice=xxe)
    drop_bundle(env.outbox, "INV-H4", {"a.pdf": pdf_bytes()})

    wait_for(lambda: len(env.quarantined()) == 3 and len(env.sent_bundles()) == 1,
             what="three quarantined and one sent")
    codes = {q.name.split("--")[0]: {r["code"] for r in
                                     json.loads((q / "reason.json").read_text())["reasons"]}
             for q in env.quarantined()}
    assert codes["INV-H1"] == {"not-a-file"}
    assert codes["INV-H2"] == {"not-a-file"}
    assert codes["INV-H3"] == {"hostile-xml"}
    [q1] = [q for q in env.quarantined() if q.name.startswith("INV-H1")]
    assert (q1 / "INV-H1" / "link.pdf").is_symlink()  # moved as a link, target untouched
    assert secret.read_bytes() == secret_data  # the link's target was left where it was


def test_archives_on_another_file_system_are_complete_copies(
        env: Env, other_file_system: Path, receiver: Receiver, start_daemon) -> None:
    # other_file_system first: fixtures end in reverse, so the daemon stops before the
    # folder it archives into is removed.
    """sent/ and quarantine/ on another file system (tmpfs here): bundles arrive there whole
    (copy + fsync + rename), the sources are gone, and a FIFO in a quarantined sidecar is
    recreated, never opened."""
    import os
    import stat

    other = other_file_system
    env.write_config(receiver.url, paths={"sent": str(other / "sent"),
                                          "quarantine": str(other / "quarantine")})
    start_daemon()
    good = {"a.pdf": pdf_bytes(), "b.pdf": pdf_bytes(2)}
    drop_bundle(env.outbox, "INV-X1", good)
    (env.outbox / "INV-X2").mkdir()
    os.mkfifo(env.outbox / "INV-X2" / "pipe.pdf")
    drop_bundle(env.outbox, "INV-X2", {"ok.pdf": pdf_bytes()})

    def archived(root: Path) -> list[Path]:
        return sorted(p for p in root.glob("*/*") if p.is_dir() and
                      not p.name.startswith("."))
    wait_for(lambda: archived(other / "sent") and archived(other / "quarantine")
             and (archived(other / "sent")[0] / "receipt.json").exists()
             and (archived(other / "quarantine")[0] / "REASON.txt").exists(),
             what="both bundles archived on the other file system")
    [sent] = archived(other / "sent")
    for name, data in good.items():
        assert (sent / "INV-X1" / name).read_bytes() == data
    [quarantined] = archived(other / "quarantine")
    assert stat.S_ISFIFO(os.lstat(quarantined / "INV-X2" / "pipe.pdf").st_mode)
    assert (quarantined / "INV-X2" / "ok.pdf").exists()
    wait_for(lambda: list(env.processing.iterdir()) == [], what="processing to empty")
    assert sorted(p.name for p in env.outbox.iterdir()
                  if p.name != "outboxd-status.html") == [".outboxd"]


def test_file_with_several_invoices_matches_each_subfolder(env: Env, receiver: Receiver,
                                                          start_daemon) -> None:
    """A batch file holding two real Peppol invoices (wrapped) is one bundle; each invoice
    gets the attachments of its own subfolder, in file order."""
    from helpers import FIXTURES

    def body(name: str) -> bytes:
        text = (FIXTURES / name).read_bytes()
        return text[text.index(b"?>") + 2:] if text.startswith(b"<?xml") else text
    batch = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>' + body("vat-category-E.xml")
             + body("Norwegian-example-1.xml") + b"</Batch>\n")
    env.write_config(receiver.url)
    start_daemon()
    write(env.outbox / "batch-42" / "Vat-Z" / "contract.pdf", pdf_bytes())
    write(env.outbox / "batch-42" / "TOSL108" / "spec.pdf", pdf_bytes(2))
    write(env.outbox / "batch-42.xml", batch)
    [archived] = wait_for(env.sent_bundles, what="the batch in sent/")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    manifest = json.loads((archived / "receipt.json").read_text())["manifest"]
    assert [(i["id"], [a["original_name"] for a in i["attachments"]])
            for i in manifest["invoices"]] == [("Vat-Z", ["contract.pdf"]),
                                               ("TOSL108", ["spec.pdf"])]
    assert manifest["invoice_file"]["format"] == "ubl"


def test_marker_completion_waits_for_the_marker_and_archives_it(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """completion = "marker": a settled bundle is not sent until NAME.ready exists; the
    marker travels with the bundle into sent/."""
    env.write_config(receiver.url, outbox={"completion": "marker"})
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-M1", {"a.pdf": pdf_bytes()})
    wait_for(lambda: "settling" in json.dumps(journal_states(env)), what="the bundle to be seen")
    # Settled for many settle periods, but no marker: nothing may be sent.
    drop_bundle(env.outbox, "INV-M0", {"z.pdf": pdf_bytes()})
    write(env.outbox / "INV-M0.ready", b"")
    wait_for(lambda: len(env.sent_bundles()) == 1, what="the marked bundle")
    assert (env.outbox / "INV-M1.xml").exists() and receiver.accepted() and \
        len(receiver.accepted()) == 1
    write(env.outbox / "INV-M1.ready", b"")
    wait_for(lambda: len(env.sent_bundles()) == 2, what="INV-M1 once marked")
    [m1] = [p for p in env.sent_bundles() if p.name.startswith("INV-M1")]
    assert (m1 / "INV-M1.ready").exists()
    assert daemon.popen.poll() is None
