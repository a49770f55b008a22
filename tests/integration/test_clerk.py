"""The clerk's workflow end to end: the real daemon and receiver, commands run as
`python -m daemon …` subprocesses beside them (docs/folder-convention.md, section 6;
docs/commands.md)."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import unicodedata
from datetime import UTC, datetime

import pytest
from conftest import OUTBOXD, SHIPPED, Env, Receiver, journal_since, journal_states
from helpers import drop_bundle, outbox_names, pdf_bytes, ubl_invoice, wait_for
from PIL import Image

# Daemons here start lean (conftest.LEAN): the clerk's workflow does not depend on where bundles
# are read, and no test here is about pre-flight; the check after a claim asks for SHIPPED.
# Their clerks' page is paced at 0.5 s (conftest.quick_page): these tests read it.
pytestmark = pytest.mark.usefixtures("lean", "quick_page", "quick_settle")


def outboxd(env: Env, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OUTBOXD, *args, "-c", str(env.config)], capture_output=True,
                          text=True, timeout=60)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8)).save(buf, "PNG")
    return buf.getvalue()


def test_quarantined_bundle_fixed_in_place_and_retried_is_delivered(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url)
    start_daemon()
    drop_bundle(env.outbox, "INV-1001", {"scan.pdf": png()})
    [folder] = wait_for(env.quarantined, what="the bundle in quarantine/")
    wait_for(lambda: (folder / "REASON.txt").exists(), what="REASON.txt")
    (folder / "INV-1001" / "scan.pdf").write_bytes(pdf_bytes())  # the fix, in place

    done = outboxd(env, "retry", folder.name.split("--")[1])
    assert done.returncode == 0, done.stderr
    [sent] = wait_for(env.sent_bundles, what="the retried bundle in sent/")
    assert (sent / "INV-1001" / "scan.pdf").read_bytes() == pdf_bytes()
    assert not (sent / "REASON.txt").exists() and not folder.exists()
    assert len(receiver.accepted()) == 1
    # The journal records the retry: the old row no longer counts as quarantined. The
    # folder comes into sent/ a moment before the row says so (moves.py): wait for that.
    wait_state(env, "INV-1001.xml", "sent")
    counts = json.loads(outboxd(env, "status", "--json").stdout)["counts"]
    assert counts["quarantined"] == 0 and counts["sent"] == 1


HOLD = {"policy": {"unattached": "hold", "invalid": "hold"}}


def manifest_of(folder) -> dict:
    return json.loads((folder / "receipt.json").read_text())["manifest"]


def wait_state(env: Env, invoice_file: str, state: str) -> None:
    wait_for(lambda: journal_states(env).get(invoice_file) == state,
             what=f"{invoice_file} to be {state}")


def test_hold_policy_send_refuses_without_flag_and_releases_with_it(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Under unattached = "hold" an unattached invoice waits; `send` without the flag
    refuses naming the id (exit 1) and changes nothing; with --without-attachments the
    running daemon delivers it at once, the manifest warning saying who released it."""
    env.write_config(receiver.url, **HOLD)
    start_daemon()
    drop_bundle(env.outbox, "INV-1001", {})
    wait_state(env, "INV-1001.xml", "waiting")

    refused = outboxd(env, "send", "INV-1001")
    assert refused.returncode == 1
    assert "INV-1001" in refused.stderr and "--without-attachments" in refused.stderr
    assert refused.stderr.count("outboxd:") == 1
    assert outbox_names(env.outbox) == [".outboxd", "INV-1001.xml", "outboxd-status.html"]

    done = outboxd(env, "send", "INV-1001", "--without-attachments")
    assert done.returncode == 0, done.stderr
    [sent] = wait_for(env.sent_bundles, what="the released bundle in sent/")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    [warning] = [w for w in manifest_of(sent)["warnings"] if w["code"] == "unattached-invoice"]
    assert warning["invoice_id"] == "INV-1001"
    assert "released by outboxd send" in warning["message"]
    assert (sent / "INV-1001.send-anyway").exists()  # archived with the bundle
    assert not (env.outbox / "INV-1001.send-anyway").exists()
    assert len(receiver.accepted()) == 1


