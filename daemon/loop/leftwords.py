"""What the status page and `outboxd status` say of each root file left alone
(docs/folder-convention.md, section 6): a near miss of a release or marker file the name
it needs (idlefiles.near_miss), a marker where none is used that it does nothing, an
invoice file's name with a space or dot at an end the name without, outboxd's copy of an
edited errors file that it holds the clerk's notes; any other keeps the why the scanner
gave it."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from daemon.configuration.config import OutboxConfig, ShareConfig
from daemon.fs.fsops import kind_of
from daemon.loop.errorsfile import EDITED_SUFFIX
from daemon.loop.idlefiles import near_miss
from daemon.names import ERRORS_SUFFIX, edge_words, stem, trimmed, visible
from daemon.watching.leftalone import never_sent, shared_name
from daemon.watching.scan import is_invoice_file


def unused_marker(outbox: OutboxConfig) -> str:
    """What the page says of a NAME.ready under completion = "settle": no marker there."""
    return (f"named like a marker file, but outboxd does not wait for markers here ([outbox] "
            f"completion = \"{outbox.completion}\"): it does nothing, is not sent with its "
            "invoice file and stays in the outbox — remove it; if the sender writes a marker "
            "for every bundle, ask the admin whether completion should be \"marker\"")


def edge_miss(name: str, outbox: OutboxConfig, share: ShareConfig,
              there: Callable[[str], bool]) -> str | None:
    """What the page says of `INV-7.xml ` or `INV-7.pdf.` (a space or dot at an end, which
    a clerk does not see and Windows drops): no invoice file only for that, told the name
    it needs, where "only names like *.xml are read" reads as nonsense beside `.xml`."""
    right = trimmed(name)
    if right == name or not is_invoice_file(outbox, right, share):
        return None
    said = (f"its name {visible(name)} has {edge_words(name)}, so it is no invoice file and "
            "is never sent — ")
    if there(right):
        return said + f"{right} is there already: remove this one if it is a copy of it"
    return said + f"rename it to {right}"


# The copy outboxd keeps of an errors file a clerk typed notes into (errorsfile._keep_copy:
# NAME.errors.txt.edited, or -2, -3 … after it where that name is taken).
_EDITED = re.compile(rf"(.+{re.escape(ERRORS_SUFFIX)}){re.escape(EDITED_SUFFIX)}(?:-[0-9]+)?")


def edited_copy(name: str) -> str | None:
    """What the page says of outboxd's copy of an edited errors file, else None: "no
    invoice file, an attachment goes into the folder of its invoice file" told the clerk
    whose notes outboxd kept there nothing of what the file is, nor what to do with it."""
    if (m := _EDITED.fullmatch(name)) is None:
        return None
    return (f"your notes: outboxd kept {m.group(1)} under this name, as someone had typed "
            "into it, when it rewrote or removed that file; outboxd never changes nor "
            "removes this copy — move what you want to keep into a file of your own, then "
            "delete this one")


def left_words(refused: Mapping[str, str], outbox: OutboxConfig, share: ShareConfig,
               invoice_files: Iterable[str], states: Mapping[str, str],
               quarantined: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the status page and `outboxd status` both say of each root file left alone
    (`refused`: by the name on disk -> why; each shows it printable): a near miss of a
    release or marker file is told the name it needs (near_miss), a marker where none is
    used that it does nothing, an invoice file's name with a space or dot at an end the
    name without (edge_miss), outboxd's copy of an edited errors file that it holds
    the clerk's notes (edited_copy), a file or link in the sidecar's place that the
    sidecar must be a folder (not_a_sidecar) — or nothing, where its bundle is held and
    its errors say so —, one in the sidecar's place of a quarantined invoice file
    (`quarantined`: invoice file -> its quarantine folder as shown, quarantined_at) that
    it must not stay there (left_by_quarantine), one named like such an invoice file
    (INV-7.tif) where that went and what to do (beside_quarantined), any other keeps its
    why."""
    marker = outbox.marker_suffix if outbox.completion == "marker" else None
    files = list(invoice_files)
    sidecars = {stem(f) + outbox.sidecar_suffix: f for f in files}
    # An invoice file back in the outbox is its bundle's to tell (sidecars above).
    quarantined = quarantined or {}
    gone = {stem(f) + outbox.sidecar_suffix: f for f in quarantined}
    # Of each stem, the quarantined invoice files not back in the outbox: a root file
    # named like one (INV-7.tif beside INV-7.xml) is told where it went.
    back = set(files)
    kin: dict[str, list[str]] = {}
    for f in quarantined:
        if f not in back:
            kin.setdefault(stem(f), []).append(f)

    def there(x: str) -> bool:
        return os.path.lexists(outbox.path / x)

    def said(n: str) -> str | None:
        if is_invoice_file(outbox, n, share):
            return None  # refused as an invoice file: its own why
        return edited_copy(n) or near_miss(n, share, files, marker, states, there) or (
            unused_marker(outbox) if marker is None and n.endswith(outbox.marker_suffix)
            else None) or edge_miss(n, outbox, share, there)

    out: dict[str, str] = {}
    for n, why in refused.items():
        if (file := sidecars.get(n)) is not None and file != n:
            # Held, the bundle's errors tell it (`not-a-folder`, with the fix): listed
            # here too, it was told twice, once with "an attachment goes into the
            # folder of its invoice file" — advice that reads as "put it into itself".
            if states.get(file) != "held":
                out[n] = not_a_sidecar(n, file, outbox.path)
            continue
        if (file := gone.get(n)) is not None and file != n:
            # "An attachment goes into the folder of its invoice file" read as "put it
            # into itself"; what it is, is the quarantine's leftover.
            out[n] = left_by_quarantine(n, file, quarantined[file], outbox.path)
            continue
        out[n] = said(n) or (
            beside_quarantined(n, only, quarantined[only], outbox)
            if len(near := kin.get(stem(n), [])) == 1 and (only := near[0]) != n
            and not is_invoice_file(outbox, n, share) else why)
    return out


