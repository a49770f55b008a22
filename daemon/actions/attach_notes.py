"""`outboxd attach`'s entry in a folder's attachments.toml: type and note for the file
put in, added to what a clerk wrote there (comments and other entries kept: tomlkit
round-trips them), and written only over the very file read (ourfiles.replace_ours), so
that an edit saved meanwhile is never lost."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError
from tomlkit.items import AoT, InlineTable, Item, Table

from daemon.errors import InputError, NotOurs, OutboxdError, not_utf8
from daemon.fs.fsops import open_regular, opened_if_regular
from daemon.fs.fsread import read_bounded
from daemon.fs.ourfiles import Judged, remove_ours, replace_ours
from daemon.fs.workfolder import there
from daemon.names import nfc
from daemon.reading.notes import MANIFEST_NAME, MAX_NOTES_BYTES
from daemon.sizes import limit_words


class AttachRefused(OutboxdError):
    """The attachment cannot be added as asked; nothing was changed."""


def _not_a_table(item: object) -> str:
    """What is wrong with a `files` that is not a table, as the file says it."""
    if isinstance(item, AoT):
        return "[[files]] makes files an array of tables, not a table"
    if isinstance(item, bool):  # tomlkit hands out TOML booleans as plain bools
        text = "true" if item else "false"
    else:
        text = item.as_string().strip() if isinstance(item, Item) else repr(item)
    return f"files = {text[:40]}{'…' if len(text) > 40 else ''} is not a table"


@dataclass(frozen=True)
class Recorded:
    """What `record` wrote, for `unrecord` to take back: the file, its name for
    messages, the bytes it replaced (None: there was no file) and the file written."""

    path: Path
    shown: str
    before: bytes | None
    written: os.stat_result


def record(folder: Path, name: str, doc_type: str | None, note: str | None,
           label: str | None = None) -> Recorded:
    """Set [files."NAME"] type/note in folder/attachments.toml, keeping everything else;
    `label`: the folder's name for messages, when `folder` is a held path."""
    path = folder / MANIFEST_NAME
    shown = f"{label or folder.name}/{MANIFEST_NAME}"
    read: tuple[os.stat_result, bytes] | None = None  # what the entry is added to
    # A look the share fails raises (nothing changed): taken for none (os.path.lexists),
    # the entry went into a new file whose replace then found the clerk's in its place.
    if there(path):
        try:
            with open_regular(path, shown) as fh:
                raw = read_bounded(fh, MAX_NOTES_BYTES)  # anyone on the share writes it
                if raw is not None:
                    read = os.fstat(fh.fileno()), raw
            if raw is None:
                raise AttachRefused(f"{shown} is larger than {limit_words(MAX_NOTES_BYTES)}, "
                                    "far more than notes on attachments need — keep only "
                                    "the notes and the channel; nothing was changed")
            # As the daemon reads it (reading/notes.py): past a byte order mark.
            doc = tomlkit.parse(raw.decode("utf-8").removeprefix("\ufeff"))
        except UnicodeDecodeError as exc:
            raise AttachRefused(f"{shown} {not_utf8(exc)}; nothing was changed") from None
        except (InputError, TOMLKitError) as exc:
            raise AttachRefused(f"{shown} cannot be read ({exc}) — fix it first; nothing "
                                "was changed") from None
    else:
        doc = tomlkit.document()
    files = doc.get("files")
    if files is None:
        files = tomlkit.table(is_super_table=True)
        doc["files"] = files
    elif not isinstance(files, Table | InlineTable):
        # `files = 5`, `[[files]]`: what `outboxd check` reports as attachments-toml-invalid;
        # adding to it would be a TypeError, and guessing what was meant could lose entries.
        raise AttachRefused(f"{shown}: {_not_a_table(files)} — allowed: channel, "
                            "[files.\"NAME\"] with type and note; fix it first (outboxd check "
                            "reports it as attachments-toml-invalid); nothing was changed")
    # An inline table (`files = {…}`) can hold only inline tables.
    entry = tomlkit.inline_table() if isinstance(files, InlineTable) else tomlkit.table()
    if doc_type:
        entry["type"] = doc_type
    if note:
        entry["note"] = note
    files[name] = entry
    try:
        # It is a clerk's file: what replaces it must be what was read plus the entry.
        written = replace_ours(path, tomlkit.dumps(doc).encode("utf-8"),
                               lambda: _as_read(path, read))
    except NotOurs:
        raise AttachRefused(f"{shown} was changed or replaced while attach added to it, so "
                            "it was left as it now is and the file was not copied in; "
                            "nothing was changed — attach again") from None
    return Recorded(path, shown, None if read is None else read[1], written)