def test_release_file_dropped_in_the_share_sends_the_waiting_bundle(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url, **HOLD)
    start_daemon()
    drop_bundle(env.outbox, "INV-2001", {})
    wait_state(env, "INV-2001.xml", "waiting")
    (env.outbox / "INV-2001.send-anyway").write_bytes(b"")
    [sent] = wait_for(env.sent_bundles, what="the released bundle in sent/")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    [warning] = manifest_of(sent)["warnings"]
    assert warning["code"] == "unattached-invoice"
    assert "released by INV-2001.send-anyway (owner " in warning["message"]
    assert (sent / "INV-2001.send-anyway").exists()


def test_a_channel_changed_with_size_and_time_kept_is_read_again_before_the_claim(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """attachments.toml replaced by one of the same size and modification time (a sync
    tool keeps the source's time) while the invoice waits: its change time is new, so
    settling sees the change and the bundle is read again. Released then, it goes out
    once, on the channel the file names now (original-print), not on the one it was
    first read with (e-invoice), without needing the check after the claim to put it
    back. As shipped: the reads run in reader processes."""
    env.write_config(receiver.url, **HOLD, **SHIPPED)
    daemon = start_daemon()
    notes = env.outbox / "INV-4001" / "attachments.toml"
    # As long as the original-print line below: the same size.
    drop_bundle(env.outbox, "INV-4001", {notes.name: b'channel = "e-invoice"     \n'})
    wait_state(env, "INV-4001.xml", "waiting")
    before = notes.stat()
    new = env.root / "attachments.toml"
    new.write_bytes(b'channel = "original-print"\n')
    os.utime(new, ns=(before.st_atime_ns, before.st_mtime_ns))
    os.chmod(new, stat.S_IMODE(before.st_mode))
    os.replace(new, notes)  # at once: no version between for settling to see
    assert notes.stat().st_size == before.st_size
    assert notes.stat().st_mtime_ns == before.st_mtime_ns

    (env.outbox / "INV-4001.send-anyway").write_bytes(b"")
    [sent] = wait_for(env.sent_bundles, what="the released bundle in sent/")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    assert manifest_of(sent)["channel"] == "original-print"
    [accepted] = receiver.accepted()
    assert accepted["idempotency_key"] == manifest_of(sent)["bundle_id"]
    assert "bundle changed while being claimed" not in daemon.stderr()


def test_release_file_beside_a_bundle_with_errors_releases_nothing_and_says_why(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url, **HOLD)
    start_daemon()
    drop_bundle(env.outbox, "INV-3001", {"scan.pdf": png()})
    (env.outbox / "INV-3001.send-anyway").write_bytes(b"")
    wait_state(env, "INV-3001.xml", "held")
    # outboxd send refuses it too, with the error (asked first: it runs while the page
    # waits out its refresh interval).
    refused = outboxd(env, "send", "INV-3001.xml", "--without-attachments")
    assert refused.returncode == 1 and "INV-3001/scan.pdf" in refused.stderr
    page = env.outbox / "outboxd-status.html"

    def reason() -> str:
        text = page.read_text() if page.exists() else ""
        return text.split("INV-3001.send-anyway", 1)[1] if "INV-3001.send-anyway" in text \
            else ""

    # The page is rewritten at most every 2 s: an earlier version may still say
    # what it saw before the bundle was held. Wait for the reason, not the name.
    wait_for(lambda: "has errors" in reason(),
             what="the idle release on the status page with its reason, 'has errors'")
    assert (env.outbox / "INV-3001.send-anyway").exists()
    assert receiver.requests() == [] and env.sent_bundles() == []


def test_status_page_lists_each_bundle_in_its_section(
        env: Env, receiver: Receiver, start_daemon, tmp_path) -> None:
    """Waiting, held, quarantined, sent and retrying bundles of a real daemon each appear in
    their section of the page (parsed with html.parser); a hostile name is text."""
    from report.test_statuspage import Page

    env.write_config(receiver.url, **HOLD)
    daemon = start_daemon()
    drop_bundle(env.outbox, "ok", {"a.pdf": pdf_bytes()})
    [_] = wait_for(env.sent_bundles, what="ok in sent/")
    drop_bundle(env.outbox, "<b>x&amp;", {"a.pdf": png()})
    drop_bundle(env.outbox, "wait", {})
    drop_bundle(env.outbox, "ok", {"a.pdf": pdf_bytes()})  # the same again: a duplicate
    wait_for(env.quarantined, what="the duplicate in quarantine/")
    wait_state(env, "<b>x&amp;.xml", "held")
    wait_state(env, "wait.xml", "waiting")

    # Nobody listens there: retries. A reload, not a restart: the page, not the start,
    # is the subject.
    env.write_config("http://127.0.0.1:1/bundles", **HOLD)
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.stderr(), what="the reload")
    drop_bundle(env.outbox, "retry", {"a.pdf": pdf_bytes(2)})
    page_file = env.outbox / "outboxd-status.html"
    wait_for(lambda: "retry.xml" in Page(page_file.read_text()).text.get("retrying", ""),
             what="retry.xml on the page under Retrying")
    text = page_file.read_text()
    page = Page(text)
    assert "wait.xml" in page.text["waiting"]
    assert "<b>x&amp;.xml" in page.text["held"]
    # "Today" is the UTC day the page was written: a run across midnight leaves
    # yesterday's sent and quarantined bundles off it, as it should.
    day = re.search(r"Written (?:<!--written-->)?(\d{4}-\d{2}-\d{2}) ", text)
    assert day is not None
    if journal_since(env, "quarantined", "ok.xml")[0].startswith(day.group(1)):
        assert "ok--" in page.text["quarantined"]
        assert "this exact bundle (" in page.text["quarantined"]
    else:
        assert "ok--" not in page.text["quarantined"]
    if journal_since(env, "sent", "ok.xml")[0].startswith(day.group(1)):
        assert "ok.xml" in page.text["sent"] and "rcpt-" in page.text["sent"]
    else:
        assert "ok.xml" not in page.text["sent"]
    assert "&lt;b&gt;x&amp;amp;.xml" in text


