"""Root entries of the outbox that the daemon leaves alone: files that are not
invoice files, and invoice files that cannot be used (a symbolic link, a FIFO or
device, a name that is not UTF-8 or holds control characters). Each is said once
in the log while it stays (forgotten when it goes: a daemon that runs for months must
not keep every name ever dropped; one dropped again later is said again); the unusable
invoice files are also kept, until they go, for the status page — the clerk sees only
the share.

And the look-alikes of a quarantined bundle's sidecar (`sidecar-spelling`): no part
of the bundle, they stayed in the outbox, where nothing else would say that they
wait for a person (`left_behind`, for the status page).

And a quarantined bundle moved back into the outbox by hand (`still_quarantined`, for
the status page and `status`): no longer listed as quarantined beside its new row.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.journal import Row
from daemon.journal.finished import Finished
from daemon.names import printable
from daemon.watching.scan import Listing

SPELLING = "sidecar-spelling"


def never_sent(patterns: Sequence[str]) -> str:
    """How the page's words for a root file that is no invoice file begin: what it is."""
    return (f"not an invoice file (only names like {', '.join(patterns)} are read as "
            "invoice files), so it is never sent — ")


def not_an_invoice(patterns: Sequence[str]) -> str:
    """What the page says of a root file that is no invoice file: a clerk who dropped an
    attachment beside its invoice file instead of into its folder sees it, where the
    log line (docs/folder-convention.md, section 1: named once in the log) reaches only
    the admin."""
    return (never_sent(patterns) + "an attachment goes into the folder of its invoice "
            "file, named like the invoice file without its extension; anything else, move "
            "it out of the outbox")


class LeftAlone:
    def __init__(self, log: Any) -> None:
        self.log = log
        # Root files the daemon leaves alone, by their names on disk → why: invoice files
        # that cannot be used, and files that are no invoice file. The page lists them
        # (and shows each name printable). Keyed as shown, a link named X\u202e.xml (typed)
        # and a FIFO named X + U+202E + .xml were one entry with one why, and an event on
        # either dropped both.
        self.refused: dict[str, str] = {}
        self._said: set[str] = set()  # by the name on disk too

    def seen(self, listing: Listing, patterns: Sequence[str], name: str | None = None
             ) -> bool:
        """Log what was not said yet, and keep the unusable invoice files: all of a full
        listing (`name` None), or what became of the root entry `name` (an event, the
        name on disk). True when those changed (the page shows them)."""
        for other in listing.others:
            if other not in self._said:
                self._said.add(other)
                self.log.info("not an invoice file; left alone", file=printable(other),
                              patterns=patterns)
        for on_disk, problem in listing.refused:
            if on_disk not in self._said:
                self._said.add(on_disk)
                shown = printable(on_disk)
                self.log.error("invoice file cannot be used; left alone", file=shown,
                               error=f"{shown}: {problem}")
        other = not_an_invoice(patterns)
        if name is None:
            refused = {**dict.fromkeys(listing.others, other), **dict(listing.refused)}
            self._said &= refused.keys()
            changed = refused != self.refused
            self.refused = refused
            return changed
        # An event: only `name` can have changed (the usual event costs a look-up).
        why = dict(listing.refused).get(name) or (other if name in listing.others else None)
        if why is None:
            self._said.discard(name)
        if self.refused.get(name) == why:
            return False
        if why is None:
            del self.refused[name]
        else:
            self.refused[name] = why
        return True


@dataclass(frozen=True)
class LeftBehind:
    """A look-alike of a quarantined bundle's sidecar, still in the outbox under its
    name: `message` is its finding (the rule and the fix), `quarantine` where the
    invoice file waits (as the page shows it)."""

    name: str
    invoice_file: str
    quarantine: str
    message: str
    bundle_id: str | None = None  # of the quarantined bundle, for its log events
    invoice_ids: tuple[str, ...] = ()
    on_disk: str = ""  # the name as it is in the outbox (`name` is as shown)

    @property
    def why(self) -> str:
        """Why it is there and what to do, in the order a person does it."""
        return (f"{self.invoice_file} was quarantined because of it and waits in "
                f"{self.quarantine}: {self.message}. Mend it in the outbox first, then "
                f"move {self.invoice_file} (and its sidecar folder, if the quarantine folder "
                "holds one) back into the outbox; REASON.txt there lists the steps")


def left_behind(rows: Iterable[Row], outbox: Path, quarantine_root: Path) -> list[LeftBehind]:
    """Of the quarantined `rows` (Journal.quarantined_for(SPELLING), oldest first), the
    look-alikes still in the outbox while their invoice file waits in its quarantine
    folder. One whose invoice file is back in the outbox is that bundle's to report; one
    whose invoice file left the quarantine folder (moved back by hand, or removed) is
    no longer waited for. A name quarantined twice is shown for the latest time."""
    found: dict[str, LeftBehind] = {}
    for row in rows:
        for reason in row.reasons:
            name = str(reason.get("file", ""))
            if reason.get("code") != SPELLING or not name or os.sep in name \
                    or not os.path.lexists(outbox / name):
                continue
            folder = Path(row.archive_dir) if row.archive_dir else None
            if folder is None or os.path.lexists(outbox / row.invoice_file) \
                    or not os.path.lexists(folder / row.invoice_file):
                continue
            found[name] = LeftBehind(printable(name), row.invoice_file,
                                     shared_name(folder, quarantine_root),
                                     str(reason.get("message", "")), row.bundle_id,
                                     tuple(row.invoice_ids), name)
    return sorted(found.values(), key=lambda x: x.name)