def unrecord(rec: Recorded) -> str | None:
    """attachments.toml put back as `record` found it (removed where it made it), when
    the copy could not be put in after all: an entry left for it would get the bundle
    stopped for a file not there, or give a file that took its name this one's type and
    note. Only the very file `record` wrote is replaced; None once done, else why it was
    left (changed meanwhile — a clerk's edit is never lost — or the share's error)."""
    def still_ours() -> Judged:
        try:
            fd, _mode = opened_if_regular(rec.path)
        except FileNotFoundError:
            raise NotOurs("removed meanwhile") from None
        if fd is None:
            raise NotOurs("another file is there now")
        now = Judged.of(fd)
        if not Judged(fd, rec.written).is_it(now.st):
            os.close(fd)
            raise NotOurs("changed meanwhile")
        return now
    try:
        if rec.before is None:
            remove_ours(rec.path, still_ours)
        else:
            replace_ours(rec.path, rec.before, still_ours)
    except NotOurs:
        return "it was changed meanwhile, so attach left it as it now is"
    except OSError as exc:
        return f"it could not be put back ({exc.strerror or exc})"
    return None


def _as_read(path: Path, read: tuple[os.stat_result, bytes] | None) -> Judged | None:
    """The look of replace_ours for attachments.toml: the very file `read` (same file,
    unchanged, same bytes), open; None if there was none and still is none; NotOurs if
    anything else is there now (a clerk's edit saved meanwhile, which is never lost)."""
    try:
        fd, _mode = opened_if_regular(path)
    except FileNotFoundError:
        if read is None:
            return None
        raise NotOurs(f"{MANIFEST_NAME}: removed meanwhile") from None
    if fd is None or read is None:
        if fd is not None:
            os.close(fd)
        raise NotOurs(f"{MANIFEST_NAME}: another file is there now")
    now = Judged.of(fd)
    st, raw = read
    # Bytes compared too: an edit in place within the clock's tick keeps mtime and size.
    if not Judged(fd, st).is_it(now.st) or os.pread(fd, len(raw) + 1, 0) != raw:
        os.close(fd)
        raise NotOurs(f"{MANIFEST_NAME}: changed meanwhile")
    return now


def records(folder: Path, name: str, doc_type: str | None, note: str | None) -> bool:
    """Whether folder/attachments.toml already gives the file `name` this type and note
    (each only where asked for): what an attach run again after it landed finds. One that
    cannot be read records nothing."""
    if not (doc_type or note):
        return True
    try:
        with open_regular(folder / MANIFEST_NAME) as fh:
            raw = read_bounded(fh, MAX_NOTES_BYTES)
        files = tomlkit.parse((raw or b"").decode("utf-8")).get("files")
    except (OSError, InputError, UnicodeDecodeError, TOMLKitError):
        return False
    if not isinstance(files, Table | InlineTable):
        return False
    entry = next((v for k, v in files.items() if nfc(k) == nfc(name)), None)
    return isinstance(entry, Table | InlineTable) and all(
        entry.get(key) == value for key, value in (("type", doc_type), ("note", note))
        if value)

