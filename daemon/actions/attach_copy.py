"""How `outboxd attach` puts its file into a sidecar, once the command has decided where.

Order, so that the daemon never sees half of it settled: the copy is
written under an in-progress name (`*.tmp`, which keeps the bundle from
settling), then attachments.toml is replaced atomically, then the copy is
renamed into place without ever replacing a file; a rename that fails then (a file
of that name came meanwhile without the lock, the share's error) takes the entry back
(attach_notes.unrecord), so that a refusal saying "nothing was changed" is true. Killed
between the two steps, the copy's in-progress name keeps the bundle from settling with
an entry for a file not there, until the same attach run again finishes it. Those last
two steps, and
the look for a file of that name before them, hold a lock on the folder
(folderlocks.folder_locked): two attaches into one folder at once take turns, so
neither loses the other's entry, and one that finds the name taken has
written nothing. attachments.toml is a clerk's file: it is replaced only if it is
still the very file read, byte for byte (ourfiles.replace_ours); an edit saved between
the read and the write is kept and the attach refused, the copy not put in.
"""

from __future__ import annotations

import contextlib
import os
import stat
import uuid
from collections.abc import Callable
from pathlib import Path

import tomlkit

from daemon.actions.attach_notes import AttachRefused, Recorded, record, unrecord
from daemon.errors import InputError
from daemon.fs.folderlocks import folder_locked
from daemon.fs.fscopy import copy_into
from daemon.fs.fsops import open_regular
from daemon.fs.fswrite import add_group_write_fd, rename_noreplace
from daemon.fs.temps import create_locked, drop_stale_copies
from daemon.names import fold_key
from daemon.reading.lookalikes import how_spelled

# What attach never copies, whatever its name: FILE is the caller's own.
NOT_COPIED = ("symlink", "not-a-file")


def not_copied(code: str) -> str:
    """Why FILE (a NOT_COPIED `code`) is not copied, with the fix for the caller's own
    file: the daemon's ("put the file itself in the folder") points nowhere here."""
    if code == "symlink":
        # attach runs as root or the daemon's user: a link a clerk made could lead to
        # any file on the machine, and the copy would put it on the share.
        return ("is a symbolic link, and attach copies no file through a link — give the "
                "path of the file itself")
    return "is not a regular file (a folder, FIFO or device) — give the path of a file"


def copy_in(src: Path, here: Path, name: str, rel: Path, doc_type: str | None,
             note: str | None, label: str, gone: Callable[[], AttachRefused | None]) -> None:
    """src copied into the held folder `here` as name, its type and note recorded;
    `gone`: the refusal if the invoice file has left the outbox meanwhile."""
    dest = here / name
    # An attach of this name killed before its rename left its copy, whose in-progress
    # name keeps the bundle waiting for good: running it again finishes it.
    drop_stale_copies(here, name, "[0-9a-f]{8}")
    tmp = here / f".{name}.{uuid.uuid4().hex[:8]}.tmp"  # in-progress: the bundle waits
    try:
        # Locked until renamed: an attach of the same name run meanwhile leaves it be.
        with os.fdopen(create_locked(tmp), "wb") as fout:
            try:
                with open_regular(src) as fin:
                    copy_into(fin, fout)
            except InputError as exc:
                # Replaced since attach checked it: in the words of that check.
                why = not_copied(exc.code) if exc.code in NOT_COPIED else exc.message
                raise AttachRefused(f"{src}: {why}; nothing was changed") from None
            with folder_locked(int(here.name)):
                # Another attach of this name may have landed while we copied: then its
                # entry in attachments.toml is left as it wrote it.
                # Claimed by the daemon while we copied (its sidecar moved on with the
                # claim, or the folder we hold went with it): a file put in now would be
                # left behind in a sidecar of no invoice, or slip into a claimed bundle,
                # while attach said "attached".
                refusal = gone()
                if refusal is not None:
                    raise refusal
                if os.path.lexists(dest):
                    raise FileExistsError(dest)
                # One run with Timesheet.pdf, one with timesheet.pdf: each looked before
                # the other landed; the second would get the bundle quarantined.
                twin = _look_alike_of(here, name)
                if twin is not None:
                    raise AttachRefused(
                        f"{rel.parent / twin} appeared meanwhile, a name that differs from "
                        f"{name!r} {how_spelled(name, twin)}: both would get the bundle "
                        "stopped (name-collision); nothing was changed — rename FILE")
                recorded = record(here, name, doc_type, note, label) if (
                    doc_type or note) else None
                try:
                    rename_noreplace(tmp, dest)
                except OSError as exc:
                    if recorded is not None:
                        _take_back(recorded, rel, name, exc)
                    raise
    except FileExistsError:
        raise AttachRefused(f"{rel} appeared meanwhile; nothing was changed") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def _take_back(recorded: Recorded, rel: Path, name: str, exc: OSError) -> None:
    """The entry `record` wrote taken back after the copy's rename failed (exc); refused,
    saying what is left, where it cannot be."""
    left = unrecord(recorded)
    if left is None:
        return
    why = ("a file of that name appeared meanwhile" if isinstance(exc, FileExistsError)
           else exc.strerror or str(exc))
    raise AttachRefused(
        f"{rel} could not be put in ({why}), and {recorded.shown} keeps the entry attach "
        f"wrote for {name!r}: {left} — take [files.{_quoted(name)}] out of it, or the "
        "bundle is stopped for a file not there (or a file put at that name gets its type "
        "and note)") from None


def _quoted(name: str) -> str:
    """name as a TOML key, as attachments.toml shows it."""
    return tomlkit.string(name).as_string()


def _look_alike_of(folder: Path, name: str) -> str | None:
    """A name in folder that is `name` to a Windows or Mac client but not to Linux (it
    differs only in case or Unicode form), if there is one."""
    key = fold_key(name)
    with os.scandir(folder) as entries:
        return next((e.name for e in entries if e.name != name and fold_key(e.name) == key),
                    None)


def share_with_the_daemon(outbox: Path) -> Callable[[int], None] | None:
    """What to do with each folder attach makes (by its descriptor): group-writable where
    the outbox is (the tmpfiles snippet's setgid outbox gives them its group), since the
    daemon moves a sidecar into processing, which takes write permission on the folder
    itself, and under umask 027 a folder attach made as root or as a clerk would be its
    maker's alone; None where the outbox is not group-writable."""
    try:
        # The outbox itself, through the link its configured path may be (a link's own
        # mode is always rwxrwxrwx).
        if not os.stat(outbox).st_mode & stat.S_IWGRP:
            return None
    except OSError:
        return None

    def shared(fd: int) -> None:
        with contextlib.suppress(OSError):  # attached all the same; the daemon says so
            add_group_write_fd(fd)          # if it cannot move the folder
    return shared
