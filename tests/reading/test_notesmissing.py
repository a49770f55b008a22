"""An attachments.toml entry that names no attachment of its folder
(daemon/reading/notesmissing.py), read through the matcher from real folders: "which is not in the
folder — add the file" is said only when no file it could mean is there; otherwise the message
names the file as it is, where it lies, why it is not taken, and the fix (docs/folder-convention.md,
section 3; docs/codes.md, attachments-toml-missing-file)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from helpers import ubl_invoice, write
from matching import PDF, batch_xml, codes, finding, match

from daemon.bundle import Bundle

PLAIN = "which is not in the folder — add the file or remove its entry"


def notes(folder: Path, *keys: str) -> None:
    """folder/attachments.toml with an entry (type "X") for each key, written as TOML
    basic strings (JSON's escapes are TOML's)."""
    write(folder / "attachments.toml",
          "".join(f"[files.{json.dumps(k)}]\ntype = \"X\"\n" for k in keys).encode())


def missing(bundle: Bundle) -> str:
    """The one attachments-toml-missing-file message of `bundle`."""
    [f] = [f for f in bundle.findings if f.code == "attachments-toml-missing-file"]
    return f.message


class TestIgnoredElsewhere:
    @pytest.mark.parametrize(("name", "why"), [
        (".scan.pdf", "a hidden file (its name begins with a dot)"),
        ("scan.pdf.part", "a name for a file still being copied"),
    ])
    def test_a_root_entry_for_a_file_ignored_in_an_invoice_folder_says_where_and_why(
            self, outbox: Path, name: str, why: str) -> None:
        """A file of invoices A and B; INV-1/A/.scan.pdf (or scan.pdf.part) is there, and
        INV-1/attachments.toml names it: the clerk was told "not in the folder — add the
        file" of a file they see. The message says it lies in INV-1/A/, is ignored for
        its name, why, and that its entry goes into INV-1/A/attachments.toml."""
        write(outbox / "INV-1" / "A" / name, PDF)
        write(outbox / "INV-1" / "A" / "x.pdf", PDF)
        write(outbox / "INV-1" / "B" / "y.pdf", PDF)
        notes(outbox / "INV-1", name)
        message = missing(match(outbox, "INV-1.xml", batch_xml("A", "B")))
        assert message.startswith(f"names {name!r}, which is not in this folder but in "
                                  f"INV-1/A/, where it is ignored for its name: {why}")
        assert "its entry goes into INV-1/A/attachments.toml" in message
        assert "add the file" not in message

    def test_a_root_entry_for_a_hidden_file_in_the_invoice_id_folder_of_one_invoice(
            self, outbox: Path) -> None:
        """A file of one invoice whose attachments lie in INV-1/INV-1/ (a form
        docs/folder-convention.md, section 3, accepts too): a root entry for the hidden
        file there is told the same."""
        write(outbox / "INV-1" / "INV-1" / ".scan.pdf", PDF)
        write(outbox / "INV-1" / "INV-1" / "x.pdf", PDF)
        notes(outbox / "INV-1", ".scan.pdf")
        message = missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1")))
        assert message.startswith("names '.scan.pdf', which is not in this folder but in "
                                  "INV-1/INV-1/, where it is ignored for its name: a hidden")
        assert "an attachments.toml names the files of its own folder only" in message

    def test_an_entry_in_other_case_for_an_ignored_file_says_both(self, outbox: Path) -> None:
        """'.scan.pdf' in the entry, '.Scan.pdf' in the folder: both spellings, and that
        the file is ignored for its name."""
        write(outbox / "INV-1" / ".Scan.pdf", PDF)
        write(outbox / "INV-1" / "x.pdf", PDF)
        notes(outbox / "INV-1", ".scan.pdf")
        message = missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1")))
        assert message.startswith("names '.scan.pdf', which is not in the folder; '.Scan.pdf' "
                                  "is, written in other upper and lower case, and is ignored "
                                  "for its name: a hidden file")

    def test_an_entry_for_attachments_toml_itself_says_it_is_no_attachment(
            self, outbox: Path) -> None:
        write(outbox / "INV-1" / "x.pdf", PDF)
        notes(outbox / "INV-1", "attachments.toml")
        message = missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1")))
        assert message == ("names 'attachments.toml', which is in the folder but ignored for "
                           "its name: the file of types and notes itself, never an "
                           "attachment — remove the entry")


class TestCase:
    def test_a_root_entry_in_other_case_for_a_file_in_an_invoice_folder_names_both(
            self, outbox: Path) -> None:
        """'Timesheet.PDF' in INV-1/attachments.toml, 'timesheet.pdf' in INV-1/A/: "not
        in the folder" hid the file right there; the message names both spellings, the
        folder, and the entry to write there."""
        write(outbox / "INV-1" / "A" / "timesheet.pdf", PDF)
        write(outbox / "INV-1" / "B" / "y.pdf", PDF)
        notes(outbox / "INV-1", "Timesheet.PDF")
        message = missing(match(outbox, "INV-1.xml", batch_xml("A", "B")))
        assert message == (
            "names 'Timesheet.PDF', which is not in this folder; 'timesheet.pdf' is in "
            "INV-1/A/, written in other upper and lower case — move the entry into "
            'INV-1/A/attachments.toml, as [files."timesheet.pdf"]: in a file of several '
            "invoices, each invoice's folder has its own attachments.toml")

    def test_an_entry_in_other_case_in_an_invoice_folder_names_both(
            self, outbox: Path) -> None:
        """In INV-1/INV-1/attachments.toml (the invoice's own folder) as in the root."""
        write(outbox / "INV-1" / "INV-1" / "timesheet.pdf", PDF)
        notes(outbox / "INV-1" / "INV-1", "Timesheet.PDF")
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert finding(b, "attachments-toml-missing-file").file == \
            "INV-1/INV-1/attachments.toml"
        assert missing(b).startswith("names 'Timesheet.PDF', which is not in the folder; "
                                     "'timesheet.pdf' is, written in other upper and lower "
                                     "case — write the name in attachments.toml exactly")


class TestOtherFolder:
    @pytest.mark.parametrize("key", ["scan.pdf", "INV-1/scan.pdf", "INV-1\\scan.pdf"])
    def test_a_root_entry_for_a_file_in_the_invoice_id_folder_of_one_invoice(
            self, outbox: Path, key: str) -> None:
        """A file of one invoice, its attachment in INV-1/INV-1/, its entry in
        INV-1/attachments.toml (by its name or by a path, / or \\): the file is there, so
        the message says where, and that the entry goes into INV-1/INV-1/attachments.toml."""
        write(outbox / "INV-1" / "INV-1" / "scan.pdf", PDF)
        notes(outbox / "INV-1", key)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert missing(b) == (
            f"names {key!r}, which is not in this folder but in INV-1/INV-1/ — move the "
            'entry into INV-1/INV-1/attachments.toml, as [files."scan.pdf"]: an '
            "attachments.toml names the files of its own folder only")
        assert [a.rel for a in b.attachments] == ["INV-1/INV-1/scan.pdf"]

    def test_an_entry_in_the_invoice_id_folder_for_a_file_in_the_root(
            self, outbox: Path) -> None:
        """The other way round: INV-1/INV-1/attachments.toml names INV-1/scan.pdf."""
        write(outbox / "INV-1" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "INV-1" / "x.pdf", PDF)
        notes(outbox / "INV-1" / "INV-1", "scan.pdf")
        assert missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1"))).startswith(
            "names 'scan.pdf', which is not in this folder but in INV-1/ — move the entry "
            "into INV-1/attachments.toml")

    def test_a_root_entry_as_a_windows_path_to_an_invoice_folder(self, outbox: Path) -> None:
        """'A\\scan.pdf' (a path as Windows writes it) is told as 'A/scan.pdf' is."""
        write(outbox / "INV-1" / "A" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "B" / "y.pdf", PDF)
        notes(outbox / "INV-1", "A\\scan.pdf")
        assert "which is not in this folder but in INV-1/A/ — move the entry into " \
            "INV-1/A/attachments.toml" in missing(match(outbox, "INV-1.xml", batch_xml("A", "B")))

    @pytest.mark.parametrize("key", ["b.pdf", "T-2/b.pdf", "B.PDF"])
    def test_an_entry_in_an_invoice_folder_for_a_file_in_a_siblings_folder(
            self, outbox: Path, key: str) -> None:
        """A file of invoices T-1 and T-2; T-1/attachments.toml names b.pdf, which lies in
        T-2/ (listed after T-1/, too): "not in the folder — add the file" sent the clerk
        to add a file they see. The message says where it is and where its entry goes."""
        write(outbox / "batch" / "T-1" / "a.pdf", PDF)
        write(outbox / "batch" / "T-2" / "b.pdf", PDF)
        notes(outbox / "batch" / "T-1", key)
        message = missing(match(outbox, "batch.xml", batch_xml("T-1", "T-2")))
        assert "not in this folder" in message and "batch/T-2/" in message
        assert ("move the entry into batch/T-2/attachments.toml, as [files.\"b.pdf\"]: in a "
                "file of several invoices, each invoice's folder has its own "
                "attachments.toml") in message
        assert "add the file" not in message

    def test_a_root_entry_as_a_path_by_an_id_with_a_slash_names_the_ids_folder(
            self, outbox: Path) -> None:
        """A file of the one invoice 2026/5, its attachment in INV-9/2026_5/, and the root
        entry [files."2026/5/a.pdf"]: the id as the invoice shows it, which no folder's
        name can hold. The message says the file is in INV-9/2026_5/, why that folder
        is so named, and the heading to write there."""
        write(outbox / "INV-9" / "2026_5" / "a.pdf", PDF)
        notes(outbox / "INV-9", "2026/5/a.pdf")
        assert missing(match(outbox, "INV-9.xml", ubl_invoice("2026/5"))) == (
            "names '2026/5/a.pdf', which is not in this folder but in INV-9/2026_5/ (the "
            "folder of the invoice '2026/5': a / cannot be in a folder's name, so the "
            "folder is named '2026_5') — move the entry into INV-9/2026_5/attachments.toml, "
            'as [files."a.pdf"]: an attachments.toml names the files of its own folder only')


