"""The attachments in one folder of a sidecar (docs/folder-convention.md, section 3):
the sidecar itself or one invoice's folder in it, as match.py walks them.

Each entry is classified by its name (litter, in progress, refused), lstat'ed, and a
regular file opened from the folder held open and hashed; its attachments.toml gives
its document type and note. Nothing here follows a link or opens what is not a
regular file; which folder is whose is match.py's (and idfolders.py's).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from daemon.bundle import Attachment, Finding
from daemon.configuration.config import Settings
from daemon.errors import InputError
from daemon.fs.fsops import folder_in, kind_of, open_in, unreadable_folder
from daemon.names import NameKind, classify, ignored_as, name_problem, printable
from daemon.reading.notes import (
    MANIFEST_NAME,
    Listing,
    Notes,
    misnamed_notes,
    read_notes,
    type_not_allowed,
)
from daemon.reading.readonce import hash_keeping
from daemon.watching.snapshot import SNAPSHOT_DEPTH


def _err(code: str, file: str, message: str, invoice_id: str | None = None) -> Finding:
    return Finding(code, file, message, "error", invoice_id)


def listdir(folder: int, rel: str) -> list[os.DirEntry[str]]:
    """The entries of the folder open at `folder`, by name. Their stat() is relative to
    that folder: only while it is held open."""
    try:
        with os.scandir(folder) as it:
            return sorted(it, key=lambda e: e.name)
    except PermissionError:
        raise unreadable_folder(printable(rel)) from None


def collect(fd: int, folder: Path, rel: str, invoice_id: str, settings: Settings,
             findings: list[Finding], allow_subfolders: bool, copying: list[str],
             entries: list[os.DirEntry[str]] | None = None,
             claimed: bool = False) -> tuple[list[Attachment], Notes, Listing, set[str]]:
    """The attachments in one folder (open at `fd`; `folder`: its path, `entries`: its
    listing, if taken already), with its attachments.toml applied; in-progress names
    found are added to `copying`. Every file is opened from the folder held open, so
    what is hashed lies in the folder listed, never behind a link swapped in since.
    Also what the folder holds, for the entries that name no attachment of it
    (Notes.missing), and the keys of its attachments.toml that name one (or a file
    whose own finding says what to fix). `claimed`: the folder lies in a work folder
    (see match.match_attachments)."""
    # A file the listing showed and the open did not find is a share that blinked (or a
    # change under way), in a work folder too: raised, the bundle is read again later
    # (after a restart, rereading._read_claimed), never judged on a file that is there.
    notes = read_notes(fd, rel, findings)
    atts: list[Attachment] = []
    listing = Listing(rel)
    used: set[str] = set()
    for e in listdir(fd, rel) if entries is None else entries:
        shown = f"{rel}/{e.name}"
        if e.name == MANIFEST_NAME:
            listing.ignored[e.name] = "notes"
            continue
        kind = classify(e.name, settings.outbox.ignore_patterns)
        if kind is NameKind.IN_PROGRESS:
            copying.append(shown)
        if kind is not NameKind.OTHER:
            listing.ignored[e.name] = ignored_as(e.name, settings.outbox.ignore_patterns) or ""
            continue
        # An entry naming a file refused below is no missing file: "add the file" would
        # send the clerk after one they see; the file's own finding says what to fix.
        key, entry = notes.entry_for(e.name)
        if key is not None:
            used.add(key)
        if misnamed := misnamed_notes(e.name):
            findings.append(_err("attachments-toml-invalid", shown, misnamed, invoice_id))
            listing.refused.add(e.name)
            continue
        problem = name_problem(e.name)
        if problem:
            # Escaped as the scanner does (\xNN): findings go to UTF-8 files and the journal,
            # and one file must read the same in the log, NAME.errors.txt and on the page.
            findings.append(_err("bad-name", printable(shown), problem, invoice_id))
            listing.refused.add(e.name)
            if not (claimed and _taken_before(e.name)):
                continue
            # Claimed by an older version, which took C1 controls (U+0080–U+009F): read
            # with the file, as claimed, so that it is sent with the id it was sent
            # with (recovery.sent_as_claimed), never a copy without it.
        try:
            st = e.stat(follow_symlinks=False)
        except OSError as exc:
            # An entry of a listing by descriptor names only itself: say where it lies.
            exc.filename = shown
            raise
        if stat.S_ISDIR(st.st_mode):
            listing.folders.add(e.name)
            if allow_subfolders and key is not None:
                used.discard(key)  # an invoice's folder, no file: the entry names none
            if not allow_subfolders and not holds_nothing(fd, e.name, shown, settings):
                findings.append(_err("nested-too-deep", shown, f"is a folder inside {rel}/, "
                                     f"the folder of invoice {invoice_id}, whose attachments "
                                     f"must lie directly in it — move the files of {shown}/ "
                                     f"up into {rel}/ and remove the empty folder", invoice_id))
            continue
        if not stat.S_ISREG(st.st_mode):
            findings.append(_err("not-a-file", shown, f"is a {kind_of(st.st_mode)}, not a "
                                 "regular file; outboxd never opens or follows it — put the "
                                 "file itself there", invoice_id))
            listing.refused.add(e.name)
            continue
        try:
            with open_in(fd, e.name, shown, listed=True) as fh:
                size, digest = hash_keeping(  # validated from it
                    fh, folder / e.name, settings.validation.max_attachment_bytes)
        except InputError as exc:
            findings.append(_err(exc.code, exc.file, exc.message, invoice_id))
            listing.refused.add(e.name)
            continue
        listing.files.add(e.name)
        doc_type = entry.get("type") or settings.attachments.default_document_type
        allowed = settings.attachments.document_types
        if allowed is not None and doc_type not in allowed:
            findings.append(_err("document-type-not-allowed", shown, type_not_allowed(
                e.name, doc_type, bool(entry.get("type")), allowed, f"{rel}/{MANIFEST_NAME}"),
                invoice_id))
        atts.append(Attachment(folder / e.name, shown, e.name, invoice_id, size, digest,
                               doc_type, entry.get("note", ""), linked=st.st_nlink > 1))
    return atts, notes, listing, used


def holds_nothing(fd: int, name: str, shown: str, settings: Settings) -> bool:
    """The folder `name` of the folder open at `fd` (`shown`: its path from the outbox)
    holds no file but litter (a Mac's .DS_Store, Windows' Thumbs.db and desktop.ini,
    which a folder gets by being looked at), nor does any folder in it (a tree made
    before its files: INV-1/2026/October/): a folder where no file may be, so made,
    holds nothing that would be sent or left behind unsent, and is no error (it travels
    with the sidecar to the archive). False for anything else, for a folder that cannot
    be opened or listed (a link swapped in: its finding then says what is wrong), and
    for one whose entries settling does not look at (deeper than SNAPSHOT_DEPTH): a file
    copied in there would not hold the bundle back, so its being empty is not known."""
    if shown.count("/") + 2 > SNAPSHOT_DEPTH:  # its entries' depth, the sidecar's 1
        return False
    patterns = settings.outbox.ignore_patterns
    try:
        with folder_in(fd, name, shown) as sub:
            return all(classify(e.name, patterns) is NameKind.LITTER
                       or e.is_dir(follow_symlinks=False)
                       and holds_nothing(sub, e.name, f"{shown}/{e.name}", settings)
                       for e in listdir(sub, shown))
    except (InputError, OSError):
        return False


def count_files(fd: int, rel: str, listing: list[os.DirEntry[str]], settings: Settings,
                read: Callable[[str], bool]) -> tuple[int, dict[str, int]]:
    """How many files that may be attachments the sidecar open at `fd` (its `listing`
    taken) holds in its root, and in each of its folders that match.py reads (`read`:
    an invoice's folder), from their listings alone: nothing is opened but those
    folders, so that a sidecar of 100,000 files is refused by its count
    (too-many-attachments) before a single file is read. A folder of no invoice is not
    even listed: nothing in it is read or sent. Names that are never attachments
    (litter, in-progress names, attachments.toml) do not count; a folder that cannot be
    opened counts nothing here, and collect says why."""
    patterns = settings.outbox.ignore_patterns

    def files(entries: list[os.DirEntry[str]]) -> int:
        return sum(1 for e in entries if not e.is_dir(follow_symlinks=False)
                   and e.name != MANIFEST_NAME and classify(e.name, patterns) is NameKind.OTHER)

    in_folders: dict[str, int] = {}
    for e in listing:
        if e.is_dir(follow_symlinks=False) and read(e.name):
            where = f"{rel}/{e.name}"
            try:
                with folder_in(fd, e.name, where) as sub:
                    in_folders[e.name] = files(listdir(sub, where))
            except (InputError, OSError):
                pass
    return files(listing), in_folders


def _taken_before(name: str) -> bool:
    """Whether an older version took this name, which this one refuses: its only fault
    is a C1 control character. Any other bad name no version took, so a claim never held
    it: read with it, the check right after this version's own claim got another bundle
    id than the outbox's read, undid the claim, and did so again for ever."""
    # Undecodable bytes (surrogateescape) no version took: name_problem refuses them
    # whatever C1 controls are replaced.
    return name_problem(_C1.sub("_", name)) is None


_C1 = re.compile("[\x80-\x9f]")
