"""The papers outboxd writes into an archive entry (receipt.json, reason.json,
REASON.txt; archive_papers.write_papers) never go over a file it did not write: a clerk's notes
saved as REASON.txt in a quarantine entry, or a bundle's own file of a paper's name
(an invoice file REASON.txt under invoice_patterns "*"). Its own earlier paper — whole,
or cut short by a kill or a power loss — is written again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import ubl_invoice, write

from daemon.archiving import archive_papers
from daemon.archiving.archive import place
from daemon.archiving.archive_papers import reason_papers, reason_record
from daemon.archiving.papers import paper_of, remove_papers

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
    archive_papers.write_papers(target, papers)
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
    it again (it is outboxd's: what it writes there, or the start of it). A clerk's
    empty REASON.txt cannot be told from the zero-length case, and is written over too:
    it holds nothing to lose (papers.paper_look)."""
    work = entry(tmp_path / "work")
    papers = reason_papers(record())
    data = papers["REASON.txt"]
    write(work / "REASON.txt", {"whole": data, "cut-short": data[:20], "zero-length": b"",
                                "nul-filled": b"\0" * len(data)}[left])
    target = tmp_path / "quarantine" / "d" / "INV-1--0123456789ab"
    assert place(work, target, papers, BID) == target
    assert (target / "REASON.txt").read_bytes() == data
    assert sorted(os.listdir(target)) == ["INV-1", "INV-1.xml", "REASON.txt", "reason.json"]


def test_an_earlier_tries_receipt_over_a_mib_is_written_again(tmp_path: Path) -> None:
    """A receipt keeps the receiver's whole answer and can pass 1 MiB: an earlier try's,
    whole in the work folder, is still judged outboxd's by what it writes there, and the
    archive goes on — never stuck on its own paper as "not as outboxd wrote it"."""
    work = entry(tmp_path / "work")
    data = b'{"bundle_id": "' + BID.encode() + b'", "answer": "' + b"x" * (2 << 20) + b'"}\n'
    write(work / "receipt.json", data)
    target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
    assert place(work, target, {"receipt.json": data}, BID) == target
    assert (target / "receipt.json").read_bytes() == data


def test_a_receipt_naming_another_bundle_is_never_written_over(tmp_path: Path) -> None:
    """A receipt.json in the work folder that names another bundle (a clerk's copy of
    another entry's) is not this bundle's paper: kept as it is, the archive failing
    naming it, never replaced by this bundle's receipt."""
    work = entry(tmp_path / "work")
    theirs = b'{"bundle_id": "' + b"fedcba9876543210" * 4 + b'"}\n'
    write(work / "receipt.json", theirs)
    target = tmp_path / "sent" / "d" / "INV-1--0123456789ab"
    papers = {"receipt.json": b'{"bundle_id": "' + BID.encode() + b'"}\n'}
    with pytest.raises(OSError, match="receipt.json is not as outboxd wrote it"):
        place(work, target, papers, BID)
    assert (work / "receipt.json").read_bytes() == theirs and not target.exists()


@pytest.mark.parametrize("invoice_file", ["../INV-1.xml", "sub/INV-1.xml", "", ".."])
def test_a_paper_naming_its_invoice_file_by_a_path_is_not_outboxds(invoice_file: str) -> None:
    """A paper is that of the bundle a folder's name carries only when it names its
    invoice file by a plain name: one naming a path (which the orphan sweep and the
    quarantine read-back would go on to look for) is someone else's."""
    assert paper_of(BID[:12], {"bundle_id": BID, "invoice_file": "INV-1.xml"})
    assert not paper_of(BID[:12], {"bundle_id": BID, "invoice_file": invoice_file})


# REASON.txt as outboxd's first version wrote it (its header over two lines, the steps
# in one sentence): an upgrade changed the wording while this entry's move waited.
OLD_REASON = (f"outboxd quarantined INV-1.xml (bundle {BID})\n"
              "at 2026-01-01T00:00:00Z for these reasons:\n\n"
              "Nothing was sent. Fix what is listed above, then move back into the outbox "
              "from this folder first the sidecar folder, if this folder holds one, then "
              "the invoice file;\noutboxd will check and send them again.\n").encode()
WRITTEN = 1_700_000_000 * 1_000_000_000  # when the earlier version wrote both papers


