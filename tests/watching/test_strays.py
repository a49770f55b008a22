"""Folders of the outbox root nothing is sent from (daemon/watching/strays.py): invoice files
inside a folder, and attachments that came after their invoice file left; and which it
must not list (a sidecar that waits for its invoice file, a link)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from helpers import write

from daemon.configuration.config_sections import OutboxConfig, ShareConfig
from daemon.watching import strays
from daemon.watching.strays import StrayFolders

SENT = ("L1.xml", "sent", "2026-05-01T10:31:00.000Z", "/srv/sent/2026-05-01/L1--0123")
SHARE = ShareConfig()
QUARANTINED = ("Q1.xml", "quarantined", "2026-05-01T11:02:00.000Z",
               "/srv/quarantine/2026-05-01/Q1--4567")


def folder(outbox: Path, name: str) -> None:
    (outbox / name).mkdir()
    (outbox / name / "timesheet.pdf").write_bytes(b"%PDF-1.4")


def test_a_folder_named_for_an_invoice_file_that_left_says_what_happened_and_what_to_do(
        tmp_path: Path) -> None:
    """A late folder for a sent invoice file: nothing in it is sent, send the files
    another way (putting the invoice back would send it twice). For a quarantined one:
    move the invoice file back from its quarantine folder (named, not the server's path)."""
    folder(tmp_path, "L1")
    folder(tmp_path, "Q1")
    found = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, [],
                                lambda _: [SENT, QUARANTINED])
    why = {x.name: x.why for x in found}
    assert why["L1"].startswith("named as the attachments of L1.xml, which was sent at "
                                "2026-05-01 10:31 UTC before this folder came; nothing in "
                                "L1 is sent — send these files to the customer another way")
    assert "would send the invoice a second time" in why["L1"]
    assert "quarantined at 2026-05-01 11:02 UTC (folder Q1--4567)" in why["Q1"]
    assert "move it from its quarantine folder back into the outbox" in why["Q1"]
    assert "/srv" not in why["Q1"]


def test_a_sidecar_waiting_for_its_invoice_file_or_beside_it_is_not_listed(
        tmp_path: Path) -> None:
    """A folder no invoice file of its name left lately is a sidecar written before its
    invoice file (an ERP's order): not listed. Nor is the sidecar of an invoice file in
    the outbox, even when one of that name was sent before (a name used again)."""
    folder(tmp_path, "NEW-1")
    folder(tmp_path, "L1")
    found = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, ["L1.xml"], lambda _: [SENT])
    assert found == []


