"""What a share user writes into outboxd's folders — a `.outboxd-kept` mark, a
reason.json — never makes outboxd remove a bundle's files for an archive entry that is
not that bundle's, nor record an outcome for a bundle id the bundle does not hold."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon.archiving.kept import KEPT
from daemon.claiming.orphans import sweep
from daemon.configuration.config import Settings
from daemon.journal import Journal

from .test_orphans import BID, work


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*")
            if p.is_file() and p.name != KEPT}


def test_a_forged_mark_naming_a_whole_copy_without_the_bundles_paper_removes_nothing(
        settings: Settings) -> None:
    """A claimed bundle's work folder (no paper yet) that a lost journal left, with a mark
    a share user wrote naming a folder of theirs in sent/ holding a copy of every file
    of the bundle, and no receipt: the sweep removed the whole bundle from processing as
    "archived" there — never sent, only looking sent. The mark is trusted only with the
    bundle's paper in the entry: nothing is removed, their folder is left as it is."""
    w = work(settings, "INV-7")
    content = _files(w)
    theirs = settings.sent_dir / "2026-01-01" / f"INV-7--{BID[:12]}"
    shutil.copytree(w, theirs)
    (w / KEPT).write_bytes(os.fsencode(theirs))
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs():
            assert sweep(j, settings) == 0
        assert _files(w) == content
        assert _files(theirs) == content
        assert j.rows(("sent", "quarantined")) == []
    finally:
        j.close()


def test_a_marked_folder_whose_paper_a_crash_removed_first_is_emptied_of_what_its_entry_holds(
        settings: Settings) -> None:
    """A work folder marked for its entry in sent/, killed part-way through its removal
    after its receipt went (the journal lost with it): only a file of the bundle sorted
    after receipt.json is left. The entry holds the receipt of the bundle whose id the
    work folder's name carries: the mark is ours, the file the entry holds the same is
    removed, and the folder with it."""
    w = work(settings, "INV-7")
    target = settings.sent_dir / "2026-01-01" / f"INV-7--{BID[:12]}"
    shutil.copytree(w, target)
    (target / "receipt.json").write_text(json.dumps({
        "manifest": {"bundle_id": BID, "invoice_file": {"name": "INV-7.xml"},
                     "invoices": [{"id": "INV-7"}]},
        "response": {"receipt_id": "r"}, "delivered_at": "2026-01-01T00:00:00.000Z"}))
    (target / "zeta.txt").write_bytes(b"a note of the bundle's")
    (w / "zeta.txt").write_bytes(b"a note of the bundle's")
    shutil.rmtree(w / "INV-7")
    (w / "INV-7.xml").unlink()
    (w / KEPT).write_bytes(os.fsencode(target))
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == 1
        assert not w.exists()
        assert (target / "zeta.txt").read_bytes() == b"a note of the bundle's"
        assert [e for e in logged if e["log_level"] in ("warning", "error")] == []
    finally:
        j.close()


OTHER = "cd" * 32  # a bundle id the work folders of these tests do not hold


def _receipt(bundle_id: object) -> str:
    return json.dumps({
        "manifest": {"bundle_id": bundle_id, "invoice_file": {"name": "INV-7.xml"},
                     "invoices": [{"id": "INV-7"}]},
        "response": {"receipt_id": "r"}, "delivered_at": "2026-01-01T00:00:00.000Z"})


def _reason(bundle_id: object, invoice_file: object = "INV-7.xml") -> str:
    return json.dumps({"bundle_id": bundle_id, "invoice_file": invoice_file,
                       "quarantined_at": "2026-01-01T00:00:00Z",
                       "reasons": [{"code": "not-a-pdf", "file": "INV-7/a.pdf",
                                    "message": "is not a PDF"}]})


@pytest.mark.parametrize(("paper", "text"), [
    ("receipt.json", _receipt(OTHER)),
    ("reason.json", _reason(OTHER)),
    ("reason.json", _reason(5)),
    ("reason.json", _reason(BID, "../../elsewhere.xml")),
    ("reason.json", _reason(BID, ["INV-7.xml"])),
])
def test_a_paper_that_does_not_name_the_folders_bundle_records_nothing_and_moves_nothing(
        settings: Settings, paper: str, text: str) -> None:
    """A work folder a lost journal left holds a receipt.json or reason.json (someone
    wrote it there) naming another bundle than the one the folder's name carries, or a
    bundle id or invoice file of another type than outboxd writes, or an invoice file
    that is no plain name. The sweep recorded the other bundle as sent (a later drop of
    it refused as a duplicate) or quarantined, or stopped on the type. Now nothing is
    recorded nor moved: the folder is left for a person, named once at error."""
    w = work(settings, "INV-7")
    (w / paper).write_text(text)
    content = _files(w)
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs() as logged:
            assert sweep(j, settings) == 0
            assert sweep(j, settings) == 0
        assert _files(w) == content
        assert list(settings.sent_dir.iterdir()) == []
        assert list(settings.quarantine_dir.iterdir()) == []
        assert os.listdir(settings.outbox.path) == [".outboxd"]
        assert j.rows(("sent", "quarantined")) == [] and not j.was_sent(OTHER)
        [said] = [e for e in logged if e["log_level"] in ("warning", "error")]
        assert said["log_level"] == "error" and said["work_dir"] == str(w)
        assert paper in said["event"]
    finally:
        j.close()


def test_a_kept_folders_entry_naming_another_bundle_records_no_quarantine(
        settings: Settings) -> None:
    """A work folder (its paper gone) marked for an entry in quarantine/ whose reason.json
    names another bundle than the folder's name carries (a mark someone wrote, naming
    a folder of another bundle; a reason.json edited in quarantine/, where the clerks
    may write): the sweep of a lost journal recorded that other bundle as quarantined
    there. No row is recorded, and nothing is removed from the work folder."""
    w = work(settings, "INV-7")
    content = _files(w)
    entry = settings.quarantine_dir / "2026-01-01" / f"INV-7--{OTHER[:12]}"
    shutil.copytree(w, entry)
    (entry / "reason.json").write_text(_reason(OTHER))
    (w / KEPT).write_bytes(os.fsencode(entry))
    j = Journal(settings.journal_path)  # made afresh: the earlier one lost
    try:
        with capture_logs():
            assert sweep(j, settings) == 0
        assert j.rows(("quarantined",)) == []
        assert _files(w) == content
    finally:
        j.close()
