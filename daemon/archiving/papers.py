"""outboxd's papers in an archive entry (receipt.json, reason.json, REASON.txt): which
file at a paper's name is outboxd's own, to write again (archive_papers.write_papers) or to
remove (`outboxd retry`). The entries lie in folders people on the share write in: a
clerk's notes saved as REASON.txt, or a folder, link or FIFO of a paper's name, are
never written over nor removed."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.archiving.reasontext import reason_text
from daemon.bundle import Finding
from daemon.errors import NotOurs, describe
from daemon.fs.fsops import opened_if_regular
from daemon.fs.ourfiles import Judged, opened, remove_ours
from daemon.fs.workfolder import there
from daemon.names import fold_key

# An archive entry's name: NAME--BUNDLEID12, or NAME--BUNDLEID12-2 when the name was taken
# (archive.entry_name, and the name beside it).
ENTRY_RE = re.compile(r"^(?P<name>.+)--(?P<id>[0-9a-f]{12})(?:-\d+)?$")


def entry_bundle(name: str) -> str | None:
    """The ID12 an archive entry's name carries; None for a name outboxd never gives."""
    found = ENTRY_RE.match(name)
    return found["id"] if found else None


def paper_of(id12: str | None, paper: Mapping[str, Any]) -> bool:
    """Whether a paper (a receipt as readback.record_of reads it, a reason record) can be
    that of the bundle whose folder's name carries `id12` (a work folder's, an archive
    entry's): it names a bundle id beginning with those 12 hex digits and an invoice file
    by a plain name, each as text. Anyone who may write in the share may write a paper;
    one naming another bundle, or a path, is not taken for ours."""
    bundle_id, invoice = paper.get("bundle_id"), paper.get("invoice_file")
    return (id12 is not None and isinstance(bundle_id, str) and bundle_id.startswith(id12)
            and isinstance(invoice, str) and invoice not in ("", ".", "..")
            and "/" not in invoice and "\0" not in invoice)


# Every paper outboxd writes into a bundle's folder.
PAPER_NAMES = ("receipt.json", "reason.json", "REASON.txt")
# A bundle part that would lie at a paper's name in the work folder (and so in the
# archive entry): the invoice file, the sidecar, a marker. Its papers are never written
# over it (write_papers), so such a bundle could never be archived: refused up front.
# Attachments lie inside the sidecar, where no paper goes: any name of a paper is theirs.
PAPER_NAME_CODE = "paper-name"
PAPER_WORDS = "is one outboxd keeps for its own papers"
_WHY = (f"({', '.join(PAPER_NAMES)}), which it writes beside every bundle it moves into "
        "sent/ or quarantine/")


# Folded as a case-insensitive file system (an SMB share, a Mac) compares names: there
# Reason.TXT is REASON.txt, and outboxd's paper would land on the clerk's file.
_FOLDED = frozenset(fold_key(n) for n in PAPER_NAMES)


def is_paper_name(name: str) -> bool:
    """`name` is a paper's name in any case (bundle parts; outboxd's own papers are
    looked for under their exact names)."""
    return fold_key(name) in _FOLDED


def _in_any_case(name: str) -> str:
    return "" if name in PAPER_NAMES else (
        f" (written in other upper and lower case, but a share, as Windows and a Mac do, "
        f"takes {name} and {_paper(name)} for one name)")


def _paper(name: str) -> str:
    return next(n for n in PAPER_NAMES if fold_key(n) == fold_key(name))


def paper_name_problem(name: str) -> str | None:
    """Why an invoice file of this name is refused (left alone in the outbox), or None."""
    if not is_paper_name(name):
        return None
    return (f"the name {PAPER_WORDS} {_WHY}{_in_any_case(name)}, so a bundle with it "
            "could never be moved there — rename the file")


def paper_name_findings(parts: tuple[tuple[str, Path], ...], invoice_file: str
                        ) -> list[Finding]:
    """The `paper-name` error of each bundle part that is there and would lie at a paper's
    name beside the invoice file (`parts`: what it is, and its path in the outbox): the
    sidecar of REASON.txt.xml is REASON.txt. Held whatever [policy] invalid says
    (decide.py): quarantining it would be stuck at that very name."""
    return [Finding(PAPER_NAME_CODE, path.name,
                    f"the name of this {what} {PAPER_WORDS} {_WHY}{_in_any_case(path.name)}, "
                    f"so this bundle could never be moved there — rename {invoice_file} and "
                    f"its {what} alike to a name that is not {path.name}")
            for what, path in parts
            if is_paper_name(path.name) and _part_there(path)]


def _part_there(path: Path) -> bool:
    """Whether a bundle part is at `path`; a look the share fails (EIO, ESTALE) raises,
    named as the clerk knows it, and the bundle is read again (fsops.read_again_later):
    taken for "not there" (os.path.lexists), a part at a paper's name went unsaid, and the
    bundle, sent or quarantined, was stuck at the archive's move for that very name."""
    try:
        return there(path)
    except OSError as exc:
        exc.filename = path.name
        raise


# A receipt or reason record is a few KB; anything far larger is not one of ours.
PAPER_LIMIT = 1 << 20