def test_a_folder_that_came_while_its_invoice_was_being_sent_is_listed_once_it_is_sent(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The late folder came while its invoice file was claimed and being delivered (not
    sent yet): not listed then, and listed once the journal says sent, though the folder
    itself did not change. Its entries are looked into once; the journal is read once a
    call, not once a folder."""
    folder(tmp_path, "L1")
    folder(tmp_path, "L2")
    rows: list[tuple[str, str, str, str | None]] = []
    asked: list[frozenset[str]] = []

    def finished(stems: frozenset[str]) -> list[tuple[str, str, str, str | None]]:
        asked.append(stems)
        return rows
    looks: list[Path] = []
    real = strays._look
    monkeypatch.setattr(strays, "_look",
                        lambda f, cfg, share: looks.append(f) or real(f, cfg, share))
    found = StrayFolders()
    cfg = OutboxConfig(path=tmp_path)
    assert found.find(cfg, SHARE, [], finished) == []
    rows.append(SENT)
    assert [x.name for x in found.find(cfg, SHARE, [], finished)] == ["L1"]
    assert asked == [frozenset({"L1", "L2"})] * 2 and len(looks) == 2


def test_an_invoice_file_is_told_only_beside_its_sidecar_or_in_an_archived_folder(
        tmp_path: Path) -> None:
    """A dragged folder holding D1.xml and D1/ is listed with D1.xml; a sidecar written
    before its invoice file, holding PDF attachments (which match the invoice patterns),
    is not: "move each invoice file into the outbox" would make an attachment an invoice."""
    (tmp_path / "Batch" / "D1").mkdir(parents=True)
    (tmp_path / "Batch" / "D1.xml").write_bytes(b"<Invoice/>")
    (tmp_path / "Batch" / "extra.pdf").write_bytes(b"%PDF-1.4")
    folder(tmp_path, "NEW-1")
    found = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, [])
    assert [x.name for x in found] == ["Batch"]
    assert found[0].why.startswith("holds the invoice file D1.xml, but outboxd reads")


def test_a_sidecar_waiting_for_its_invoice_file_is_not_listed(tmp_path: Path) -> None:
    """An ERP writes the sidecar first and the invoice file last (the good practice the
    docs give); a clerk may copy a sidecar before its invoice file. Its attachments match
    the invoice patterns (*.pdf) but are no invoice files: the page must not tell the clerk
    to move timesheet.pdf into the outbox, where it would be sent as an invoice."""
    write(tmp_path / "INV-1" / "timesheet.pdf", b"%PDF-1.7\n")
    write(tmp_path / "INV-1" / "INV-1" / "contract.pdf", b"%PDF-1.7\n")
    write(tmp_path / "inv-2" / "scan.pdf", b"%PDF-1.7\n")  # a look-alike left by a quarantine
    assert StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, []) == []


def test_a_dragged_folder_or_an_archive_folder_moved_back_is_listed(tmp_path: Path) -> None:
    """A folder holding an invoice file beside its own sidecar (a dragged folder), or an
    invoice file with reason.json or receipt.json (a folder from quarantine/ or sent/ moved
    back whole), is listed with the fix."""
    write(tmp_path / "Batch" / "D1.xml", b"<Invoice/>")
    write(tmp_path / "Batch" / "D1" / "timesheet.pdf", b"%PDF-1.7\n")
    write(tmp_path / "Q1--0123456789ab" / "Q1.pdf", b"%PDF-1.7\n")
    write(tmp_path / "Q1--0123456789ab" / "reason.json", b"{}")
    found = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, [])
    assert [x.name for x in found] == ["Batch", "Q1--0123456789ab"]
    assert "holds the invoice file D1.xml" in found[0].why
    assert "a folder from quarantine/ moved back whole" in found[1].why


def test_a_folder_moved_in_whole_is_told_what_to_do_with_what_is_left(tmp_path: Path) -> None:
    """The fix said "(REASON.txt, reason.json and receipt.json may stay behind)": a clerk
    who did so left the archive folder with outboxd's notes in the outbox, listed there
    for good as a folder without an invoice file. A folder from quarantine/ or sent/ is
    now told to go back there with its notes once the files are out; a dragged folder
    holding no notes, to be removed once emptied."""
    write(tmp_path / "Batch" / "D1.xml", b"<Invoice/>")
    write(tmp_path / "Batch" / "D1" / "timesheet.pdf", b"%PDF-1.7\n")
    write(tmp_path / "Q1--0123456789ab" / "Q1.pdf", b"%PDF-1.7\n")
    write(tmp_path / "Q1--0123456789ab" / "reason.json", b"{}")
    write(tmp_path / "S1--0123456789ab" / "S1.pdf", b"%PDF-1.7\n")
    write(tmp_path / "S1--0123456789ab" / "receipt.json", b"{}")
    batch, q1, s1 = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, [])
    assert batch.why.endswith("its folder of the same name first; then remove the emptied "
                              "folder Batch")
    assert q1.why.endswith("its folder of the same name first; then move Q1--0123456789ab, "
                           "with outboxd's notes left in it (REASON.txt, reason.json, "
                           "receipt.json), back into quarantine/")
    assert s1.why.endswith("back into sent/")


def test_a_dragged_folder_holding_other_files_is_not_told_to_be_removed_as_emptied(
        tmp_path: Path) -> None:
    """A dragged folder holds, besides an invoice file and its folder, files that are no
    bundle's (a note, a PDF without a folder of its name): the fix no longer ends with
    "then remove the emptied folder", which a clerk followed and deleted those files
    with it; it names them, to be moved where they belong before the folder is removed."""
    write(tmp_path / "Batch" / "D1.xml", b"<Invoice/>")
    write(tmp_path / "Batch" / "D1" / "timesheet.pdf", b"%PDF-1.7\n")
    write(tmp_path / "Batch" / "contract.pdf", b"%PDF-1.7\n")
    write(tmp_path / "Batch" / "old" / "note.txt", b"keep me")
    [batch] = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, [])
    assert "emptied" not in batch.why
    assert batch.why.endswith("its folder of the same name first; Batch holds other files "
                              "too (contract.pdf, old): move them where they belong before "
                              "removing Batch")


@pytest.mark.parametrize("litter", [".DS_Store", "Thumbs.db", "._D1.xml", "desktop.ini"])
def test_a_dragged_folder_holding_only_desktop_litter_besides_is_told_to_be_removed(
        tmp_path: Path, litter: str) -> None:
    """A folder dragged from a Mac or Windows desktop holds the desktop's own files
    (.DS_Store, Thumbs.db, AppleDouble ._ files), which its clerk never sees: they are
    no "other files" to move where they belong (the clerk looked and found none, and
    left the folder in the outbox); the fix ends "remove the emptied folder", as for a
    folder holding nothing else."""
    write(tmp_path / "Batch" / "D1.xml", b"<Invoice/>")
    write(tmp_path / "Batch" / "D1" / "timesheet.pdf", b"%PDF-1.7\n")
    write(tmp_path / "Batch" / litter, b"\0\0\0\1Bud1")
    [batch] = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, [])
    assert batch.why.endswith("its folder of the same name first; then remove the emptied "
                              "folder Batch"), batch.why


def test_a_link_in_the_root_is_not_followed(tmp_path: Path) -> None:
    """A symbolic link to a folder elsewhere that holds invoice files is no folder of the
    outbox: never listed, never looked into."""
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "X.xml", b"<Invoice/>")
    write(elsewhere / "reason.json", b"{}")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    os.symlink(elsewhere, outbox / "Linked")
    assert StrayFolders().find(OutboxConfig(path=outbox), SHARE, []) == []


def test_outboxds_papers_in_a_folder_moved_back_are_no_invoice_files_under_a_pattern_taking_all(
        tmp_path: Path) -> None:
    """Under invoice_patterns = ["*"] a folder moved back whole from quarantine/ was said
    to hold "the invoice files Q1.xml, REASON.txt, reason.json", to be moved into the
    outbox, in the same line that says REASON.txt and reason.json may stay behind (so
    are a release file and the errors file): only Q1.xml is an invoice file."""
    box = tmp_path / "Q1--0123456789ab"
    for name in ("Q1.xml", "REASON.txt", "reason.json", "Q1.send-anyway", "Q1.errors.txt"):
        write(box / name, b"x")
    found = StrayFolders().find(OutboxConfig(path=tmp_path, invoice_patterns=["*"]), SHARE, [])
    assert [x.name for x in found] == ["Q1--0123456789ab"]
    assert found[0].why.startswith("holds the invoice file Q1.xml, but outboxd reads")


def test_the_shares_own_names_in_a_folder_moved_back_are_no_invoice_files_under_custom_names(
        tmp_path: Path) -> None:
    """With `[share] release_suffix = ".go"` and `status_page = "Status.html"` and
    invoice_patterns = ["*"], a release file (Q1.go) and a copy of the page in a folder
    moved back whole were listed as invoice files to move into the outbox: the folder is
    looked at with the share's names, not the defaults."""
    box = tmp_path / "Q1--0123456789ab"
    for name in ("Q1.xml", "reason.json", "Q1.go", "Status.html"):
        write(box / name, b"x")
    share = ShareConfig(release_suffix=".go", status_page="Status.html")
    found = StrayFolders().find(OutboxConfig(path=tmp_path, invoice_patterns=["*"]), share, [])
    assert [x.name for x in found] == ["Q1--0123456789ab"]
    assert found[0].why.startswith("holds the invoice file Q1.xml, but outboxd reads")
    assert "Q1.go" not in found[0].why and "Status.html" not in found[0].why


def test_a_reload_that_renames_the_release_files_looks_into_an_unchanged_folder_again(
        tmp_path: Path) -> None:
    """What a folder holds is remembered until the folder changes; a reload that changes
    the release suffix changes what is an invoice file in it, so the page must not keep
    the verdict made under the old names."""
    box = tmp_path / "Q1--0123456789ab"
    for name in ("Q1.xml", "reason.json", "Q1.go"):
        write(box / name, b"x")
    cfg = OutboxConfig(path=tmp_path, invoice_patterns=["*"])
    found = StrayFolders()
    before = found.find(cfg, SHARE, [])
    assert before[0].why.startswith("holds the invoice files Q1.go, Q1.xml, but")
    after = found.find(cfg, ShareConfig(release_suffix=".go"), [])
    assert after[0].why.startswith("holds the invoice file Q1.xml, but outboxd reads")


def test_a_folder_is_looked_into_again_once_its_list_of_files_changes(tmp_path: Path) -> None:
    """What a folder holds is remembered while its list of files stays: a sidecar written
    first is not listed, and once its invoice file is dragged in beside it (a folder
    dragged in, file by file), the folder is listed at the next look."""
    write(tmp_path / "Batch" / "D1" / "timesheet.pdf", b"%PDF-1.7\n")
    os.utime(tmp_path / "Batch", ns=(0, 0))  # the drop below changes it, however soon
    cfg, found = OutboxConfig(path=tmp_path), StrayFolders()
    assert found.find(cfg, SHARE, []) == []
    write(tmp_path / "Batch" / "D1.xml", b"<Invoice/>")
    assert [x.name for x in found.find(cfg, SHARE, [])] == ["Batch"]


def test_a_folder_with_both_papers_is_not_said_to_be_sent_already(tmp_path: Path) -> None:
    """receipt.json beside reason.json (two archive folders merged by hand): the folder is
    told as one from quarantine/, and not as sent — reason.json says the bundle was
    quarantined, so its invoice may never have reached the receiver."""
    for name in ("Q1.xml", "reason.json", "receipt.json"):
        write(tmp_path / "Q1--0123456789ab" / name, b"x")
    [stray] = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, [])
    assert "a folder from quarantine/ moved back whole (reason.json is in it)" in stray.why
    assert "sent already" not in stray.why
    write(tmp_path / "S1--0123456789ab" / "S1.xml", b"x")
    write(tmp_path / "S1--0123456789ab" / "receipt.json", b"x")
    sent = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, [])[1]
    assert "its files were sent already" in sent.why


