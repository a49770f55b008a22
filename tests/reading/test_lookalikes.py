"""Look-alike sidecars and what each is told (docs/folder-convention.md, section 3): a
folder (or file) named like an invoice file's sidecar but for upper and lower case or
Unicode form, asked of the outbox as a listing finds it, as the daemon asks it; and, as
the matcher reports them with a bundle, look-alike sidecars, an id's folder in other case,
and attachments whose names collide (`name-collision`)."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import replace
from pathlib import Path

import pytest
from helpers import looks_fail, ubl_invoice, write
from matching import PDF, batch_xml, codes, finding, layout, match, settings

from daemon.bundle import Attachment, Bundle, Conversion, InvoiceFile
from daemon.fs.fsops import read_again_later
from daemon.reading.lookalikes import look_alike_findings, sent_names_distinct
from daemon.reading.match import assemble
from daemon.watching.scan import Candidate, list_outbox


def told(outbox: Path, invoice_file: str) -> dict[str, str]:
    """Each look-alike of `invoice_file`'s sidecar → its sidecar-spelling message."""
    s = settings(outbox)
    cand = list_outbox(s.outbox).candidates[invoice_file]
    findings = look_alike_findings(cand, s)
    assert {f.code for f in findings} <= {"sidecar-spelling"}
    return {f.file: f.message for f in findings}


def inv_7_listed(outbox: Path, /, **sections: dict[str, object]) -> Bundle:
    """INV-7.xml (a UBL invoice) written into the outbox and its bundle assembled as a
    listing of the outbox finds it, under `sections` of the configuration."""
    write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
    s = settings(outbox, **sections)
    return assemble(list_outbox(s.outbox).candidates["INV-7.xml"], s)


def test_two_look_alike_folders_are_told_to_merge_not_each_to_be_renamed(
        outbox: Path) -> None:
    """inv-7/ and Inv-7/ both beside INV-7.xml: renamed one by one to INV-7, the second
    rename cannot work. Each finding names the other folder and says to merge them into
    one folder named exactly INV-7 (or remove the extra one), not "rename it to INV-7"."""
    write(outbox / "inv-7" / "a.pdf", PDF)
    write(outbox / "Inv-7" / "b.pdf", PDF)
    write(outbox / "INV-7.xml", b"<Invoice/>")
    found = told(outbox, "INV-7.xml")
    assert set(found) == {"inv-7", "Inv-7"}
    for name, other in (("inv-7", "Inv-7"), ("Inv-7", "inv-7")):
        message = found[name]
        assert message.startswith("this folder looks like the sidecar INV-7 of INV-7.xml, "
                                  "but the two names differ only in upper and lower case")
        assert f"and {other} looks like it too: only one folder can be named INV-7" \
            in message
        assert "merge them into one folder named exactly INV-7: rename one of them to " \
            "INV-7, each letter in upper or lower case as written here, move the files " \
            "of the other into it and remove the emptied folder, or remove the extra " \
            "folder if it holds nothing for this invoice" in message
        assert "rename it to" not in message


def test_look_alikes_in_both_forms_and_in_case_are_told_to_merge_typing_the_name(
        outbox: Path) -> None:
    """Beside the ERP's Räkning-7.xml (composed) and its sidecar: a Mac's Räkning-7/
    (decomposed), a Windows clerk's räkning-7/ (case) and RÄKNING-7/ (case). The three
    are told to merge, naming the other two, and — as one of them differs in Unicode
    form — to make the name by typing it on the computer that named the invoice file;
    into the sidecar that is there too."""
    nfc, nfd = (unicodedata.normalize(f, "Räkning-7") for f in ("NFC", "NFD"))
    write(outbox / nfc / "a.pdf", PDF)
    for name in (nfd, "räkning-7", "RÄKNING-7"):
        write(outbox / name / "b.pdf", PDF)
    write(outbox / f"{nfc}.xml", b"<Invoice/>")
    found = told(outbox, f"{nfc}.xml")
    assert set(found) == {nfd, "räkning-7", "RÄKNING-7"}
    for name, message in found.items():
        others = sorted(set(found) - {name})
        assert f"and {', '.join(others)} look like it too: only one folder can be " \
            f"named {nfc}" in message
        assert f"merge them into one folder named exactly {nfc}: on the computer that " \
            f"named {nfc}.xml, rename one of them by typing its name again as {nfc}, " \
            "move the files of the others into it and remove the emptied folders" in message
        assert f"if the folder {nfc} is there too, move all their files into it" in message
    assert "spelled with different Unicode characters" in found[nfd]
    assert "differ only in upper and lower case" in found["räkning-7"]


