"""Match: build a Bundle from an invoice file and its sidecar folder
(docs/folder-convention.md, section 3).

Structure only — which file belongs to which invoice, with which document
type and note. What the files contain is validation's job. Nothing here
opens a file that is not a regular file (lstat first, then fsops), nor
anything through a link: each folder is opened from the one above it and
held, each file from its folder (see assemble). What one folder holds is
folderfiles.py's; which folder is whose, and the bundle, are this module's.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

from daemon.archiving.papers import paper_name_findings
from daemon.bundle import Attachment, Bundle, Finding, InvoiceFile
from daemon.configuration.config import Settings
from daemon.errors import DuplicateInvoiceIds, HostileInput, InputError, UnusablePdf
from daemon.fs.fsops import NOT_THE_FILES_FAULT, folder_below, folder_in, open_in
from daemon.fs.fsread import hashed_read
from daemon.fs.workfolder import held_folder
from daemon.idnames import folder_name_for_id
from daemon.names import is_ignored, name_problem, printable, stem
from daemon.reading.folderfiles import collect, count_files, holds_nothing, listdir
from daemon.reading.idfolders import IdFolders, refused_id_folder
from daemon.reading.invoices import (
    PAGES_UNREAD,
    InvoiceRead,
    read_invoice_bytes,
    read_invoice_from,
    refused_size,
)
from daemon.reading.lookalikes import distinct_names, look_alike_findings
from daemon.reading.notes import MANIFEST_NAME, Listing, Notes, SidecarNotes
from daemon.reading.orphanfolders import orphan_folder_message
from daemon.reading.readonce import keep, sampled_digest
from daemon.reading.sharedsidecar import shared_sidecar_findings
from daemon.watching.scan import Candidate

# An invoice file up to this size is read once for its hash and its ids.
MAX_INVOICE_IN_MEMORY = 32 << 20


def _err(code: str, file: str, message: str, invoice_id: str | None = None) -> Finding:
    return Finding(code, file, message, "error", invoice_id)




def match_attachments(fd: int, sidecar: Path, ids: tuple[str, ...], settings: Settings,
                      ids_unknown: bool = False, claimed: bool = False,
                      invoice_name: str = "", pages_unread: bool = False
                      ) -> tuple[list[Attachment], list[Finding], str | None, str,
                                 tuple[str, ...]]:
    """Attachments per invoice id, structural findings, the channel override, the
    digest of what was read beside the attachments (_sidecar_digest), and the ids whose
    files were not read (Bundle.unread_ids: their folder refused unread), of the sidecar
    open at `fd` (`sidecar`: its path). `ids_unknown`: the invoice file could not be
    read, and `ids` is its stem standing in. `claimed`: the sidecar lies in a work
    folder; a file whose name is bad-name but UTF-8, and an invoice's folder named as
    older versions named it (IdFolders.owner_before_c1), are then read with their
    error, not left out. `invoice_name`: the invoice file's, which an entry of
    attachments.toml may name by mistake. `pages_unread`: `ids` is the stem standing in
    for a PDF some of whose pages could not be read (a warning): a folder named for
    another invoice may be one of those pages'."""
    findings: list[Finding] = []
    rel = sidecar.name
    folders = IdFolders(ids)
    findings.extend(folders.collisions(rel))
    single = len(ids) == 1
    atts: list[Attachment] = []
    listing = listdir(fd, rel)  # once: for the root's files and for its subfolders
    if (refused := _over_the_limit(fd, rel, listing, ids, folders, settings, claimed)):
        findings.append(refused)
        return [], findings, None, _sidecar_digest([], findings, []), ids
    copying: list[str] = []
    sidecar_notes = SidecarNotes()
    root_atts, root_notes, root_listing, root_used = collect(
        fd, sidecar, rel, ids[0], settings, findings, allow_subfolders=True,
        copying=copying, entries=listing, claimed=claimed)
    folder_listings: list[Listing] = []  # of the invoices' folders
    folder_notes: list[tuple[Notes, set[str], Listing, str]] = []  # theirs, and whose
    if single:
        atts.extend(root_atts)
    else:
        for a in root_atts:
            findings.append(_err("orphan-attachment", a.rel, "is in the sidecar root, but this "
                                 f"file holds several invoices ({', '.join(ids)}) — move it "
                                 "into the subfolder of its invoice"))
    sidecar_notes.add(root_notes, f"{rel}/{MANIFEST_NAME}", findings)
    taken: dict[str, list[str]] = {}  # id -> the folders taken as its
    unread: list[str] = []
    for e in listing:
        if not e.is_dir(follow_symlinks=False):
            if (not_a_folder := refused_id_folder(e, folders, rel, findings)) is not None:
                unread.append(not_a_folder)
            continue
        before_c1 = False
        owner = folders.owner(e.name)
        # The folder of one of the file's invoices is that invoice's, even when its name
        # reads as litter (an id that begins with a dot): its attachments must not be
        # left out unseen, and the invoice sent or held as one without attachments.
        if owner is None and is_ignored(e.name, settings.outbox.ignore_patterns):
            continue
        if name_problem(e.name):
            # Reported (bad-name, escaped) by collect from this same listing; the raw name
            # cannot go into a finding: the journal and NAME.errors.txt are UTF-8.
            if (was := folders.owner_before_c1(e.name)) is None:
                continue
            _say_new_name(findings, printable(f"{rel}/{e.name}"), was)
            if not claimed:
                # Its files are there, unread: "has no attachments" would be false of it
                # once the folder is renamed as its error says.
                unread.append(was)
                continue
            # Claimed by an older version, which matched it as the invoice's folder: read
            # so, as claimed (see folderfiles.collect), never a bundle without its files. Not in
            # `taken`: its bad-name is the error it breaks now.
            owner, before_c1 = was, True
        elif owner is None and ids_unknown:
            # Which invoices the file holds is not known: "rename the folder to one of
            # its ids" would be advice for a stand-in id. Its error is what to fix; then
            # the folder is matched against the ids read.
            continue
        if owner is None and holds_nothing(fd, e.name, f"{rel}/{e.name}", settings):
            continue  # nothing in it to send, nor to leave behind
        if owner is None:
            findings.append(_err("orphan-attachment", f"{rel}/{e.name}",
                                 orphan_folder_message(e.name, folders.by_folder, ids, rel,
                                                       settings, pages_unread)))
            continue
        sharers = folders.sharers(e.name)
        if len(sharers) > 1:
            # A file in it could be any of theirs: taken as none's, like an orphan's. Its
            # files are there, unread: "no attachments" would be false of each of them.
            findings.extend(folders.shared_folder(rel, e.name, sharers))
            unread.extend(i for i in sharers if i not in unread)
            continue
        if not before_c1:
            taken.setdefault(owner, []).append(e.name)
        where = f"{rel}/{e.name}"
        try:
            with folder_in(fd, e.name, where, listed=True) as sub_fd:
                sub, notes, sub_listing, used = collect(
                    sub_fd, sidecar / e.name, where, owner, settings, findings,
                    allow_subfolders=False, copying=copying, claimed=claimed)
        except HostileInput as exc:
            # Swapped for a link (or a file) since it was listed: never entered. The
            # finding changes the sidecar digest, and the snapshot has changed too.
            findings.append(_err(exc.code, exc.file, exc.message, owner))
            unread.append(owner)
            continue
        atts.extend(sub)
        folder_listings.append(sub_listing)
        folder_notes.append((notes, used, sub_listing, owner))
        sidecar_notes.add(notes, f"{where}/{MANIFEST_NAME}", findings, owner)
    for notes, used, sub_listing, owner in folder_notes:
        # Once every folder is read: a file of one invoice may have files in the root, one
        # of several in its siblings' folders (T-1's entry for T-2/b.pdf), an entry may
        # mean one of those.
        others = [root_listing] if single else [p for p in folder_listings
                                                if p is not sub_listing]
        findings.extend(notes.missing(used, sub_listing, owner, others, invoice_name,
                                      not single))
    findings.extend(sidecar_notes.channel_for_others(ids, settings.validation.channel))
    findings.extend(folders.split(rel, taken))
    # Once the invoices' folders are read: a root entry may mean a file in one of them.
    findings.extend(root_notes.missing(root_used, root_listing, ids[0], folder_listings,
                                       invoice_name, not single))
    kept = distinct_names(atts, settings.delivery.safe_filenames, findings)
    return (kept, findings, sidecar_notes.channel,
            _sidecar_digest(sidecar_notes.read, findings, copying), tuple(unread))


