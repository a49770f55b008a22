"""Matching a sidecar folder to the invoices of its invoice file (docs/folder-convention.md,
section 3). Which subfolder is which id's is in test_idfolders.py, look-alike sidecars and
names that collide in test_lookalikes.py, attachments.toml in test_notes.py."""

from __future__ import annotations

import errno
import gc
import hashlib
import os
import re
import resource
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import looks_fail, raised, ubl_invoice, write
from matching import PDF, batch_xml, candidate, codes, finding, layout, match, settings
from swaps import opened_in, swap_when_opened

from daemon.bundle import Bundle
from daemon.configuration.config import Settings
from daemon.errors import InputError
from daemon.fs.fsops import read_again_later
from daemon.reading import match as match_module
from daemon.reading.match import assemble
from daemon.watching.scan import Candidate
from reading.test_invoices import damaged, flate_pdf_pages


class TestSingleInvoice:
    def test_files_in_the_sidecar_root(self, outbox: Path) -> None:
        """One invoice: the files in the sidecar root are its attachments, with hash and size."""
        write(outbox / "INV-1001" / "timesheet.pdf", PDF)
        write(outbox / "INV-1001" / "delivery-note.pdf", PDF + b"%x")
        b = match(outbox, "INV-1001.xml", ubl_invoice("INV-1001"))
        assert b.errors == ()
        assert layout(b) == {"INV-1001": ["delivery-note.pdf", "timesheet.pdf"]}
        a = next(a for a in b.attachments if a.original_name == "timesheet.pdf")
        assert a.size == len(PDF)
        assert a.rel == "INV-1001/timesheet.pdf"
        assert a.document_type == "Attachment" and a.note == ""
        assert b.sidecar == outbox / "INV-1001"
        assert b.invoice_file.format == "ubl"

    def test_files_in_a_subfolder_named_after_the_id(self, outbox: Path) -> None:
        """One invoice: a subfolder named after its id (not the stem) holds attachments too."""
        write(outbox / "export-7" / "INV-77" / "contract.pdf", PDF)
        b = match(outbox, "export-7.xml", ubl_invoice("INV-77"))
        assert b.errors == ()
        assert layout(b) == {"INV-77": ["contract.pdf"]}
        assert b.attachments[0].rel == "export-7/INV-77/contract.pdf"

    def test_subfolder_with_other_name_is_an_orphan(self, outbox: Path) -> None:
        """One invoice: a subfolder named after no id is an orphan, reported with the real id."""
        write(outbox / "INV-1" / "misc" / "x.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        f = finding(b, "orphan-attachment")
        assert f.file == "INV-1/misc"
        assert "INV-1" in f.message
        assert b.attachments == ()

    def test_a_subfolder_of_a_one_invoice_sidecar_says_to_move_its_files_up(
            self, outbox: Path) -> None:
        """A clerk who made INV-1/October/ for a file of one invoice is told what fits
        that case: the files go directly into INV-1/ (or rename the folder to the id)."""
        write(outbox / "INV-1" / "October" / "x.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        f = finding(b, "orphan-attachment")
        assert f.message == ("names no invoice of this file; its one invoice is INV-1, whose "
                             "attachments go directly in INV-1/ — move the files of INV-1/October/ "
                             "up into INV-1/ and remove the empty folder (or rename it to "
                             "INV-1)")

    def test_a_pdf_whose_pages_could_not_be_read_is_not_told_to_move_its_folders_up(
            self, outbox: Path) -> None:
        """print.pdf's two pages could not be read (no id found: the stem stands in, with a
        pdf-text-unreadable warning), and its sidecar holds print/INV-1/ and print/INV-2/.
        "Move the files up into print/" would send both invoices' attachments as the one
        invoice "print": the orphan error says the pages could not be read, and to export
        the PDF again first."""
        write(outbox / "print" / "INV-1" / "a.pdf", PDF)
        write(outbox / "print" / "INV-2" / "b.pdf", PDF)
        b = match(outbox, "print.pdf", flate_pdf_pages(
            [damaged("Invoice number: INV-1"), damaged("Invoice number: INV-2")]))
        assert b.invoice_ids == ("print",)
        assert finding(b, "pdf-text-unreadable").severity == "warning"
        orphans = sorted(f.message for f in b.findings if f.code == "orphan-attachment")
        assert len(orphans) == 2
        for said in orphans:
            assert said.startswith("names no invoice outboxd could read in this file: some "
                                   "of its pages could not be read")
            assert "export the PDF again (print to PDF)" in said
            assert "only if the file holds that one invoice, move the files of print/" in said

    @pytest.mark.parametrize("litter", [(), (".DS_Store", "Thumbs.db", "desktop.ini")],
                             ids=["empty", "litter-only"])
    def test_an_empty_subfolder_is_no_orphan(self, outbox: Path,
                                             litter: tuple[str, ...]) -> None:
        """One invoice: INV-1/October/ with nothing in it (or only what a desktop leaves
        in a folder it showed) holds nothing that would be sent or left behind: no
        error, the files beside it are the attachments, and with none the invoice is
        one without attachments (the unattached policy decides), not quarantined."""
        (outbox / "INV-1" / "October").mkdir(parents=True)
        for name in litter:
            write(outbox / "INV-1" / "October" / name, b"x")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert (b.findings, b.attachments, b.unattached_ids) == ((), (), ("INV-1",))
        write(outbox / "INV-1" / "a.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert b.findings == () and layout(b) == {"INV-1": ["a.pdf"]}

    @pytest.mark.parametrize("litter", [(), ("Thumbs.db",)], ids=["empty", "litter-only"])
    def test_a_tree_of_empty_folders_is_no_orphan(self, outbox: Path,
                                                  litter: tuple[str, ...]) -> None:
        """One invoice: INV-1/2026/October/Week 1/ (folders made before their files, each
        empty but for litter) holds nothing that would be sent or left behind, as an
        empty INV-1/2026/ does: no orphan-attachment telling the clerk to "move the
        files" of a folder that has none; the file beside it is sent."""
        deepest = outbox / "INV-1" / "2026" / "October" / "Week 1"
        deepest.mkdir(parents=True)
        for folder in (deepest, deepest.parent):
            for name in litter:
                write(folder / name, b"x")
        write(outbox / "INV-1" / "a.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert b.findings == () and layout(b) == {"INV-1": ["a.pdf"]}

    def test_empty_folders_deeper_than_settling_looks_are_an_orphan(
            self, outbox: Path) -> None:
        """A folder whose entries settling does not see (below snapshot.SNAPSHOT_DEPTH,
        the sidecar's own depth 1): a file copied in there would not hold the bundle
        back, so its folder is not taken as empty, and the tree is orphan-attachment as
        before; one level less deep, settling sees it, and it is no error."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        (outbox / "INV-1" / "b" / "c" / "d" / "e").mkdir(parents=True)  # e's entries: 6
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "orphan-attachment").file == "INV-1/b"
        (outbox / "INV-1" / "b" / "c" / "d" / "e").rmdir()  # d's entries are at depth 5
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert b.findings == ()

    @pytest.mark.parametrize("inside", ["x.pdf", "x.pdf.part", "attachments.toml",
                                        "deeper/x.pdf", "deeper/still/", "deeper/link"])
    def test_a_subfolder_holding_anything_but_litter_is_still_an_orphan(
            self, outbox: Path, inside: str) -> None:
        """A file, a copy under way, notes, or a folder holding any of them or a link
        (never followed: what it points to is not known to be empty), at any depth: not
        empty, orphan-attachment as before."""
        folder = outbox / "INV-1" / "October"
        if inside.endswith("/"):
            (folder / inside).mkdir(parents=True)
            write(folder / inside / "x.pdf", PDF)  # two folders down
        elif inside.endswith("link"):
            (folder / "deeper").mkdir(parents=True)
            (folder / "deeper" / "link").symlink_to(outbox / "elsewhere")
            (outbox / "elsewhere").mkdir()
        else:
            write(folder / inside, b"x")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "orphan-attachment").file == "INV-1/October"

    def test_a_subfolder_named_like_its_sidecar_is_told_by_its_whole_path(
            self, outbox: Path) -> None:
        """W-1.xml holds invoice W-99 (its number is not its file name), and the clerk put
        its files in W-1/W-1/: "move the files of W-1/ up into W-1/" named one folder
        twice and moved nothing. The folder to empty is named by its whole path."""
        write(outbox / "W-1" / "W-1" / "x.pdf", PDF)
        f = finding(match(outbox, "W-1.xml", ubl_invoice("W-99")), "orphan-attachment")
        assert "move the files of W-1/W-1/ up into W-1/ and remove the empty folder" \
            in f.message

    @pytest.mark.parametrize("ids", [("A", "B"), ("INV-1",)], ids=["several", "one"])
    def test_a_synology_eadir_folder_is_ignored_as_desktop_litter(
            self, outbox: Path, ids: tuple[str, ...]) -> None:
        """A Synology NAS makes @eaDir/ (its thumbnails) in every folder it indexes: in the
        sidecar and in an invoice's folder. It was an orphan-attachment (nested-too-deep
        in an invoice's folder) whose fix told the clerk to move the NAS's thumbnails into
        the bundle, until the admin named it in ignore_patterns. Like Thumbs.db it is now
        litter, in any case: neither an error nor an attachment."""
        sidecar = outbox / "INV-1"
        for eadir in ("@eaDir", "@EADIR"):
            thumb = Path(eadir) / "scan.pdf" / "SYNOFILE_THUMB_M.jpg"
            for j in ids if len(ids) > 1 else ():
                write(sidecar / j / "scan.pdf", PDF)
                write(sidecar / j / thumb, b"\xff\xd8\xff")
            if len(ids) == 1:
                write(sidecar / "scan.pdf", PDF)
            write(sidecar / thumb, b"\xff\xd8\xff")
            data = batch_xml(*ids) if len(ids) > 1 else ubl_invoice(ids[0])
            b = match(outbox, "INV-1.xml", data)
            assert b.findings == (), eadir
            assert layout(b) == {j: ["scan.pdf"] for j in ids}
            shutil.rmtree(sidecar)

    def test_another_invoices_sidecar_inside_this_one_says_move_it_out(
            self, outbox: Path) -> None:
        """A clerk who puts NS2/ (the sidecar of NS2.xml, in the outbox) into NS1/ is told
        to move it out beside NS2.xml, not to rename it to one of NS1's ids."""
        write(outbox / "NS1" / "a.pdf", PDF)
        write(outbox / "NS1" / "NS2" / "b.pdf", PDF)
        write(outbox / "NS2.xml", ubl_invoice("NS2"))
        b = match(outbox, "NS1.xml", ubl_invoice("NS1"))
        f = finding(b, "orphan-attachment")
        assert f.file == "NS1/NS2"
        assert "sidecar of NS2.xml" in f.message
        assert "move the folder NS2 out of NS1 into the outbox, beside NS2.xml" in f.message
        assert layout(b) == {"NS1": ["a.pdf"]}

    def test_no_sidecar(self, outbox: Path) -> None:
        """No sidecar: no attachments, no error (the unattached policy decides)."""
        b = match(outbox, "INV-5.xml", ubl_invoice("INV-5"))
        assert (b.sidecar, b.attachments, b.findings) == (None, (), ())
        assert b.unattached_ids == ("INV-5",)

    def test_an_unusable_pdf_invoice_is_an_error_and_still_a_pdf(self, outbox: Path) -> None:
        """A damaged PDF invoice file: a pdf-unreadable finding on it, the stem as its one
        invoice, and its format still "pdf" (what `check` shows), not "other"."""
        b = match(outbox, "INV-6.pdf", b"%PDF-1.4\ngarbage")
        assert codes(b) == ["pdf-unreadable"] and finding(b, "pdf-unreadable").file == "INV-6.pdf"
        assert (b.invoice_file.format, b.invoice_ids) == ("pdf", ("INV-6",))

    def test_sidecar_suffix(self, outbox: Path) -> None:
        """The sidecar is NAME + sidecar_suffix (the Candidate carries it)."""
        write(outbox / "INV-6.files" / "a.pdf", PDF)
        invoice = write(outbox / "INV-6.xml", ubl_invoice("INV-6"))
        cand = Candidate("INV-6", invoice, outbox / "INV-6.files", outbox / "INV-6.ready")
        b = assemble(cand, settings(outbox, outbox={"sidecar_suffix": ".files"}))
        assert layout(b) == {"INV-6": ["a.pdf"]}

    def test_pdf_invoice_named_by_stem(self, outbox: Path) -> None:
        """A PDF without an id label is one invoice named after the stem; its root files match."""
        write(outbox / "INV-1002" / "scan.pdf", PDF)
        b = match(outbox, "INV-1002.pdf", PDF)
        assert layout(b) == {"INV-1002": ["scan.pdf"]}
        assert b.invoice_file.format == "pdf"

    @pytest.mark.parametrize(("name", "data", "fmt"), [
        ("INV-8.xml", ubl_invoice("INV-8"), "ubl"), ("INV-8.pdf", PDF, "pdf"),
        # A name that promises no content ([outbox] invoice_patterns = ["*.edi"]): a .xml of
        # CSV content is extension-mismatch, not "anything else".
        ("INV-8.edi", b"INV-8;100;SEK\n", "other")], ids=["xml", "pdf", "other"])
    def test_invoice_too_large_for_memory_is_read_the_same(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch, name: str, data: bytes,
            fmt: str) -> None:
        """An invoice file over the in-memory size (hashed in chunks, read again for its
        ids) gives the same size, hash, format and ids as one read once, each kind read
        as that kind (no finding)."""
        write(outbox / "INV-8" / "a.pdf", PDF)
        once = match(outbox, name, data)
        assert (once.findings, once.invoice_file.format) == ((), fmt)
        monkeypatch.setattr(match_module, "MAX_INVOICE_IN_MEMORY", len(data) - 1)
        twice = match(outbox, name, data)
        assert twice == once
        assert (once.invoice_file.size, once.invoice_file.sha256) == (
            len(data), hashlib.sha256(data).hexdigest())


class TestSeveralInvoices:
    def test_subfolder_per_invoice(self, outbox: Path) -> None:
        """Several invoices: each one's attachments come from the subfolder named after its id."""
        write(outbox / "batch-42" / "INV-2001" / "contract.pdf", PDF)
        write(outbox / "batch-42" / "INV-2002" / "specification.pdf", PDF)
        write(outbox / "batch-42" / "INV-2002" / "annex.pdf", PDF)
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002", "INV-2003"))
        assert b.errors == ()
        assert b.invoice_ids == ("INV-2001", "INV-2002", "INV-2003")
        assert layout(b) == {"INV-2001": ["contract.pdf"],
                             "INV-2002": ["annex.pdf", "specification.pdf"], "INV-2003": []}
        assert b.unattached_ids == ("INV-2003",)
        assert {a.rel for a in b.attachments_of("INV-2002")} == {
            "batch-42/INV-2002/specification.pdf", "batch-42/INV-2002/annex.pdf"}

    def test_root_file_is_an_orphan(self, outbox: Path) -> None:
        """Several invoices: a file in the sidecar root is an orphan naming the file and the ids."""
        write(outbox / "batch-42" / "INV-2001" / "contract.pdf", PDF)
        write(outbox / "batch-42" / "loose.pdf", PDF)
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
        f = finding(b, "orphan-attachment")
        assert f.file == "batch-42/loose.pdf"
        assert "INV-2001" in f.message and "INV-2002" in f.message
        assert "loose.pdf" not in [a.original_name for a in b.attachments]
        assert layout(b) == {"INV-2001": ["contract.pdf"], "INV-2002": []}

    def test_subfolder_naming_no_invoice(self, outbox: Path) -> None:
        """Several invoices: a subfolder that names no invoice is an orphan listing the real ids."""
        write(outbox / "batch-42" / "INV-2009" / "x.pdf", PDF)
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
        f = finding(b, "orphan-attachment")
        assert f.file == "batch-42/INV-2009"
        assert "INV-2001, INV-2002" in f.message
        assert b.attachments == ()


    def test_an_empty_subfolder_naming_no_invoice_is_no_orphan(self, outbox: Path) -> None:
        """Several invoices: an empty folder that names none of them holds nothing to
        send or leave behind: no error."""
        write(outbox / "batch-42" / "INV-2001" / "contract.pdf", PDF)
        (outbox / "batch-42" / "INV-2009").mkdir()
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
        assert b.findings == ()
        assert layout(b) == {"INV-2001": ["contract.pdf"], "INV-2002": []}


    @pytest.mark.parametrize("what", ["link to a folder", "dangling link", "FIFO"])
    def test_an_invoices_folder_that_is_a_link_or_fifo_is_not_a_folder_and_unread(
            self, outbox: Path, tmp_path: Path, what: str) -> None:
        """An invoice's folder that is a link (or a FIFO) is that folder refused, as
        docs/codes.md says it: `not-a-folder`, to make it a real folder — not `not-a-file`
        with "put the file itself there" — and its invoice's files were not read, so it
        is not said to have no attachments (check said "no attachments" beside an
        unattached-invoice note for an invoice whose folder it never looked into)."""
        write(outbox / "batch-42" / "INV-2001" / "a.pdf", PDF)
        write(tmp_path / "elsewhere" / "b.pdf", PDF)
        place = outbox / "batch-42" / "INV-2002"
        if what == "FIFO":
            os.mkfifo(place)
        else:
            place.symlink_to(tmp_path / ("elsewhere" if what == "link to a folder" else "gone"))
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
        assert [(f.code, f.file, f.invoice_id) for f in b.errors] == [
            ("not-a-folder", "batch-42/INV-2002", "INV-2002")]
        assert "make batch-42/INV-2002 a real folder" in b.errors[0].message
        assert b.unread_ids == ("INV-2002",)
        assert layout(b) == {"INV-2001": ["a.pdf"], "INV-2002": []}

    def test_a_link_named_after_the_one_invoice_in_its_sidecar_is_not_a_folder(
            self, outbox: Path, tmp_path: Path) -> None:
        """A file of one invoice takes its folder in the sidecar too (INV-1/INV-1/): a link
        of that name is that folder refused, like a file of several invoices' one."""
        write(tmp_path / "elsewhere" / "b.pdf", PDF)
        (outbox / "INV-1").mkdir()
        (outbox / "INV-1" / "INV-1").symlink_to(tmp_path / "elsewhere")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert [(f.code, f.file) for f in b.errors] == [("not-a-folder", "INV-1/INV-1")]
        assert b.unread_ids == ("INV-1",)


class TestStructure:
    def test_an_empty_folder_inside_an_invoices_folder_is_not_too_deep(
            self, outbox: Path) -> None:
        """An empty folder inside an invoice's folder (here one holding only an empty
        folder) holds no file to move up: no nested-too-deep, the files beside it are
        sent."""
        (outbox / "batch" / "INV-1" / "deeper" / "still").mkdir(parents=True)
        write(outbox / "batch" / "INV-1" / "ok.pdf", PDF)
        b = match(outbox, "batch.xml", batch_xml("INV-1", "INV-2"))
        assert b.findings == ()
        assert layout(b) == {"INV-1": ["ok.pdf"], "INV-2": []}

    def test_nesting_too_deep(self, outbox: Path) -> None:
        """A folder inside an invoice subfolder is an error naming it; its files are not taken."""
        write(outbox / "batch" / "INV-1" / "deeper" / "x.pdf", PDF)
        write(outbox / "batch" / "INV-1" / "ok.pdf", PDF)
        b = match(outbox, "batch.xml", batch_xml("INV-1", "INV-2"))
        f = finding(b, "nested-too-deep")
        assert f.file == "batch/INV-1/deeper"
        assert f.invoice_id == "INV-1"
        assert f.message == ("is a folder inside batch/INV-1/, the folder of invoice INV-1, "
                             "whose attachments must lie directly in it — move the files of "
                             "batch/INV-1/deeper/ up into batch/INV-1/ and remove the empty "
                             "folder")
        assert "SIDECAR" not in f.message
        assert layout(b)["INV-1"] == ["ok.pdf"]

    @pytest.mark.parametrize("refused", ["open", "list"])
    @pytest.mark.parametrize("unreadable", ["batch", "batch/INV-2"])
    def test_a_folder_that_cannot_be_read_is_said_as_a_rule_and_a_fix(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch, unreadable: str,
            refused: str) -> None:
        """A sidecar, or an invoice's subfolder, that outboxd's user may not open or list
        (chmod 000, or another user's folder; the test runs as root, so the refusal is
        put in os.open's or os.scandir's place): an error naming the folder relative to
        the outbox and the fix, not "[Errno 13] Permission denied: '/srv/…'" on the
        clerk's status page."""
        write(outbox / "batch" / "INV-1" / "a.pdf", PDF)
        write(outbox / "batch" / "INV-2" / "b.pdf", PDF)
        real_open, real_scandir = os.open, os.scandir

        def denied(fd: int, name: str = "") -> bool:
            return Path(os.readlink(f"/proc/self/fd/{fd}"), name) == outbox / unreadable

        def open_(name: Any, flags: int, *args: Any, dir_fd: int | None = None) -> int:
            if refused == "open" and dir_fd is not None and denied(dir_fd, name):
                raise PermissionError(13, "Permission denied", str(name))
            return real_open(name, flags, *args, dir_fd=dir_fd)

        def scandir(fd: Any) -> Any:
            if refused == "list" and denied(fd):
                raise PermissionError(13, "Permission denied", str(fd))
            return real_scandir(fd)

        monkeypatch.setattr(match_module.os, "open", open_)
        monkeypatch.setattr(match_module.os, "scandir", scandir)
        with pytest.raises(InputError) as info:
            match(outbox, "batch.xml", batch_xml("INV-1", "INV-2"))
        assert (info.value.code, info.value.file) == ("unreadable-folder", unreadable)
        assert "cannot be read (permission denied)" in info.value.message
        assert "give outboxd's user read access" in info.value.message
        assert str(outbox) not in str(info.value)

    def test_nesting_too_deep_single_invoice(self, outbox: Path) -> None:
        """One invoice: SIDECAR/ID/SUB/ is too deep as well."""
        write(outbox / "INV-1" / "INV-1" / "sub" / "x.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "nested-too-deep").file == "INV-1/INV-1/sub"
        assert b.attachments == ()

    def test_sidecar_that_is_a_symlink(self, outbox: Path, tmp_path: Path) -> None:
        """A sidecar that is a link to a folder is an error and is never followed."""
        elsewhere = tmp_path / "elsewhere"
        write(elsewhere / "a.pdf", PDF)
        (outbox / "INV-1").symlink_to(elsewhere)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "not-a-folder").file == "INV-1"
        assert b.attachments == () and b.sidecar is None

    def test_sidecar_that_is_a_dangling_link(self, outbox: Path, tmp_path: Path) -> None:
        """A link in the sidecar's place that leads nowhere is the same not-a-folder
        error, never taken for "no sidecar" (an invoice sent without its attachments)."""
        (outbox / "INV-1").symlink_to(tmp_path / "gone")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "not-a-folder").file == "INV-1"
        assert b.sidecar is None and b.unread_ids == ("INV-1",)

    def test_a_link_to_a_folder_inside_the_sidecar_is_one_error_and_never_entered(
            self, outbox: Path, tmp_path: Path) -> None:
        """A link inside the sidecar that leads to a folder is told once, as the link it
        is (not-a-file), never also as a folder of no invoice (orphan-attachment)."""
        write(tmp_path / "elsewhere" / "a.pdf", PDF)
        write(outbox / "INV-1" / "b.pdf", PDF)
        (outbox / "INV-1" / "more").symlink_to(tmp_path / "elsewhere")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert [(f.code, f.file) for f in b.errors] == [("not-a-file", "INV-1/more")]
        assert layout(b) == {"INV-1": ["b.pdf"]}

    def test_sidecar_that_is_a_file(self, outbox: Path) -> None:
        """A regular file where the sidecar folder belongs is an error."""
        write(outbox / "INV-1", b"not a folder")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "not-a-folder").file == "INV-1"

    def test_bad_invoice_file_is_a_finding(self, outbox: Path) -> None:
        """An invoice file breaking a rule is a finding on the bundle, with the stem as the id."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        b = match(outbox, "INV-1.xml", b"<Invoice><broken></Invoice>")
        f = finding(b, "invalid-xml")
        assert f.file == "INV-1.xml"
        assert b.invoice_ids == ("INV-1",)

    def test_an_unreadable_invoice_file_gets_no_advice_about_its_id_folders(
            self, outbox: Path) -> None:
        """An invoice file that cannot be read (here: the same id twice) has its stem only
        as a stand-in id: its id subfolders are not called orphans with advice to rename
        them to that stand-in; the file's own error is the one to fix. The same holds when
        the claim's check matches it again from what was read (`known`)."""
        write(outbox / "M-dup" / "M-8" / "a.pdf", PDF)
        cand = candidate(outbox, "M-dup.xml", batch_xml("M-8", "M-8"))
        b = assemble(cand, settings(outbox))
        assert codes(b) == ["duplicate-invoice-id"] and b.invoice_file.ids_unknown
        again = assemble(cand, settings(outbox), known=b)
        assert again.findings == b.findings and again.sidecar_digest == b.sidecar_digest

    def test_an_invoice_file_that_cannot_be_read_has_no_orphan_folders(
            self, outbox: Path) -> None:
        """Which invoices a broken file holds is not known: a folder in its sidecar is
        not called an orphan with advice to rename it to the stand-in id (its stem); the
        file's own error is the one to fix, then the folder is matched against its ids."""
        write(outbox / "INV-1" / "INV-77" / "a.pdf", PDF)
        b = match(outbox, "INV-1.xml", b"<Invoice><broken></Invoice>")
        assert codes(b) == ["invalid-xml"]

    def test_the_check_after_a_claim_reads_an_invoice_file_changed_since(
            self, outbox: Path) -> None:
        """assemble(known=) takes the ids read before only for the very same bytes: an
        invoice file saved again with another id since is read again, never matched
        under the ids of the file it replaced."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        cand = candidate(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        known = assemble(cand, settings(outbox))
        write(outbox / "INV-1.xml", ubl_invoice("INV-2"))
        again = assemble(cand, settings(outbox), known=known)
        assert again.invoice_ids == ("INV-2",)
        assert again.invoice_file.sha256 != known.invoice_file.sha256

    def test_a_file_with_an_id_twice_names_its_invoices_not_its_stem(
            self, outbox: Path) -> None:
        """The same id twice is an error, but which invoices the file holds was read: the
        bundle names them (the journal, `status --json`, an ERP that looks its invoice
        up by id), not the stem 'M-dup' that no invoice has, and the invoice whose
        folder holds a file is not called unattached."""
        write(outbox / "M-dup" / "M-8" / "a.pdf", PDF)
        b = assemble(candidate(outbox, "M-dup.xml", batch_xml("M-8", "M-9", "M-8")),
                     settings(outbox))
        assert codes(b) == ["duplicate-invoice-id"]
        assert b.invoice_ids == ("M-8", "M-9")
        assert b.unattached_ids == ("M-9",)


def raw_path(folder: Path, *parts: bytes) -> Path:
    """A path below `folder` whose last parts are raw bytes (names that are not UTF-8)."""
    return Path(os.fsdecode(os.path.join(os.fsencode(folder), *parts)))


class TestNamesThatAreNotUtf8:
    """A name that is not valid UTF-8 (or holds control characters) is always an
    error, shown escaped as the scanner shows such names (\\xNN), never as raw surrogates:
    findings end up in the journal, NAME.errors.txt and REASON.txt, which are UTF-8."""

    @staticmethod
    def assert_all_utf8(b: Bundle) -> None:
        for f in b.findings:
            f.file.encode("utf-8")
            f.message.encode("utf-8")

    @pytest.mark.parametrize(("invoice", "data", "ids"), [
        ("INV-7.xml", ubl_invoice("INV-7"), ("INV-7",)),
        ("INV-7.xml", batch_xml("INV-7", "INV-8"), ("INV-7", "INV-8")),
    ], ids=["one-invoice", "several-invoices"])
    def test_a_subfolder_whose_name_is_not_utf8_is_one_escaped_bad_name_finding(
            self, outbox: Path, invoice: str, data: bytes, ids: tuple[str, ...]) -> None:
        """A sidecar subfolder named in Latin-1 (b'Bilagor-\\xe5') gives one bad-name
        finding naming INV-7/Bilagor-\\udce5 and the fix — not also an orphan-attachment
        finding that carries the raw name — and its files are no attachments."""
        write(outbox / "INV-7" / "INV-7" / "a.pdf", PDF)
        write(raw_path(outbox, b"INV-7", b"Bilagor-\xe5", b"b.pdf"), PDF)
        b = match(outbox, invoice, data)
        self.assert_all_utf8(b)
        assert codes(b) == ["bad-name"]
        f = finding(b, "bad-name")
        assert f.file == "INV-7/Bilagor-\\udce5"
        assert "not valid UTF-8" in f.message and "rename" in f.message
        assert layout(b)["INV-7"] == ["a.pdf"]
        assert len(b.attachments) == 1

    def test_a_subfolder_whose_name_holds_a_control_character_is_one_bad_name(
            self, outbox: Path) -> None:
        """A subfolder name with a control character is one bad-name finding, not also an
        orphan-attachment finding for the same folder."""
        write(outbox / "INV-7" / "Bilagor\x01" / "b.pdf", PDF)
        b = match(outbox, "INV-7.xml", ubl_invoice("INV-7"))
        assert codes(b) == ["bad-name"]
        assert "control character (\\x01)" in finding(b, "bad-name").message

    @pytest.mark.parametrize("char", ["\x07", "\u0085", "\u009b"])
    def test_an_attachment_with_a_c0_or_c1_control_character_is_a_bad_name(
            self, outbox: Path, char: str) -> None:
        """A file whose name holds a control character of C1 (U+0085 ends a line, U+009B
        starts a terminal's escape sequence) is refused as one of C0 is: bad-name, the
        character shown as its code, the fix; it is no attachment, and the
        attachments.toml entry that names it gives it to nothing."""
        code = f"\\x{ord(char):02x}"
        write(outbox / "INV-7" / f"a{char}.pdf", PDF)
        write(outbox / "INV-7" / "attachments.toml",
              f'[files."a\\u{ord(char):04x}.pdf"]\ntype = "Timesheet"\n'.encode())
        b = match(outbox, "INV-7.xml", ubl_invoice("INV-7"))
        self.assert_all_utf8(b)
        assert "bad-name" in codes(b) and not b.attachments
        f = finding(b, "bad-name")
        assert f.file == f"INV-7/a{code}.pdf"
        assert f"control character ({code})" in f.message and "rename" in f.message

    @pytest.mark.parametrize("char", ["\x01", "\u0085"])
    def test_a_subfolder_with_a_c0_or_c1_control_character_is_one_bad_name(
            self, outbox: Path, char: str) -> None:
        """A subfolder of a file of several invoices named with a control character, C0
        or C1, is one bad-name finding shown with the character's code, not also an
        orphan-attachment; its files are no attachments."""
        write(outbox / "B-7" / "INV-7" / "a.pdf", PDF)
        write(outbox / "B-7" / f"INV-8{char}" / "b.pdf", PDF)
        b = match(outbox, "B-7.xml", batch_xml("INV-7", "INV-8"))
        assert codes(b) == ["bad-name"]
        assert finding(b, "bad-name").file == f"B-7/INV-8\\x{ord(char):02x}"
        assert layout(b) == {"INV-7": ["a.pdf"], "INV-8": []}

    def test_an_id_folder_named_with_its_c1_character_as_older_versions_did_says_its_new_name(
            self, outbox: Path) -> None:
        """Invoice INV-\u00858's folder was INV-\u00858/ by the first rule of older
        versions, which kept C1 characters; now the rule replaces them and the folder is
        a bad-name. Its error says whose folder it is and the name to give it (INV-_8),
        not only "rename the file": a clerk upgrading has a folder to rename, not a file.
        In the outbox the new rule stands: its files are not the invoice's until renamed."""
        write(outbox / "B-7" / "INV-7" / "a.pdf", PDF)
        write(outbox / "B-7" / "INV-\u00858" / "b.pdf", PDF)
        b = match(outbox, "B-7.xml", batch_xml("INV-7", "INV-\u00858"))
        assert codes(b) == ["bad-name"]
        message = finding(b, "bad-name").message
        assert "invoice INV-\\x858" in message and "rename the folder to INV-_8" in message
        assert layout(b) == {"INV-7": ["a.pdf"], "INV-\u00858": []}  # in the outbox: not read

    def test_the_check_after_a_claim_leaves_an_old_named_id_folder_unread_as_before(
            self, outbox: Path, tmp_path: Path) -> None:
        """The check by hashes after this version's own claim (`known`) reads the work
        folder by the rules the outbox read used a moment before: INV-\u00858/ stays
        unread there too, so the bundle matches itself, never "changed while claimed"
        (only a restart's recovery reads such a folder as an older version claimed it)."""
        write(outbox / "B-7" / "INV-7" / "a.pdf", PDF)
        write(outbox / "B-7" / "INV-\u00858" / "b.pdf", PDF)
        cand = candidate(outbox, "B-7.xml", batch_xml("INV-7", "INV-\u00858"))
        s = settings(outbox)
        before = assemble(cand, s)
        work = tmp_path / "processing" / "B-7--w"
        work.mkdir(parents=True)
        for name in ("B-7.xml", "B-7"):
            (outbox / name).rename(work / name)
        claimed = Candidate("B-7", work / "B-7.xml", work / "B-7", work / "B-7.ready")
        again = assemble(claimed, s, known=before)
        assert layout(again) == layout(before) == {"INV-7": ["a.pdf"], "INV-\u00858": []}
        assert again.unread_ids == before.unread_ids == ("INV-\u00858",)

    def test_an_older_claim_with_an_ids_folder_under_its_old_and_new_name_is_read_whole(
            self, outbox: Path, tmp_path: Path) -> None:
        """A work folder an older version claimed, holding invoice INV-\u00858's files both
        in INV-\u00858/ (its name then) and INV-_8/ (its name now), read at recovery: the
        old folder's bad-name is the one error, both folders' files are the invoice's —
        not an id-two-folders beside it, and no crash."""
        work = tmp_path / "processing" / "B-7--w"
        write(work / "B-7" / "INV-\u00858" / "b.pdf", PDF)
        write(work / "B-7" / "INV-_8" / "c.pdf", PDF)
        write(work / "B-7.xml", batch_xml("INV-7", "INV-\u00858"))
        cand = Candidate("B-7", work / "B-7.xml", work / "B-7", work / "B-7.ready")
        b = assemble(cand, settings(outbox))
        assert codes(b) == ["bad-name"]
        assert layout(b) == {"INV-7": [], "INV-\u00858": ["b.pdf", "c.pdf"]}

    def test_an_attachment_whose_name_holds_escape_sequences_is_shown_escaped(
            self, outbox: Path) -> None:
        """A file named with a newline and a terminal escape sequence is a bad-name finding
        whose file shows them as \\xNN: no control character reaches REASON.txt, the
        journal or the terminal of `outboxd status`."""
        write(outbox / "INV-7" / "a\n\x1b[31mb.pdf", PDF)
        b = match(outbox, "INV-7.xml", ubl_invoice("INV-7"))
        assert codes(b) == ["bad-name"]
        assert finding(b, "bad-name").file == "INV-7/a\\x0a\\x1b[31mb.pdf"

    def test_an_attachment_whose_name_is_not_utf8_is_shown_as_the_scanner_shows_it(
            self, outbox: Path) -> None:
        """A file b'scan-\\xe5.pdf' in the sidecar is a bad-name finding naming
        INV-7/scan-\\udce5.pdf (the byte escaped, as in the log of refused invoice files),
        not a lossy 'scan-?.pdf' that could name either of two files."""
        write(raw_path(outbox, b"INV-7", b"scan-\xe5.pdf"), PDF)
        b = match(outbox, "INV-7.xml", ubl_invoice("INV-7"))
        assert codes(b) == ["bad-name"]
        assert finding(b, "bad-name").file == "INV-7/scan-\\udce5.pdf"
        self.assert_all_utf8(b)


class TestFoldersSwappedForLinks:
    """A share user swaps a folder of the bundle for a link to a folder outside the outbox
    (holding files of the same names) after matching looked at it and before it opens
    what is in it. Nothing outside is listed, opened, hashed or parsed: every folder is
    opened from the one above it and held, every file from the folder held (inotify on
    the outside folder is the witness). The swap changes the bundle's snapshot, so it
    is read again, and then finds the link where the sidecar was."""

    @pytest.fixture
    def outside(self, tmp_path: Path) -> Path:
        folder = tmp_path / "outside"
        write(folder / "a.pdf", PDF + b"secret")
        write(folder / "b.pdf", PDF + b"secret")
        write(folder / "attachments.toml", b'channel = "original-print"\n')
        return folder

    def test_a_work_folder_swapped_for_a_link_is_never_read_by_the_check_after_a_claim(
            self, outbox: Path, tmp_path: Path) -> None:
        """The check by hashes after a claim (assemble with `known`), its work folder
        swapped for a link to a copy of the bundle outside: an error naming the invoice
        file and that the work folder is a link (the claim is then undone, and the
        bundle quarantined as stuck), never a match read where the link leads."""
        work = tmp_path / "processing" / "INV-1--w"
        write(work / "INV-1" / "a.pdf", PDF)
        write(work / "INV-1.xml", ubl_invoice("INV-1"))
        cand = Candidate("INV-1", work / "INV-1.xml", work / "INV-1", work / "INV-1.ready")
        s = settings(outbox)
        known = assemble(cand, s)
        copy = tmp_path / "copy"
        write(copy / "INV-1" / "a.pdf", PDF)
        write(copy / "INV-1.xml", ubl_invoice("INV-1"))
        work.rename(tmp_path / "aside")
        work.symlink_to(copy)
        with opened_in(copy) as opened, pytest.raises(InputError) as refused:
            assemble(cand, s, known=known)
        assert opened == []
        assert refused.value.file == "INV-1.xml"
        assert "link" in refused.value.message

    def test_a_sidecar_swapped_after_its_check_is_never_listed(
            self, outbox: Path, outside: Path) -> None:
        """Swapped as matching goes to list it: an error that the sidecar is no folder,
        no attachment, and not even the outside folder opened."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        cand = candidate(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        with opened_in(outside) as opened, \
                swap_when_opened("INV-1", outbox / "INV-1", outside) as swapped:
            b = assemble(cand, settings(outbox))
        assert swapped, "the sidecar was never opened by its name"
        assert opened == []
        assert finding(b, "not-a-folder").file == "INV-1"
        assert b.attachments == () and b.sidecar is None

    def test_an_invoices_folder_swapped_after_the_listing_is_never_entered(
            self, outbox: Path, outside: Path) -> None:
        """batch/INV-2/ swapped after the sidecar was listed: an error of invoice INV-2
        that its folder is a link (the fix said), INV-1's attachment still matched."""
        write(outbox / "batch" / "INV-1" / "a.pdf", PDF)
        write(outbox / "batch" / "INV-2" / "b.pdf", PDF)
        cand = candidate(outbox, "batch.xml", batch_xml("INV-1", "INV-2"))
        with opened_in(outside) as opened, \
                swap_when_opened("INV-2", outbox / "batch" / "INV-2", outside) as swapped:
            b = assemble(cand, settings(outbox))
        assert swapped and opened == []
        f = finding(b, "symlink")
        assert (f.file, f.invoice_id) == ("batch/INV-2", "INV-2")
        assert "never follows links" in f.message and "put the folder itself" in f.message
        assert layout(b) == {"INV-1": ["a.pdf"], "INV-2": []}
        # Its files were not read: never told "has no attachments".
        assert b.unread_ids == ("INV-2",) and b.unattached_ids == ()

    def test_attachments_toml_is_read_from_the_folder_listed(
            self, outbox: Path, outside: Path) -> None:
        """The sidecar swapped as its attachments.toml is opened: the notes read are the
        real folder's (its channel), never the outside file of that name."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'channel = "external-print"\n')
        cand = candidate(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        with opened_in(outside) as opened, \
                swap_when_opened("attachments.toml", outbox / "INV-1", outside) as swapped:
            b = assemble(cand, settings(outbox))
        assert swapped and opened == []
        assert b.channel == "external-print" and b.errors == ()

    def test_an_attachment_is_hashed_in_the_folder_listed(
            self, outbox: Path, outside: Path) -> None:
        """The sidecar swapped as an attachment is opened for its hash: the hash is the real
        file's, the outside file of the same name never opened."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        cand = candidate(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        with opened_in(outside) as opened, \
                swap_when_opened("a.pdf", outbox / "INV-1", outside) as swapped:
            b = assemble(cand, settings(outbox))
        assert swapped and opened == []
        [att] = b.attachments
        assert att.sha256 == hashlib.sha256(PDF).hexdigest() and att.size == len(PDF)

    def test_the_invoice_file_and_sidecar_are_read_from_the_one_folder_held(
            self, outbox: Path, outside: Path) -> None:
        """After a claim the bundle is matched again in its work folder: a work folder
        swapped for a link once its invoice file was read is not followed for the
        sidecar (the folder holding the invoice file is opened once, and the sidecar
        from it), so the bundle read is the real one."""
        work = outbox.parent / "processing" / "work-1"
        write(work / "INV-1" / "a.pdf", PDF)
        write(outside / "INV-1" / "a.pdf", PDF + b"secret")
        write(outside / "INV-1.xml", ubl_invoice("INV-9"))
        cand = candidate(work, "INV-1.xml", ubl_invoice("INV-1"))
        with opened_in(outside) as opened, opened_in(outside / "INV-1") as inside, \
                swap_when_opened("INV-1.xml", work, outside) as swapped:
            b = assemble(cand, settings(outbox))
        assert swapped and opened == [] and inside == []
        assert b.invoice_ids == ("INV-1",)
        [att] = b.attachments
        assert att.sha256 == hashlib.sha256(PDF).hexdigest()


def test_every_code_of_matching_and_of_opening_a_bundles_files_is_in_the_folder_convention(
        ) -> None:
    """A clerk reads `[not-a-folder]` in REASON.txt or in `outboxd check`'s output: each
    code that matching, attachments.toml and the opening of a bundle's files give is
    named in docs/folder-convention.md, beside the rule it stands for."""
    daemon = Path(match_module.__file__).parent.parent
    source = "".join((daemon / name).read_text("utf-8")
                     for name in ("fs/fsops.py", "reading/match.py", "reading/folderfiles.py",
                                  "reading/notes.py", "reading/lookalikes.py"))
    codes = set(re.findall(r'(?:_err|_error|InputError|HostileInput)\("([a-z-]+)"', source))
    assert {"symlink", "not-a-folder", "unreadable-folder"} <= codes
    doc = (daemon.parent / "docs" / "folder-convention.md").read_text("utf-8")
    assert sorted(c for c in codes if f"`{c}`" not in doc) == []


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _limit_with_free(free: int) -> int:
    """The RLIMIT_NOFILE under which exactly `free` more descriptors can be open at once
    (the kernel gives the lowest free numbers below the limit), set in force. Counted
    from /proc/self/fd, then tried: a number may be taken without showing there (a
    thread blocked in accept() holds the one of its connection to come), and what came
    before this test must not change how many it has to spare."""
    used = {int(n) for n in os.listdir("/proc/self/fd")}
    used = {fd for fd in used if _is_open(fd)}  # not the listing's own, closed by now
    limit, left = 0, free
    while left or limit in used:
        if limit not in used:
            left -= 1
        limit += 1
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    while (spare := _spare_under(limit, hard)) != free:
        limit += free - spare
    return limit


def _spare_under(limit: int, hard: int) -> int:
    """How many descriptors can be opened at once under the soft limit `limit` (left
    set): opened, up to one more than any test asks for, and closed again."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    probes: list[int] = []
    try:
        while len(probes) <= 5:
            probes.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            raise
    finally:
        for fd in probes:
            os.close(fd)
    return len(probes)


def _marked(outbox: Path, stem: str, suffix: str, invoice: bytes) -> tuple[Candidate, Settings]:
    """STEM.xml with its marker STEM+suffix in the outbox, and settings of marker
    completion with that suffix."""
    write(outbox / f"{stem}{suffix}", b"")
    cand = Candidate(stem, write(outbox / f"{stem}.xml", invoice), outbox / stem,
                     outbox / f"{stem}{suffix}")
    return cand, settings(outbox, outbox={"completion": "marker", "marker_suffix": suffix})


@pytest.mark.parametrize("free", [1, 2, 3, 4])
def test_matching_a_large_sidecar_holds_five_descriptors_and_leaks_none(
        outbox: Path, free: int) -> None:
    """A sidecar of 40 invoices' folders of 25 files each is matched with five
    descriptors open at most (the outbox, the sidecar, one invoice's folder, and a
    listing or one file: its look-only handle and, a moment, its reading — fsops never
    opens a FIFO or device), never one per file or folder. With fewer to spare (a daemon at its
    `ulimit -n`), matching fails with the OSError EMFILE, which the daemon retries,
    not with a finding about the bundle, and every folder it opened is closed again."""
    ids = [f"INV-{n:02d}" for n in range(40)]
    for i in ids:
        for k in range(25):
            write(outbox / "batch" / i / f"page-{k:02d}.pdf", PDF + f"{i}-{k}".encode())
    cand = candidate(outbox, "batch.xml", batch_xml(*ids))
    s = settings(outbox)
    # What earlier tests left for the collector (a journal, a socket) must not be
    # closed in the middle of this count.
    gc.collect()
    gc.disable()
    before = sorted(fd for fd in map(int, os.listdir("/proc/self/fd")) if _is_open(fd))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_limit_with_free(5), hard))
        b = assemble(cand, s)
        resource.setrlimit(resource.RLIMIT_NOFILE, (_limit_with_free(free), hard))
        failed = raised(lambda: assemble(cand, s))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        gc.enable()
    assert b.errors == () and len(b.attachments) == 1000
    assert isinstance(failed, OSError) and not isinstance(failed, InputError)
    assert failed.errno == errno.EMFILE
    assert sorted(fd for fd in map(int, os.listdir("/proc/self/fd")) if _is_open(fd)) == before


def test_a_sidecar_or_marker_at_a_papers_name_in_other_case_is_a_paper_name_error(
        outbox: Path) -> None:
    """Reason.TXT.xml's sidecar Reason.TXT/ is REASON.txt on a case-insensitive share (an
    SMB mount, a Mac): outboxd's REASON.txt would meet it, so it is `paper-name` as the
    exact name is; so is a marker Receipt.JSON of Receipt.xml. The message says the case
    differs and why that does not help."""
    invoice = ubl_invoice("INV-1")
    write(outbox / "Reason.TXT" / "a.pdf", PDF)
    found = finding(match(outbox, "Reason.TXT.xml", invoice), "paper-name")
    assert found.file == "Reason.TXT"
    assert "outboxd keeps for its own papers" in found.message
    assert "takes Reason.TXT and REASON.txt for one name" in found.message
    assert "rename Reason.TXT.xml and its attachments folder alike" in found.message

    cand, marker = _marked(outbox, "Receipt", ".JSON", invoice)
    assert [f.file for f in assemble(cand, marker).errors] == ["Receipt.JSON"]


def test_a_sidecar_at_a_papers_name_the_share_fails_to_look_at_is_read_again(
        outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The look whether REASON.txt.xml's sidecar REASON.txt/ is there fails (the share's
    EIO): no verdict, the read raises, naming the folder, to be read again
    (fsops.read_again_later). Taken for "not there", the bundle went on without its
    `paper-name` error, and its move into the archive met that very name."""
    write(outbox / "REASON.txt" / "a.pdf", PDF)
    looks_fail(monkeypatch, outbox / "REASON.txt")
    with pytest.raises(OSError) as failed:
        match(outbox, "REASON.txt.xml", ubl_invoice("INV-1"))
    assert failed.value.errno == errno.EIO and failed.value.filename == "REASON.txt"
    assert read_again_later(failed.value)


def test_a_sidecar_or_marker_at_an_archive_papers_name_is_a_paper_name_error(
        outbox: Path) -> None:
    """REASON.txt.xml's sidecar is REASON.txt/: in the work folder and the archive entry it
    would lie where outboxd writes REASON.txt, which it never writes over, so the bundle
    gets `paper-name` naming the folder and saying to rename both alike. Without the
    folder nothing collides; an attachment named REASON.txt lies inside the sidecar,
    where no paper goes, and is sent as any attachment. Under completion = "marker" a
    marker at a paper's name (marker_suffix ".json": reason.json of reason.xml) is one too."""
    invoice = ubl_invoice("INV-1")
    assert codes(match(outbox, "REASON.txt.xml", invoice)) == []
    write(outbox / "REASON.txt" / "a.pdf", PDF)
    bundle = match(outbox, "REASON.txt.xml", invoice)
    assert codes(bundle) == ["paper-name"]
    found = finding(bundle, "paper-name")
    assert found.file == "REASON.txt"
    assert "outboxd keeps for its own papers" in found.message
    assert "rename REASON.txt.xml and its attachments folder alike" in found.message

    write(outbox / "INV-2" / "REASON.txt", PDF)
    bundle = match(outbox, "INV-2.xml", ubl_invoice("INV-2"))
    assert codes(bundle) == [] and layout(bundle) == {"INV-2": ["REASON.txt"]}

    cand, marker = _marked(outbox, "reason", ".json", invoice)
    assert [f.file for f in assemble(cand, marker).errors] == ["reason.json"]
    assert codes(assemble(cand, settings(outbox))) == []


class TestChannelOfSeveralInvoices:
    """A file of several invoices goes out whole, on one channel (docs/folder-convention.md,
    attachments.toml)."""

    def test_a_channel_set_for_one_invoice_only_is_an_error_naming_the_others(
            self, outbox: Path) -> None:
        """external-print in INV-2001's folder alone would print INV-2002 too, whose folder
        sets nothing (before, the whole file silently went to print): an error at that
        attachments.toml naming INV-2002 and both fixes."""
        write(outbox / "batch-42" / "INV-2001" / "scan.pdf", PDF)
        write(outbox / "batch-42" / "INV-2001" / "attachments.toml",
              b'channel = "external-print"\n')
        write(outbox / "batch-42" / "INV-2002" / "spec.pdf", PDF)
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
        f = finding(b, "attachments-toml-invalid")
        assert f.file == "batch-42/INV-2001/attachments.toml"
        assert f.invoice_id == "INV-2001"
        assert f.message == (
            "sets channel = 'external-print' for INV-2001 only, but the invoice file holds "
            "several invoices and goes out whole on one channel: INV-2002 would go out on "
            "it too — if every invoice of the file is meant for external-print, set it in "
            "batch-42/attachments.toml instead; if not, have the ERP export INV-2001 in a "
            "file of its own")

    @pytest.mark.parametrize("files", [
        {"attachments.toml": b'channel = "external-print"\n'},
        {"INV-2001/attachments.toml": b'channel = "external-print"\n',
         "INV-2002/attachments.toml": b'channel = "external-print"\n'},
    ], ids=["in-the-root", "in-every-invoices-folder"])
    def test_a_channel_meant_for_every_invoice_of_the_file_is_taken(
            self, outbox: Path, files: dict[str, bytes]) -> None:
        for name, data in {"INV-2001/scan.pdf": PDF, "INV-2002/spec.pdf": PDF,
                           **files}.items():
            write(outbox / "batch-42" / name, data)
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
        assert b.errors == () and b.channel == "external-print"

    def test_the_configured_channel_set_for_one_invoice_changes_nothing_and_is_taken(
            self, outbox: Path) -> None:
        write(outbox / "batch-42" / "INV-2001" / "attachments.toml", b'channel = "e-invoice"\n')
        write(outbox / "batch-42" / "INV-2001" / "scan.pdf", PDF)
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
        assert b.errors == () and b.channel == "e-invoice"


class TestTooManyAttachments:
    def test_a_bundle_over_max_attachments_is_refused_by_its_listing_unread(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """More files than [validation] max_attachments (3 here) in a sidecar, its root and
        its invoices' folders together, is too-many-attachments on the sidecar, naming
        the count, where those files lie, the key and the fix, and no file of it is
        opened: 100,000 files went out as one POST of 100,000 parts, each read first."""
        for n in range(2):
            write(outbox / "batch-1" / "A-1" / f"a{n}.pdf", PDF)
            write(outbox / "batch-1" / "A-2" / f"b{n}.pdf", PDF)
        monkeypatch.setattr("daemon.reading.folderfiles.open_in", None)  # any open fails
        b = match(outbox, "batch-1.xml", batch_xml("A-1", "A-2"),
                  validation={"max_attachments": 3})
        f = finding(b, "too-many-attachments")
        assert (f.file, f.invoice_id, b.attachments) == ("batch-1", None, ())
        # Not read, so not known to have none: no wait or release for want of them.
        assert (b.unread_ids, b.unattached_ids) == (("A-1", "A-2"), ())
        assert f.message == (
            "holds 4 files to send (in batch-1/A-1/ and batch-1/A-2/), more than the 3 "
            "attachments one bundle may have ([validation] max_attachments) — combine them "
            "into fewer files (one PDF of many pages), or "
            "split the bundle: export its invoices in several invoice files, each with its "
            "own folder; or ask the admin to raise the limit")

    def test_one_invoice_over_max_attachments_is_not_told_to_split_into_invoices(
            self, outbox: Path) -> None:
        """A file of one invoice cannot be exported as several: its fix is to combine the
        files (or the admin's limit), not to split the bundle into invoice files."""
        for n in range(4):
            write(outbox / "INV-1" / f"a{n}.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"), validation={"max_attachments": 3})
        assert finding(b, "too-many-attachments").message == (
            "holds 4 files to send (in INV-1/), more than the 3 attachments one bundle may "
            "have ([validation] max_attachments) — combine them into fewer files (one PDF of "
            "many pages); or ask the admin to raise the limit")

    def test_exactly_max_attachments_is_taken_and_litter_does_not_count(
            self, outbox: Path) -> None:
        """The limit itself is allowed; desktop litter and attachments.toml, which are
        never attachments, are not counted."""
        for n in range(3):
            write(outbox / "INV-1" / f"a{n}.pdf", PDF)
        write(outbox / "INV-1" / "Thumbs.db", b"x")
        write(outbox / "INV-1" / ".DS_Store", b"x")
        write(outbox / "INV-1" / "attachments.toml", b"")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"), validation={"max_attachments": 3})
        assert b.errors == ()
        assert layout(b) == {"INV-1": ["a0.pdf", "a1.pdf", "a2.pdf"]}

    def test_files_in_a_folder_of_no_invoice_do_not_count_and_are_told_as_orphans(
            self, outbox: Path) -> None:
        """Orphan files are not sent, so they do not count toward max_attachments: two
        attachments beside a folder of no invoice holding five files (limit 3) were
        refused as too-many-attachments, and the clerk told to combine files, when the
        fix was to move that folder's files; now the folder is orphan-attachment and the
        two are read."""
        for n in range(2):
            write(outbox / "INV-1" / f"a{n}.pdf", PDF)
        for n in range(5):
            write(outbox / "INV-1" / "misc" / f"m{n}.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"), validation={"max_attachments": 3})
        assert codes(b) == ["orphan-attachment"]
        assert finding(b, "orphan-attachment").file == "INV-1/misc"
        assert layout(b) == {"INV-1": ["a0.pdf", "a1.pdf"]}

    def test_a_batch_counts_its_invoices_folders_not_its_root_or_other_folders(
            self, outbox: Path) -> None:
        """A file of several invoices sends only what lies in its invoices' folders:
        three files in A-1/ with three in the root and three in a folder of no invoice
        (limit 3) are each told as orphans, not the bundle as too-many-attachments."""
        for n in range(3):
            write(outbox / "batch-1" / "A-1" / f"a{n}.pdf", PDF)
            write(outbox / "batch-1" / f"r{n}.pdf", PDF)
            write(outbox / "batch-1" / "Z-9" / f"z{n}.pdf", PDF)
        b = match(outbox, "batch-1.xml", batch_xml("A-1", "A-2"),
                  validation={"max_attachments": 3})
        assert "too-many-attachments" not in codes(b)
        assert sorted(f.file for f in b.errors) == [
            "batch-1/Z-9", "batch-1/r0.pdf", "batch-1/r1.pdf", "batch-1/r2.pdf"]
        assert layout(b) == {"A-1": ["a0.pdf", "a1.pdf", "a2.pdf"], "A-2": []}

    def test_a_folder_two_ids_share_does_not_count(self, outbox: Path) -> None:
        """A folder that could be either of two ids' (CON_ of 'CON' and 'CON_') sends
        nothing: its files do not count toward max_attachments, and its error is the
        collision, not too-many-attachments."""
        for n in range(4):
            write(outbox / "coll" / "CON_" / f"b{n}.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("CON", "CON_"),
                  validation={"max_attachments": 3})
        assert codes(b) == ["id-folder-collision"]

    def test_a_batch_root_over_the_limit_is_one_orphan_error_by_its_listing_unread(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """More files than max_attachments in the root of a file of several invoices:
        none is sent, and each would be read and told as an orphan of its own: one
        orphan-attachment on the sidecar says how many and where they go, and no file is
        opened (the bound the count of the listing kept before, for what is not sent)."""
        for n in range(4):
            write(outbox / "batch-1" / f"r{n}.pdf", PDF)
        write(outbox / "batch-1" / "A-1" / "a.pdf", PDF)
        monkeypatch.setattr("daemon.reading.folderfiles.open_in", None)  # any open fails
        b = match(outbox, "batch-1.xml", batch_xml("A-1", "A-2"),
                  validation={"max_attachments": 3})
        assert codes(b) == ["orphan-attachment"] and b.attachments == ()
        assert finding(b, "orphan-attachment").message == (
            "holds 4 files in its root, more than the 3 attachments one bundle may have "
            "([validation] max_attachments), and none of them is sent: this file holds "
            "several invoices (A-1, A-2), whose attachments go into the subfolder of each — "
            "move the files into the subfolders of their invoices")

    def test_the_message_names_the_first_three_folders_and_how_many_more(
            self, outbox: Path) -> None:
        """A batch of five invoices over the limit: where the files to send lie, the
        first three folders and how many more, not a line of every folder."""
        ids = [f"A-{n}" for n in range(5)]
        for i in ids:
            write(outbox / "batch-1" / i / "a.pdf", PDF)
        b = match(outbox, "batch-1.xml", batch_xml(*ids), validation={"max_attachments": 3})
        assert finding(b, "too-many-attachments").message.startswith(
            "holds 5 files to send (in batch-1/A-0/, batch-1/A-1/, batch-1/A-2/ and 2 more "
            "folders), more than the 3 attachments")

    def test_the_default_is_1000(self, outbox: Path) -> None:
        """Without the key, 1,000 attachments are the most one bundle may have."""
        assert settings(outbox).validation.max_attachments == 1_000


class TestSeveralFoldersNamedAsOlderVersionsDid:
    def test_each_old_named_folder_is_told_its_own_invoice_and_new_name(
            self, outbox: Path) -> None:
        """Two invoices' folders both named with their C1 character, as older versions
        named them (INV-\u00858/ and INV-\u00859/): each folder's bad-name says its own
        invoice and the name to give it — the second folder's words never land on the
        first's error, nor the first's fix go unsaid."""
        write(outbox / "B-7" / "INV-\u00858" / "a.pdf", PDF)
        write(outbox / "B-7" / "INV-\u00859" / "b.pdf", PDF)
        b = match(outbox, "B-7.xml", batch_xml("INV-\u00858", "INV-\u00859"))
        said = {f.file: f.message for f in b.findings if f.code == "bad-name"}
        assert sorted(said) == ["B-7/INV-\\x858", "B-7/INV-\\x859"]
        for n in "89":
            message = said[f"B-7/INV-\\x85{n}"]
            assert f"invoice INV-\\x85{n} as older versions" in message
            assert f"rename the folder to INV-_{n}" in message
            assert message.count("older versions") == 1


@pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE])
def test_a_sidecar_the_share_cannot_look_at_is_not_read_as_none(
        outbox: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """The share fails the lstat of the sidecar while the bundle is read (an I/O error, a
    stale handle): whether it is there is not known, so the read raises and the bundle is
    read again later; read as a bundle without a sidecar, its invoice was judged (under
    `unattached = "send"`, sent) without its attachments."""
    write(outbox / "INV-1" / "a.pdf", PDF)
    real_stat = os.stat

    def failing(path: Any, *args: Any, **kw: Any) -> os.stat_result:
        if path == "INV-1" and kw.get("dir_fd") is not None:
            raise OSError(code, os.strerror(code))
        return real_stat(path, *args, **kw)
    monkeypatch.setattr(os, "stat", failing)
    with pytest.raises(OSError) as info:
        match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
    assert not isinstance(info.value, InputError)
    assert (info.value.errno, info.value.filename) == (code, "INV-1")
