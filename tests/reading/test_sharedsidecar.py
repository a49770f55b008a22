"""Two invoice files with one sidecar (`sidecar-shared`, docs/folder-convention.md,
section 3): the rule, and the decision — held, never quarantined — driven step by step
with a real journal, real files and the directory transport."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import folders, make, quiet_logs, run_once, step  # noqa: E402, F401 - autouse
from helpers import pdf_bytes, ubl_invoice, write  # noqa: E402

from daemon.configuration.config import OutboxConfig  # noqa: E402
from daemon.reading.sharedsidecar import shared_sidecar_findings, sharers_listed  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402


def print_and_invoice(outbox: Path, sidecar: str = "INV-1") -> None:
    """The ERP's export: the folder with a time sheet, the PDF print, the UBL file last."""
    write(outbox / sidecar / "timesheet.pdf", pdf_bytes(2))
    write(outbox / "INV-1.pdf", pdf_bytes(3))
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))


class TestRule:
    def test_the_error_names_both_files_the_folder_and_the_fix(self, tmp_path: Path) -> None:
        """Each file's finding is the same (they share NAME.errors.txt): named by the
        folder, it names both files and says to move the print into the folder or
        rename one."""
        print_and_invoice(tmp_path)
        cands = list_outbox(OutboxConfig(path=tmp_path)).candidates
        [xml] = shared_sidecar_findings(cands["INV-1.xml"])
        [pdf] = shared_sidecar_findings(cands["INV-1.pdf"])
        assert xml == pdf
        assert (xml.code, xml.file, xml.severity) == ("sidecar-shared", "INV-1", "error")
        assert xml.message.startswith(
            "INV-1.pdf and INV-1.xml both have the attachments folder INV-1/; only one")
        assert "if INV-1.pdf is the print of INV-1.xml, move INV-1.pdf into INV-1/ as an " \
            "attachment (or out of the outbox); otherwise rename one of the two" in xml.message

    def test_three_files_of_one_folder_are_said_as_all_not_both(self, tmp_path: Path) -> None:
        """Three invoice files with one folder: "all have", and "rename one of them"."""
        print_and_invoice(tmp_path)
        write(tmp_path / "INV-1.xml2", ubl_invoice("INV-1"))
        outbox = OutboxConfig(path=tmp_path, invoice_patterns=["*.xml", "*.pdf", "*.xml2"])
        [finding] = shared_sidecar_findings(list_outbox(outbox).candidates["INV-1.xml"])
        assert finding.message.startswith(
            "INV-1.pdf, INV-1.xml and INV-1.xml2 all have the attachments folder INV-1/")
        assert "rename one of them" in finding.message

    def test_without_the_folder_there_is_no_clash(self, tmp_path: Path) -> None:
        """INV-1.xml and INV-1.pdf without INV-1/: two invoices without attachments."""
        write(tmp_path / "INV-1.pdf", pdf_bytes())
        write(tmp_path / "INV-1.xml", ubl_invoice("INV-1"))
        cands = list_outbox(OutboxConfig(path=tmp_path)).candidates
        assert shared_sidecar_findings(cands["INV-1.xml"]) == []

    def test_the_outbox_as_it_is_now_decides(self, tmp_path: Path) -> None:
        """A sharer the listing found but that has gone since (moved into the folder)
        shares nothing: the candidate's sharers are looked up, not trusted."""
        print_and_invoice(tmp_path)
        cand = list_outbox(OutboxConfig(path=tmp_path)).candidates["INV-1.xml"]
        os.rename(tmp_path / "INV-1.pdf", tmp_path / "INV-1" / "INV-1.pdf")
        assert cand.sharers == ("INV-1.pdf",) and shared_sidecar_findings(cand) == []

    def test_the_commands_listing_finds_the_same_sharers(self, tmp_path: Path) -> None:
        """sharers_listed (attach, retry: no index) takes only invoice files of the stem:
        not INV-10.xml, an ignored file, a file outside the patterns, nor a folder."""
        print_and_invoice(tmp_path)
        for name in ("INV-10.xml", "INV-1.txt", "INV-1.tmp"):
            write(tmp_path / name, b"x")
        (tmp_path / "INV-1.xml.d").mkdir()
        cfg = OutboxConfig(path=tmp_path)
        assert sharers_listed(cfg, None, "INV-1.xml") == ("INV-1.pdf",)
        assert sharers_listed(cfg, None, "INV-1.pdf") == ("INV-1.xml",)
        assert sharers_listed(cfg, None, "INV-10.xml") == ()


class TestDecision:
    @pytest.mark.parametrize("invalid", ["quarantine", "hold"])
    def test_both_files_are_held_not_quarantined_under_either_policy(
            self, tmp_path: Path, invalid: str) -> None:
        """Under [policy] invalid = "quarantine" as under "hold": neither file is claimed,
        both rows are held with `sidecar-shared`, nothing moves to quarantine/ and
        INV-1.errors.txt says why. Once the print is moved into the folder, INV-1.xml
        goes out with both attachments."""
        p, s = make(tmp_path, policy={"invalid": invalid, "unattached": "send"})
        outbox = s.outbox.path
        print_and_invoice(outbox)
        assert run_once(p) == []
        rows = {r.invoice_file: r for r in p.j.rows(("held",))}
        assert set(rows) == {"INV-1.xml", "INV-1.pdf"}
        assert all([r["code"] for r in row.reasons] == ["sidecar-shared"]
                   for row in rows.values())
        assert folders(s.quarantine_dir) == [] and folders(s.sent_dir) == []
        assert sorted(os.listdir(outbox)) == [".outboxd", "INV-1", "INV-1.errors.txt",
                                              "INV-1.pdf", "INV-1.xml"]
        assert "[sidecar-shared]" not in (outbox / "INV-1.errors.txt").read_text()
        assert "INV-1.pdf and INV-1.xml both have the attachments folder INV-1/" in (
            outbox / "INV-1.errors.txt").read_text()

        pdf = list_outbox(s.outbox).candidates["INV-1.pdf"]
        os.rename(outbox / "INV-1.pdf", outbox / "INV-1" / "INV-1.pdf")
        [row] = run_once(p, now=2000.0)
        assert p.j.get(row).state == "sent"
        [sent] = folders(s.sent_dir)
        manifest = json.loads((sent / "receipt.json").read_text())["manifest"]
        [invoice] = manifest["invoices"]
        assert sorted(a["original_name"] for a in invoice["attachments"]) == [
            "INV-1.pdf", "timesheet.pdf"]
        # INV-1.errors.txt explains INV-1.pdf until the step its move brings finds it gone.
        assert step(p, pdf, 2000.0).gone
        assert not (outbox / "INV-1.errors.txt").exists()

    def test_another_error_beside_the_clash_is_held_too(self, tmp_path: Path) -> None:
        """An encrypted-looking or broken attachment in the shared folder under
        invalid = "quarantine": still held (quarantining would take the folder from the
        other file), with both errors listed."""
        p, s = make(tmp_path, policy={"invalid": "quarantine"})
        outbox = s.outbox.path
        print_and_invoice(outbox)
        write(outbox / "INV-1" / "broken.pdf", b"%PDF-1.4 not really")
        assert run_once(p) == []
        [row] = [r for r in p.j.rows(("held",)) if r.invoice_file == "INV-1.xml"]
        codes = {r["code"] for r in row.reasons}
        assert "sidecar-shared" in codes and len(codes) > 1
        assert folders(s.quarantine_dir) == []
