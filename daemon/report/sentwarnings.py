"""The warnings of today's sent bundles, for "Sent today" on the status page: a bundle
sent with a warning (`pdf-recommended`, `invoice-id-already-sent`,
`unattached-invoice` …) told the clerk nothing, the log and receipt.json being the
admin's. The journal keeps no warnings of a sent row (its `reasons` are a held or
quarantined bundle's errors, and `status --json` lists them as such), so each is read
from the receipt.json outboxd wrote into the bundle's folder in sent/ — once: a receipt
does not change, and the page is rewritten every 2 s at most. Only the rows the page
lists (the latest FINISHED_SHOWN of today) are read or kept.

sent/ is on the share: the day folder and the entry are opened without following a link,
receipt.json is read only as a regular file (never a FIFO) and only up to RECEIPT_LIMIT;
a receipt that cannot be read or is not outboxd's shows no warnings (one not outboxd's,
such as an entry that is a link, is remembered so, not looked at again).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from daemon.errors import InputError
from daemon.fs.fsops import FOLDER_NOFOLLOW
from daemon.fs.fsread import read_regular
from daemon.journal import Row
from daemon.names import printable

# A receipt of a bundle of a few hundred attachments is well below this; one above it
# (made by hand on the share, or of a bundle of thousands) shows no warnings on the page.
RECEIPT_LIMIT = 1 << 20

# What an open without following a link answers for a link, a file or a FIFO.
_NOT_A_FOLDER = frozenset({errno.ELOOP, errno.ENOTDIR})


class SentWarnings:
    """Each listed sent row's warnings, read from its receipt once and kept while the
    page lists the row."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, str], tuple[str, ...]] = {}

    def of(self, rows: Iterable[Row]) -> dict[int, tuple[str, ...]]:
        """Of the sent rows among `rows`, those with warnings: row id -> each warning as
        "file: message", in the receipt's order."""
        known: dict[tuple[int, str], tuple[str, ...]] = {}
        for r in rows:
            if r.state != "sent" or not r.archive_dir:
                continue
            key = (r.id, r.archive_dir)
            said = self._known.get(key)
            if said is None:
                said = warnings_in(Path(r.archive_dir))
            if said is not None:
                known[key] = said
        self._known = known  # only the rows listed now: months of rows never freed
        return {row_id: said for (row_id, _), said in known.items() if said}


def warnings_in(folder: Path) -> tuple[str, ...] | None:
    """The warnings of the manifest in `folder`/receipt.json, as "file: message"; none
    where it is no receipt of outboxd's (a link or FIFO, too large, not JSON; an entry or
    day folder that is a link or no folder); None where it could not be read now (gone,
    or an error of the share: read again next time)."""
    try:
        day = os.open(folder.parent, FOLDER_NOFOLLOW)
        try:
            entry = os.open(folder.name, FOLDER_NOFOLLOW, dir_fd=day)
        finally:
            os.close(day)
    except OSError as exc:
        # A link (never followed) or a file in place of the day folder or the entry is not
        # outboxd's: no warnings, remembered as such — "cannot be read now" had it read
        # again at every refresh of the page while its row is listed.
        return () if exc.errno in _NOT_A_FOLDER else None
    try:
        data = read_regular(folder / "receipt.json", "receipt.json", RECEIPT_LIMIT, at=entry)
        receipt = json.loads(data) if data is not None else None
    except (InputError, ValueError, RecursionError):
        return ()
    except OSError:
        return None
    finally:
        os.close(entry)
    return _said(receipt)


def _said(receipt: Any) -> tuple[str, ...]:
    manifest = receipt.get("manifest") if isinstance(receipt, Mapping) else None
    found = manifest.get("warnings") if isinstance(manifest, Mapping) else None
    if not isinstance(found, list):
        return ()
    out = []
    for w in found:
        if isinstance(w, Mapping) and isinstance(w.get("message"), str):
            file = w.get("file")
            # printable: a name that is not UTF-8, or holds a control character, as codes.
            out.append(printable(f"{file}: {w['message']}" if isinstance(file, str) and file
                                 else w["message"]))
    return tuple(dict.fromkeys(out))