def test_a_look_alike_file_beside_a_look_alike_folder_keeps_its_own_fix(
        outbox: Path) -> None:
    """One folder and one file named like the sidecar: only folders are merged, so the
    folder is told to be renamed and the file to go into the sidecar folder, as when
    each is alone."""
    write(outbox / "inv-7" / "a.pdf", PDF)
    write(outbox / "Inv-7", b"%PDF-1.4 saved without extension")
    write(outbox / "INV-7.xml", b"<Invoice/>")
    found = told(outbox, "INV-7.xml")
    assert "rename it to INV-7," in found["inv-7"] and "merge" not in found["inv-7"]
    assert found["Inv-7"].startswith("this file looks like") and "merge" not in found["Inv-7"]


def test_a_folder_with_a_space_beside_one_in_other_case_are_told_to_merge_exactly(
        outbox: Path) -> None:
    """`INV-7 /` and inv-7/ beside INV-7.xml: merged into one folder named exactly INV-7
    — "each letter in upper or lower case" would not mend the space."""
    write(outbox / "INV-7 " / "a.pdf", PDF)
    write(outbox / "inv-7" / "b.pdf", PDF)
    write(outbox / "INV-7.xml", b"<Invoice/>")
    found = told(outbox, "INV-7.xml")
    assert set(found) == {"INV-7 ", "inv-7"}
    for message in found.values():
        assert "merge them into one folder named exactly INV-7: rename one of them to " \
            "INV-7, exactly as written here, move the files of the other into it" in message
    assert found["INV-7 "].startswith("this folder looks like the sidecar INV-7 of "
                                      "INV-7.xml, but its name \"INV-7 \" has a space at the end")


def test_a_file_with_a_dot_at_its_end_is_told_to_go_into_the_sidecar_folder(
        outbox: Path) -> None:
    """A file `INV-7.` beside INV-7.xml (a scan saved without its extension): a sidecar is
    a folder, so the file is told to go into the folder INV-7, as a file in other case is."""
    write(outbox / "INV-7.", b"%PDF-1.4")
    write(outbox / "INV-7.xml", b"<Invoice/>")
    message = told(outbox, "INV-7.xml")["INV-7."]
    assert message.startswith("this file looks like the sidecar INV-7 of INV-7.xml, but its "
                              "name \"INV-7.\" has a dot at the end")
    assert "make the folder INV-7 (its name as written here) and move this file into it" \
        in message


def test_a_macs_dot_beside_a_sidecar_that_ends_in_a_dot_is_told_apart(outbox: Path) -> None:
    """`ACME Inc..xml` (its sidecar `ACME Inc./`) and a folder a Mac made as `ACME Inc.`
    on a share that keeps its dot as U+F029: the message tells the two dots apart, not
    "a dot at the end where the sidecar's name has a dot at the end"."""
    write(outbox / "ACME Inc\uf029" / "a.pdf", PDF)
    write(outbox / "ACME Inc..xml", b"<Invoice/>")
    message = told(outbox, "ACME Inc..xml")["ACME Inc\uf029"]
    assert "has a dot as a Mac writes it to a share at the end where the sidecar's name " \
        "has a dot at the end" in message


