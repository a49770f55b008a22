"""A waiting invoice file whose attachments lie in quarantine/ (docs/folder-convention.md,
section 6): an invoice file quarantined together with its sidecar (empty, say) and then
dropped again, mended, waits for attachments that are in the quarantine folder of its
earlier bundle — and the page said only that it waits. Its row says where they are and
what to do, on the status page and in `outboxd status`.

Cheap at every refresh: the journal knows the quarantined rows and their folders (one
query by the state index, for the waiting invoice files only), and one lstat for each
waiting invoice file that has such a row, of its sidecar's name in that folder. quarantine/
is never walked.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path

from daemon.configuration.config import OutboxConfig
from daemon.journal import Journal
from daemon.names import stem
from daemon.watching.leftalone import shared_name


def sidecars_in_quarantine(journal: Journal, waiting: Sequence[str], outbox: OutboxConfig,
                           quarantine_root: Path) -> dict[str, str]:
    """Of the waiting invoice files, those whose latest quarantined bundle holds a folder
    of their sidecar's name: invoice file -> what its row says of it (where, what to do).
    A look at each such folder (`outboxd status`: once)."""
    return QuarantinedSidecars().of(journal, waiting, outbox, quarantine_root)


class QuarantinedSidecars:
    """sidecars_in_quarantine for the status page, rewritten every 2 s: each quarantine
    folder is looked at once while its invoice file waits, and RELOOKED of them again a
    refresh, in turn (a sidecar moved out by hand is no longer named within a round of
    refreshes). With 300 bundles of today's quarantine moved back and waiting again, a
    look at each at every refresh was 300 round trips to the share."""

    RELOOKED = 20

    def __init__(self) -> None:
        self._known: dict[tuple[str, str], str | None] = {}
        self._turn = 0

    def of(self, journal: Journal, waiting: Sequence[str], outbox: OutboxConfig,
           quarantine_root: Path) -> dict[str, str]:
        found = journal.quarantined_folders_of(list(waiting)) if waiting else {}
        pairs = sorted(found.items())
        again = set(pairs[self._turn:self._turn + self.RELOOKED])
        self._turn = self._turn + self.RELOOKED if self._turn + self.RELOOKED < len(pairs) \
            else 0
        known: dict[tuple[str, str], str | None] = {}
        for pair in pairs:
            if pair in self._known and pair not in again:
                known[pair] = self._known[pair]
            else:
                known[pair] = _held(*pair, outbox.sidecar_suffix, quarantine_root)
        self._known = known  # only the files waiting now: months of names never freed
        return {file: said for (file, _), said in known.items() if said is not None}


def _held(file: str, archive: str, suffix: str, quarantine_root: Path) -> str | None:
    """What the row of `file` says of its sidecar in the quarantine folder `archive`, or
    None where no folder of the sidecar's name is there (moved back, the folder gone)."""
    sidecar = stem(file) + suffix
    folder = Path(archive)
    try:
        if sidecar == file or not stat.S_ISDIR(os.lstat(folder / sidecar).st_mode):
            return None
    except OSError:
        return None
    return held_words(file, sidecar, shared_name(folder, quarantine_root), folder.name)


def held_words(file: str, sidecar: str, where: str, bundle: str) -> str:
    """What the row of a waiting `file` says of its `sidecar` kept in the quarantine
    folder `where` (as the share knows it), named `bundle`: retry takes the folder's
    name as it takes the bundle id's first 12, and the name is right where a second
    folder of that id on one day was named NAME--ID12-2. The row is a clerk's, who has
    no shell on the server: the retry is the admin's to run, as REASON.txt says."""
    return (f"a quarantined bundle of {file} holds a folder {sidecar}, in {where}/: if it "
            f"holds this invoice's attachments, move {sidecar} from there into the outbox, "
            f"beside {file}; or, to send the quarantined bundle instead, mend it there, "
            f"take {file} out of the outbox and ask the admin to run outboxd retry "
            f"{bundle}")
