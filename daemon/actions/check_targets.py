"""What each PATH given to `outboxd check` means to the daemon: the whole outbox, one
invoice file, a sidecar folder (or a look-alike of one), an attachment in one, or a
folder a quarantine left behind; as Targets, each a bundle to check or a note.

Read only, as check is: listings of the folders named, and the journal opened read-only
(check_journal.py) for what the status page would say of a folder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from daemon.actions.check_journal import CheckJournal
from daemon.configuration.config import Settings
from daemon.errors import UsageError
from daemon.fs.workfolder import there
from daemon.names import (
    ERRORS_SUFFIX,
    NameKind,
    classify,
    ignored_as,
    is_ignored,
    printable,
    stem,
)
from daemon.reading.lookalikes import look_alike_sidecars
from daemon.watching.leftalone import LeftBehind, left_behind
from daemon.watching.scan import (
    Candidate,
    Listing,
    candidate_for,
    is_invoice_file,
    list_outbox,
    refused_code,
)
from daemon.watching.strays import came_late


@dataclass(frozen=True)
class Target:
    """One invoice file to check, or a note about a path that holds none."""

    cand: Candidate | None
    note: str = ""
    error: bool = False  # the note is an error (an unusable invoice file name)


def _outbox_settings(settings: Settings, folder: Path) -> Settings:
    """The same configuration, with the outbox set to the folder a PATH lies in, so that
    an invoice file outside the configured outbox is checked by the same rules."""
    if folder == settings.outbox.path.resolve():
        return settings
    return settings.model_copy(update={"outbox": settings.outbox.model_copy(
        update={"path": folder})})


Lister = Callable[[Settings], Listing]


def _lister() -> Lister:
    """list_outbox of a folder, once per folder for all the PATHs given: the candidates
    carry the look-alike sidecars (case variants) that only a listing finds."""
    seen: dict[Path, Listing] = {}

    def listed(s: Settings) -> Listing:
        if s.outbox.path not in seen:
            seen[s.outbox.path] = list_outbox(s.outbox, s.share)
        return seen[s.outbox.path]
    return listed


def _listing_if_any(listed: Lister, s: Settings) -> Listing | None:
    """The folder's listing, or None when it cannot be listed (a folder one may enter
    but not read): a PATH in it is then checked as itself, and a name that is no
    invoice file stays a usage error (exit 2), not a failure to list (exit 1)."""
    try:
        return listed(s)
    except OSError:
        return None


def _owners(path: Path, ps: Settings, listed: Lister) -> list[Candidate]:
    """The invoice files beside `path` that the daemon reads it with: those whose sidecar
    it is, and those whose sidecar it looks like (the name in other upper and lower case
    or in the other Unicode form), which the daemon holds or quarantines for
    `sidecar-spelling`. Read as a folder (or file) of its own, a look-alike would be
    called valid, or its attachments taken for invoice files, while the invoice beside
    it is held. `ps`: the settings with the outbox set to path's folder."""
    listing = _listing_if_any(listed, ps)
    if listing is None:
        return []
    return [c for c in listing.candidates.values()
            if c.sidecar.name == path.name or (
                path.name in c.look_alikes  # cheap: most bundles have none
                and any(t.name == path.name for t in look_alike_sidecars(c, ps)))]


def _attachment_of(path: Path, settings: Settings, listed: Lister
                   ) -> tuple[Settings, list[Candidate]]:
    """The bundles a file (or folder) is part of, to the daemon: those whose sidecar (or a
    look-alike of it) is the path's folder (SIDECAR/FILE, SIDECAR/ID/) or that folder's
    parent (SIDECAR/ID/FILE); never for a path directly in the configured outbox."""
    folder, outbox = path.parent.resolve(), settings.outbox.path.resolve()
    for _ in ("SIDECAR/FILE", "SIDECAR/ID/FILE"):
        if folder == outbox or folder.parent == folder:
            break
        ps = _outbox_settings(settings, folder.parent)
        owners = _owners(folder, ps, listed)
        if owners:
            return ps, owners
        folder = folder.parent
    return settings, []


def _with_its_bundle(path: Path, what: str, ps: Settings, owners: list[Candidate]
                     ) -> Iterator[tuple[Target, Settings]]:
    """A note saying whose part `path` is, then those bundles to check. The path relative
    to the outbox as resolved: the configured one may be reached through a link."""
    rel = path.resolve().relative_to(ps.outbox.path.resolve())
    yield Target(None, f"{rel}{'/' if path.is_dir() else ''}: {what} "
                 f"{', '.join(c.invoice.name for c in owners)}; checked with its "
                 "bundle"), ps
    yield from ((Target(cand), ps) for cand in owners)


