"""Work folders that no journal row knows are finished or put back, never left unseen."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from archiving.entries import tree
from exdev import KILLS, exdev_for, killed_after_rename, killed_at
from helpers import looks_fail, without_blocking
from structlog.testing import capture_logs
from swaps import linked_aside_before, opened_in, swap_when_opened

from daemon.archiving.kept import KEPT
from daemon.claiming.claim import owner_of, work_dir_for
from daemon.claiming.leftcopies import copy_temp_name
from daemon.claiming.orphans import Orphans, sweep
from daemon.configuration.config import DeliveryConfig, OutboxConfig, PathsConfig, Settings
from daemon.journal import Journal
from daemon.watching import mounts
from daemon.watching.foldermounts import FolderMounts
from daemon.watching.mounts import Mount, shown

BID = "ab" * 32


def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def this_host() -> str:
    """The host part of the work folders this daemon makes, taken from the daemon's own
    name (claim.work_dir_for: NAME--ID12--HOST-PID-RAND), not rebuilt from the hostname:
    the daemon shortens a long one (CI runners have them)."""
    tail = work_dir_for(Path("processing"), "INV-0", BID).name.rsplit("--", 1)[1]
    return tail.rsplit("-", 2)[0]


def write_receipt(folder: Path, name: str) -> None:
    """The receipt.json a delivery of bundle BID (invoice file NAME.xml, id NAME) leaves
    in its work folder before the archive."""
    (folder / "receipt.json").write_text(json.dumps({
        "manifest": {"bundle_id": BID, "invoice_file": {"name": f"{name}.xml"},
                     "invoices": [{"id": name}]},
        "response": {"receipt_id": "r"}, "delivered_at": "2026-01-01T00:00:00.000Z"}))


def marked_for_theirs(settings: Settings, w: Path, name: str) -> Path:
    """A share user's folder in quarantine/ holding a copy of NAME.xml, and a KEPT mark
    they wrote into the work folder `w` naming it; the folder."""
    theirs = settings.quarantine_dir / "2026-01-01" / "mine"
    theirs.mkdir(parents=True)
    (theirs / f"{name}.xml").write_bytes(b"<x/>")
    (w / KEPT).write_bytes(os.fsencode(theirs))
    return theirs


def work(s: Settings, name: str, host: str | None = None, pid: int | None = None,
         owner: str = "") -> Path:
    """A work folder NAME--ID12--HOST-PID-[OWNER]RAND (no OWNER: as outboxd made them
    before owners)."""
    host = host or this_host()
    w = s.processing_dir / f"{name}--{BID[:12]}--{host}-{pid or dead_pid()}-{owner}abcdef"
    (w / name).mkdir(parents=True)
    (w / f"{name}.xml").write_bytes(b"<x/>")
    (w / name / "a.pdf").write_bytes(b"%PDF-1.4")
    return w


def swept_with_logs(settings: Settings) -> tuple[int, list[dict[str, Any]]]:
    """The orphan sweep run once, on a journal of its own: what it counted, and logged."""
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logged:
            return sweep(j, settings), logged
    finally:
        j.close()


def test_orphans_are_put_back_archived_or_left_to_their_owner(settings: Settings) -> None:
    """A plain orphan of a dead process of this host goes back into the outbox; one with
    receipt.json is archived in sent/ (without the temp file of a paper write the kill
    cut short) and recorded as sent; another host's is left alone."""
    back = work(settings, "INV-1")
    delivered = work(settings, "INV-2")
    write_receipt(delivered, "INV-2")
    # The killed daemon was writing a paper: its temp file is not archived, nor put back.
    (delivered / ".receipt.json.tmp-0123456789ab").write_bytes(b'{"half')
    (back / ".reason.json.tmp-0123456789ab").write_bytes(b'{"half')
    foreign = work(settings, "INV-3", host="otherhost")
    alive = work(settings, "INV-4", pid=os.getppid())
    j = Journal(settings.journal_path)
    try:
        assert sweep(j, settings) == 2
        assert (settings.outbox.path / "INV-1.xml").exists()
        assert (settings.outbox.path / "INV-1" / "a.pdf").exists() and not back.exists()
        assert not list(settings.outbox.path.glob(".*.tmp-*"))
        [archived] = list(settings.sent_dir.glob("*/*"))
        assert (archived / "INV-2.xml").exists() and not delivered.exists()
        assert sorted(os.listdir(archived)) == ["INV-2", "INV-2.xml", "receipt.json"]
        assert j.was_sent(BID)
        assert foreign.exists() and alive.exists()
    finally:
        j.close()


def test_an_orphan_killed_while_a_file_of_several_names_was_copied_goes_back_without_the_copy(
        settings: Settings) -> None:
    """A claim killed while it copied a file of several names (claiming/owncopy.py), then
    the journal lost: the work folder goes back into the outbox without the copy's temps
    (a half copy beside the invoice file; beside a.pdf, the file itself, exchanged with
    its copy, whose other name keeps it), which would have gone with the bundle into
    sent/. a.pdf goes back as the file itself, a name of the ERP's file again, not as
    the copy: a save through the ERP's name then still reaches the bundle, as before
    its claim; dot-files of a clerk's named like temps, but made for no file beside them, go
    back with it, each said in a warning."""
    back = work(settings, "INV-5")
    xml, pdf = back / "INV-5.xml", back / "INV-5" / "a.pdf"
    (back / copy_temp_name(xml.name, xml.stat().st_ino)).write_bytes(b"<x")
    erp = settings.paths.state_dir / "erp.pdf"
    os.link(pdf, erp)
    exchanged = pdf.with_name(copy_temp_name(pdf.name, pdf.stat().st_ino))
    os.rename(pdf, exchanged)
    pdf.write_bytes(b"%PDF-1.4")  # its copy
    clerks = [pdf.with_name(".b.pdf.tmp-0123456789ab"), pdf.with_name(".a.pdf.tmp-0123456789ab")]
    for kept in clerks:
        kept.write_bytes(b"a clerk's")
    count, logged = swept_with_logs(settings)
    assert count == 1
    assert not back.exists()
    assert sorted(os.listdir(settings.outbox.path / "INV-5")) == sorted(
        [c.name for c in clerks] + ["a.pdf"])
    assert not list(settings.outbox.path.glob(".*.tmp-*"))
    assert erp.read_bytes() == b"%PDF-1.4" and erp.stat().st_nlink == 2
    assert (settings.outbox.path / "INV-5" / "a.pdf").stat().st_ino == erp.stat().st_ino
    assert [e["file"] for e in logged if e["event"].startswith("hidden file named like")] == \
        ["INV-5/.a.pdf.tmp-0123456789ab"]


def test_an_orphan_whose_file_was_saved_into_through_a_name_removed_since_goes_back_with_it(
        settings: Settings) -> None:
    """As above, a.pdf exchanged with its copy before the kill; then its other name was
    saved into and removed: the file at the temp's name holds the only copy of those
    bytes. The work folder goes back into the outbox with a.pdf as that file (the copy,
    with the bytes claimed, gone), and a warning names it."""
    back = work(settings, "INV-6")
    pdf = back / "INV-6" / "a.pdf"
    exchanged = pdf.with_name(copy_temp_name(pdf.name, pdf.stat().st_ino))
    os.rename(pdf, exchanged)
    pdf.write_bytes(b"%PDF-1.4")  # its copy
    exchanged.write_bytes(b"%PDF-1.4 saved through the other name")
    count, logged = swept_with_logs(settings)
    assert count == 1
    assert os.listdir(settings.outbox.path / "INV-6") == ["a.pdf"]
    assert (settings.outbox.path / "INV-6" / "a.pdf").read_bytes() == \
        b"%PDF-1.4 saved through the other name"
    [warned] = [e for e in logged if e["event"].startswith("file of the bundle saved into")]
    assert warned["file"] == "INV-6/a.pdf"


@pytest.mark.parametrize(("paper", "kind"), [("receipt.json", "fifo"), ("reason.json", "fifo"),
                                             ("receipt.json", "link"), ("reason.json", "link")])
