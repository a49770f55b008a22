"""Folders in the outbox root that hold invoice files, where nothing is ever sent from:
a clerk's drag of a folder holding an invoice and its sidecar, or a folder from
quarantine/ (or sent/) moved back whole. The scanner reads invoice files only directly
in the outbox (docs/folder-convention.md, section 1: subfolders are only read as
sidecars), so such a folder would wait unseen for an invoice file of its own name; the
status page lists it with the fix (docs/folder-convention.md, section 6, "Folders nothing
is sent from").

A folder is listed only when it shows that it is no sidecar: it holds an invoice file
beside that file's own sidecar folder (a dragged folder), or beside reason.json or
receipt.json (an archive folder). Any other folder may be a sidecar waiting for its
invoice file, as an ERP that writes the sidecar first makes one, and its attachments
match the invoice patterns too (*.pdf): "move timesheet.pdf into the outbox" would have
it sent as an invoice. Such a folder is not listed, unless the journal says an invoice
file of its name left the outbox in the last week (sent without it, or quarantined for
having no attachments): then it came late, and would wait for good.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon.archiving.papers import PAPER_NAMES
from daemon.configuration.config_sections import OutboxConfig, ShareConfig
from daemon.fs.fsops import FOLDER_NOFOLLOW
from daemon.names import ignored_as, is_ignored, printable, stem
from daemon.watching.scan import is_invoice_file

# What outboxd writes beside a bundle it archived: the folder came from quarantine/ or sent/.
_PAPERS = {"reason.json": "quarantine/", "receipt.json": "sent/"}
_SHOWN = 3  # invoice files named per folder; the rest are counted
# (invoice_file, state, since, archive_dir) of the rows that left the outbox lately.
Finished = Sequence[tuple[str, str, str, str | None]]
# The newest of those rows by the invoice file's stem, which a sidecar is named after.
ByStem = Mapping[str, tuple[str, str, str, str | None]]


def by_stem(rows: Finished) -> ByStem:
    """`rows` newest first (Journal.finished_files), as one look-up a call: a folder's
    question is then a dict look-up, not a pass over a week of rows."""
    out: dict[str, tuple[str, str, str, str | None]] = {}
    for row in rows:
        out.setdefault(stem(row[0]), row)
    return out


@dataclass(frozen=True)
class Stray:
    name: str  # as shown
    why: str
    # As on disk: what the folder is known by beside the other lists (the look-alikes and
    # the folders without an invoice file), where two names are shown alike (`X` + U+202E
    # and `X\u202e` typed are both shown as `X\u202e`) but are two folders.
    on_disk: str


class StrayFolders:
    """Remembers what each folder holds until the folder changes (its entries' names: the
    folder's mtime), so that the page, looked at every 2 s, looks into a folder once per
    change. Whether a folder without invoice files came late is asked again each time:
    its invoice file may be sent after the folder came (a late folder beside a bundle
    being delivered), which changes no mtime. What a folder holds is also looked at
    again after a reload that changed the sections: the patterns and the share's names
    decide what an invoice file is."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[int, Stray | None]] = {}
        self._under: tuple[OutboxConfig, ShareConfig] | None = None

    def find(self, cfg: OutboxConfig, share: ShareConfig, invoice_files: Iterable[str],
             finished: Callable[[frozenset[str]], Finished] = lambda _: ()) -> list[Stray]:
        """`share` names the status page and the release files, which are never invoice
        files, whatever the patterns take ("*"). `finished` is asked once a call at most,
        and only when a folder without invoice files is there, for the invoice files of
        those folders' stems only (a week's rows were read and decoded at each refresh)."""
        if self._under != (cfg, share):
            self._seen, self._under = {}, (cfg, share)
        seen: dict[str, tuple[int, Stray | None]] = {}
        try:
            with os.scandir(cfg.path) as it:
                # The type comes with the listing: an outbox of 20,000 waiting invoice
                # files has few folders to match against the patterns.
                entries = sorted((e for e in it if e.is_dir(follow_symlinks=False)),
                                 key=lambda e: e.name)
        except OSError:
            return []
        sidecars = {stem(n) + cfg.sidecar_suffix for n in invoice_files}
        for e in entries:
            if e.name in sidecars or is_ignored(e.name, cfg.ignore_patterns):
                continue
            try:
                mtime = e.stat(follow_symlinks=False).st_mtime_ns
            except OSError:
                continue
            last = self._seen.get(e.name)
            seen[e.name] = (mtime, last[1] if last and last[0] == mtime
                            else _look(Path(e.path), cfg, share))
        self._seen = seen
        wanted = frozenset(w for name, (_, held) in seen.items()
                           if held is None and (w := wanted_stem(name, cfg)) is not None)
        asked: list[ByStem] = []

        def left() -> ByStem:
            if not asked:
                asked.append(by_stem(finished(wanted)))
            return asked[0]
        found = [held if held is not None else came_late(name, cfg, left)
                 for name, (_, held) in seen.items()]
        return [x for x in found if x is not None]


def _look(folder: Path, cfg: OutboxConfig, share: ShareConfig) -> Stray | None:
    """The folder as one holding invoice files; None when it holds none or cannot be
    looked into."""
    try:
        # Never through a link put in the folder's place since the root was listed.
        fd = os.open(folder, FOLDER_NOFOLLOW)
    except OSError:
        return None
    try:
        with os.scandir(fd) as it:
            entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it
                       if e.is_file(follow_symlinks=False) or e.is_dir(follow_symlinks=False)]
    except OSError:
        return None
    finally:
        os.close(fd)
    names = sorted(n for n, is_dir in entries if not is_dir)
    folders = {n for n, is_dir in entries if is_dir}
    # Only the invoice files beside their own folder, or all in an archived folder: a PDF
    # beside them may as well be an attachment, which moved into the outbox would be
    # sent as an invoice.
    archived = any(paper in names for paper in _PAPERS)
    # outboxd's papers are no invoice files, whatever the patterns take ("*").
    invoices = [n for n in names if n not in PAPER_NAMES and is_invoice_file(cfg, n, share)
                and (archived or stem(n) + cfg.sidecar_suffix in folders)]
    if not invoices:
        return None
    shown = printable(folder.name)
    listed = ", ".join(printable(n) for n in invoices[:_SHOWN]) + (
        f" and {len(invoices) - _SHOWN} more" if len(invoices) > _SHOWN else "")
    came_from = next((where for paper, where in _PAPERS.items() if paper in names), None)
    origin = next((f"it is a folder from {where} moved back whole ({paper} is in it); "
                   for paper, where in _PAPERS.items() if paper in names), "")
    sent = ("its files were sent already: moved out, they are a duplicate unless changed; "
            if "receipt.json" in names and "reason.json" not in names else "")
    # What the move leaves: "may stay behind" left an archive folder holding outboxd's
    # papers in the outbox, where it is a folder waiting for an invoice file of its name.
    # What the moves leave besides: a dragged folder may hold the clerk's other files
    # (a PDF without a folder of its name is not told: it may be an attachment), which
    # "remove the emptied folder" had deleted with it.
    # Not the desktop's own files (.DS_Store, Thumbs.db, ._*): never seen by the clerk,
    # told as "other files" they left a folder they found nothing more in.
    moved_out = {*invoices, *(stem(n) + cfg.sidecar_suffix for n in invoices)}
    others = sorted(n for n in {*names, *folders} if n not in moved_out
                    and ignored_as(n, cfg.ignore_patterns) != "desktop")
    rest = (f"; then move {shown}, with outboxd's notes left in it (REASON.txt, "
            f"reason.json, receipt.json), back into {came_from}" if came_from else
            f"; then remove the emptied folder {shown}" if not others else
            f"; {shown} holds other files too ({', '.join(printable(n) for n in others[:_SHOWN])}"
            f"{f' and {len(others) - _SHOWN} more' if len(others) > _SHOWN else ''}): move "
            f"them where they belong before removing {shown}")
    return Stray(shown, f"holds the invoice file{'s' if len(invoices) > 1 else ''} {listed}, "
                 f"but outboxd reads invoice files only directly in the outbox, so nothing "
                 f"in {shown} is sent; {origin}{sent}move each invoice file out of {shown} "
                 f"into the outbox, its folder of the same name first{rest}", folder.name)


