"""attachments.toml (daemon/notes.py) as a clerk writes it, read through the matcher: a
type or note longer than any real one is refused, and what a finding quotes from the
file is cut to a length a person reads (docs/folder-convention.md, section 3)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import pdf_bytes, ubl_invoice, write

from daemon.bundle import Bundle
from daemon.config import Settings
from daemon.match import assemble
from daemon.scan import Candidate


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