class TestNotAFileOfTheFolder:
    @pytest.mark.parametrize(("folder", "key", "xml"), [
        ("INV-1", "INV-1/scan.pdf", ubl_invoice("INV-1")),
        ("INV-1/A", "A/scan.pdf", batch_xml("A", "B")),
        ("INV-1/A", "INV-1/A/scan.pdf", batch_xml("A", "B")),
    ])
    def test_an_entry_written_as_a_path_to_a_file_of_its_own_folder(
            self, outbox: Path, folder: str, key: str, xml: bytes) -> None:
        """'A/scan.pdf' in INV-1/A/attachments.toml, beside scan.pdf: the entry is a
        path, as the clerk sees the file from the outbox; it is told to write the name
        alone."""
        write(outbox / folder / "scan.pdf", PDF)
        write(outbox / "INV-1" / "B" / "y.pdf", PDF)
        notes(outbox / folder, key)
        b = match(outbox, "INV-1.xml", xml)
        assert missing(b) == (f"names {key!r}, a path — write the file's name alone, as "
                              '[files."scan.pdf"]: an attachments.toml names the files of '
                              "its own folder")

    @pytest.mark.parametrize(("files", "key", "xml", "fix"), [
        (["INV-1/INV-1/scan.pdf"], "INV-1", ubl_invoice("INV-1"),
         "give its files their types and notes in INV-1/INV-1/attachments.toml"),
        (["INV-1/A/scan.pdf", "INV-1/B/y.pdf"], "A", batch_xml("A", "B"),
         "give its files their types and notes in INV-1/A/attachments.toml"),
        (["INV-1/x.pdf", "INV-1/October/scan.pdf"], "October", ubl_invoice("INV-1"),
         "write an entry for each file by its own name"),
    ])
    def test_an_entry_naming_a_folder_says_it_is_a_folder(
            self, outbox: Path, files: list[str], key: str, xml: bytes, fix: str) -> None:
        """[files."A"] for the folder INV-1/A/: "not in the folder" of a folder the clerk
        sees. It says the entry names a folder, and where its files' entries go."""
        for name in files:
            write(outbox / name, PDF)
        notes(outbox / "INV-1", key)
        message = missing(match(outbox, "INV-1.xml", xml))
        assert message.startswith(f"names {key!r}, which is a folder, not a file: an entry "
                                  f"gives one file a type and a note — {fix}")

    def test_an_entry_naming_the_invoice_file_says_it_is_no_attachment(
            self, outbox: Path) -> None:
        """[files."INV-1.xml"]: the invoice file lies beside the sidecar, not in it."""
        write(outbox / "INV-1" / "x.pdf", PDF)
        notes(outbox / "INV-1", "INV-1.xml")
        assert missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1"))) == (
            "names 'INV-1.xml', the invoice file itself, which is no attachment: "
            "attachments.toml gives a type and a note to the attachments in the sidecar "
            "folder only — remove the entry")


