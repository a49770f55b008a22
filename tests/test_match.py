"""Matching a sidecar folder to the invoices of its invoice file (docs/folder-convention.md,
section 3)."""

from __future__ import annotations

import errno
import gc
import hashlib
import os
import re
import resource
import threading
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from helpers import UBL_NS, pdf_bytes, raised, ubl_invoice, write
from swaps import opened_in, swap_when_opened

from daemon import match as match_module
from daemon.bundle import Bundle, Finding
from daemon.config import Settings
from daemon.errors import InputError
from daemon.match import assemble
from daemon.scan import Candidate, list_outbox

PDF = pdf_bytes()


def batch_xml(*ids: str) -> bytes:
    """One XML file holding several UBL invoices in a wrapper element."""
    inner = "".join(f"<Invoice {UBL_NS}><cbc:ID>{i}</cbc:ID></Invoice>" for i in ids)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>{inner}</Batch>\n'.encode()


@pytest.fixture
def outbox(tmp_path: Path) -> Path:
    folder = tmp_path / "outbox"
    folder.mkdir()
    return folder


def settings(outbox: Path, /, **sections: dict[str, Any]) -> Settings:
    base: dict[str, dict[str, Any]] = {
        "outbox": {"path": str(outbox)},
        "paths": {"state_dir": str(outbox.parent / "state")},
        "delivery": {"url": "http://127.0.0.1:9/x"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings(**base)


def candidate(outbox: Path, invoice_name: str, data: bytes) -> Candidate:
    invoice = write(outbox / invoice_name, data)
    name = Path(invoice_name).stem
    return Candidate(name, invoice, outbox / name, outbox / f"{name}.ready")


def match(outbox: Path, invoice_name: str, data: bytes, /, **sections: dict[str, Any]) -> Bundle:
    return assemble(candidate(outbox, invoice_name, data), settings(outbox, **sections))


def layout(bundle: Bundle) -> dict[str, list[str]]:
    """invoice id -> sorted attachment names."""
    return {i: sorted(a.original_name for a in bundle.attachments_of(i))
            for i in bundle.invoice_ids}


def codes(bundle: Bundle) -> list[str]:
    return sorted(f.code for f in bundle.errors)


def finding(bundle: Bundle, code: str) -> Finding:
    hits = [f for f in bundle.findings if f.code == code]
    assert hits, f"no {code} finding among {bundle.findings}"
    return hits[0]


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
                             "attachments go directly in INV-1/ — move the files of October/ "
                             "up into INV-1/ and remove the empty folder (or rename it to "
                             "INV-1)")

    @pytest.mark.parametrize("ids", [("Fäktura-8",), ("Fäktura-8", "Fäktura-9")])
    def test_id_folder_written_by_a_mac_is_that_invoices(self, outbox: Path,
                                                          ids: tuple[str, ...]) -> None:
        """A Mac writes the folder it names with its accents decomposed (NFD), the ERP the
        id composed (NFC): the folder looks the same and is that invoice's folder, not an
        orphan whose fix ("rename it to Fäktura-8") a clerk could not follow."""
        for i in ids:
            write(outbox / "batch" / unicodedata.normalize("NFD", i) / "tid.pdf", PDF)
        b = match(outbox, "batch.xml", batch_xml(*ids) if len(ids) > 1 else ubl_invoice(ids[0]))
        assert b.errors == ()
        assert layout(b) == {i: ["tid.pdf"] for i in ids}

    @pytest.mark.parametrize("ids", [("A", "B"), ("INV-1",)], ids=["several", "one"])
    def test_a_synology_eadir_folder_is_ignored_once_named_in_ignore_patterns(
            self, outbox: Path, ids: tuple[str, ...]) -> None:
        """A Synology NAS makes @eaDir/ (its thumbnails) in every folder it indexes: in the
        sidecar and in an invoice's folder. Unlisted, the one in the sidecar is an
        orphan-attachment; with [outbox] ignore_patterns = ["@eaDir"], as
        folder-convention.md advises, neither is an error nor an attachment."""
        sidecar = outbox / "INV-1"
        thumb = Path("@eaDir") / "scan.pdf" / "SYNOFILE_THUMB_M.jpg"
        for i in ids if len(ids) > 1 else ():
            write(sidecar / i / "scan.pdf", PDF)
            write(sidecar / i / thumb, b"\xff\xd8\xff")
        if len(ids) == 1:
            write(sidecar / "scan.pdf", PDF)
        write(sidecar / thumb, b"\xff\xd8\xff")
        data = batch_xml(*ids) if len(ids) > 1 else ubl_invoice(ids[0])
        b = match(outbox, "INV-1.xml", data)
        assert {(f.code, f.file) for f in b.errors} == {
            ("orphan-attachment", "INV-1/@eaDir"),
            *(("nested-too-deep", f"INV-1/{i}/@eaDir") for i in ids if len(ids) > 1)}
        b = match(outbox, "INV-1.xml", data, outbox={"ignore_patterns": ["@eaDir"]})
        assert b.findings == ()
        assert layout(b) == {i: ["scan.pdf"] for i in ids}

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

    @pytest.mark.parametrize("data", [ubl_invoice("INV-8"), PDF, b"INV-8;100;SEK\n"],
                             ids=["xml", "pdf", "other"])
    def test_invoice_too_large_for_memory_is_read_the_same(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
        """An invoice file over the in-memory size (hashed in chunks, read again for its
        ids) gives the same size, hash, format and ids as one read once."""
        write(outbox / "INV-8" / "a.pdf", PDF)
        once = match(outbox, "INV-8.xml", data)
        monkeypatch.setattr(match_module, "MAX_INVOICE_IN_MEMORY", len(data) - 1)
        twice = match(outbox, "INV-8.xml", data)
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

    def test_invoice_folder_in_other_case_says_so(self, outbox: Path) -> None:
        """inv-2001/ beside an id INV-2001: one name to Windows, two to Linux."""
        write(outbox / "batch-42" / "inv-2001" / "x.pdf", PDF)
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
        f = finding(b, "orphan-attachment")
        assert f.file == "batch-42/inv-2001"
        assert "looks like the folder of invoice INV-2001" in f.message
        assert "upper and lower case" in f.message and "rename it to INV-2001" in f.message
        assert "Unicode" not in f.message

    def test_unsafe_id_matches_its_folder_name(self, outbox: Path) -> None:
        """An id with '/' and '|' matches the folder with those replaced; the manifest keeps it."""
        gr = "061828591|01/10/2020|0|1.1|0|1"
        write(outbox / "gr" / "061828591_01_10_2020_0_1.1_0_1" / "a.pdf", PDF)
        write(outbox / "gr" / "INV-2" / "b.pdf", PDF)
        b = match(outbox, "gr.xml", batch_xml(gr, "INV-2"))
        assert b.errors == ()
        assert layout(b) == {gr: ["a.pdf"], "INV-2": ["b.pdf"]}

    def test_the_folder_of_an_id_that_begins_with_a_dot_is_that_invoices(
            self, outbox: Path) -> None:
        """An invoice id that begins with a dot names a folder that reads as a dot-file: it
        is still that invoice's folder, so its attachments are matched, not left out and
        the invoice taken for one without attachments. Another dot-folder stays litter."""
        write(outbox / "dots" / "..secret" / "a.pdf", PDF)
        write(outbox / "dots" / ".._.._etc" / "b.pdf", PDF)
        write(outbox / "dots" / ".thumbnails" / "c.png", PDF)
        b = match(outbox, "dots.xml", batch_xml("..secret", "../../etc"))
        assert b.errors == ()
        assert layout(b) == {"..secret": ["a.pdf"], "../../etc": ["b.pdf"]}
        assert b.unattached_ids == ()

    def test_ids_that_differ_only_in_how_accents_are_written_collide_and_say_so(
            self, outbox: Path) -> None:
        """An id's folder is matched in either Unicode form, so two ids of one file that
        differ only in that (they print the same) would share one folder: the error says
        how they differ, not "'Å-1' and 'Å-1' map to the same folder name"."""
        nfc, nfd = (unicodedata.normalize(f, "Å-1") for f in ("NFC", "NFD"))
        write(outbox / "coll" / nfc / "a.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml(nfc, nfd))
        f = finding(b, "id-folder-collision")
        assert f.file == "coll"
        assert "differ only in how accents are written" in f.message
        assert "give the invoices distinct ids" in f.message

    def test_an_id_folder_in_other_case_and_unicode_form_is_told_the_case_alone(
            self, outbox: Path) -> None:
        """A Mac's decomposed 'å-1/' for the id 'Å-1': the Unicode form does not count for an
        id's folder, so the message speaks of upper and lower case only (renamed on the
        Mac, it matches), not of accents the clerk need not and cannot retype."""
        write(outbox / "batch" / unicodedata.normalize("NFD", "å-1") / "x.pdf", PDF)
        nfc = unicodedata.normalize("NFC", "Å-1")
        b = match(outbox, "batch.xml", batch_xml(nfc, "X-2"))
        f = finding(b, "orphan-attachment")
        assert f"looks like the folder of invoice {nfc}" in f.message
        assert "differ only in upper and lower case" in f.message
        assert "Unicode" not in f.message and "accents" not in f.message

    def test_id_folder_collision(self, outbox: Path) -> None:
        """Ids that map to one folder name ('A/1' and 'A:1') are an error naming both."""
        write(outbox / "coll" / "A_1" / "a.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("A/1", "A:1"))
        f = finding(b, "id-folder-collision")
        assert "'A/1'" in f.message and "'A:1'" in f.message and "A_1" in f.message
        assert f.file == "coll"

    def test_an_id_ending_in_a_dot_has_a_folder_a_windows_clerk_can_make(
            self, outbox: Path) -> None:
        """Windows drops the dot at the end of "INV-1.": the clerk's folder for that id
        would come out as "INV-1", which names no invoice. The id's folder is "INV-1_"
        (as for a '/' in an id), and that is where the status page sends the clerk."""
        from daemon.names import attachment_folders
        write(outbox / "b" / "INV-1_" / "a.pdf", PDF)
        write(outbox / "b" / "INV-2" / "b.pdf", PDF)
        b = match(outbox, "b.xml", batch_xml("INV-1.", "INV-2"))
        assert b.errors == ()
        assert layout(b) == {"INV-1.": ["a.pdf"], "INV-2": ["b.pdf"]}
        assert attachment_folders("b", b.invoice_ids, ("INV-1.",)) == ["b/INV-1_"]

    def test_a_device_name_or_invisible_character_in_an_id_gives_a_folder_a_clerk_can_make(
            self, outbox: Path) -> None:
        """Windows cannot make or open a folder CON (nor nul.txt): the id CON's folder is
        CON_, nul.txt's nul_.txt. An id holding a zero-width space would give a folder
        that looks like another id's: its folder shows '_' there. Those folders are the
        ids' attachments, and the status page names them."""
        from daemon.names import attachment_folders
        ids = ("CON", "nul.txt", "INV-\u200b7")
        write(outbox / "b" / "CON_" / "a.pdf", PDF)
        write(outbox / "b" / "nul_.txt" / "b.pdf", PDF)
        write(outbox / "b" / "INV-_7" / "c.pdf", PDF)
        b = match(outbox, "b.xml", batch_xml(*ids))
        assert b.errors == ()
        assert layout(b) == {"CON": ["a.pdf"], "nul.txt": ["b.pdf"], "INV-\u200b7": ["c.pdf"]}
        assert attachment_folders("b", b.invoice_ids, ids) == [
            "b/CON_", "b/nul_.txt", "b/INV-_7"]


    @pytest.mark.parametrize("invoice_id,folder", [
        ("CON", "CON_"), ("CON", "CON"), ("INV-7.", "INV-7_"), ("INV-7.", "INV-7."),
        ("INV-\u200b7", "INV-_7"), ("INV-\u200b7", "INV-\u200b7"),
        ("nul.txt", "nul_.txt"), ("nul.txt", "nul.txt")])
    def test_an_ids_folder_is_found_under_the_contracts_name_and_the_windows_safe_one(
            self, outbox: Path, invoice_id: str, folder: str) -> None:
        """An ERP on Linux that makes the folders by the contract's rule (only
        / \\ : * ? " < > | and control characters replaced) makes batch/CON/, batch/INV-7./
        and a folder with the zero-width space itself; a Windows clerk makes CON_, INV-7_,
        INV-_7. Either is the invoice's folder, and the status page still names the one a
        Windows clerk can make."""
        from daemon.names import attachment_folders, folder_name_for_id
        write(outbox / "batch" / folder / "a.pdf", PDF)
        write(outbox / "batch" / "X-2" / "b.pdf", PDF)
        b = match(outbox, "batch.xml", batch_xml(invoice_id, "X-2"))
        assert b.errors == ()
        assert layout(b) == {invoice_id: ["a.pdf"], "X-2": ["b.pdf"]}
        assert attachment_folders("batch", (invoice_id, "X-2"), (invoice_id,)) == [
            f"batch/{folder_name_for_id(invoice_id)}"]

    @pytest.mark.parametrize("invoice_id,contract,safe", [
        ("CON", "CON", "CON_"), ("INV-7.", "INV-7.", "INV-7_"),
        ("INV-\u200b7", "INV-\u200b7", "INV-_7")])
    def test_an_ids_folder_under_both_its_names_is_an_error_naming_both(
            self, outbox: Path, invoice_id: str, contract: str, safe: str) -> None:
        """batch/CON/ (made by the ERP) and batch/CON_/ (made by a clerk) are both the
        folder of CON: taking one would leave the other's files behind. An error naming
        both folders and the fix, for a file of several invoices and for one of one."""
        write(outbox / "batch" / contract / "a.pdf", PDF)
        write(outbox / "batch" / safe / "b.pdf", PDF)
        f = finding(match(outbox, "batch.xml", batch_xml(invoice_id, "X-2")), "id-two-folders")
        assert f.file == f"batch/{contract}" and f.invoice_id == invoice_id
        assert f"and so is batch/{safe} (folder {safe}, or " in f.message
        assert "move the files of one into the other" in f.message

        single = match(outbox, "batch.xml", batch_xml(invoice_id))
        assert codes(single) == ["id-two-folders"]

    @pytest.mark.parametrize("folder", ["CON", "CON_"])
    def test_a_one_invoice_file_takes_its_ids_folder_under_either_name_beside_the_root(
            self, outbox: Path, folder: str) -> None:
        """A file of one invoice: its attachments may lie in the sidecar itself or in the
        folder of its id, under either name."""
        write(outbox / "one" / "root.pdf", PDF)
        write(outbox / "one" / folder / "sub.pdf", PDF)
        b = match(outbox, "one.xml", ubl_invoice("CON"))
        assert b.errors == ()
        assert layout(b) == {"CON": ["root.pdf", "sub.pdf"]}

    def test_ids_that_meet_only_in_their_windows_names_are_an_error_only_by_a_shared_folder(
            self, outbox: Path) -> None:
        """'CON' and 'CON_' are two ids to the contract (CON's folder is CON, or CON_ as a
        Windows clerk makes it; CON_'s is CON_). Without a folder CON_ nothing is
        ambiguous: CON's files in CON/ are its own. A folder CON_ could be either's: an
        id-folder-collision naming it, the ids, and where CON's files go instead; its
        files are taken as no invoice's."""
        (outbox / "coll").mkdir()
        b = match(outbox, "coll.xml", batch_xml("CON", "CON_"))
        assert b.errors == () and layout(b) == {"CON": [], "CON_": []}
        write(outbox / "coll" / "CON" / "a.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("CON", "CON_"))
        assert b.errors == () and layout(b) == {"CON": ["a.pdf"], "CON_": []}

        write(outbox / "coll" / "CON_" / "b.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("CON", "CON_"))
        [f] = b.errors
        assert (f.code, f.file) == ("id-folder-collision", "coll/CON_")
        assert "'CON' (folder CON_, or CON as a program on the server may name it)" \
            in f.message and "'CON_' (folder CON_)" in f.message
        assert f.message.endswith(
            "— move those of invoice 'CON' into a folder CON (a name a clerk cannot make on "
            "Windows: make it on the server), and remove the emptied folder CON_; invoice "
            "'CON_' has no other folder name, so for its files give the invoices distinct ids")
        assert layout(b) == {"CON": ["a.pdf"], "CON_": []}

    @pytest.mark.parametrize("ids,shared", [
        (("A.", "A_"), "A_"), (("INV\u200b7", "INV_7"), "INV_7")])
    def test_other_ids_that_meet_in_a_windows_name_collide_only_by_the_folder_there(
            self, outbox: Path, ids: tuple[str, str], shared: str) -> None:
        """'A.' and 'A_' (Windows drops the dot), 'INV' + U+200B + '7' and 'INV_7': distinct
        to the contract, one Windows name. No error until that folder is there."""
        (outbox / "coll").mkdir()
        assert match(outbox, "coll.xml", batch_xml(*ids)).errors == ()
        write(outbox / "coll" / shared / "a.pdf", PDF)
        f = finding(match(outbox, "coll.xml", batch_xml(*ids)), "id-folder-collision")
        assert f.file == f"coll/{shared}" and f"{ids[0]!r}" in f.message
        assert "is the folder of more than one invoice of this file" in f.message

    def test_ids_equal_by_the_contracts_rule_collide_whatever_folders_are_there(
            self, outbox: Path) -> None:
        """'A/1' and 'A:1' both become A_1 by the contract's own rule: an error (SPEC) even
        with no folder of theirs in the sidecar."""
        write(outbox / "coll" / "other.pdf", PDF)
        f = finding(match(outbox, "coll.xml", batch_xml("A/1", "A:1", "B")),
                    "id-folder-collision")
        assert f.file == "coll" and "map to the same folder name 'A_1'" in f.message

    def test_ids_that_differ_only_in_case_collide_as_one_folder_on_the_share(
            self, outbox: Path) -> None:
        """'INV-1' and 'inv-1' in one file: Windows, and so a clerk on the share, takes
        their folders for one, so the second can never be made there (and a file put in
        the one the clerk sees could be meant for either invoice). An error naming both
        ids and why, as for ids that map to one folder name; ids whose folder names
        differ only in case after the mapping ('A/2' and 'a:2') say those names."""
        write(outbox / "coll" / "INV-1" / "a.pdf", PDF)
        write(outbox / "coll" / "inv-1" / "b.pdf", PDF)
        b = match(outbox, "coll.xml", batch_xml("INV-1", "inv-1", "A/2", "a:2"))
        found = [f for f in b.findings if f.code == "id-folder-collision"]
        assert [f.file for f in found] == ["coll", "coll"]
        assert found[0].message == (
            "invoice ids 'INV-1' and 'inv-1' differ only in upper and lower case: Windows, "
            "and so the share, takes the two folders for one, so only one of them can be "
            "made there — give the invoices distinct ids")
        assert "'A/2' and 'a:2' map to the folder names 'A_2' and 'a_2', which differ only "\
            "in upper and lower case" in found[1].message


class TestStructure:
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
                             "deeper/ up into batch/INV-1/ and remove the empty folder")
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

    def test_litter_is_ignored(self, outbox: Path) -> None:
        """.DS_Store, Thumbs.db, desktop.ini and ._ files are neither attachments nor errors."""
        for name in (".DS_Store", "Thumbs.db", "desktop.ini", "._scan.pdf"):
            write(outbox / "INV-1" / name, b"junk")
            write(outbox / "INV-1" / "INV-1" / name, b"junk")
        write(outbox / "INV-1" / "scan.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert b.findings == ()
        assert layout(b) == {"INV-1": ["scan.pdf"]}

    def test_client_litter_on_a_share_is_ignored(self, outbox: Path) -> None:
        """What Windows and Mac clients leave beside a file on a share is neither an
        attachment nor an error: a Mac folder's "Icon\\r" (a control character in its
        name), alternate-stream files shown as "NAME:Zone.Identifier" or with ':' mapped
        to U+F03A, and an editor's "NAME~" backup — a bundle is not quarantined for them."""
        for name in ("Icon\r", "scan.pdf:Zone.Identifier", "scan.pdf\uf03aZone.Identifier",
                     "scan.pdf\uf03aAFP_AfpInfo", "attachments.toml~"):
            write(outbox / "INV-1" / name, b"[ZoneTransfer]\r\nZoneId=3\r\n")
        write(outbox / "INV-1" / "scan.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert b.findings == ()
        assert layout(b) == {"INV-1": ["scan.pdf"]}

    def test_configured_ignore_pattern(self, outbox: Path) -> None:
        """[outbox] ignore_patterns apply inside the sidecar too."""
        write(outbox / "INV-1" / "export.log", b"log")
        write(outbox / "INV-1" / "scan.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"),
                  outbox={"ignore_patterns": ["*.log"]})
        assert layout(b) == {"INV-1": ["scan.pdf"]}

    def test_symlink_in_sidecar_is_a_finding(self, outbox: Path, tmp_path: Path) -> None:
        """A symbolic link in the sidecar is an error naming it; its target is never taken."""
        secret = write(tmp_path / "secret.pdf", PDF + b"secret")
        write(outbox / "INV-1" / "real.pdf", PDF)
        (outbox / "INV-1" / "link.pdf").symlink_to(secret)
        (outbox / "INV-1" / "dirlink").symlink_to(tmp_path)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        files = {f.file: f for f in b.errors if f.code == "not-a-file"}
        assert set(files) == {"INV-1/link.pdf", "INV-1/dirlink"}
        assert "symbolic link" in files["INV-1/link.pdf"].message
        assert layout(b) == {"INV-1": ["real.pdf"]}

    def test_fifo_in_sidecar_is_a_finding_and_never_opened(self, outbox: Path) -> None:
        """A FIFO in the sidecar is an error; matching never opens it (would block forever)."""
        write(outbox / "INV-1" / "real.pdf", PDF)
        fifo = outbox / "INV-1" / "pipe.pdf"
        os.mkfifo(fifo)
        result: list[Bundle] = []
        worker = threading.Thread(target=lambda: result.append(
            match(outbox, "INV-1.xml", ubl_invoice("INV-1"))), daemon=True)
        worker.start()
        worker.join(timeout=20)
        if worker.is_alive():  # it opened the FIFO: release it so the test run can go on
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            worker.join(timeout=5)
            pytest.fail("matching opened the FIFO and blocked")
        b = result[0]
        f = finding(b, "not-a-file")
        assert f.file == "INV-1/pipe.pdf" and "FIFO" in f.message
        assert layout(b) == {"INV-1": ["real.pdf"]}

    def test_sidecar_that_is_a_symlink(self, outbox: Path, tmp_path: Path) -> None:
        """A sidecar that is a link to a folder is an error and is never followed."""
        elsewhere = tmp_path / "elsewhere"
        write(elsewhere / "a.pdf", PDF)
        (outbox / "INV-1").symlink_to(elsewhere)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "not-a-folder").file == "INV-1"
        assert b.attachments == () and b.sidecar is None

    def test_sidecar_that_is_a_file(self, outbox: Path) -> None:
        """A regular file where the sidecar folder belongs is an error."""
        write(outbox / "INV-1", b"not a folder")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "not-a-folder").file == "INV-1"

    @pytest.mark.parametrize("invoice_form,folder_form", [("NFC", "NFD"), ("NFD", "NFC")])
    def test_a_sidecar_spelled_in_another_unicode_form_is_an_error_naming_it(
            self, outbox: Path, invoice_form: str, folder_form: str) -> None:
        """The ERP names the invoice file with composed accents, a Mac clerk makes the
        folder with decomposed ones (or the other way round): the names look the same
        but are not. The folder is not taken as the sidecar (its files would be sent
        by a name that is not theirs), nor ignored (the invoice would go without the
        attachments the clerk sees beside it): an error names the folder and the fix."""
        folder = unicodedata.normalize(folder_form, "Räkning-1")
        write(outbox / folder / "a.pdf", PDF)
        b = match(outbox, unicodedata.normalize(invoice_form, "Räkning-1") + ".xml",
                  ubl_invoice("R-1"))
        f = finding(b, "sidecar-spelling")
        assert f.severity == "error" and f.file == folder
        assert f.message.startswith("this folder looks like") and "rename it" in f.message
        assert b.attachments == () and b.sidecar is None

    def test_a_look_alike_beside_the_right_sidecar_is_an_error_too(self, outbox: Path) -> None:
        """The ERP's sidecar is there and a Mac clerk made a look-alike beside it: what
        the clerk put there would stay behind, so the bundle is not valid either."""
        nfc, nfd = (unicodedata.normalize(f, "Räkning-1") for f in ("NFC", "NFD"))
        write(outbox / nfc / "a.pdf", PDF)
        write(outbox / nfd / "timesheet.pdf", PDF)
        b = match(outbox, nfc + ".xml", ubl_invoice("R-1"))
        assert finding(b, "sidecar-spelling").file == nfd
        assert layout(b) == {"R-1": ["a.pdf"]}

    def test_the_sidecar_of_a_look_alike_invoice_file_is_no_error(self, outbox: Path) -> None:
        """Two invoice files whose names look alike (the ERP's and a Mac's), each with its
        own sidecar or none: the other's sidecar is not a misspelled one of this file."""
        nfc, nfd = (unicodedata.normalize(f, "Räkning-1") for f in ("NFC", "NFD"))
        write(outbox / nfc / "a.pdf", PDF)
        write(outbox / (nfc + ".xml"), ubl_invoice("R-1"))
        b = match(outbox, nfd + ".xml", ubl_invoice("R-2"))
        assert not b.findings and b.attachments == ()

    def test_a_sidecar_named_in_other_case_is_an_error_naming_it(self, outbox: Path) -> None:
        """A Windows clerk made inv-7/ beside the ERP's INV-7.xml: one name to Windows,
        two to Linux. Found by the listing, it is the same error as a Unicode look-alike,
        its message says the names differ only in upper and lower case and what to rename
        it to; its files are not taken and not ignored."""
        write(outbox / "inv-7" / "a.pdf", PDF)
        write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
        s = settings(outbox)
        b = assemble(list_outbox(s.outbox).candidates["INV-7.xml"], s)
        f = finding(b, "sidecar-spelling")
        assert f.severity == "error" and f.file == "inv-7"
        assert f.message.startswith("this folder looks like the sidecar INV-7 of INV-7.xml, "
                                    "but the two names differ only in upper and lower case")
        assert "rename it to INV-7," in f.message and "Unicode" not in f.message
        assert b.attachments == () and b.sidecar is None

    @pytest.mark.parametrize("folder,said", [
        ("INV-7 ", "its name \"INV-7 \" has a space at the end, which the sidecar's name has not"),
        ("INV-7.", "its name \"INV-7.\" has a dot at the end, which the sidecar's name has not"),
        ("\u00a0INV-7", "its name \"\u00a0INV-7\" has a non-breaking space at the start"),
        ("INV-7.XML", "it is named like an invoice file, extension (.XML) and all")])
    def test_a_sidecar_named_with_a_space_dot_or_extension_is_an_error_naming_it(
            self, outbox: Path, folder: str, said: str) -> None:
        """`INV-7 /`, `INV-7./`, a non-breaking space, or the invoice file's name copied
        with its extension, beside INV-7.xml: the clerk sees the folder there, so the
        invoice neither goes without its files nor takes them by a name that is not the
        sidecar's — an error names the folder, what is wrong with its name, and the name
        to give it."""
        write(outbox / folder / "a.pdf", PDF)
        write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
        s = settings(outbox)
        b = assemble(list_outbox(s.outbox).candidates["INV-7.xml"], s)
        f = finding(b, "sidecar-spelling")
        assert f.severity == "error" and f.file == folder
        assert f.message.startswith(f"this folder looks like the sidecar INV-7 of INV-7.xml, "
                                    f"but {said}")
        assert "rename it to INV-7, exactly as written here, or move its files into the " \
            "folder INV-7 if that one is there too" in f.message
        assert b.attachments == () and b.sidecar is None

    def test_under_a_sidecar_suffix_the_bare_stem_folder_is_an_error_naming_the_suffix(
            self, outbox: Path) -> None:
        """[outbox] sidecar_suffix = ".att" and a clerk's INV-7/ beside INV-7.xml, as it
        would be without the suffix: an error that names the suffix and the sidecar's
        name; the sidecar INV-7.att/ beside it is still taken."""
        write(outbox / "INV-7" / "a.pdf", PDF)
        write(outbox / "INV-7.att" / "b.pdf", PDF)
        write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
        s = settings(outbox, outbox={"sidecar_suffix": ".att"})
        b = assemble(list_outbox(s.outbox).candidates["INV-7.xml"], s)
        f = finding(b, "sidecar-spelling")
        assert f.file == "INV-7"
        assert "its name lacks the ending .att that each sidecar has here (the admin set " \
            "[outbox] sidecar_suffix = \".att\")" in f.message
        assert "rename it to INV-7.att, exactly as written here" in f.message
        assert layout(b) == {"INV-7": ["b.pdf"]}

    @pytest.mark.parametrize("folder,suffix", [("INV-7.XML", ""), ("INV-7.pdf", ""),
                                               ("INV-7", ".att")])
    def test_a_look_alike_with_an_extension_or_without_the_suffix_does_not_blame_linux(
            self, outbox: Path, folder: str, suffix: str) -> None:
        """A folder named with the invoice file's extension, or without the sidecar suffix,
        is another name on any computer: the message says so it is not taken as the
        sidecar, not that "Linux, where outboxd runs, takes it for another name", which
        is why a space or a dot at an end (mangled by Windows) differs."""
        write(outbox / folder / "a.pdf", PDF)
        write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
        s = settings(outbox, outbox={"sidecar_suffix": suffix})
        b = assemble(list_outbox(s.outbox).candidates["INV-7.xml"], s)
        f = finding(b, "sidecar-spelling")
        assert f.file == folder
        assert "Linux" not in f.message
        assert f"; so it is not taken as the sidecar — rename it to INV-7{suffix}, exactly " \
            "as written here" in f.message

    def test_a_file_named_like_the_invoice_file_with_a_space_is_no_look_alike(
            self, outbox: Path) -> None:
        """`INV-7.xml ` (a file) beside INV-7.xml is no folder made by copying the name:
        the page lists it as no invoice file; it does not hold INV-7.xml back."""
        write(outbox / "INV-7.xml ", b"<x/>")
        write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
        s = settings(outbox)
        b = assemble(list_outbox(s.outbox).candidates["INV-7.xml"], s)
        assert not [f for f in b.findings if f.code == "sidecar-spelling"]

    def test_a_look_alike_in_other_case_and_form_says_both(self, outbox: Path) -> None:
        """räkning-7/ made on a Mac (lower case, accents decomposed) beside the ERP's
        Räkning-7.xml: the message names both differences and the name to type."""
        nfc, lower_nfd = unicodedata.normalize("NFC", "Räkning-7"), \
            unicodedata.normalize("NFD", "räkning-7")
        write(outbox / lower_nfd / "a.pdf", PDF)
        write(outbox / f"{nfc}.xml", ubl_invoice("R-7"))
        s = settings(outbox)
        b = assemble(list_outbox(s.outbox).candidates[f"{nfc}.xml"], s)
        f = finding(b, "sidecar-spelling")
        assert f.file == lower_nfd
        assert "differ in upper and lower case and are spelled with different Unicode " \
            "characters" in f.message and f"typing its name again as {nfc} " in f.message

    def test_a_listed_look_alike_renamed_since_is_no_error(self, outbox: Path) -> None:
        """The candidate carries inv-7 from the listing, but the clerk has renamed it to
        INV-7 since: the read looks, finds the sidecar and no look-alike."""
        write(outbox / "INV-7" / "a.pdf", PDF)
        inv = write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
        cand = Candidate("INV-7", inv, outbox / "INV-7", outbox / "INV-7.ready", ("inv-7",))
        b = assemble(cand, settings(outbox))
        assert not b.findings and layout(b) == {"INV-7": ["a.pdf"]}

    def test_a_file_named_like_the_sidecar_is_called_a_file(self, outbox: Path) -> None:
        nfd = unicodedata.normalize("NFD", "Räkning-1")
        write(outbox / nfd, b"not a folder")
        b = match(outbox, unicodedata.normalize("NFC", "Räkning-1") + ".xml",
                  ubl_invoice("R-1"))
        assert finding(b, "sidecar-spelling").message.startswith("this file looks like")

    def test_a_file_named_like_the_sidecar_is_told_to_go_into_the_sidecar_folder(
            self, outbox: Path) -> None:
        """A file named like the sidecar (its accents written as a Mac writes them):
        renamed to the sidecar's name it would still be no folder (not-a-folder), so the
        message says a sidecar is a folder, to make it and move the file into it with its
        extension, or remove it — not to rename it."""
        nfc, nfd = (unicodedata.normalize(f, "Räkning-1") for f in ("NFC", "NFD"))
        write(outbox / nfd, b"%PDF-1.4 saved without extension")
        b = match(outbox, nfc + ".xml", ubl_invoice("R-1"))
        message = finding(b, "sidecar-spelling").message
        assert message.startswith(f"this file looks like the sidecar {nfc} of {nfc}.xml, but "
                                  "the two names are spelled with different Unicode "
                                  "characters, and a sidecar is a folder")
        assert f"make the folder {nfc}" in message and "rename it" not in message

    def test_a_sidecar_spelled_as_its_invoice_file_is_matched_without_a_spelling_error(
            self, outbox: Path) -> None:
        """Non-ASCII names spelled alike match as any name does."""
        name = unicodedata.normalize("NFD", "Räkning-1")
        write(outbox / name / "a.pdf", PDF)
        b = match(outbox, name + ".xml", ubl_invoice("R-1"))
        assert layout(b) == {"R-1": ["a.pdf"]} and not b.findings

    def test_case_collision(self, outbox: Path) -> None:
        """Names that differ only in case are an error naming both (Windows sees one file)."""
        write(outbox / "INV-1" / "Scan.pdf", PDF)
        write(outbox / "INV-1" / "scan.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        f = finding(b, "name-collision")
        assert f.file == "INV-1/scan.pdf" and "INV-1/Scan.pdf" in f.message
        assert len(b.attachments) == 1

    def test_names_that_fold_to_one_sent_name_collide(self, outbox: Path) -> None:
        """With safe_filenames, 'a b.pdf' and 'a_b.pdf' would be sent as one name: an error
        that says what both become."""
        write(outbox / "INV-1" / "a b.pdf", PDF)
        write(outbox / "INV-1" / "a_b.pdf", PDF + b"%2")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        f = finding(b, "name-collision")
        assert f.file == "INV-1/a_b.pdf" and "'a_b.pdf'" in f.message
        assert len(b.attachments) == 1

    def test_names_in_another_script_are_sent_under_distinct_names(self, outbox: Path) -> None:
        """With safe_filenames, two attachments named in Cyrillic or Greek are not one name
        ('file.pdf') on the wire: both are kept, and no name-collision is reported."""
        write(outbox / "INV-1" / "Счёт.pdf", PDF)
        write(outbox / "INV-1" / "Τιμολόγιο.pdf", PDF + b"%2")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert "name-collision" not in codes(b)
        assert sorted(a.original_name for a in b.attachments) == ["Τιμολόγιο.pdf", "Счёт.pdf"]

    def test_an_attachments_toml_over_the_limit_is_an_error_not_read_in_part(
            self, outbox: Path) -> None:
        """An attachments.toml over 1 MiB is reported as such; nothing in it is applied
        (before, its first MiB was read as if it were the whole file, so an invalid
        channel after a long comment went unreported)."""
        write(outbox / "INV-1" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml",
              b"# " + b"x" * (1 << 20) + b'\nchannel = "fax"\n')
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        f = finding(b, "attachments-toml-invalid")
        assert f.file == "INV-1/attachments.toml" and "larger than 1 MiB" in f.message

    def test_normalisation_collision(self, outbox: Path) -> None:
        """Names that differ only in NFC/NFD are an error (macOS and Linux see them differently)."""
        nfc = unicodedata.normalize("NFC", "Räkning.pdf")
        nfd = unicodedata.normalize("NFD", "Räkning.pdf")
        write(outbox / "INV-1" / nfc, PDF)
        write(outbox / "INV-1" / nfd, PDF)
        assert len(os.listdir(outbox / "INV-1")) == 2
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert codes(b) == ["name-collision"]
        assert len(b.attachments) == 1

    def test_a_collision_says_whether_case_or_the_writing_of_accents_differs(
            self, outbox: Path) -> None:
        """'Räkning.pdf' twice, once with its accent as a separate mark (as a Mac writes
        it), prints as two identical names: the message says the accents are written
        differently, and says upper and lower case only where that differs too."""
        nfc, nfd = (unicodedata.normalize(f, "Räkning.pdf") for f in ("NFC", "NFD"))
        upper = unicodedata.normalize("NFC", "Öl.pdf")
        lower = unicodedata.normalize("NFD", "öl.pdf")
        write(outbox / "INV-1" / nfc, PDF)
        write(outbox / "INV-1" / nfd, PDF + b"%2")
        write(outbox / "INV-1" / upper, PDF + b"%3")
        write(outbox / "INV-1" / lower, PDF + b"%4")
        write(outbox / "INV-1" / "Scan.pdf", PDF)
        write(outbox / "INV-1" / "scan.pdf", PDF + b"%2")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        messages = sorted(f.message for f in b.findings if f.code == "name-collision")
        accents = ("in how accents are written (one name writes them as separate marks, as "
                   "Mac computers do, so the two look the same) — rename one of them")
        assert messages == sorted([
            # Each names the one taken first (in code-point order: the decomposed ones).
            f"differs from 'INV-1/{nfd}' only {accents}",
            f"differs from 'INV-1/{lower}' only in upper and lower case and {accents}",
            "differs from 'INV-1/Scan.pdf' only in upper and lower case — rename one of them",
        ])

    def test_same_name_in_root_and_id_folder(self, outbox: Path) -> None:
        """One invoice with both forms: the same name in the root and the id folder collides."""
        write(outbox / "INV-1" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "INV-1" / "SCAN.pdf", PDF + b"%2")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        f = finding(b, "name-collision")
        assert f.file == "INV-1/INV-1/SCAN.pdf" and "scan.pdf" in f.message
        assert len(b.attachments) == 1

    def test_the_same_name_twice_is_said_as_the_same_name(self, outbox: Path) -> None:
        """scan.pdf in the root and in INV-1/ of a one-invoice sidecar, or a.pdf in the two
        folders of one id that differ only in Unicode form (both are that invoice's): the
        message says the names are the same, and where two folders print the same, why
        both are the invoice's — not that the accents of 'scan.pdf' are written otherwise."""
        write(outbox / "INV-1" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "INV-1" / "scan.pdf", PDF + b"%2")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert [f.message for f in b.findings] == [
            "has the same name as 'INV-1/scan.pdf' — rename one of them"]
        nfc, nfd = (unicodedata.normalize(f, "Å-1") for f in ("NFC", "NFD"))
        write(outbox / "b" / nfc / "a.pdf", PDF)
        write(outbox / "b" / nfd / "a.pdf", PDF + b"%2")
        b = match(outbox, "b.xml", batch_xml(nfc, "X-2"))
        f = finding(b, "name-collision")
        assert f.message.startswith(f"has the same name as 'b/{nfd}/a.pdf', and both folders "
                                    f"are those of invoice {nfc}: their names differ only in "
                                    "how accents are written")
        assert f.message.endswith("— rename one of them, or move the files of one folder "
                                  "into the other")

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


class TestAttachmentsToml:
    def test_type_note_and_channel(self, outbox: Path) -> None:
        """attachments.toml sets type and note per file and the bundle's channel."""
        write(outbox / "INV-1" / "timesheet.pdf", PDF)
        write(outbox / "INV-1" / "other.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", (
            b'channel = "external-print"\n\n[files."timesheet.pdf"]\ntype = "Timesheet"\n'
            b'note = "Hours for October"\n'))
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert b.errors == ()
        by_name = {a.original_name: a for a in b.attachments}
        assert set(by_name) == {"timesheet.pdf", "other.pdf"}  # the toml is no attachment
        assert (by_name["timesheet.pdf"].document_type, by_name["timesheet.pdf"].note) == (
            "Timesheet", "Hours for October")
        assert (by_name["other.pdf"].document_type, by_name["other.pdf"].note) == (
            "Attachment", "")
        assert b.channel == "external-print"

    def test_in_an_invoice_subfolder(self, outbox: Path) -> None:
        """attachments.toml in an invoice subfolder applies to that folder's files."""
        write(outbox / "b" / "INV-2" / "c.pdf", PDF)
        write(outbox / "b" / "INV-2" / "attachments.toml",
              b'[files."c.pdf"]\ntype = "Contract"\nnote = "Signed"\n')
        write(outbox / "b" / "INV-3" / "d.pdf", PDF)
        b = match(outbox, "b.xml", batch_xml("INV-2", "INV-3"))
        assert b.errors == ()
        assert [(a.document_type, a.note) for a in b.attachments_of("INV-2")] == [
            ("Contract", "Signed")]
        assert [a.document_type for a in b.attachments_of("INV-3")] == ["Attachment"]

    def test_two_channels_in_one_bundle_are_an_error_naming_both_files(
            self, outbox: Path) -> None:
        """A bundle has one channel: when the attachments.toml of two invoice subfolders
        set different ones, the bundle has an error naming both files (its attachments'
        rules differ per channel), not a silent pick of the first."""
        for invoice_id, channel in (("A-1", "external-print"), ("A-2", "original-print")):
            write(outbox / "b" / invoice_id / "c.pdf", PDF)
            write(outbox / "b" / invoice_id / "attachments.toml",
                  f'channel = "{channel}"\n'.encode())
        b = match(outbox, "b.xml", batch_xml("A-1", "A-2"))
        f = finding(b, "attachments-toml-invalid")
        assert f.file == "b/A-2/attachments.toml"
        assert "original-print" in f.message and "b/A-1/attachments.toml" in f.message
        assert "external-print" in f.message and "set it once" in f.message

    def test_the_same_channel_twice_is_no_error(self, outbox: Path) -> None:
        """The root and a subfolder naming the same channel agree: no finding."""
        write(outbox / "INV-1" / "attachments.toml", b'channel = "original-print"\n')
        write(outbox / "INV-1" / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "INV-1" / "attachments.toml", b'channel = "original-print"\n')
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert b.errors == () and b.channel == "original-print"

    def test_what_the_bundle_id_leaves_out_is_in_the_sidecar_digest(
            self, outbox: Path, tmp_path: Path) -> None:
        """The claim's check compares Bundle.sidecar_digest beside the bundle id: the
        same sidecar gives the same digest wherever it lies (the outbox, a work folder),
        and any change to a notes file (in the root or an invoice subfolder, even one the
        manifest does not show) or a structural error gives another, the id unchanged."""
        from daemon.manifest import bundle_id_of
        root_notes = write(outbox / "INV-1" / "attachments.toml", b'channel = "e-invoice"\n')
        sub_notes = write(outbox / "INV-1" / "INV-1" / "attachments.toml",
                          b'[files."a.pdf"]\ntype = "Contract"\n')
        write(outbox / "INV-1" / "INV-1" / "a.pdf", PDF)
        first = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert first.errors == () and first.sidecar_digest
        moved = tmp_path / "work"
        moved.mkdir()
        (outbox / "INV-1").rename(moved / "INV-1")
        assert match(moved, "INV-1.xml", ubl_invoice("INV-1")).sidecar_digest == \
            first.sidecar_digest
        (moved / "INV-1").rename(outbox / "INV-1")
        digests = {first.sidecar_digest}
        for change in (lambda: root_notes.write_bytes(b'channel = "e-invoice"  # ERP\n'),
                       lambda: sub_notes.write_bytes(b'[files."a.pdf"]\ntype = "Contract"\n\n'),
                       lambda: (outbox / "INV-1" / "b.pdf").symlink_to(tmp_path / "x")):
            change()
            b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
            assert bundle_id_of(b) == bundle_id_of(first) and b.sidecar_digest not in digests
            digests.add(b.sidecar_digest)

    def test_default_document_type_setting(self, outbox: Path) -> None:
        """A file without an entry gets [attachments] default_document_type."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"),
                  attachments={"default_document_type": "Bilaga"})
        assert b.attachments[0].document_type == "Bilaga"

    def test_no_channel_uses_the_configured_one(self, outbox: Path) -> None:
        """Without a channel override the bundle has [validation] channel."""
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"),
                  validation={"channel": "original-print"})
        assert b.channel == "original-print"

    def test_unknown_top_level_key(self, outbox: Path) -> None:
        """An unknown key in attachments.toml is an error naming the key and the toml file."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'chanel = "e-invoice"\n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert f.file == "INV-1/attachments.toml" and "'chanel'" in f.message

    def test_unknown_key_in_a_file_entry(self, outbox: Path) -> None:
        """A file entry may only hold type and note."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'[files."a.pdf"]\nkind = "Contract"\n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert "a.pdf" in f.message

    def test_unknown_channel(self, outbox: Path) -> None:
        """A channel that is not one of the three is an error naming the value."""
        write(outbox / "INV-1" / "attachments.toml", b'channel = "fax"\n')
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert "'fax'" in finding(b, "attachments-toml-invalid").message
        assert b.channel == "e-invoice"

    def test_invalid_toml(self, outbox: Path) -> None:
        """attachments.toml that is not TOML is an error naming it."""
        write(outbox / "INV-1" / "attachments.toml", b'[files."a.pdf"\ntype = \n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert f.file == "INV-1/attachments.toml"

    def test_an_attachments_toml_nested_thousands_deep_says_so_and_what_to_keep(
            self, outbox: Path) -> None:
        """Arrays nested 5,000 deep (past the TOML parser's recursion) are no syntax
        error a clerk could fix: the message says what is wrong and what a notes file
        holds, as for one over 1 MiB, instead of "fix the syntax"."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b"x = " + b"[" * 5000 + b"]" * 5000)
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert f.file == "INV-1/attachments.toml"
        assert f.message == ("cannot be read as TOML: its values are nested too deeply, far "
                             "more than notes on attachments need — keep only the notes and "
                             "the channel")

    def test_an_attachments_toml_not_in_utf8_says_to_save_it_as_utf8(self, outbox: Path) -> None:
        """A note typed in an editor that saves in Windows-1252 ("für" as one byte 0xFC)
        is said as what it is, with its line and the fix, for NAME.errors.txt: not
        Python's codec message, and not "fix the syntax", which is fine."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml",
              '[files."a.pdf"]\nnote = "Stunden für Oktober"\n'.encode("cp1252"))
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert f.file == "INV-1/attachments.toml"
        assert f.message == ("is not UTF-8 text (line 2 holds the byte 0xfc: it was saved in "
                             "another encoding, such as Windows' ANSI) — save it again as UTF-8")

    @pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE])
    def test_an_attachments_toml_the_share_fails_to_give_is_no_finding(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """An I/O error or a share gone stale while attachments.toml is read is the
        machine's fault: raised as the OSError it is, so the bundle is read again later
        (as for an attachment's bytes), not held or quarantined with "fix the syntax"
        and the server's path on the share."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'channel = "e-invoice"\n')
        real_open = os.open

        def failing(path: Any, *args: Any, **kw: Any) -> int:
            if str(path).endswith("attachments.toml"):
                raise OSError(code, os.strerror(code), str(path))
            return real_open(path, *args, **kw)
        monkeypatch.setattr(os, "open", failing)
        with pytest.raises(OSError) as info:
            match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert not isinstance(info.value, InputError) and info.value.errno == code

    def test_entry_for_a_missing_file(self, outbox: Path) -> None:
        """An entry for a file that is not in the folder is an error naming that file."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'[files."gone.pdf"]\ntype = "Contract"\n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")),
                    "attachments-toml-missing-file")
        assert f.file == "INV-1/attachments.toml" and "'gone.pdf'" in f.message

    @pytest.mark.parametrize("key", ["scan.pdf", "A/scan.pdf"])
    def test_a_root_entry_for_a_file_in_an_invoice_folder_says_where_it_belongs(
            self, outbox: Path, key: str) -> None:
        """A file of invoices A and B, its attachments in INV-1/A/ and INV-1/B/, and an
        entry for scan.pdf (or A/scan.pdf) in INV-1/attachments.toml: the file is there,
        in A/, so "not in the folder" left the clerk puzzled. The message says the file is
        in INV-1/A/ and that the entry belongs in INV-1/A/attachments.toml, with its key."""
        write(outbox / "INV-1" / "A" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "B" / "other.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", f'[files."{key}"]\ntype = "X"\n'.encode())
        b = match(outbox, "INV-1.xml", batch_xml("A", "B"))
        [f] = b.errors
        assert (f.code, f.file) == ("attachments-toml-missing-file", "INV-1/attachments.toml")
        assert f.message == (
            f"names {key!r}, which is not in this folder but in INV-1/A/ — move the entry "
            'into INV-1/A/attachments.toml, as [files."scan.pdf"]: in a file of several '
            "invoices, each invoice's folder has its own attachments.toml")

    def test_a_root_entry_for_files_in_two_invoice_folders_names_both(
            self, outbox: Path) -> None:
        """scan.pdf lies in INV-1/A/ and INV-1/B/: the root entry names both folders, and
        that each folder's own attachments.toml takes the entry."""
        write(outbox / "INV-1" / "A" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "B" / "scan.pdf", pdf_bytes(2))
        write(outbox / "INV-1" / "attachments.toml", b'[files."scan.pdf"]\ntype = "X"\n')
        b = match(outbox, "INV-1.xml", batch_xml("A", "B"))
        f = finding(b, "attachments-toml-missing-file")
        assert "not in this folder but in INV-1/A/ and INV-1/B/ — move the entry into " \
            "the attachments.toml of each of those folders" in f.message

    def test_a_root_entry_for_a_file_nowhere_in_a_several_invoice_sidecar_is_missing(
            self, outbox: Path) -> None:
        """An entry for a file in no folder of the sidecar keeps its plain message."""
        write(outbox / "INV-1" / "A" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'[files."gone.pdf"]\ntype = "X"\n')
        f = finding(match(outbox, "INV-1.xml", batch_xml("A", "B")),
                    "attachments-toml-missing-file")
        assert f.message == ("names 'gone.pdf', which is not in the folder — add the file or "
                             "remove its entry")

    @pytest.mark.parametrize("on_disk,in_toml", [("NFD", "NFC"), ("NFC", "NFD")])
    def test_an_entry_names_its_file_in_either_writing_of_accents(
            self, outbox: Path, on_disk: str, in_toml: str) -> None:
        """'Räkning.pdf' written by a Mac (accent as a separate mark) and typed in
        attachments.toml as one letter (or the other way round) look the same: the entry
        gives the file its type and note, and no missing-file error is reported."""
        file_name = unicodedata.normalize(on_disk, "Räkning.pdf")
        key = unicodedata.normalize(in_toml, "Räkning.pdf")
        write(outbox / "INV-1" / file_name, PDF)
        write(outbox / "INV-1" / "attachments.toml",
              f'[files."{key}"]\ntype = "Timesheet"\nnote = "Oktober"\n'.encode())
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert b.findings == ()
        [att] = b.attachments
        assert (att.original_name, att.document_type, att.note) == (
            file_name, "Timesheet", "Oktober")

    def test_an_entry_in_other_case_names_the_file_it_means(self, outbox: Path) -> None:
        """An entry 'Scan.pdf' for the file 'scan.pdf' is still an error (case counts on
        the server), and its message names the file spelled so and says how to mend it."""
        write(outbox / "INV-1" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'[files."Scan.pdf"]\ntype = "X"\n')
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        f = finding(b, "attachments-toml-missing-file")
        assert f.file == "INV-1/attachments.toml"
        assert f.message == (
            "names 'Scan.pdf', which is not in the folder; 'scan.pdf' is, written in other "
            "upper and lower case — write the name in attachments.toml exactly as the "
            "file's (upper and lower case count here), or rename the file")
        assert b.attachments[0].document_type == "Attachment"

    def test_type_outside_document_types(self, outbox: Path) -> None:
        """With [attachments] document_types set, a type outside it is an error naming the file."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "b.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", (
            b'[files."a.pdf"]\ntype = "Timesheet"\n[files."b.pdf"]\ntype = "Memo"\n'))
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"),
                  attachments={"document_types": ["Timesheet", "Contract"]})
        f = finding(b, "document-type-not-allowed")
        assert f.file == "INV-1/b.pdf" and "'Memo'" in f.message and "Timesheet" in f.message
        assert codes(b) == ["document-type-not-allowed"]

    def test_a_type_outside_document_types_says_where_it_comes_from_and_where_to_set_it(
            self, outbox: Path) -> None:
        """A file without an entry gets the default type, which the clerk never wrote:
        the error says so and shows the entry to write; a type from attachments.toml is
        told to be changed there. The allowed types are listed as words, not as a
        Python list."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "b.pdf", PDF + b"%2")
        write(outbox / "INV-1" / "attachments.toml", b'[files."b.pdf"]\ntype = "Memo"\n')
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"),
                  attachments={"document_types": ["Timesheet", "Contract"]})
        by_file = {f.file: f.message for f in b.findings
                   if f.code == "document-type-not-allowed"}
        assert by_file == {
            "INV-1/a.pdf": "has no type in INV-1/attachments.toml, and the default type "
                           "'Attachment' ([attachments] default_document_type) is not one of "
                           "the document types allowed: Timesheet, Contract — give it one of "
                           "those in INV-1/attachments.toml, e.g. [files.\"a.pdf\"] "
                           "type = \"Timesheet\"",
            "INV-1/b.pdf": "has the document type 'Memo' (in INV-1/attachments.toml), which "
                           "is not one of the document types allowed: Timesheet, Contract — "
                           "change its type there to one of those",
        }

    def test_attachments_toml_as_a_link(self, outbox: Path, tmp_path: Path) -> None:
        """attachments.toml that is a link is an error, never read."""
        target = write(tmp_path / "t.toml", b'channel = "external-print"\n')
        write(outbox / "INV-1" / "a.pdf", PDF)
        (outbox / "INV-1" / "attachments.toml").symlink_to(target)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "not-a-file").file == "INV-1/attachments.toml"
        assert b.channel == "e-invoice"


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
        finding naming INV-7/Bilagor-\\xe5 and the fix — not also an orphan-attachment
        finding that carries the raw name — and its files are no attachments."""
        write(outbox / "INV-7" / "INV-7" / "a.pdf", PDF)
        write(raw_path(outbox, b"INV-7", b"Bilagor-\xe5", b"b.pdf"), PDF)
        b = match(outbox, invoice, data)
        self.assert_all_utf8(b)
        assert codes(b) == ["bad-name"]
        f = finding(b, "bad-name")
        assert f.file == "INV-7/Bilagor-\\xe5"
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
        assert "control characters" in finding(b, "bad-name").message

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
        INV-7/scan-\\xe5.pdf (the byte escaped, as in the log of refused invoice files),
        not a lossy 'scan-?.pdf' that could name either of two files."""
        write(raw_path(outbox, b"INV-7", b"scan-\xe5.pdf"), PDF)
        b = match(outbox, "INV-7.xml", ubl_invoice("INV-7"))
        assert codes(b) == ["bad-name"]
        assert finding(b, "bad-name").file == "INV-7/scan-\\xe5.pdf"
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
    daemon = Path(match_module.__file__).parent
    source = "".join((daemon / name).read_text("utf-8")
                     for name in ("fsops.py", "match.py", "notes.py", "lookalikes.py"))
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
    (the kernel gives the lowest free numbers below the limit)."""
    used = {int(n) for n in os.listdir("/proc/self/fd")}
    used = {fd for fd in used if _is_open(fd)}  # not the listing's own, closed by now
    limit, left = 0, free
    while left or limit in used:
        if limit not in used:
            left -= 1
        limit += 1
    return limit


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

    marker = {"outbox": {"completion": "marker", "marker_suffix": ".JSON"}}
    write(outbox / "Receipt.JSON", b"")
    cand = Candidate("Receipt", write(outbox / "Receipt.xml", invoice), outbox / "Receipt",
                     outbox / "Receipt.JSON")
    assert [f.file for f in assemble(cand, settings(outbox, **marker)).errors] == [
        "Receipt.JSON"]


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

    marker = {"outbox": {"completion": "marker", "marker_suffix": ".json"}}
    write(outbox / "reason.json", b"")
    cand = Candidate("reason", write(outbox / "reason.xml", invoice), outbox / "reason",
                     outbox / "reason.json")
    assert [f.file for f in assemble(cand, settings(outbox, **marker)).errors] == [
        "reason.json"]
    assert codes(assemble(cand, settings(outbox))) == []
