"""Archive: move a finished bundle into sent/ or quarantine/ with its papers.

Layout (docs/folder-convention.md, After delivery): ROOT/YYYY-MM-DD/NAME--BUNDLEID12/
(UTC date, `-2`, `-3` … when taken) holding the bundle as it was in the outbox plus receipt.json,
or reason.json and REASON.txt. The papers are written into the work folder
first, so the one move that follows carries a complete archive entry; they,
the entry and its day folder are synced once, after the move (`place`).
"""

from __future__ import annotations

import errno
import filecmp
import json
import os
import shutil
import stat
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daemon.bundle import Finding, reasons_of
from daemon.errors import InputError
from daemon.fsops import (
    add_group_write,
    free_name,
    fsync_dir,
    fsync_file,
    move_tree,
    read_regular,
    refuse_links,
    write_atomic,
)
from daemon.journal.records import utc_day
from daemon.names import (
    CASE_WORDS,
    EXACT_WORDS,
    FILE_WORDS,
    FORM_WORDS,
    NAME_MAX,
    escaped_controls,
    fit_bytes,
    visible,
)
from daemon.temps import drop_unfinished

# Room left in a path component for free_name's "-NNN" and move_tree's ".NAME.partial".
_ARCHIVE_NAME_MAX = NAME_MAX - 15
# Every paper outboxd writes into a bundle's folder.
PAPER_NAMES = ("receipt.json", "reason.json", "REASON.txt")
# A receipt or reason record is a few KB; anything far larger is not one of ours.
PAPER_LIMIT = 1 << 20


def target_for(root: Path, name: str, bundle_id: str, at: str | None = None) -> Path:
    """ROOT/YYYY-MM-DD/NAME--ID12, NAME shortened if the folder name would not fit. The
    date is the UTC day of `at` (a journal time: when the bundle was delivered, or
    quarantined), else today's: the day the views count the bundle under."""
    day = utc_day(at) if at else datetime.now(UTC).strftime("%Y-%m-%d")
    tail = f"--{bundle_id[:12]}"
    return free_name(root / day, fit_bytes(name, _ARCHIVE_NAME_MAX - len(tail)) + tail)


def _holds_copy_of(target: Path, work: Path) -> bool:
    """Every file still in work is in target with the same bytes (or link text)."""
    for dirpath, _dirs, files in os.walk(work):
        for f in files:
            src = Path(dirpath, f)
            dst = target / src.relative_to(work)
            if src.is_symlink():
                if not dst.is_symlink() or os.readlink(src) != os.readlink(dst):
                    return False
            elif dst.is_symlink() or not dst.is_file() \
                    or not filecmp.cmp(src, dst, shallow=False):
                return False
    return True


def move_into_place(work: Path, target: Path, sync: bool = True) -> Path:
    """Move work → target; safe to call again after a crash at any point in it.

    Returns where the bundle now lies: `target`, or a free name beside it if
    `target` was taken by something that is not this bundle. `sync=False`
    leaves the sync of target's folder to the caller (`place`).
    """
    if not work.exists():
        if target.exists():
            return target  # an earlier run finished the move
        # Neither is there: a share that went away (processing lives on it), or
        # a folder removed by hand. Never report a move that did not happen.
        raise FileNotFoundError(errno.ENOENT, "the processing folder is not there (is the "
                                "share mounted?) and the bundle is not in the archive either",
                                str(work))
    if target.exists():
        if _holds_copy_of(target, work):
            # Crashed after the cross-file-system copy was renamed into place
            # but before (or while) the source was deleted: the target is
            # complete (it is only renamed there after every file was fsynced).
            shutil.rmtree(work)
            return target
        # Someone else's archive entry under the same name (two daemons, or a
        # duplicate archived at the same time): never delete ours for it.
        target = free_name(target.parent, target.name)
    move_tree(work, target, sync=sync)
    return target


# One encoder made once: json.dumps with any option builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False).encode


def readable_json(obj: Any, depth: int = 3, indent: str = "") -> str:
    """JSON for people on the share: dicts and lists one item per line down to `depth`,
    what lies deeper on one line. json's indent= runs its pure-Python encoder
    (about twice the CPU of this for a receipt); each piece here is one call of
    the C encoder."""
    if depth and obj and isinstance(obj, dict | list):
        inner = indent + "  "
        if isinstance(obj, dict):
            body = ",\n".join([f"{inner}{_encode(str(k))}: {readable_json(v, depth - 1, inner)}"
                               for k, v in obj.items()])
            return f"{{\n{body}\n{indent}}}"
        body = ",\n".join([inner + readable_json(v, depth - 1, inner) for v in obj])
        return f"[\n{body}\n{indent}]"
    return _encode(obj)


