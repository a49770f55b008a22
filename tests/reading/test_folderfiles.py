"""The attachments in one folder of a sidecar (daemon/reading/folderfiles.py): which entries are
litter, which are refused and never opened (links, FIFOs); read through the matcher, as
the daemon reads them. Which folder is whose is in test_match.py and test_idfolders.py,
attachments.toml in test_notes.py."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest
from helpers import ubl_invoice, write
from matching import PDF, candidate, finding, layout, match, settings
from swaps import opened_in, when_opened

from daemon.bundle import Bundle
from daemon.reading import folderfiles
from daemon.reading.match import assemble


def test_litter_is_ignored(outbox: Path) -> None:
    """.DS_Store, Thumbs.db, desktop.ini and ._ files are neither attachments nor errors."""
    for name in (".DS_Store", "Thumbs.db", "desktop.ini", "._scan.pdf"):
        write(outbox / "INV-1" / name, b"junk")
        write(outbox / "INV-1" / "INV-1" / name, b"junk")
    write(outbox / "INV-1" / "scan.pdf", PDF)
    b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
    assert b.findings == ()
    assert layout(b) == {"INV-1": ["scan.pdf"]}


def test_client_litter_on_a_share_is_ignored(outbox: Path) -> None:
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


def test_configured_ignore_pattern(outbox: Path) -> None:
    """[outbox] ignore_patterns apply inside the sidecar too."""
    write(outbox / "INV-1" / "export.log", b"log")
    write(outbox / "INV-1" / "scan.pdf", PDF)
    b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"),
              outbox={"ignore_patterns": ["*.log"]})
    assert layout(b) == {"INV-1": ["scan.pdf"]}


def test_symlink_in_sidecar_is_a_finding(outbox: Path, tmp_path: Path) -> None:
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


def test_fifo_in_sidecar_is_a_finding_and_never_opened(outbox: Path) -> None:
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


@pytest.mark.parametrize("swapped_for", ["link", "fifo"])
def test_an_attachment_swapped_after_its_listing_is_refused_and_never_followed(
        outbox: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        swapped_for: str) -> None:
    """An attachment a share user replaces by a link to a file outside the outbox (or by
    a FIFO) between the listing that saw a regular file and its open: refused with an
    error naming it and what it is now, the file outside never opened (nor the FIFO:
    the read would block), and the attachment not in the bundle."""
    outside = tmp_path / "outside"
    secret = write(outside / "secret.pdf", PDF + b"secret")
    write(outbox / "INV-1" / "real.pdf", PDF)
    swapped = write(outbox / "INV-1" / "scan.pdf", PDF)
    real_open_in = folderfiles.open_in

    def swap_then_open(fd: int, name: str, shown: str, listed: bool = False) -> Any:
        if name == "scan.pdf":
            swapped.unlink()
            if swapped_for == "link":
                swapped.symlink_to(secret)
            else:
                os.mkfifo(swapped)
        return real_open_in(fd, name, shown, listed)

    monkeypatch.setattr(folderfiles, "open_in", swap_then_open)
    with opened_in(outside) as opened:
        b = match(outbox, "INV-1.xml", ubl_invoice("INV-1"))
    assert opened == []
    [f] = [f for f in b.errors if f.file == "INV-1/scan.pdf"]
    assert f.code == ("symlink" if swapped_for == "link" else "not-a-file")
    assert ("symbolic link" if swapped_for == "link" else "FIFO") in f.message
    assert layout(b) == {"INV-1": ["real.pdf"]}


def test_a_file_of_undecodable_bytes_in_a_claimed_bundle_is_left_out_as_a_bad_name(
        outbox: Path, tmp_path: Path) -> None:
    """A claimed bundle read again after a restart (in its work folder, not the outbox)
    whose sidecar holds a file named with bytes that are no UTF-8 (put there by hand):
    no version of outboxd took such a name, so it is not read as claimed but left out
    with its bad-name error naming it escaped; the bundle's other files are read."""
    work = tmp_path / "processing" / "w1"
    write(work / "INV-1" / "real.pdf", PDF)
    write(work / "INV-1" / os.fsdecode(b"scan\xff.pdf"), PDF)
    b = assemble(candidate(work, "INV-1.xml", ubl_invoice("INV-1")), settings(outbox))
    f = finding(b, "bad-name")
    assert f.file == "INV-1/scan\\udcff.pdf"
    assert layout(b) == {"INV-1": ["real.pdf"]}


@pytest.mark.parametrize("name", ["scan.pdf", "attachments.toml", "INV-1.xml"])
def test_a_file_listed_then_gone_at_its_open_is_read_again_not_a_finding(
        outbox: Path, tmp_path: Path, name: str) -> None:
    """A share that blinks between the listing and the open (the file is there, the open
    says ENOENT): the read raises the FileNotFoundError, to be read again, instead of an
    `unreadable` finding "check the file's permissions" that held or quarantined the
    bundle for a file that is there, or an attachments.toml read as none (its channel and
    types the defaults)."""
    write(outbox / "INV-1" / "scan.pdf", PDF)
    write(outbox / "INV-1" / "attachments.toml", b'[files."scan.pdf"]\ntype = "Timesheet"\n')
    where = outbox / name if name.endswith(".xml") else outbox / "INV-1" / name
    aside = tmp_path / "aside"

    def blink() -> None:
        where.rename(aside)

    cand = candidate(outbox, "INV-1.xml", ubl_invoice("INV-1"))
    with when_opened(name, blink) as done, pytest.raises(FileNotFoundError) as gone:
        assemble(cand, settings(outbox))
    assert done
    # Named as the status page and the log name it, from the outbox.
    assert gone.value.filename == str(where.relative_to(outbox))
    aside.rename(where)  # the share is back: the next read is whole
    b = assemble(cand, settings(outbox))
    assert b.findings == () and layout(b) == {"INV-1": ["scan.pdf"]}