def test_only_a_folder_ending_in_the_sidecar_suffix_is_named_as_a_late_sidecar(
        tmp_path: Path) -> None:
    """With sidecar_suffix = ".att", L1.att/ came after L1.xml was sent and is listed;
    L1-old/ (as long as L1 and the suffix, but not ending in it) is no sidecar of L1.xml
    and is not told to be one."""
    folder(tmp_path, "L1.att")
    folder(tmp_path, "L1-old")
    found = StrayFolders().find(OutboxConfig(path=tmp_path, sidecar_suffix=".att"), SHARE,
                                [], lambda _: [SENT])
    assert [x.name for x in found] == ["L1.att"]


def test_a_folder_is_told_of_the_latest_time_its_invoice_file_left(tmp_path: Path) -> None:
    """L1.xml quarantined, moved back and then sent (the journal newest first): its late
    folder is told of the sending, not of the quarantine before it."""
    folder(tmp_path, "L1")
    older = ("L1.xml", "quarantined", "2026-04-30T09:00:00.000Z",
             "/srv/quarantine/2026-04-30/L1--89ab")
    [stray] = StrayFolders().find(OutboxConfig(path=tmp_path), SHARE, [],
                                  lambda _: [SENT, older])
    assert stray.why.startswith("named as the attachments of L1.xml, which was sent at "
                                "2026-05-01 10:31 UTC")