def _json_bytes(obj: Any) -> bytes:
    return (readable_json(obj) + "\n").encode("utf-8")


def receipt_papers(receipt: dict[str, Any]) -> dict[str, bytes]:
    return {"receipt.json": _json_bytes(receipt)}


def reason_papers(record: dict[str, Any]) -> dict[str, bytes]:
    return {"reason.json": _json_bytes(record),
            "REASON.txt": reason_text(record).encode("utf-8")}


def write_papers(folder: Path, papers: Mapping[str, bytes], sync: bool = True) -> None:
    """Each paper written whole or not at all (temp name + rename)."""
    for name, data in papers.items():
        write_atomic(folder / name, data, sync=sync)
        if name == "REASON.txt":
            # REASON.txt is for people on the share: readable by the group as well.
            os.chmod(folder / name, 0o640)


def _someone_elses(entry: Path, papers: Mapping[str, bytes], bundle_id: str) -> bool:
    """The entry's first paper is readable and names another bundle: not ours to touch."""
    try:
        # Never through a link, never a FIFO or device a share user put there. No paper
        # limit: a receipt keeps the receiver's whole answer, and another bundle's large
        # receipt taken for "not readable" would be written over.
        data = read_regular(entry / next(iter(papers)))
        if data is None:
            return False
        found = json.loads(data)
        named = found.get("bundle_id") or found["manifest"]["bundle_id"]
    except (OSError, InputError, ValueError, KeyError, TypeError, AttributeError,
            RecursionError):
        # Missing, cut short by a power loss, or not ours to judge (RecursionError: JSON
        # nested deeper than the parser goes, which no receipt or reason is): rewrite.
        return False
    return named != bundle_id


def _make_folder(folder: Path) -> None:
    """The day folder of an archive entry; when it is new, its name is synced too.
    Never one that is a link, nor inside an archive folder that is one: people on the
    share may write in sent/ and quarantine/, and a link there could lead anywhere."""
    refuse_links((folder.parent,))
    try:
        os.mkdir(folder)
    except FileExistsError:
        refuse_links((folder,))
        return
    except FileNotFoundError:
        folder.mkdir(parents=True, exist_ok=True)
    fsync_dir(folder.parent)


def place(work: Path, target: Path, papers: Mapping[str, bytes], bundle_id: str) -> Path:
    """Write the papers into the work folder and move it to target; where the entry now
    lies (see move_into_place). On return the papers, the entry and its folder are on
    disk. Safe to call again after a crash or power loss at any point: the papers are
    written from what the caller kept (the journal), not from what the disk holds.

    The papers get no sync of their own before the move: one sync of each paper, of
    the entry and of its folder after the rename covers them and the rename at once
    (on ext4 the first of them commits everything, the others find nothing to do),
    instead of a sync of the paper, the work folder and the target folder in turn.
    """
    if os.path.lexists(work):
        # A kill inside an earlier write of the papers (a retried archive) left its temp
        # file here; it must not travel into the entry.
        drop_unfinished(work, papers)
        write_papers(work, papers, sync=False)
        _make_folder(target.parent)
        placed = move_into_place(work, target, sync=False)
    else:
        # Moved before a crash (raises when the target is not there either). A power
        # loss may have kept the rename and lost the papers' bytes, which were not
        # synced yet: write them again, unless the folder turns out to be another
        # bundle's entry that took this name.
        placed = move_into_place(work, target, sync=False)
        if _someone_elses(placed, papers, bundle_id):
            return placed
        drop_unfinished(placed, papers)
        write_papers(placed, papers, sync=False)
    _writable_as_root(placed)
    for name in papers:
        fsync_file(placed / name)
    fsync_dir(placed)
    fsync_dir(placed.parent)
    return placed


def _writable_as_root(placed: Path) -> None:
    """The entry and its day folder group-writable when the archive root is (the tmpfiles
    snippet makes quarantine/ so, sent/ not): the people on the share fix a quarantined
    bundle where it lies and move it back into the outbox, which takes write permission
    on the folder it leaves. umask 027 would make every folder the daemon creates
    read-only for them."""
    try:
        if not os.lstat(placed.parent.parent).st_mode & stat.S_IWGRP:
            return
        for folder in (placed, placed.parent):
            add_group_write(folder)  # never through a link put in the entry's place
    except OSError:
        pass  # the bundle is archived; a folder someone else owns keeps its mode


