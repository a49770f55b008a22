"""Pipeline decisions for one bundle, driven step by step with a real journal, real files
and the directory transport (no network, no threads)."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import sqlite3
import sys
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import (  # noqa: E402, F401 - quiet_logs: autouse
    folders,
    make,
    quiet_logs,
    run_once,
    step,
)
from fakeloop import RESCAN, SETTLE, FakeClock, settle_all  # noqa: E402
from helpers import (  # noqa: E402
    UBL_NS,
    drop_bundle,
    looks_fail,
    pdf_bytes,
    pin_wall,
    raised,
    refuse_listing,
    ubl_invoice,
    wait_for,
    write,
)
from sharetimes import FatTimes, no_change_times  # noqa: E402

from daemon.configuration.config import Settings  # noqa: E402
from daemon.delivery.finish import evaluate  # noqa: E402
from daemon.errors import ReaderFailed  # noqa: E402
from daemon.journal import Journal, iso_in, parse_iso  # noqa: E402
from daemon.loop.pipeline import Pipeline  # noqa: E402
from daemon.loop.step import IDLE  # noqa: E402
from daemon.names import printable  # noqa: E402
from daemon.validation.cutshort import GRACE_SECONDS  # noqa: E402
from daemon.watching import snapshot as snapshot_module  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402
from daemon.watching.snapshot import snapshot  # noqa: E402


class TestDecisions:
    def test_a_valid_bundle_is_delivered_and_archived(self, tmp_path: Path) -> None:
        """Settled, valid, attached: claimed, delivered, archived in sent/ with a receipt."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        [row] = run_once(p)
        assert p.j.get(row).state == "sent"
        [archived] = folders(s.sent_dir)
        receipt = json.loads((archived / "receipt.json").read_text())
        assert receipt["response"]["status"] == 201 and receipt["attempts"] == 1
        assert (tmp_path / "target" / receipt["manifest"]["bundle_id"]).is_dir()

    @pytest.mark.parametrize("bad", ["b\x1b[2J.pdf", "b\x85.pdf"], ids=["C0", "C1"])
    def test_a_bundle_with_a_bad_name_attachment_is_quarantined_not_claimed_for_ever(
            self, tmp_path: Path, bad: str) -> None:
        """An attachment refused for its name (a control character) quarantines its
        bundle at the first step. The check right after the claim read the work folder
        as an older version's claim (bad names taken with their error), got another
        bundle id than the outbox's read, undid the claim — "bundle changed while being
        claimed" — and did so at every step, for ever."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(), bad: pdf_bytes()})
        assert run_once(p) == []  # quarantined at its claim, nothing to deliver
        [q] = folders(s.quarantine_dir)
        reasons = json.loads((q / "reason.json").read_text())["reasons"]
        assert "bad-name" in [r["code"] for r in reasons]
        assert not (s.outbox.path / "INV-1.xml").exists() and p.live == {}

    def test_duplicate_of_a_sent_bundle(self, tmp_path: Path) -> None:
        """Dropping byte-identical files again after delivery quarantines them as duplicate,
        and REASON.txt says when the first was sent and its folder in sent/ (it said only
        "was sent before", leaving the clerk nothing to look for; check named both)."""
        p, s = make(tmp_path)
        pdf = pdf_bytes()
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf}, b"<Inv>1</Inv>")
        run_once(p)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf}, b"<Inv>1</Inv>")
        run_once(p, now=2000.0)
        [q] = folders(s.quarantine_dir)
        reasons = json.loads((q / "reason.json").read_text())["reasons"]
        assert [r["code"] for r in reasons] == ["duplicate"]
        [sent] = folders(s.sent_dir)
        delivered = json.loads((sent / "receipt.json").read_text())["delivered_at"]
        where = f"{s.sent_dir.name}/{sent.parent.name}/{sent.name}"
        reason_txt = " ".join((q / "REASON.txt").read_text().split())
        assert re.search(rf"was sent at {delivered[:10]} {delivered[11:19]} UTC \(folder "
                         rf"{re.escape(where)}\)", reason_txt), reason_txt

    def test_the_same_files_again_for_another_channel_are_a_duplicate(
            self, tmp_path: Path) -> None:
        """The channel is not part of the bundle id (nor of the receiver's Idempotency-Key):
        the files sent as e-invoice dropped again with attachments.toml saying
        original-print are the same bundle, quarantined as a duplicate, and the reason
        says that the channel alone does not make a new bundle and what does."""
        p, s = make(tmp_path)
        pdf = pdf_bytes()
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf}, b"<Inv>1</Inv>")
        run_once(p)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf,
                                             "attachments.toml": b'channel = "original-print"\n'},
                    b"<Inv>1</Inv>")
        run_once(p, now=2000.0)
        [q] = folders(s.quarantine_dir)
        [reason] = json.loads((q / "reason.json").read_text())["reasons"]
        assert reason["code"] == "duplicate"
        assert "change a file, a type or a note" in reason["message"]
        assert "channel in attachments.toml alone does not make a new bundle" in \
            reason["message"]
        assert len(folders(s.sent_dir)) == 1

    def test_unattached_under_quarantine_policy_waits_then_is_quarantined(
            self, tmp_path: Path) -> None:
        """policy quarantine: waiting (in the outbox) until the deadline, then quarantined."""
        p, s = make(tmp_path, policy={"unattached": "quarantine",
                                      "attachment_wait_seconds": 3600})
        drop_bundle(s.outbox.path, "INV-1", {})
        assert run_once(p) == []
        [row] = p.j.rows(("waiting",))
        assert row.unattached_ids == ["INV-1"] and row.deadline
        assert (s.outbox.path / "INV-1.xml").exists()
        p.j.update(row.id, deadline=iso_in(-60))  # the wait is over
        p.live["INV-1.xml"] = p.j.get(row.id)  # the pipeline keeps its live rows in memory
        assert run_once(p, now=2000.0) == []
        [q] = folders(s.quarantine_dir)
        assert "INV-1" in (q / "REASON.txt").read_text()
        assert json.loads((q / "reason.json").read_text())["reasons"][0]["code"] == \
            "unattached-invoice"

    @pytest.mark.parametrize(("ids", "folders_named"), [
        (["INV-1"], ["the folder INV-1_att (make it"]),
        (["A/1", "B-2"], ["the folder INV-1_att/A_1 (make it", "the folder INV-1_att/B-2 "
                                                                "(make it"])])
    def test_an_unattached_quarantine_names_the_folder_the_attachments_go_into(
            self, tmp_path: Path, ids: list[str], folders_named: list[str]) -> None:
        """REASON.txt said "add them to the sidecar folder", a word the clerk never sees:
        with [outbox] sidecar_suffix = "_att" the folder is INV-1_att (not INV-1), and
        for a file of several invoices each invoice's own subfolder, so it names them,
        one reason per invoice, each naming its invoice in `invoice_id` for scripts."""
        p, s = make(tmp_path, outbox={"sidecar_suffix": "_att"},
                    policy={"unattached": "quarantine", "attachment_wait_seconds": 0})
        body = b"".join(ubl_invoice(i).split(b"?>", 1)[-1] for i in ids)
        drop_bundle(s.outbox.path, "INV-1", {},
                    invoice=ubl_invoice(ids[0]) if len(ids) == 1 else b"<Batch>" + body
                    + b"</Batch>")
        assert run_once(p) == []
        [q] = folders(s.quarantine_dir)
        reasons = json.loads((q / "reason.json").read_text())["reasons"]
        assert [r["code"] for r in reasons] == ["unattached-invoice"] * len(ids)
        assert [r["invoice_id"] for r in reasons] == ids
        for reason, named in zip(reasons, folders_named, strict=True):
            assert named in reason["message"]
            assert named in (q / "REASON.txt").read_text()

    def test_an_unattached_quarantine_says_how_to_send_it_without_attachments(
            self, tmp_path: Path) -> None:
        """A clerk whose invoice really has no attachments learns from REASON.txt the
        other way out than adding files: move it back with its release file beside it
        (the share's "send anyway", named with the configured suffix)."""
        p, s = make(tmp_path, share={"release_suffix": ".go"},
                    policy={"unattached": "quarantine", "attachment_wait_seconds": 0})
        drop_bundle(s.outbox.path, "INV-1", {})
        assert run_once(p) == []
        [q] = folders(s.quarantine_dir)
        [reason] = json.loads((q / "reason.json").read_text())["reasons"]
        assert reason["message"].endswith("or, to send it without them, move the invoice "
                                          "file back with a file INV-1.go beside it")
        assert "a file INV-1.go beside it" in (q / "REASON.txt").read_text()

    def test_reason_json_names_the_invoices_of_the_file_and_of_each_reason(
            self, tmp_path: Path) -> None:
        """An ERP learns from reason.json which invoices a quarantine stopped, and which
        one each reason is about, without reading messages or undoing the folder name's
        replaced characters ('X/2' and 'X:2' both have the folder X_2): the record lists
        the file's invoice_ids, each reason its invoice_id (null for the whole file), and
        `status --json` (the journal's reasons) says the same."""
        p, s = make(tmp_path)
        body = b"".join(ubl_invoice(i).split(b"?>", 1)[-1] for i in ("X/1", "X:2"))
        drop_bundle(s.outbox.path, "B-1", {"X_1/a.pdf": pdf_bytes(), "X_2/empty.pdf": b""},
                    invoice=b"<Batch>" + body + b"</Batch>")
        assert run_once(p) == []
        # An empty file may be a copy still at work: quarantined once its grace is over.
        assert run_once(p, now=1000.0 + GRACE_SECONDS) == []
        [q] = folders(s.quarantine_dir)
        record = json.loads((q / "reason.json").read_text())
        assert record["invoice_ids"] == ["X/1", "X:2"]
        assert record["reasons"] == [{"code": "empty-file", "file": "B-1/X_2/empty.pdf",
                                      "message": record["reasons"][0]["message"],
                                      "invoice_id": "X:2"}]
        [row] = p.j.rows(("quarantined",))
        assert row.reasons == record["reasons"]

    @pytest.mark.parametrize("with_sidecar", [False, True])
    def test_a_quarantined_bundle_leaves_its_look_alike_sidecar_in_the_outbox(
            self, tmp_path: Path, with_sidecar: bool) -> None:
        """A Mac made Räkning-7/ (accents decomposed) beside the ERP's Räkning-7.xml, under
        [policy] invalid = "quarantine": the look-alike is no part of the bundle, so the
        claim leaves it in the outbox with its files, by its own name; the invoice file
        (and the sidecar spelled right, when there is one) goes into quarantine, and
        REASON.txt says the look-alike is still in the outbox and to rename it there."""
        p, s = make(tmp_path, policy={"invalid": "quarantine"})
        outbox = s.outbox.path
        nfc, nfd = (unicodedata.normalize(form, "Räkning-7") for form in ("NFC", "NFD"))
        write(outbox / nfd / "timesheet.pdf", pdf_bytes())
        if with_sidecar:
            write(outbox / nfc / "contract.pdf", pdf_bytes(2))
        write(outbox / f"{nfc}.xml", ubl_invoice("R7"))
        assert run_once(p) == []
        [row] = p.j.rows(("quarantined",))
        assert [(r["code"], r["file"]) for r in row.reasons] == [("sidecar-spelling", nfd)]
        assert sorted(os.listdir(outbox)) == sorted([".outboxd", nfd])
        assert os.listdir(outbox / nfd) == ["timesheet.pdf"]
        [q] = folders(s.quarantine_dir)
        assert sorted(str(f.relative_to(q)) for f in q.rglob("*")) == sorted(
            [f"{nfc}.xml", "REASON.txt", "reason.json",
             *([nfc, f"{nfc}/contract.pdf"] if with_sidecar else [])])
        text = (q / "REASON.txt").read_text(encoding="utf-8")
        assert f"still in the outbox, under that name, with everything in it:\n- {nfd}\n" \
            in text
        assert f"rename {nfd} by typing its name again" in text

    def test_a_quarantined_bundle_leaves_a_copy_of_its_sidecar_in_the_outbox(
            self, tmp_path: Path) -> None:
        """INV-7/ and a clerk's Explorer copy `INV-7 - Copy/` beside INV-7.xml, under
        [policy] invalid = "quarantine": the copy stays in the outbox with its files; the
        invoice file and INV-7/ go to quarantine, and REASON.txt says to rename the copy
        to the name its line gives, or move its files into INV-7/ there — not "type its
        name again", which is the fix for accents."""
        p, s = make(tmp_path, policy={"invalid": "quarantine"})
        outbox = s.outbox.path
        write(outbox / "INV-7 - Copy" / "timesheet.pdf", pdf_bytes())
        write(outbox / "INV-7" / "contract.pdf", pdf_bytes(2))
        write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
        assert run_once(p) == []
        [row] = p.j.rows(("quarantined",))
        assert [(r["code"], r["file"]) for r in row.reasons] == [
            ("sidecar-spelling", "INV-7 - Copy")]
        assert sorted(os.listdir(outbox)) == [".outboxd", "INV-7 - Copy"]
        [q] = folders(s.quarantine_dir)
        assert sorted(str(f.relative_to(q)) for f in q.rglob("*")) == [
            "INV-7", "INV-7.xml", "INV-7/contract.pdf", "REASON.txt", "reason.json"]
        text = (q / "REASON.txt").read_text(encoding="utf-8")
        assert "still in the outbox, under that name, with everything in it:\n- " \
            "INV-7 - Copy\n" in text
        assert "rename INV-7 - Copy to the sidecar's name its line above gives, exactly " \
            "as written there" in text
        assert "move the look-alike's files into that folder here instead" in text
        assert "typing its name again" not in text

    def test_the_sidecar_of_an_invoice_file_of_another_extension_quarantines_nothing(
            self, tmp_path: Path) -> None:
        """Under the default patterns and [policy] invalid = "quarantine": Faktura.xml,
        and the ERP's Faktura 2.pdf with its sidecar `Faktura 2/`. That folder is
        Faktura 2.pdf's, no copy of Faktura/: Faktura.xml is sent, not quarantined for
        `sidecar-spelling` (before, only a Faktura 2.xml made the folder its own), and
        the folder goes with Faktura 2.pdf. Faktura.xml is read first (before, it was
        quarantined then; read after Faktura 2.pdf had taken its folder, it was not)."""
        p, s = make(tmp_path, policy={"invalid": "quarantine"})
        outbox = s.outbox.path
        drop_bundle(outbox, "Faktura", {"contract.pdf": pdf_bytes(3)}, ubl_invoice("F-1"))
        write(outbox / "Faktura 2.pdf", pdf_bytes())
        write(outbox / "Faktura 2" / "timesheet.pdf", pdf_bytes(2))
        row = step(p, list_outbox(s.outbox).candidates["Faktura.xml"], 1000.0).claimed
        assert row is not None and p.finish.attempt(row) is None
        run_once(p)
        assert p.j.rows(("quarantined", "held")) == []
        assert sorted(r.invoice_file for r in p.j.rows(("sent",))) == [
            "Faktura 2.pdf", "Faktura.xml"]
        assert sorted(os.listdir(outbox)) == [".outboxd"]

    def test_a_delivered_row_is_only_archived_never_posted_again(self, tmp_path: Path) -> None:
        """If archiving failed after the receiver accepted a bundle, the next attempt only
        archives it: the transport is not used again."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        row = step(p, next(iter(list_outbox(s.outbox).candidates.values())), 1000.0).claimed
        assert row is not None
        record = {"manifest": {"bundle_id": p.j.get(row).bundle_id}, "attempts": 1,
                  "response": {"status": 201, "body": {}, "receipt_id": "R-1"},
                  "delivered_at": "2026-11-26T00:00:00Z"}
        p.j.transition(row, "delivered", response=record, receipt_id="R-1")
        assert p.finish.attempt(row) is None
        assert p.j.get(row).state == "sent"
        assert list((tmp_path / "target").iterdir()) == []  # nothing was delivered again
        [archived] = folders(s.sent_dir)
        assert json.loads((archived / "receipt.json").read_text())["response"]["receipt_id"] \
            == "R-1"

    def test_a_bundle_that_cannot_be_read_is_logged_as_a_bundle_event(
            self, tmp_path: Path) -> None:
        """Every bundle event carries bundle_id, invoice_file and invoice_ids: also the
        error of a bundle that cannot be read (no id known yet: null and [], as while it
        settles), so that a log query by those keys finds it."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        nxt = p.step(cand, 1000.0)
        assert nxt.read is not None
        with capture_logs() as logs:
            p.took_read("INV-1.xml", nxt.read, PermissionError(13, "Permission denied"))
        [line] = [e for e in logs if e["event"] == "bundle cannot be read"]
        assert line["invoice_file"] == "INV-1.xml"
        assert line["bundle_id"] is None and line["invoice_ids"] == []


    @pytest.mark.parametrize("failure, shown", [
        (ReaderFailed("INV-1.xml: a reader process died while reading it each time (out of "
                      "memory?); it is read again when it changes"), "died while reading"),
        (ReaderFailed("NameError: name 'x' is not defined (in a reader process)\nTraceback"),
         "NameError: name 'x' is not defined"),
    ], ids=["reader-died-each-time", "unexpected-error"])
    def test_a_bundle_whose_read_failed_for_no_fault_of_its_own_says_why_it_waits(
            self, tmp_path: Path, failure: ReaderFailed, shown: str) -> None:
        """A read that failed for a reason that is not the bundle's (its reader died each
        time, a bug in a reader) leaves it settling, read again when it changes, with
        why in the row, as status and the page show it; it had no last_error, and
        looked like a bundle about to move, for good."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        nxt = p.step(cand, 1000.0)
        assert nxt.read is not None
        p.took_read("INV-1.xml", nxt.read, failure)
        assert p.step(cand, 1000.0).read is None  # not read again until it changes
        [row] = p.j.rows(("settling",))
        assert shown in (row.last_error or "")
        assert "read again" in (row.last_error or "")
        assert "Traceback" not in (row.last_error or "")

    @pytest.mark.parametrize("start", [0.0, 1e9])
    def test_a_read_the_machine_or_share_failed_is_tried_again_not_blamed_on_the_bundle(
            self, tmp_path: Path, start: float) -> None:
        """No descriptors left (EMFILE), a share that timed out: nothing a clerk did, and
        nothing that brings an event when it passes. The bundle shows why it waits and is
        read again a rescan period later (on the loop's clock, whatever its value);
        before, it waited for a change of its files for good. A permission error still
        waits for a change (a chmod is one)."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        nxt = p.step(cand, start)
        assert nxt.read is not None
        p.took_read("INV-1.xml", nxt.read, OSError(errno.EMFILE, "Too many open files"),
                    start)
        wait = p.step(cand, start + 1)
        assert wait.read is None and wait.at == start + s.outbox.rescan_seconds
        row = p.live["INV-1.xml"]
        assert row.state == "settling"
        assert "Too many open files" in (row.last_error or "")
        again = p.step(cand, start + s.outbox.rescan_seconds)
        assert again.read == nxt.read
        p.took_read("INV-1.xml", again.read, PermissionError(13, "Permission denied"),
                    start + s.outbox.rescan_seconds)
        assert p.step(cand, start + 10 * s.outbox.rescan_seconds) == IDLE

    @pytest.mark.parametrize("proc", ["missing", "another file"])
    def test_a_read_failed_by_an_unusable_proc_is_tried_again_saying_proc_is_needed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proc: str) -> None:
        """The race-free open goes through /proc/self/fd: with /proc not mounted (ENOSYS)
        or not the kernel's (EXDEV) the machine is at fault, as with no descriptors
        left. The bundle waits and is read again, saying that outboxd needs /proc
        (ProcSubset=pid), not told to fix its permissions."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        nxt = p.step(cand, 0.0)
        assert nxt.read is not None
        real_open = os.open
        other = tmp_path / "other"
        other.write_bytes(b"not the file looked at")

        def reopen(path: Any, flags: int, *args: Any, **kw: Any) -> int:
            if str(path).startswith("/proc/self/fd/"):
                if proc == "missing":
                    raise FileNotFoundError(errno.ENOENT, "No such file or directory")
                return real_open(other, flags)  # as if something were mounted over it
            return real_open(path, flags, *args, **kw)
        monkeypatch.setattr(os, "open", reopen)
        failed = raised(lambda: evaluate(cand, s))
        monkeypatch.undo()
        assert isinstance(failed, OSError)
        assert failed.errno == (errno.ENOSYS if proc == "missing" else errno.EXDEV)
        p.took_read("INV-1.xml", nxt.read, failed, 0.0)
        wait = p.step(cand, 1.0)
        assert wait.read is None and wait.at == s.outbox.rescan_seconds
        error = p.live["INV-1.xml"].last_error or ""
        assert "ProcSubset=pid" in error and "tries again" in error
        assert "permission" not in error

def test_a_bundle_whose_name_an_upgrade_refuses_is_left_alone_not_said_gone_from_the_outbox(
        tmp_path: Path) -> None:
    """Upgrade: the version before this one held INV-<U+0085>.xml; this one refuses the
    name (bad-name). At the start the row ends (the log and the page say why the file is
    left alone) and the journal says the file is left alone in the outbox — not 'not in
    the outbox at start', as it said: the file is there, untouched."""
    p, s = make(tmp_path, policy={"invalid": "hold"})
    name = "INV-\x85.xml"
    write(s.outbox.path / name, b"<Invoice>broken")
    # As the older version left it: a held row.
    row = p.j.create(name, "held", "pre-upgrade", reasons=[])
    listing = list_outbox(s.outbox)
    assert name not in listing.candidates and name in listing.stats
    again, _ = make(tmp_path, policy={"invalid": "hold"})
    again.start(set(listing.candidates), listing.stats)
    assert again.j.get(row).state == "gone"
    assert "left alone" in (again.j.last_detail(row) or "")
    assert (s.outbox.path / name).read_bytes() == b"<Invoice>broken"


class TestWaitingDeadlines:
    """The end of an unattached bundle's wait ([policy] unattached): kept in the journal as
    wall-clock time, waited for on the loop's monotonic clock."""

    def test_hold_ignores_a_deadline_an_earlier_policy_set(self, tmp_path: Path) -> None:
        """Waiting under warn with a deadline, then restarted under hold once that deadline
        has passed: it still waits, without a deadline, and nothing is sent (before, the
        old deadline sent it without attachments)."""
        p, s = make(tmp_path, policy={"unattached": "warn", "attachment_wait_seconds": 3600})
        drop_bundle(s.outbox.path, "INV-1", {})
        assert run_once(p) == []
        [row] = p.j.rows(("waiting",))
        p.j.update(row.id, deadline=iso_in(-60))  # long over
        held, _ = make(tmp_path, policy={"unattached": "hold"})  # a restart under hold
        held.start({"INV-1.xml"})
        assert run_once(held, now=5000.0) == []
        assert held.j.get(row.id).state == "waiting" and held.j.get(row.id).deadline is None
        assert folders(s.sent_dir) == [] and list((tmp_path / "target").iterdir()) == []

    def test_a_wall_clock_step_moves_no_wait_once_its_deadline_was_read(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A 100 s wait read at monotonic 1000: the wall clock jumping a day ahead does not
        end it at 1050; it ends at 1100 all the same."""
        real = datetime

        p, s = make(tmp_path, policy={"unattached": "warn", "attachment_wait_seconds": 100})
        drop_bundle(s.outbox.path, "INV-1", {})
        assert run_once(p, now=1000.0) == []

        class Jumped(real):
            @classmethod
            def now(cls, tz: Any = None) -> Any:  # noqa: ANN401 - datetime's own signature
                return real.now(tz) + timedelta(days=1)
        monkeypatch.setattr("daemon.journal.records.datetime", Jumped)
        assert run_once(p, now=1050.0) == []
        assert p.j.rows(("waiting",)) != []
        assert len(run_once(p, now=1100.5)) == 1 and len(folders(s.sent_dir)) == 1

    def test_another_invoice_under_the_same_file_name_waits_anew(self, tmp_path: Path) -> None:
        """INV-1.xml waited until just now; the file is replaced by one holding INV-9: that
        invoice gets a whole wait of its own, not the rest of INV-1's."""
        p, s = make(tmp_path, policy={"unattached": "warn", "attachment_wait_seconds": 3600})
        drop_bundle(s.outbox.path, "INV-1", {})
        assert run_once(p) == []
        [row] = p.j.rows(("waiting",))
        p.j.update(row.id, deadline=iso_in(-60))  # INV-1's wait is over
        p.live["INV-1.xml"] = p.j.get(row.id)
        drop_bundle(s.outbox.path, "INV-1", {}, ubl_invoice("INV-9"))
        assert run_once(p, now=2000.0) == []
        [again] = p.j.rows(("waiting",))
        assert again.invoice_ids == ["INV-9"] and again.deadline is not None
        assert parse_iso(again.deadline) > datetime.now(UTC) + timedelta(seconds=3000)
        assert folders(s.sent_dir) == []


def _batch(*ids: str) -> bytes:
    """A file of several UBL invoices (any wrapper element)."""
    docs = "".join(f"<Invoice {UBL_NS}><cbc:ID>{i}</cbc:ID></Invoice>" for i in ids)
    return f"<Batch>{docs}</Batch>".encode()


class TestWaitGoesOn:
    """A change of a waiting bundle's files that brings no attachment for its invoices
    begins no new wait: `since` (status, the page) keeps saying since when it waits,
    and its deadline stands (docs/folder-convention.md, section 5)."""

    BEGAN = datetime(2031, 5, 6, 10, 0, tzinfo=UTC)
    WAITING = {"outbox": {"settle_seconds": 5},
               "policy": {"unattached": "warn", "attachment_wait_seconds": 3600}}

    def _waiting(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[
            Pipeline, Settings, Any]:
        """B-1.xml (A-1 attached, A-2 not) waiting since 10:00:00 UTC; the clock then at
        10:10:00."""
        wall = pin_wall(monkeypatch, self.BEGAN)
        p, s = make(tmp_path, **self.WAITING)
        drop_bundle(s.outbox.path, "B-1", {"A-1/a.pdf": pdf_bytes()}, _batch("A-1", "A-2"))
        assert run_once(p, now=100.0) == [] and run_once(p, now=106.0) == []
        [row] = p.j.rows(("waiting",))
        assert row.since == "2031-05-06T10:00:00.000Z" and row.unattached_ids == ["A-2"]
        assert row.deadline == "2031-05-06T11:00:00.000Z"
        wall.at = self.BEGAN + timedelta(minutes=10)
        return p, s, row

    @pytest.mark.parametrize("change", ["a file added for the attached invoice",
                                        "the invoice file written again"])
    def test_a_change_during_the_wait_keeps_since_and_deadline(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str) -> None:
        """At 10:10 a file is added to A-1's folder, or the ERP writes the invoice file
        again: while it settles the bundle shows settling since 10:10; then it waits on,
        since 10:00 with its deadline 11:00 (before, `since` said 10:10: a bundle waiting
        for hours looked as if it had just begun, and left "Needs attention")."""
        p, s, row = self._waiting(tmp_path, monkeypatch)
        if change.startswith("a file"):
            write(s.outbox.path / "B-1" / "A-1" / "b.pdf", pdf_bytes(2))
        else:
            write(s.outbox.path / "B-1.xml", _batch("A-1", "A-2") + b"\n")
        assert run_once(p, now=200.0) == []
        settling = p.j.get(row.id)
        assert (settling.state, settling.since) == ("settling", "2031-05-06T10:10:00.000Z")
        assert run_once(p, now=206.0) == []
        again = p.j.get(row.id)
        assert (again.state, again.since, again.deadline) == (
            "waiting", "2031-05-06T10:00:00.000Z", "2031-05-06T11:00:00.000Z")
        assert again.unattached_ids == ["A-2"]

    def test_the_wait_ends_in_the_turn_at_its_deadline(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Read at 10:00 (the loop's 106 s) with an hour to wait: a step at 3705.5 s
        leaves it waiting, a step at exactly 3706 s, when its timer fires, sends it
        (not another timer for that same moment, which a clock that has not moved on
        fires again and again)."""
        p, s, row = self._waiting(tmp_path, monkeypatch)
        assert run_once(p, now=3705.5) == []
        assert len(run_once(p, now=3706.0)) == 1
        assert len(folders(s.sent_dir)) == 1

    def test_the_wait_goes_on_after_a_restart_in_the_middle_of_a_change(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Changed at 10:10, and the daemon restarted while the files settled: the journal
        kept when the wait began, so it still waits since 10:00."""
        p, s, row = self._waiting(tmp_path, monkeypatch)
        write(s.outbox.path / "B-1" / "A-1" / "b.pdf", pdf_bytes(2))
        assert run_once(p, now=200.0) == [] and p.j.get(row.id).state == "settling"
        again, _ = make(tmp_path, **self.WAITING)
        again.start({"B-1.xml"})
        assert run_once(again, now=300.0) == [] and run_once(again, now=306.0) == []
        assert (again.j.get(row.id).state, again.j.get(row.id).since) == (
            "waiting", "2031-05-06T10:00:00.000Z")

    def test_a_wall_clock_stepped_back_before_a_restart_does_not_lengthen_the_wait(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Waiting since 10:00 with its deadline at 11:00; the daemon stops at 10:10 and
        the wall clock is stepped back a day (a server whose clock ran a day ahead, put
        right by NTP at boot). The restart waits at most the hour that was left when the
        wait was written, not a day and an hour, and the deadline the journal (so
        `status` and the page) shows is the one it waits for (before, the invoice sat
        in the outbox until the next day)."""
        p, s, row = self._waiting(tmp_path, monkeypatch)
        pin_wall(monkeypatch, self.BEGAN - timedelta(days=1) + timedelta(minutes=10))
        again, _ = make(tmp_path, **self.WAITING)
        again.start({"B-1.xml"})
        assert run_once(again, now=300.0) == [] and run_once(again, now=306.0) == []
        waiting = again.j.get(row.id)
        assert waiting.state == "waiting"
        assert waiting.deadline is not None
        assert parse_iso(waiting.deadline) <= self.BEGAN - timedelta(days=1) + timedelta(
            minutes=70, seconds=10)
        assert run_once(again, now=3000.0) == []
        assert len(run_once(again, now=306.0 + 3600.5)) == 1
        assert len(folders(s.sent_dir)) == 1

    def test_a_wall_clock_stepped_forward_before_a_restart_ends_the_wait_once(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The same wait, the wall clock stepped a day ahead while the daemon was down: its
        deadline is past, so the restart sends the bundle (once) as soon as it settled."""
        p, s, row = self._waiting(tmp_path, monkeypatch)
        pin_wall(monkeypatch, self.BEGAN + timedelta(days=1))
        again, _ = make(tmp_path, **self.WAITING)
        again.start({"B-1.xml"})
        sent = run_once(again, now=300.0) + run_once(again, now=306.0)
        assert len(sent) == 1 and len(folders(s.sent_dir)) == 1
        assert run_once(again, now=400.0) == [] and len(folders(s.sent_dir)) == 1

    def test_other_invoices_under_the_same_name_wait_since_their_own_start(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The file replaced at 10:10 by one of other invoices: a new wait, since 10:10,
        with a deadline of its own."""
        p, s, row = self._waiting(tmp_path, monkeypatch)
        write(s.outbox.path / "B-1.xml", _batch("A-1", "A-9"))
        assert run_once(p, now=200.0) == [] and run_once(p, now=206.0) == []
        again = p.j.get(row.id)
        assert (again.state, again.since, again.deadline) == (
            "waiting", "2031-05-06T10:10:00.000Z", "2031-05-06T11:10:00.000Z")


class TestRestart:
    def test_a_waiting_bundle_keeps_its_state_and_since_across_a_restart(
            self, tmp_path: Path) -> None:
        """Waiting since S, then a restart: while its files settle again it is still shown
        waiting, since S, and after that too (before, it went to settling, and `since`
        restarted: a bundle waiting for days left "Needs attention")."""
        p, s = make(tmp_path, policy={"unattached": "warn", "attachment_wait_seconds": 3600})
        drop_bundle(s.outbox.path, "INV-1", {})
        assert run_once(p) == []
        [row] = p.j.rows(("waiting",))
        with sqlite3.connect(s.journal_path) as db:  # waiting for months
            db.execute("UPDATE bundles SET since = ? WHERE id = ?",
                       ("2026-01-01T00:00:00.000Z", row.id))
        again, _ = make(tmp_path, outbox={"settle_seconds": 5},
                        policy={"unattached": "warn", "attachment_wait_seconds": 3600})
        again.start({"INV-1.xml"})
        assert run_once(again, now=100.0) == []  # not settled yet
        assert (again.j.get(row.id).state, again.j.get(row.id).since) == \
            ("waiting", "2026-01-01T00:00:00.000Z")
        assert run_once(again, now=106.0) == []  # settled, decided again: still waiting
        assert (again.j.get(row.id).state, again.j.get(row.id).since) == \
            ("waiting", "2026-01-01T00:00:00.000Z")


class TestRestartWhileBusy:
    def test_a_resumed_bundle_whose_files_cannot_settle_shows_settling(
            self, tmp_path: Path) -> None:
        """Waiting, then restarted with a copy still at work in its sidecar (a `.part`):
        it cannot settle, so it shows settling, as it would without the restart —
        not "waiting" with a deadline that passes with nothing done (review)."""
        p, s = make(tmp_path, policy={"unattached": "warn", "attachment_wait_seconds": 3600})
        drop_bundle(s.outbox.path, "INV-1", {})
        assert run_once(p) == []
        [row] = p.j.rows(("waiting",))
        write(s.outbox.path / "INV-1" / "scan.pdf.part", b"%PDF-1.4 half")
        again, _ = make(tmp_path, outbox={"settle_seconds": 5},
                        policy={"unattached": "warn", "attachment_wait_seconds": 3600})
        again.start({"INV-1.xml"})
        assert run_once(again, now=100.0) == []
        assert again.j.get(row.id).state == "settling"

    @pytest.mark.parametrize("start", [0.0, 1e9])
    def test_a_copy_that_stopped_under_an_in_progress_name_is_shown_with_the_fix(
            self, tmp_path: Path, start: float) -> None:
        """An in-progress name keeps a bundle settling until an event; one unchanged for
        STUCK_SECONDS (a killed copy) is shown: the row's last error names the file and
        the fix, at the time the loop was told to look, not before. Once the copy gets
        its final name the bundle goes out and the error is gone."""
        from daemon.loop.pipeline import STUCK_SECONDS
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        part = write(s.outbox.path / "INV-1" / "scan.pdf.part", pdf_bytes())
        newest = _newest_change(s.outbox.path)
        p.wall = lambda: newest  # the files are as new as the first look
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        nxt = step(p, cand, start)
        assert nxt.at == start + STUCK_SECONDS
        assert step(p, cand, start + STUCK_SECONDS - 1).at == start + STUCK_SECONDS
        [row] = p.j.rows(("settling",))
        assert not row.last_error
        assert step(p, cand, start + STUCK_SECONDS).at is None
        [row] = p.j.rows(("settling",))
        assert "INV-1/scan.pdf.part" in (row.last_error or "")
        assert "give the file its final name or remove it" in (row.last_error or "")

        part.rename(part.with_name("scan.pdf"))
        later = start + STUCK_SECONDS + 1
        nxt = step(p, cand, later)
        nxt = step(p, cand, later + 5)
        row_id = nxt.claimed
        assert row_id is not None and not p.j.get(row_id).last_error

    @pytest.mark.parametrize("name", ["\udce9.pdf.part", "a\x1b\u202e.pdf.part"],
                             ids=["not-utf8", "controls"])
    def test_a_stopped_copy_is_named_in_the_row_as_shown(self, tmp_path: Path,
                                                         name: str) -> None:
        """The in-progress file a stopped copy left is named as every name is in the
        journal (names.printable): the raw name of one that is not UTF-8 cannot be written
        to SQLite, and its row was never updated, the loop failing on it at each look
        (found by reading pipeline.py after bench.fuzznames found the same in the row of a
        folder that cannot be listed)."""
        from daemon.loop.pipeline import STUCK_SECONDS
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        write(s.outbox.path / "INV-1" / name, pdf_bytes())
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        step(p, cand, 0.0)
        assert step(p, cand, STUCK_SECONDS).at is None
        [row] = p.j.rows(("settling",))
        assert (row.last_error or "").startswith(f"waits for INV-1/{printable(name)}: ")

    def test_an_office_lock_file_left_in_a_sidecar_is_shown_with_how_to_end_it(
            self, tmp_path: Path) -> None:
        """Word keeps ~$port.docx beside report.docx while it is open (and leaves it when
        it crashes): the bundle waits, and after STUCK_SECONDS the row says to close the
        document or remove the lock file — not "give the file its final name", which
        would make an attachment of the lock."""
        from daemon.loop.pipeline import STUCK_SECONDS
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"report.pdf": pdf_bytes()})
        write(s.outbox.path / "INV-1" / "~$report.docx", b"\x0banna" + bytes(150))
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        step(p, cand, 0.0)
        assert step(p, cand, STUCK_SECONDS).at is None
        [row] = p.j.rows(("settling",))
        said = re.fullmatch(
            r"waits for INV-1/~\$report\.docx: an in-progress name, unchanged since "
            r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC — a lock file that Word, Excel or "
            r"LibreOffice keeps while the document is open — close the document there.*",
            row.last_error or "")
        assert said is not None and "final name" not in said.group(0)
        # Since when it stopped changing (STUCK_SECONDS before this look), not "for 10
        # minutes", which the row kept saying as the hours went by.
        unchanged = datetime.strptime(said.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        ago = (datetime.now(UTC) - unchanged).total_seconds()
        assert STUCK_SECONDS - 5 <= ago <= STUCK_SECONDS + 60

    @pytest.mark.parametrize("start", [0.0, 1e9])
    def test_a_lock_file_days_old_at_a_start_is_shown_at_the_first_look(
            self, tmp_path: Path, start: float) -> None:
        """A lock file Word left in INV-1/ two days ago (a crash), found by a daemon that
        just started: the bundle has not changed for two days, so the row says why it does
        not move at the first look, since when the bundle last changed — not after another
        STUCK_SECONDS of this process, counted again at every start. Whatever the loop's
        clock (0 or 1e9: no test hangs on the host's uptime)."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"report.pdf": pdf_bytes()})
        write(s.outbox.path / "INV-1" / "~$report.docx", b"\x0banna" + bytes(150))
        newest = _newest_change(s.outbox.path)
        p.wall = lambda: newest + 2 * 86400.0
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        assert step(p, cand, start).at is None
        [row] = p.j.rows(("settling",))
        unchanged = datetime.fromtimestamp(newest, UTC).strftime("%Y-%m-%d %H:%M:%S")
        assert (row.last_error or "").startswith(
            f"waits for INV-1/~$report.docx: an in-progress name, unchanged since "
            f"{unchanged} UTC — a lock file that Word")

    @pytest.mark.parametrize("start", [0.0, 1e9])
    @pytest.mark.parametrize("age", [0.0, 120.0, -86400.0], ids=["new", "2min", "future"])
    def test_a_lock_file_younger_than_the_wait_is_shown_when_the_bundle_is_that_old(
            self, tmp_path: Path, start: float, age: float) -> None:
        """A lock file as old as the start is shown STUCK_SECONDS after the first look; one
        two minutes old, two minutes sooner; one whose time is ahead of the wall clock
        (a file server's clock a day fast) never sooner than from the first look."""
        from daemon.loop.pipeline import STUCK_SECONDS
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"report.pdf": pdf_bytes()})
        write(s.outbox.path / "INV-1" / ".~lock.report.odt#", b"anna")
        newest = _newest_change(s.outbox.path)
        cand = next(iter(list_outbox(s.outbox).candidates.values()))

        def look(at: float) -> float | None:
            """A step at `at` on the loop's clock, the wall clock gone on as far."""
            p.wall = lambda: newest + age + (at - start)
            return step(p, cand, at).at

        due = start + STUCK_SECONDS - max(0.0, age)
        # The files' age, a difference of two wall-clock times, is exact to a microsecond.
        assert look(start) == pytest.approx(due, abs=1e-3)
        assert look(due - 1) == pytest.approx(due, abs=1e-3)
        [row] = p.j.rows(("settling",))
        assert not row.last_error
        assert look(due + 1e-3) is None
        [row] = p.j.rows(("settling",))
        assert "INV-1/.~lock.report.odt#" in (row.last_error or "")

    def test_a_change_seen_after_the_start_counts_from_that_look_not_the_files_times(
            self, tmp_path: Path) -> None:
        """First seen with files two minutes old, then changed (a file added that keeps
        an old time, as a copy that preserves times makes it) while the daemon runs: the
        loop saw the change, so STUCK_SECONDS count from that look, not from the files'
        times, which do not show it."""
        from daemon.loop.pipeline import STUCK_SECONDS
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"report.pdf": pdf_bytes()})
        write(s.outbox.path / "INV-1" / "~$report.docx", b"anna")
        newest = _newest_change(s.outbox.path)
        cand = next(iter(list_outbox(s.outbox).candidates.values()))

        def look(at: float) -> float | None:
            p.wall = lambda: newest + 120.0 + at
            return step(p, cand, at).at

        assert look(0.0) == pytest.approx(STUCK_SECONDS - 120.0, abs=1e-3)
        write(s.outbox.path / "INV-1" / "hours.pdf", pdf_bytes())
        assert look(100.0) == 100.0 + STUCK_SECONDS
        [row] = p.j.rows(("settling",))
        assert not row.last_error

    @pytest.mark.parametrize("start", [0.0, 1e9])
    def test_a_stopped_copy_that_goes_on_is_no_longer_said_to_be_unchanged(
            self, tmp_path: Path, start: float) -> None:
        """A copy shown as stopped (its in-progress name unchanged for STUCK_SECONDS) that
        then goes on writing, still under that name: the row no longer says it is
        unchanged since then, with the fix for a stopped copy, while it changes; it is
        said again once it stops for STUCK_SECONDS once more. (The same for a start's
        first look that took a file server's slow clock for a copy days old.)"""
        from daemon.loop.pipeline import STUCK_SECONDS
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        part = write(s.outbox.path / "INV-1" / "scan.pdf.part", b"%PDF-1.4 half")
        newest = _newest_change(s.outbox.path)
        p.wall = lambda: newest
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        step(p, cand, start)
        assert step(p, cand, start + STUCK_SECONDS).at is None
        [row] = p.j.rows(("settling",))
        assert "unchanged since" in (row.last_error or "")
        with part.open("ab") as more:
            more.write(b" and more")
        later = start + STUCK_SECONDS + 30
        assert step(p, cand, later).at == later + STUCK_SECONDS
        [row] = p.j.rows(("settling",))
        assert not row.last_error
        assert step(p, cand, later + STUCK_SECONDS).at is None
        [row] = p.j.rows(("settling",))
        assert "INV-1/scan.pdf.part" in (row.last_error or "")

    def test_the_same_invoices_reordered_keep_their_deadline(self, tmp_path: Path) -> None:
        """A batch re-exported with its two invoices swapped is the same wait: its
        deadline (here over) stands, and it goes out (review: it waited anew)."""
        p, s = make(tmp_path, policy={"unattached": "warn", "attachment_wait_seconds": 3600})
        drop_bundle(s.outbox.path, "B-1", {}, _batch("A-1", "A-2"))
        assert run_once(p) == []
        [row] = p.j.rows(("waiting",))
        p.j.update(row.id, deadline=iso_in(-60))
        p.live["B-1.xml"] = p.j.get(row.id)
        drop_bundle(s.outbox.path, "B-1", {}, _batch("A-2", "A-1"))
        assert len(run_once(p, now=2000.0)) == 1 and len(folders(s.sent_dir)) == 1


class TestClaimFailure:
    def test_a_link_as_todays_archive_folder_is_never_archived_through(
            self, tmp_path: Path) -> None:
        """People on the share may write in sent/: a link put there as today's folder
        is not followed; the bundle waits in processing with the link named, and is
        archived once the link is gone."""
        p, s, row_id, elsewhere = self._claimed_beside_elsewhere(tmp_path)
        now = datetime.now(UTC)  # today's and tomorrow's: midnight may pass meanwhile
        days = [s.sent_dir / f"{d:%Y-%m-%d}" for d in (now, now + timedelta(days=1))]
        for day in days:
            day.symlink_to(elsewhere)
        assert self._not_archived_through_a_link(p, row_id, days, elsewhere)

    def test_a_link_swapped_in_for_sent_itself_is_never_archived_through(
            self, tmp_path: Path) -> None:
        """sent/ itself replaced by a link while the daemon runs (its parent may be the
        share's): today's folder is not made through it (review: it was)."""
        p, s, row_id, elsewhere = self._claimed_beside_elsewhere(tmp_path)
        s.sent_dir.rmdir()
        s.sent_dir.symlink_to(elsewhere)
        assert self._not_archived_through_a_link(p, row_id, [s.sent_dir], elsewhere)

    @staticmethod
    def _claimed_beside_elsewhere(tmp_path: Path) -> tuple[Pipeline, Settings, int, Path]:
        """A claimed bundle, and an empty folder outside for links to lead to."""
        p, s = make(tmp_path)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = next(iter(list_outbox(s.outbox).candidates.values()))
        row_id = step(p, cand, 0.0).claimed
        assert row_id is not None
        return p, s, row_id, elsewhere

    @staticmethod
    def _not_archived_through_a_link(p: Pipeline, row_id: int, links: list[Path],
                                     elsewhere: Path) -> bool:
        """One attempt finds the link and waits, naming it; with the links gone, the
        bundle is archived; nothing ever reaches where they led."""
        clock = [0.0]
        p.finish.clock = lambda: clock[0]
        delay = p.finish.attempt(row_id)
        row = p.j.get(row_id)
        assert delay is not None and row.state != "sent"
        assert "symbolic link" in (row.last_error or "")
        assert list(elsewhere.iterdir()) == []
        for link in links:
            link.unlink()
        links[0].mkdir(exist_ok=True)
        clock[0] += delay
        assert p.finish.attempt(row_id) is None
        assert p.j.get(row_id).state == "sent"
        assert list(elsewhere.iterdir()) == []
        return True


class TestMarker:
    def test_a_bundle_waiting_for_its_marker_says_so_until_it_comes(self, tmp_path: Path) -> None:
        """completion = "marker": a quiet bundle without NAME.ready is settling with the
        marker file named as what it waits for (status and the page show it, and the fix);
        once the marker is there it is claimed and the wait is no longer shown."""
        p, s = make(tmp_path, outbox={"completion": "marker"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        [cand] = list_outbox(s.outbox).candidates.values()
        assert step(p, cand, 1000.0).claimed is None
        row = p.live["INV-1.xml"]
        assert row.state == "settling" and row.last_error is not None
        assert "INV-1.ready" in row.last_error and "create that empty file" in row.last_error
        assert p.j.get(row.id).last_error == row.last_error  # what status reads
        write(s.outbox.path / "INV-1.ready", b"")
        assert step(p, cand, 1001.0).claimed == row.id
        assert p.j.get(row.id).last_error is None

    def test_a_marker_the_snapshot_saw_is_not_waited_for_when_a_second_look_fails(
            self, tmp_path: Path) -> None:
        """completion = "marker": the rescan's listing saw INV-1.ready, but a look at it
        by its path just after fails (the share's EIO). The marker is as the look that
        settles the bundle saw it: the bundle is read, to be claimed. Taken for "no
        marker", it waited "for INV-1.ready" — and as its snapshots stayed the same (the
        marker in them), no rescan stepped it again until something else changed."""
        p, s = make(tmp_path, outbox={"completion": "marker"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        write(s.outbox.path / "INV-1.ready", b"")
        [cand] = list_outbox(s.outbox).candidates.values()
        snap = snapshot(cand, s.outbox)
        with pytest.MonkeyPatch.context() as m:
            looks_fail(m, s.outbox.path / "INV-1.ready", calls=("lstat", "stat"))
            nxt = p.step(cand, 1000.0, snap)
            assert nxt.read == snap
        p.took_read(cand.invoice.name, snap, evaluate(cand, p.s))
        assert p.step(cand, 1000.0, snap).claimed is not None

    def test_under_a_marker_a_bundle_that_looks_cut_short_is_quarantined_without_a_grace(
            self, tmp_path: Path) -> None:
        """completion = "marker": the marker says the copy is done, so an empty attachment
        is the bundle's error, not a copy still at work: it goes to quarantine in the
        turn it settled, without the grace a bundle that looks cut short gets otherwise."""
        p, s = make(tmp_path, outbox={"completion": "marker"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
        write(s.outbox.path / "INV-1.ready", b"")
        assert run_once(p) == []
        assert len(folders(s.quarantine_dir)) == 1

    def test_a_marker_does_not_take_files_that_have_not_settled(self, tmp_path: Path) -> None:
        """docs/folder-convention.md, section 4: under "marker" a bundle is ready when its
        marker exists *and* its files have settled: a marker written while a copy is still
        at work in the sidecar (b.pdf.part), or just after a change, does not send it
        early."""
        p, s = make(tmp_path, outbox={"completion": "marker", "settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        part = write(s.outbox.path / "INV-1" / "b.pdf.part", pdf_bytes(2))
        write(s.outbox.path / "INV-1.ready", b"")
        [cand] = list_outbox(s.outbox).candidates.values()
        assert step(p, cand, 1000.0).claimed is None
        assert step(p, cand, 1100.0).claimed is None  # long after: the copy is at work
        part.rename(part.with_name("b.pdf"))  # the copy ends: a change
        assert step(p, cand, 1101.0).claimed is None
        assert step(p, cand, 1104.0).claimed is None  # not settled yet
        assert step(p, cand, 1106.5).claimed is not None


def _age(root: Path, seconds: float) -> None:
    """Give every file under root a modification time `seconds` before its own (as files
    written elsewhere and then moved into the outbox keep theirs). Counted from the file
    system's time, which settle.py compares it with, not from this process's clock: the
    two differ under a host clock set by hand (faketime), and then a file aged from the
    process's clock could lie in the file system's future."""
    import os
    for f in [root, *root.rglob("*")]:
        if f.is_file():
            then = f.stat().st_mtime - seconds
            os.utime(f, (then, then))


@contextlib.contextmanager
def sidecar_gone_when_opened(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """INV-1's sidecar listed as a folder and gone when the snapshot opens it (a clerk's
    rename under way, a share's stale entry): Snapshot.moved."""
    real_open = os.open

    def gone_when_opened(path: Any, *a: Any, **kw: Any) -> int:
        if os.path.basename(os.fsdecode(path)) == "INV-1":
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        return real_open(path, *a, **kw)
    with monkeypatch.context() as m:
        m.setattr(snapshot_module.os, "open", gone_when_opened)
        yield


class TestReadingEarly:
    def test_a_bundle_is_read_when_it_appears_and_claimed_once_settled(
            self, tmp_path: Path) -> None:
        """The first version seen (sidecar first, invoice file renamed in last) is read
        at once; at the end of the quiet period it is claimed without a second read."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        first = p.step(cand, 100.0)
        assert first.read is not None and first.at == 105.0 and first.claimed is None
        assert p.took_read("INV-1.xml", first.read, evaluate(cand, s), 101.0) is False
        assert p.step(cand, 102.0).read is None  # read once; still settling
        done = p.step(cand, 105.0)
        assert done.read is None and done.claimed is not None

    def test_a_bundle_still_being_written_is_read_again_only_once_settled(
            self, tmp_path: Path) -> None:
        """A file written after the first look (a copy at work) makes a new version: the
        early read is thrown away and the new version is read once it has settled, not
        on every change, and claimed as that."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        first = p.step(cand, 100.0)
        assert first.read is not None
        p.took_read("INV-1.xml", first.read, evaluate(cand, s), 101.0)
        write(s.outbox.path / "INV-1" / "b.pdf", pdf_bytes())
        changed = p.step(cand, 102.0)
        assert changed.read is None and changed.at == 107.0
        again = p.step(cand, 107.0)
        assert again.read is not None and again.read != first.read
        p.took_read("INV-1.xml", again.read, evaluate(cand, s), 107.0)
        claimed = p.step(cand, 107.0).claimed
        assert claimed is not None
        assert sorted(a.original_name for a in p.finish._validated[claimed].attachments) == \
            ["a.pdf", "b.pdf"]

    def test_a_read_that_found_the_sidecar_renamed_away_is_not_taken_once_it_is_back(
            self, tmp_path: Path) -> None:
        """The sidecar renamed away while its first version was read, and back before the
        next look (between two polls on a share): the read found no attachments, and its
        files are as they were. The read is not taken for the version that settles: under
        unattached = "hold" the bundle would wait for attachments it has for good; it is
        read again and sent with them."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5}, policy={"unattached": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        side = s.outbox.path / "INV-1"
        first = p.step(cand, 100.0)
        assert first.read is not None
        ctime = os.lstat(side).st_ctime_ns
        side.rename(s.outbox.path / "elsewhere")
        without = evaluate(cand, s)
        assert not isinstance(without, BaseException) and without.unattached_ids == ("INV-1",)
        (s.outbox.path / "elsewhere").rename(side)

        def moved_on() -> bool:  # or else the kernel's clock for change times had not
            if os.lstat(side).st_ctime_ns != ctime:
                return True
            side.rename(s.outbox.path / "elsewhere")
            (s.outbox.path / "elsewhere").rename(side)
            return False
        wait_for(moved_on, timeout=5, interval=0.001, what="a change time of its own")
        p.took_read("INV-1.xml", first.read, without, 100.5)
        again = p.step(cand, 105.0)
        assert again.claimed is None and "INV-1.xml" not in {
            r.invoice_file for r in p.j.rows(("waiting",))}
        assert step(p, cand, 110.0).claimed is not None
        [row] = p.j.rows(("delivering",))
        assert [a.original_name for a in p.finish._validated[row.id].attachments] == ["a.pdf"]

    def test_a_look_that_saw_the_sidecar_go_is_not_read(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The first look at a bundle found its sidecar gone as it opened it (a clerk's
        rename, a share's stale entry): a look never settled on, so it is not read early
        either (before: it was, and a read that found the folder gone too logged an error,
        "cannot be read (No such file or directory) — check the file's permissions"). The
        next look, the folder found as it is, is read early as a first look is (the
        bundle's first version seen whole), and the bundle claimed a quiet period later."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        with sidecar_gone_when_opened(monkeypatch):
            looked = p.step(cand, 100.0)
        assert p.tracker.last("INV-1.xml").moved == ("INV-1",)  # type: ignore[union-attr]
        assert looked.read is None and looked.at == 105.0
        again = p.step(cand, 100.5)
        assert again.read is not None and again.claimed is None
        p.took_read("INV-1.xml", again.read, evaluate(cand, p.s))
        assert step(p, cand, 100.5).claimed is None
        assert step(p, cand, 105.5).claimed is not None

    def test_after_a_look_that_saw_the_sidecar_go_a_bundle_read_already_is_not_read_again(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Only a bundle not read yet has its first version seen whole read early after a
        look that saw its sidecar go. One whose first version was read is not read early
        again for a later version written just now (a clerk renaming the sidecar while a
        copy goes on): else each rename would buy one more read thrown away, past the two
        a copy at work may cost (_read_early). It is read once it has settled."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        looked = p.step(cand, 100.0)
        assert looked.read is not None  # the first version seen, read early
        p.took_read("INV-1.xml", looked.read, evaluate(cand, p.s), 100.0)
        with sidecar_gone_when_opened(monkeypatch):
            assert p.step(cand, 100.5).read is None
        assert p.tracker.last("INV-1.xml").moved == ("INV-1",)  # type: ignore[union-attr]
        (s.outbox.path / "INV-1" / "b.pdf").write_bytes(pdf_bytes())  # written just now
        later = p.step(cand, 101.0)
        assert later.read is None and later.at == 106.0
        assert step(p, cand, 106.0).claimed is not None

    def test_a_later_version_written_long_ago_is_read_at_once(self, tmp_path: Path) -> None:
        """A version whose files were all last written a whole quiet period ago (moved in
        from elsewhere) is read while it settles, even when it is not the first seen."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        first = p.step(cand, 100.0)
        p.took_read("INV-1.xml", first.read, evaluate(cand, s), 101.0)
        write(s.outbox.path / "INV-1" / "b.pdf", pdf_bytes())
        _age(s.outbox.path, 60)
        later = p.step(cand, 102.0)
        assert later.read is not None and later.read != first.read and later.at == 107.0

    def test_a_copy_that_keeps_file_times_is_read_early_once_more_not_at_every_file(
            self, tmp_path: Path) -> None:
        """`cp -p` and file managers keep the files' times, so every version such a copy
        passes through looks written long ago. Only one such later version is read
        while the quiet period runs; the rest wait for the version that settles, which
        is read once and claimed."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        _age(s.outbox.path, 3600)
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        first = p.step(cand, 100.0)
        assert first.read is not None
        p.took_read("INV-1.xml", first.read, evaluate(cand, s), 100.5)
        reads = []
        for i, now in enumerate((101.0, 102.0, 103.0, 104.0)):
            write(s.outbox.path / "INV-1" / f"n{i}.pdf", pdf_bytes())
            _age(s.outbox.path, 3600)
            step = p.step(cand, now)
            assert step.at == now + 5 and step.claimed is None
            if step.read is not None:
                reads.append(now)
                p.took_read("INV-1.xml", step.read, evaluate(cand, s), now + 0.1)
        assert reads == [101.0]
        settled = p.step(cand, 109.0)
        assert settled.read is not None and settled.read == p.tracker.last("INV-1.xml")
        p.took_read("INV-1.xml", settled.read, evaluate(cand, s), 109.0)
        claimed = p.step(cand, 109.0).claimed
        assert claimed is not None
        assert len(p.finish._validated[claimed].attachments) == 5

    def test_each_quiet_period_may_read_one_later_version_early(self, tmp_path: Path) -> None:
        """The one early read of a later version is one per quiet period: a bundle held
        for its errors that is then mended by files moved in (old times) is read early
        again, and claimed as soon as that version has settled."""
        p, s = make(tmp_path, outbox={"settle_seconds": 5}, policy={"invalid": "hold"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        cand = list_outbox(s.outbox).candidates["INV-1.xml"]
        first = p.step(cand, 100.0)
        p.took_read("INV-1.xml", first.read, evaluate(cand, s), 100.5)
        write(s.outbox.path / "INV-1" / "broken.pdf", b"not a PDF")
        _age(s.outbox.path, 3600)
        spent = p.step(cand, 101.0)
        assert spent.read is not None
        p.took_read("INV-1.xml", spent.read, evaluate(cand, s), 101.5)
        assert p.step(cand, 106.0).claimed is None
        assert [r.state for r in p.j.rows(("held",))] == ["held"]
        (s.outbox.path / "INV-1" / "broken.pdf").unlink()
        write(s.outbox.path / "INV-1" / "b.pdf", pdf_bytes())
        _age(s.outbox.path, 3600)
        mended = p.step(cand, 107.0)
        assert mended.read is not None
        p.took_read("INV-1.xml", mended.read, evaluate(cand, s), 107.5)
        assert p.step(cand, 112.0).claimed is not None


@pytest.mark.parametrize("error", [errno.EACCES, errno.EIO, errno.ESTALE],
                         ids=["EACCES", "EIO", "ESTALE"])
def test_a_sidecar_the_look_cannot_list_is_never_judged_and_settles_anew_once_it_can(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, error: int) -> None:
    """INV-1's sidecar holds a.pdf, but the loop's look cannot list it (a share's EIO or
    ESTALE, a folder outboxd's user may not open), while a read's own listing could.
    Under [policy] unattached = "send", for many quiet periods, the bundle is neither
    read nor sent: its row says settling, naming the folder, the error and what to do.
    Once the folder can be listed, what it holds settles a whole quiet period from then
    before it is sent, with a.pdf (before: the look's empty-seeming folder settled and
    the bundle went out with content outboxd never saw settle)."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())
    with monkeypatch.context() as m:
        refuse_listing(m, {"INV-1"}, error, module=snapshot_module)
        svc = make_service(unattached="send")
        for _ in range(int(3 * RESCAN / SETTLE)):
            svc.turn()
            clock.t += SETTLE
        row = svc.pipeline.live["INV-1.xml"]
        assert row.state == "settling", "not judged on a folder it could not list"
        assert row.last_error is not None and "the folder INV-1 cannot be listed" in \
            row.last_error and os.strerror(error) in row.last_error
        assert "check that the share is reachable" in row.last_error
        # Looked at again without an event, at the rescan interval.
        due = svc.timers.due_at(("bundle", "INV-1.xml"))
        assert due is not None and due <= clock.t + RESCAN

    mended, since = clock.t, None
    while clock.t < mended + 2 * RESCAN:
        svc.turn()
        if "INV-1.xml" not in svc.pipeline.live:
            break  # claimed in this turn, at clock.t
        since = svc.pipeline.tracker.still_since("INV-1.xml")
        if since is not None and since >= mended:  # listed: the error is no longer said
            assert svc.pipeline.live["INV-1.xml"].last_error is None
        clock.t += SETTLE / 5
    assert "INV-1.xml" not in svc.pipeline.live, "claimed once listed and settled"
    assert since is not None and since >= mended and clock.t >= since + SETTLE
    [row] = svc.journal.rows(("claiming", "delivering", "delivered", "sent"))
    sent = wait_for(lambda: (d := tmp_path / "target" / row.bundle_id).is_dir() and d,
                    what="the bundle delivered to the target")
    assert [str(p.relative_to(sent)) for p in sent.rglob("*.pdf")] == ["attachments/INV-1/a.pdf"]


@pytest.mark.parametrize("folder", ["\udce9", "a\x1b\u202e"], ids=["not-utf8", "controls"])
def test_a_folder_the_look_cannot_list_is_named_as_shown_in_the_row(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
    """The folder that cannot be listed is named in the row's error as every name is in
    the journal (names.printable): a byte that is not UTF-8 as \\udcNN, a control or
    bidirectional character as its code. Before, the raw name went into the row: a name
    that is not UTF-8 cannot be written to SQLite, so the row was never made and the loop
    logged an unexpected error with a traceback every rescan, the bundle on no list
    (found by bench.fuzznames, seed 27)."""
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    write(outbox / "INV-1" / folder / "a.pdf", pdf_bytes())
    with monkeypatch.context() as m, capture_logs() as logged:
        refuse_listing(m, {folder}, errno.EACCES, module=snapshot_module)
        svc = make_service(unattached="send")
        for _ in range(int(2 * RESCAN / SETTLE)):
            svc.turn()
            clock.t += SETTLE
    row = svc.pipeline.live["INV-1.xml"]
    assert row.state == "settling" and row.last_error is not None
    assert f"the folder INV-1/{printable(folder)} cannot be listed" in row.last_error
    assert [e for e in logged if e["event"].startswith("unexpected")] == []
    [said] = [e for e in logged if e["event"] == "cannot list a folder of the bundle; will "
              "try again"]
    assert said["folder"] == f"INV-1/{printable(folder)}"


def test_a_row_whose_file_went_is_not_said_left_alone_for_a_refused_name_shown_alike(
        make_service: Any, clock: FakeClock, tmp_path: Path) -> None:
    """INV-1 + U+202E + .xml waited when outboxd stopped, and was taken out meanwhile;
    a symbolic link named INV-1\\u202e.xml (the code typed: shown alike) lies in the
    outbox, refused. The row's end says its file is not in the outbox: before, the
    refused names were looked up by the row's name as shown, and the row was said to be
    "in the outbox, but left alone" for the link's refusal."""
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    (outbox / "INV-1\\u202e.xml").symlink_to(tmp_path / "elsewhere.xml")
    (tmp_path / "state").mkdir()
    before = Journal(tmp_path / "state" / "journal.sqlite3")
    row_id = before.create("INV-1\u202e.xml", "waiting", "as the run before left it")
    before.close()
    svc = make_service()
    settle_all(svc, clock)
    assert svc.journal.get(row_id).state == "gone"
    assert svc.journal.last_detail(row_id) == "not in the outbox at start"
    assert "INV-1\\u202e.xml" in svc.left_alone.refused


@pytest.mark.parametrize("state", ["waiting", "held"])
def test_a_bundle_waiting_under_a_name_refused_since_the_upgrade_is_said_to_be_a_bad_name(
        make_service: Any, clock: FakeClock, tmp_path: Path, state: str) -> None:
    """An older version took names with a C1 control character (U+0085): INV-\\x85.xml
    waited (or was held) under it when the upgrade stopped outboxd. This version refuses
    such a name (bad-name). Its first start closed the row as "not in the outbox at start"
    though the file lies there, and the status page lost the bundle from its list.
    The row's end now says the file is there but left alone, and why; the file is
    listed on the page as a new drop of such a file is (the journal row written with
    the journal API, as the version before wrote it)."""
    outbox = tmp_path / "outbox"
    name = "INV-\x85.xml"
    write(outbox / name, ubl_invoice("INV-85"))
    (tmp_path / "state").mkdir()
    before = Journal(tmp_path / "state" / "journal.sqlite3")
    row_id = before.create(name, state, "as the version before left it")
    before.close()
    svc = make_service()
    settle_all(svc, clock)
    row = svc.journal.get(row_id)
    assert row.state == "gone"
    detail = svc.journal.last_detail(row_id) or ""
    assert "not in the outbox" not in detail
    assert detail == ("in the outbox, but left alone: the name holds a control character "
                      "(\\x85) — rename the file")
    assert svc.left_alone.refused["INV-\x85.xml"] == (
        "the name holds a control character (\\x85) — rename the file")
    assert "INV-\\x85.xml" in (outbox / "outboxd-status.html").read_text(encoding="utf-8")


def _newest_change(outbox: Path) -> float:
    """The newest modification or change time in the outbox (wall-clock seconds): the
    time the files a test just wrote give, from which it sets the pipeline's wall clock."""
    return max(max(st.st_mtime_ns, st.st_ctime_ns) for st in
               (os.lstat(x) for x in [outbox, *outbox.rglob("*")])) / 1e9


@pytest.mark.parametrize("sweep, said", [
    ("drop_unfinished_errors", "cannot clear leftover temp files of errors files"),
    ("drop_orphaned_errors", "cannot remove an errors file of a bundle no longer in"),
])
def test_a_start_that_cannot_clear_errors_files_left_behind_says_so_and_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sweep: str, said: str) -> None:
    """The start's sweep of what earlier runs left of NAME.errors.txt (a killed write's
    temp, the errors file of a bundle gone while outboxd was stopped) fails (EROFS:
    the outbox mounted read-only, injected): a warning says what was not cleared, that
    the next start tries again and what to fix; the start goes on, the held bundle
    taken over as it was, and a bundle dropped then is sent."""
    from daemon.loop import takeover

    p, s = make(tmp_path, policy={"invalid": "hold"})
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b""})
    assert run_once(p) == []
    [held] = p.j.unfinished()
    p.j.close()

    def read_only(*_: object) -> None:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(s.outbox.path))

    monkeypatch.setattr(takeover, sweep, read_only)
    again = Pipeline(s, Journal(s.journal_path), p.finish.d)
    with capture_logs() as logs:
        again.start(set(list_outbox(s.outbox).candidates))
    [warned] = [e for e in logs if e["event"].startswith(said)]
    assert warned["log_level"] == "warning" and "Read-only file system" in warned["error"]
    assert "Errno" not in warned["error"]  # in words, as archiving/ says an OSError
    assert "next start" in warned["event"] and "outboxd's user" in warned["fix"]
    assert again.live["INV-1.xml"].id == held.id
    drop_bundle(s.outbox.path, "INV-2", {"a.pdf": pdf_bytes()})
    assert len(run_once(again, 2000.0)) == 1
    again.j.close()


def test_a_read_of_an_older_version_that_ends_after_a_newer_one_began_is_thrown_away(
        tmp_path: Path) -> None:
    """A bundle changes while its read runs, and the new version, settled, is read too:
    the first read's result, coming back after, is not used — no claim on it, and no
    third read of the version already being read — and the bundle is claimed as the
    second read found it (its corrected attachment is what is sent)."""
    p, s = make(tmp_path)
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes(text_marker="first")})
    [cand] = list_outbox(s.outbox).candidates.values()
    first = p.step(cand, 1000.0).read
    assert first is not None
    old = evaluate(cand, s)  # the first read, still running on its worker
    write(s.outbox.path / "INV-1" / "a.pdf", pdf_bytes(text_marker="corrected"))
    second = p.step(cand, 1001.0).read
    assert second is not None and second != first
    assert p.took_read(cand.invoice.name, first, old) is True  # stepped: it is stale
    nxt = p.step(cand, 1001.0)
    assert nxt.read is None and nxt.claimed is None
    p.took_read(cand.invoice.name, second, evaluate(cand, s))
    row = p.step(cand, 1001.0).claimed
    assert row is not None and p.finish.attempt(row) is None
    [sent] = folders(s.sent_dir)
    assert b"corrected" in (sent / "INV-1" / "a.pdf").read_bytes()


class TestCoarseTimes:
    """A share whose times go by 2 s (a FAT disk in a NAS): a file saved again at its size
    within them looks unchanged to every look (tests/sharetimes.py shows the stats so)."""

    def _held_then_mended_unseen(self, tmp_path: Path) -> tuple[Pipeline, Any, Path] | None:
        """A batch refused for an id said twice, saved again mended (same size) within
        the 2 s of its first look; None if the save fell into the next 2 s (then seen)."""
        p, s = make(tmp_path, outbox={"settle_seconds": 1},
                    policy={"invalid": "hold", "unattached": "send"})
        invoice = write(s.outbox.path / "B-1.xml", _batch("INV-1", "INV-1"))
        cand = list_outbox(s.outbox).candidates["B-1.xml"]
        first = p.step(cand, 100.0)
        if first.read is not None:  # read early, as before the granule counted
            p.took_read("B-1.xml", first.read, evaluate(cand, s), 100.0)
        before = p.tracker.last("B-1.xml")
        invoice.write_bytes(_batch("INV-1", "INV-2"))  # mended, in place, same size
        if snapshot_module.snapshot(cand, s.outbox) != before:
            return None
        return p, cand, invoice

    def test_a_version_saved_again_unseen_is_judged_by_its_last_bytes(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The first version seen is not read early on such times: that read could be of
        bytes saved over since, unseen, and under `invalid = "hold"` the bundle stayed
        held on them (its errors file naming an id said twice that no longer is) until
        the clerk saved it once more. Read once settled, after the granule, it is the
        mended file that is judged, and claimed."""
        no_change_times(monkeypatch, FatTimes)
        for attempt in range(3):
            made = self._held_then_mended_unseen(tmp_path / f"try-{attempt}")
            if made is not None:
                break
        assert made is not None
        p, cand, invoice = made
        assert step(p, cand, 101.0).claimed is None  # settle_seconds, not yet the granule
        assert step(p, cand, 103.0).claimed is not None
        assert not invoice.with_name("B-1.errors.txt").exists()