def _over_the_limit(fd: int, rel: str, listing: list[os.DirEntry[str]], ids: tuple[str, ...],
                    folders: IdFolders, settings: Settings, claimed: bool) -> Finding | None:
    """The finding of a sidecar refused by its listings alone, before any file is read:
    more files to send than [validation] max_attachments (too-many-attachments), or, for
    a file of several invoices, more files than that in its root, none of which is sent
    (orphan-attachment, one for them all). 100,000 files went out as one POST of 100,000
    parts after every one was read, the daemon 500 MB larger, receipt.json 43 MB. Files
    that are not sent do not count toward the limit: the clerk was told to combine
    attachments when the fix was to move an orphan folder's files."""
    def read(name: str) -> bool:  # the folders match_attachments reads as an invoice's
        owner = folders.owner(name)
        if name_problem(name):
            owner = folders.owner_before_c1(name) if claimed else None
        return owner is not None and len(folders.sharers(name)) <= 1

    limit = settings.validation.max_attachments
    single = len(ids) == 1
    in_root, in_folders = count_files(fd, rel, listing, settings, read)
    places = [(f"{rel}/{name}/", n) for name, n in in_folders.items()]
    if single:
        places.insert(0, (f"{rel}/", in_root))
    count = sum(n for _, n in places)
    if count > limit:
        # A file of one invoice cannot be split into several: that fix is for a batch.
        split = "" if single else (", or split the bundle: export its invoices in several "
                                   "invoice files, each with its own folder")
        return _err("too-many-attachments", rel, f"holds {count:,} files to send (in "
                    f"{_named(p for p, n in places if n)}), more than the {limit:,} "
                    "attachments one bundle may have ([validation] max_attachments) — "
                    f"combine them into fewer files (one PDF of many pages){split}; or ask "
                    "the admin to raise the limit")
    if not single and in_root > limit:
        # Each would be read and told apart as an orphan: bounded as what is sent is.
        return _err("orphan-attachment", rel, f"holds {in_root:,} files in its root, more "
                    f"than the {limit:,} attachments one bundle may have ([validation] "
                    "max_attachments), and none of them is sent: this file holds several "
                    f"invoices ({', '.join(ids)}), whose attachments go into the subfolder "
                    "of each — move the files into the subfolders of their invoices")
    return None