def test_a_look_alike_the_share_fails_to_look_at_is_no_answer_that_none_is_there(
        outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """inv-7/ (holding the attachment) beside INV-7.xml, listed, and the lstat of it
    fails (the share's EIO): the read raises, naming it, to be made again
    (fsops.read_again_later). Taken for "not there", INV-7.xml read as having no
    look-alike went without the attachment the clerk put in inv-7/."""
    write(outbox / "inv-7" / "a.pdf", PDF)
    write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
    s = settings(outbox)
    cand = list_outbox(s.outbox).candidates["INV-7.xml"]
    looks_fail(monkeypatch, outbox / "inv-7")
    with pytest.raises(OSError) as failed:
        assemble(cand, s)
    assert read_again_later(failed.value) and failed.value.filename == "inv-7"


def test_an_owner_the_share_fails_to_look_at_is_no_answer_that_the_copy_is_no_ones(
        outbox: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`Faktura 2/` is the sidecar of `Faktura 2.pdf`, beside Faktura.xml (listed as a
    copy of its sidecar before that file came); the lstat of `Faktura 2.pdf` fails (the
    share's EIO): whose the folder is cannot be told, and the read raises. Taken for "no
    such invoice file", Faktura.xml got a sidecar-spelling error for another invoice's
    own sidecar: held, or quarantined."""
    write(outbox / "Faktura 2" / "a.pdf", PDF)
    write(outbox / "Faktura 2.pdf", PDF)
    inv = write(outbox / "Faktura.xml", ubl_invoice("F-1"))
    s = settings(outbox)
    cand = Candidate("Faktura", inv, outbox / "Faktura", outbox / "Faktura.ready",
                     ("Faktura 2",))
    looks_fail(monkeypatch, outbox / "Faktura 2.pdf")
    with pytest.raises(OSError) as failed:
        assemble(cand, s)
    assert read_again_later(failed.value) and failed.value.filename == "Faktura 2.pdf"


def test_a_converted_image_sent_under_another_attachments_name_is_an_error(tmp_path: Path) -> None:
    """After conversion, two attachments of one invoice that would go out under one
    name (here 'scan.png' sent as its PDF 'scan.png.pdf', beside a file of that name)
    are a name-collision naming both; without a conversion nothing is reported."""
    inv = InvoiceFile(tmp_path / "INV-1.xml", "INV-1.xml", 1, "0" * 64, "ubl", ("INV-1",))
    pdf = Attachment(tmp_path / "p", "INV-1/scan.png.pdf", "scan.png.pdf", "INV-1", 1,
                     "1" * 64, "Attachment")
    png = Attachment(tmp_path / "i", "INV-1/scan.png", "scan.png", "INV-1", 1, "2" * 64,
                     "Attachment")
    plain = Bundle(inv, tmp_path / "INV-1", (pdf, png), "external-print")
    assert sent_names_distinct(plain, safe=True) is plain
    conv = replace(png, converted=Conversion("scan.png.pdf", 1, "3" * 64, 1, "image/png"))
    checked = sent_names_distinct(replace(plain, attachments=(pdf, conv)), safe=True)
    assert [(f.code, f.file) for f in checked.errors] == [("name-collision",
                                                           "INV-1/scan.png")]
    assert "'INV-1/scan.png.pdf'" in checked.errors[0].message


class TestLookAlikeSidecarsMatched:
    """Look-alike sidecars as the matcher reports them with the bundle (`sidecar-spelling`)."""

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

    def test_a_look_alike_in_another_form_alone_says_which_folder_to_make_where(
            self, outbox: Path) -> None:
        """A Mac's Räkning-1/ beside the ERP's Räkning-1.xml, no other folder: the second
        fix says to make a new folder on the computer that named the invoice file, by
        typing its name, and to move this folder's files into it (not "the folder
        Räkning-1 made there", which read as this very folder)."""
        nfc, nfd = (unicodedata.normalize(f, "Räkning-1") for f in ("NFC", "NFD"))
        write(outbox / nfd / "a.pdf", PDF)
        b = match(outbox, nfc + ".xml", ubl_invoice("R-1"))
        message = finding(b, "sidecar-spelling").message
        assert message.endswith(
            "— rename it by typing its name again on the computer that named the invoice "
            f"file, or, on that computer, make a new folder by typing the name {nfc} and "
            "move this folder's files into it")
        assert "made there" not in message

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
        b = inv_7_listed(outbox)
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
        b = inv_7_listed(outbox)
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
        b = inv_7_listed(outbox, outbox={"sidecar_suffix": ".att"})
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
        b = inv_7_listed(outbox, outbox={"sidecar_suffix": suffix})
        f = finding(b, "sidecar-spelling")
        assert f.file == folder
        assert "Linux" not in f.message
        assert f"; so it is not taken as the sidecar — rename it to INV-7{suffix}, exactly " \
            "as written here" in f.message

    def test_a_link_named_as_a_copy_of_the_sidecar_holds_nothing_back(
            self, outbox: Path, tmp_path: Path) -> None:
        """Only a folder is a copy of the sidecar: a symbolic link named `INV-7 (1)`, even
        to a folder, is never followed, so it is no look-alike and the invoice goes."""
        (tmp_path / "elsewhere").mkdir()
        (outbox / "INV-7 (1)").symlink_to(tmp_path / "elsewhere")
        b = inv_7_listed(outbox)
        assert [f.code for f in b.findings if f.code == "sidecar-spelling"] == []

    @pytest.mark.parametrize("folder", ["INV-7 (1)", "INV-7 - Copy", "INV-7 - Kopia",
                                        "INV-7 copy", "INV-7 2"])
    def test_a_copy_of_the_sidecar_alone_is_an_error_saying_to_rename_it(
            self, outbox: Path, folder: str) -> None:
        """A clerk copied the attachments' folder in (Windows names the copy `INV-7 (1)/`
        or `INV-7 - Copy/`, a Mac `INV-7 copy/` or `INV-7 2/`) and there is no INV-7/: the
        invoice neither goes without the files the clerk sees there nor takes them by a
        name not the sidecar's — an error names the folder as a copy of the sidecar and
        says to rename it to INV-7."""
        write(outbox / folder / "a.pdf", PDF)
        b = inv_7_listed(outbox)
        f = finding(b, "sidecar-spelling")
        assert f.severity == "error" and f.file == folder
        assert f.message == (
            "this folder looks like a copy of the sidecar INV-7 of INV-7.xml: its name is "
            "one Windows or a Mac gives a second copy of a folder, so it is not taken as the "
            "sidecar and its files are not sent — there is no folder INV-7: rename this one "
            "to INV-7, exactly as written here, or move its files into a folder INV-7")
        assert b.attachments == () and b.sidecar is None

    def test_a_copy_beside_the_sidecar_is_an_error_saying_to_move_its_files(
            self, outbox: Path) -> None:
        """INV-7/ and its Explorer copy `INV-7 - Copy/` with a file more: the copy is an
        error too (its files would stay behind, and which of them are this invoice's only
        the clerk knows), told to move its files into INV-7/ or remove it — not to rename
        it onto a folder that is there. INV-7/'s files are matched as ever."""
        write(outbox / "INV-7" / "a.pdf", PDF)
        write(outbox / "INV-7 - Copy" / "a.pdf", PDF)
        write(outbox / "INV-7 - Copy" / "timesheet.pdf", PDF)
        b = inv_7_listed(outbox)
        f = finding(b, "sidecar-spelling")
        assert f.file == "INV-7 - Copy"
        assert f.message.startswith("this folder looks like a copy of the sidecar INV-7 of "
                                    "INV-7.xml")
        assert "— the folder INV-7 is there too, and only its files are sent: move the " \
            "files of this folder that belong to INV-7.xml into INV-7 (where both hold a " \
            "file of one name, keep the right one) and remove the emptied folder, or " \
            "remove this folder if it holds nothing more for this invoice" in f.message
        assert "rename" not in f.message
        assert layout(b) == {"INV-7": ["a.pdf"]}

    def test_two_copies_of_the_sidecar_are_told_to_merge(self, outbox: Path) -> None:
        """`INV-7 (1)/` and `INV-7 - Copy/` and no INV-7/: renamed one by one, the second
        rename cannot work, so each is told to merge them into one folder named exactly
        INV-7."""
        write(outbox / "INV-7 (1)" / "a.pdf", PDF)
        write(outbox / "INV-7 - Copy" / "b.pdf", PDF)
        write(outbox / "INV-7.xml", b"<Invoice/>")
        found = told(outbox, "INV-7.xml")
        assert set(found) == {"INV-7 (1)", "INV-7 - Copy"}
        assert "and INV-7 - Copy looks like it too: only one folder can be named INV-7" \
            in found["INV-7 (1)"]
        for message in found.values():
            assert "merge them into one folder named exactly INV-7: rename one of them to " \
                "INV-7, exactly as written here" in message

    def test_a_file_named_as_a_copy_of_the_sidecar_is_no_look_alike(
            self, outbox: Path) -> None:
        """A file `INV-7 2` (no extension) beside INV-7.xml: no copy of a folder is a file,
        so it does not hold INV-7.xml back."""
        write(outbox / "INV-7 2", b"%PDF-1.4")
        b = inv_7_listed(outbox)
        assert not [f for f in b.findings if f.code == "sidecar-spelling"]

    @pytest.mark.parametrize("owner", ["Faktura 2.pdf", "Faktura 2.xml"])
    def test_the_sidecar_of_an_invoice_file_of_any_extension_is_no_copy(
            self, outbox: Path, owner: str) -> None:
        """Faktura.xml beside `Faktura 2.pdf` (or `Faktura 2.xml`) and its sidecar
        `Faktura 2/`: the folder is that file's, so Faktura.xml has no sidecar-spelling
        error (before, one of another extension left it held or quarantined for good)."""
        write(outbox / "Faktura 2" / "a.pdf", PDF)
        write(outbox / owner, PDF if owner.endswith(".pdf") else ubl_invoice("F-2"))
        write(outbox / "Faktura.xml", ubl_invoice("F-1"))
        s = settings(outbox)
        b = assemble(list_outbox(s.outbox).candidates["Faktura.xml"], s)
        assert not [f for f in b.findings if f.code == "sidecar-spelling"]

    @pytest.mark.parametrize("owner,held", [
        ("Faktura 2.pdf", False), ("Faktura 2.PDF", False), ("Faktura 2.xml", False),
        ("Faktura 2.txt", True)])
    def test_a_listed_copy_whose_invoice_file_came_since_is_no_error(
            self, outbox: Path, owner: str, held: bool) -> None:
        """The candidate carries `Faktura 2/` from a listing made before `Faktura 2.pdf`
        came (or from retry's look at the names): the read asks the outbox as it is now
        and finds the folder that file's exact sidecar, whatever invoice extension it has
        and in whichever case. A file of no invoice pattern (`Faktura 2.txt`) owns
        nothing: the copy still holds Faktura.xml back."""
        write(outbox / "Faktura 2" / "a.pdf", PDF)
        inv = write(outbox / "Faktura.xml", ubl_invoice("F-1"))
        write(outbox / owner, PDF)
        cand = Candidate("Faktura", inv, outbox / "Faktura", outbox / "Faktura.ready",
                         ("Faktura 2",))
        b = assemble(cand, settings(outbox))
        assert [f.file for f in b.findings if f.code == "sidecar-spelling"] == (
            ["Faktura 2"] if held else [])

    @pytest.mark.parametrize("kind", ["fifo", "link"])
    def test_a_fifo_or_link_named_as_the_copys_invoice_file_owns_nothing(
            self, outbox: Path, tmp_path: Path, kind: str) -> None:
        """`INV-7 (1)/` beside INV-7.xml, and `INV-7 (1).xml` a FIFO (or a link to an
        invoice file elsewhere): the listing takes neither as an invoice file, so neither
        makes the folder its sidecar — the copy still holds INV-7.xml back. (The FIFO is
        only lstat'ed, never opened.)"""
        write(outbox / "INV-7 (1)" / "a.pdf", PDF)
        inv = write(outbox / "INV-7.xml", ubl_invoice("INV-7"))
        if kind == "fifo":
            os.mkfifo(outbox / "INV-7 (1).xml")
        else:
            (outbox / "INV-7 (1).xml").symlink_to(write(tmp_path / "real.xml",
                                                        ubl_invoice("INV-8")))
        cand = Candidate("INV-7", inv, outbox / "INV-7", outbox / "INV-7.ready",
                         ("INV-7 (1)",))
        b = assemble(cand, settings(outbox))
        assert [f.file for f in b.findings if f.code == "sidecar-spelling"] == ["INV-7 (1)"]

    def test_under_a_sidecar_suffix_a_copy_beside_a_file_of_its_name_still_holds(
            self, outbox: Path) -> None:
        """Where sidecars are NAME.att, Faktura 2.pdf's sidecar is `Faktura 2.att/`:
        `Faktura 2/` beside it is no sidecar of it, and still a copy's name to
        Faktura.xml."""
        write(outbox / "Faktura 2" / "a.pdf", PDF)
        inv = write(outbox / "Faktura.xml", ubl_invoice("F-1"))
        write(outbox / "Faktura 2.pdf", PDF)
        cand = Candidate("Faktura", inv, outbox / "Faktura.att", outbox / "Faktura.ready",
                         ("Faktura 2",))
        b = assemble(cand, settings(outbox, outbox={"sidecar_suffix": ".att"}))
        assert [f.file for f in b.findings if f.code == "sidecar-spelling"] == ["Faktura 2"]

    def test_a_file_named_like_the_invoice_file_with_a_space_is_no_look_alike(
            self, outbox: Path) -> None:
        """`INV-7.xml ` (a file) beside INV-7.xml is no folder made by copying the name:
        the page lists it as no invoice file; it does not hold INV-7.xml back."""
        write(outbox / "INV-7.xml ", b"<x/>")
        b = inv_7_listed(outbox)
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


class TestLookAlikeIdFolders:
    """A subfolder named like an id's folder but for upper and lower case: an
    `orphan-attachment` that says so (orphanfolders.orphan_folder_message)."""

    def test_invoice_folder_in_other_case_says_so(self, outbox: Path) -> None:
        """inv-2001/ beside an id INV-2001: one name to Windows, two to Linux."""
        write(outbox / "batch-42" / "inv-2001" / "x.pdf", PDF)
        b = match(outbox, "batch-42.xml", batch_xml("INV-2001", "INV-2002"))
        f = finding(b, "orphan-attachment")
        assert f.file == "batch-42/inv-2001"
        assert "looks like the folder of invoice INV-2001" in f.message
        assert "upper and lower case" in f.message and "rename it to INV-2001" in f.message
        assert "Unicode" not in f.message

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


class TestNameCollisions:
    """Attachments whose names collide as received or as sent (`name-collision`)."""

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


@pytest.mark.parametrize(("folder", "sidecar", "differs"), [
    ("inv-7 ", "INV-7", "it differs in upper and lower case"),
    ("Fakt\u00e9-7 ", "Fakte\u0301-7", "it is spelled with different Unicode characters"),
])
def test_a_look_alike_with_a_space_and_another_spelling_says_both(
        outbox: Path, folder: str, sidecar: str, differs: str) -> None:
    """`inv-7 /` beside INV-7.xml (a space at the end, and other case), or a folder with
    a space whose é is one character where the invoice file's is e and an accent: the
    error names the space and also the other difference — renamed to drop the space
    alone, the folder would still not be the sidecar."""
    write(outbox / folder / "a.pdf", PDF)
    write(outbox / f"{sidecar}.xml", b"<Invoice/>")
    found = told(outbox, f"{sidecar}.xml")
    assert set(found) == {folder}
    assert f'its name "{folder}" has a space at the end, which the sidecar\'s name has ' \
        f"not, and {differs} (easy to miss" in found[folder]