def _released(bundle: str, s: Settings, listed: Lister) -> str:
    """The invoice files a marker or release file of NAME `bundle` is for, as a clerk
    finds them (INV-7.xml, not INV-7)."""
    listing = _listing_if_any(listed, s)
    files = sorted(n for n in (listing.candidates if listing else ()) if stem(n) == bundle)
    return ", ".join(files) if files else (f"an invoice file named {bundle} with its "
                                           "extension (none is in the outbox now)")


def _why_not_an_invoice(name: str, s: Settings, listed: Lister) -> str:
    """Why the daemon takes a root file of this name for no invoice file (is_invoice_file),
    in the words of what it is."""
    out, share = s.outbox, s.share
    if is_ignored(name, out.ignore_patterns):
        return ("the daemon ignores it: a hidden, temporary or lock file, or one of [outbox] "
                "ignore_patterns")
    if share.status_page and name == share.status_page:
        return "it is the status page outboxd writes for the share ([share] status_page)"
    if name.endswith(share.release_suffix) and name != share.release_suffix:
        return (f"it is a release file ([share] release_suffix): it sends "
                f"{_released(name[:-len(share.release_suffix)], s, listed)} without "
                "attachments")
    if out.completion == "marker" and name.endswith(out.marker_suffix):
        return (f"it is a marker ([outbox] completion = \"marker\"): it releases "
                f"{_released(name[:-len(out.marker_suffix)], s, listed)}")
    if name.endswith(ERRORS_SUFFIX):
        return "it is the list of errors outboxd writes beside a held bundle"
    return f"its name matches none of [outbox] invoice_patterns = {out.invoice_patterns}"


def targets(paths: Iterable[Path], settings: Settings, journal: CheckJournal
            ) -> Iterator[tuple[Target, Settings]]:
    """What each PATH means: the whole outbox, one invoice file, or a sidecar folder.
    `journal`: the run's, whose notes are yielded as they come."""
    listed = _lister()
    for raw in paths:
        path = Path(os.path.abspath(raw))
        if not there(path):  # a look the share fails raises: never "does not exist"
            raise UsageError(f"check: {raw} does not exist")
        # The configured outbox may be a link (to a share's mount, say): the admin chose
        # that path, and the daemon watches the folder it leads to; `check` without a
        # PATH names it too. Any other link named is refused.
        if path.is_symlink() and path != Path(os.path.abspath(settings.outbox.path)):
            raise UsageError(f"check: {raw} is a symbolic link; outboxd never follows links "
                             "— name the file or folder itself")
        if (own := _own_folder(path, settings)) is not None:
            raise UsageError(f"check: {raw} is {own}, not something to check — name an "
                             "invoice file, its sidecar folder, or the outbox (outboxd "
                             "status shows what is being delivered)")
        if path.is_file():
            ps, owners = _attachment_of(path, settings, listed)
            if owners:  # not an invoice of its own, whatever its name: its bundle's report
                yield from _with_its_bundle(path, "an attachment of", ps, owners)
                continue
            if (ignored := _in_ignored_folder(path, settings)) is not None:
                yield ignored, settings
                continue
            if (lone := _in_lone_folder(path, settings, journal, listed)) :
                yield from lone
                continue
            s = _outbox_settings(settings, path.parent.resolve())
            if not is_invoice_file(s.outbox, path.name, s.share):
                owners = _owners(path, s, listed)
                if owners:  # a file where a sidecar folder should be: the daemon's error
                    yield from ((Target(cand), s) for cand in owners)
                    continue
                # The daemon would never send it: "valid" would be a promise it breaks.
                raise UsageError(f"check: {raw} is not an invoice file for outboxd "
                                 f"({_why_not_an_invoice(path.name, s, listed)}) — name an invoice "
                                 "file, its sidecar folder, or the outbox")
            # As the daemon has it, from a listing: with its look-alike sidecars.
            listing = _listing_if_any(listed, s)
            yield Target((listing.candidates.get(path.name) if listing else None)
                         or candidate_for(s.outbox, path.name)), s
            continue
        if not path.is_dir():
            raise UsageError(f"check: {raw} is neither a file nor a folder")
        folder = path.resolve()
        if folder != settings.outbox.path.resolve():
            # A sidecar folder (or a look-alike of one): the invoice files beside it.
            ps = _outbox_settings(settings, folder.parent)
            if owners := _owners(folder, ps, listed):
                yield from ((Target(cand), ps) for cand in owners)
                continue
            # An invoice's subfolder in a sidecar (SIDECAR/ID/): attachments all the same,
            # not an outbox of invoice files of its own.
            ps, owners = _attachment_of(folder, settings, listed)
            if owners:
                yield from _with_its_bundle(folder, "a folder in the sidecar of", ps, owners)
                continue
            if (ignored := _in_ignored_folder(folder, settings)) is not None:
                yield ignored, settings
                continue
        # Not an outbox of its own, though it may hold PDFs: what the status page says.
        left = _left_by_quarantine(folder, settings, journal)
        while journal.notes:
            yield Target(None, journal.notes.pop(0)), settings
        if left is not None:
            yield Target(None, f"{folder.name}/: {left.why}  [sidecar-spelling]", True), settings
            continue
        if (lone := _in_lone_folder(folder, settings, journal, listed)) :
            yield from lone
            continue
        s = _outbox_settings(settings, folder)
        listing = listed(s)
        if not listing.candidates and not listing.refused and folder != \
                settings.outbox.path.resolve():
            yield Target(None, f"{folder.name}/: no invoice files in it and no invoice file "
                               "of that name beside it; a sidecar without its invoice file "
                               "waits for it"), s
        for name, problem in listing.refused:
            yield Target(None, f"{printable(name)}: {problem}  [{refused_code(problem)}]",
                         True), s
        for name in _orphan_folders(s, listing):
            # Any refusal of its invoice file is a line of its own, above.
            yield _folder_of_no_bundle(folder / name, s, settings, journal, listing.refused,
                                       told=True), s
        while journal.notes:  # the journal read for a late folder could not be read
            yield Target(None, journal.notes.pop(0)), settings
        for cand in listing.candidates.values():
            yield Target(cand), s