def shared_name(folder: Path, root: Path) -> str:
    """A quarantine (or sent) folder as the people on the share know it:
    quarantine/DAY/NAME--ID, not the server's path. Archived under another [paths]
    quarantine (or sent): that folder's name with DAY/NAME--ID — the text goes to clerks,
    and into manifests a receiver keeps, where the server's path has no business."""
    try:
        return str(Path(root.name) / folder.relative_to(root))
    except ValueError:
        return str(Path(*folder.parts[-3:]))


def still_quarantined(rows: Sequence[Row], today: str, outbox: Path) -> list[Row]:
    """`rows` (in journal order) without the quarantined ones of `today` (a YYYY-MM-DD
    prefix; "" for every day) that were moved back into the outbox by hand, as REASON.txt
    offers (`outboxd retry` marks its row so, a move by hand cannot): listed, such a
    bundle read as waiting for a fix beside its own new row, sent or waiting again.

    Moved back means: its invoice file is not in its quarantine folder, and it is in the
    outbox again or a later row has it (the daemon saw it there). The file merely not in
    its folder says nothing of where the bundle is — the folder renamed by a clerk, the
    share holding quarantine/ not mounted — and such a bundle is still listed and
    counted: it still waits for a person. Nor does a folder that cannot be looked at
    (permissions, a stale NFS handle). One lstat per quarantined row of `today`, more
    only for one whose invoice file is not in its folder."""
    later: set[str] = set()  # invoice files of a row after the one looked at
    kept: list[Row] = []
    for row in reversed(rows):
        if not _moved_back(row, today, outbox, lambda r: r.invoice_file in later):
            kept.append(row)
        later.add(row.invoice_file)
    kept.reverse()
    return kept


# Of today's quarantined rows past those the page lists, how many a refresh looks at
# again (a new row is looked at once, at the first refresh that has it): with 5,000
# quarantined in a day, a look at each folder at every refresh cost 5,000 lstats (56 ms
# of CPU on a local disk; on a share a round trip each, seconds that the page's pace,
# counted in CPU, did not see).
RELOOKED = 200


class MovedBackToday:
    """Of today's quarantined rows (as four columns, the latest first), the ids of those
    still_quarantined drops, by the same test, without the day's rows as Row, for a page
    refreshed again and again: the rows it lists (the first `shown` kept) are looked at
    at each refresh, the others once when new and then RELOOKED a refresh in turn, so a
    bundle past the listed ones moved back by hand leaves the page's count within a few
    refreshes. `last_rows()` (invoice file → the id of its latest row among those the
    page lists) stands for the rows after each, asked once, and only when an invoice file
    is not in its folder."""

    def __init__(self) -> None:
        self._day = ""
        self._gone: dict[int, bool] = {}  # row id → moved back, at its last look
        self._next = 0  # where the next refresh's looks at the rest begin

    def __call__(self, rows: Sequence[Finished], today: str, outbox: Path,
                 last_rows: Callable[[], Mapping[str, int]], shown: int) -> set[int]:
        if today != self._day:
            self._day, self._gone, self._next = today, {}, 0
        known: list[Mapping[str, int]] = []

        def later(row: Row | Finished) -> bool:
            if not known:
                known.append(last_rows())
            return known[0].get(row.invoice_file, row.id) > row.id

        def look(row: Finished) -> None:
            self._gone[row.id] = _moved_back(row, today, outbox, later)

        kept, rest = 0, []
        for row in rows:
            if kept < shown:
                look(row)
                kept += not self._gone[row.id]
            elif row.id not in self._gone:
                look(row)
            else:
                rest.append(row)
        if rest:
            start = self._next % len(rest)
            for row in (rest[start:] + rest[:start])[:RELOOKED]:
                look(row)
            self._next = start + RELOOKED
        ids = {r.id for r in rows}
        self._gone = {i: gone for i, gone in self._gone.items() if i in ids}
        return {i for i, gone in self._gone.items() if gone}


def _moved_back(row: Row | Finished, today: str, outbox: Path,
                later: Callable[[Row | Finished], bool]) -> bool:
    """`later(row)`: whether a row after this one has its invoice file (the daemon saw
    it in the outbox again)."""
    if row.state != "quarantined" or not row.archive_dir or not row.since.startswith(today):
        return False
    try:
        os.lstat(Path(row.archive_dir) / row.invoice_file)
        return False
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError:
        return False
    if later(row):
        return True
    try:
        os.lstat(outbox / row.invoice_file)
    except OSError:
        return False
    return True
