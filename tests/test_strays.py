"""strays.py: which folders of the outbox root the status page lists as holding invoice
files, and which it must not (a sidecar that waits for its invoice file)."""

from __future__ import annotations

import os
from pathlib import Path

from helpers import write

from daemon.config_sections import OutboxConfig
from daemon.strays import StrayFolders


def test_a_sidecar_waiting_for_its_invoice_file_is_not_listed(tmp_path: Path) -> None:
    """An ERP writes the sidecar first and the invoice file last (the good practice the
    docs give); a clerk may copy a sidecar before its invoice file. Its attachments match
    the invoice patterns (*.pdf) but are no invoice files: the page must not tell the clerk
    to move timesheet.pdf into the outbox, where it would be sent as an invoice."""
    write(tmp_path / "INV-1" / "timesheet.pdf", b"%PDF-1.7\n")
    write(tmp_path / "INV-1" / "INV-1" / "contract.pdf", b"%PDF-1.7\n")
    write(tmp_path / "inv-2" / "scan.pdf", b"%PDF-1.7\n")  # a look-alike left by a quarantine
    assert StrayFolders().find(OutboxConfig(path=tmp_path), []) == []


def test_a_dragged_folder_or_an_archive_folder_moved_back_is_listed(tmp_path: Path) -> None:
    """A folder holding an invoice file beside its own sidecar (a dragged folder), or an
    invoice file with reason.json or receipt.json (a folder from quarantine/ or sent/ moved
    back whole), is listed with the fix."""
    write(tmp_path / "Batch" / "D1.xml", b"<Invoice/>")
    write(tmp_path / "Batch" / "D1" / "timesheet.pdf", b"%PDF-1.7\n")
    write(tmp_path / "Q1--0123456789ab" / "Q1.pdf", b"%PDF-1.7\n")
    write(tmp_path / "Q1--0123456789ab" / "reason.json", b"{}")
    found = StrayFolders().find(OutboxConfig(path=tmp_path), [])
    assert [x.name for x in found] == ["Batch", "Q1--0123456789ab"]
    assert "holds the invoice file D1.xml" in found[0].why
    assert "a folder from quarantine/ moved back whole" in found[1].why


def test_a_link_in_the_root_is_not_followed(tmp_path: Path) -> None:
    """A symbolic link to a folder elsewhere that holds invoice files is no folder of the
    outbox: never listed, never looked into."""
    elsewhere = tmp_path / "elsewhere"
    write(elsewhere / "X.xml", b"<Invoice/>")
    write(elsewhere / "reason.json", b"{}")
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    os.symlink(elsewhere, outbox / "Linked")
    assert StrayFolders().find(OutboxConfig(path=outbox), []) == []