def test_a_paper_that_is_not_a_regular_file_leaves_the_work_folder_for_a_person(
        settings: Settings, tmp_path: Path, paper: str, kind: str) -> None:
    """receipt.json or reason.json as a FIFO or a link (outboxd writes its papers only
    as regular files): never opened nor followed, nothing is moved — not archived, not
    quarantined, not put back (a stray receipt may stand for a bundle the receiver took)
    — and one error line, once, names the file and the work folder."""
    w = work(settings, "INV-5")
    path = w / paper
    if kind == "fifo":
        os.mkfifo(path)
    else:
        real = tmp_path / "elsewhere.json"
        real.write_text(json.dumps({
            "bundle_id": BID, "invoice_file": "INV-5.xml", "reasons": [],
            "manifest": {"bundle_id": BID, "invoice_file": {"name": "INV-5.xml"},
                         "invoices": [{"id": "INV-5"}]}}))
        path.symlink_to(real)
    before = sorted(os.listdir(w))
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logs:
            assert without_blocking(lambda: sweep(j, settings), path, "the sweep") == 0
            # the next rescan: no second line
            assert without_blocking(lambda: sweep(j, settings), path, "the sweep") == 0
        assert sorted(os.listdir(w)) == before
        assert [p.name for p in settings.outbox.path.iterdir()] == [".outboxd"]  # processing
        assert not list(settings.sent_dir.iterdir()) and not list(settings.quarantine_dir.iterdir())
        [error] = [e for e in logs if e["log_level"] == "error"]
        assert error["file"] == str(path) and error["work_dir"] == str(w)
    finally:
        j.close()


@pytest.mark.parametrize("content", [b'{"manifest": {"bundle', b"x" * (33 << 20)],
                         ids=["cut-short", "over-32-MiB"])
def test_a_receipt_that_cannot_be_read_as_one_never_puts_the_bundle_back(
        settings: Settings, content: bytes) -> None:
    """An orphaned work folder whose receipt.json cannot be read as a receipt may stand
    for a bundle the receiver took: it is left for a person, with one error line, never
    put back into the outbox to be sent again."""
    w = work(settings, "INV-2")
    (w / "receipt.json").write_bytes(content)
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logs:
            assert sweep(j, settings) == 0
        assert w.exists() and not (settings.outbox.path / "INV-2.xml").exists()
        assert [e for e in logs if "cannot be read as a receipt" in e["event"]]
    finally:
        j.close()


@pytest.mark.parametrize(("delivered_at", "day"), [("2031-05-06T23:59:59.900Z", "2031-05-06"),
                                                    ("not a time", None)])
def test_an_orphan_is_archived_in_the_day_folder_of_its_delivery_or_quarantine(
        settings: Settings, delivered_at: str, day: str | None) -> None:
    """An orphan delivered (or quarantined) at 23:59:59 and finished on a later day lies
    in the folder of the day its papers name, and the journal counts it under that day
    (its `since`), as "sent today" and "Quarantined today" count; a time in the papers
    that cannot be read (edited by hand) is the day it is finished, never a folder left
    behind."""
    sent = work(settings, "INV-2")
    (sent / "receipt.json").write_text(json.dumps({
        "manifest": {"bundle_id": BID, "invoice_file": {"name": "INV-2.xml"},
                     "invoices": [{"id": "INV-2"}]},
        "response": {"receipt_id": "r"}, "delivered_at": delivered_at}))
    quarantined = work(settings, "INV-3")
    (quarantined / "reason.json").write_text(json.dumps({
        "bundle_id": BID, "invoice_file": "INV-3.xml", "reasons": [],
        "quarantined_at": delivered_at.replace(".900", "")}))
    j = Journal(settings.journal_path)
    try:
        assert sweep(j, settings) == 2
        for root, state in ((settings.sent_dir, "sent"), (settings.quarantine_dir,
                                                          "quarantined")):
            [entry] = root.glob("*/*")
            [row] = j.rows((state,))
            assert row.archive_dir == str(entry) and row.since[:10] == entry.parent.name
            assert day is None or entry.parent.name == day
    finally:
        j.close()


