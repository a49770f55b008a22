"""`outboxd attach INVOICE_ID FILE [--type T] [--note N]`: "add attachment" from the shell.

Finds the one invoice file in the outbox that holds the id (multi-invoice
files included, read as the daemon reads them), copies FILE into its
sidecar — the sidecar root for a one-invoice file, the `ID/` subfolder for
a multi-invoice file — and records type and note in that folder's
`attachments.toml`, keeping its comments and other entries (tomlkit
round-trips them).

The copy, attachments.toml and the rename into place, in an order the daemon never
sees half of settled: attach_copy.py. What it says once the file is in:
attach_report.py.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import pwd
import shlex
from pathlib import Path

from daemon.actions import EXIT_OK
from daemon.actions.attach_before import AttachedBefore, attached_before, sent_before
from daemon.actions.attach_copy import NOT_COPIED, copy_in, not_copied, share_with_the_daemon
from daemon.actions.attach_notes import AttachRefused
from daemon.actions.attach_report import checked_after, said_after
from daemon.actions.check import Checked
from daemon.actions.common import invalid_fate, settings_of, why_not_written
from daemon.actions.reads import CommandReads
from daemon.actions.whereabouts import Endings, left_the_outbox
from daemon.configuration.config import Settings
from daemon.configuration.config_values import MAX_NAME_BYTES, MAX_PATH_BYTES
from daemon.errors import (
    InputError,
    ReadTimedOut,
    UsageError,
    describe,
    shown,
    unquoted,
)
from daemon.fs.fsops import open_regular
from daemon.fs.fsread import hash_file
from daemon.fs.fswrite import held_path, make_folders_below
from daemon.fs.workfolder import there
from daemon.invisible import for_terminal
from daemon.names import is_ignored, name_problem
from daemon.reading.idfolders import IdFolders
from daemon.reading.lookalikes import look_alike_findings
from daemon.reading.notes import MANIFEST_NAME, misnamed_notes, value_problem
from daemon.reading.sharedsidecar import shared_message, sidecar_sharers
from daemon.validation.emptiness import what_is_empty
from daemon.validation.sniff import sniff
from daemon.watching.scan import Candidate, Listing, list_outbox


def holders(invoice_id: str, settings: Settings, unread: list[str], reads: CommandReads,
            listing: Listing | None = None) -> list[tuple[Candidate, tuple[str, ...]]]:
    """The invoice files in the outbox (`listing`, else listed now) that hold invoice_id,
    with all their ids; those that cannot be read (their ids unknown; one that takes a
    reader past its time limit among them) are added to `unread`, each with why."""
    out = []
    if listing is None:
        listing = list_outbox(settings.outbox, settings.share)
    for cand in listing.candidates.values():
        try:
            ids = reads.invoice_ids(cand, settings)
        except (InputError, OSError) as exc:
            unread.append(f"{exc} [{exc.code}]" if isinstance(exc, InputError)
                          else f"{cand.invoice.name}: {describe(exc)}")
            continue
        if invoice_id in ids:
            out.append((cand, ids))
    return out


def unread_note(unread: list[str]) -> str:
    """For a refusal that found no invoice file: those it could not look into."""
    if not unread:
        return ""
    more = f" (and {len(unread) - 3} more)" if len(unread) > 3 else ""
    return (f"; {len(unread)} invoice file(s) could not be read, so their ids are unknown "
            f"— fix them first: {'; '.join(unread[:3])}{more}")


def target_folder(cand: Candidate, ids: tuple[str, ...], invoice_id: str) -> Path:
    """Where the invoice's attachments go: ID/ for a multi-invoice file (or when a
    one-invoice file already uses ID/), else the sidecar root. ID/ under whichever of
    its names is there (CON/ an ERP made: CON_/ beside it would be `id-two-folders`),
    else the first to make (IdFolders.own_names); only a name that is no other
    invoice's (the daemon takes no file from CON_/ when the file holds CON and CON_).
    A name there in the other Unicode form (a Mac's folder ÅSA-7/, decomposed, for the
    id written composed) is that folder, as it is to the matcher: a second one made
    beside it would be `id-two-folders`. AttachRefused when the id has none."""
    folders = IdFolders(ids)
    there = folders.found(invoice_id, _subfolders(cand.sidecar))
    if there:
        return cand.sidecar / there[0]
    if len(ids) == 1:
        return cand.sidecar
    own = folders.own_names(invoice_id)
    if not own:
        raise AttachRefused(f"nothing was changed: in {cand.sidecar.name} of "
                            f"{cand.invoice.name}, {folders.no_folder_of_its_own(invoice_id)}"
                            " in the invoice file, then attach again")
    return cand.sidecar / own[0]


def _subfolders(sidecar: Path) -> list[str]:
    """The names of the folders in a sidecar as they are spelled there (no links); none
    where there is no sidecar yet."""
    try:
        with os.scandir(sidecar) as entries:
            return [e.name for e in entries if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def attach(invoice_id: str, src: Path, settings: Settings, doc_type: str | None = None,
           note: str | None = None) -> tuple[Path, Path, Checked | None]:
    """Copy src into the sidecar of the one invoice file holding invoice_id; the new path,
    the invoice file, and what `outboxd check` says of the bundle now (checked_after).
    AttachedBefore where this very attach had already done so. The files of the
    outbox and src are read in a reader process, under the daemon's time limit
    (reads.py), the bundle with the e-invoice engine only once the file is in: what is
    refused costs no engine."""
    with CommandReads(settings, evaluates=False) as reads:
        dest, cand = _attach(invoice_id, src, settings, doc_type, note, reads)
        return dest, cand.invoice, checked_after(cand, settings, reads)


def _attach(invoice_id: str, src: Path, settings: Settings, doc_type: str | None,
            note: str | None, reads: CommandReads) -> tuple[Path, Candidate]:
    name = src.name
    problem = name_problem(name)
    if problem or is_ignored(name, settings.outbox.ignore_patterns) or name == MANIFEST_NAME:
        # name_problem's text carries its own fix ("— rename the file"): not a second one.
        raise UsageError(f"attach: {name!r} cannot be an attachment name: {problem}"
                         if problem else f"attach: {name!r} cannot be an attachment name "
                         "(outboxd ignores or reserves that name) — rename it")
    if misnamed_notes(name):
        # The daemon stops the bundle for such a file (attachments-toml-invalid): copied
        # in, it would hold or quarantine the invoice it was meant to go with.
        raise UsageError(f"attach: {name!r} cannot be an attachment name (outboxd takes it "
                         f"for a misnamed {MANIFEST_NAME} and stops the bundle for it) — "
                         "rename it; a file's type and note are given with --type and --note")
    for option, value in (("--type", doc_type), ("--note", note)):
        if value is not None and (problem := value_problem(option, value)):
            raise UsageError(f"attach: {problem}")
    allowed = settings.attachments.document_types
    if doc_type and allowed is not None and doc_type not in allowed:
        raise UsageError(f"attach: --type {shown(doc_type)} is not allowed — use one of "
                         + ", ".join(shown(t) for t in allowed))
    # FILE's own faults before any reader starts (the invoice files' ids are read there).
    digest = refuse_what_is_no_attachment(src)
    unread: list[str] = []
    found = holders(invoice_id, settings, unread, reads)
    if not found:
        untold = sent_before(invoice_id, src, doc_type, note, settings)
        raise not_in_the_outbox(invoice_id, name, settings, unread, untold)
    if len(found) > 1:
        raise AttachRefused(f"invoice id {invoice_id!r} is in {len(found)} invoice files: "
                            f"{', '.join(c.invoice.name for c, _ in found)} — remove the "
                            "duplicate, then attach")
    cand, ids = found[0]
    if os.path.lexists(cand.sidecar) and (cand.sidecar.is_symlink()
                                          or not cand.sidecar.is_dir()):
        raise AttachRefused(f"{cand.sidecar.name} is not a folder — make it a real folder; "
                            "nothing was changed")
    twins = look_alike_findings(cand, settings)  # cand is from a listing: case variants too
    if twins:
        # The file would go in the right folder, and the look-alike (with what a clerk
        # put in it) would still hold the bundle: say so, in the words the daemon and
        # `check` use, before anything is written.
        raise AttachRefused(f"nothing was changed: beside {cand.invoice.name}, "
                            f"{'a name looks' if len(twins) == 1 else 'names look'} like its "
                            f"sidecar {cand.sidecar.name}; mend as follows, then attach again\n"
                            + "\n".join(f"  {f.file}: {f.message}  [{f.code}]" for f in twins))
    refuse_a_shared_sidecar(cand)
    folder = target_folder(cand, ids, invoice_id)
    dest = folder / name
    rel = dest.relative_to(settings.outbox.path)
    if os.path.lexists(dest):
        if attached_before(src, dest, doc_type, note):
            raise AttachedBefore(f"{invoice_id}: already attached as {rel} (the same bytes, "
                                 "type and note); nothing was changed")
        raise AttachRefused(f"{rel} already exists; nothing was changed — rename FILE or "
                            "remove the old one")
    refuse_a_copy_of_the_invoice(src, digest, cand)
    refuse_what_the_channel_refuses(src, rel, cand, invoice_id, settings, reads)
    # Made and held from the outbox down, never through a link: the sidecar (or its ID/)
    # a clerk swaps for a link after the checks above cannot take the copy and
    # attachments.toml elsewhere, where attach (often run as root) would write them.
    parts = folder.relative_to(settings.outbox.path).parts
    shared, made = share_with_the_daemon(settings.outbox.path), []

    def mark_made(fd: int) -> None:
        made.append(fd)
        if shared is not None:
            shared(fd)
    try:
        try:
            held = make_folders_below(settings.outbox.path, parts, mark_made)
        except NotADirectoryError as exc:
            raise AttachRefused(f"{exc.filename} in the sidecar {cand.sidecar.name} is not a "
                                "folder (a link or a file took its place) — make it a real "
                                "folder; nothing was changed") from None
        try:
            copy_in(src, held_path(held), name, rel, doc_type, note, folder.name,
                    # A look the share fails raises (nothing changed, said so): taken
                    # for "gone" (os.path.lexists), attach said the invoice had left.
                    lambda: None if there(cand.invoice)
                    else not_in_the_outbox(invoice_id, name, settings, []))
            os.fsync(held)
        finally:
            os.close(held)
    except BaseException as exc:
        # "Nothing was changed": the folders made for the copy go too (only while
        # empty), else an empty sidecar is left, one beside no invoice file after a claim.
        for depth in range(len(parts), len(parts) - len(made), -1):
            with contextlib.suppress(OSError):
                os.rmdir(settings.outbox.path.joinpath(*parts[:depth]))
        if isinstance(exc, OSError):
            why = why_not_written(exc, "attach", settings.paths.state_dir)
            raise AttachRefused(f"could not put {rel} into the outbox {settings.outbox.path}"
                                f": {why}; nothing was changed") from None
        raise
    return dest, cand


def not_in_the_outbox(invoice_id: str, name: str, settings: Settings, unread: list[str],
                      untold: str | None = None) -> AttachRefused:
    """The refusal for an id no invoice file in the outbox holds, with what the journal
    says became of it: an ERP's script whose attach comes after the bundle went (sent,
    being delivered, quarantined) learns that, not "check the id". `untold`: sent_before's
    words for a sent bundle whose folder could not be looked into."""
    gone = left_the_outbox(invoice_id, settings, Endings(
        sent=untold or f"too late: it went out without {name!r}, which was not attached",
        moving=f"too late to attach {name!r} now: it goes out with what its sidecar held "
               "when it left",
        quarantined=", then attach again", unseen=f"{name!r} was not attached"), as_id=True)
    return AttachRefused(f"no invoice file in {settings.outbox.path} holds invoice id "
                         f"{invoice_id!r}" + (f": {gone}" if gone else
                                              " — check the id (outboxd check lists them)")
                         + unread_note(unread))


def refuse_a_shared_sidecar(cand: Candidate) -> None:
    """Refuses while another invoice file in the outbox has the same sidecar (INV-1.pdf
    beside INV-1.xml): the daemon holds both while the folder is there
    (`sidecar-shared`), so a file put in it (or the folder made for it) would hold the
    invoice rather than go with it. `cand` is from a listing: it has its sharers."""
    others = sidecar_sharers(cand)
    if others:
        raise AttachRefused(f"nothing was changed: another invoice file has the sidecar "
                            f"{cand.sidecar.name} of {cand.invoice.name}; mend as follows, "
                            f"then attach again\n  {cand.sidecar.name}: "
                            f"{shared_message(cand, others)}  [sidecar-shared]")


def _unchanged(exc: InputError) -> AttachRefused:
    """A file attach had to read refused as the daemon would refuse it: its rule, and
    that nothing was written."""
    return AttachRefused(f"{exc.file}: {exc.message}; nothing was changed  [{exc.code}]")


def refuse_what_is_no_attachment(src: Path) -> str:
    """FILE as the daemon would stop a bundle for it, told before anything is read or
    written: a link or no regular file, or an empty file (also one of only blank lines
    or zero bytes: `empty-file`). Its SHA-256, for refuse_a_copy_of_the_invoice."""
    try:
        size, digest = hash_file(src, str(src))
    except InputError as exc:
        if exc.file == str(src) and exc.code in NOT_COPIED:
            # FILE is the caller's, not a clerk's file in the outbox: "put the file itself
            # in the folder" (the daemon's fix) points nowhere here.
            raise AttachRefused(f"{src}: {not_copied(exc.code)}; nothing was changed"
                                ) from None
        raise _unchanged(exc) from None
    if size == 0:
        raise AttachRefused(f"{src} is empty (0 bytes) — the copy probably failed; nothing "
                            "was changed: attach the complete file  [empty-file]")
    try:
        with open_regular(src, str(src)) as fh:
            filetype = sniff(fh)
    except InputError:
        filetype = None  # gone or replaced meanwhile: the copy says what it is
    if filetype is not None and filetype.kind == "empty":
        raise AttachRefused(f"{src} is empty ({what_is_empty(size, filetype.empty_of)}) — "
                            "nothing was changed: export or copy the file again and attach "
                            "the complete file  [empty-file]")
    return digest


def refuse_a_copy_of_the_invoice(src: Path, digest: str, cand: Candidate) -> None:
    """A copy of the invoice file itself only gets the bundle stopped (copy-of-invoice):
    refused before anything is written, with the rule."""
    try:
        invoice = hash_file(cand.invoice, cand.invoice.name)[1]
    except InputError as exc:
        raise _unchanged(exc) from None
    if digest == invoice:
        raise AttachRefused(f"{src} is byte-identical to the invoice file "
                            f"{cand.invoice.name}; a copy of the invoice is not an attachment "
                            "— nothing was changed: attach the intended document  "
                            "[copy-of-invoice]")


def refuse_what_the_channel_refuses(src: Path, rel: Path, cand: Candidate, invoice_id: str,
                                    settings: Settings, reads: CommandReads) -> None:
    """A file the daemon's rules for this bundle's channel reject (over max_attachment_bytes,
    a type the channel does not allow, a damaged or encrypted PDF), or whose name, put at
    `rel`, collides with one of the invoice's attachments (Timesheet.pdf beside
    timesheet.pdf, a name in the other Unicode form: `name-collision`), only gets the
    bundle quarantined — a whole file of invoices at once: refused before anything is
    written, with each rule broken, as `outboxd check` would word it. A check that takes
    the reader past its time limit is refused as the daemon would stop the bundle with
    src in it (`read-time-limit`)."""
    try:
        errors = reads.attachment_errors(cand, settings, src, rel, invoice_id)
    except ReadTimedOut as exc:
        raise AttachRefused(f"{src}: checking it as an attachment of {cand.invoice.name} "
                            f"took longer than {exc.limit:g} s each time it was tried — it (or "
                            "a file of that bundle) is probably damaged or built to make "
                            "readers loop, and the daemon would stop the bundle for it; "
                            "nothing was changed: open it in a viewer and export or scan it "
                            "again  [read-time-limit]") from None
    except InputError as exc:
        raise _unchanged(exc) from None
    if errors:
        raise AttachRefused(f"{src} would only get {cand.invoice.name} "
                            f"{invalid_fate(settings)}; nothing "
                            "was changed:\n" + "\n".join(f"  {f.message}  [{f.code}]"
                                                          for f in errors))


def run(args: argparse.Namespace) -> int:
    settings, _ = settings_of(args)
    src = Path(args.file)
    try:
        # os.stat, not Path.exists(): from Python 3.13 on that says False for a path it
        # may not look at, and the refusal below became "does not exist".
        os.stat(src)
        there = True
    except PermissionError as exc:
        # Run as `sudo -u outboxd`, the usual FILE lies in the admin's own home folder,
        # which other users may not enter: the generic "read and write it … disk space"
        # line pointed nowhere.
        raise AttachRefused(f"{src}: cannot be reached by the user {_me()} ({exc.strerror}"
                            "): a folder above it is closed to that user, as a home folder "
                            "is to others — copy it for that user alone (sudo install -o "
                            f"{_me()} -m 0600 {shlex.quote(str(src))} /tmp/) and attach "
                            "the copy; nothing was changed") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            # No such file can exist: the usage error it is (exit 2), not a refused file
            # operation (exit 1) that sent the admin to check the disk's space.
            raise UsageError(f"attach: {unquoted(str(src))} does not exist: the path is "
                             f"longer than Linux allows ({MAX_NAME_BYTES} bytes a name, "
                             f"{MAX_PATH_BYTES:,} the whole path) — give the file's path"
                             ) from None
        if exc.errno not in _NOT_THERE:
            raise
        there = False
    if not there:
        raise UsageError(f"attach: {src} does not exist")
    try:
        dest, invoice, left = attach(args.invoice_id, src, settings, args.doc_type,
                                     args.note)
    except AttachedBefore as done:
        print(for_terminal(str(done)))
        return EXIT_OK
    rel = dest.relative_to(settings.outbox.path)
    said_after(args.invoice_id, rel, invoice, left)
    return EXIT_OK


# What Path.exists() took for "no file there" (a link that loops included).
_NOT_THERE = (errno.ENOENT, errno.ENOTDIR, errno.EBADF, errno.ELOOP)


def _me() -> str:
    """This process's user by name, as sudo -u gave it; its number where it has none."""
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())
