"""The papers outboxd writes into an archive entry (receipt.json, reason.json,
REASON.txt; archive.write_papers) never go over a file it did not write: a clerk's notes
saved as REASON.txt in a quarantine entry, or a bundle's own file of a paper's name
(an invoice file REASON.txt under invoice_patterns "*"). Its own earlier paper — whole,
or cut short by a kill or a power loss — is written again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import ubl_invoice, write

from daemon import archive
from daemon.archive import place, reason_papers, reason_record

BID = "0123456789abcdef" * 4
NOTES = b"my notes: called the customer, new PO number follows\n"


def record() -> dict[str, object]:
    return reason_record(BID, "INV-1.xml", [], "2026-01-01T00:00:00Z")


def entry(root: Path) -> Path:
    """A bundle's folder (the work folder, or its entry once moved)."""
    write(root / "INV-1.xml", ubl_invoice("INV-1"))
    write(root / "INV-1" / "a.pdf", b"%PDF-a")
    return root


def test_a_clerks_notes_saved_as_reason_txt_after_the_move_are_kept(tmp_path: Path) -> None:
    """Moved into quarantine, then a crash before it was recorded; meanwhile a clerk saved
    notes as REASON.txt in the entry. The next try keeps them byte for byte, fails naming
    the file and what to do (the bundle stays quarantining, with that error), and writes
    REASON.txt once the notes are moved away."""
    target = entry(tmp_path / "quarantine" / "d" / "INV-1--0123456789ab")
    papers = reason_papers(record())
    archive.write_papers(target, papers)
    (target / "REASON.txt").write_bytes(NOTES)
    with pytest.raises(OSError, match="REASON.txt is not as outboxd wrote it.*rename or move"):
        place(tmp_path / "work", target, papers, BID)
    assert (target / "REASON.txt").read_bytes() == NOTES
    (target / "REASON.txt").rename(target / "my notes.txt")
    assert place(tmp_path / "work", target, papers, BID) == target
    assert (target / "REASON.txt").read_bytes() == papers["REASON.txt"]
    assert (target / "my notes.txt").read_bytes() == NOTES


def test_a_bundles_own_file_named_like_a_paper_is_never_written_over(tmp_path: Path) -> None:
    """A file of the bundle named REASON.txt in the work folder (an invoice file of that
    name, taken under invoice_patterns "*"): it is kept as it came, and the quarantine
    fails naming it instead of writing REASON.txt over it."""
    work = entry(tmp_path / "work")
    write(work / "REASON.txt", b"the clerk's invoice, named REASON.txt")
    target = tmp_path / "quarantine" / "d" / "INV-1--0123456789ab"
    with pytest.raises(OSError, match="REASON.txt is not as outboxd wrote it"):
        place(work, target, reason_papers(record()), BID)
    assert (work / "REASON.txt").read_bytes() == b"the clerk's invoice, named REASON.txt"
    assert not target.exists()


@pytest.mark.parametrize("left", ["whole", "cut-short", "zero-length", "nul-filled"])
def test_an_earlier_tries_paper_is_written_again(tmp_path: Path, left: str) -> None:
    """A kill between the writes of two papers, or a power loss that kept a paper's name
    but not its bytes, left outboxd's own paper in the work folder: the next try writes
    it again (it is outboxd's: what it writes there, or the start of it)."""
    work = entry(tmp_path / "work")
    papers = reason_papers(record())
    data = papers["REASON.txt"]
    write(work / "REASON.txt", {"whole": data, "cut-short": data[:20], "zero-length": b"",
                                "nul-filled": b"\0" * len(data)}[left])
    target = tmp_path / "quarantine" / "d" / "INV-1--0123456789ab"
    assert place(work, target, papers, BID) == target
    assert (target / "REASON.txt").read_bytes() == data
    assert sorted(os.listdir(target)) == ["INV-1", "INV-1.xml", "REASON.txt", "reason.json"]
