"""A work folder the archive marked kept (archiving/kept.py), as the orphan sweep
(orphans.py) finishes it: what it still holds, looked at and emptied from its descriptor
without following a link; and, for one a lost journal left whose entry is in
quarantine/, the journal row its quarantine never got.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.archiving.dayfolder import day_start
from daemon.archiving.kept import KEPT, entry_reason
from daemon.archiving.papers import paper_of
from daemon.claiming.workname import work_bundle
from daemon.configuration.config import Settings
from daemon.errors import InputError
from daemon.fs.fsops import FOLDER_NOFOLLOW
from daemon.journal import Journal, journal_time


def record_quarantined(journal: Journal, settings: Settings, work: Path, target: Path) -> None:
    """The row an unmarked folder's quarantine gets, for a kept one a lost journal left
    whose entry is in quarantine/ (a new journal read quarantine/ back at its start,
    quarantineback.py, and then has the row already): killed before its row said
    quarantined, `outboxd
    status` never listed the bundle and the page called it another outboxd's. Once,
    though a file put in keeps the folder; none where the entry's paper cannot be read,
    or does not name the bundle the work folder's name carries (names_its_bundle: a mark
    someone wrote naming another bundle's entry, a reason.json edited in quarantine/)."""
    if target.parent.parent != settings.quarantine_dir:
        return
    try:
        reason = entry_reason(target)
    except (OSError, InputError, ValueError, RecursionError):
        return
    if reason is None or not names_its_bundle(work, reason):
        return
    invoice_file, bundle_id = reason["invoice_file"], reason["bundle_id"]
    at = journal_time(reason.get("quarantined_at"), day_start(target.parent.name))
    if any(f.archive_dir == str(target) for f in journal.folders_on("quarantined", at[:10])):
        return
    journal.create(invoice_file, "quarantined", "orphaned work folder finished", since=at,
                   bundle_id=bundle_id, reasons=reason.get("reasons", []),
                   archive_dir=str(target))
    logs.get().warning("quarantined bundle unknown to the journal found in quarantine/ "
                       "and recorded", work_dir=str(work), bundle_id=bundle_id,
                       invoice_file=invoice_file, archive=str(target))


def names_its_bundle(work: Path, paper: Mapping[str, Any]) -> bool:
    """Whether a paper (a receipt as readback.record_of reads it, a reason record) can be
    that of the bundle in the work folder `work`: it names a bundle id beginning with the
    12 hex digits the folder's name carries (the claim named it so, workname.work_bundle)
    and an invoice file by a plain name, each as text. Anyone who may write in the
    share may write a paper: one naming another bundle had the journal record that
    bundle as sent (a later drop of it refused as a duplicate) or quarantined, and one
    of another type stopped the sweep. A bundle changed in its work folder after the
    claim, delivered under its new id, is not told from such a paper: left for a person
    (only with the journal lost as well)."""
    return paper_of(work_bundle(work.name), paper)


def files_below(folder: int, rel: str) -> list[str]:
    """Every entry but a folder (and but the mark) below the folder open at `folder`,
    reached without following a link."""
    found: list[str] = []
    for e in sorted(os.scandir(folder), key=lambda e: e.name):
        path = os.path.join(rel, e.name)
        if e.is_dir(follow_symlinks=False):
            below = os.open(e.name, FOLDER_NOFOLLOW, dir_fd=folder)
            try:
                found += files_below(below, path)
            finally:
                os.close(below)
        elif path != KEPT:
            found.append(path)
    return found


def remove_folders_below(folder: int) -> None:
    """The (empty) folders below the folder open at `folder` removed, deepest first:
    rmdir removes no folder with anything in it (OSError)."""
    for e in list(os.scandir(folder)):
        if e.is_dir(follow_symlinks=False):
            below = os.open(e.name, FOLDER_NOFOLLOW, dir_fd=folder)
            try:
                remove_folders_below(below)
            finally:
                os.close(below)
            os.rmdir(e.name, dir_fd=folder)