def test_invoice_files_that_cannot_be_used_are_on_the_page_until_they_go(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An invoice file the daemon leaves alone — a symbolic link, a name that is not
    UTF-8 — was only logged, once, and the clerk saw nothing. The page lists each with
    why (found at start and by events), and drops it once it is gone."""
    from report.test_statuspage import Page

    env.write_config(receiver.url)
    target = env.root / "elsewhere.xml"
    target.write_bytes(b"<Invoice/>")
    (env.outbox / "INV-link.xml").symlink_to(target)  # there before the start
    start_daemon()
    page_file = env.outbox / "outboxd-status.html"

    def refused() -> str:
        return Page(page_file.read_text()).text.get("refused", "") \
            if page_file.exists() else ""
    wait_for(lambda: "INV-link.xml" in refused(), what="the symbolic link on the page")
    bad = os.fsencode(env.outbox) + b"/INV-\xe9.xml"  # Latin-1, not UTF-8
    with open(bad, "wb") as fh:
        fh.write(b"<Invoice/>")
    wait_for(lambda: "INV-\\udce9.xml" in refused(), what="the non-UTF-8 name on the page")
    assert "symbolic link" in refused() and "not valid UTF-8" in refused()
    os.unlink(bad)
    (env.outbox / "INV-link.xml").unlink()
    wait_for(lambda: "refused" not in Page(page_file.read_text()).text,
             what="the page without the section once both went")
    assert receiver.requests() == []


def test_a_mac_spelled_sidecar_holds_the_invoice_until_renamed_then_it_goes_with_its_files(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """The ERP drops Räkning-7.xml (accents composed) and the invoice waits; a Mac clerk
    then makes the folder Räkning-7 with accents decomposed. The names look the same
    and are not: the bundle is held with an error naming the folder and the fix, not
    sent without the attachments the clerk sees. Renamed to the invoice's spelling,
    the folder is the sidecar and the bundle goes out with its file."""
    env.write_config(receiver.url, **HOLD)
    start_daemon()
    nfc, nfd = (unicodedata.normalize(form, "Räkning-7") for form in ("NFC", "NFD"))
    drop_bundle(env.outbox, nfc, {})
    wait_state(env, f"{nfc}.xml", "waiting")

    (env.outbox / nfd).mkdir()
    (env.outbox / nfd / "timesheet.pdf").write_bytes(pdf_bytes())
    wait_state(env, f"{nfc}.xml", "held")
    errors = (env.outbox / f"{nfc}.errors.txt").read_text(encoding="utf-8")
    assert f"{nfd}: this folder looks like the sidecar {nfc}" in errors
    assert "rename it by typing its name again" in errors
    assert receiver.accepted() == []

    (env.outbox / nfd).rename(env.outbox / nfc)
    [sent] = wait_for(env.sent_bundles, what="the bundle in sent/ once the folder is renamed")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    [invoice] = manifest_of(sent)["invoices"]
    assert [a["original_name"] for a in invoice["attachments"]] == ["timesheet.pdf"]
    assert not (env.outbox / f"{nfc}.errors.txt").exists()


@pytest.mark.parametrize("folder,outbox,said", [
    ("INV-7 ", {}, "its name \"INV-7 \" has a space at the end"),
    ("INV-7.", {}, "its name \"INV-7.\" has a dot at the end"),
    ("\u00a0INV-7", {}, "its name \"\u00a0INV-7\" has a non-breaking space at the start"),
    ("INV-7", {"sidecar_suffix": ".att"}, "its name lacks the ending .att")])
def test_a_sidecar_named_almost_right_holds_the_invoice_until_renamed_then_it_goes_with_it(
        env: Env, receiver: Receiver, start_daemon, folder: str, outbox: dict[str, str],
        said: str) -> None:
    """Under unattached = "send" a clerk's `INV-7 /` (or `INV-7./`, a non-breaking space,
    or INV-7/ where sidecars are INV-7.att) beside INV-7.xml: the invoice is neither sent
    without the timesheet the clerk sees there nor with it by a name not the sidecar's —
    it is held, and the errors file, the status page and `outboxd check` name the folder
    and the name to give it. Renamed so, the bundle goes out with its file — at the
    rename's event, not at a rescan."""
    from report.test_statuspage import Page

    # No rescan within the test: the folder's event alone finds it, and its rename.
    env.write_config(receiver.url, outbox={**outbox, "rescan_seconds": 600},
                     policy={"unattached": "send", "invalid": "hold"})
    start_daemon()
    side = "INV-7" + outbox.get("sidecar_suffix", "")
    timesheet = pdf_bytes(2)
    (env.outbox / folder).mkdir()
    (env.outbox / folder / "timesheet.pdf").write_bytes(timesheet)
    drop_bundle(env.outbox, "INV-7", {})
    wait_state(env, "INV-7.xml", "held")
    fix = f"rename it to {side}, exactly as written here"
    errors = (env.outbox / "INV-7.errors.txt").read_text(encoding="utf-8")
    assert f"{folder}: this folder looks like the sidecar {side} of INV-7.xml, but {said}" \
        in errors
    assert fix in errors
    # `check` first: it runs while the page waits out its refresh interval.
    checked = outboxd(env, "check", str(env.outbox / "INV-7.xml"))
    assert checked.returncode == 1
    assert f"{folder}: this folder looks like the sidecar {side}" in checked.stdout
    assert fix in checked.stdout and "[sidecar-spelling]" in checked.stdout
    page_file = env.outbox / "outboxd-status.html"
    wait_for(lambda: page_file.exists() and fix in Page(
        page_file.read_text(encoding="utf-8")).text.get("held", ""), what="the fix on the page")
    assert receiver.accepted() == []

    (env.outbox / folder).rename(env.outbox / side)  # the clerk's fix
    [sent] = wait_for(env.sent_bundles, what="the bundle in sent/ once the folder is renamed")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    assert (sent / side / "timesheet.pdf").read_bytes() == timesheet
    [invoice] = manifest_of(sent)["invoices"]
    assert [a["original_name"] for a in invoice["attachments"]] == ["timesheet.pdf"]
    assert not (env.outbox / "INV-7.errors.txt").exists()