def reason_record(bundle_id: str, invoice_file: str, reasons: list[Finding],
                  quarantined_at: str, accepted: list[dict[str, Any]] | None = None,
                  invoice_ids: list[str] | None = None) -> dict[str, Any]:
    """reason.json's content. `quarantined_at` comes from the journal (when the bundle
    entered quarantining), not from the clock: a move retried after a crash must write
    the same papers, or the complete copy an earlier run left in quarantine/ no longer
    matches the work folder and a second entry is made beside it. `invoice_ids` (the
    journal's, too): the invoices the file holds, so that a script learns which invoices
    were stopped without reading the invoice file (a PDF's ids come from its text).

    `accepted`: the journal's records of the documents the receiver already took
    (ubl-embedded, `Journal.documents_of`). They are delivered; the
    papers must say so, or a clerk who fixes and re-exports the file sends them twice.
    reason.json then gains `accepted_documents` (invoice id, receipt id, Idempotency-Key,
    status, document name); without any, it keeps the fields folder-convention.md lists."""
    record: dict[str, Any] = {
        "bundle_id": bundle_id, "invoice_file": invoice_file,
        "invoice_ids": list(invoice_ids or ()),
        "reasons": reasons_of(reasons), "quarantined_at": quarantined_at}
    if accepted:
        record["accepted_documents"] = [
            {"invoice_id": d.get("invoice_id"), "receipt_id": d.get("receipt_id"),
             "idempotency_key": d.get("idempotency_key"), "status": d.get("status"),
             "name": d.get("name")} for d in accepted]
    return record


def reason_of(folder: Path) -> dict[str, Any] | None:
    """A folder's reason.json as written by reason_papers, None if it has none.

    Raises InputError when it is there but not a regular file that can be read
    (never opened: a link or a FIFO a share user put there), ValueError (or
    RecursionError) when it is not a reason record.
    """
    path = folder / "reason.json"
    if not os.path.lexists(path):
        return None
    data = read_regular(path, str(path), limit=PAPER_LIMIT)
    if data is None:
        raise ValueError(f"{path} is larger than a reason record can be")
    reason = json.loads(data)
    if not isinstance(reason, dict):
        raise ValueError(f"{path} holds no reason record (not a JSON object)")
    return reason


def _renamed(invoice_file: str, which: str, messages: list[str]) -> str:
    """How to rename `which`, by what the look-alikes' messages say differs. A case
    mistake (Windows takes the names for one) is mended by renaming on any computer;
    accents written otherwise only by typing the name again on the computer that named
    the invoice file. A message without either word (none is made so) is taken for
    accents, as before case variants were found."""
    if any(EXACT_WORDS in m for m in messages):
        # A space or dot at an end, an extension, no sidecar suffix: the line above
        # gives the sidecar's name (this record does not keep it).
        return (f"rename {which} to the sidecar's name its line above gives, exactly as "
                "written there, with nothing before or after it")
    case = any(CASE_WORDS in m for m in messages)
    form = any(FORM_WORDS in m for m in messages) or not case
    if not form:
        return (f"rename {which} so that each letter is in upper or lower case as in the "
                "invoice file's name (Windows takes the two names for one, Linux, where "
                "outboxd runs, for two)")
    return (f"rename {which} by typing its name again on the computer that named "
            f"{invoice_file}, so that its accents "
            f"{'and its upper and lower case letters ' if case else ''}are written as in "
            "the invoice file's name")


def _folder_step(invoice_file: str, folders: list[tuple[str, str]]) -> str:
    """Step 1 for look-alike folders: one is renamed; several cannot all take the one
    name of the sidecar, so they are merged into one (or the extra ones removed)."""
    messages = [m for _, m in folders]
    if len(folders) == 1:
        rename = _renamed(invoice_file, visible(folders[0][0]), messages)
        return (f"In the outbox, {rename}. If this folder holds a folder of that name too, "
                "move the look-alike's files into that folder here instead, then delete the "
                "look-alike from the outbox.")
    rename = _renamed(invoice_file, "one of them", messages)
    return ("In the outbox, merge those folders into one: only one folder can have the "
            "sidecar's name, so they cannot each be renamed to it. "
            f"{rename[0].upper()}{rename[1:]}, move the "
            "files of the others into it and delete the emptied folders (or delete a "
            "folder that holds nothing for this invoice). If this folder holds a folder of "
            "that name too, move all their files into that folder here instead, then delete "
            "the look-alikes from the outbox.")


