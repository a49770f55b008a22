"""attachments.toml (daemon/reading/notes.py) as a clerk writes it, read through the matcher: the
type, note and channel it sets, the errors that name its file, its key and the fix; a
type or note longer than any real one is refused, and what a finding quotes from the
file is cut to a length a person reads (docs/folder-convention.md, section 3)."""

from __future__ import annotations

import errno
import os
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from helpers import looks_fail, pdf_bytes, ubl_invoice, write
from matching import PDF, batch_xml, codes, finding, match
from swaps import opened_in

from daemon.bundle import Bundle
from daemon.configuration.config import Settings
from daemon.errors import InputError
from daemon.reading import notes
from daemon.reading.match import assemble
from daemon.validation.cutshort import TOML_CUT_SHORT, looks_cut_short
from daemon.watching.scan import Candidate

# attachments.toml as a clerk or `outboxd attach` writes it, with each kind of value.
NOTES = """channel = "e-invoice"

[files."scan 1.pdf"]
type = "delivery-note"
note = \"\"\"Signed by the driver,
two pages\"\"\"

[files."hours.xlsx"]
type = "timesheet"
note = "März"
tags = ["a", "b"]
paid = true
""".encode()


def bundle_with(tmp_path: Path, toml: str, notes_name: str = "attachments.toml") -> Bundle:
    """INV-1.xml with INV-1/scan.pdf and INV-1/attachments.toml (or `notes_name`) holding
    `toml`."""
    outbox = tmp_path / "outbox"
    invoice = write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    write(outbox / "INV-1" / "scan.pdf", pdf_bytes())
    write(outbox / "INV-1" / notes_name, toml.encode("utf-8"))
    settings = Settings(outbox={"path": str(outbox)},
                        paths={"state_dir": str(tmp_path / "state")},
                        delivery={"url": "http://127.0.0.1:9/x"})
    return assemble(Candidate("INV-1", invoice, outbox / "INV-1", outbox / "INV-1.ready"),
                    settings)


@pytest.mark.parametrize("key", ["note", "type"])
def test_a_note_or_type_of_a_megabyte_is_refused_not_carried_into_the_manifest(
        tmp_path: Path, key: str) -> None:
    """A note (or type) of 1,000,000 characters, text pasted by mistake: an error naming
    the file, the entry, the length, the limit and the fix; the value is not taken, so
    it reaches no manifest, journal or receipt."""
    b = bundle_with(tmp_path, f'[files."scan.pdf"]\n{key} = "{"x" * 1_000_000}"\n')
    [error] = b.errors
    assert (error.code, error.file) == ("attachments-toml-invalid", "INV-1/attachments.toml")
    assert error.message == (
        f"[files.'scan.pdf'] {key} is 1,000,000 characters long; a type or a note may have "
        "at most 2,000 — shorten it, and put longer text in a document of its own")
    [scan] = b.attachments
    assert (scan.document_type, scan.note) == ("Attachment", "")


def test_a_blank_type_is_refused_and_an_empty_one_is_the_default(tmp_path: Path) -> None:
    """type = "   " went to the receiver as a document type of blanks: an error naming the
    entry and the fix. type = "" is what it always was, no type of its own: the default."""
    blank = bundle_with(tmp_path / "a", '[files."scan.pdf"]\ntype = "   "\n')
    [error] = blank.errors
    assert (error.code, error.file) == ("attachments-toml-invalid", "INV-1/attachments.toml")
    assert error.message == ("[files.'scan.pdf'] type is blank — give a document type, or "
                             "leave the type out for the default one ([attachments] "
                             "default_document_type)")
    empty = bundle_with(tmp_path / "b", '[files."scan.pdf"]\ntype = ""\n')
    assert empty.errors == () and empty.attachments[0].document_type == "Attachment"