def _named(places: Iterable[str], shown: int = 3) -> str:
    """"A/, A/B/ and A/C/", the first `shown` and how many more."""
    places = list(places)
    if len(places) > shown:
        return f"{', '.join(places[:shown])} and {len(places) - shown:,} more folders"
    return " and ".join([", ".join(places[:-1]), places[-1]] if len(places) > 1 else places)


def _say_new_name(findings: list[Finding], shown: str, invoice_id: str) -> None:
    """The bad-name of `shown`, invoice_id's folder as versions before C1 characters were
    replaced named it, told with the name to give it: a clerk after an upgrade."""
    for n, f in enumerate(findings):
        if f.code == "bad-name" and f.file == shown:
            findings[n] = replace(f, message=(
                f"{f.message.split(' — ')[0]}; it is the folder of invoice "
                f"{printable(invoice_id)} as older versions of outboxd named it — rename "
                f"the folder to {folder_name_for_id(invoice_id)}"))


def _sidecar_digest(notes_read: list[tuple[str, str]], findings: list[Finding],
                    copying: list[str]) -> str:
    """SHA-256 of what the bundle id does not cover but matching read from the sidecar:
    each attachments.toml's bytes (its channel, and whatever else it may say), the
    structural findings (a link or a FIFO put into the sidecar is no attachment, but an
    error) and the in-progress names (a copy begun after the bundle settled, which the
    claim moved away from under it). The check after the claim compares it, as it
    compares the bundle id."""
    # Not the messages: one may quote an error's text, which need not be the same
    # before and after the move (the code and the file say what is wrong, and where).
    data = json.dumps([[n for n in notes_read if n[1]],
                       [[f.code, f.file, f.invoice_id] for f in findings], copying],
                      ensure_ascii=False)
    return hashlib.sha256(data.encode("utf-8", "surrogatepass")).hexdigest()