class TestSpaces:
    @pytest.mark.parametrize(("key", "ends"), [("scan.pdf ", "a space at the end"),
                                               (" scan.pdf", "a space at the start"),
                                               ("scan.pdf\u00a0", "a non-breaking space at "
                                                                  "the end")])
    def test_an_entry_with_a_space_at_an_end_names_the_file_without_it(
            self, outbox: Path, key: str, ends: str) -> None:
        """An entry copied with a space (or a non-breaking one, from a mail) around the
        name: both look alike on screen; the message says which end holds it."""
        write(outbox / "INV-1" / "scan.pdf", PDF)
        notes(outbox / "INV-1", key)
        assert missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1"))) == (
            f"names {key!r}, with {ends}, which is not in the folder; 'scan.pdf' is, "
            "without it — write the name in attachments.toml exactly as the file's")

    def test_a_file_with_a_space_at_its_end_is_named_by_the_entry_without_it(
            self, outbox: Path) -> None:
        write(outbox / "INV-1" / "scan.pdf ", PDF)
        notes(outbox / "INV-1", "scan.pdf")
        assert missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1"))) == (
            "names 'scan.pdf', which is not in the folder; 'scan.pdf ' is, with a space at "
            "the end — write the name in attachments.toml exactly as the file's, or rename "
            "the file")