@pytest.mark.parametrize("outbox,policy", [
    ({"completion": "marker"}, {"invalid": "hold"}),
    ({}, {"unattached": "hold", "invalid": "hold"})])
def test_a_copy_of_the_sidecar_holds_the_invoice_until_its_files_are_moved_in(
        env: Env, receiver: Receiver, start_daemon, outbox: dict[str, str],
        policy: dict[str, str]) -> None:
    """A clerk copied INV-7/ in Windows Explorer and put the timesheet into the copy,
    `INV-7 - Copy/`, beside the ERP's INV-7/ and INV-7.xml (under marker completion and
    the default unattached = "warn", or under unattached = "hold"). Before, the copy was
    a folder of another name: INV-7.xml went without the timesheet and nothing said
    where it was. Now the invoice is held, and the errors file, the status page and
    `outboxd status` name the copy and say to move its files into INV-7/; moved there
    (by the move's event: the rescan is far off), the bundle goes out with them."""
    from report.test_statuspage import Page

    env.write_config(receiver.url, outbox={**outbox, "rescan_seconds": 600}, policy=policy)
    start_daemon()
    timesheet = pdf_bytes(2)
    (env.outbox / "INV-7 - Copy").mkdir()
    (env.outbox / "INV-7 - Copy" / "timesheet.pdf").write_bytes(timesheet)
    drop_bundle(env.outbox, "INV-7", {"contract.pdf": pdf_bytes()})
    if outbox.get("completion") == "marker":
        (env.outbox / "INV-7.ready").touch()
    wait_state(env, "INV-7.xml", "held")
    said = "INV-7 - Copy: this folder looks like a copy of the sidecar INV-7 of INV-7.xml"
    fix = "move the files of this folder that belong to INV-7.xml into INV-7"
    errors = (env.outbox / "INV-7.errors.txt").read_text(encoding="utf-8")
    assert said in errors and fix in errors
    # `status` first: it runs while the page waits out its refresh interval.
    status = outboxd(env, "status")
    assert "INV-7 - Copy" in status.stdout and fix in status.stdout
    page_file = env.outbox / "outboxd-status.html"
    wait_for(lambda: page_file.exists() and fix in Page(
        page_file.read_text(encoding="utf-8")).text.get("held", ""), what="the fix on the page")
    assert receiver.accepted() == []

    # The clerk's fix: the timesheet into INV-7/, the emptied copy removed.
    (env.outbox / "INV-7 - Copy" / "timesheet.pdf").rename(env.outbox / "INV-7" / "timesheet.pdf")
    (env.outbox / "INV-7 - Copy").rmdir()
    [sent] = wait_for(env.sent_bundles, what="the bundle in sent/ once the copy is gone")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    [invoice] = manifest_of(sent)["invoices"]
    assert sorted(a["original_name"] for a in invoice["attachments"]) == [
        "contract.pdf", "timesheet.pdf"]
    assert (sent / "INV-7" / "timesheet.pdf").read_bytes() == timesheet
    assert not (env.outbox / "INV-7.errors.txt").exists()


