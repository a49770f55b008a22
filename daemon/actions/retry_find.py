"""Which quarantine folder `outboxd retry` is to move back (retry_plan.py says what goes
back, and retry.py moves it): the folder a person names by its path, its name
(NAME--3fa2b1c4d5e6), a bundle id (12 to 64 hex characters, checked against reason.json
past the 12 of the name), or an invoice id a quarantined bundle holds (named, never
moved). Each way a reference fails is said with what to give instead.

quarantine/ is writable by the people on the share: its folders are listed without
following links, and reason.json is read through fsread.read_regular (reason_of), so a
FIFO, link or device of that name is never opened.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from daemon.archiving.archive_papers import reason_of
from daemon.archiving.papers import ENTRY_RE
from daemon.configuration.config import Settings
from daemon.errors import InputError, OutboxdError, UsageError
from daemon.fs.fdnames import shown_name
from daemon.fs.fsops import SHARE_AWAY
from daemon.fs.workfolder import there

FOLDER_RE = ENTRY_RE  # NAME--BUNDLEID12, or NAME--BUNDLEID12-2 when the name was taken
DAY_RE = re.compile(r"\d{4}-\d{2}-\d{2}")


class RetryRefused(OutboxdError):
    """A retry that would replace something in the outbox, or cannot tell what to move."""


def share_failed(exc: OSError, moved: int = 0) -> RetryRefused:
    """A look the share failed (EIO, ESTALE …: SHARE_AWAY) while retry found or planned a
    bundle: the line names what could not be read and whom to ask. Taken for "not
    there", it said "is not a quarantine folder" (exit 2) or "cannot tell the invoice
    file (none)", and a reason.json that could not be read let a bundle go back that
    it would have refused; raised bare, the admin was told to check permissions and
    disk space. `moved`: bundles of the command already back in the outbox."""
    kept = "nothing more was moved" if moved else "nothing was moved"
    name = shown_name(exc.filename) if exc.filename else "the quarantine folder"
    return RetryRefused(f"cannot read {name} ({exc.strerror or exc}), so {kept} — is the "
                        "share mounted and reachable? Check it (findmnt, the server's or "
                        "NAS's state), then run outboxd retry again")


def _strict(path: Path, kind: Callable[[int], bool], look: Callable[[Path], os.stat_result]
            ) -> bool:
    """Whether `look` finds `kind` at `path`; a look the share fails raises, where
    os.path.isdir and fsops.is_regular_file answer False (retry would then refuse or
    decide on a bundle it could not see)."""
    try:
        return kind(look(path).st_mode)
    except OSError as exc:
        if exc.errno in SHARE_AWAY:
            raise
        return False


def _is_dir(path: Path) -> bool:
    """os.path.isdir(path), but a look the share fails raises."""
    return _strict(path, stat.S_ISDIR, os.stat)


def is_file(path: Path) -> bool:
    """A regular file at `path` (never through a link); a look the share fails raises."""
    return _strict(path, stat.S_ISREG, os.lstat)


def quarantined_folders(root: Path) -> list[Path]:
    """Every QUARANTINE/YYYY-MM-DD/NAME--ID12 folder (never following links)."""
    out: list[Path] = []
    if not os.path.isdir(root):
        return out
    for day in sorted(root.iterdir()):
        if day.is_dir() and not day.is_symlink():
            out += [f for f in sorted(day.iterdir()) if f.is_dir() and not f.is_symlink()
                    and FOLDER_RE.match(f.name)]
    return out


def find(ref: str, settings: Settings) -> Path:
    """A quarantine folder from a path, a folder name, or a bundle id (12+ hex chars)."""
    root = settings.quarantine_dir.resolve()
    as_path = Path(os.path.abspath(ref))
    # os.path's isdir and islink, not Path's: on Python 3.11 those raise for a name over
    # 255 bytes (ENAMETOOLONG), and `retry NAME` ended "File name too long … check that
    # the disk has space" (exit 1) instead of saying no such bundle is in quarantine.
    if os.sep in ref:
        try:
            there(as_path)
        except OSError as exc:
            if exc.errno in SHARE_AWAY:
                raise  # said as the share's (retry.run), not as "no such folder"
    if os.sep in ref or os.path.isdir(as_path):
        if os.sep not in ref and not os.path.islink(as_path) \
                and as_path.resolve().parent.parent != root \
                and (also := _named(ref, quarantined_folders(root))):
            raise _here_and_quarantined(ref, as_path, also, root)
        if not os.path.lexists(as_path) and _was_one(as_path, root):
            # Moved back by an earlier retry (or by hand): what a name or an id of it
            # says (exit 1), so that a script sees one code for one situation.
            raise _not_in_quarantine(ref, root)
        if not _is_dir(as_path) or os.path.islink(as_path):
            raise UsageError(f"retry: {ref} is not a quarantine folder"
                             + (_link_to_one(as_path, root) or _link_words(as_path)
                                + _which_instead(as_path, root)))
        if as_path.resolve().parent.parent != root:
            raise UsageError(_not_a_bundles_folder(ref, as_path.resolve(), root))
        return as_path.resolve()
    folders = quarantined_folders(root)
    hits = _named(ref, folders)
    if not hits:
        raise _not_in_quarantine(ref, root, _holding(ref, folders))
    if len(hits) > 1:
        raise RetryRefused(f"{ref!r} names {len(hits)} quarantined folders: "
                           f"{', '.join(str(h.relative_to(root)) for h in hits)} — give the "
                           "folder itself")
    return hits[0]


def _named(ref: str, folders: list[Path]) -> list[Path]:
    """The quarantine folders `ref` names as a folder name or a bundle id (12+ hex)."""
    key = ref.strip().lower()
    if re.fullmatch(r"[0-9a-f]{12,64}", key):
        return [f for f in folders if FOLDER_RE.match(f.name)["id"] == key[:12]  # type: ignore[index]
                and _id_fits(f, key)]
    return [f for f in folders if f.name == ref]


def _here_and_quarantined(ref: str, here: Path, hits: list[Path], root: Path
                          ) -> RetryRefused:
    """A bare name that is a folder in the current directory, outside this quarantine
    (another outbox's quarantine, a copy taken to look at), and names a quarantined
    bundle too: "is not in the quarantine folder" sent the admin away from the bundle,
    and retrying that one could move what another outbox's admin did not mean."""
    paths = "; ".join(f"outboxd retry {shlex.quote(str(h))}" for h in hits)
    return RetryRefused(f"{ref!r} is a folder here ({here}), which is not in the quarantine "
                        f"folder {root}, and names the quarantined "
                        f"{'bundle' if len(hits) == 1 else 'bundles'} "
                        f"{', '.join(str(h.relative_to(root)) for h in hits)}; nothing was "
                        f"moved — give the path of the one to move back ({paths}), or, for "
                        "the folder here, the configuration of its outbox (-c FILE)")


def _not_in_quarantine(ref: str, root: Path,
                       holding: list[tuple[Path, list[str]]] | None = None) -> RetryRefused:
    if holding:
        return RetryRefused(_holding_words(ref, root, holding))
    return RetryRefused(f"no quarantined bundle {ref!r} in {root} (one moved back into "
                        "the outbox is no longer there) — give the folder, its name "
                        "(NAME--3fa2b1c4d5e6), or the 12-character id that follows '--' in "
                        "that name")


def _holding(ref: str, folders: list[Path]) -> list[tuple[Path, list[str]]]:
    """The quarantined bundles whose reason.json lists `ref` among their invoice ids, with
    those ids: a person names the invoice they were asked about (B-0023), not the file
    it came in. Only named, never moved: reason.json is the share's to edit."""
    out = []
    for folder in folders:
        record = read_reason(folder)
        ids = record.get("invoice_ids") if record is not None else None
        if isinstance(ids, list) and ref.strip() in ids:
            out.append((folder, [str(i) for i in ids]))
    return out


def _holding_words(ref: str, root: Path, holding: list[tuple[Path, list[str]]]) -> str:
    """Which quarantined bundle holds the invoice `ref`, and the command that retries it.
    Not retried here: a file of several invoices goes back whole, and the person named
    one invoice, not the others that would go with it."""
    wanted, said, several = ref.strip(), [], False
    for folder, ids in holding:
        others = [i for i in ids if i != wanted]
        several = several or bool(others)
        holds = (f", with {', '.join(others[:5])}{' and more' if len(others) > 5 else ''}"
                 if others else "")
        bundle = FOLDER_RE.match(folder.name)["id"]  # type: ignore[index]
        said.append(f"{folder.relative_to(root)}{holds} (to retry it: outboxd retry {bundle})")
    which = "the quarantined bundle" if len(said) == 1 else "the quarantined bundles"
    whole = (" — a file of several invoices goes back whole, all of them with it; nothing "
             "was moved" if several else " — nothing was moved")
    return (f"no quarantined bundle {ref!r} in {root}, but the invoice {wanted!r} is in "
            f"{which} {'; '.join(said)}{whole}")


def _which_instead(path: Path, root: Path) -> str:
    """For a file (a link, a FIFO) in a quarantined bundle's folder: that folder to give
    instead (an invoice file is what a person sees of a bundle, and names); else ""."""
    here = Path(os.path.realpath(path.parent)) / path.name
    for above in here.parents:
        if _was_one(above, root) and os.path.isdir(above) and not os.path.islink(above):
            return f", but is in one — give that folder: outboxd retry {shlex.quote(str(above))}"
    return ""


def _link_words(path: Path) -> str:
    """For a link: that it is one, which retry never follows; else ""."""
    # Never followed, not even into quarantine/: it is writable from the share, so a
    # link named as one bundle's folder may lead to another's, which is not what the
    # person named.
    return ": it is a symbolic link, and retry follows none" if os.path.islink(path) else ""


def _link_to_one(path: Path, root: Path) -> str:
    """For a link to a quarantined bundle's folder: that folder to give instead (the
    person may well mean it, and can say so by giving it); else ""."""
    if not os.path.islink(path):
        return ""
    real = path.resolve()
    if not (_was_one(real, root) and os.path.isdir(real)):
        return ""
    return (f"{_link_words(path)} — give the folder it leads to: outboxd retry "
            f"{shlex.quote(str(real))}")


def _not_a_bundles_folder(ref: str, real: Path, root: Path) -> str:
    """Why a folder is not one to retry; the quarantine folder itself and its day folders
    are in it, and were told "is not in the quarantine folder"."""
    if real == root:
        return (f"retry: {ref} is the quarantine folder itself, not a bundle's folder — give "
                "the folder of each bundle to move back (DAY/NAME--3fa2b1c4d5e6 in it), its "
                "name, or its 12-character id (outboxd status lists them)")
    if real.parent == root:
        return (f"retry: {ref} is a day folder of the quarantine folder, not a bundle's "
                f"folder — give the folders in it of the bundles to move back "
                f"(ls {shlex.quote(str(real))})")
    return f"retry: {ref} is not in the quarantine folder {root}"


def _was_one(path: Path, root: Path) -> bool:
    """Whether a path that is not there is shaped as a quarantine folder outboxd makes:
    ROOT/YYYY-MM-DD/NAME--ID12 (its day folder may be gone with it)."""
    path = path.resolve()
    return (path.parent.parent == root and DAY_RE.fullmatch(path.parent.name) is not None
            and FOLDER_RE.match(path.name) is not None)


def _id_fits(folder: Path, key: str) -> bool:
    """Whether the id given (more than the folder name's 12 characters: a full id pasted
    from `status --json` or a log) is the one reason.json records. A mistyped or other
    bundle's id that only shares the first 12 characters must not move this one; a
    folder without a readable reason.json is judged by its name alone."""
    if len(key) <= 12:
        return True
    recorded = recorded_id(folder)
    return recorded is None or recorded.lower().startswith(key)


def read_reason(folder: Path) -> dict[str, Any] | None:
    """The folder's reason.json, None where there is none to read."""
    try:
        return reason_of(folder)
    except OSError as exc:
        if exc.errno in SHARE_AWAY:
            # Not "none": one that says delivery_outcome_unknown refuses the bundle.
            raise
        return None
    except (InputError, ValueError, RecursionError):
        return None


def recorded_id(folder: Path) -> str | None:
    """The bundle id the folder's reason.json records; None where there is none to read
    (no reason.json, one that is no file, cut short or edited)."""
    record = read_reason(folder)
    recorded = record.get("bundle_id") if record is not None else None
    return recorded if isinstance(recorded, str) else None