def assemble(cand: Candidate, settings: Settings, known: Bundle | None = None) -> Bundle:
    """Read the invoice file and match its sidecar; every rule broken is a Finding.

    `known`: this bundle as read before (the claim re-checks by hashes). If the
    invoice file still has the same bytes, its ids and findings are taken
    from there instead of parsing it again.

    The folder holding the invoice file (the outbox, or the work folder after a claim)
    is held open for the whole read; the invoice file and the sidecar are opened from
    it, each folder below from the one above (fsops.folder_below): nothing outside it
    is listed, opened or parsed, whatever is swapped for a link meanwhile. After a claim
    (`known`) the work folder itself is held as held_work holds it (workfolder.hold_folder):
    one swapped for a link is HostileInput, never read where the link leads.
    """
    attachments: list[Attachment] = []
    channel = None
    sidecar_digest = ""
    unread: tuple[str, ...] = ()
    top, said = cand.invoice.parent, cand.invoice.name
    opened = folder_below(top, "", said) if known is None else \
        held_folder(top, said, settings.outbox.path)
    with opened as root, ExitStack() as stack:
        # An invoice file of the outbox, or of a claim checked by hashes, that is gone at
        # its open is a change under way (fsops.open_in): raised, read again. After a
        # restart, a claimed one is opened by the name its row keeps, not one a listing
        # showed (a work folder without it waits: moves._work_present). The attachments
        # are always listed first (folderfiles.collect).
        listed = known is not None or top == settings.outbox.path
        inv, findings = _invoice_file(root, cand, settings, known, listed)
        before = len(findings)
        fd = _sidecar(root, cand, findings, stack)
        if fd is None and len(findings) > before:
            unread = inv.invoice_ids  # a link or a file: what it may hold is not read
        if fd is not None:
            attachments, more, channel, sidecar_digest, unread = match_attachments(
                fd, cand.sidecar, inv.invoice_ids, settings, inv.ids_unknown,
                # Read as an older version claimed it: after a restart (recovery), never
                # in the check of this version's own claim (`known`), which read the
                # bundle by this version's rules in the outbox a moment before.
                claimed=known is None and top != settings.outbox.path,
                invoice_name=cand.invoice.name,
                pages_unread=any(f.code == PAGES_UNREAD for f in findings
                                 if f.file == cand.invoice.name))
            findings.extend(more)
    sidecar = cand.sidecar if fd is not None else None
    findings.extend(look_alike_findings(cand, settings))
    findings.extend(shared_sidecar_findings(cand))
    marker = settings.outbox.completion == "marker"
    findings.extend(paper_name_findings(
        (("attachments folder", cand.sidecar),) + ((("marker", cand.marker),) if marker else ()),
        cand.invoice.name))
    return Bundle(inv, sidecar, tuple(attachments), channel or settings.validation.channel,
                  tuple(findings), sidecar_digest, unread)