def quarantined_at(rows: Iterable[tuple[str, str, str | None]], root: Path
                   ) -> dict[str, str]:
    """Of `rows` (invoice file, state, archive folder; in journal order, the rows a view
    has already), the invoice files whose latest row is quarantined, each with its
    quarantine folder as the share shows it — for left_words, without a look at
    quarantine/."""
    latest = {f: (state, folder) for f, state, folder in rows}
    return {f: shared_name(Path(folder), root) for f, (state, folder) in latest.items()
            if state == "quarantined" and folder}


def named_after(refused: Iterable[str], outbox: OutboxConfig) -> set[str]:
    """The invoice files' stems the root files left alone may be named after: as its
    sidecar (INV-7, or INV-7 + sidecar_suffix) or with another extension (INV-7.tif) —
    whose quarantine left_words tells."""
    sfx = outbox.sidecar_suffix
    return {n[:-len(sfx)] if sfx and n.endswith(sfx) else n for n in refused} | {
        stem(n) for n in refused}


def not_a_sidecar(name: str, invoice_file: str, outbox: Path) -> str:
    """What the page says of a file, link or FIFO named as the sidecar of `invoice_file`
    while that bundle is not held for it (yet: it settles, or is being read)."""
    return (f"named as the folder of attachments of {invoice_file}, but it is a "
            f"{_kind(outbox / name)}, not a "
            f"folder, so {invoice_file} cannot go with it (outboxd never follows a link) — "
            f"remove it and make a real folder {name} holding the attachments")


def left_by_quarantine(name: str, invoice_file: str, quarantine: str, outbox: Path) -> str:
    """What the page says of a file, link or FIFO in the sidecar's place of an invoice
    file that was quarantined (for it, `not-a-folder`, or for another reason): it stays
    in the outbox, is never sent, and is in the way of the folder the invoice file's
    attachments need when it goes back. "Move it out", not "remove it": a file there
    may hold the only copy of what a clerk saved."""
    return (f"named like the folder of attachments of {invoice_file}, which was "
            f"quarantined (in {quarantine}), but it is a {_kind(outbox / name)}: a folder "
            "of attachments must be a real folder (outboxd never follows a link), so it "
            f"is never sent — move it out of the outbox; when {invoice_file} goes back "
            f"into the outbox with attachments, make a real folder {name} holding them in "
            "its place")


def beside_quarantined(name: str, invoice_file: str, quarantine: str,
                       outbox: OutboxConfig) -> str:
    """What the page says of a root file that is no invoice file, named like an invoice
    file that was quarantined (INV-7.tif beside the quarantined INV-7.xml): "an
    attachment goes into the folder of its invoice file" no longer fits, as that
    invoice file is in quarantine/ — it goes with its attachments there, or away."""
    folder = stem(invoice_file) + outbox.sidecar_suffix
    return (never_sent(outbox.invoice_patterns) + f"{invoice_file}, the invoice file named "
            f"like it, was quarantined (in {quarantine}): if this file is one of its "
            f"attachments, move it into its folder of attachments {folder} there (make that "
            f"folder if there is none) before {invoice_file} goes back into the outbox; "
            "anything else, move it out of the outbox")


def _kind(path: Path) -> str:
    """What `path` is (kind_of), said of a root entry left alone."""
    try:
        return kind_of(os.lstat(path).st_mode)
    except OSError:
        return "file"  # gone since it was listed: the next refresh drops it
