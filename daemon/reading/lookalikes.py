"""Names that look alike but are not the same to Linux, and what a clerk is told of
them: look-alike sidecars, entries beside an invoice file named like its sidecar but
for upper and lower case or Unicode form (docs/folder-convention.md, section 3;
`sidecar-spelling`: the matcher reports them with the bundle, `check`, `attach` and
`retry` ask the same rule of the outbox as it is); two ids of one file whose folders
are one folder to Windows (`id-folder-collision`); two attachments of one invoice whose names
collide as received or as sent (`name-collision`).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from daemon.bundle import Attachment, Bundle, Finding
from daemon.configuration.config import Settings
from daemon.idnames import folder_name_for_id
from daemon.manifest import safe_filename, sent_name
from daemon.names import (
    CASE_WORDS,
    COPY_WORDS,
    EXACT_WORDS,
    FORM_WORDS,
    edge_words,
    fold_key,
    nfc,
    printable,
    spelled_otherwise,
    spelling_twins,
    stem,
    trimmed,
)
from daemon.watching.scan import Candidate, is_invoice_file
from daemon.watching.sidecarnames import alike_kind, copied_names, invoice_files_of, owner_of


def look_alike_sidecars(cand: Candidate, settings: Settings) -> list[Path]:
    """Entries beside the invoice file named like its sidecar but for upper and lower
    case (`inv-7/` made on Windows beside the ERP's INV-7.xml), Unicode form (a Mac's
    decomposed accents beside an ERP's composed ones) or a space or dot at an end
    (`INV-7 /`), and folders named by a clerk's other common slips (sidecarnames.alike_kind:
    `INV-7.xml/`, the invoice file's name copied; `INV-7/` where sidecars are
    INV-7.att; `INV-7 (1)/` or `INV-7 - Copy/`, a second copy of the folder), whether
    or not the sidecar itself is there.

    Those variants are the ones a listing of the outbox found (Candidate.look_alikes:
    one root name among 2^n spellings cannot be looked up), the two Unicode forms are
    looked up here as well (a candidate made without a listing has them too). One that
    is another invoice file's exact sidecar (the Mac's own Räkning-7.xml beside the
    ERP's, inv-7/ of inv-7.xml beside INV-7.xml, `INV-7 /` of `INV-7 .xml`; a copy's
    name of a file of any invoice extension, `Faktura 2/` of `Faktura 2.pdf`) is that
    file's, not a mistake (sidecarnames.look_alikes_of). Both are asked of the outbox as
    it is now: a look-alike renamed, or an invoice file come, since the listing changes
    the answer before the index has heard of it (and retry's look at the names has no
    index). An lstat or a few, only for a bundle that has a look-alike or a name with
    accents."""
    parent = cand.sidecar.parent
    found = []
    for name in sorted({*cand.look_alikes, *spelling_twins(cand.sidecar.name)}):
        path, kind = parent / name, alike_kind(cand, name)
        if kind is None:
            continue
        st = _looked_at(path)
        if st is None or _owned(cand, name, kind, settings):
            continue
        # Only a folder is made by copying the invoice file's name; a file so named
        # (`INV-7.xml ` beside INV-7.xml) is listed as no invoice file (leftalone.py).
        # A file named as a folder's copy (`INV-7 2`, no extension) holds nothing back
        # either: no copy of the sidecar folder is a file (nor is a link: lstat).
        if kind in ("invoice", "copy") and not stat.S_ISDIR(st.st_mode):
            continue
        found.append(path)
    return found


def _looked_at(path: Path) -> os.stat_result | None:
    """The lstat of `path`; None when nothing is there. A look the share fails (EIO,
    ESTALE) raises, named as the clerk knows it, and the bundle is read again
    (fsops.read_again_later): taken for "not there" (os.path.lexists), a look-alike
    holding the attachments went unsaid and the invoice went without them, and another
    invoice file's own sidecar was taken for this one's look-alike (held, quarantined)."""
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return None  # a name the file system cannot hold is nothing there
        exc.filename = path.name
        raise


def look_alikes_said(cand: Candidate, settings: Settings) -> list[Finding]:
    """look_alike_findings for what a bundle's row says while it settles or waits, never
    a decision: a look the share fails says none there now (the read that decides
    raises, and is made again)."""
    try:
        return look_alike_findings(cand, settings)
    except OSError:
        return []


def _owned(cand: Candidate, name: str, kind: str, settings: Settings) -> bool:
    """Whether look-alike `name` is another invoice file's in the outbox as it is now
    (sidecarnames.look_alikes_of's rule): a copy's name, that of a regular file of any
    invoice pattern (as the listing takes one: no link, marker or release file); another,
    that of a file of cand's extension."""
    parent, cfg = cand.sidecar.parent, settings.outbox
    if kind != "copy":
        owner = owner_of(cand, name)
        return bool(owner) and _looked_at(parent / owner) is not None
    for copied in copied_names(cand, name):
        for owner in invoice_files_of(cand, copied, cfg.invoice_patterns):
            st = _looked_at(parent / owner)
            if st is not None and stat.S_ISREG(st.st_mode) \
                    and is_invoice_file(cfg, owner, settings.share):
                return True
    return False


def look_alike_findings(cand: Candidate, settings: Settings) -> list[Finding]:
    """Matching a look-alike would take files that are not the sidecar by name; ignoring
    it would send the invoice without the attachments the clerk can see beside it. So
    it is an error, and the bundle waits (or is quarantined) under `[policy] invalid`."""
    twins = look_alike_sidecars(cand, settings)
    folders = [t.name for t in twins if t.is_dir() and not t.is_symlink()]
    return [Finding("sidecar-spelling", twin.name, _look_alike_message(cand, twin, folders))
            for twin in twins]


def _named_otherwise(cand: Candidate, name: str) -> str:
    """How a look-alike that is not the sidecar's name but for case and Unicode form
    is named otherwise, or "" for one that is (fold_key: the same name to Windows)."""
    side = cand.sidecar.name
    kind, suffix = alike_kind(cand, name), side[len(cand.name):]
    if kind == "copy":
        return COPY_WORDS
    if kind == "invoice":
        ext = trimmed(name)[len(stem(trimmed(name))):]
        return (f"it is named like an invoice file, extension ({ext}) and all: a sidecar "
                f"is named like its invoice file without the extension"
                f"{f' and with {suffix} after it' if suffix else ''}")
    if kind == "suffix":
        return (f"its name lacks the ending {suffix} that each sidecar has here (the admin "
                f"set [outbox] sidecar_suffix = \"{suffix}\")")
    if fold_key(name) == fold_key(side):
        return ""
    has, should = edge_words(name), edge_words(side)
    # In quotes: a space at an end is not seen in a line that names the folder.
    shown = f'its name "{printable(name)}"'
    said = (f"{shown} has {has}" + (f" where the sidecar's name has {should}" if should
                                    else ", which the sidecar's name has not")
            if has else f"{shown} lacks what the sidecar's name has: {should}")
    if trimmed(name) != trimmed(side):
        form = spelled_otherwise(trimmed(name), trimmed(side))[1]
        said += (f", and it is spelled with {FORM_WORDS}" if form else
                 f", and it differs in {CASE_WORDS}")
    # Windows drops a trailing space or dot from what it is given, so it shows such a
    # folder under a short made-up name, or cannot open it.
    return (f"{said} (easy to miss, and Windows may show such a name otherwise or not open "
            "it at all)")


def _accents(name: str, side: str) -> bool:
    """`name` differs from the sidecar's name `side` in Unicode form: only typing it
    again on the computer that named the invoice file mends that."""
    name, side = trimmed(name), trimmed(side)
    return name != side and fold_key(name) == fold_key(side) and spelled_otherwise(
        name, side)[1]


def _look_alike_message(cand: Candidate, twin: Path, folders: list[str]) -> str:
    """`folders`: cand's look-alikes that are folders; two or more are told to merge."""
    side = cand.sidecar.name
    what = "folder" if twin.name in folders else "file"
    others = [f for f in folders if f != twin.name]
    if alike_kind(cand, twin.name) == "copy":  # a folder (look_alike_sidecars)
        said = (f"this folder looks like a copy of the sidecar {side} of "
                f"{cand.invoice.name}: {COPY_WORDS}, so it is not taken as the sidecar and "
                "its files are not sent")
        return f"{said} — {_merge(cand, others, folders) if others else _copy_fix(cand)}"
    head = f"this {what} looks like the sidecar {side} of {cand.invoice.name}, but"
    otherwise = _named_otherwise(cand, twin.name)
    if otherwise:
        return _named_otherwise_message(cand, twin, folders, f"{head} {otherwise}")
    head += " the two names"
    case, form = spelled_otherwise(twin.name, side)
    differ = (f"differ only in {CASE_WORDS}" if not form else
              f"{f'differ in {CASE_WORDS} and ' if case else ''}are spelled with {FORM_WORDS}")
    if what == "file":
        return f"{head} {differ}, {_file_fix(side)}"
    # Windows (and so a clerk on the share) takes the two for one name: say why they are
    # two here, and that renaming it anywhere mends it.
    why = (": Windows takes them for one name, Linux, where outboxd runs, for two, so it "
           "is not taken as the sidecar" if not form else " (one writes accents as "
           "separate marks, as Mac computers do), so it is not taken as the sidecar")
    if others:
        return f"{head} {differ}{why} — {_merge(cand, others, folders)}"
    if not form:
        return (f"{head} {differ}{why} — rename it to {side}, each letter in upper or lower "
                f"case as written here, or move its files into the folder {side} if that "
                "one is there too")
    return (f"{head} {differ}{why} — rename it by typing its name again"
            f"{f' as {side}' if case else ''} on the computer that named the invoice file, "
            f"or, on that computer, make a new folder by typing the name {side} and move "
            "this folder's files into it")


def _file_fix(side: str) -> str:
    # Renamed to the sidecar's name it would still be no folder (`not-a-folder`).
    return (f"and a sidecar is a folder, so it is not taken as an attachment — make the "
            f"folder {side} (its name as written here) and move this file into it under a "
            "name with its type's extension (.pdf, .tif …), or remove the file if it is no "
            "attachment")


def _named_otherwise_message(cand: Candidate, twin: Path, folders: list[str],
                             said: str) -> str:
    """The message of a look-alike named otherwise than the sidecar but for case and
    form (`said`: what it is and how it differs): the fix names the sidecar's name."""
    side = cand.sidecar.name
    if twin.name not in folders:
        return f"{said}; {_file_fix(side)}"
    # A name with a space or dot at an end is one Windows mangles: say why it differs here.
    # One with the invoice file's extension, or without the suffix, is another name on
    # any computer, and blaming Linux for it would mislead.
    said += ("; so it is not taken as the sidecar"
             if alike_kind(cand, twin.name) in ("invoice", "suffix") else
             "; Linux, where outboxd runs, takes it for another name, so it is not taken "
             "as the sidecar")
    others = [f for f in folders if f != twin.name]
    if others:
        return f"{said} — {_merge(cand, others, folders)}"
    edges = edge_words(side)
    typed = (f", typing it on the computer that named {cand.invoice.name}"
             if _accents(twin.name, side) else "")
    return (f"{said} — rename it to {side}, {EXACT_WORDS}"
            f"{f' (with {edges})' if edges else ''}{typed}, or move its files into the "
            f"folder {side} if that one is there too")


def _copy_fix(cand: Candidate) -> str:
    """A copy of the sidecar most often lies beside the sidecar it was copied from,
    holding the same files or some more: which of them are this invoice's only the clerk
    knows, so the fix says to move them, not to rename over a folder that is there."""
    side = cand.sidecar.name
    if _looked_at(cand.sidecar) is not None:
        return (f"the folder {side} is there too, and only its files are sent: move the "
                f"files of this folder that belong to {cand.invoice.name} into {side} "
                "(where both hold a file of one name, keep the right one) and remove the "
                "emptied folder, or remove this folder if it holds nothing more for this "
                "invoice")
    return (f"there is no folder {side}: rename this one to {side}, {EXACT_WORDS}, or "
            f"move its files into a folder {side}")


def _merge(cand: Candidate, others: list[str], folders: list[str]) -> str:
    """Several look-alike folders: renamed one by one, the second cannot take the name."""
    side, one = cand.sidecar.name, len(others) == 1
    s = "" if one else "s"
    # Typed again on the computer that named the invoice file, a name is right in case
    # and form alike; where every folder differs in case alone, any computer will do.
    exact = any(_named_otherwise(cand, f) for f in folders)
    rename = (f"on the computer that named {cand.invoice.name}, rename one of them by "
              f"typing its name again as {side}" if any(_accents(f, side) for f in folders)
              else f"rename one of them to {side}, " + (
                  EXACT_WORDS if exact else "each letter in upper or lower case as written here"))
    return (f"and {', '.join(others)} {'looks' if one else 'look'} like it too: only one "
            f"folder can be named {side}, so do not rename each of them — merge them into "
            f"one folder named exactly {side}: {rename}, move the files of the other{s} "
            f"into it and remove the emptied folder{s}, or remove the extra folder{s} if "
            f"{'it holds' if one else 'they hold'} nothing for this invoice; if the folder "
            f"{side} is there too, move all their files into it instead")


def how_spelled(name: str, other: str) -> str:
    """How two names of one fold_key differ. Said in words: names that differ only in
    how accents are written look the same when printed, so "differs from 'café.pdf'"
    beside 'café.pdf' alone would leave a clerk with nothing to see."""
    case, form = spelled_otherwise(name, other)
    accents = ("in how accents are written (one name writes them as separate marks, as "
               "Mac computers do, so the two look the same)")
    if case and form:
        return f"only in {CASE_WORDS} and {accents}"
    return f"only in {CASE_WORDS}" if case else f"only {accents}"


def id_collision(prev: str, invoice_id: str, folder: str) -> str:
    """How two ids of one file come to one folder (`folder`: the second one's)."""
    other = nfc(folder_name_for_id(prev))
    if nfc(prev) == nfc(invoice_id):
        return (f"differ {how_spelled(invoice_id, prev)}, and an invoice's folder is found "
                f"in either writing, so both would have the folder {folder!r}")
    if other == folder:
        return f"map to the same folder name {folder!r}"
    named = ("differ" if (other, folder) == (nfc(prev), nfc(invoice_id)) else
             f"map to the folder names {other!r} and {folder!r}, which differ")
    return (f"{named} only in {CASE_WORDS}: Windows, and so the share, takes the two "
            "folders for one, so only one of them can be made there")


def distinct_names(atts: list[Attachment], safe: bool, findings: list[Finding]
                   ) -> list[Attachment]:
    """One invoice's attachments must have distinct names as received and as stored.

    Names that differ only in case or Unicode normalisation (Mac clients
    write NFD) are one name on many file systems; with safe_filenames,
    'a b.pdf' and 'a_b.pdf' are sent under one name. Either way a receiver
    would store one file over the other. A single invoice may use the root
    and ID/ at once, so this runs over everything collected.
    """
    kept: list[Attachment] = []
    taken: dict[tuple[str, str], Attachment] = {}
    for a in atts:
        keys = [(a.invoice_id, fold_key(a.original_name))]
        if safe:
            keys.append((a.invoice_id, fold_key(safe_filename(a.original_name))))
        clash = next((taken[k] for k in keys if k in taken), None)
        if clash is None:
            taken.update(dict.fromkeys(keys, a))
            kept.append(a)
            continue
        findings.append(_err("name-collision", a.rel, _collision(a, clash), a.invoice_id))
    return kept


def _collision(a: Attachment, clash: Attachment) -> str:
    """How a's name collides with clash's, said so that names that print the same (the
    same name in two folders of one invoice, accents written two ways) still differ."""
    if a.original_name == clash.original_name:
        said = f"has the same name as {clash.rel!r}"
    elif fold_key(a.original_name) == fold_key(clash.original_name):
        said = f"differs from {clash.rel!r} {how_spelled(a.original_name, clash.original_name)}"
    else:
        said = (f"differs from {clash.rel!r} only in characters that are folded when sent "
                f"(both become {safe_filename(a.original_name)!r})")
    here, there = a.rel.rpartition("/")[0], clash.rel.rpartition("/")[0]
    if here == there or nfc(here) != nfc(there):
        return f"{said} — rename one of them"
    # Two folders of one id, in either Unicode form: both are the invoice's
    # (match.match_attachments).
    return (f"{said}, and both folders are those of invoice {a.invoice_id}: their names "
            f"differ {how_spelled(here, there)} — rename one of them, or move the files of "
            "one folder into the other")


def sent_names_distinct(bundle: Bundle, safe: bool) -> Bundle:
    """What goes out for one invoice goes out under distinct names, conversions included.

    distinct_names checked the names on disk; an image converted to PDF is sent
    under a new name, which convert.converted_name keeps apart from the others
    wherever it can. Anything left (a converted 'scan.png.pdf' beside a file of
    that name) is an error here, before a receiver or a target folder sees two
    files under one name."""
    if not any(a.converted for a in bundle.attachments):
        return bundle  # the sent names are the names distinct_names kept apart
    taken: dict[tuple[str, str], Attachment] = {}
    findings: list[Finding] = []
    for a in bundle.attachments:
        sent = a.converted.name if a.converted else a.original_name
        key = (a.invoice_id, fold_key(sent_name(sent, safe)))
        clash = taken.setdefault(key, a)
        if clash is not a:
            findings.append(_err("name-collision", a.rel, f"would be sent as {sent!r}, as "
                                 f"{clash.rel!r} is (an image is sent as its PDF) — rename "
                                 "one of them", a.invoice_id))
    return bundle.with_findings(findings) if findings else bundle



def _err(code: str, file: str, message: str, invoice_id: str | None = None) -> Finding:
    return Finding(code, file, message, "error", invoice_id)
