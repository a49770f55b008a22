"""A claimed bundle's files that have other names too (hard links) are made its own
(daemon/claiming/owncopy.py): what is checked, sent and archived is a copy, and the other
name keeps its file. Driven with a real journal, real files and the directory transport;
kills are raised where they land and nothing of the daemon's clean-up runs (as SIGKILL)."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from claimed import folders, make, quiet_logs, run_once, step  # noqa: E402, F401 - quiet_logs: autouse
from helpers import drop_bundle, pdf_bytes  # noqa: E402

from daemon.claiming import claims, owncopy, recovery  # noqa: E402
from daemon.delivery.directory import DirectoryDeliverer  # noqa: E402
from daemon.delivery.finish import Finisher  # noqa: E402
from daemon.fs import fscopy  # noqa: E402
from daemon.watching.scan import list_outbox  # noqa: E402


class _Killed(BaseException):
    """SIGKILL: nothing on the way catches it."""


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _write_in_place(path: Path, data: bytes) -> None:
    """A save into the file itself (an SMB overwrite, an editor that keeps the file): the
    same inode, every name of it changed."""
    with open(path, "r+b") as fh:
        fh.truncate(0)
        fh.write(data)


PDF = pdf_bytes(text_marker="the version validated")


def _linked_bundle(tmp_path: Path, **sections: dict[str, Any]) -> tuple[Any, Any, Path, bytes]:
    """INV-1 (a.pdf) in the outbox, its invoice file and a.pdf each with a second name
    in `erp/`, outside the outbox (an ERP that keeps its own name for each file).
    `sections`: of the configuration, as make() takes them."""
    p, s = make(tmp_path, **sections)
    pdf = PDF
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf})
    erp = tmp_path / "erp"
    erp.mkdir()
    os.link(s.outbox.path / "INV-1.xml", erp / "INV-1.xml")
    os.link(s.outbox.path / "INV-1" / "a.pdf", erp / "a.pdf")
    return p, s, erp, pdf


def _leftovers(root: Path) -> list[str]:
    """The temps of a copy under way anywhere below `root`."""
    return [str(p) for p in root.rglob(".*.tmp-*")]


class TestOwnCopies:
    def test_a_sent_bundles_files_keep_what_was_sent_when_their_other_names_are_saved_into(
            self, tmp_path: Path) -> None:
        """The invoice file and an attachment each have a second name outside the outbox.
        Once sent, a save in place into those names changes nothing in sent/: each file
        there still has the size and SHA-256 receipt.json's manifest gives, and is a file
        of its own (one name). The other names keep their files, with what was saved into
        them. The copies are made as a move to another disk makes them: 0640 under the
        umask (group write where the file had it), the file's modification time."""
        p, s, erp, pdf = _linked_bundle(tmp_path)
        os.chmod(erp / "a.pdf", 0o664)
        mtime = (erp / "a.pdf").stat().st_mtime_ns
        with capture_logs() as logged:
            assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        sent_xml, sent_pdf = entry / "INV-1.xml", entry / "INV-1" / "a.pdf"
        manifest = json.loads((entry / "receipt.json").read_text())["manifest"]
        [att] = manifest["invoices"][0]["attachments"]

        _write_in_place(erp / "INV-1.xml", b"<Invoice>edited in the ERP</Invoice>")
        _write_in_place(erp / "a.pdf", b"%PDF-1.4 edited in the ERP")

        assert _sha(sent_xml) == manifest["invoice_file"]["sha256"]
        assert (_sha(sent_pdf), sent_pdf.stat().st_size) == (att["sha256"], att["size"])
        assert sent_pdf.read_bytes() == pdf
        assert sent_xml.stat().st_nlink == sent_pdf.stat().st_nlink == 1
        assert (erp / "INV-1.xml").read_bytes() == b"<Invoice>edited in the ERP</Invoice>"
        assert (erp / "a.pdf").read_bytes() == b"%PDF-1.4 edited in the ERP"
        assert stat.S_IMODE(sent_pdf.stat().st_mode) == (0o640 & ~_umask()) | 0o020
        assert sent_pdf.stat().st_mtime_ns == mtime
        [said] = [e for e in logged if e["event"].startswith("files with other names")]
        assert said["files"] == ["INV-1.xml", "INV-1/a.pdf"]
        assert _leftovers(tmp_path) == []

    def test_a_second_name_inside_the_outbox_stays_a_file_of_its_own_bundle(
            self, tmp_path: Path) -> None:
        """INV-2/a.pdf is a second name of INV-1/a.pdf. Claiming INV-1 copies its a.pdf
        and leaves INV-2's name alone: as before, INV-2 is a bundle like any other, read
        and sent with that file. Each entry in sent/ then holds a file of its own, with
        the bytes sent."""
        p, s = make(tmp_path)
        pdf = pdf_bytes()
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf})
        drop_bundle(s.outbox.path, "INV-2", {"a.pdf": pdf})
        other = s.outbox.path / "INV-2" / "a.pdf"
        other.unlink()
        os.link(s.outbox.path / "INV-1" / "a.pdf", other)
        ino = other.stat().st_ino
        cands = list_outbox(s.outbox).candidates
        row = step(p, cands["INV-1.xml"], 1000.0).claimed
        assert row is not None and p.finish.attempt(row) is None
        # INV-1 sent; INV-2's name is the same file as before, its only name now.
        assert (other.stat().st_ino, other.stat().st_nlink, other.read_bytes()) == (ino, 1, pdf)
        while run_once(p):  # INV-2: its file's link count changed, so it is read again
            pass
        sent = {e.name.split("--")[0]: e / e.name.split("--")[0] / "a.pdf"
                for e in folders(s.sent_dir)}
        assert sorted(sent) == ["INV-1", "INV-2"]
        assert [f.read_bytes() == pdf for f in sent.values()] == [True, True]
        assert [f.stat().st_nlink for f in sent.values()] == [1, 1]
        assert not (s.outbox.path / "INV-2").exists()

    def test_a_save_into_the_other_name_during_the_copy_sends_nothing_mixed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The ERP saves a.pdf through its own name while the claim copies it: the copy
        may hold half of each version, and is never put in place. The bundle goes back to
        the outbox as it was (a.pdf still a name of the ERP's file, with the new bytes) to
        settle again, nothing is sent, and no temp is left; the next claim sends the new
        version, a file of its own."""
        p, s, erp, _pdf = _linked_bundle(tmp_path)
        new = pdf_bytes(2, "saved meanwhile")
        copy_into = fscopy.copy_into

        def saved_halfway(fin: BinaryIO, fout: BinaryIO) -> None:
            fout.write(fin.read(100))
            _write_in_place(erp / "a.pdf", new)
            copy_into(fin, fout)
        monkeypatch.setattr(fscopy, "copy_into", saved_halfway)
        with capture_logs() as logged:
            assert run_once(p) == []
        monkeypatch.undo()
        assert [r.invoice_file for r in p.j.rows(("settling",))] == ["INV-1.xml"]
        back = s.outbox.path / "INV-1" / "a.pdf"
        assert back.stat().st_ino == (erp / "a.pdf").stat().st_ino
        assert back.read_bytes() == new
        assert folders(s.sent_dir) == [] and list(s.processing_dir.iterdir()) == []
        assert any("saved into" in str(e.get("changed")) for e in logged)
        assert _leftovers(tmp_path) == []

        assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1" / "a.pdf").read_bytes() == new
        assert (entry / "INV-1" / "a.pdf").stat().st_nlink == 1
        assert (erp / "a.pdf").read_bytes() == new

    @pytest.mark.parametrize("exchange", ["renameat2 exchange", "none (NFS, SMB)"])
    def test_the_erp_saving_the_whole_bundle_again_during_the_claim_sends_no_mix(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: str) -> None:
        """The invoice file is copied first; the ERP then saves INV-1.xml and a.pdf again,
        through their own names, while a.pdf is copied. The bundle goes back whole as the
        ERP's files, INV-1.xml too (a copy let go at once kept the old invoice file beside
        the new a.pdf, its tie to the ERP's name cut, and that mix was sent next), and the
        next claim sends both new versions. So too on a share with no exchange, where
        each copy takes its file's name by a rename: not one before all are copied."""
        p, s, erp, _pdf = _linked_bundle(tmp_path)
        if exchange != "renameat2 exchange":
            monkeypatch.setattr(owncopy, "rename_exchange", lambda a, b: False)
        xml = (erp / "INV-1.xml").read_bytes()
        new_xml, new_pdf = xml.replace(b"</", b"<!-- saved again --></", 1), \
            pdf_bytes(2, "saved again")
        copy_into = fscopy.copy_into

        def saved_again(fin: BinaryIO, fout: BinaryIO) -> None:
            if fin.read(4) == b"%PDF":  # a.pdf: the invoice file is a copy already
                _write_in_place(erp / "INV-1.xml", new_xml)
                _write_in_place(erp / "a.pdf", new_pdf)
            fin.seek(0)
            copy_into(fin, fout)
        monkeypatch.setattr(fscopy, "copy_into", saved_again)
        assert run_once(p) == []
        monkeypatch.undo()
        assert [r.invoice_file for r in p.j.rows(("settling",))] == ["INV-1.xml"]
        for name, there in (("INV-1.xml", s.outbox.path / "INV-1.xml"),
                            ("a.pdf", s.outbox.path / "INV-1" / "a.pdf")):
            assert there.stat().st_ino == (erp / name).stat().st_ino, name
        assert _leftovers(tmp_path) == []

        assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1.xml").read_bytes() == new_xml
        assert (entry / "INV-1" / "a.pdf").read_bytes() == new_pdf

    @pytest.mark.parametrize("exchange", [True, False])
    @pytest.mark.parametrize("save", ["same size", "same modification time",
                                      "same size and modification time"])
    def test_an_invoice_file_saved_again_while_its_attachments_are_copied_is_sent_as_saved(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, save: str,
            exchange: bool) -> None:
        """The invoice file is copied first; while a.pdf is copied, the ERP saves the
        invoice file again through its own name (a.pdf untouched): a save of the same
        size, or one that carries the old modification time over (a copy tool that keeps
        times), or both (only the change time tells). The copy of the invoice file made
        before that save is never let go (nor, on a share with no exchange, renamed over
        it): the bundle goes back whole as the ERP's files, and the next claim sends the
        invoice file as saved."""
        p, s, erp, pdf = _linked_bundle(tmp_path)
        if not exchange:
            monkeypatch.setattr(owncopy, "rename_exchange", lambda a, b: False)
        theirs = erp / "INV-1.xml"
        xml = theirs.read_bytes()
        new_xml = xml.replace(b"REF-42", b"REF-4200" if save == "same modification time"
                              else b"REF-43")
        then = theirs.stat()
        copy_into = fscopy.copy_into

        def saved_again(fin: BinaryIO, fout: BinaryIO) -> None:
            if fin.read(4) == b"%PDF":  # a.pdf: the invoice file is a copy already
                _write_in_place(theirs, new_xml)
                if save != "same size":
                    os.utime(theirs, ns=(then.st_atime_ns, then.st_mtime_ns))
            fin.seek(0)
            copy_into(fin, fout)
        monkeypatch.setattr(fscopy, "copy_into", saved_again)
        assert run_once(p) == []
        monkeypatch.undo()
        if not exchange:
            monkeypatch.setattr(owncopy, "rename_exchange", lambda a, b: False)
        assert [r.invoice_file for r in p.j.rows(("settling",))] == ["INV-1.xml"]
        back = s.outbox.path / "INV-1.xml"
        assert back.stat().st_ino == theirs.stat().st_ino and back.read_bytes() == new_xml
        assert _leftovers(tmp_path) == []

        assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1.xml").read_bytes() == new_xml
        assert (entry / "INV-1" / "a.pdf").read_bytes() == pdf

    def test_a_save_that_keeps_size_and_time_during_the_copy_sends_nothing_mixed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The ERP saves a.pdf through its own name while the claim copies it, with bytes
        of the same size, and carries the old modification time over: only the file's
        change time tells. The copy, half of each version, is never put in place: the
        bundle goes back to the outbox as the ERP's files, and the next claim sends the
        new version whole."""
        p, s, erp, _pdf = _linked_bundle(tmp_path)
        theirs = erp / "a.pdf"
        new = pdf_bytes(text_marker="the version VALIDATED")
        then = theirs.stat()
        assert len(new) == then.st_size
        copy_into = fscopy.copy_into

        def saved_halfway(fin: BinaryIO, fout: BinaryIO) -> None:
            if fin.read(4) == b"%PDF":
                fout.write(b"%PDF" + fin.read(96))
                _write_in_place(theirs, new)
                os.utime(theirs, ns=(then.st_atime_ns, then.st_mtime_ns))
                copy_into(fin, fout)
                return
            fin.seek(0)
            copy_into(fin, fout)
        monkeypatch.setattr(fscopy, "copy_into", saved_halfway)
        assert run_once(p) == []
        monkeypatch.undo()
        back = s.outbox.path / "INV-1" / "a.pdf"
        assert back.stat().st_ino == theirs.stat().st_ino and back.read_bytes() == new
        assert _leftovers(tmp_path) == []

        assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1" / "a.pdf").read_bytes() == new

    def test_a_save_in_the_instant_before_the_copy_takes_the_files_name_sends_nothing_mixed(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The ERP saves a.pdf through its own name after its copy is whole and looked
        at, in the instant before the copy takes a.pdf's name: the file taken away is not
        the one copied. It goes back to its name at once, the copy goes, and the bundle
        goes back to the outbox as the ERP's files, no temp left beside them; the next
        claim sends what was saved."""
        p, s, erp, _pdf = _linked_bundle(tmp_path)
        theirs = erp / "a.pdf"
        new = pdf_bytes(2, "saved in that instant")
        exchange = owncopy.rename_exchange
        saved: list[bool] = []

        def saved_first(a: Path, b: Path) -> bool:
            if b.name == "a.pdf" and not saved:
                saved.append(True)
                _write_in_place(theirs, new)
            return exchange(a, b)
        monkeypatch.setattr(owncopy, "rename_exchange", saved_first)
        assert run_once(p) == []
        monkeypatch.undo()
        assert saved
        back = s.outbox.path / "INV-1" / "a.pdf"
        assert back.stat().st_ino == theirs.stat().st_ino and back.read_bytes() == new
        assert (s.outbox.path / "INV-1.xml").stat().st_ino == \
            (erp / "INV-1.xml").stat().st_ino
        assert _leftovers(tmp_path) == []

        assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1" / "a.pdf").read_bytes() == new

    def test_an_invoice_file_larger_than_max_attachment_bytes_is_still_copied(
            self, tmp_path: Path) -> None:
        """[validation] max_attachment_bytes below the invoice file's size: the invoice
        file, which that limit does not concern, is still copied (the limit of a copy is
        the largest file outboxd sends, of either kind), and lies in sent/ as a file of
        its own."""
        p, s, erp, _pdf = _linked_bundle(
            tmp_path, validation={"max_attachment_bytes": len(PDF)})
        assert (erp / "INV-1.xml").stat().st_size > len(PDF)
        assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1.xml").stat().st_nlink == 1
        assert (erp / "INV-1.xml").stat().st_nlink == 1

    def test_an_attachment_of_exactly_the_largest_size_sent_is_copied(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """a.pdf is exactly as large as outboxd sends ([validation] max_attachment_bytes;
        the invoice file's limit taken out of the way, for a small test): it is sent, so
        it is copied, and lies in sent/ as a file of its own."""
        p, s, erp, _pdf = _linked_bundle(
            tmp_path, validation={"max_attachment_bytes": len(PDF)})
        monkeypatch.setattr(owncopy, "MAX_INVOICE_BYTES", 1)
        assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1" / "a.pdf").stat().st_nlink == 1
        assert (erp / "a.pdf").stat().st_nlink == 1

    def test_a_file_whose_other_name_went_before_the_claim_is_moved_not_copied(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """a.pdf had a second name when the bundle settled, removed just before the claim:
        a file of one name needs no copy, and lies in sent/ as the very file that was in
        the outbox (its space not taken twice)."""
        p, s, erp, pdf = _linked_bundle(tmp_path)
        ino = (erp / "a.pdf").stat().st_ino
        real = claims.claim

        def unlinked_first(*args: Any, **kwargs: Any) -> Any:
            (erp / "a.pdf").unlink(missing_ok=True)
            return real(*args, **kwargs)

        monkeypatch.setattr(claims, "claim", unlinked_first)
        assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1" / "a.pdf").stat().st_ino == ino

    def test_on_a_file_system_without_an_exchange_the_copies_take_the_names_by_rename(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A share with no renameat2 exchange (NFS, SMB: rename_exchange does nothing and
        says so): each copy, whole and the file unchanged, is renamed over the file's
        name. The bundle is sent as copies, said in the log, no temp left, and the ERP's
        files keep their bytes and their one name."""
        p, s, erp, pdf = _linked_bundle(tmp_path)
        xml = (erp / "INV-1.xml").read_bytes()
        monkeypatch.setattr(owncopy, "rename_exchange", lambda a, b: False)
        with capture_logs() as logged:
            assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1.xml").stat().st_nlink == 1
        assert (entry / "INV-1" / "a.pdf").stat().st_nlink == 1
        assert (entry / "INV-1" / "a.pdf").read_bytes() == pdf
        [said] = [e for e in logged if e["event"].startswith("files with other names")]
        assert said["files"] == ["INV-1.xml", "INV-1/a.pdf"]
        assert _leftovers(tmp_path) == []
        assert (erp / "a.pdf").read_bytes() == pdf and (erp / "a.pdf").stat().st_nlink == 1
        assert (erp / "INV-1.xml").read_bytes() == xml

    def test_a_folder_of_the_sidecar_swapped_for_a_link_before_the_claim_is_never_entered(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """INV-1/sub/b.pdf has a second name; just before the claim a clerk moves the
        folder sub/ out of the outbox and puts a link to it in its place. The claim's
        copies never go through the link: the file behind it keeps its two names and
        gets no temp beside it, no error escapes the claim, and nothing is sent."""
        p, s = make(tmp_path)
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": PDF, "sub/b.pdf": PDF})
        erp = tmp_path / "erp"
        erp.mkdir()
        os.link(s.outbox.path / "INV-1" / "sub" / "b.pdf", erp / "b.pdf")
        aside = tmp_path / "aside"
        real = claims.claim

        def swapped_first(*args: Any, **kwargs: Any) -> Any:
            if not aside.exists():
                os.rename(s.outbox.path / "INV-1" / "sub", aside)
                os.symlink(aside, s.outbox.path / "INV-1" / "sub")
            return real(*args, **kwargs)

        monkeypatch.setattr(claims, "claim", swapped_first)
        run_once(p)
        monkeypatch.undo()
        assert folders(s.sent_dir) == []
        assert (aside / "b.pdf").stat().st_ino == (erp / "b.pdf").stat().st_ino
        assert os.listdir(aside) == ["b.pdf"]

    def test_a_copy_the_disk_has_no_room_for_puts_the_bundle_back_and_claims_it_later(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """No room on the share for the copies: the bundle goes back into the
        outbox as it was (a.pdf a second name of the ERP's file, no temp left), its row
        settling with the error and its fix, said once; it is claimed again a rescan
        period later, not at each step, and then sent as a copy of its own."""
        p, s, erp, pdf = _linked_bundle(tmp_path)

        def full(fin: BinaryIO, fout: BinaryIO) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        monkeypatch.setattr(fscopy, "copy_into", full)
        with capture_logs() as logged:
            assert run_once(p, 1000.0) == []
            assert run_once(p, 1001.0) == []
        monkeypatch.undo()
        [row] = p.j.rows(("settling",))
        assert row.last_error is not None and "No space left on device" in row.last_error
        assert "INV-1.xml" in row.last_error and "free space" in row.last_error
        assert [e["event"] for e in logged if e["log_level"] == "error"] == \
            ["cannot claim bundle; will try again"]
        back = s.outbox.path / "INV-1" / "a.pdf"
        assert back.stat().st_ino == (erp / "a.pdf").stat().st_ino and back.read_bytes() == pdf
        assert list(s.processing_dir.iterdir()) == [] and _leftovers(tmp_path) == []

        assert len(run_once(p, 1000.0 + s.outbox.rescan_seconds)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1" / "a.pdf").stat().st_nlink == 1

    def test_a_bundle_quarantined_at_its_claim_and_its_marker_are_archived_as_copies(
            self, tmp_path: Path) -> None:
        """[policy] invalid = "quarantine", bundles complete with a marker: a bundle with
        a PDF that cannot be read is claimed to be quarantined. Its attachment and its
        marker have second names outside the outbox; in quarantine/ each is a file of its
        own, which a save into the other name leaves as it was."""
        p, s = make(tmp_path, policy={"invalid": "quarantine"},
                    outbox={"completion": "marker"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": b"%PDF-1.4 cut short"})
        (s.outbox.path / "INV-1.ready").write_bytes(b"")
        erp = tmp_path / "erp"
        erp.mkdir()
        for name in ("INV-1/a.pdf", "INV-1.ready"):
            os.link(s.outbox.path / name, erp / name.replace("/", "_"))
        while run_once(p):
            pass
        [entry] = folders(s.quarantine_dir)
        assert "pdf" in (entry / "REASON.txt").read_text()
        _write_in_place(erp / "INV-1_a.pdf", b"saved later")
        assert (entry / "INV-1" / "a.pdf").read_bytes() == b"%PDF-1.4 cut short"
        assert (entry / "INV-1" / "a.pdf").stat().st_nlink == 1
        assert (entry / "INV-1.ready").stat().st_nlink == 1
        assert (erp / "INV-1_a.pdf").read_bytes() == b"saved later"

    def test_a_file_larger_than_anything_sent_keeps_its_names_and_is_never_read_whole(
            self, tmp_path: Path) -> None:
        """A linked attachment larger than any file outboxd sends (over the 64 MiB of an
        invoice file, and [validation] max_attachment_bytes): refused by its size, the
        bundle is quarantined at its claim, and the file is moved as it is, a name of the
        ERP's file still, never copied (a copy of 100 GB would hold the loop)."""
        p, s = make(tmp_path, policy={"invalid": "quarantine"})
        drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf_bytes()})
        huge = s.outbox.path / "INV-1" / "huge.pdf"
        with open(huge, "wb") as fh:
            fh.truncate(65 << 20)  # sparse: no 65 MiB written
        erp = tmp_path / "erp"
        erp.mkdir()
        os.link(huge, erp / "huge.pdf")
        while run_once(p):
            pass
        [entry] = folders(s.quarantine_dir)
        assert "too-large" in (entry / "reason.json").read_text()
        kept = entry / "INV-1" / "huge.pdf"
        assert kept.stat().st_ino == (erp / "huge.pdf").stat().st_ino


    @pytest.mark.parametrize("refused_at", ["copy", "exchange", "rename (no exchange)"])
    def test_a_file_in_a_folder_outboxd_may_not_write_in_is_sent_as_it_is_with_a_warning(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refused_at: str) -> None:
        """No copy can be made beside a.pdf (its folder is its owner's, read-only for
        outboxd), or none can take its name (a folder with the sticky bit, a.pdf another
        user's: only they may rename it; on NFS, with no exchange, the copy's rename
        over it is what is refused); the tests run as root, so the refusal is the
        file system's answer given here. The bundle is sent, not put back at every
        rescan for ever; a.pdf goes as it is, a name of the ERP's file, no temp beside
        it, and a warning names it, why and the fix. The invoice file, in a folder
        outboxd may write in, is still made a copy."""
        p, s, erp, pdf = _linked_bundle(tmp_path)
        if refused_at == "copy":
            real = owncopy.copy_regular

            def refused(parent: int, name: str, *rest: Any) -> int:
                if name == "a.pdf":
                    raise PermissionError(errno.EACCES, "Permission denied", name)
                return real(parent, name, *rest)

            monkeypatch.setattr(owncopy, "copy_regular", refused)
        elif refused_at == "exchange":
            exchange = owncopy.rename_exchange

            def sticky(a: Path, b: Path) -> bool:
                if b.name == "a.pdf":
                    raise PermissionError(errno.EPERM, "Operation not permitted", str(a))
                return exchange(a, b)

            monkeypatch.setattr(owncopy, "rename_exchange", sticky)
        else:
            monkeypatch.setattr(owncopy, "rename_exchange", lambda a, b: False)
            rename = os.rename

            def sticky_nfs(src: Any, dst: Any, **kwargs: Any) -> None:
                if str(src).startswith(".a.pdf.tmp-") and dst == "a.pdf":
                    raise PermissionError(errno.EPERM, "Operation not permitted", src)
                rename(src, dst, **kwargs)

            monkeypatch.setattr(os, "rename", sticky_nfs)
        with capture_logs() as logged:
            assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1" / "a.pdf").stat().st_ino == (erp / "a.pdf").stat().st_ino
        assert (entry / "INV-1.xml").stat().st_nlink == 1
        [warned] = [e for e in logged if e["log_level"] == "warning"
                    and e["event"].startswith("file with other names")]
        assert warned["file"] == "INV-1/a.pdf"
        assert ("Permission denied" if refused_at == "copy" else "Operation not permitted") \
            in warned["error"]
        assert "not a second name" in warned["error"]
        assert _leftovers(tmp_path) == []

    def test_many_linked_files_of_one_folder_hold_one_descriptor_for_it(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """200 linked attachments in one sidecar are copied with the sidecar's folder
        opened once and kept open until all are let go — not a descriptor a file, which
        a bundle of thousands of links (a tool that hard-links every file it places)
        would have run out of."""
        p, s = make(tmp_path)
        files = {f"p{i:03d}.pdf": pdf_bytes(text_marker=f"page {i}") for i in range(200)}
        drop_bundle(s.outbox.path, "INV-1", files)
        erp = tmp_path / "erp"
        erp.mkdir()
        for name in files:
            os.link(s.outbox.path / "INV-1" / name, erp / name)
        walks: list[str] = []
        real = owncopy.walk_to_folder

        def counted(root: Path, parts: list[str], rel: str) -> int:
            walks.append("/".join(parts))
            return real(root, parts, rel)

        monkeypatch.setattr(owncopy, "walk_to_folder", counted)
        assert len(run_once(p)) == 1
        [entry] = folders(s.sent_dir)
        assert sorted(walks) == ["INV-1"]
        assert all((entry / "INV-1" / n).stat().st_nlink == 1 for n in files)
        assert all((erp / n).stat().st_nlink == 1 for n in files)


def _umask() -> int:
    old = os.umask(0)
    os.umask(old)
    return old


def _restarted(p: Any, s: Any, tmp_path: Path, row: int) -> Finisher:
    """A new start on the same journal, delivering to the same target: recovery finishes
    the claim and hands the row to a delivery attempt."""
    fin = Finisher(s, p.j, DirectoryDeliverer(tmp_path / "target"))
    assert [r for r, _ in fin.recover()] == [row]
    return fin


def _restarted_and_sent(p: Any, s: Any, tmp_path: Path) -> Path:
    """The claim a kill cut short, after a new start: sent by its first attempt; its
    folder in sent/."""
    [row] = p.j.rows(("claiming",))
    assert _restarted(p, s, tmp_path, row.id).attempt(row.id) is None
    [entry] = folders(s.sent_dir)
    return entry


def _assert_sent_as_a_copy(s: Any, rel: str, theirs: Path, was: bytes, pdf: bytes) -> None:
    """The one bundle in sent/ holds `rel` as a file of its own (`was`), which a save
    through the ERP's name `theirs` (its only name now) leaves as it is; a.pdf is `pdf`."""
    [entry] = folders(s.sent_dir)
    sent = entry / rel
    assert sent.stat().st_nlink == 1 and theirs.stat().st_nlink == 1
    _write_in_place(theirs, b"saved by the ERP")
    assert sent.read_bytes() == was
    assert (entry / "INV-1" / "a.pdf").read_bytes() == pdf


def _kill(monkeypatch: pytest.MonkeyPatch, at: str, nth: int) -> None:
    """The claim's `nth` copy (1: the invoice file's, 2: a.pdf's) killed `at`: halfway
    through its bytes (`copying`), with the copy whole and synced (`copied`), or once the
    copy took the file's name and the file lies at the temp's (`exchanged`). Nothing of
    the daemon's clean-up runs: neither the removal of the copy under way nor the return
    of the files exchanged before it to their names (a SIGKILL runs no `except`)."""
    monkeypatch.setattr(owncopy, "_remove_copy", lambda *_: None)
    monkeypatch.setattr(owncopy, "_put_back", lambda *_: None)
    calls = iter(range(1, 100))
    if at == "copying":
        copy_into = fscopy.copy_into

        def half(fin: BinaryIO, fout: BinaryIO) -> None:
            if next(calls) == nth:
                fout.write(fin.read(100))
                fout.flush()
                raise _Killed
            copy_into(fin, fout)
        monkeypatch.setattr(fscopy, "copy_into", half)
    elif at == "copied":
        swap_in = owncopy._swap_in

        def never(*args: Any) -> bool:
            if next(calls) == nth:
                raise _Killed
            return swap_in(*args)
        monkeypatch.setattr(owncopy, "_swap_in", never)
    else:
        exchange = owncopy.rename_exchange

        def then_killed(a: Path, b: Path) -> bool:
            done = exchange(a, b)
            if next(calls) == nth:
                raise _Killed
            return done
        monkeypatch.setattr(owncopy, "rename_exchange", then_killed)


@pytest.mark.parametrize("nth", [1, 2])
@pytest.mark.parametrize("at", ["copying", "copied", "exchanged"])
def test_a_kill_during_the_copy_then_a_restart_sends_the_bundle_once_as_validated(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: str, nth: int) -> None:
    """The daemon killed while it copies the invoice file or a.pdf (each has a second name
    in erp/) after the claim: the work folder holds each file or its whole copy at its
    name, and at most a temp. At the restart the claim is finished: the temp removed, the
    copies made, the bundle sent once with the bytes validated; nothing is left in
    processing or beside the files in sent/, and the ERP's files are whole and still
    where they were."""
    p, s, erp, pdf = _linked_bundle(tmp_path)
    xml = (erp / "INV-1.xml").read_bytes()
    _kill(monkeypatch, at, nth)
    [cand] = list_outbox(s.outbox).candidates.values()
    with pytest.raises(_Killed):
        step(p, cand, 1000.0)
    monkeypatch.undo()
    [work] = s.processing_dir.iterdir()
    [row] = p.j.rows(("claiming",))
    assert (work / "INV-1" / "a.pdf").read_bytes() == pdf
    assert (work / "INV-1.xml").read_bytes() == xml
    assert _leftovers(work), "the kill left no temp: nothing to recover from"

    fin = _restarted(p, s, tmp_path, row.id)
    assert fin.attempt(row.id) is None
    assert fin.j.get(row.id).state == "sent"
    [entry] = folders(s.sent_dir)
    sent_pdf = entry / "INV-1" / "a.pdf"
    assert sent_pdf.read_bytes() == pdf and sent_pdf.stat().st_nlink == 1
    assert (entry / "INV-1.xml").stat().st_nlink == 1
    manifest = json.loads((entry / "receipt.json").read_text())["manifest"]
    assert _sha(sent_pdf) == manifest["invoices"][0]["attachments"][0]["sha256"]
    assert len(os.listdir(tmp_path / "target")) == 1  # sent once
    assert list(s.processing_dir.iterdir()) == [] and _leftovers(tmp_path) == []
    assert (erp / "a.pdf").read_bytes() == pdf and (erp / "a.pdf").stat().st_nlink == 1
    assert (erp / "INV-1.xml").read_bytes() == xml


def _killed_after_exchange(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nth: int = 2
                           ) -> tuple[Any, Any, Path, bytes, Path]:
    """INV-1 claimed, the daemon killed once a.pdf's copy (nth=1: the invoice file's) took
    its name (the file itself then at the temp's name, not let go): the pipeline,
    settings, erp/, the bytes validated, the work folder."""
    p, s, erp, pdf = _linked_bundle(tmp_path)
    _kill(monkeypatch, "exchanged", nth)
    [cand] = list_outbox(s.outbox).candidates.values()
    with pytest.raises(_Killed):
        step(p, cand, 1000.0)
    monkeypatch.undo()
    [work] = s.processing_dir.iterdir()
    return p, s, erp, pdf, work


class TestRecoveryLosesNothing:
    @pytest.mark.parametrize("rel", ["INV-1/a.pdf", "INV-1.xml"])
    def test_bytes_saved_through_a_name_removed_since_are_sent_not_deleted(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str) -> None:
        """Killed after a.pdf's (or the invoice file's) copy took its name, before the
        file itself (at the temp's name) was let go. The ERP then saves new bytes through
        its name for the file and removes that name: the temp holds the only copy of them.
        The restart puts the file back at its name (its copy, with the old bytes, goes),
        the bundle is found changed and goes back into the outbox to settle, and the new
        bytes are what is sent next — as a save during the claim is when no kill comes
        between."""
        p, s, erp, pdf, work = _killed_after_exchange(tmp_path, monkeypatch,
                                                      1 if rel == "INV-1.xml" else 2)
        theirs = erp / Path(rel).name
        new = pdf_bytes(2, "saved after the copy") if rel != "INV-1.xml" else \
            theirs.read_bytes().replace(b"</", b"<!-- saved after the copy --></", 1)
        _write_in_place(theirs, new)
        theirs.unlink()
        [row] = p.j.rows(("claiming",))
        fin = Finisher(s, p.j, DirectoryDeliverer(tmp_path / "target"))
        with capture_logs() as logged:
            assert [r for r, _ in fin.recover()] == []
        assert fin.j.get(row.id).state == "settling"
        back = s.outbox.path / rel
        assert back.read_bytes() == new and back.stat().st_nlink == 1
        assert list(s.processing_dir.iterdir()) == [] and _leftovers(tmp_path) == []
        [warned] = [e for e in logged if e["event"].startswith("file of the bundle saved into")]
        assert warned["file"] == rel and warned["log_level"] == "warning"

        p2 = type(p)(s, p.j, DirectoryDeliverer(tmp_path / "target"))
        while run_once(p2, 2000.0):
            pass
        [entry] = folders(s.sent_dir)
        assert (entry / rel).read_bytes() == new
        assert (entry / "INV-1" / "a.pdf").read_bytes() == (new if rel != "INV-1.xml" else pdf)

    def test_the_file_itself_left_with_its_name_removed_but_unchanged_is_let_go(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The same kill; the ERP removes its name for a.pdf without saving into it: the
        file at the temp's name holds what its copy holds, so nothing is lost by letting
        it go, and the restart sends the bundle as claimed."""
        p, s, erp, pdf, work = _killed_after_exchange(tmp_path, monkeypatch)
        (erp / "a.pdf").unlink()
        entry = _restarted_and_sent(p, s, tmp_path)
        assert (entry / "INV-1" / "a.pdf").read_bytes() == pdf
        assert list(s.processing_dir.iterdir()) == [] and _leftovers(tmp_path) == []

    def test_the_erp_saving_the_whole_bundle_again_after_a_kill_mid_copy_sends_no_mix(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Killed halfway through a.pdf's copy, the invoice file already exchanged with
        its copy (the file itself at the temp's name, its ERP name kept). Before the
        restart the ERP saves INV-1.xml and a.pdf again through its names, and keeps
        them. The restart puts the invoice file back at its name with what was saved
        (its copy, of the old bytes, goes) rather than letting it go because its ERP name
        keeps it: the bundle settles again and the next claim sends both new versions,
        never the old invoice file beside the new a.pdf — as a save during the claim
        without a kill between."""
        p, s, erp, _pdf = _linked_bundle(tmp_path)
        xml = (erp / "INV-1.xml").read_bytes()
        _kill(monkeypatch, "copying", 2)
        [cand] = list_outbox(s.outbox).candidates.values()
        with pytest.raises(_Killed):
            step(p, cand, 1000.0)
        monkeypatch.undo()
        new_xml, new_pdf = xml.replace(b"</", b"<!-- saved again --></", 1), \
            pdf_bytes(2, "saved again")
        _write_in_place(erp / "INV-1.xml", new_xml)
        _write_in_place(erp / "a.pdf", new_pdf)
        [row] = p.j.rows(("claiming",))
        fin = Finisher(s, p.j, DirectoryDeliverer(tmp_path / "target"))
        with capture_logs() as logged:
            assert [r for r, _ in fin.recover()] == []
        assert fin.j.get(row.id).state == "settling"
        assert (s.outbox.path / "INV-1.xml").read_bytes() == new_xml
        assert list(s.processing_dir.iterdir()) == [] and _leftovers(tmp_path) == []
        [warned] = [e for e in logged if e["event"].startswith("file of the bundle saved into")]
        assert warned["file"] == "INV-1.xml"

        p2 = type(p)(s, p.j, DirectoryDeliverer(tmp_path / "target"))
        while run_once(p2, 2000.0):
            pass
        [entry] = folders(s.sent_dir)
        assert (entry / "INV-1.xml").read_bytes() == new_xml
        assert (entry / "INV-1" / "a.pdf").read_bytes() == new_pdf
        assert (erp / "INV-1.xml").read_bytes() == new_xml

    def test_a_file_put_back_at_a_restart_with_the_bytes_claimed_is_sent_as_a_copy(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The ERP saves a.pdf (through its name) between the bundle's validation and its
        claim, so the claim copies that version; killed once the copy took a.pdf's name.
        The ERP then saves the validated version back. The restart puts the file itself
        back at a.pdf (it differs from its copy), and since it is the bundle validated, the
        bundle is sent: as a copy of its own, made at the restart, which a later save
        through the ERP's name leaves as it was — never as a name of the ERP's file."""
        p, s, erp, pdf = _linked_bundle(tmp_path)
        real = claims.claim

        def saved_first(*args: Any, **kwargs: Any) -> Any:
            _write_in_place(erp / "a.pdf", pdf_bytes(2, "saved before the claim"))
            return real(*args, **kwargs)

        monkeypatch.setattr(claims, "claim", saved_first)
        _kill(monkeypatch, "exchanged", 2)
        [cand] = list_outbox(s.outbox).candidates.values()
        with pytest.raises(_Killed):
            step(p, cand, 1000.0)
        monkeypatch.undo()
        _write_in_place(erp / "a.pdf", pdf)
        entry = _restarted_and_sent(p, s, tmp_path)
        sent = entry / "INV-1" / "a.pdf"
        assert sent.read_bytes() == pdf and sent.stat().st_nlink == 1
        _write_in_place(erp / "a.pdf", b"saved by the ERP later")
        assert sent.read_bytes() == pdf
        assert list(s.processing_dir.iterdir()) == [] and _leftovers(tmp_path) == []


def test_a_restart_copies_what_the_claim_would_have_up_to_the_largest_size_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """[validation] max_attachment_bytes above an invoice file's limit (made small here,
    for a small test): the claim copies a.pdf, killed halfway. The restart makes the
    copy with the claim's limit, the largest file sent of either kind, so a.pdf goes
    to sent/ as a file of its own, not as a name of the ERP's file."""
    p, s, erp, pdf = _linked_bundle(tmp_path, validation={"max_attachment_bytes": len(PDF)})
    _kill(monkeypatch, "copying", 1)  # a.pdf: the invoice file is over both limits here
    monkeypatch.setattr(owncopy, "MAX_INVOICE_BYTES", 1)
    [cand] = list_outbox(s.outbox).candidates.values()
    with pytest.raises(_Killed):
        step(p, cand, 1000.0)
    monkeypatch.undo()
    monkeypatch.setattr(owncopy, "MAX_INVOICE_BYTES", 1)
    entry = _restarted_and_sent(p, s, tmp_path)
    sent = entry / "INV-1" / "a.pdf"
    assert sent.read_bytes() == pdf and sent.stat().st_nlink == 1
    assert (erp / "a.pdf").stat().st_nlink == 1


def test_a_clerks_dot_file_named_like_a_temp_is_kept_by_recovery(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clerk's own `.a.pdf.tmp-` + 12 hex digits in the sidecar (no copy of outboxd's:
    its name was not made for the file beside it) survives a kill during the claim's
    copies and the restart: it is archived with the bundle, as any dot-file of the
    sidecar is, with what it held."""
    p, s, erp, pdf = _linked_bundle(tmp_path)
    clerks = s.outbox.path / "INV-1" / ".a.pdf.tmp-0123456789ab"
    clerks.write_bytes(b"a clerk's notes")
    _kill(monkeypatch, "copying", 2)
    [cand] = list_outbox(s.outbox).candidates.values()
    with pytest.raises(_Killed):
        step(p, cand, 1000.0)
    monkeypatch.undo()
    entry = _restarted_and_sent(p, s, tmp_path)
    assert (entry / "INV-1" / clerks.name).read_bytes() == b"a clerk's notes"
    assert sorted(os.listdir(entry / "INV-1")) == [clerks.name, "a.pdf"]
    assert (entry / "INV-1" / "a.pdf").read_bytes() == pdf


@pytest.mark.parametrize("rel", ["INV-1/a.pdf", "INV-1.xml"])
def test_a_link_made_after_the_last_look_before_the_claim_is_archived_as_a_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str) -> None:
    """The ERP makes a second name for a.pdf (or the invoice file) after the bundle's last
    snapshot, just before its claim (or on a share whose change times say nothing of
    it): the check by hashes after the claim sees the file's links and the bundle goes
    back to settle, nothing sent; the next claim copies the file, and what lies in sent/
    is a file of its own, which a save through the ERP's name leaves as it was."""
    p, s = make(tmp_path)
    pdf = pdf_bytes()
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf})
    erp = tmp_path / "erp"
    erp.mkdir()
    real = claims.claim
    theirs = erp / "file"
    was = (s.outbox.path / rel).read_bytes()

    def linked_first(cand: Any, *args: Any, **kwargs: Any) -> Any:
        if not theirs.exists():
            os.link(s.outbox.path / rel, theirs)
        return real(cand, *args, **kwargs)

    monkeypatch.setattr(claims, "claim", linked_first)
    with capture_logs() as logged:
        assert run_once(p) == []
    monkeypatch.undo()
    assert [r.invoice_file for r in p.j.rows(("settling",))] == ["INV-1.xml"]
    assert folders(s.sent_dir) == [] and list(s.processing_dir.iterdir()) == []
    assert any("another name" in str(e.get("changed")) for e in logged)

    assert len(run_once(p)) == 1
    _assert_sent_as_a_copy(s, rel, theirs, was, pdf)


def test_a_link_removed_before_the_claim_and_made_again_before_its_check_is_archived_as_a_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """a.pdf had a second name when the bundle settled; the ERP removes it just before the
    claim (so the claim finds a file of one name and copies nothing) and makes it again
    before the check by hashes. That the snapshot saw a.pdf linked does not make the new
    link one the claim copied: the bundle goes back to settle, nothing sent, and its next
    claim copies a.pdf, which then lies in sent/ as a file of its own."""
    p, s, erp, pdf = _linked_bundle(tmp_path)
    real_claim, real_own = claims.claim, claims.own_copies
    theirs = erp / "a.pdf"

    def unlinked_first(*args: Any, **kwargs: Any) -> Any:
        theirs.unlink(missing_ok=True)
        return real_claim(*args, **kwargs)

    def linked_again(work: Path, *args: Any) -> Any:
        owned = real_own(work, *args)
        if not theirs.exists():
            os.link(work / "INV-1" / "a.pdf", theirs)
        return owned

    monkeypatch.setattr(claims, "claim", unlinked_first)
    monkeypatch.setattr(claims, "own_copies", linked_again)
    with capture_logs() as logged:
        assert run_once(p) == []
    monkeypatch.undo()
    assert [r.invoice_file for r in p.j.rows(("settling",))] == ["INV-1.xml"]
    assert folders(s.sent_dir) == []
    assert any("another name" in str(e.get("changed")) for e in logged)

    assert len(run_once(p)) == 1
    _assert_sent_as_a_copy(s, "INV-1/a.pdf", theirs, pdf, pdf)


@pytest.mark.parametrize("rel", ["INV-1/a.pdf", "INV-1.xml"])
def test_a_link_made_after_a_restarts_copies_before_its_check_is_archived_as_a_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rel: str) -> None:
    """Killed after the claim, before its check by hashes; at the restart, after recovery
    made the bundle's files its own (none had another name) and before it checks the
    bundle by hashes, a second name is made for a.pdf (or the invoice file) in the work
    folder. The same bytes, but archived as they lie it would be a name of another's
    file: the bundle goes back to settle, nothing sent, as the check after a claim
    does; its next claim copies the file, which then lies in sent/ as a file of its own
    that a save through the other name leaves as it was."""
    p, s = make(tmp_path)
    pdf = pdf_bytes()
    drop_bundle(s.outbox.path, "INV-1", {"a.pdf": pdf})
    was = (s.outbox.path / rel).read_bytes()
    monkeypatch.setattr(claims, "changed_since_read", lambda *_: (_ for _ in ()).throw(_Killed))
    [cand] = list_outbox(s.outbox).candidates.values()
    with pytest.raises(_Killed):
        step(p, cand, 1000.0)
    monkeypatch.undo()
    [row] = p.j.rows(("claiming",))
    [work] = s.processing_dir.iterdir()
    theirs = tmp_path / "erp-file"
    real = recovery.own_claimed

    def linked_after(*args: Any) -> Any:
        done = real(*args)
        os.link(work / rel, theirs)
        return done

    monkeypatch.setattr(recovery, "own_claimed", linked_after)
    fin = Finisher(s, p.j, DirectoryDeliverer(tmp_path / "target"))
    with capture_logs() as logged:
        assert [r for r, _ in fin.recover()] == []
    monkeypatch.undo()
    assert fin.j.get(row.id).state == "settling"
    assert folders(s.sent_dir) == [] and list(s.processing_dir.iterdir()) == []
    assert (s.outbox.path / rel).stat().st_nlink == 2  # back, its other name kept
    assert any("another name" in str(e.get("changed")) for e in logged)

    p2 = type(p)(s, p.j, DirectoryDeliverer(tmp_path / "target"))
    while run_once(p2, 2000.0):
        pass
    _assert_sent_as_a_copy(s, rel, theirs, was, pdf)


@pytest.mark.parametrize("lasting", [False, True])
def test_a_file_that_cannot_be_put_back_at_its_name_never_goes_into_the_outbox_at_a_temp(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lasting: bool) -> None:
    """The ERP saves a.pdf while the claim copies it, so the invoice file, already
    exchanged with its copy, must go back to its name; the share fails that exchange
    (EIO). The failure is said, naming the invoice file and where it lies (at error with
    why the copies were undone; while the bundle cannot go back, as the warning of a claim
    that waits, and in its row). The file itself never goes into the outbox under its temp's
    name: the claim's undo puts it back at its name first, and the bundle is back in the
    outbox as the ERP's files; where the share goes on failing (`lasting`), the bundle
    stays in processing, its row saying why, until a rescan finds the share mended and
    puts it back so. Nothing is sent meanwhile, and the next claim sends what was saved."""
    from daemon.claiming import leftcopies
    p, s, erp, _pdf = _linked_bundle(tmp_path)
    new = pdf_bytes(2, "saved meanwhile")
    copy_into, exchange = fscopy.copy_into, owncopy.rename_exchange
    xml_exchanges: list[Path] = []

    def saved_halfway(fin: BinaryIO, fout: BinaryIO) -> None:
        if fin.read(4) == b"%PDF":
            _write_in_place(erp / "a.pdf", new)
        fin.seek(0)
        copy_into(fin, fout)

    def eio(a: Path, b: Path) -> bool:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(a))

    def fails_going_back(a: Path, b: Path) -> bool:
        if b.name == "INV-1.xml":
            xml_exchanges.append(a)
            if len(xml_exchanges) == 2:  # the first took the name: this puts it back
                return eio(a, b)
        return exchange(a, b)

    monkeypatch.setattr(fscopy, "copy_into", saved_halfway)
    monkeypatch.setattr(owncopy, "rename_exchange", fails_going_back)
    if lasting:
        monkeypatch.setattr(leftcopies, "rename_exchange", eio)
    with capture_logs() as logged:
        assert run_once(p) == []
    [said] = [str(e["error"]) for e in logged if e["log_level"] in ("error", "warning")]
    assert "INV-1.xml" in said and xml_exchanges[1].name in said
    assert "Input/output error" in said
    assert ("cannot be put back" if lasting else "saved into") in said
    assert [t for t in _leftovers(s.outbox.path) if "/.outboxd/" not in t] == []
    assert folders(s.sent_dir) == []
    if lasting:
        [row] = p.j.rows(("claiming",))
        assert row.last_error is not None and "Input/output error" in row.last_error
        assert not (s.outbox.path / "INV-1.xml").exists()
        assert p.retry_stranded() == []  # the share still failing: it waits
        assert list(s.processing_dir.iterdir()) != []
        monkeypatch.setattr(leftcopies, "rename_exchange", exchange)
        assert p.retry_stranded() == []
    monkeypatch.undo()
    assert [r.invoice_file for r in p.j.rows(("settling",))] == ["INV-1.xml"]
    for name, there in (("INV-1.xml", s.outbox.path / "INV-1.xml"),
                        ("a.pdf", s.outbox.path / "INV-1" / "a.pdf")):
        assert there.stat().st_ino == (erp / name).stat().st_ino, name
    assert list(s.processing_dir.iterdir()) == [] and _leftovers(tmp_path) == []

    assert len(run_once(p, 2000.0)) == 1
    [entry] = folders(s.sent_dir)
    assert (entry / "INV-1" / "a.pdf").read_bytes() == new


@pytest.mark.parametrize("their_name", ["kept", "removed"])
@pytest.mark.parametrize("exchange", [True, False])
def test_a_kill_while_the_files_are_let_go_then_a_whole_save_sends_the_bundle_as_copied(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, exchange: bool,
        their_name: str) -> None:
    """Every file copied and found unchanged: the claim lets them go one by one (a.pdf
    first), and the daemon is killed once a.pdf is let go (its copy at its name, nothing
    beside it), the invoice file not yet (on a share with no exchange: a.pdf's copy
    renamed over it, the invoice file's copy still at its temp). The ERP then saves both
    files again through its names before the restart. The restart lets the invoice file
    go as the claim would have (its ERP name keeps it) and sends the bundle as it was
    copied, both old versions — never the new invoice file beside the old a.pdf let go
    before the kill. Nothing is left in processing, and the ERP's names keep what was
    saved; where the ERP removed its name for the invoice file after the save
    (`removed`), the invoice file holds the only copy of what was saved: it is kept, at
    a hidden name beside the invoice file sent, archived with it, and said."""
    p, s, erp, pdf = _linked_bundle(tmp_path)
    if not exchange:
        monkeypatch.setattr(owncopy, "rename_exchange", lambda a, b: False)
    xml = (erp / "INV-1.xml").read_bytes()
    monkeypatch.setattr(owncopy, "_put_back", lambda *_: None)  # a SIGKILL runs no except
    real = os.unlink if exchange else os.rename

    def killed_after_a_pdf(src: Any, *args: Any, **kwargs: Any) -> None:
        real(src, *args, **kwargs)
        if str(src).startswith(".a.pdf.tmp-"):
            raise _Killed

    monkeypatch.setattr(os, "unlink" if exchange else "rename", killed_after_a_pdf)
    [cand] = list_outbox(s.outbox).candidates.values()
    with pytest.raises(_Killed):
        step(p, cand, 1000.0)
    monkeypatch.undo()
    [work] = s.processing_dir.iterdir()
    assert _leftovers(work), "the kill left the invoice file not let go"
    new_xml = xml.replace(b"</", b"<!-- saved again --></", 1)
    _write_in_place(erp / "INV-1.xml", new_xml)
    _write_in_place(erp / "a.pdf", pdf_bytes(2, "saved again"))
    if their_name == "removed":
        (erp / "INV-1.xml").unlink()
    if not exchange:
        monkeypatch.setattr(owncopy, "rename_exchange", lambda a, b: False)
    [row] = p.j.rows(("claiming",))
    with capture_logs() as logged:
        fin = _restarted(p, s, tmp_path, row.id)
    assert fin.attempt(row.id) is None
    [entry] = folders(s.sent_dir)
    assert (entry / "INV-1.xml").read_bytes() == xml
    assert (entry / "INV-1" / "a.pdf").read_bytes() == pdf
    assert (entry / "INV-1.xml").stat().st_nlink == 1
    assert list(s.processing_dir.iterdir()) == [] and _leftovers(tmp_path) == []
    assert len(os.listdir(tmp_path / "target")) == 1  # sent once
    if their_name == "kept":
        assert sorted(os.listdir(entry)) == ["INV-1", "INV-1.xml", "receipt.json"]
        assert (erp / "INV-1.xml").read_bytes() == new_xml
        return
    [kept] = [n for n in os.listdir(entry) if n.startswith(".INV-1.xml.saved-")]
    assert (entry / kept).read_bytes() == new_xml
    [warned] = [e for e in logged if e.get("kept") == kept]
    assert warned["file"] == "INV-1.xml" and warned["log_level"] == "warning"
