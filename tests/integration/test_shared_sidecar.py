"""Two invoice files with one sidecar (INV-1.xml and its PDF print INV-1.pdf beside
INV-1/): neither is claimed while the folder is there, whatever [policy] invalid says;
once the clash is resolved the remaining bundle goes out with all the attachments
(docs/folder-convention.md, section 3; docs/codes.md, `sidecar-shared`). The real
daemon, watchdog observer and reference receiver."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import OUTBOXD, Env, Receiver, journal_states
from helpers import drop_bundle, pdf_bytes, wait_for

pytestmark = pytest.mark.usefixtures("lean", "quick_settle")


def test_an_invoice_and_its_print_beside_one_sidecar_are_held_until_the_print_is_moved_in(
        env: Env, receiver: Receiver, start_daemon) -> None:
    """Under the default policies (invalid = "quarantine", unattached = "warn"), the ERP
    drops INV-1/timesheet.pdf, INV-1.pdf and INV-1.xml: nothing is sent or quarantined,
    both files are held with `sidecar-shared` in INV-1.errors.txt, naming both files and
    the folder. The clerk moves INV-1.pdf into INV-1/: INV-1.xml goes out with both
    attachments at that event (no rescan within the test)."""
    env.write_config(receiver.url, outbox={"rescan_seconds": 600})
    start_daemon()
    timesheet, print_ = pdf_bytes(2), pdf_bytes(3)
    (env.outbox / "INV-1").mkdir()
    (env.outbox / "INV-1" / "timesheet.pdf").write_bytes(timesheet)
    (env.outbox / "INV-1.pdf").write_bytes(print_)
    drop_bundle(env.outbox, "INV-1", {})

    wait_for(lambda: journal_states(env).get("INV-1.xml") == "held"
             and journal_states(env).get("INV-1.pdf") == "held", what="both files held")
    errors = env.outbox / "INV-1.errors.txt"
    wait_for(errors.exists, what="INV-1.errors.txt")
    text = errors.read_text(encoding="utf-8")
    assert "INV-1.xml" in text and "INV-1.pdf" in text and "INV-1/" in text
    assert "move INV-1.pdf into INV-1/" in text
    status = json.loads(subprocess.run([*OUTBOXD, "status", "--json", "-c", str(env.config)],
                                       capture_output=True, text=True, timeout=60).stdout)
    held = {b["invoice_file"]: b for b in status["bundles"] if b["state"] == "held"}
    assert set(held) == {"INV-1.xml", "INV-1.pdf"}
    assert all(r["code"] == "sidecar-shared" for b in held.values() for r in b["reasons"])
    assert receiver.accepted() == [] and env.quarantined() == [] and env.sent_bundles() == []

    (env.outbox / "INV-1.pdf").rename(env.outbox / "INV-1" / "INV-1.pdf")  # the clerk's fix
    [sent] = wait_for(env.sent_bundles, what="INV-1.xml in sent/ once the print is moved in")
    wait_for(lambda: (sent / "receipt.json").exists(), what="receipt.json")
    manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
    [invoice] = manifest["invoices"]
    assert sorted(a["original_name"] for a in invoice["attachments"]) == [
        "INV-1.pdf", "timesheet.pdf"]
    assert (sent / "INV-1" / "INV-1.pdf").read_bytes() == print_
    assert (sent / "INV-1" / "timesheet.pdf").read_bytes() == timesheet
    wait_for(lambda: not errors.exists(), what="INV-1.errors.txt removed")
    assert len(receiver.accepted()) == 1 and env.quarantined() == []
