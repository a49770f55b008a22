"""[policy] unattached (docs/folder-convention.md section 5) as decide.py
applies it: "send" does not wait, and in a file of several invoices the policy acts on
the unattached ones while quarantine and hold take the whole file. Driven with a real
journal, real files and the directory transport."""

from __future__ import annotations

import errno
import json
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import claims_refused_first, folders, make, quiet_logs, run_once, step  # noqa: E402, F401 - quiet_logs: autouse
from helpers import UBL_NS, drop_bundle, pdf_bytes, ubl_invoice, write  # noqa: E402

from daemon.journal import iso_in  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402

WAIT = {"attachment_wait_seconds": 3600}


def batch(*ids: str) -> bytes:
    """A file of several UBL invoices (any wrapper element)."""
    docs = "".join(f"<Invoice {UBL_NS}><cbc:ID>{i}</cbc:ID></Invoice>" for i in ids)
    return f"<Batch>{docs}</Batch>".encode()


def test_send_policy_sends_an_unattached_invoice_at_once_with_the_warning(
        tmp_path: Path) -> None:
    """unattached = "send" does not wait, however long attachment_wait_seconds is: the
    settled invoice goes out in the first turn, and its manifest still carries the
    unattached-invoice warning (recorded whatever the policy)."""
    p, s = make(tmp_path, policy={"unattached": "send", **WAIT})
    drop_bundle(s.outbox.path, "INV-1", {})
    [row] = run_once(p)
    assert p.j.get(row).state == "sent"
    assert p.j.rows(("waiting",)) == []
    [archived] = folders(s.sent_dir)
    manifest = json.loads((archived / "receipt.json").read_text())["manifest"]
    assert manifest["invoices"] == [{"id": "INV-1", "attachments": []}]
    assert [(w["code"], w["invoice_id"]) for w in manifest["warnings"]] == [
        ("unattached-invoice", "INV-1")]


def test_warn_sends_the_whole_file_after_the_wait_warning_only_for_the_unattached_one(
        tmp_path: Path) -> None:
    """A file of A (attached) and B (not): under "warn" the file waits as a whole (A is
    not sent ahead, a file cannot be split), listed with B alone as unattached; after
    the wait both go in one bundle, the warning naming B only."""
    p, s = make(tmp_path, policy={"unattached": "warn", **WAIT})
    drop_bundle(s.outbox.path, "batch", {"A/a.pdf": pdf_bytes()}, batch("A", "B"))
    assert run_once(p) == []
    [row] = p.j.rows(("waiting",))
    assert row.unattached_ids == ["B"] and row.invoice_ids == ["A", "B"]
    assert (s.outbox.path / "batch" / "A" / "a.pdf").exists()
    assert folders(s.sent_dir) == []
    p.j.update(row.id, deadline=iso_in(-60))  # the wait is over
    p.live["batch.xml"] = p.j.get(row.id)  # the pipeline keeps its live rows in memory
    [sent_row] = run_once(p, now=2000.0)
    assert p.j.get(sent_row).state == "sent"
    [archived] = folders(s.sent_dir)
    manifest = json.loads((archived / "receipt.json").read_text())["manifest"]
    assert [(i["id"], [a["name"] for a in i["attachments"]])
            for i in manifest["invoices"]] == [("A", ["a.pdf"]), ("B", [])]
    assert [(w["code"], w["invoice_id"]) for w in manifest["warnings"]] == [
        ("unattached-invoice", "B")]


def test_quarantine_takes_the_whole_file_with_a_reason_for_the_unattached_one_only(
        tmp_path: Path) -> None:
    """Under "quarantine" the whole file goes to quarantine/ at the end of the wait, the
    attached invoice's folder with it; nothing is sent, and the one reason names B."""
    p, s = make(tmp_path, policy={"unattached": "quarantine", "attachment_wait_seconds": 0})
    drop_bundle(s.outbox.path, "batch", {"A/a.pdf": pdf_bytes()}, batch("A", "B"))
    assert run_once(p) == []
    [q] = folders(s.quarantine_dir)
    assert (q / "batch.xml").exists() and (q / "batch" / "A" / "a.pdf").exists()
    reasons = json.loads((q / "reason.json").read_text())["reasons"]
    assert [(r["code"], r["invoice_id"]) for r in reasons] == [("unattached-invoice", "B")]
    assert folders(s.sent_dir) == []
    assert list((tmp_path / "target").iterdir()) == []
    assert not (s.outbox.path / "batch.xml").exists()


def test_hold_keeps_the_whole_file_waiting_without_a_deadline(tmp_path: Path) -> None:
    """Under "hold" the file stays in the outbox, waiting with no deadline, B listed as
    unattached; A is not sent on its own, however much time passes."""
    p, s = make(tmp_path, policy={"unattached": "hold", "attachment_wait_seconds": 0})
    drop_bundle(s.outbox.path, "batch", {"A/a.pdf": pdf_bytes()}, batch("A", "B"))
    assert run_once(p) == []
    assert run_once(p, now=1e9) == []
    [row] = p.j.rows(("waiting",))
    assert row.unattached_ids == ["B"] and row.deadline is None
    assert (s.outbox.path / "batch.xml").exists()
    assert (s.outbox.path / "batch" / "A" / "a.pdf").exists()
    assert folders(s.sent_dir) == [] and folders(s.quarantine_dir) == []