def older_papers(folder: Path, reason: bytes, reason_at: int, json_bid: str = BID) -> None:
    """reason.json and REASON.txt as an earlier version left them in `folder`, with their
    times (ns): reason.json at WRITTEN, REASON.txt at `reason_at`."""
    write(folder / "reason.json",
          archive_papers.reason_papers(reason_record(json_bid, "INV-1.xml", [],
                                              "2026-01-01T00:00:00Z"))["reason.json"])
    write(folder / "REASON.txt", reason)
    os.utime(folder / "reason.json", ns=(WRITTEN, WRITTEN))
    os.utime(folder / "REASON.txt", ns=(reason_at, reason_at))


def test_an_earlier_versions_reason_txt_is_outboxds_and_written_anew(tmp_path: Path) -> None:
    """A quarantine move waited across an upgrade that changed REASON.txt's wording: the
    work folder holds REASON.txt in the old wording beside the reason.json written with it.
    It is outboxd's (its first line names this bundle, as reason.json does, and both were
    written together): the move writes today's REASON.txt and goes on, no admin needed."""
    work = entry(tmp_path / "work")
    older_papers(work, OLD_REASON, WRITTEN + 1_000_000)
    papers = reason_papers(record())
    target = tmp_path / "quarantine" / "d" / "INV-1--0123456789ab"
    assert place(work, target, papers, BID) == target
    assert (target / "REASON.txt").read_bytes() == papers["REASON.txt"]
    assert sorted(os.listdir(target)) == ["INV-1", "INV-1.xml", "REASON.txt", "reason.json"]


@pytest.mark.parametrize("case", ["lines-added-later", "another-bundles-header",
                                  "no-reason-json", "notes-without-header"])
def test_a_reason_txt_a_clerk_wrote_or_added_to_is_theirs_whatever_its_start(
        tmp_path: Path, case: str) -> None:
    """What only looks like an earlier version's REASON.txt stays as it is and the move
    waits naming it: lines a clerk added (the file is newer than reason.json), a first
    line naming another bundle than reason.json does, no reason.json beside it, or a
    clerk's notes without outboxd's first line (written with reason.json all the same)."""
    target = entry(tmp_path / "quarantine" / "d" / "INV-1--0123456789ab")
    reason = {"lines-added-later": OLD_REASON + NOTES,
              "another-bundles-header": OLD_REASON.replace(BID.encode(), b"f" * 64),
              "no-reason-json": OLD_REASON, "notes-without-header": NOTES}[case]
    older_papers(target, reason, WRITTEN + (3600 * 10**9 if case == "lines-added-later" else 0))
    if case == "no-reason-json":
        (target / "reason.json").unlink()
    with pytest.raises(OSError, match="REASON.txt is not as outboxd wrote it.*rename or move"):
        place(tmp_path / "work", target, reason_papers(record()), BID)
    assert (target / "REASON.txt").read_bytes() == reason


def test_retry_removes_an_earlier_versions_reason_txt_and_keeps_a_clerks(
        tmp_path: Path) -> None:
    """`outboxd retry` of an entry an earlier version quarantined (remove_papers, with the
    12-character id of the folder's name): its REASON.txt in the old wording goes with
    reason.json; the same text with a clerk's lines added later stays, named."""
    ours = tmp_path / "ours"
    ours.mkdir()
    older_papers(ours, OLD_REASON, WRITTEN)
    rec = archive_papers.reason_of(ours)
    assert remove_papers(ours, BID[:12], rec) == []
    assert os.listdir(ours) == []

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    older_papers(theirs, OLD_REASON + NOTES, WRITTEN + 3600 * 10**9)
    [left] = remove_papers(theirs, BID[:12], archive_papers.reason_of(theirs))
    assert "REASON.txt is not as outboxd wrote it" in left
    assert (theirs / "REASON.txt").read_bytes() == OLD_REASON + NOTES
    assert not (theirs / "reason.json").exists()


def test_a_reason_read_at_a_folder_held_is_that_folders_whatever_its_path_names_now(
        tmp_path: Path) -> None:
    """reason_of(folder, at=the folder held) reads the reason.json of the folder held,
    even once its path names another folder (moved aside, a link put in its place); a
    folder held without one has none (None), and errors still name the path."""
    held_dir, other = tmp_path / "W", tmp_path / "other"
    held_dir.mkdir()
    other.mkdir()
    (held_dir / "reason.json").write_text('{"bundle_id": "ours"}')
    (other / "reason.json").write_text('{"bundle_id": "theirs"}')
    fd = os.open(held_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        held_dir.rename(tmp_path / "aside")
        held_dir.symlink_to(other)
        assert archive_papers.reason_of(held_dir, at=fd) == {"bundle_id": "ours"}
        os.unlink("reason.json", dir_fd=fd)
        assert archive_papers.reason_of(held_dir, at=fd) is None
    finally:
        os.close(fd)