def known_part(bundle: Bundle) -> Bundle:
    """What assemble(known=bundle) takes from the bundle read before (_invoice_file): its
    invoice file and the findings about that file. A check by hashes in a reader process
    is sent this, not the attachments and their paths, which it reads again anyway."""
    name = bundle.invoice_file.name
    return Bundle(bundle.invoice_file, None, (), bundle.channel,
                  tuple(f for f in bundle.findings if f.file == name))


def _invoice_file(root: int, cand: Candidate, settings: Settings, known: Bundle | None,
                  listed: bool = False) -> tuple[InvoiceFile, list[Finding]]:
    """The invoice file of the folder open at `root`, read (or taken from `known`, if it
    has the same bytes), and what is wrong with it."""
    findings: list[Finding] = []
    rel = cand.invoice.name
    with open_in(root, rel, rel, listed) as fh:
        # Hashed and parsed from one read; a file too large for memory is read twice,
        # one refused by its size not at all (readonce.sampled_digest).
        # One fstat for its size and its links (Bundle.linked), no more than before.
        st = os.fstat(fh.fileno())
        if refused_size(st):
            (size, digest), data = sampled_digest(fh), None
        else:
            size, digest, data = hashed_read(fh, MAX_INVOICE_IN_MEMORY)
        keep(cand.invoice, data)  # for pre-flight, within finish.evaluate
        ids_unknown = False
        if known is not None and known.invoice_file.sha256 == digest:
            read = InvoiceRead(known.invoice_file.format, known.invoice_ids)
            ids_unknown = known.invoice_file.ids_unknown
            findings.extend(f for f in known.findings if f.file == rel)
        else:
            pattern = settings.invoices.pdf_id_pattern
            try:
                if data is None:
                    fh.seek(0)
                    read = read_invoice_from(fh, rel, rel, pattern)
                else:
                    read = read_invoice_bytes(data, rel, rel, pattern)
                findings.extend(read.warnings)
            except InputError as exc:
                findings.append(_err(exc.code, exc.file, exc.message))
                # A PDF that breaks the PDF rules is still a PDF (as `check` shows it). A
                # file that says an id twice is refused all the same, but its ids were
                # read: they, not its stem, are what the journal and `status --json` name.
                read = InvoiceRead("pdf" if isinstance(exc, UnusablePdf) else "other",
                                   exc.invoice_ids if isinstance(exc, DuplicateInvoiceIds)
                                   else (stem(rel),))
                ids_unknown = True
    return InvoiceFile(cand.invoice, rel, size, digest, read.format, read.invoice_ids,
                       ids_unknown, linked=st.st_nlink > 1), findings


def _sidecar(root: int, cand: Candidate, findings: list[Finding], stack: ExitStack
             ) -> int | None:
    """The sidecar of the folder open at `root`, open until `stack` closes; None if there
    is none, or (with a finding) if it is no folder: a link is never followed."""
    name = cand.sidecar.name
    if cand.sidecar == cand.invoice:
        # An invoice file without an extension (under a pattern such as "*", with no
        # sidecar_suffix) is its own sidecar's name: it can have no folder beside it.
        # Before, its lstat found the invoice file itself and held the bundle for a
        # sidecar that "is not a folder", with a fix no clerk could follow.
        return None
    try:
        mode = os.stat(name, dir_fd=root, follow_symlinks=False).st_mode
    except OSError as exc:
        if exc.errno in NOT_THE_FILES_FAULT:
            # A share's I/O error or timeout: whether there is a sidecar is not known, and
            # read as none the invoice would be judged (or sent) without its attachments.
            # Raised: the bundle is read again (loop/unreadable.py).
            exc.filename = name
            raise
        return None  # not there
    if stat.S_ISDIR(mode):
        try:
            # Gone since its lstat: raised (fsops.folder_in), the bundle read again.
            return stack.enter_context(folder_in(root, name, name, listed=True))
        except HostileInput:
            pass  # swapped for a link (or a file) since its lstat: said as one
    findings.append(_err("not-a-folder", name, "the sidecar is not a folder (a link or a "
                         "file); outboxd never follows links — make it a real folder"))
    return None