def test_a_note_of_2000_characters_is_taken_and_one_more_is_not(tmp_path: Path) -> None:
    """The limit itself is allowed: a note of 2,000 characters goes into the manifest;
    2,001 is refused."""
    taken = bundle_with(tmp_path / "a", f'[files."scan.pdf"]\nnote = "{"n" * 2000}"\n')
    assert taken.errors == () and taken.attachments[0].note == "n" * 2000
    refused = bundle_with(tmp_path / "b", f'[files."scan.pdf"]\nnote = "{"n" * 2001}"\n')
    assert [e.code for e in refused.errors] == ["attachments-toml-invalid"]
    assert "note is 2,001 characters long" in refused.errors[0].message


def test_what_a_finding_quotes_from_attachments_toml_is_cut(tmp_path: Path) -> None:
    """A channel of 100,000 characters, an unknown key of 5,000 and an entry for a file
    name of 300 (no such file can exist): each error quotes 200 characters of it and its
    length, so that NAME.errors.txt and REASON.txt stay readable."""
    toml = (f'channel = "{"c" * 100_000}"\n{"k" * 5_000} = 1\n'
            f'[files."{"n" * 300}.pdf"]\ntype = "Contract"\n')
    b = bundle_with(tmp_path, toml)
    messages = sorted(e.message for e in b.errors)
    assert len(messages) == 3
    assert all(len(m) < 600 for m in messages), [len(m) for m in messages]
    assert messages[0].startswith("channel = '" + "c" * 199 + "… (100,002 characters) is not "
                                  "a channel")
    assert messages[1].startswith("names '" + "n" * 200 + "'… (304 characters), which is "
                                  "not in the folder")
    assert messages[2].startswith("unknown key '" + "k" * 200 + "'… (5,000 characters)")


@pytest.mark.parametrize(("name", "notepad"), [
    ("Attachments.toml", False), ("ATTACHMENTS.TOML", False), ("attachment.toml", False),
    ("attachments.toml.txt", True), ("attachments.toml ", False)])