def _dragged(where: Path, name: str) -> None:
    """A folder a clerk dragged into the outbox: an invoice file beside its sidecar."""
    write(where / name / "INV-9.xml", b"<Invoice/>")
    write(where / name / "INV-9" / "a.pdf", b"%PDF-1.4")


def test_a_folder_swapped_for_a_link_after_the_listing_is_never_looked_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between the root's listing and the look into a folder, the folder is replaced by
    a link to a folder outside the outbox that holds invoice files: nothing outside is
    looked into or named on the page — the folder is not listed."""
    from helpers import _OsWith
    outbox, outside = tmp_path / "outbox", tmp_path / "outside"
    _dragged(outbox, "batch")
    _dragged(outside, "batch")
    real_open = os.open

    def swapped_then_open(path: object, *a: object, **kw: object) -> int:
        if path == outbox / "batch":
            (outbox / "batch").rename(tmp_path / "aside")
            (outbox / "batch").symlink_to(outside / "batch")
        return real_open(path, *a, **kw)  # type: ignore[arg-type]

    assert [x.name for x in StrayFolders().find(OutboxConfig(path=outbox), SHARE, [])] \
        == ["batch"]  # as it is, without the swap
    monkeypatch.setattr(strays, "os", _OsWith(open=swapped_then_open))
    assert StrayFolders().find(OutboxConfig(path=outbox), SHARE, []) == []


def test_folders_that_cannot_be_looked_into_are_not_listed_and_the_rest_still_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder whose listing fails (EIO from the share) is not listed as holding invoice
    files — nothing is known of it — while a dragged folder beside it still is; an
    outbox that cannot be listed at all lists none (its outage is said elsewhere)."""
    import errno

    from helpers import refuse_listing
    outbox = tmp_path / "outbox"
    _dragged(outbox, "batch")
    _dragged(outbox, "broken")
    with monkeypatch.context() as m:
        refuse_listing(m, {"broken"}, errno.EIO, module=strays)
        assert [x.name for x in StrayFolders().find(OutboxConfig(path=outbox), SHARE, [])] \
            == ["batch"]
    with monkeypatch.context() as m:
        refuse_listing(m, {"outbox"}, errno.EIO, module=strays)
        assert StrayFolders().find(OutboxConfig(path=outbox), SHARE, []) == []