@pytest.mark.parametrize(("policy", "outcome", "lands_in"), [
    ("send", "invoice to be sent without attachments", "sent"),
    ("quarantine", "invoice to be quarantined for want of attachments", "quarantine"),
])
def test_the_hint_of_a_close_folder_is_said_once_however_often_the_claim_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str, outcome: str,
        lands_in: str) -> None:
    """INV-7010.xml, without attachments, beside a lone folder INV-7100/: the log's hint
    to rename the folder is said once, when the outcome is decided and worded as what
    is to happen, although a full share fails the claim twice and the bundle is decided
    again at each rescan; once the bundle has left, nothing of it is remembered. A
    quarantine's reason carries the hint all the same."""
    p, s = make(tmp_path, policy={"unattached": policy, "attachment_wait_seconds": 0})
    write(s.outbox.path / "INV-7100" / "timesheet.pdf", pdf_bytes())
    write(s.outbox.path / "INV-7010.xml", ubl_invoice("INV-7010"))
    p.near_folders = lambda cand: ["INV-7100"]  # the service's index, as it finds it
    cand = list_outbox(s.outbox).candidates["INV-7010.xml"]
    fails = claims_refused_first(monkeypatch, [errno.ENOSPC, errno.ENOSPC])
    period = s.outbox.rescan_seconds
    with capture_logs() as logs:
        for turn in range(2):
            assert step(p, cand, 1000.0 + turn * period).claimed is None
        row_id = step(p, cand, 1000.0 + 2 * period).claimed
    assert not fails
    if row_id is not None:  # to send (a quarantine is moved at its claim)
        assert p.finish.attempt(row_id) is None
    hints = [e for e in logs if "a folder named close to its own" in e["event"]]
    assert [e["event"] for e in hints] == [
        f"{outcome}; a folder named close to its own has no invoice file"]
    assert hints[0]["folders"] == ["INV-7100/"]
    assert [e["event"] for e in logs].count("cannot claim bundle; will try again") == 1
    [landed] = folders(s.quarantine_dir if lands_in == "quarantine" else s.sent_dir)
    if lands_in == "quarantine":
        reasons = json.loads((landed / "reason.json").read_text())["reasons"]
        assert "rename it to INV-7010/" in reasons[0]["message"]
    assert p._near_said == {}  # forgotten with the bundle


def test_the_hint_of_a_close_folder_is_said_when_the_wait_begins_not_again_at_a_restart(
        tmp_path: Path) -> None:
    """INV-7010.xml waits for attachments beside a lone folder INV-7100/: the hint to
    rename the folder is said as the wait begins; a restart, which decides the waiting
    bundle again, does not say it again (the wait goes on: no news)."""
    p, s = make(tmp_path, policy={"unattached": "warn", **WAIT})
    write(s.outbox.path / "INV-7100" / "timesheet.pdf", pdf_bytes())
    write(s.outbox.path / "INV-7010.xml", ubl_invoice("INV-7010"))
    hint = "invoice waits for attachments; a folder named close to its own has no invoice file"
    said = []
    for pipeline in (p, make(tmp_path, policy={"unattached": "warn", **WAIT})[0]):
        pipeline.near_folders = lambda cand: ["INV-7100"]  # the service's index
        pipeline.start({"INV-7010.xml"})
        with capture_logs() as logs:
            assert run_once(pipeline) == []
        said.append([e["event"] for e in logs if "a folder named close" in e["event"]])
        assert [r.state for r in pipeline.j.unfinished()] == ["waiting"]
    assert said == [[hint], []]


def test_the_hint_of_a_close_folder_is_said_when_a_held_bundle_mended_begins_its_wait(
        tmp_path: Path) -> None:
    """INV-7010.xml held (its folder holds an empty file), then that folder taken away,
    beside a lone folder INV-7100/: its wait for attachments begins now, and with it
    the hint to rename the folder."""
    p, s = make(tmp_path, policy={"unattached": "warn", "invalid": "hold", **WAIT})
    write(s.outbox.path / "INV-7100" / "timesheet.pdf", pdf_bytes())
    write(s.outbox.path / "INV-7010.xml", ubl_invoice("INV-7010"))
    empty = write(s.outbox.path / "INV-7010" / "empty.pdf", b"")
    p.near_folders = lambda cand: ["INV-7100"]  # the service's index
    assert run_once(p) == [] and [r.state for r in p.j.unfinished()] == ["held"]
    empty.unlink()
    empty.parent.rmdir()
    with capture_logs() as logs:
        assert run_once(p, now=2000.0) == []
    assert [r.state for r in p.j.unfinished()] == ["waiting"]
    assert [e["event"] for e in logs if "a folder named close" in e["event"]] == [
        "invoice waits for attachments; a folder named close to its own has no invoice file"]
