"""Invoice ids whose folder a clerk on a Windows share could not make as the id is
written: a device name (CON) and an invisible character (a zero-width space). The real
daemon, watchdog observer, status page and reference receiver
(docs/folder-convention.md, section 3)."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import OUTBOXD, Env, Receiver, journal_states
from helpers import drop_bundle, pdf_bytes, wait_for, write
from report.test_statuspage import Page

from daemon.actions.samples import peppol_batch

# Lean daemons (conftest.LEAN), their clerks' page paced at 0.5 s (conftest.quick_page):
# three tests here wait for what the page shows.
pytestmark = pytest.mark.usefixtures("lean", "quick_page", "quick_settle")

HOLD = {"policy": {"unattached": "hold", "invalid": "hold"}}


def batch_waiting_on_page(env: Env, ids: list[str]) -> str:
    """batch.xml with `ids` dropped and left waiting for attachments: the text of its
    Waiting section on the status page once batch.xml is in it."""
    write(env.outbox / ".batch.tmp", peppol_batch(ids)).rename(env.outbox / "batch.xml")
    wait_for(lambda: journal_states(env).get("batch.xml") == "waiting",
             what="batch.xml waiting for attachments")
    page_file = env.outbox / "outboxd-status.html"

    def waiting() -> str:
        text = page_file.read_text(encoding="utf-8") if page_file.exists() else ""
        section = Page(text).text.get("waiting", "")
        return section if "batch.xml" in section else ""
    return wait_for(waiting, what="batch.xml on the page under Waiting")


def sent_manifest(env: Env) -> dict:
    """The manifest of the one bundle sent, from its receipt."""
    [sent] = wait_for(env.sent_bundles, what="batch.xml in sent/")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    manifest: dict = json.loads((sent / "receipt.json").read_text())["manifest"]
    return manifest


def by_invoice(manifest: dict) -> list[tuple[str, list[str]]]:
    """(invoice id, its attachments' original names) for each invoice of the manifest."""
    return [(i["id"], [a["original_name"] for a in i["attachments"]])
            for i in manifest["invoices"]]


def test_the_page_names_folders_a_clerk_can_make_and_the_files_put_there_go_with_their_invoices(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """batch.xml holds the invoices CON and INV- + U+200B + 2. While they wait for
    attachments the page tells the clerk to make batch/CON_ and batch/INV-_2 (Windows
    cannot make a folder CON, and a zero-width space can be neither seen nor typed);
    the clerk makes those folders with a PDF each, and the bundle is sent with each
    PDF as its own invoice's attachment."""
    env.write_config(receiver.url, **HOLD)
    start_daemon()
    section = batch_waiting_on_page(env, ["CON", "INV-\u200b2"])
    assert "batch/CON_" in section and "batch/INV-_2" in section

    write(env.outbox / "batch" / "CON_" / "con.pdf", pdf_bytes())
    write(env.outbox / "batch" / "INV-_2" / "two.pdf", pdf_bytes(2))
    manifest = sent_manifest(env)
    assert by_invoice(manifest) == [("CON", ["con.pdf"]), ("INV-\u200b2", ["two.pdf"])]
    assert not [w for w in manifest["warnings"] if w["code"] == "unattached-invoice"]
    assert len(receiver.accepted()) == 1


def test_folders_an_erp_on_linux_names_by_the_contracts_rule_go_with_their_invoices(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """An ERP on Linux makes each invoice's folder by the first rule (only
    / \\ : * ? " < > | and control characters replaced): batch/CON/ and batch/INV-7./,
    not the Windows-safe CON_ and INV-7_. Under the default policy (invalid bundles are
    quarantined) the bundle is sent, each PDF with its own invoice."""
    env.write_config(receiver.url)
    start_daemon()
    write(env.outbox / "batch" / "CON" / "con.pdf", pdf_bytes())
    write(env.outbox / "batch" / "INV-7." / "seven.pdf", pdf_bytes(2))
    write(env.outbox / ".batch.tmp", peppol_batch(["CON", "INV-7."])).rename(
        env.outbox / "batch.xml")
    assert by_invoice(sent_manifest(env)) == [("CON", ["con.pdf"]), ("INV-7.", ["seven.pdf"])]
    assert env.quarantined() == []
    assert len(receiver.accepted()) == 1


def test_a_waiting_bundle_takes_the_folders_an_earlier_version_named_for_new_device_names(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """COM0 and CONIN$ became device names to outboxd after their folders had been
    named batch/COM0 and batch/CONIN$ (on the page, in NAME.errors.txt, in REASON.txt).
    A bundle waiting for them meanwhile is told the new names, COM0_ and CONIN$_; a
    clerk or ERP that makes the folders by the earlier words is not stopped for it:
    those folders are still the invoices' and the bundle is sent with each PDF as its
    own invoice's. (The journal keeps ids, not folder names, so a row written before
    the change asks nothing else.)"""
    env.write_config(receiver.url, **HOLD)
    start_daemon()
    section = batch_waiting_on_page(env, ["COM0", "CONIN$"])
    assert "batch/COM0_" in section and "batch/CONIN$_" in section

    write(env.outbox / "batch" / "COM0" / "com0.pdf", pdf_bytes())
    write(env.outbox / "batch" / "CONIN$" / "conin.pdf", pdf_bytes(2))
    assert by_invoice(sent_manifest(env)) == [("COM0", ["com0.pdf"]), ("CONIN$", ["conin.pdf"])]
    assert env.quarantined() == []
    assert len(receiver.accepted()) == 1


def test_a_zero_width_space_shows_as_its_code_where_people_read_and_stays_in_json(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """INV-1 + U+200B (an id and invoice file a clerk cannot tell from INV-1) is
    quarantined beside a plain INV-1 that is sent. The status page, `outboxd status` and
    REASON.txt show it as INV-1\\u200b, so the two read apart; `outboxd status --json`
    and reason.json carry the exact name and id, for scripts."""
    env.write_config(receiver.url)
    start_daemon()
    zw = "INV-1\u200b"
    drop_bundle(env.outbox, "INV-1", {"a.pdf": pdf_bytes()})
    drop_bundle(env.outbox, zw, {"scan.pdf": b"MZ\x90\x00" + b"\x00" * 200})
    wait_for(lambda: journal_states(env) == {"INV-1.xml": "sent", f"{zw}.xml": "quarantined"},
             what="INV-1 sent and INV-1 + U+200B quarantined")
    [folder] = env.quarantined()
    reason = (folder / "REASON.txt").read_text("utf-8")
    assert "INV-1\\u200b.xml" in reason and "\u200b" not in reason
    record = json.loads((folder / "reason.json").read_text("utf-8"))
    assert record["invoice_file"] == f"{zw}.xml" and record["invoice_ids"] == [zw]

    def outboxd_status(*extra: str) -> str:
        return subprocess.run([*OUTBOXD, "status", "-c", str(env.config), *extra],
                              capture_output=True, text=True, timeout=60, check=True).stdout
    text = outboxd_status()
    assert "INV-1\\u200b.xml [INV-1\\u200b]" in text and "\u200b" not in text
    by_file = {b["invoice_file"]: b for b in json.loads(outboxd_status("--json"))["bundles"]}
    assert by_file[f"{zw}.xml"]["invoice_ids"] == [zw]

    page_file = env.outbox / "outboxd-status.html"

    def quarantined() -> str:
        text = page_file.read_text(encoding="utf-8") if page_file.exists() else ""
        return Page(text).text.get("quarantined", "")
    section = wait_for(lambda: "INV-1\\u200b" in quarantined() and quarantined(),
                       what="INV-1 + U+200B on the page under Quarantined, as its code")
    assert "\u200b" not in page_file.read_text(encoding="utf-8") and "scan.pdf" in section