def _folder_of_no_bundle(folder: Path, s: Settings, settings: Settings,
                         journal: CheckJournal, refused: Iterable[tuple[str, str]],
                         told: bool = False) -> Target:
    """What check says of `folder` (resolved), a folder of the outbox `s` that is no
    bundle's sidecar: in the configured outbox (`settings`), one a quarantine left is an
    error, as the status page and a check of that folder say it — a check of the whole
    outbox said it waits for its invoice file, which waits in quarantine for it to be
    mended; the sidecar of an invoice file the listing `refused` (a link, a FIFO, a bad
    name) is that file's error, said with it unless `told` (a check of the whole outbox
    says it on a line of its own) — "waits for its invoice file" would have a clerk wait
    for a file that is there; any other such folder, _lone_line."""
    if (left := _left_by_quarantine(folder, settings, journal)) is not None:
        return Target(None, f"{printable(folder.name)}/: {left.why}  [sidecar-spelling]", True)
    for name, problem in refused:
        if stem(name) + s.outbox.sidecar_suffix == folder.name:
            said = " (above)" if told else f": {problem}  [{refused_code(problem)}]"
            return Target(None, f"{printable(folder.name)}/: the sidecar of {printable(name)}, "
                          f"which outboxd refuses{said}", not told)
    return Target(None, _lone_line(folder.name, s, journal))


def _lone_line(name: str, s: Settings, journal: CheckJournal) -> str:
    """What check says of the folder `name` of the outbox that is no bundle's sidecar:
    attachments that came after their invoice was sent (the journal knows it), or a
    sidecar waiting for its invoice file."""
    late = came_late(name, s.outbox, journal.finished)
    return (f"{late.name}/: {late.why}" if late else
            f"{printable(name)}/: no invoice file of that name beside it; a sidecar "
            "without its invoice file waits for it")


def _in_lone_folder(path: Path, settings: Settings, journal: CheckJournal,
                    listed: Lister) -> list[tuple[Target, Settings]]:
    """The note for `path` when it is, or is in, a folder of the configured outbox that
    is no bundle's sidecar (its invoice file not there yet): the daemon reads nothing in
    it until its invoice file comes, and then only as attachments. Checked as a folder
    of invoice files of its own, its PDFs were each called a valid invoice that "goes out
    with a warning" — a promise the daemon never keeps. For a path inside a folder a
    quarantine left (a look-alike of the quarantined bundle's sidecar), what the status
    page says of that folder. Nothing for any other path (one outside the configured
    outbox is still checked as an outbox of its own)."""
    outbox, where = settings.outbox.path.resolve(), path.resolve()
    if outbox not in where.parents:
        return []
    rel = where.relative_to(outbox)
    if len(rel.parts) == 1 and not where.is_dir():
        return []  # a file of the outbox root: an invoice file or none, as it is
    listing = _listing_if_any(listed, settings)
    top = rel.parts[0]
    if listing is None or top not in _orphan_folders(settings, listing):
        return []
    said = [(Target(None, journal.notes.pop(0)), settings) for _ in list(journal.notes)]
    target = _folder_of_no_bundle(outbox / top, settings, settings, journal, listing.refused)
    if len(rel.parts) > 1:
        what = "/: no bundle of its own" if where.is_dir() else ": no invoice file"
        target = Target(None, f"{printable(str(rel))}{what}: it is in {target.note}",
                        target.error)
    said += [(Target(None, journal.notes.pop(0)), settings) for _ in list(journal.notes)]
    return [*said, (target, settings)]


