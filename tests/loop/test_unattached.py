"""The one rule for an invoice without attachments (daemon/loop/unattached.py), which the daemon
(decide.py, finish.py) and `outboxd check` both ask: what becomes of the bundle under
each `[policy] unattached`, with or without a release file, and the findings it gives.
Real files in a temp outbox, read by the daemon's own `finish.evaluate`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from helpers import UBL_NS, drop_bundle, pdf_bytes, write  # noqa: E402

from daemon.claiming.claim import moved_candidate  # noqa: E402
from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.finish import evaluate  # noqa: E402
from daemon.loop import unattached  # noqa: E402
from daemon.loop.release import found_beside, release_file  # noqa: E402
from daemon.watching.scan import candidate_for  # noqa: E402


def settings(tmp_path: Path, policy: str, wait: float = 300) -> Settings:
    outbox = tmp_path / "outbox"
    outbox.mkdir(exist_ok=True)
    return Settings(outbox={"path": str(outbox)}, paths={"state_dir": str(tmp_path / "st")},
                    delivery={"transport": "directory", "target": str(tmp_path / "target")},
                    policy={"unattached": policy, "attachment_wait_seconds": wait})


@pytest.mark.parametrize(("policy", "released", "outcome", "severity"), [
    ("send", False, unattached.SEND, "warning"),
    ("send", True, unattached.SEND, "warning"),
    ("warn", False, unattached.WAIT_THEN_SEND, "warning"),
    ("quarantine", False, unattached.WAIT_THEN_QUARANTINE, "error"),
    ("hold", False, unattached.WAIT_FOR_RELEASE, "warning"),
    ("warn", True, unattached.SEND, "warning"),
    ("quarantine", True, unattached.SEND, "warning"),
    ("hold", True, unattached.SEND, "warning"),
])
def test_each_policy_has_its_outcome_and_a_release_sends_at_once_whatever_the_policy(
        tmp_path: Path, policy: str, released: bool, outcome: str, severity: str) -> None:
    """Each policy's outcome for a file of two invoices, one without attachments; a release
    file beside it sends it at once (said to be the release's doing only where the policy
    would have it wait). One finding, for the unattached invoice only, a warning where it
    is sent and an error where it is quarantined; a sent one's names the release."""
    s = settings(tmp_path, policy)
    docs = "".join(f"<Invoice {UBL_NS}><cbc:ID>{i}</cbc:ID></Invoice>" for i in ("A-1", "A-2"))
    inv = drop_bundle(s.outbox.path, "batch", {"A-1/a.pdf": pdf_bytes()},
                      invoice=f"<Batch>{docs}</Batch>".encode())
    if released:
        write(s.outbox.path / "batch.send-anyway", b"")
    cand = candidate_for(s.outbox, inv.name)
    bundle = evaluate(cand, s)
    assert bundle.unattached_ids == ("A-2",)
    rule = unattached.plan(bundle, cand, s, release_file(cand, s.share))
    assert rule is not None
    assert rule.outcome == outcome
    assert rule.waits is (outcome != unattached.SEND)
    assert rule.by_release is (released and policy != "send")
    findings = rule.findings()
    assert [(f.code, f.invoice_id, f.severity, f.file) for f in findings] == [
        ("unattached-invoice", "A-2", severity, "batch.xml")]
    if outcome == unattached.SEND:
        assert ("released by batch.send-anyway" in findings[0].message) is released


def test_no_rule_applies_to_a_bundle_whose_invoices_all_have_attachments(
        tmp_path: Path) -> None:
    """Every invoice has attachments: nothing waits and no finding is given, whatever the
    policy."""
    s = settings(tmp_path, "quarantine")
    inv = drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
    cand = candidate_for(s.outbox, inv.name)
    assert unattached.plan(evaluate(cand, s), cand, s, None) is None


def test_a_quarantine_foretold_names_the_wait_and_one_that_came_names_its_deadline(
        tmp_path: Path) -> None:
    """Under "quarantine" the finding before the wait ends (check) says the bundle is
    quarantined after its wait and how to avoid that; the one given when it ends (the
    daemon's reason) names the deadline and how to bring the bundle back. Both name the
    folder for the attachments and the release file."""
    s = settings(tmp_path, "quarantine", wait=90)
    inv = drop_bundle(s.outbox.path, "INV-1", {})
    cand = candidate_for(s.outbox, inv.name)
    rule = unattached.plan(evaluate(cand, s), cand, s, None)
    assert rule is not None
    [before] = rule.findings()
    [after] = rule.findings(ended="2026-11-26T09:30:00.000Z")
    assert before.severity == after.severity == "error"
    assert "quarantined after its wait of 90 s" in before.message
    assert "by the end of its wait (2026-11-26 09:30:00 UTC)" in after.message
    assert "move the bundle back into the outbox" in after.message
    for f in (before, after):
        assert "the folder INV-1 " in f.message and "INV-1.send-anyway" in f.message