def paper_look(path: Path, bundle_id: str, expected: bytes | None = None) -> Judged | None:
    """The look of replace_ours and remove_ours for a paper of the bundle whose id starts
    with `bundle_id`: the file at path, open, if it is that paper; None if nothing is
    there; NotOurs (saying what is there) for anything else, never opened if not a regular
    file. Ours: `expected` (what outboxd writes there), or its beginning (cut short, or
    padded with NULs, by a power loss before it was synced); a JSON paper that names the
    bundle (its own content tells it: a receipt, or a reason record). REASON.txt is free
    text people may add notes to: ours is `expected` or its beginning, or an earlier
    version's wording (_older_reason)."""
    file = opened(path, lambda what: NotOurs(f"{path.name} {what}, not outboxd's paper"))
    if file is None:
        return None
    fd = file.fd
    limit = max(PAPER_LIMIT, len(expected or b""))  # anything larger is not ours
    data = os.pread(fd, limit + 1, 0) if file.st.st_size <= limit else None
    # An empty file (or one of NULs) is the start of any text, so a clerk's empty file
    # of a paper's name passes for ours too, and is written over or removed. Left so on
    # purpose: it is what a power loss leaves of outboxd's own paper written unsynced
    # (archive.place syncs once, after all papers), which must not hold the bundle for
    # an admin; and an empty file holds nothing of the clerk's to lose but its name.
    if data is not None and (
            expected is not None and expected.startswith(data.rstrip(b"\0"))
            or path.name != "REASON.txt" and names_bundle(data, bundle_id)
            or path.name == "REASON.txt" and _older_reason(path, data, file.st, bundle_id,
                                                           expected)):
        return file
    os.close(fd)
    raise NotOurs(f"{path.name} is not as outboxd wrote it (edited, or someone's own file)")


# How far apart the times of REASON.txt and reason.json may lie when outboxd wrote both:
# one right after the other (a slow share takes a while), and a copy into the archive
# keeps both times (fsmove.move_tree).
_WRITTEN_TOGETHER_NS = 10 * 1_000_000_000
# The start of REASON.txt's first line in every version outboxd has had; the line goes
# on with the invoice file and "(bundle ID)", the id in full.
_HEADER = b"outboxd quarantined "


def _older_reason(path: Path, data: bytes, st: os.stat_result, bundle_id: str,
                  expected: bytes | None) -> bool:
    """Whether REASON.txt (`data`, stat `st`) is as an earlier version of outboxd wrote it
    for this bundle, whose wording of the steps differs from today's: a move waiting
    across an upgrade, or `outboxd retry` of an entry quarantined before it, must not
    wait for an admin. The steps' wording changes between versions; what does not is
    REASON.txt's first line (_HEADER, then the invoice file and "(bundle ID)") and
    reason.json, written just before it from the same record. So it is ours when its
    first line is that header naming the very bundle reason.json beside it names (this
    bundle), and its time is that of reason.json (_WRITTEN_TOGETHER_NS). A clerk's own
    notes have no such first line; a REASON.txt a clerk added lines to has a later time
    than reason.json, and stays theirs as the docs promise (folder-convention.md); so
    does one that begins with today's whole text (`expected`) and goes on, whenever the
    lines were added: that is no earlier wording."""
    first = data.split(b"\n", 1)[0]
    if not first.startswith(_HEADER) or not bundle_id or expected and data.startswith(expected):
        return False
    try:
        fd, _mode = opened_if_regular(path.parent / "reason.json")
    except OSError:
        return False
    if fd is None:
        return False  # a link, FIFO, folder …: never opened, and no reason record
    try:
        beside = os.fstat(fd)
        record = os.pread(fd, PAPER_LIMIT + 1, 0) if beside.st_size <= PAPER_LIMIT else b""
    finally:
        os.close(fd)
    named = bundle_named(record)
    return bool(named and named.startswith(bundle_id)
                and f"(bundle {named})".encode() in first
                and abs(st.st_mtime_ns - beside.st_mtime_ns) <= _WRITTEN_TOGETHER_NS)


def names_bundle(data: bytes, bundle_id: str) -> bool:
    """Whether `data` is a JSON paper (receipt or reason record) of the bundle."""
    named = bundle_named(data)
    return bool(named and bundle_id and named.startswith(bundle_id))


def bundle_named(data: bytes) -> str | None:
    """The bundle id a JSON paper names (a reason record's, a receipt's manifest's)."""
    try:
        found = json.loads(data)
        named = found.get("bundle_id") or found["manifest"]["bundle_id"]
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return named if isinstance(named, str) else None


def remove_papers(folder: Path, bundle_id: str, record: dict[str, Any] | None) -> list[str]:
    """outboxd's papers in `folder` (an entry of the bundle whose id starts with
    bundle_id) removed, each only if paper_look judges it outboxd's: REASON.txt only as
    written from `record` (reason.json's, read before anything is removed). What is left,
    each with why."""
    reason = None
    named = record.get("bundle_id") if record is not None else None
    if record is not None and isinstance(named, str) and bundle_id and \
            named.startswith(bundle_id):
        try:
            reason = reason_text(record).encode("utf-8")
        except (KeyError, TypeError, AttributeError, ValueError):
            pass  # not a whole reason record: REASON.txt is not judged by it
    left: list[str] = []
    # REASON.txt first: an earlier version's is judged by reason.json beside it.
    for name in sorted(PAPER_NAMES, key=lambda n: n != "REASON.txt"):
        why: list[str] = []

        def look(path: Path = folder / name, why: list[str] = why) -> Judged | None:
            try:
                return paper_look(path, bundle_id, reason if path.name == "REASON.txt"
                                  else None)
            except NotOurs as exc:
                why.append(str(exc))
                return None
        try:
            remove_ours(folder / name, look)
        except OSError as exc:
            why.append(f"{name}: {describe(exc, writing=True)}")
        if why:
            left.append(why[-1])
    return left