def test_a_look_alike_left_by_a_quarantine_is_on_the_page_and_stops_retry_until_renamed(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A Windows clerk's inv-7/ beside the ERP's INV-7.xml: the invoice file is
    quarantined for sidecar-spelling, and inv-7/ stays in the outbox with the timesheet.
    The page lists it with its quarantine folder, the rule and the fix (nothing did
    before); `retry` refuses, moving nothing, while it stands. Renamed to INV-7, it
    leaves the page (by the rename's event: the rescan is far off), and the retried
    bundle goes out with the timesheet."""
    from report.test_statuspage import Page

    env.write_config(receiver.url, outbox={"rescan_seconds": 600})
    start_daemon()
    timesheet = pdf_bytes(2)
    (env.outbox / "inv-7").mkdir()
    (env.outbox / "inv-7" / "timesheet.pdf").write_bytes(timesheet)
    drop_bundle(env.outbox, "INV-7", {})
    [folder] = wait_for(env.quarantined, what="INV-7.xml in quarantine/")
    # `retry` first: it runs while the page waits out its refresh interval.
    refused = outboxd(env, "retry", folder.name.split("--")[1])
    assert refused.returncode == 1
    assert "inv-7: this folder looks like the sidecar INV-7" in refused.stderr
    assert "[sidecar-spelling]" in refused.stderr and "nothing was moved" in refused.stderr
    assert (folder / "INV-7.xml").exists() and not (env.outbox / "INV-7.xml").exists()
    page_file = env.outbox / "outboxd-status.html"

    def left() -> str:
        return Page(page_file.read_text(encoding="utf-8")).text.get("left-behind", "") \
            if page_file.exists() else ""
    wait_for(lambda: "inv-7" in left(), what="inv-7 on the page")
    assert f"INV-7.xml was quarantined because of it and waits in quarantine/" \
        f"{folder.parent.name}/{folder.name}" in left()
    assert "differ only in upper and lower case" in left() and "rename it to INV-7" in left()

    (env.outbox / "inv-7").rename(env.outbox / "INV-7")  # the clerk's fix
    wait_for(lambda: "left-behind" not in Page(page_file.read_text(encoding="utf-8")).text,
             what="the page without inv-7 once renamed")
    done = outboxd(env, "retry", folder.name.split("--")[1])
    assert done.returncode == 0, done.stderr
    [sent] = wait_for(env.sent_bundles, what="the retried bundle in sent/")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    assert (sent / "INV-7" / "timesheet.pdf").read_bytes() == timesheet
    assert len(receiver.accepted()) == 1


def test_a_folder_holding_invoice_files_is_on_the_page_with_the_fix_until_emptied(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """A clerk drags a folder holding an invoice file and its sidecar into the outbox, or
    moves a quarantine folder back whole (REASON.txt, its editor's backup and all). outboxd
    reads invoice files only in the outbox root, so each waited unseen for an invoice file
    of the folder's own name. The page lists each folder with what it holds and the fix;
    once its invoice file is moved out, the bundle is sent and the folder leaves the page."""
    from report.test_statuspage import Page

    # The rescan finds such folders (they bring no bundle): every second here, not every 5 s.
    env.write_config(receiver.url, outbox={"rescan_seconds": 1})
    start_daemon()
    drag = env.outbox / "Batch"
    (drag / "D1").mkdir(parents=True)
    (drag / "D1" / "timesheet.pdf").write_bytes(pdf_bytes(text_marker="ts"))
    (drag / "D1.xml").write_bytes(ubl_invoice("D1"))
    back = env.outbox / "Q1--0123456789ab"
    back.mkdir()
    (back / "Q1.xml").write_bytes(ubl_invoice("Q1"))
    for paper in ("REASON.txt", "REASON.txt~", "reason.json"):
        (back / paper).write_text("{}")
    page_file = env.outbox / "outboxd-status.html"

    def strays() -> str:
        return Page(page_file.read_text()).text.get("strays", "") \
            if page_file.exists() else ""
    wait_for(lambda: "Batch" in strays() and "Q1--0123456789ab" in strays(),
             what="both folders on the page")
    text = strays()
    assert "holds the invoice file D1.xml" in text
    assert "move each invoice file out of Batch into the outbox" in text
    assert "a folder from quarantine/ moved back whole (reason.json is in it)" in text
    assert receiver.requests() == []
    (drag / "D1").rename(env.outbox / "D1")
    (drag / "D1.xml").rename(env.outbox / "D1.xml")
    wait_for(lambda: len(receiver.accepted()) == 1, what="D1 sent once moved out")
    wait_for(lambda: "Batch" not in strays(), what="Batch off the page once emptied")
    assert "Q1--0123456789ab" in strays()


def test_attachments_that_come_after_their_invoice_left_are_on_the_page_with_what_to_do(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An ERP writes the attachments after the attachment wait ended: the invoice file
    went on its own (sent under "warn", quarantined under "quarantine"), and the late
    folder would wait unseen for good. The page names the invoice file it was for, what
    happened to it and what to do; the receiver gets nothing more."""
    from report.test_statuspage import Page

    env.write_config(receiver.url, policy={"unattached": "warn", "attachment_wait_seconds": 0.2},
                     outbox={"rescan_seconds": 1})
    start_daemon()
    (env.outbox / "L1.xml").write_bytes(ubl_invoice("L1"))
    wait_for(lambda: len(receiver.accepted()) == 1, what="L1 sent without attachments")
    late = env.outbox / "L1"
    late.mkdir()
    (late / "timesheet.pdf").write_bytes(pdf_bytes(text_marker="late"))
    page_file = env.outbox / "outboxd-status.html"

    def strays() -> str:
        return Page(page_file.read_text()).text.get("strays", "") \
            if page_file.exists() else ""
    # The folder brings no bundle: the next rescan (every second here) finds it.
    wait_for(lambda: "L1" in strays(), what="the late folder on the page")
    text = strays()
    assert "named as the attachments of L1.xml, which was sent at" in text
    assert "send these files to the customer another way" in text
    assert len(receiver.requests()) == 1
    assert (late / "timesheet.pdf").exists()


STOPPED = "outboxd is stopped since"


def test_the_page_says_outboxd_is_stopped_after_a_clean_stop_and_not_after_a_reload(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """SIGTERM (systemctl stop, Ctrl-C): the page is written once more and says at its top
    that outboxd is stopped since HH:MM UTC, that nothing is sent until it runs again,
    that nothing is lost and to tell the admin; what it listed stays listed. The next
    start writes the running page again. A SIGHUP (reload) never says stopped."""
    from report.test_statuspage import Page

    env.write_config(receiver.url, **HOLD)
    daemon = start_daemon()
    drop_bundle(env.outbox, "INV-5001", {})
    page_file = env.outbox / "outboxd-status.html"

    def page() -> str:
        return page_file.read_text(encoding="utf-8") if page_file.exists() else ""

    wait_for(lambda: "INV-5001.xml" in Page(page()).text.get("waiting", ""),
             what="INV-5001.xml waiting on the page")
    daemon.popen.send_signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in daemon.stderr(), what="the reload")
    drop_bundle(env.outbox, "INV-5002", {})
    wait_for(lambda: "INV-5002.xml" in Page(page()).text.get("waiting", ""),
             what="INV-5002.xml waiting on the page after the reload")
    assert STOPPED not in page() and daemon.popen.poll() is None

    before = datetime.now(UTC)
    assert daemon.stop(signal.SIGTERM) == 0
    after = datetime.now(UTC)
    text = wait_for(lambda: page() if STOPPED in page() else "", what="the stopped page")
    top = Page(text).text["top"]
    assert any(f"{STOPPED} {t:%H:%M} UTC ({t:%Y-%m-%d})." in top for t in (before, after))
    assert "Nothing is sent until it runs again." in top
    assert "Nothing is lost" in top and "Tell the admin." in top
    assert top.index(STOPPED) < top.index("Written ")  # first thing under the heading
    waiting = Page(text).text["waiting"]
    assert "INV-5001.xml" in waiting and "INV-5002.xml" in waiting
    assert "2 Waiting for attachments" in top.replace("\n", "")
    assert (env.outbox / "INV-5001.xml").exists() and (env.outbox / "INV-5002.xml").exists()

    start_daemon()
    wait_for(lambda: STOPPED not in page() and "INV-5001.xml" in page(),
             what="the running page again after the start")
    assert "INV-5002.xml" in Page(page()).text["waiting"]


def test_a_bundle_held_for_a_name_not_utf8_goes_once_renamed_after_a_restart(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An attachment saved in Latin-1 (a\\xe9.pdf, not UTF-8) holds its bundle, and
    INV-1.errors.txt names it as shown (\\udce9). Across a restart (the held row and its
    errors file taken over from the journal) the clerk renames it: the bundle goes, and
    the errors file is removed, not kept as a clerk's edit nor left saying "held"."""
    env.write_config(receiver.url, **HOLD)
    daemon = start_daemon()
    side = os.fsencode(env.outbox / "INV-1")
    os.mkdir(side)
    with open(side + b"/a\xe9.pdf", "wb") as fh:
        fh.write(pdf_bytes())
    drop_bundle(env.outbox, "INV-1", {})
    errors = env.outbox / "INV-1.errors.txt"
    wait_for(errors.exists, what="INV-1.errors.txt")
    assert "INV-1/a\\udce9.pdf: the name is not valid UTF-8" in errors.read_text()
    assert daemon.stop(signal.SIGTERM) == 0
    start_daemon()
    os.rename(side + b"/a\xe9.pdf", side + b"/a.pdf")
    wait_for(lambda: journal_states(env).get("INV-1.xml") == "sent", what="INV-1 sent")
    wait_for(lambda: not errors.exists(), what="INV-1.errors.txt removed")
    assert [n for n in os.listdir(env.outbox) if n.startswith("INV-1")] == []
