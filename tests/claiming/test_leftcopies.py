"""What a kill in the middle of owncopy's copies left in a claimed bundle's work folder,
settled at the next start (daemon/claiming/leftcopies.py): removed only where that loses
nothing, the file itself put back where it holds what was saved, anything not proven
outboxd's kept. Real files in a work folder, the real snapshot; the states a kill leaves
are made by hand as owncopy makes them (a copy beside the file, or exchanged with it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from daemon.claiming.leftcopies import copies_left, copy_temp_name
from daemon.configuration.config import Settings
from daemon.fs.fswrite import rename_exchange
from daemon.watching.scan import Candidate
from daemon.watching.snapshot import snapshot


@pytest.fixture
def work(settings: Settings) -> Path:
    """A claimed bundle INV-1 (invoice file, a.pdf in its sidecar) in its work folder."""
    w = settings.processing_dir / "INV-1--0123456789ab--host-1-abcdef"
    (w / "INV-1").mkdir(parents=True)
    (w / "INV-1.xml").write_bytes(b"<Invoice/>")
    (w / "INV-1" / "a.pdf").write_bytes(b"%PDF-1.4 as claimed")
    return w


def _moved(work: Path) -> Candidate:
    return Candidate("INV-1", work / "INV-1.xml", work / "INV-1", work / "INV-1.ready")


def _settled(work: Path, settings: Settings) -> tuple[bool, list[dict[str, object]]]:
    """copies_left run on the work folder as recovery runs it: whether a file went back
    to its name, and what was logged."""
    held = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with capture_logs() as logged:
            put_back = copies_left(held, _moved(work), snapshot(_moved(work), settings.outbox),
                                   structlog.get_logger())
    finally:
        os.close(held)
    return put_back, logged


def _exchanged(file: Path, copy: bytes) -> Path:
    """`file` exchanged with a copy of its own holding `copy`, as owncopy leaves it once
    the copy took its name: the file itself at the temp's name, which is returned."""
    tmp = file.with_name(copy_temp_name(file.name, file.stat().st_ino))
    tmp.write_bytes(copy)
    assert rename_exchange(tmp, file)
    return tmp


