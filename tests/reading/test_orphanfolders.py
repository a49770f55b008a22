"""What a folder inside a sidecar that is no invoice's folder is told
(daemon/reading/orphanfolders.py), under a sidecar suffix: only a folder named as a
sidecar is named (with the suffix) is taken for another invoice file's sidecar."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ubl_invoice, write
from matching import PDF, batch_xml, finding, settings

from daemon.reading.match import assemble
from daemon.watching.scan import Candidate


def _b7(outbox: Path) -> dict[str, str]:
    """B-7.xml (INV-7, INV-8) with its sidecar B-7.files under sidecar_suffix = ".files",
    INV-9.xml in the outbox beside it: each orphan-attachment's folder → its message."""
    write(outbox / "INV-9.xml", ubl_invoice("INV-9"))
    invoice = write(outbox / "B-7.xml", batch_xml("INV-7", "INV-8"))
    cand = Candidate("B-7", invoice, outbox / "B-7.files", outbox / "B-7.ready")
    b = assemble(cand, settings(outbox, outbox={"sidecar_suffix": ".files"}))
    finding(b, "orphan-attachment")
    return {f.file: f.message for f in b.findings if f.code == "orphan-attachment"}


def test_a_sidecar_of_another_invoice_file_put_inside_is_told_to_move_out(
        outbox: Path) -> None:
    """INV-9.files/ inside B-7.files/: named as INV-9.xml's sidecar is, so the clerk is
    told to move it out into the outbox beside INV-9.xml."""
    write(outbox / "B-7.files" / "INV-9.files" / "a.pdf", PDF)
    said = _b7(outbox)["B-7.files/INV-9.files"]
    assert said.startswith("is named like the sidecar of INV-9.xml, which is in the outbox")
    assert "move the folder INV-9.files out of B-7.files into the outbox" in said


@pytest.mark.parametrize("folder", ["INV-9", "INV-9.older"])
def test_a_folder_named_as_an_invoice_file_without_the_suffix_is_no_sidecar(
        outbox: Path, folder: str) -> None:
    """INV-9/ or INV-9.older/ inside B-7.files/ (not ending in the suffix ".files" every
    sidecar has here, though as long as INV-9 with it): not INV-9.xml's sidecar, so not
    told to move beside it (there it would still be no sidecar) but to be renamed to one
    of B-7's ids."""
    write(outbox / "B-7.files" / folder / "a.pdf", PDF)
    said = _b7(outbox)[f"B-7.files/{folder}"]
    assert said.startswith("names no invoice of this file; its invoices are INV-7, INV-8")
    assert "INV-9.xml" not in said