def test_an_orphan_waits_while_sent_or_quarantine_is_off_its_share(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ and quarantine/ on shares that are unmounted under the running daemon: an
    orphan with receipt.json or reason.json is not archived under the bare mount points
    (the clerks would never see the entry, and the remount would hide it for good); it
    stays in processing/, said once with the folder and both mounts, and is finished at
    the first sweep after the shares are back (mounted again: new device numbers)."""
    devices = {settings.sent_dir: 40, settings.quarantine_dir: 50}
    homes = {d: Mount(str(d), "cifs", f"//fs/{d.name}", "/") for d in devices}
    shares = dict(homes)
    disk = Mount("/", "ext4", "/dev/sda1", "/")

    def identity(path: Path) -> tuple[int, int]:
        return devices.get(Path(path), 1), 1  # (device, inode)

    def mount(path: Path) -> Mount:
        return shares.get(Path(path), disk)
    monkeypatch.setattr(mounts, "_identity", identity)
    monkeypatch.setattr(mounts, "mount_of", mount)
    monkeypatch.setattr("daemon.watching.foldermounts.mount_of", mount)
    folders = FolderMounts(settings)  # noted on the shares, as at the start
    sent = work(settings, "INV-2")
    (sent / "receipt.json").write_text(json.dumps({
        "manifest": {"bundle_id": BID, "invoice_file": {"name": "INV-2.xml"},
                     "invoices": [{"id": "INV-2"}]},
        "response": {"receipt_id": "r"}, "delivered_at": "2031-05-06T10:00:00.000Z"}))
    quarantined = work(settings, "INV-3")
    (quarantined / "reason.json").write_text(json.dumps({
        "bundle_id": BID, "invoice_file": "INV-3.xml", "reasons": [],
        "quarantined_at": "2031-05-06T10:00:00Z"}))
    for d in devices:  # both shares unmounted: their bare mount points on the local disk
        devices[d], shares[d] = 1, disk
    orphans = Orphans()
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logs:
            assert orphans.sweep(j, settings, folders) == 0
            assert orphans.sweep(j, settings, folders) == 0  # said once, not at each rescan
        assert sent.is_dir() and quarantined.is_dir()
        assert not any(settings.sent_dir.iterdir()) and not any(settings.quarantine_dir.iterdir())
        assert j.rows(("sent", "quarantined")) == []
        waits = [e for e in logs if "waits for its archive folder's share" in e["event"]]
        assert sorted(e["work_dir"] for e in waits) == sorted([str(sent), str(quarantined)])
        for home in homes.values():  # each line names the share it waits for, and the disk
            assert any(f"{shown(home)}; now ext4 /dev/sda1 mounted at /" in e["error"]
                       for e in waits), (home, waits)
        for d, dev in ((settings.sent_dir, 41), (settings.quarantine_dir, 51)):
            devices[d], shares[d] = dev, homes[d]  # mounted again
        assert orphans.sweep(j, settings, folders) == 2
        assert not sent.exists() and not quarantined.exists()
        assert len(j.rows(("sent",))) == 1 and len(j.rows(("quarantined",))) == 1
    finally:
        j.close()


def test_an_orphan_swapped_for_a_link_after_the_listing_is_never_read_cleaned_or_moved(
        settings: Settings, tmp_path: Path) -> None:
    """An orphaned work folder swapped for a link to a folder outside (holding a
    receipt.json and a file named like a paper's temp) between the sweep's listing and
    its work on the folder: nothing where the link leads is opened, listed or removed, no
    bundle is recorded as sent, nothing is archived, the real folder is left as it was,
    and one error line names the work folder (the next rescan looks again)."""
    w = work(settings, "INV-6")
    outside = tmp_path / "outside"
    outside.mkdir()
    write_receipt(outside, "INV-6")
    (outside / ".receipt.json.tmp-0123456789ab").write_bytes(b"someone's")
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logs, opened_in(outside) as opened, \
                swap_when_opened(w.name, w, outside) as swapped:
            assert sweep(j, settings) == 0
        assert swapped, "the swap was made"
        assert opened == []
        assert sorted(os.listdir(outside)) == [".receipt.json.tmp-0123456789ab",
                                               "receipt.json"]
        assert not j.was_sent(BID)
        assert not list(settings.sent_dir.iterdir())
        [real] = swapped
        assert sorted(os.listdir(real)) == ["INV-6", "INV-6.xml"]
        [error] = [e for e in logs if e["log_level"] == "error"]
        assert error["work_dir"] == str(w) and str(w) in error["error"]
    finally:
        j.close()


def _receipt(name: str) -> str:
    return json.dumps({
        "manifest": {"bundle_id": BID, "invoice_file": {"name": f"{name}.xml"},
                      "invoices": [{"id": name}]},
        "response": {"receipt_id": "r"}, "delivered_at": "2026-01-01T00:00:00.000Z"})


def test_a_dot_outboxd_replaced_by_a_link_is_never_followed_to_finish_folders_elsewhere(
        settings: Settings, tmp_path: Path) -> None:
    """On a journal made afresh, `.outboxd` replaced by a share user with a link to another
    folder whose processing/ holds folders named as ours (one with a receipt.json): none
    of them is archived in sent/, recorded as sent, or put into the outbox — the sweep
    reaches the processing folder from the outbox, never through a link — and one error
    line names the link and the fix."""
    elsewhere = tmp_path / "elsewhere"
    (settings.outbox.path / ".outboxd").rename(elsewhere)
    (settings.outbox.path / ".outboxd").symlink_to(elsewhere)
    back, delivered = work(settings, "INV-1"), work(settings, "INV-2")
    (delivered / "receipt.json").write_text(_receipt("INV-2"))
    j = Journal(settings.journal_path)
    assert j.afresh
    try:
        with capture_logs() as logs:
            assert sweep(j, settings) == 0
        assert not j.was_sent(BID)
        assert not list(settings.sent_dir.iterdir())
        assert sorted(os.listdir(settings.outbox.path)) == [".outboxd"]
        assert sorted(os.listdir(back)) == ["INV-1", "INV-1.xml"]
        assert sorted(os.listdir(delivered)) == ["INV-2", "INV-2.xml", "receipt.json"]
        [error] = [e for e in logs if e["log_level"] == "error"]
        assert error["folder"] == str(settings.processing_dir)
        assert "lies in .outboxd, which is a symbolic link" in error["error"]
        assert "put the folder itself there" in error["error"]
    finally:
        j.close()


def test_a_dot_outboxd_swapped_for_a_link_after_the_listing_finishes_nothing_elsewhere(
        settings: Settings, tmp_path: Path) -> None:
    """`.outboxd` swapped for a link to a folder holding a work folder of the same name
    (with a receipt.json) between the sweep's listing and its hold on the work folder:
    the folder held is the real one, reached from the outbox; the one behind the link is
    neither archived nor recorded as sent, the real one is left as it was, and one error
    line names the work folder (the next rescan looks again)."""
    w = work(settings, "INV-6")
    outside = tmp_path / "outside"
    (outside / "processing" / w.name).mkdir(parents=True)
    (outside / "processing" / w.name / "INV-6.xml").write_bytes(b"<x/>")
    (outside / "processing" / w.name / "receipt.json").write_text(_receipt("INV-6"))
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logs, \
                swap_when_opened(w.name, settings.outbox.path / ".outboxd", outside) as swapped:
            assert sweep(j, settings) == 0
        assert swapped, "the swap was made"
        assert not j.was_sent(BID)
        assert not list(settings.sent_dir.iterdir())
        assert sorted(os.listdir(outside / "processing" / w.name)) == ["INV-6.xml",
                                                                       "receipt.json"]
        [real] = swapped
        assert sorted(os.listdir(real / "processing" / w.name)) == ["INV-6", "INV-6.xml"]
        [error] = [e for e in logs if e["log_level"] == "error"]
        assert error["work_dir"] == str(w)
    finally:
        j.close()


def test_the_papers_of_an_orphan_are_read_from_the_folder_held_not_through_a_link(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`.outboxd` swapped for a link to a folder holding a work folder of the same name
    with another bundle's receipt.json just while the sweep reads the papers, and put
    back right after: the receipt read is the one in the folder held, so the bundle is
    archived and recorded as sent under its own bundle id — never the other one's (a
    bundle recorded as sent that was not, and its own left unknown)."""
    from daemon.archiving import readback

    w = work(settings, "INV-7")
    (w / "receipt.json").write_text(_receipt("INV-7"))
    other = "cd" * 32
    outside = tmp_path / "outside"
    (outside / "processing" / w.name).mkdir(parents=True)
    (outside / "processing" / w.name / "receipt.json").write_text(
        _receipt("INV-7").replace(BID, other))
    dot, aside = settings.outbox.path / ".outboxd", tmp_path / "aside"
    real_read = readback.read_regular

    def read_while_swapped(*args: Any, **kwargs: Any) -> bytes | None:
        dot.rename(aside)
        dot.symlink_to(outside)
        try:
            return real_read(*args, **kwargs)
        finally:
            dot.unlink()
            aside.rename(dot)

    monkeypatch.setattr(readback, "read_regular", read_while_swapped)
    j = Journal(settings.journal_path)
    try:
        assert sweep(j, settings) == 1
        assert j.was_sent(BID) and not j.was_sent(other)
        [entry] = settings.sent_dir.glob("*/*")
        assert BID in (entry / "receipt.json").read_text()
        assert other in (outside / "processing" / w.name / "receipt.json").read_text()
    finally:
        j.close()


def test_a_processing_folder_the_admin_put_behind_a_link_outside_the_outbox_is_swept(
        tmp_path: Path) -> None:
    """[paths] processing outside the outbox is the admin's: a link on its way there is
    followed as configured, and an orphan of ours in it is put back as usual."""
    (tmp_path / "outbox").mkdir()
    (tmp_path / "real" / "processing").mkdir(parents=True)
    (tmp_path / "mnt").symlink_to(tmp_path / "real")
    s = Settings(outbox=OutboxConfig(path=tmp_path / "outbox"),
                 paths=PathsConfig(state_dir=tmp_path / "state",
                                   processing=tmp_path / "mnt" / "processing"),
                 delivery=DeliveryConfig(url="http://127.0.0.1:9/x"))
    s.paths.state_dir.mkdir()
    back = work(s, "INV-1")
    j = Journal(s.journal_path)
    try:
        assert sweep(j, s) == 1
        assert (s.outbox.path / "INV-1.xml").exists() and not back.exists()
    finally:
        j.close()


def test_a_leftover_work_folder_of_a_bundle_put_back_is_never_sent_from_and_removed_once_empty(
        settings: Settings) -> None:
    """An emptied work folder an unclaim could not remove (claim.LEFTOVER in it) holding an
    invoice file dropped in afterwards: the sweep neither puts that into the outbox nor
    archives it; says so once; and removes the folder once the file is taken out."""
    from daemon.claiming.claim import LEFTOVER
    w = settings.processing_dir / f"INV-9--{BID[:12]}--{this_host()}-{dead_pid()}-abcdef"
    w.mkdir()
    (w / LEFTOVER).write_bytes(b"")
    (w / "INV-9.xml").write_bytes(b"<x/>")
    j = Journal(settings.paths.state_dir / "j.db")
    with capture_logs() as logged:
        assert sweep(j, settings) == 0
        assert sweep(j, settings) == 0
    assert not (settings.outbox.path / "INV-9.xml").exists()
    assert (w / "INV-9.xml").read_bytes() == b"<x/>"
    said = [e for e in logged if e["event"].startswith("work folder of a bundle put back")]
    assert len(said) == 1 and said[0]["names"] == ["INV-9.xml"]
    (w / "INV-9.xml").unlink()
    assert sweep(j, settings) == 1
    assert not w.exists()
    assert j.rows(("settling", "sent", "quarantined")) == []


def test_an_orphan_swapped_for_a_link_just_before_it_goes_back_is_said_so_not_as_a_name_clash(
        settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The orphan is swapped for a link between the sweep's look and its put-back: nothing
    is moved through the link, and the one error line says the work folder is a link and
    that it will be tried again — not that the outbox holds files of the same names."""
    from daemon.claiming import claim as claim_module
    from daemon.claiming import orphans
    w = work(settings, "INV-8")
    aside = tmp_path / "aside"
    monkeypatch.setattr(orphans, "unclaim",
                        linked_aside_before(claim_module.unclaim, aside))
    with capture_logs() as logged:
        assert sweep(Journal(settings.paths.state_dir / "j.db"), settings) == 0
    assert not (settings.outbox.path / "INV-8.xml").exists()
    assert sorted(os.listdir(aside)) == ["INV-8", "INV-8.xml"]
    [said] = [e for e in logged if e["log_level"] == "error"]
    assert said["event"].endswith("cannot be finished; will try again")
    assert "symbolic link" in said["error"] and said["work_dir"] == str(w)


def test_a_folder_of_our_name_copied_in_on_a_journal_that_was_not_lost_is_never_sent_or_moved(
        settings: Settings) -> None:
    """A person copies folders named like ours (this host, a pid no longer running) into
    processing/ — a backup restored — while the journal is the one the daemon always had
    (every claim of it names its folder in a row first): nothing in them is put into the
    outbox, archived or quarantined, nothing in them is removed (not even a file named
    as a paper's temp, which only a folder the lost journal left may hold), and one
    error line names each folder, once."""
    Journal(settings.journal_path).close()  # the journal of earlier runs
    ours = owner_of(settings.paths.state_dir)
    plain = work(settings, "INV-1", owner=ours)
    (plain / ".receipt.json.tmp-0123456789ab").write_bytes(b"the copy's")
    delivered = work(settings, "INV-2", owner=ours)
    write_receipt(delivered, "INV-2")
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == 0
            assert sweep(j, settings) == 0
        assert sorted(os.listdir(settings.outbox.path)) == [".outboxd"]
        assert list(settings.sent_dir.iterdir()) == []
        assert sorted(os.listdir(plain)) == [".receipt.json.tmp-0123456789ab", "INV-1",
                                             "INV-1.xml"]
        assert "receipt.json" in os.listdir(delivered)
        assert j.rows(("settling", "sent", "quarantined")) == []
        said = [e for e in logged if e["log_level"] == "error"]
        assert sorted(e["work_dir"] for e in said) == sorted([str(plain), str(delivered)])
        assert all("was not left by outboxd" in e["event"] and "move its files into the "
                   "outbox" in e["event"] for e in said)
    finally:
        j.close()


def test_a_work_folder_a_row_in_flight_names_is_never_taken_for_an_orphan(
        settings: Settings) -> None:
    """A journal made afresh, whose first sweep finds the work folders there: one that a
    row in flight names (a bundle this daemon claimed and is delivering) is the journal's,
    not the lost journal's: never put back into the outbox (it would be sent twice),
    archived or called a copy; nothing is said of it."""
    ours = owner_of(settings.paths.state_dir)
    j = Journal(settings.journal_path)
    try:
        assert j.afresh
        live = work(settings, "INV-1", pid=os.getpid(), owner=ours)
        j.create("INV-1.xml", "delivering", bundle_id=BID, work_dir=str(live))
        with capture_logs() as logged:
            assert sweep(j, settings) == 0
        assert sorted(os.listdir(live)) == ["INV-1", "INV-1.xml"]
        assert sorted(os.listdir(settings.outbox.path)) == [".outboxd"]
        assert [e for e in logged if e["log_level"] in ("warning", "error")] == []
    finally:
        j.close()


def test_an_orphan_holding_two_invoice_files_is_left_for_a_person(
        settings: Settings) -> None:
    """A lost journal's work folder that holds two invoice files is no one bundle: which
    to put back cannot be told, so neither goes into the outbox; it is left where it is,
    said once at error."""
    w = work(settings, "INV-1")
    (w / "INV-2.xml").write_bytes(b"<y/>")
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == 0
        assert sorted(os.listdir(w)) == ["INV-1", "INV-1.xml", "INV-2.xml"]
        assert sorted(os.listdir(settings.outbox.path)) == [".outboxd"]
        [said] = [e for e in logged if e["log_level"] == "error"]
        assert "holds no single invoice file" in said["event"]
    finally:
        j.close()


def test_a_folder_copied_in_after_the_first_sweep_of_a_lost_journal_is_left_alone(
        settings: Settings) -> None:
    """On a journal made afresh (the old one lost) the folders its daemon left are put
    back at the first sweep; a folder of our name copied in after that, seen by a later
    sweep of the same run (one of those very names too), is nobody's claim: it stays,
    with one error line naming it."""
    from daemon.claiming.orphans import Orphans
    left = work(settings, "INV-1")
    j = Journal(settings.journal_path)
    run = Orphans()
    try:
        assert j.afresh
        assert run.sweep(j, settings, FolderMounts(settings)) == 1
        assert (settings.outbox.path / "INV-1.xml").exists() and not left.exists()
        copied = work(settings, "INV-5", owner=owner_of(settings.paths.state_dir))
        # The folder put back, copied in again under its own name (a backup restored),
        # once its bundle has left the outbox: no longer the lost journal's either.
        (settings.outbox.path / "INV-1.xml").unlink()
        shutil.rmtree(settings.outbox.path / "INV-1")
        (left / "INV-1").mkdir(parents=True)
        (left / "INV-1.xml").write_bytes(b"<x/>")
        with capture_logs() as logged:
            assert run.sweep(j, settings, FolderMounts(settings)) == 0
        assert not (settings.outbox.path / "INV-5.xml").exists()
        assert not (settings.outbox.path / "INV-1.xml").exists()
        assert sorted(os.listdir(copied)) == ["INV-5", "INV-5.xml"]
        assert sorted(os.listdir(left)) == ["INV-1", "INV-1.xml"]
        [said] = [e for e in logged if e["log_level"] == "error"]
        assert said["work_dir"] == str(copied) and "was not left by outboxd" in said["event"]
        # Named without a state dir, as before owners: left for a daemon of that time.
        [other] = [e for e in logged if e["log_level"] == "warning"]
        assert other["work_dir"] == str(left) and "before its upgrade" in other["event"]
    finally:
        j.close()


@pytest.mark.parametrize("afresh", [True, False])
def test_an_empty_work_folder_of_a_failed_claim_is_removed_with_an_info_line(
        settings: Settings, afresh: bool) -> None:
    """A claim failed and so did the removal of its new, empty work folder (the row went
    back to settling): the sweep removes that folder, with an info line and no error
    asking a person to look — on a journal of earlier runs and on one made afresh."""
    if not afresh:
        Journal(settings.journal_path).close()
    w = settings.processing_dir / f"INV-6--{BID[:12]}--{this_host()}-{dead_pid()}-abcdef"
    w.mkdir()
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == 1
        assert not w.exists()
        assert [e["log_level"] for e in logged] == ["info"]
        assert logged[0]["work_dir"] == str(w) and "empty work folder" in logged[0]["event"]
    finally:
        j.close()


def test_an_empty_work_folder_swapped_for_a_link_after_the_listing_is_never_removed_through_it(
        settings: Settings, tmp_path: Path) -> None:
    """An empty work folder swapped for a link to an empty folder outside between the
    sweep's listing and its removal: neither the link, nor where it leads, nor the real
    folder (moved aside) is removed; one error line names the work folder."""
    w = settings.processing_dir / f"INV-7--{BID[:12]}--{this_host()}-{dead_pid()}-abcdef"
    w.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logged, swap_when_opened(w.name, w, outside) as swapped:
            assert sweep(j, settings) == 0
        assert swapped, "the swap was made"
        [real] = swapped
        assert w.is_symlink() and outside.is_dir() and real.is_dir()
        [error] = [e for e in logged if e["log_level"] == "error"]
        assert error["work_dir"] == str(w)
    finally:
        j.close()


def test_a_work_folder_an_archive_kept_for_a_late_file_is_said_so_and_removed_once_emptied(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ on another file system: a file put into the work folder while the bundle was
    copied there keeps the folder in processing/. The sweep says it was kept for that
    file (naming the file and the archive entry), never that someone copied the folder in;
    it neither sends nor moves the file; once a person takes the file out, the folder
    goes."""
    from daemon.archiving import archive
    from daemon.fs import fsmove
    Journal(settings.journal_path).close()  # the journal of earlier runs: not lost
    w = work(settings, "INV-3")
    late = w / "INV-3" / "late.pdf"
    rename = fsmove.rename_noreplace

    def across_dropping_late(src: Path, dst: Path, *at: int | None) -> None:
        if Path(src) == w:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        if Path(src).name.endswith(".partial"):  # the copy, complete, is published
            late.write_bytes(b"%PDF-late")
        rename(src, dst, *at)

    monkeypatch.setattr(fsmove, "rename_noreplace", across_dropping_late)
    target = settings.sent_dir / "2026-01-01" / f"INV-3--{BID[:12]}"
    with capture_logs():
        archive.place(w, target, {"receipt.json": b'{"bundle_id": "' + BID.encode() + b'"}'},
                      BID)
    monkeypatch.undo()
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == 0
            assert sweep(j, settings) == 0
        assert late.read_bytes() == b"%PDF-late"
        assert sorted(os.listdir(settings.outbox.path)) == [".outboxd"]
        [said] = [e for e in logged if e["log_level"] in ("warning", "error")]
        assert said["event"].startswith("work folder kept because files were put into it "
                                        "while its bundle was being archived")
        assert "not left by outboxd" not in said["event"]
        assert said["work_dir"] == str(w) and said["archive"] == str(target)
        assert said["names"] == ["INV-3/late.pdf"]
        late.rename(settings.outbox.path / "late.pdf")
        with capture_logs() as logged:
            assert sweep(j, settings) == 1
        assert not w.exists() and target.is_dir()
        assert [e["event"] for e in logged] == ["emptied work folder kept after an archive "
                                               "removed"]
        assert j.rows(("settling", "sent", "quarantined")) == []
    finally:
        j.close()


def _killed(*_: object) -> None:
    """The daemon killed here (KeyboardInterrupt: nothing on the way catches it)."""
    raise KeyboardInterrupt


def test_a_kept_folder_whose_entry_the_share_fails_to_show_is_compared_again_at_the_next_sweep(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """As below (a crash cut the removal short, the work folder's receipt went with it),
    but the share fails the open of the entry's receipt (EIO) at the first sweep: nothing
    is removed, and the bundle's own files are not said to be "in no archive entry" (a
    clerk told to move them into the outbox sends them again); the next sweep, the share
    back, compares them and removes the folder. Taken for no paper (or through the
    sweep's once-said error), they were kept in processing until a restart."""
    w = work(settings, "INV-5")
    target = settings.sent_dir / "2026-01-01" / f"INV-5--{BID[:12]}"
    _marked_then_killed_in_removal(
        monkeypatch, w, target, {"receipt.json": b'{"bundle_id": "' + BID.encode() + b'"}'},
        False)
    (w / "receipt.json").unlink(missing_ok=True)
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs() as logged, pytest.MonkeyPatch.context() as m:
            looks_fail(m, "receipt.json", calls=("open",))
            assert sweep(j, settings) == 0
        assert sorted(str(p.relative_to(w)) for p in w.rglob("*")) == [
            KEPT, "INV-5", "INV-5.xml", "INV-5/a.pdf"]
        [said] = [e for e in logged if e["log_level"] in ("warning", "error")]
        assert said["event"] == ("work folder unknown to the journal cannot be finished; "
                                 "will try again")
        assert "Input/output error" in said["error"] and said["work_dir"] == str(w)
        with capture_logs() as logged:
            assert sweep(j, settings) == 1
        assert not w.exists()
        assert sorted(os.listdir(target)) == ["INV-5", "INV-5.xml", "receipt.json"]
        assert [e for e in logged if e["log_level"] in ("warning", "error")] == []
    finally:
        j.close()


@pytest.mark.parametrize("late", [False, True])
def test_a_folder_marked_before_a_crash_cut_its_removal_short_is_emptied_of_what_its_entry_holds(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, late: bool) -> None:
    """sent/ on another file system: the work folder is marked for its entry once the copy
    is in place, and a crash (the journal lost with it) cut the removal short. The sweep
    removes what the entry holds the same, never telling a clerk that the bundle's own
    invoice, attachments and receipt are "in no archive entry" (to be moved "where they
    belong": the outbox, to be sent again); a file put in since stays, said, and the
    folder goes once nothing else is left."""
    w = work(settings, "INV-5")
    target = settings.sent_dir / "2026-01-01" / f"INV-5--{BID[:12]}"
    _marked_then_killed_in_removal(
        monkeypatch, w, target, {"receipt.json": b'{"bundle_id": "' + BID.encode() + b'"}'},
        late)
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == (0 if late else 1)
        assert sorted(os.listdir(target)) == ["INV-5", "INV-5.xml", "receipt.json"]
        assert sorted(os.listdir(settings.outbox.path)) == [".outboxd"]
        said = [e for e in logged if e["log_level"] in ("warning", "error")]
        if late:
            assert sorted(str(p.relative_to(w)) for p in w.rglob("*")) == [
                KEPT, "INV-5", "INV-5/late.pdf"]
            assert [e["names"] for e in said if "names" in e] == [["INV-5/late.pdf"]]
        else:
            assert not w.exists() and said == []
    finally:
        j.close()


@pytest.mark.parametrize("late", [False, True])
def test_a_bundle_quarantined_before_a_crash_that_lost_the_journal_is_listed_as_quarantined(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, late: bool) -> None:
    """quarantine/ on another file system: the work folder is marked for its entry once
    the copy is in place, and a crash cut the removal short before the row said
    "quarantined" (the journal lost with it). The sweep emptied the folder but recorded
    nothing, unlike for a folder without the mark: `outboxd status` never listed the
    bundle, the page called it another outboxd's (or, on a later day, left it out), and
    `outboxd send` knew nothing of the invoice. It is recorded as quarantined at its
    entry, on its day, with its reasons; once, though a file put in keeps the folder
    sweep after sweep."""
    from daemon.archiving.archive_papers import reason_papers, reason_record
    from daemon.bundle import Finding
    from daemon.report import status
    w = work(settings, "INV-5")
    # Within the week `outboxd status` lists.
    at = (datetime.now(UTC) - timedelta(hours=1)).replace(microsecond=0)
    target = settings.quarantine_dir / f"{at:%Y-%m-%d}" / f"INV-5--{BID[:12]}"
    why = Finding("not-a-pdf", "INV-5/a.pdf", "is not a PDF — export it again as a PDF")
    papers = reason_papers(reason_record(BID, "INV-5.xml", [why], f"{at:%Y-%m-%dT%H:%M:%SZ}",
                                         invoice_ids=["INV-5"]))
    _marked_then_killed_in_removal(monkeypatch, w, target, papers, late)
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == (0 if late else 1)
        assert w.exists() == late and sorted(os.listdir(target)) == [
            "INV-5", "INV-5.xml", "REASON.txt", "reason.json"]
        orphans = Orphans()  # a daemon's run: its first sweep and a rescan
        with capture_logs() as later:
            assert orphans.sweep(j, settings, FolderMounts(settings)) == 0
            assert orphans.sweep(j, settings, FolderMounts(settings)) == 0
        [said] = [e for e in logged + later if e["event"].startswith("quarantined bundle")]
        assert said["event"] == ("quarantined bundle unknown to the journal found in "
                                 "quarantine/ and recorded")
        assert (said["work_dir"], said["archive"]) == (str(w), str(target))
        [row] = j.rows(("quarantined",))
        assert (row.archive_dir, row.bundle_id, row.since) == (
            str(target), BID, f"{at:%Y-%m-%dT%H:%M:%S}.000Z")
        [listed] = status.collect(settings)["bundles"]
        assert (listed["state"], listed["folder"], listed["invoice_file"]) == (
            "quarantined", str(target), "INV-5.xml")
        assert [r["code"] for r in listed["reasons"]] == ["not-a-pdf"]
    finally:
        j.close()


@pytest.mark.parametrize("taken", [False, True])
def test_a_copy_in_place_before_the_mark_is_found_by_the_sweep_not_archived_again(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, taken: bool) -> None:
    """sent/ on another file system: killed once the copy was in place, the work folder
    not marked for it (a build that marked it only after the rename; a folder named as
    the mark in the work folder), the journal lost with it. The sweep worked out the first
    free name, past the bundle's own copy: a second entry (NAME-2, or NAME-3 beside
    someone else's entry at NAME), which it recorded as the bundle's. It starts at the
    entry's own name, finds the copy there (or beside it) and removes the work folder:
    one entry, the one recorded."""
    from daemon.archiving import archive
    w = work(settings, "INV-8")
    write_receipt(w, "INV-8")
    name = settings.sent_dir / "2026-01-01" / f"INV-8--{BID[:12]}"
    target = name
    if taken:
        name.mkdir(parents=True)
        (name / "INV-8.xml").write_bytes(b"<x>someone else's</x>")
        target = name.with_name(name.name + "-2")
    exdev_for(monkeypatch, w)
    monkeypatch.setattr(archive, "mark_kept", lambda *_: None)
    killed_after_rename(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        archive.move_into_place(w, target, within=settings.outbox.path)
    monkeypatch.undo()
    content = tree(w)
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs():
            assert sweep(j, settings) == 1
        assert sorted(os.listdir(name.parent)) == sorted({name.name, target.name})
        assert tree(target) == content
        assert not w.exists()
        [row] = j.rows(("sent",))
        assert row.archive_dir == str(target)
    finally:
        j.close()


def test_a_folder_marked_for_an_entry_a_kill_kept_from_being_made_is_archived_there_once(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """sent/ on another file system: the work folder is marked for its entry once the copy
    is complete, and the daemon was killed before the copy was renamed into place, the
    journal lost with it: a mark naming an entry that is not there. The sweep archives
    the folder at that very name, once, records it as sent, and never says the mark was
    someone else's."""
    from daemon.archiving import archive
    from daemon.fs import fsmove
    w = work(settings, "INV-9")
    write_receipt(w, "INV-9")
    content = tree(w)
    target = settings.sent_dir / "2026-01-01" / f"INV-9--{BID[:12]}"
    exdev_for(monkeypatch, w)
    monkeypatch.setattr(fsmove, "_into_place", _killed)
    with pytest.raises(KeyboardInterrupt):
        archive.move_into_place(w, target, within=settings.outbox.path)
    monkeypatch.undo()
    assert (w / KEPT).read_bytes() == os.fsencode(target)
    assert not os.path.lexists(target)
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == 1
        assert os.listdir(target.parent) == [target.name]
        assert tree(target) == content
        assert not w.exists()
        [row] = j.rows(("sent",))
        assert row.archive_dir == str(target)
        assert [e["event"] for e in logged if e["log_level"] in ("warning", "error")] == [
            "delivered bundle unknown to the journal archived in sent/"]
    finally:
        j.close()


def test_a_mark_a_share_user_wrote_into_a_delivered_orphan_is_no_proof_it_is_archived(
        settings: Settings) -> None:
    """A lost journal left a delivered bundle's work folder (its receipt.json in it); a
    share user writes a mark into it naming a folder of theirs in quarantine/ that holds
    a copy of the invoice. The sweep took the folder for one archived there: the invoice
    removed from it, the rest said to be "in no archive entry" (to be moved where it
    belongs: the outbox, and sent again), and the bundle never recorded as sent. Their
    folder holds no copy of the receipt: the mark is not ours, the bundle is archived in
    sent/, whole, and recorded as sent; their folder is left as it was."""
    w = work(settings, "INV-6")
    write_receipt(w, "INV-6")
    content = tree(w)
    theirs = marked_for_theirs(settings, w, "INV-6")
    j = Journal(settings.journal_path)
    try:
        with capture_logs():
            assert sweep(j, settings) == 1
        [archived] = list(settings.sent_dir.glob("*/*"))
        assert tree(archived) == content
        assert not w.exists() and j.was_sent(BID)
        assert os.listdir(theirs) == ["INV-6.xml"]
    finally:
        j.close()


def test_a_mark_naming_a_folder_without_the_bundles_paper_empties_nothing(
        settings: Settings) -> None:
    """A claimed bundle's work folder (no paper yet) that a lost journal left, with a mark
    a share user wrote naming a folder of theirs in quarantine/ holding a copy of the
    invoice: the sweep removed the invoice from the work folder as "archived" there. The
    entry does not prove the mark ours, and is no whole copy: nothing is removed, and the
    files are named for a person to move."""
    w = work(settings, "INV-7")
    content = tree(w)
    theirs = marked_for_theirs(settings, w, "INV-7")
    assert swept_leaving_all(settings, w, content) == [["INV-7/a.pdf", "INV-7.xml"]]
    assert os.listdir(theirs) == ["INV-7.xml"]


def test_a_mark_naming_a_whole_copy_outside_the_archive_removes_nothing(
        settings: Settings, tmp_path: Path) -> None:
    """A lost journal's work folder with a mark naming a folder outside sent/ and
    quarantine/ that holds a whole copy of the bundle and a receipt.json naming it (a
    share user's, or a copy taken by hand): no archive entry, so nothing is removed from
    the work folder as "archived" there; its files are named for a person."""
    w = work(settings, "INV-8")
    content = tree(w)
    copy = tmp_path / "elsewhere" / "2026-01-01" / "INV-8"
    copy.parent.mkdir(parents=True)
    shutil.copytree(w, copy)
    write_receipt(copy, "INV-8")
    (w / KEPT).write_bytes(os.fsencode(copy))
    assert swept_leaving_all(settings, w, content) == [["INV-8/a.pdf", "INV-8.xml"]]


def test_a_mark_naming_a_copy_with_a_reason_outside_quarantine_records_no_quarantine(
        settings: Settings, tmp_path: Path) -> None:
    """A lost journal's work folder with a mark naming a folder outside quarantine/ that
    holds a copy of the bundle and a reason.json naming it (a share user's, or a copy
    taken by hand): no quarantine entry, so the journal records no quarantined row for
    it (`outboxd status` would list the bundle as quarantined at a folder outside the
    archive, and `outboxd retry` look there); the work folder's files are left and named
    for a person."""
    from daemon.archiving.archive_papers import reason_papers, reason_record, write_papers
    from daemon.bundle import Finding
    w = work(settings, "INV-9")
    content = tree(w)
    copy = tmp_path / "elsewhere" / "2026-01-01" / f"INV-9--{BID[:12]}"
    copy.parent.mkdir(parents=True)
    shutil.copytree(w, copy)
    why = Finding("not-a-pdf", "INV-9/a.pdf", "is not a PDF — export it again as a PDF")
    write_papers(copy, reason_papers(reason_record(BID, "INV-9.xml", [why],
                                                   "2026-01-01T10:00:00Z",
                                                   invoice_ids=["INV-9"])))
    (w / KEPT).write_bytes(os.fsencode(copy))
    assert swept_leaving_all(settings, w, content) == [["INV-9/a.pdf", "INV-9.xml"]]
    j = Journal(settings.journal_path)
    try:
        assert j.rows(("quarantined",)) == []
    finally:
        j.close()


def swept_leaving_all(settings: Settings, w: Path, content: dict[str, bytes]
                      ) -> list[list[str]]:
    """A sweep that finishes nothing and leaves every file of the work folder `w` as
    `content` (its mark aside); the names its log gives a person to move."""
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == 0
        assert {k: v for k, v in tree(w).items() if k != KEPT} == content
        return [e["names"] for e in logged if "names" in e]
    finally:
        j.close()


def test_a_file_put_into_a_kept_work_folder_as_it_is_removed_keeps_the_folder_kept(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kept work folder found empty, and a clerk drops a file into it in the moment
    between its emptied subfolders' removal and its own: the folder stays, with its
    mark, and the next sweep says it is kept for that file (naming it and the archive
    entry) — never that someone copied it in (its mark removed with the folder left),
    nor nothing at all (the earlier word of it taken for this one)."""
    from daemon.archiving import archive
    from daemon.claiming import orphans
    from daemon.fs import fsmove
    Journal(settings.journal_path).close()
    w = work(settings, "INV-4")
    late = w / "INV-4" / "late.pdf"
    rename = fsmove.rename_noreplace

    def across_dropping_late(src: Path, dst: Path, *at: int | None) -> None:
        if Path(src) == w:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        if Path(src).name.endswith(".partial"):
            late.write_bytes(b"%PDF-late")
        rename(src, dst, *at)

    monkeypatch.setattr(fsmove, "rename_noreplace", across_dropping_late)
    target = settings.sent_dir / "2026-01-01" / f"INV-4--{BID[:12]}"
    with capture_logs():
        archive.place(w, target, {"receipt.json": b'{"bundle_id": "' + BID.encode() + b'"}'},
                      BID)
    monkeypatch.undo()
    j = Journal(settings.journal_path)
    try:
        with capture_logs():
            assert sweep(j, settings) == 0  # kept for late.pdf: said
        late.rename(settings.outbox.path / "late.pdf")  # taken out by a person
        remove_folders_below = orphans.remove_folders_below

        def then_a_file_comes(held: int) -> None:
            remove_folders_below(held)
            (w / "another.pdf").write_bytes(b"%PDF-another")

        monkeypatch.setattr(orphans, "remove_folders_below", then_a_file_comes)
        with capture_logs():
            assert sweep(j, settings) == 0
        monkeypatch.undo()
        assert (w / "another.pdf").read_bytes() == b"%PDF-another"
        assert (w / KEPT).read_bytes() == os.fsencode(target)
        with capture_logs() as logged:
            assert sweep(j, settings) == 0
        [said] = [e for e in logged if e["log_level"] in ("warning", "error")]
        assert said["event"].startswith("work folder kept because files were put into it")
        assert said["names"] == ["another.pdf"] and said["archive"] == str(target)
    finally:
        j.close()


def test_a_dead_daemon_of_this_host_with_another_state_dir_keeps_its_folders(
        settings: Settings, tmp_path: Path) -> None:
    """Two daemons of one host (own state dirs) on one share: the folders the other one
    claimed before it was killed are its business, even to a journal made afresh — never
    put back or archived by us (its journal knows what it sent), never called copies
    nobody left (an error that is a lie); one warning each says they wait for it,
    naming only the process known to be gone (that daemon may have restarted under
    another pid and be finishing them): not "whose process is no longer running". A
    folder of our own state dir's dead run is still ours."""
    other = owner_of(tmp_path / "state-of-the-other")
    theirs = work(settings, "INV-1", owner=other)
    delivered = work(settings, "INV-2", owner=other)
    write_receipt(delivered, "INV-2")
    mine = work(settings, "INV-3", owner=owner_of(settings.paths.state_dir))
    j = Journal(settings.journal_path)
    try:
        assert j.afresh
        with capture_logs() as logged:
            assert sweep(j, settings) == 1
        assert (settings.outbox.path / "INV-3.xml").exists() and not mine.exists()
        assert sorted(os.listdir(theirs)) == ["INV-1", "INV-1.xml"]
        assert "receipt.json" in os.listdir(delivered) and not j.was_sent(BID)
        assert not (settings.outbox.path / "INV-1.xml").exists()
        assert [e for e in logged if e["log_level"] == "error"] == []
        warned = [e for e in logged if e["log_level"] == "warning"
                  and "another outboxd on this host" in e["event"]]
        assert sorted(e["work_dir"] for e in warned) == sorted([str(theirs), str(delivered)])
        for e in warned:
            pid = Path(e["work_dir"]).name.rsplit("--", 1)[1].rsplit("-", 2)[1]
            assert f"left by process {pid}, which is no longer running" in e["event"]
            assert "it may run again already, under another process id" in e["event"]
    finally:
        j.close()


def test_work_folders_carry_their_daemons_state_dir() -> None:
    """Two state dirs give two owners, one state dir always the same (so a journal lost
    still finds its folders), and the owner is in the work folder's tag."""
    a, b = owner_of(Path("/var/lib/outboxd")), owner_of(Path("/var/lib/outboxd-b"))
    assert a != b and a == owner_of(Path("/var/lib/outboxd"))
    tag = work_dir_for(Path("processing"), "INV-1", BID, a).name.rsplit("--", 1)[1]
    assert tag.rsplit("-", 1)[1].startswith(a)


def test_a_folder_named_before_owners_another_daemon_left_is_not_called_a_copy_nobody_left(
        settings: Settings) -> None:
    """Two daemons of one host upgraded one after the other: the one still on the
    earlier version is stopped with a bundle in flight, its work folder named as before
    owners (NAME--ID12--HOST-PID-RAND, no state dir tag), while the upgraded one runs on
    its own journal of earlier runs. Nothing in it is sent, archived or moved (only its
    daemon's journal knows what was delivered), and the one warning naming it says it
    may be another daemon's from before its upgrade — not an error calling it a copy
    nobody left, which is a lie in the case an upgrade makes."""
    Journal(settings.journal_path).close()  # the journal of earlier runs
    theirs = work(settings, "INV-1")
    j = Journal(settings.journal_path)
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == 0
            assert sweep(j, settings) == 0
        assert sorted(os.listdir(theirs)) == ["INV-1", "INV-1.xml"]
        assert sorted(os.listdir(settings.outbox.path)) == [".outboxd"]
        assert [e for e in logged if e["log_level"] == "error"] == []
        [said] = [e for e in logged if e["log_level"] == "warning"]
        assert said["work_dir"] == str(theirs)
        assert "before its upgrade" in said["event"] and "move its files into the " \
            "outbox" in said["event"]
    finally:
        j.close()


def test_a_work_folder_archived_by_our_own_delivery_as_the_sweep_looks_is_no_error(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rescan's sweep lists processing/ while this daemon's delivery worker holds a
    bundle in its work folder (its row delivering); the worker archives it in sent/ and
    records it sent before the sweep asks the journal which folders are in flight. The
    folder the listing had is gone, not an orphan: nothing is logged, nothing moved
    (before: "work folder unknown to the journal cannot be finished", No such file or
    directory, at error level, for a bundle just sent)."""
    Journal(settings.journal_path).close()  # the journal of earlier runs: none was lost
    j = Journal(settings.journal_path)
    try:
        w = work(settings, "INV-1", pid=os.getpid(), owner=owner_of(settings.paths.state_dir))
        row = j.create("INV-1.xml", "delivering", bundle_id=BID, work_dir=str(w))
        rows = j.rows

        def archived_first(states: tuple[str, ...]) -> list[Any]:
            if w.exists():  # the worker's archive: the move, then the row's transition
                w.rename(settings.sent_dir / w.name)
                j.transition(row, "sent")
            return rows(states)
        monkeypatch.setattr(j, "rows", archived_first)
        with capture_logs() as logged:
            assert sweep(j, settings) == 0
        assert not w.exists() and (settings.sent_dir / w.name / "INV-1.xml").exists()
        assert [e for e in logged if e["log_level"] in ("error", "warning")] == [], logged
    finally:
        j.close()


@pytest.mark.parametrize("clerk", [False, True], ids=["alone", "clerk"])
@pytest.mark.parametrize("taken", [False, True], ids=["free", "taken"])
@pytest.mark.parametrize("at", KILLS)
def test_a_kill_at_any_point_of_a_copy_with_the_journal_lost_leaves_one_entry_recorded(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, at: str, taken: bool,
        clerk: bool) -> None:
    """sent/ on another file system: the archive killed at any point of its move (the name
    free, or taken by someone else's entry: beside it, at NAME-2), a clerk saving a file
    into the work folder during the copy or not, and the journal lost with it. The new
    journal's start (sent/ read back, then the sweep) leaves one entry of the bundle,
    whole, recorded as sent there once; someone else's entry as it was; a clerk's file
    saved during a copy that was put in place kept in the work folder and said, one
    saved during a copy a kill kept from being put in place in the copy made again."""
    from daemon.archiving import archive
    from daemon.archiving.readback import restore_sent
    w = work(settings, "INV-9")
    write_receipt(w, "INV-9")
    content = tree(w)
    name = settings.sent_dir / "2026-01-01" / f"INV-9--{BID[:12]}"
    target = name
    if taken:
        name.mkdir(parents=True)
        (name / "INV-9.xml").write_bytes(b"<x>someone else's</x>")
        target = name.with_name(name.name + "-2")
    killed_at(monkeypatch, w, at, KeyboardInterrupt(),
              lambda: clerk and (w / "note.txt").write_bytes(b"a clerk's note"))
    with pytest.raises(KeyboardInterrupt):
        archive.move_into_place(w, target, within=settings.outbox.path)
    monkeypatch.undo()
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs() as logged:
            restore_sent(j, settings.sent_dir, 36500)
            sweep(j, settings)
        assert sorted(os.listdir(name.parent)) == sorted({name.name, target.name})
        put_in_place = at not in ("copied", "marked")
        note = {"note.txt": b"a clerk's note"} if clerk and not put_in_place else {}
        assert tree(target) == {**content, **note}
        [row] = j.rows(("sent",))
        assert row.archive_dir == str(target)
        if clerk and put_in_place:
            assert sorted(os.listdir(w)) == [KEPT, "note.txt"]
            [said] = [e for e in logged if e.get("names")]
            assert said["names"] == ["note.txt"] and said["archive"] == str(target)
        else:
            assert not w.exists()
    finally:
        j.close()


def _marked_then_killed_in_removal(monkeypatch: pytest.MonkeyPatch, w: Path, target: Path,
                                   papers: dict[str, bytes], late: bool) -> None:
    """The work folder `w` archived into `target` on another file system, marked for it,
    and the daemon killed in the source's removal; with `late`, a file a clerk put into
    the work folder after that."""
    from daemon.archiving import archive
    from daemon.fs import fsmove
    exdev_for(monkeypatch, w)
    monkeypatch.setattr(fsmove, "remove_held", _killed)
    with pytest.raises(KeyboardInterrupt):
        archive.place(w, target, papers, BID)
    monkeypatch.undo()
    assert (w / KEPT).read_bytes() == os.fsencode(target)
    if late:
        (w / "INV-5" / "late.pdf").write_bytes(b"%PDF-late")


def test_an_orphan_whose_names_a_clerk_dropped_again_stays_put_and_says_which_names_clash(
        settings: Settings) -> None:
    """An orphan of a dead process (no receipt, no reason) cannot go back where the clerk
    dropped files of the same names since: nothing is overwritten, nothing removed, the
    folder stays in processing/ and one error names the clashing files and the fix; the
    next sweep does not say it again."""
    w = work(settings, "INV-1")
    outbox = settings.outbox.path
    (outbox / "INV-1.xml").write_bytes(b"<new/>")
    swept, logged = swept_with_logs(settings)
    assert swept == 0
    assert (outbox / "INV-1.xml").read_bytes() == b"<new/>"
    assert (w / "INV-1.xml").read_bytes() == b"<x/>"
    assert (w / "INV-1" / "a.pdf").read_bytes() == b"%PDF-1.4"
    [said] = [e for e in logged if e["log_level"] == "error"]
    assert "cannot go back" in said["event"] and "compare them" in said["event"]
    assert "INV-1.xml" in said["names"] and said["work_dir"] == str(w)
    swept, logged = swept_with_logs(settings)
    assert swept == 0 and not [e for e in logged if e["log_level"] == "error"]
    assert (w / "INV-1.xml").exists() and (outbox / "INV-1.xml").read_bytes() == b"<new/>"


def test_a_kept_folder_whose_entry_was_moved_out_of_the_archive_loses_nothing(
        settings: Settings) -> None:
    """A work folder marked for its sent/ entry (KEPT), its receipt gone with a removal a
    crash cut short, whose entry an admin has since moved out of sent/: with no entry at
    the mark's name nothing is compared, so nothing is removed — no day folder is made
    for it, and the files stay, said as in no archive entry."""
    w = work(settings, "INV-5")
    target = settings.sent_dir / "2026-01-01" / f"INV-5--{BID[:12]}"
    (w / KEPT).write_bytes(os.fsencode(target))
    swept, logged = swept_with_logs(settings)
    assert swept == 0
    assert sorted(str(p.relative_to(w)) for p in w.rglob("*")) == [
        KEPT, "INV-5", "INV-5.xml", "INV-5/a.pdf"]
    assert not target.parent.exists()
    [said] = [e for e in logged if e["log_level"] == "warning"]
    assert "in no archive entry" in said["event"] and said["archive"] == str(target)
    assert sorted(said["names"]) == ["INV-5.xml", "INV-5/a.pdf"]


def test_a_file_put_into_a_kept_folders_subfolder_as_it_is_removed_is_kept_and_said(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kept work folder found holding only an emptied subfolder, and a clerk drops a
    file into that subfolder in the moment before its removal: the file, its subfolder,
    the folder and its mark stay, and the next sweep says the folder is kept for that
    file (naming it) — never a file removed with the folder taken for empty."""
    w = work(settings, "INV-4")
    for f in (w / "INV-4.xml", w / "INV-4" / "a.pdf"):
        f.unlink()
    target = settings.sent_dir / "2026-01-01" / f"INV-4--{BID[:12]}"
    (w / KEPT).write_bytes(os.fsencode(target))
    late = w / "INV-4" / "late.pdf"
    real_rmdir = os.rmdir

    def rmdir_after_a_drop(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path) == "INV-4" and not late.exists():
            late.write_bytes(b"%PDF-late")
        real_rmdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "rmdir", rmdir_after_a_drop)
    swept, _ = swept_with_logs(settings)
    monkeypatch.undo()
    assert swept == 0
    assert late.read_bytes() == b"%PDF-late" and (w / KEPT).read_bytes() == os.fsencode(target)
    swept, logged = swept_with_logs(settings)
    [said] = [e for e in logged if e["log_level"] in ("warning", "error")]
    assert said["event"].startswith("work folder kept because files were put into it")
    assert said["names"] == ["INV-4/late.pdf"]


def test_an_orphan_the_share_refuses_to_finish_is_said_in_words_not_as_an_errno(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """An orphaned work folder whose finishing the share refuses (permissions changed by
    hand): the error line names the file and says the refusal in words, as archiving/
    says an OSError — "Permission denied (/srv/…)", not "[Errno 13] Permission denied:
    '/srv/…'" — and the folder stays for the next sweep."""
    from daemon.claiming import orphans
    w = work(settings, "INV-9")

    def refused(*_: object, **__: object) -> bool:
        raise PermissionError(errno.EACCES, "Permission denied", str(w / "INV-9.xml"))

    monkeypatch.setattr(orphans, "_finish", refused)
    swept, logged = swept_with_logs(settings)
    assert swept == 0 and w.is_dir()
    [said] = [e for e in logged if e["log_level"] == "error"]
    assert said["event"].endswith("cannot be finished; will try again")
    assert said["error"] == f"Permission denied ({w / 'INV-9.xml'})"