# Why the daemon ignores a folder of the outbox for its name (names.ignored_as).
_IGNORED_FOLDER = {
    "in-progress": "its name is one a copy, a download or an editor gives while still at "
                   "work (such as ….tmp, ….part)",
    "lock": "its name is one an office program gives the lock file it keeps",
    "desktop": "its name is one Windows, a Mac, a NAS or an editor gives what it keeps "
               "beside the files",
    "hidden": "its name begins with a dot: a hidden folder (a sync tool's, such as "
              "Syncthing's .stversions)",
    "admin": "its name is one the admin set outboxd to ignore ([outbox] ignore_patterns)",
}


def _in_ignored_folder(path: Path, settings: Settings) -> Target | None:
    """The note for `path` when it is, or is in, a folder of the configured outbox whose
    name the daemon ignores (a hidden or in-progress name, [outbox] ignore_patterns):
    it never looks into it, so nothing there is an invoice file or an attachment —
    checked as a folder of invoice files of its own, each PDF in `.stversions/` was
    called a valid invoice. None for any other path (a root file is an invoice file or
    none, as it is)."""
    outbox, where = settings.outbox.path.resolve(), path.resolve()
    if outbox not in where.parents:
        return None
    rel = where.relative_to(outbox)
    if len(rel.parts) == 1 and not where.is_dir():
        return None
    top = rel.parts[0]
    if (why := ignored_as(top, settings.outbox.ignore_patterns)) is None:
        return None
    shown = printable(str(rel)) + ("/" if where.is_dir() else "")
    return Target(None, f"{shown}: the daemon ignores the folder {printable(top)}/ and all in "
                  f"it: {_IGNORED_FOLDER[why]}; nothing in it is read or sent — to send a "
                  "file from it, move it out: an invoice file into the outbox, an attachment "
                  "into its invoice's sidecar folder")


def _own_folder(path: Path, settings: Settings) -> str | None:
    """What `path` is if it is (or is in) outboxd's own working folder: `.outboxd` in the
    outbox, or the processing folder where claimed bundles are being delivered. Read as
    a sidecar folder, it was "a sidecar without its invoice file waits for it": a clerk
    or admin waited, or put an invoice file beside it."""
    where = path.resolve()
    for folder, what in ((settings.processing_dir, "outboxd's processing folder, where "
                          "it keeps the bundles it is delivering"),
                         (settings.outbox.path / ".outboxd", "outboxd's own working folder "
                          "in the outbox")):
        inside = folder.resolve()
        if where == inside or inside in where.parents:
            return what if where == inside else f"in {what}"
    return None


def _left_by_quarantine(folder: Path, settings: Settings, journal: CheckJournal
                        ) -> LeftBehind | None:
    """The folder as the status page lists it when a quarantine left it in the outbox
    (a look-alike of the quarantined bundle's sidecar), from the journal; None when it
    is not, or the journal cannot tell (none yet, unreadable: journal.notes says)."""
    if folder.parent != settings.outbox.path.resolve():
        return None
    rows = journal.spelling_rows()
    return next((x for x in left_behind(rows, settings.outbox.path, settings.quarantine_dir)
                 if x.on_disk == folder.name), None)


def _orphan_folders(s: Settings, listing: Listing) -> list[str]:
    """Folders of an outbox that are no bundle's sidecar nor a look-alike of one (those
    are told with their bundle): sidecars waiting for their invoice file, or folders put
    there by mistake, which a check of the whole outbox would otherwise pass over."""
    taken = {s.sent_dir.name if s.sent_dir.parent == s.outbox.path else "",
             s.quarantine_dir.name if s.quarantine_dir.parent == s.outbox.path else ""}
    for cand in listing.candidates.values():
        taken |= {cand.sidecar.name, *(t.name for t in look_alike_sidecars(cand, s))}
    return sorted(n for n, st in listing.stats.items()
                  if stat.S_ISDIR(st.st_mode) and n not in taken
                  and classify(n, s.outbox.ignore_patterns) is NameKind.OTHER)