def wanted_stem(name: str, cfg: OutboxConfig) -> str | None:
    """The stem of the invoice file whose sidecar the folder `name` would be (None: not
    named as a sidecar)."""
    suffix = cfg.sidecar_suffix
    if suffix and not name.endswith(suffix):
        return None
    return name[:len(name) - len(suffix)] if suffix else name


def came_late(name: str, cfg: OutboxConfig, finished: Callable[[], ByStem]
              ) -> Stray | None:
    """A folder named like the sidecar of an invoice file that left the outbox lately:
    its attachments came after the invoice was sent without them, or quarantined for
    having none. Nothing would ever take them: say what happened and what to do."""
    wanted = wanted_stem(name, cfg)
    row = None if wanted is None else finished().get(wanted)
    if row is None:
        return None
    invoice_file, state, since, archive = row
    shown, file = printable(name), printable(invoice_file)
    at = since[:16].replace("T", " ") + " UTC"
    if state == "quarantined":
        # The quarantine folder's own name, as the page's "Quarantined" section shows
        # it: the server's path means nothing on a clerk's computer.
        where = f" (folder {printable(Path(archive).name)})" if archive else ""
        return Stray(shown, f"named as the attachments of {file}, which was quarantined at "
                     f"{at}{where} before this folder came; nothing in {shown} is sent — "
                     f"if {file} was quarantined for having no attachments, move it from "
                     "its quarantine folder back into the outbox: it is read again with "
                     "this folder", name)
    return Stray(shown, f"named as the attachments of {file}, which was sent at {at} "
                 f"before this folder came; nothing in {shown} is sent — send these files "
                 "to the customer another way and remove the folder (putting the invoice "
                 "file back into the outbox would send the invoice a second time)", name)