def _names(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture
def erp(settings: Settings) -> Iterator[Path]:
    """A folder outside the outbox where an ERP keeps its own names of the files."""
    folder = settings.paths.state_dir.parent / "erp"
    folder.mkdir()
    yield folder


def test_a_half_copy_beside_the_marker_is_removed(work: Path, settings: Settings,
                                                  erp: Path) -> None:
    """Bundles complete with a marker: the marker had a second name and the kill came
    halfway through its copy. The half copy beside it is outboxd's own and is removed,
    so that it never travels into sent/; the marker stays as it was."""
    marker = work / "INV-1.ready"
    marker.write_bytes(b"ready")
    os.link(marker, erp / "INV-1.ready")
    half = marker.with_name(copy_temp_name(marker.name, marker.stat().st_ino))
    half.write_bytes(b"rea")
    put_back, logged = _settled(work, settings)
    assert not put_back and logged == []
    assert _names(work) == ["INV-1", "INV-1.ready", "INV-1.xml"]
    assert marker.stat().st_ino == (erp / "INV-1.ready").stat().st_ino


def test_the_file_itself_goes_back_to_its_own_name_beside_a_name_of_the_same_prefix(
        work: Path, settings: Settings, erp: Path) -> None:
    """Two files of the sidecar whose long names share the first 200 bytes, which temp
    names are cut to: the temp's name says which of the two it belongs to. The file
    itself of the second, saved into through its other name after its copy, goes back
    to its own name; the first, beside it, keeps its name and its bytes."""
    stem = "x" * 200
    first, second = work / "INV-1" / f"{stem}-a.pdf", work / "INV-1" / f"{stem}-b.pdf"
    first.write_bytes(b"%PDF-1.4 the first, of one name")
    second.write_bytes(b"%PDF-1.4 the second")
    os.link(second, erp / "second.pdf")
    tmp = _exchanged(second, b"%PDF-1.4 the second")
    (erp / "second.pdf").write_bytes(b"%PDF-1.4 the second, saved again")
    put_back, _ = _settled(work, settings)
    assert put_back
    assert first.read_bytes() == b"%PDF-1.4 the first, of one name"
    assert second.read_bytes() == b"%PDF-1.4 the second, saved again"
    assert not tmp.exists()


def test_a_folder_swapped_for_a_link_since_the_snapshot_is_never_entered(
        work: Path, settings: Settings, erp: Path) -> None:
    """The snapshot saw a half copy in INV-1/sub/; before it is settled, that folder is
    swapped for a link to a folder outside (a name of the same pattern there too). The
    link is never followed: what lies behind it is left as it is, the half copy beside
    the invoice file is still removed, and nothing is raised."""
    sub = work / "INV-1" / "sub"
    sub.mkdir()
    (sub / "b.pdf").write_bytes(b"%PDF-1.4 b")
    (sub / copy_temp_name("b.pdf", (sub / "b.pdf").stat().st_ino)).write_bytes(b"%PD")
    xml = work / "INV-1.xml"
    (work / copy_temp_name(xml.name, xml.stat().st_ino)).write_bytes(b"<Inv")
    snap = snapshot(_moved(work), settings.outbox)
    os.rename(sub, erp / "sub")
    os.symlink(erp / "sub", sub)
    outside = _names(erp / "sub")
    held = os.open(work, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert not copies_left(held, _moved(work), snap, structlog.get_logger())
    finally:
        os.close(held)
    assert _names(erp / "sub") == outside and len(outside) == 2
    assert _names(work) == ["INV-1", "INV-1.xml"]


@pytest.mark.parametrize("kind", ["link", "fifo"])
def test_a_link_or_fifo_named_for_its_own_inode_is_kept_and_the_file_untouched(
        work: Path, settings: Settings, kind: str) -> None:
    """A symbolic link (to a file outside) or a FIFO in the sidecar under the very name
    outboxd would give a.pdf's file itself (anyone can work the digest out): never
    outboxd's, which makes regular files only. It is kept as it is, with a warning, and
    a.pdf keeps its name and bytes — never exchanged with it, nor removed."""
    pdf = work / "INV-1" / "a.pdf"
    made = pdf.with_name("made")
    if kind == "link":
        os.symlink(settings.paths.state_dir, made)
    else:
        os.mkfifo(made)
    forged = pdf.with_name(copy_temp_name(pdf.name, made.lstat().st_ino))
    os.rename(made, forged)
    put_back, logged = _settled(work, settings)
    assert not put_back
    assert pdf.read_bytes() == b"%PDF-1.4 as claimed"
    assert forged.is_symlink() if kind == "link" else forged.is_fifo()
    assert [e["file"] for e in logged] == [f"INV-1/{forged.name}"]


def test_a_temp_beside_a_file_replaced_by_a_link_is_kept_and_so_is_the_link(
        work: Path, settings: Settings, erp: Path) -> None:
    """a.pdf was exchanged with its copy, then its name was taken by a symbolic link.
    The file itself is not put back over the link, nor is the link removed: both are
    kept as they are (the temp with a warning), for the check that follows to find the
    link and say so."""
    pdf = work / "INV-1" / "a.pdf"
    os.link(pdf, erp / "a.pdf")
    tmp = _exchanged(pdf, b"%PDF-1.4 as claimed")
    (erp / "a.pdf").write_bytes(b"%PDF-1.4 saved again")
    pdf.unlink()
    os.symlink(erp / "a.pdf", pdf)
    put_back, logged = _settled(work, settings)
    assert not put_back
    assert pdf.is_symlink() and tmp.read_bytes() == b"%PDF-1.4 saved again"
    assert [e["file"] for e in logged] == [f"INV-1/{tmp.name}"]


@pytest.mark.parametrize("other_name", ["kept", "removed"])
def test_the_file_itself_holding_its_copys_bytes_is_let_go_quietly(
        work: Path, settings: Settings, erp: Path, other_name: str) -> None:
    """a.pdf exchanged with its copy before the kill, not saved into since: its copy
    holds all it holds, so it is let go (its ERP name, kept or removed, is not what
    decides), with nothing said and nothing put back."""
    pdf = work / "INV-1" / "a.pdf"
    os.link(pdf, erp / "a.pdf")
    tmp = _exchanged(pdf, b"%PDF-1.4 as claimed")
    copy = pdf.stat().st_ino
    if other_name == "removed":
        (erp / "a.pdf").unlink()
    put_back, logged = _settled(work, settings)
    assert not put_back and logged == []
    assert not tmp.exists() and pdf.stat().st_ino == copy
    assert pdf.read_bytes() == b"%PDF-1.4 as claimed"


def test_the_file_itself_with_nothing_at_its_name_goes_back_to_it(
        work: Path, settings: Settings) -> None:
    """The marker exchanged with its copy before the kill, and the copy gone from its
    name since: the file itself, the only one of the marker left, goes back to its
    name, said."""
    marker = work / "INV-1.ready"
    marker.write_bytes(b"ready")
    tmp = _exchanged(marker, b"ready")
    marker.unlink()
    put_back, logged = _settled(work, settings)
    assert put_back and not tmp.exists()
    assert marker.read_bytes() == b"ready"
    assert [e["file"] for e in logged] == ["INV-1.ready"]


def test_without_an_exchange_a_name_made_for_its_own_inode_is_kept(
        work: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a share with no renameat2 exchange (NFS, SMB) outboxd's copies take their names
    by a rename, so a file itself is never left at a temp's name: a file there named for
    its own inode, beside a.pdf of other bytes, is not outboxd's. It is kept, with the
    warning that says so, and a.pdf stays as it is."""
    from daemon.claiming import leftcopies
    pdf = work / "INV-1" / "a.pdf"
    made = pdf.with_name("made")
    made.write_bytes(b"someone's")
    forged = pdf.with_name(copy_temp_name(pdf.name, made.stat().st_ino))
    os.rename(made, forged)
    monkeypatch.setattr(leftcopies, "rename_exchange", lambda a, b: False)
    put_back, logged = _settled(work, settings)
    assert not put_back
    assert forged.read_bytes() == b"someone's"
    assert pdf.read_bytes() == b"%PDF-1.4 as claimed"
    assert [e["event"].split(" named")[0] for e in logged] == ["hidden file"]


def test_a_file_put_back_is_said_whatever_temps_are_settled_after_it(
        work: Path, settings: Settings, erp: Path) -> None:
    """The invoice file itself, saved into through its other name after its copy, goes
    back to its name; a half copy beside a.pdf, settled after it, is removed. That a
    file went back is still said (recovery then looks again at which files have other
    names), not only what the last temp settled was."""
    xml, pdf = work / "INV-1.xml", work / "INV-1" / "a.pdf"
    os.link(xml, erp / "INV-1.xml")
    _exchanged(xml, b"<Invoice/>")
    (erp / "INV-1.xml").write_bytes(b"<Invoice>saved again</Invoice>")
    (pdf.with_name(copy_temp_name(pdf.name, pdf.stat().st_ino))).write_bytes(b"%PD")
    put_back, _ = _settled(work, settings)
    assert put_back
    assert xml.read_bytes() == b"<Invoice>saved again</Invoice>"
    assert _names(work) == ["INV-1", "INV-1.xml"] and _names(pdf.parent) == ["a.pdf"]