def test_a_release_is_found_alike_in_the_outbox_and_in_the_processing_folder(
        tmp_path: Path) -> None:
    """The release file is spotted one way for check and the decision (in the outbox)
    and for the manifest's warning (moved with the bundle into its processing folder); a
    link of that name releases nothing in either place."""
    s = settings(tmp_path, "warn")
    inv = drop_bundle(s.outbox.path, "INV-1", {})
    cand = candidate_for(s.outbox, inv.name)
    assert release_file(cand, s.share) is None and found_beside(inv, s.share) is None
    write(s.outbox.path / "INV-1.send-anyway", b"")
    assert release_file(cand, s.share) == found_beside(inv, s.share) \
        == s.outbox.path / "INV-1.send-anyway"
    work = tmp_path / "processing" / "1"
    work.mkdir(parents=True)
    moved = moved_candidate(cand, work)
    (work / "INV-1.send-anyway").symlink_to(s.outbox.path / "INV-1.send-anyway")
    assert release_file(moved, s.share) is None and found_beside(moved.invoice, s.share) is None


def test_a_quarantine_of_a_name_too_long_for_its_release_file_says_to_rename_it_first(
        tmp_path: Path) -> None:
    """An invoice file named so long that NAME.send-anyway would be longer than a file
    name may be: its quarantine finding, foretold and given, does not tell the clerk to
    make that file (no file system can); it says how much shorter to rename the invoice
    file first, as the status page does."""
    s = settings(tmp_path, "quarantine")
    name = "L" * 245  # 249 bytes with ".xml"; with ".send-anyway" 257, over 255
    inv = drop_bundle(s.outbox.path, name, {})
    cand = candidate_for(s.outbox, inv.name)
    rule = unattached.plan(evaluate(cand, s), cand, s, None)
    assert rule is not None
    for f in (*rule.findings(), *rule.findings(ended="2026-11-26T09:30:00.000Z")):
        assert f"{name}.send-anyway" not in f.message
        assert "at least 2 characters shorter" in f.message
        assert "then .send-anyway" in f.message


def test_ids_of_one_folder_are_not_sent_to_make_it_at_the_deadline_or_by_check(
        tmp_path: Path) -> None:
    """A file whose ids A/1 and A:1 have one folder (batch/A_1) waits under "quarantine"
    without a sidecar: `check`'s foretelling and the quarantine reason at the deadline no
    longer say "put them in the folder batch/A_1 (make it if there is none)" for each,
    which made the file stop as id-folder-collision, but what the status page says (one
    helper: idfolders.one_folder_words); an id with a folder of its own is still sent to
    make it."""
    s = settings(tmp_path, "quarantine")
    docs = "".join(f"<Invoice {UBL_NS}><cbc:ID>{i}</cbc:ID></Invoice>"
                   for i in ("A/1", "A:1", "B-2"))
    inv = write(s.outbox.path / "batch.xml", f"<Batch>{docs}</Batch>".encode())
    cand = candidate_for(s.outbox, inv.name)
    bundle = evaluate(cand, s)
    assert bundle.errors == () and bundle.unattached_ids == ("A/1", "A:1", "B-2")
    rule = unattached.plan(bundle, cand, s, None)
    assert rule is not None
    shared = ("A/1 and A:1 have one folder, batch/A_1, and files put there could be "
              "either's, so outboxd stops the file as an error (id-folder-collision) as soon "
              "as its folder batch is made, whatever is put in it: have the ERP give them "
              "distinct ids and export the file again")
    for findings in (rule.findings(), rule.findings(ended="2026-11-26T09:30:00.000Z")):
        a1, a2, b2 = (f.message for f in findings)
        for message in (a1, a2):
            assert shared in message and "batch/A_1 (make it" not in message
            assert "batch.send-anyway" in message
        assert "put them in the folder batch/B-2 (make it if there is none)" in b2
        assert "id-folder-collision" not in b2


def test_a_quarantined_file_of_several_says_to_move_its_folder_back_with_the_release(
        tmp_path: Path) -> None:
    """A file of two invoices, A-1 with an attachment, A-2 without, quarantined at the end
    of its wait: the reason said "to send it without them, move the invoice file back with
    a file batch.send-anyway beside it", and a clerk who did just that released both
    invoices without attachments, A-1's left in quarantine/. It now says to move the
    folder back first, naming the invoice whose attachments it holds."""
    s = settings(tmp_path, "quarantine")
    docs = "".join(f"<Invoice {UBL_NS}><cbc:ID>{i}</cbc:ID></Invoice>" for i in ("A-1", "A-2"))
    inv = drop_bundle(s.outbox.path, "batch", {"A-1/a.pdf": pdf_bytes()},
                      invoice=f"<Batch>{docs}</Batch>".encode())
    cand = candidate_for(s.outbox, inv.name)
    rule = unattached.plan(evaluate(cand, s), cand, s, None)
    assert rule is not None
    [after] = rule.findings(ended="2026-11-26T09:30:00.000Z")
    assert after.message.endswith(
        "or, to send it without them, move the folder batch back first (it holds the "
        "attachments of A-1), then the invoice file, with a file batch.send-anyway beside it")


def test_a_quarantined_file_of_one_invoice_is_moved_back_alone_with_its_release(
        tmp_path: Path) -> None:
    """An invoice without attachments has nothing in a folder to bring back: its reason
    still says to move the invoice file back with the release file, and no more."""
    s = settings(tmp_path, "quarantine")
    inv = drop_bundle(s.outbox.path, "INV-1", {})
    cand = candidate_for(s.outbox, inv.name)
    rule = unattached.plan(evaluate(cand, s), cand, s, None)
    assert rule is not None
    [after] = rule.findings(ended="2026-11-26T09:30:00.000Z")
    assert after.message.endswith("move the invoice file back with a file "
                                  "INV-1.send-anyway beside it")
