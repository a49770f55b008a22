"""What a share user writes into outboxd's folders — a `.outboxd-kept` mark, a
reason.json — never makes outboxd remove a bundle's files for an archive entry that is
not that bundle's, nor record an outcome for a bundle id the bundle does not hold."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

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