class TestRefusedForItsName:
    @pytest.mark.parametrize(("raw", "key"), [
        (b"scan.pdf\r", "scan.pdf"),  # a line end a script left in the name
        ("Räkning.pdf".encode("latin-1"), "Räkning.pdf"),  # saved in Latin-1, not UTF-8
    ])
    def test_an_entry_for_a_bad_name_file_as_the_clerk_sees_it_is_not_missing(
            self, outbox: Path, raw: bytes, key: str) -> None:
        """A file refused for its name (bad-name), whose entry names it as it shows on the
        clerk's screen — without the control character they cannot see, or with the
        letter the Latin-1 byte shows as: the file's own error says to rename it; a
        second one, "not in the folder — add the file", sent the clerk after a file
        they see."""
        write(outbox / "INV-1" / os.fsdecode(raw), PDF)
        notes(outbox / "INV-1", key)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert codes(b) == ["bad-name"]


def test_an_entry_for_no_file_anywhere_keeps_the_plain_message(outbox: Path) -> None:
    """An entry no file of the sidecar answers in any spelling is still "not in the
    folder — add the file or remove its entry"."""
    write(outbox / "INV-1" / "INV-1" / "scan.pdf", PDF)
    write(outbox / "INV-1" / "x.pdf", PDF)
    notes(outbox / "INV-1", "gone.pdf")
    assert missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1"))) == f"names 'gone.pdf', {PLAIN}"


