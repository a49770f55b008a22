"""Folders in the outbox root with no invoice file of their name (docs/folder-convention.md,
section 6, "Folders without an invoice file"): a sidecar waiting for its invoice file
(section 3), or a sidecar whose name misses its invoice by a typo (`INV-7100/`
made for `INV-7010.xml`). Nothing is matched by them: the invoice waiting for
attachments is told, as a hint, of a lone folder whose name is close to its own, and the
status page and `outboxd status` list every lone folder with since when it is unchanged.

Close: one typo apart (typos.close). A name equal once folded is a look-alike
(lookalikes.py, `sidecar-spelling`), told otherwise.
The folders close to a name are found by the one-deletion neighbourhood of the lone
folders' names (`Near`), a few dict look-ups a name, so a page with 20,000 waiting
invoices asks it for each without comparing every pair.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Container, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from daemon.journal.records import iso_of
from daemon.names import is_ignored, printable, stem
from daemon.typos import close
from daemon.typos import fold as _fold

# A folder of the root: ctime in ns, the last change of the folder or of its list of
# files (a rename into its name too). Not mtime, which a copy tool sets to the source's.
Lone = Mapping[str, int]


def is_lone(name: str, st: os.stat_result, sidecars: Container[str],
            ignore_patterns: Sequence[str] = ()) -> bool:
    """Whether root entry `name` (`st`: its lstat) is a folder that is no invoice file's
    sidecar and no ignored name (dot-folders, outboxd's own `.outboxd/` among them; an
    in-progress name): for the listing and for each event alike."""
    return (stat.S_ISDIR(st.st_mode) and name not in sidecars
            and not is_ignored(name, ignore_patterns))


def lone_in(stats: Mapping[str, os.stat_result], sidecars: Container[str],
            ignore_patterns: Sequence[str] = ()) -> dict[str, int]:
    """The lone folders of a listing (`stats`: lstat by name, is_lone); name ->
    ctime_ns. One pass over the stats the listing has: no system call."""
    return {n: st.st_ctime_ns for n, st in stats.items()
            if is_lone(n, st, sidecars, ignore_patterns)}


def _deletions(folded: str) -> set[str]:
    return {folded, *(folded[:i] + folded[i + 1:] for i in range(len(folded)))}


class Near:
    """The lone folders' names by their one-deletion neighbourhood: two names one edit or
    one swap apart share a key (`close` then says whether they are close). Kept up to
    date a name at a time by the index (`add`, `discard`), whose lone folders change at
    each sidecar that comes before its invoice file, in a batch thousands of times."""

    def __init__(self, names: Iterable[str], suffix: str = "") -> None:
        self.names: set[str] = set()
        self.suffix = suffix
        self._by_key: dict[str, set[str]] = {}
        # What `of` found for a stem, without leave_out: the page asks again for every
        # waiting invoice at each refresh, and the lone folders seldom change meanwhile.
        self._found: dict[str, list[str]] = {}
        for name in names:
            self.add(name)

    def add(self, name: str) -> None:
        if name in self.names:
            return
        self.names.add(name)
        self._found.clear()
        for key in _deletions(_fold(self._bare(name))):
            self._by_key.setdefault(key, set()).add(name)

    def discard(self, name: str) -> None:
        if name not in self.names:
            return
        self.names.discard(name)
        self._found.clear()
        for key in _deletions(_fold(self._bare(name))):
            names = self._by_key.get(key)
            if names is not None:
                names.discard(name)
                if not names:
                    del self._by_key[key]

    def _bare(self, name: str) -> str:
        """The name a folder is compared by: without the sidecar suffix it has."""
        return name[:-len(self.suffix)] if self.suffix and name.endswith(self.suffix) else name

    def of(self, stem: str, leave_out: Iterable[str] = ()) -> list[str]:
        """The lone folders close to an invoice file's stem, by name; `leave_out`: its own
        look-alikes, told as such."""
        if not self._by_key:
            return []
        out = set(leave_out)
        if not out and (known := self._found.get(stem)) is not None:
            return known
        found: set[str] = set()
        for key in _deletions(_fold(stem)):
            found.update(self._by_key.get(key, ()))
        near = sorted(n for n in found if n not in out and close(self._bare(n), stem))
        if not out:
            self._found[stem] = near
        return near


def hint(folder: str, stem: str, sidecar: str) -> str:
    """What a waiting invoice is told of a lone folder close to its name."""
    return (f"a folder {printable(folder)}/ has no invoice file; if it holds "
            f"{printable(stem)}'s attachments, rename it to {printable(sidecar)}/")


def hints(folders: Iterable[str], stem: str, sidecar: str) -> str:
    return "; ".join(hint(f, stem, sidecar) for f in folders)


@dataclass(frozen=True)
class LoneFolder:
    on_disk: str  # its name in the outbox, which what is looked up there goes by
    since: str  # its ctime, as the journal writes times
    close_to: tuple[str, ...]  # the invoice files (indexed) it is close to, as shown

    @property
    def name(self) -> str:
        """As shown (printable): two folders may be shown alike (the byte 0xE5, and
        \\udce5 typed), so nothing is looked up by it."""
        return printable(self.on_disk)


def listed(lone: Lone, invoice_files: Iterable[str], suffix: str = "",
           leave_out: Iterable[str] = (), last: Near | None = None
           ) -> tuple[list[LoneFolder], dict[str, list[str]], Near | None]:
    """The lone folders to list, longest unchanged first, each with the invoice files (of
    `invoice_files`: the waiting ones) it is close to; of each of those files the folders
    close to it (as on disk); and the `Near` asked, for the next call's `last`, which is
    brought up to date and asked again (what it found is kept while its names stay the
    same: a page with 20,000 waiting rows asks for each at every refresh). `leave_out`:
    folders told elsewhere (a look-alike of a bundle's sidecar, a folder holding invoice
    files), by name as on disk."""
    out = set(leave_out)
    names = [n for n in lone if n not in out]
    if not names:
        return [], {}, None
    if last is not None and last.suffix == suffix:  # brought up to date, not made anew
        near, wanted = last, set(names)
        for name in near.names - wanted:
            near.discard(name)
        for name in wanted - near.names:
            near.add(name)
    else:
        near = Near(names, suffix)
    close_to: dict[str, list[str]] = {}
    by_file: dict[str, list[str]] = {}
    for file in invoice_files:
        if folders := near.of(stem(file)):
            by_file[file] = folders
            for folder in folders:
                close_to.setdefault(folder, []).append(file)
    return [LoneFolder(n, since(lone[n]),
                       tuple(sorted(printable(f) for f in close_to.get(n, ()))))
            for n in sorted(names, key=lambda n: (lone[n], n))], by_file, near


def since(ctime_ns: int) -> str:
    """A folder's ctime as the journal writes times (UTC, milliseconds)."""
    return iso_of(datetime.fromtimestamp(ctime_ns / 1e9, UTC))