def test_a_notes_file_named_almost_attachments_toml_is_an_error_not_an_attachment(
        tmp_path: Path, name: str, notepad: bool) -> None:
    """A clerk's notes file under another case, one letter short, or with the ".txt"
    Notepad adds (hidden on Windows): its types and notes would not apply, and sent as a
    text attachment (or refused as "a plain text file — export it as PDF") it would say
    nothing of the slip. It is no attachment; the error names it and says to rename it."""
    b = bundle_with(tmp_path, '[files."scan.pdf"]\ntype = "T"\n', name)
    [error] = b.errors
    assert (error.code, error.file) == ("attachments-toml-invalid", f"INV-1/{name}")
    assert error.message.startswith(
        "is named like attachments.toml, but the types, notes and channel in it are read "
        "only from a file named exactly attachments.toml, in lower case")
    assert error.message.endswith("— rename it to attachments.toml, or remove it")
    assert ("Notepad adds .txt" in error.message) is notepad
    assert [a.original_name for a in b.attachments] == ["scan.pdf"]


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

    def test_a_channel_in_any_case_is_the_channel_as_in_the_configuration(
            self, outbox: Path) -> None:
        """A clerk's channel = "External-Print" is read as "external-print", as the
        configuration's [validation] channel takes it in any case: one spelling of the same
        word must not send a bundle on the print channel from outboxd.toml but quarantine
        it from attachments.toml. The root and a subfolder that differ only in case agree,
        and a word that is no channel in any case is still an error listing the channels."""
        write(outbox / "INV-1" / "attachments.toml", b'channel = "External-Print"\n')
        write(outbox / "INV-1" / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "INV-1" / "attachments.toml", b'channel = "EXTERNAL-PRINT"\n')
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert b.errors == () and b.channel == "external-print"
        write(outbox / "INV-2" / "attachments.toml", b'channel = "Print"\n')
        bad = finding(match(outbox, "INV-2.xml", ubl_invoice("INV-2")), "attachments-toml-invalid")
        assert bad.message == ("channel = 'Print' is not a channel — use one of e-invoice, "
                               "external-print, original-print")

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

    @pytest.mark.parametrize("text", [b'[[files]]\n[files."a.pdf"]\ntype = "Contract"\n',
                                      b'files = "a.pdf"\n'])
    def test_files_that_is_no_table_of_headings_is_not_called_an_unknown_key(
            self, outbox: Path, text: bytes) -> None:
        """`[[files]]` (a list, double brackets) or `files = "…"` is the right key in the
        wrong form: the error says how to write it, not "unknown key 'files'" beside an
        allowed list naming files (fuzz seed 37, case 239)."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", text)
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert f.file == "INV-1/attachments.toml" and "unknown key" not in f.message
        assert f.message.startswith("files is not a heading") \
            and 'write each file\'s heading as [files."NAME"]' in f.message

    def test_unknown_key_in_a_file_entry(self, outbox: Path) -> None:
        """A file entry may only hold type and note; the error names the key the clerk
        wrote (a typo such as 'tpye'), so that they can find it in the file."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'[files."a.pdf"]\ntpye = "Contract"\n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert "a.pdf" in f.message and "'tpye'" in f.message
        assert 'type = "…"' in f.message and "spelling" in f.message

    def test_a_value_not_in_quotes_in_a_file_entry_is_named(self, outbox: Path) -> None:
        """A type or note written without quotes (a number) is an error naming that key
        and telling to quote it."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'[files."a.pdf"]\nnote = 2024\n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert f.message.startswith("[files.'a.pdf'] note is not text") and "quotes" in f.message

    def test_a_file_entry_that_is_no_table_says_how_to_write_one(self, outbox: Path) -> None:
        """files."a.pdf" = "Contract" (a value, not a table) is an error that shows the
        table's header line to write."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'files."a.pdf" = "Contract"\n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert '[files."a.pdf"] on a line of its own' in f.message

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

    def test_a_syntax_mistake_shows_its_line_and_how_a_value_and_a_heading_are_written(
            self, outbox: Path) -> None:
        """A clerk's commonest slip, a type without its quotes (`type = Timesheet`), was
        told as tomllib's "Invalid value (at line 2, column 8)" and "fix the syntax", which
        says neither what is wrong nor how it is written. The message shows that line and
        how a value and a file's heading are written."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml",
              b'[files."a.pdf"]\ntype = Timesheet\nnote = "Signed"\n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert "line 2 reads 'type = Timesheet'" in f.message, f.message
        assert 'type = "Timesheet"' in f.message and '[files."scan.pdf"]' in f.message

    @pytest.mark.parametrize("text", [b'[files.a.pdf]\ntype = "Contract"\n',
                                      b'files.a.pdf.type = "Contract"\n'])
    def test_a_file_name_with_a_dot_written_without_quotes_is_told_to_be_quoted(
            self, outbox: Path, text: bytes) -> None:
        """[files.a.pdf] is valid TOML for the file 'a' holding a table 'pdf': the clerk
        was told "[files.'a'] holds the key 'pdf' … check the spelling", of a spelling
        that was right. The message says the name was cut at its dot and gives the
        heading with quotes; the entry gives no type."""
        write(outbox / "day" / "A" / "a.pdf", PDF)
        write(outbox / "day" / "A" / "attachments.toml", text)
        b = match(outbox, "day.xml", batch_xml("A", "B"))
        f = finding(b, "attachments-toml-invalid")
        assert f.message == ("[files.a.pdf] is read as the file 'a', its name cut at the "
                             "dot: a file's name in a heading needs double quotes — write "
                             '[files."a.pdf"]'), f.message
        assert "spelling" not in f.message

    def test_a_table_inside_a_real_entry_is_still_an_unknown_key(self, outbox: Path) -> None:
        """[files."a.pdf".extra] under an entry with its type is no name cut at a dot."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml",
              b'[files."a.pdf"]\ntype = "X"\n[files."a.pdf".extra]\nx = 1\n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert "holds the key 'extra'" in f.message

    def test_a_heading_whose_name_has_a_space_and_no_quotes_shows_it_quoted(
            self, outbox: Path) -> None:
        """[files.Tidrapport oktober.pdf] is a syntax error; the fix shows that very
        heading with its quotes rather than an example of another name."""
        write(outbox / "INV-1" / "Tidrapport oktober.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml",
              b'[files.Tidrapport oktober.pdf]\ntype = "Timesheet"\n')
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert f.message.endswith("— write the file's name in double quotes: "
                                  '[files."Tidrapport oktober.pdf"]'), f.message

    @pytest.mark.parametrize("text", [
        b'[files."a.pdf"]\ntype = "X"\n\n[files."a.pdf"]\nnote = "y"\n',
        b'[files."a.pdf"]\ntype = "X"\ntype = "Y"\n'])
    def test_an_entry_or_key_written_twice_is_told_so_not_to_add_quotes(
            self, outbox: Path, text: bytes) -> None:
        """A file's heading (or its type) written twice: tomllib's "Cannot declare
        ('files', 'a.pdf') twice" came with "each value in double quotes", where none
        was missing. The fix says to keep one."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", text)
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert "is written twice: keep one" in f.message, f.message
        assert "double quotes" not in f.message

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

    @pytest.mark.parametrize(("data", "cut_short"), [
        (NOTES[:NOTES.index(b"Signed") + 3], True),  # inside a string
        (NOTES[:NOTES.index(b"two pages") + 3], True),  # inside a multi-line string
        (NOTES[:NOTES.index(b'"b"') + 1], True),  # inside an array
        (NOTES[:NOTES.index(b"hours.xlsx") + 2], True),  # inside a table's name
        (NOTES[:NOTES.index(b"true") + 2], True),  # mid-word: `paid = tr`
        (NOTES[:NOTES.index(b"type =") + 6], True),  # a key without its value
        (NOTES[:100] + bytes(len(NOTES) - 100), True),  # sized first, filled up to here
        (NOTES[:NOTES.index("ä".encode()) + 1], True),  # inside a UTF-8 character
        (NOTES.replace(b'type = "timesheet"', b"type = timesheet"), False),
        (NOTES.replace(b'[files."scan 1.pdf"]', b'[files."scan 1.pdf"'), False),
        (NOTES.rstrip(b"\n") + b"\nnote = hello\n", False),
        (NOTES.replace("ä".encode(), "ä".encode("cp1252")), False),
    ], ids=["string", "multi-line-string", "array", "table-name", "mid-word", "no-value",
            "zero-tail", "mid-character", "unquoted-value", "unclosed-table-name",
            "unquoted-last-line", "not-utf8"])
    def test_only_an_attachments_toml_that_breaks_off_at_its_end_is_said_to_be_cut_short(
            self, outbox: Path, data: bytes, cut_short: bool) -> None:
        """A copy stopped mid-file leaves TOML that fails only where its text ends: that
        message starts with TOML_CUT_SHORT (what cutshort.py holds the bundle through its
        grace for). A mistake with more of the file after it, even on the last line when
        its line break follows, is an error to fix, told as before."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", data)
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        [f] = [f for f in b.errors if f.code == "attachments-toml-invalid"]
        assert f.message.startswith(TOML_CUT_SHORT) is cut_short, f.message
        assert looks_cut_short(b.errors) is cut_short

    def test_a_number_of_thousands_of_digits_is_said_not_raised(self, outbox: Path) -> None:
        """A whole number of 5,000 digits is valid TOML that Python's int() refuses past
        4,300 digits: a ValueError escaped the read of the bundle (a traceback for the
        admin, nothing for the clerk). It is an error naming the file, what is wrong and
        what a notes file holds."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml",
              b'[files."a.pdf"]\ntype = "Timesheet"\nn = ' + b"7" * 5000 + b"\n")
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert f.file == "INV-1/attachments.toml"
        assert f.message == ("cannot be read as TOML: it holds a number of more than 4,300 "
                             "digits, far more than notes on attachments need — keep only "
                             "the notes and the channel")

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

    def test_an_attachments_toml_with_a_byte_order_mark_is_read_as_utf8(
            self, outbox: Path) -> None:
        """Notepad's "UTF-8 with BOM" (and older Notepad's "UTF-8") writes EF BB BF first:
        invisible to the clerk, it quarantined the bundle with "Invalid statement (at
        line 1, column 1)" and "fix the syntax", which was right. Its type and note are
        taken as written."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'\xef\xbb\xbf[files."a.pdf"]\r\n'
              b'type = "Timesheet"\r\nnote = "Timmar f\xc3\xb6r oktober"\r\n')
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert not b.errors
        [a] = b.attachments
        assert (a.document_type, a.note) == ("Timesheet", "Timmar för oktober")

    def test_an_attachments_toml_in_utf16_says_utf16_not_ansi(self, outbox: Path) -> None:
        """Notepad's "Unicode" (UTF-16 with its byte order mark): the message said "line 1
        holds the byte 0xff … such as Windows' ANSI"; it names UTF-16 and the fix."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml",
              '[files."a.pdf"]\r\ntype = "Timesheet"\r\n'.encode("utf-16"))
        f = finding(match(outbox, "INV-1.xml", ubl_invoice("INV-1")), "attachments-toml-invalid")
        assert f.message == ('is not UTF-8 text: it was saved as UTF-16 ("Unicode" or "UTF-16 '
                             'LE" in Notepad\'s Encoding list) — save it again as UTF-8')

    @pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE])
    def test_an_attachments_toml_the_share_fails_to_give_is_no_finding(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """An I/O error or a share gone stale while attachments.toml is read is the
        machine's fault: raised as the OSError it is, so the bundle is read again later
        (as for an attachment's bytes), not held or quarantined with "fix the syntax"
        and the server's path on the share."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'channel = "e-invoice"\n')
        looks_fail(monkeypatch, "attachments.toml", code, ("open",))
        with pytest.raises(OSError) as info:
            match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert not isinstance(info.value, InputError) and info.value.errno == code

    @pytest.mark.parametrize("code", [errno.EIO, errno.ESTALE])
    def test_an_attachments_toml_the_share_cannot_look_at_is_not_read_as_none(
            self, outbox: Path, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
        """A share that blinks at the lstat of attachments.toml: whether it is there is not
        known, so the read raises (read again later) instead of going on without it — its
        channel, document types and notes the defaults, an external-print bundle
        validated for e-invoice."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'channel = "external-print"\n')
        looks_fail(monkeypatch, "attachments.toml", code, ("stat",))
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

    def test_an_entry_for_a_file_refused_for_its_name_is_not_said_to_be_missing(
            self, outbox: Path) -> None:
        """INV-1/a\\x07.pdf (a control character: bad-name) with an entry for it in
        attachments.toml: the file is there, so "not in the folder — add the file" sent
        the clerk looking for a file they can see. The file's own bad-name finding says
        what to fix; the entry gets no error of its own."""
        write(outbox / "INV-1" / "a\x07.pdf", PDF)
        write(outbox / "INV-1" / "attachments.toml", b'[files."a\\u0007.pdf"]\ntype = "X"\n')
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert codes(b) == ["bad-name"]
        assert finding(b, "bad-name").file == "INV-1/a\\x07.pdf"

    def test_an_entry_for_a_link_is_not_said_to_be_missing(
            self, outbox: Path, tmp_path: Path) -> None:
        """INV-1/scan.pdf a symbolic link, with an entry in attachments.toml: the link's
        not-a-file finding says to put the file itself there; no "add the file"."""
        target = write(tmp_path / "elsewhere.pdf", PDF)
        (outbox / "INV-1").mkdir(parents=True)
        os.symlink(target, outbox / "INV-1" / "scan.pdf")
        write(outbox / "INV-1" / "attachments.toml", b'[files."scan.pdf"]\ntype = "X"\n')
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
        assert codes(b) == ["not-a-file"]

    @pytest.mark.parametrize(("name", "why", "fix"), [
        ("~$scan.docx", "the lock file an office program keeps while a document is open",
         "name the document itself in the entry"),
        (".~lock.scan.odt#", "the lock file an office program keeps while a document is open",
         "name the document itself in the entry"),
        ("scan.pdf.part", "a name for a file still being copied, downloaded or edited",
         "give the file its final name once it is complete"),
        (".DS_Store", "a file Windows, a Mac, a NAS or an editor keeps beside the files",
         "remove the entry"),
        (".scan.pdf", "a hidden file (its name begins with a dot)",
         "rename the file without the dot at its start"),
        ("scan.bak", "a name the admin set outboxd to ignore ([outbox] ignore_patterns)",
         "rename the file"),
    ])
    def test_an_entry_for_a_file_ignored_by_its_name_says_it_is_there_but_ignored(
            self, outbox: Path, name: str, why: str, fix: str) -> None:
        """An entry naming a file that is in the folder under a name outboxd ignores (a
        lock, an in-progress name, desktop litter, a hidden file, the admin's
        ignore_patterns) got "which is not in the folder — add the file": the clerk sees
        the file there. The message says it is there but ignored, why (by its name),
        and the fix; it is still an error (the entry's file is not sent)."""
        write(outbox / "INV-1" / "a.pdf", PDF)
        write(outbox / "INV-1" / name, PDF)
        write(outbox / "INV-1" / "attachments.toml", f'[files."{name}"]\ntype = "X"\n'.encode())
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"),
                  outbox={"ignore_patterns": ["*.bak"]})
        [f] = b.errors
        assert (f.code, f.file) == ("attachments-toml-missing-file", "INV-1/attachments.toml")
        assert f.message.startswith(f"names {name!r}, which is in the folder but ignored "
                                    f"for its name: {why}")
        assert fix in f.message.partition(" — ")[2]
        assert "add the file" not in f.message
        assert [a.original_name for a in b.attachments] == ["a.pdf"]

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
        assert f.file == "INV-1/attachments.toml"
        assert "is larger than 1.0 MB (1,048,576 bytes), far more" in f.message


@pytest.mark.parametrize("swapped_for", ["link", "fifo"])
def test_an_attachments_toml_swapped_after_its_stat_is_refused_and_never_followed(
        outbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        swapped_for: str) -> None:
    """attachments.toml replaced by a link to a file outside the outbox (or by a FIFO)
    between the look that found a regular file and its open: an error naming it and
    what it is now; the file outside never opened (nor the FIFO: the read would block),
    and the bundle's notes are none."""
    outside = tmp_path / "outside"
    secret = write(outside / "attachments.toml", b'[files."a.pdf"]\nnote = "outside"\n')
    write(outbox / "INV-1" / "a.pdf", PDF)
    toml = write(outbox / "INV-1" / "attachments.toml", b'[files."a.pdf"]\nnote = "ours"\n')
    real_open_in = notes.open_in

    def swap_then_open(fd: int, name: str, shown: str, listed: bool = False) -> Any:
        toml.unlink()
        if swapped_for == "link":
            toml.symlink_to(secret)
        else:
            os.mkfifo(toml)
        return real_open_in(fd, name, shown, listed)

    monkeypatch.setattr(notes, "open_in", swap_then_open)
    with opened_in(outside) as opened:
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
    assert opened == []
    f = finding(b, "symlink" if swapped_for == "link" else "not-a-file")
    assert f.file == "INV-1/attachments.toml"
    assert ("symbolic link" if swapped_for == "link" else "FIFO") in f.message
    assert all(a.note in ("", None) for a in b.attachments)