class TestWithoutExtension:
    def test_an_entry_without_its_files_extension_names_the_file_and_the_fix(
            self, outbox: Path) -> None:
        """Windows hides extensions: a clerk who sees "Tidrapport oktober" writes
        [files."Tidrapport oktober"] for Tidrapport oktober.pdf, and was told "not in the
        folder — add the file" beside the file. The message names the file, why its
        name looked so, and the entry to write."""
        write(outbox / "day" / "A" / "Tidrapport oktober.pdf", PDF)
        write(outbox / "day" / "B" / "y.pdf", PDF)
        notes(outbox / "day" / "A", "Tidrapport oktober")
        message = missing(match(outbox, "day.xml", batch_xml("A", "B")))
        assert message.startswith("names 'Tidrapport oktober', but the file is named "
                                  "'Tidrapport oktober.pdf', with its extension (Windows "
                                  "hides a file's extension")
        assert message.endswith('write the entry as [files."Tidrapport oktober.pdf"]')
        assert "add the file" not in message

    def test_an_entry_without_extension_that_fits_two_files_names_both(
            self, outbox: Path) -> None:
        """scan.pdf and scan.png beside [files."scan"]: which one is meant only the clerk
        knows, so both are named, and the entry is to carry the extension."""
        write(outbox / "INV-1" / "scan.pdf", PDF)
        write(outbox / "INV-1" / "scan.png", PDF)
        notes(outbox / "INV-1", "scan")
        message = missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1")))
        assert "the files are named 'scan.pdf' and 'scan.png', with their extensions" \
            in message
        assert "write the entry with the extension of the file it is meant for" in message

    def test_an_entry_with_another_extension_keeps_the_plain_message(
            self, outbox: Path) -> None:
        """scan.png for scan.pdf is no hidden extension: the clerk wrote one that is not
        there."""
        write(outbox / "INV-1" / "scan.pdf", PDF)
        notes(outbox / "INV-1", "scan.png")
        assert missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1"))) == \
            f"names 'scan.png', {PLAIN}"


class TestCloseName:
    def test_an_entry_one_typo_from_a_file_of_its_folder_names_that_file(
            self, outbox: Path) -> None:
        """[files."timsheet.pdf"] beside timesheet.pdf (a letter left out): the message
        names timesheet.pdf and how to write the entry, where "not in the folder — add
        the file" alone sent the clerk looking for a file they could see."""
        write(outbox / "INV-1" / "timesheet.pdf", PDF)
        write(outbox / "INV-1" / "contract.pdf", PDF)
        notes(outbox / "INV-1", "timsheet.pdf")
        said = missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1")))
        assert said == ("names 'timsheet.pdf', which is not in the folder; 'timesheet.pdf' "
                        "is, named close to it — if the entry means that file, write its "
                        'name exactly, as [files."timesheet.pdf"]; otherwise add the file '
                        "or remove the entry")

    def test_an_entry_far_from_every_file_keeps_the_plain_message(
            self, outbox: Path) -> None:
        """An entry two typos or more from every file is told only that it is missing:
        naming an unrelated file would send the clerk after the wrong one."""
        write(outbox / "INV-1" / "timesheet.pdf", PDF)
        notes(outbox / "INV-1", "tmsheet.pd")
        assert missing(match(outbox, "INV-1.xml", ubl_invoice("INV-1"))).endswith(PLAIN)