def _look_alike_steps(invoice_file: str, look_alikes: list[str],
                      messages: list[str]) -> list[str]:
    """What to do when a look-alike of the sidecar (`sidecar-spelling`) is among the
    reasons. It was no part of the bundle, so the claim left it in the outbox: "move the
    sidecar folder back" would send the clerk looking for it here, and the invoice file
    moved back before the look-alike is mended is quarantined again at once. A folder is
    renamed (several are merged); a file (a sidecar is a folder) goes into the sidecar
    folder, or away."""
    one = len(look_alikes) == 1
    folders = [(n, m) for n, m in zip(look_alikes, messages, strict=True)
               if not m.startswith(FILE_WORDS)]
    files = [n for n, m in zip(look_alikes, messages, strict=True) if m.startswith(FILE_WORDS)]
    steps = [_folder_step(invoice_file, folders)] if folders else []
    if files:
        which = visible(files[0]) if len(files) == 1 else "each of those files"
        steps.append(f"In the outbox, move {which} into the sidecar folder its line above "
                     "names (make that folder if it is not there), under a name with its "
                     "type's extension (.pdf, .tif …), or remove it if it is no attachment.")
    steps += ["Fix anything else listed above.",
              "Then move the invoice file, and its sidecar folder if this folder holds one, "
              "from this folder back into the outbox;"]
    return ["", "Nothing was sent. Not everything is in this folder: outboxd did not take "
            f"the look-alike{'' if one else 's'} named below as the sidecar, so "
            f"{'it was' if one else 'they were'} not moved here. "
            f"{'It is' if one else 'They are'} still in the outbox, under "
            f"{'that name' if one else 'those names'}"
            + ("" if files else f", with everything in {'it' if one else 'them'}") + ":",
            *(f"- {visible(name)}" for name in look_alikes),
            "", f"To send {invoice_file} with {'its' if one else 'their'} files:",
            *(f"{n}. {step}" for n, step in enumerate(steps, start=1)),
            "outboxd will check and send them again.", ""]


def reason_text(record: dict[str, Any]) -> str:
    """REASON.txt, each line as `outboxd status` and the status page show names and
    answers (escaped_controls): a rejection quotes the receiver's answer, whose control
    characters (an escape sequence, a NUL, a line break) must neither reach the terminal
    that shows the file nor break its lines; and a name's bidirectional controls
    ("INV-7" + U+202E + "lmx.pdf" reads "INV-7fdp.xml") show as \\u202e, in the first
    line and the look-alikes' lines as in the reasons."""
    return "\n".join(escaped_controls(line) for line in _reason_lines(record))


def _reason_lines(record: dict[str, Any]) -> list[str]:
    lines = [f"outboxd quarantined {record['invoice_file']} (bundle {record['bundle_id']})",
             f"at {record['quarantined_at']} for these reasons:", ""]
    for r in record["reasons"]:
        lines.append(f"- {r['file']}: {r['message']}  [{r['code']}]")
    accepted = record.get("accepted_documents") or []
    # Found before the claim, so never with documents accepted (those come of a delivery).
    spelling = [r for r in record["reasons"] if r["code"] == "sidecar-spelling"]
    if spelling and not accepted:
        return lines + _look_alike_steps(
            record["invoice_file"], [r["file"] for r in spelling],
            [str(r["message"]) for r in spelling])
    if not accepted:
        # Not every quarantined bundle has a sidecar (one without attachments has none).
        lines += ["", "Nothing was sent. Fix what is listed above, then move the invoice file, "
                  "and its sidecar folder if this folder holds one, from this folder back "
                  "into the outbox;",
                  "outboxd will check and send them again.", ""]
        return lines
    # Part of the file is with the receiver already: the one thing a clerk must not do
    # is send those invoices again, so they are named first, with their receipts.
    ids = ", ".join(str(d["invoice_id"]) for d in accepted)
    one = len(accepted) == 1
    them = f"invoice {ids}" if one else f"invoices {ids}"
    lines += ["", "The receiver has ACCEPTED these invoices of this file — they are "
              "delivered; do NOT send them again:"]
    for d in accepted:
        lines.append(f"- invoice {d['invoice_id']}: receipt {d['receipt_id'] or '(none given)'}"
                     f" (HTTP {d['status']}, document {d['name']}, Idempotency-Key "
                     f"{d['idempotency_key']})")
    lines += ["No other invoice of this file was delivered.", "",
              "Fix what is listed above, then move the invoice file, and its sidecar folder "
              f"if this folder holds one, from this folder back into the outbox without "
              f"changing {them} in it:",
              f"outboxd will not deliver {'it' if one else 'them'} twice (each document's "
              "Idempotency-Key is made from its bytes, and the receiver answers a key it "
              "has seen as already delivered).",
              f"Do NOT export the file again with {them} in it: a new export is a new "
              f"document to the receiver, which would then have {them} twice.", ""]
    return lines
