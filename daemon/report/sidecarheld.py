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
    of their sidecar's name: invoice file -> what its row says of it (where, what to do)."""
    if not waiting:
        return {}
    out: dict[str, str] = {}
    for file, archive in journal.quarantined_folders_of(list(waiting)).items():
        sidecar = stem(file) + outbox.sidecar_suffix
        folder = Path(archive)
        try:
            held = sidecar != file and stat.S_ISDIR(os.lstat(folder / sidecar).st_mode)
        except OSError:
            continue  # moved back, or the folder gone: nothing to point at
        if held:
            out[file] = held_words(file, sidecar, shared_name(folder, quarantine_root),
                                   folder.name)
    return out


def held_words(file: str, sidecar: str, where: str, bundle: str) -> str:
    """What the row of a waiting `file` says of its `sidecar` kept in the quarantine
    folder `where` (as the share knows it), named `bundle`: retry takes the folder's
    name as it takes the bundle id's first 12, and the name is right where a second
    folder of that id on one day was named NAME--ID12-2."""
    return (f"a quarantined bundle of {file} holds a folder {sidecar}, in {where}/: if it "
            f"holds this invoice's attachments, move {sidecar} from there into the outbox, "
            f"beside {file}; or, to send the quarantined bundle instead, mend it there, "
            f"take {file} out of the outbox and run outboxd retry {bundle}")
