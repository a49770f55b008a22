"""The folders a configuration names, as the disk has them: the outbox there (a share
that is not mounted leaves its mount point missing), the folders the daemon writes to
created and writable, never through a link, and the processing folder on the outbox's
file system (claims are renames). `config --check` asks the same without creating
anything (folder_problems)."""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from pathlib import Path

from daemon.configuration.config import Settings
from daemon.configuration.daemonuser import this_user, write_access_fix
from daemon.errors import (
    NO_ROOM,
    ConfigError,
    FolderNotMade,
    describe,
    double_quoted,
    refused,
    unquoted,
)
from daemon.fs.fsops import SHARE_AWAY
from daemon.fs.fswrite import folders_below, refuse_links


def outbox_missing(outbox: Path) -> str | None:
    """What is wrong with `outbox` as the outbox, with what to check, to follow "the
    outbox PATH"; None if it is a folder. A share that is not mounted leaves its mount
    point missing or empty: "create it" alone would have files dropped on the local disk,
    where the clerks never see them."""
    try:
        if outbox.is_dir():
            return None
        why = "does not exist or is not a folder"
    except OSError as exc:  # EACCES on a parent, a stale NFS handle: is_dir raises those
        why = f"cannot be looked at ({exc.strerror or exc})"
    return (f"{why} — is its share not mounted? Mount it (findmnt lists what is mounted) "
            "or fix the path; create the folder only if the outbox is a plain local one")


def written_folders(settings: Settings) -> tuple[tuple[Path, str], ...]:
    """The folders the daemon creates and writes to, each with the key that names it."""
    return ((settings.sent_dir, "[paths] sent"), (settings.quarantine_dir, "[paths] quarantine"),
            (settings.processing_dir, "[paths] processing"),
            (settings.paths.state_dir, "[paths] state_dir"))


def _unwritable(settings: Settings, key: str, folder: Path, at: Path, read_only: bool) -> str:
    """The line for a folder this user cannot write in, or (at: its nearest existing
    ancestor) cannot create: the folder that refused, whom, and the fix. A folder the admin
    never named is said to be the default: "fix [paths] processing" sent admins to a key
    they had not set, where the fix was the outbox's permissions."""
    named = set_by_admin(settings, key)
    head = _head(settings, key, folder, "write in" if at == folder else "create")
    also = f", or fix {key}" if named else (
        "" if key == "[paths] processing" else f", or set {key} to a folder it may write")
    if read_only:
        return (f"{head}: {unquoted(str(at))} is on a read-only file system — mount it "
                "read-write, or under systemd add it to the unit's ReadWritePaths= "
                f"(systemctl edit outboxd){also}")
    user, group = this_user()
    where = unquoted(str(at))
    if at == settings.outbox.path:
        fix = (f"give {user} write access to the outbox: outboxd makes .outboxd/ in it, "
               "moves each bundle out of it and writes the status page there (e.g. "
               f"chgrp {group} {where} && chmod 2770 {where}; on a CIFS mount, its gid= and "
               "dir_mode= options)")
    elif at == folder:
        fix = write_access_fix(user, group, where)
    else:
        fix = (f"create it for that user (install -d -o {user} -g {group} "
               f"{unquoted(str(folder))}) or give {user} write access to {where}")
    return f"{head}: {where} is not writable by {user}, the user outboxd runs as here — {fix}{also}"


# The keys whose folder has a default derived from the outbox, with their field.
_DEFAULTED = {"[paths] sent": "sent", "[paths] quarantine": "quarantine",
              "[paths] processing": "processing"}


def set_by_admin(settings: Settings, key: str) -> bool:
    return key not in _DEFAULTED or getattr(settings.paths, _DEFAULTED[key]) is not None


def _head(settings: Settings, key: str, folder: Path, doing: str) -> str:
    """"KEY: cannot DOING FOLDER", saying so when the folder is the key's default."""
    return (f"{key}: cannot {doing} {unquoted(str(folder))}"
            + ("" if set_by_admin(settings, key) else " (the key is not set: its default)"))


def _in_the_way(settings: Settings, key: str, folder: Path) -> str | None:
    """The line for a file where the folder (or a folder on its path) must be, or None:
    "create it" was no fix there, and the file is someone's, to be moved, never removed
    by us. The default processing folder has no other place to be set to: .outboxd/ in
    the outbox is outboxd's own working folder whatever that key says."""
    blocker = _nearest(folder)
    if os.path.isdir(blocker):
        return None
    where = unquoted(str(blocker))
    what = (f"a file named {where} is where that folder must be" if blocker == folder else
            f"{where}, on its path, is a file, not a folder")
    also = ("" if key == "[paths] processing" and not set_by_admin(settings, key)
            else f", or set {key} to another folder")
    return f"{_head(settings, key, folder, 'create')}: {what} — move that file away{also}"


def _read_only(folder: Path) -> bool:
    """Whether the file system (or the systemd sandbox's mount) holding folder is read-only."""
    try:
        return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def prepare_folders(settings: Settings, running: Settings | None = None) -> None:
    """Create the folders the daemon writes to (the outbox itself must exist) and a
    directory transport's target. At a reload (`running`: the configuration in force) a
    share may be away under any of them, and a folder made there lands on the local disk
    under its bare mount point, hidden once the share is back: one the running
    configuration names too is not made again (the moves and writes into it wait for its
    share, or make it if it was removed by hand), and a new one is made without its
    parents — a missing parent refuses the reload, before anything is made."""
    folders = list(written_folders(settings))
    if (target := directory_target(settings)) is not None:
        folders.append((target, "[delivery] target"))
    kept: set[Path] = set()
    if running is not None:
        kept = {folder for folder, _ in written_folders(running)}
        kept.update(t for t in (directory_target(running),) if t is not None)
        if missing := [_no_parent(f, k) for f, k in folders
                       if f not in kept and not f.parent.is_dir()]:
            raise ConfigError(missing)
    for folder, key in folders:
        # The target as the deliverer made it before: links and access are its writes'.
        if folder != target and (link := _link_on_the_way(settings, folder, key)) is not None:
            raise ConfigError(link)
        if folder in kept and not os.path.lexists(folder):
            continue
        try:
            folder.mkdir(parents=running is None, exist_ok=True)
        except OSError as exc:
            if (passing := _not_made_yet(key, folder, exc, running is not None)) is not None:
                raise passing from None
            if (exc.errno in (errno.EEXIST, errno.ENOTDIR)
                    and (blocked := _in_the_way(settings, key, folder)) is not None):
                raise ConfigError(blocked) from None
            if folder == target:
                raise ConfigError(f"[delivery] target = {str(target)!r} cannot be created: "
                                  + refused(exc)) from None
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise ConfigError(_unwritable(settings, key, folder, _nearest(folder),
                                              exc.errno == errno.EROFS)) from None
            raise ConfigError(f"{key}: cannot create {unquoted(str(folder))}: {exc.strerror} — "
                              f"create it or fix {key}") from None
        # One that exists already may still refuse every write (its owner, a read-only
        # mount, a systemd sandbox): found now, not at the first archive.
        if folder != target and not os.access(folder, os.W_OK | os.X_OK):
            # False for any access call that fails: a share failing just now (ESTALE,
            # EIO) is no configuration error, whose exit 2 would leave outboxd down.
            if (away := _away_now(key, folder, running is not None)) is not None:
                raise away from None
            raise ConfigError(_unwritable(settings, key, folder, folder, _read_only(folder)))
    if (apart := _processing_apart(settings)) is not None:
        raise ConfigError(apart)


def _away_now(key: str, folder: Path, reload: bool) -> FolderNotMade | None:
    """The folder's share failing as it is opened (a lookup the server answers, where a
    stat may still be answered from the client's cache), or None."""
    try:
        os.close(os.open(folder, os.O_RDONLY | os.O_DIRECTORY))
    except OSError as exc:
        if exc.errno in SHARE_AWAY:
            return _not_made_yet(key, folder, exc, reload, doing="use")
    return None


def _not_made_yet(key: str, folder: Path, exc: OSError, reload: bool, doing: str = "create"
                  ) -> FolderNotMade | None:
    """A folder refused for a reason that passes without a change of the configuration:
    no room on its file system (or quota), or its share away or failing. "Create it or
    fix the key" would send the admin to the file, and the exit 2 of a configuration
    error leaves the daemon down once the disk is freed; None for any other refusal.
    `doing`: what was refused ("create", or "use" for one there already)."""
    if exc.errno in NO_ROOM:
        fix = describe(exc)  # the error, and the fix: free space, or raise the quota
    elif exc.errno in SHARE_AWAY:
        fix = (f"{exc.strerror or exc} ({exc.filename or folder}) — is its share mounted "
               "and reachable? Check it (findmnt, the server's or NAS's state)")
    else:
        return None
    then = ("then reload again" if reload else
            f"the next start {'makes' if doing == 'create' else 'tries'} it (systemd starts "
            "outboxd again by itself)")
    return FolderNotMade(f"{key}: cannot {doing} {unquoted(str(folder))}: {fix}; {then}")


def directory_target(settings: Settings) -> Path | None:
    """A directory transport's target (None for HTTP)."""
    delivery = settings.delivery
    return delivery.target if delivery.transport == "directory" else None


def _no_parent(folder: Path, key: str) -> str:
    return (f"{key}: {unquoted(str(folder))} is not made at a reload: "
            f"{unquoted(str(folder.parent))} does not exist — is its share not mounted? A "
            "reload makes only the last folder of a path (a start makes them all): mount "
            f"the share or create {unquoted(str(folder.parent))}, then reload again")


def _link_on_the_way(settings: Settings, folder: Path, key: str) -> str | None:
    """The line for a folder the daemon would write through a link (also .outboxd in
    the outbox, for the default processing folder)."""
    try:
        refuse_links(folders_below(settings.outbox.path, folder))
    except OSError as exc:
        return (f"{key}: {unquoted(str(exc.filename))} is a symbolic link; outboxd never "
                f"writes through one — set {key} to the real folder, or remove the link")
    return None


def _processing_apart(settings: Settings) -> str | None:
    """A claim is a rename (one daemon wins it, atomically): across file
    systems every claim would fail, and every bundle wait forever with EXDEV."""
    processing, outbox = settings.processing_dir, settings.outbox.path
    try:
        apart = os.stat(_nearest(processing)).st_dev != os.stat(outbox).st_dev
    except OSError:
        apart = False  # gone meanwhile: the claims will say what is wrong
    if not apart:
        return None
    return (f"[paths] processing = {double_quoted(str(processing))} is on another file system "
            f"than the outbox {unquoted(str(outbox))}: claims are renames and need the same one — "
            "remove the key for the default (inside the outbox) or choose a folder on the "
            "outbox's file system")


def _nearest(path: Path) -> Path:
    """path, or its nearest ancestor that exists (where a mkdir -p would begin)."""
    while not os.path.lexists(path) and path.parent != path:
        path = path.parent
    return path


def folder_problems(settings: Settings) -> list[str]:
    """What prepare_folders (and a directory transport's target) would fail on, found
    without creating anything, as the user running this sees it: `config --check`."""
    folders = list(written_folders(settings))
    if settings.delivery.transport == "directory" and settings.delivery.target is not None:
        folders.append((settings.delivery.target, "[delivery] target"))
    problems = []
    for folder, key in folders:
        start = _nearest(folder)
        if (link := _link_on_the_way(settings, folder, key)) is not None:
            problems.append(link)
        elif (blocked := _in_the_way(settings, key, folder)) is not None:
            problems.append(blocked)
        elif not os.access(start, os.W_OK | os.X_OK):
            problems.append(_unwritable(settings, key, folder, start, _read_only(start)))
    if (apart := _processing_apart(settings)) is not None:
        problems.append(apart)
    return problems


# Emptied for the service at every start by the unit's PrivateTmp= (systemd/outboxd.service).
_PRIVATE_TMPS = (Path("/tmp"), Path("/var/tmp"))


def private_tmp_warning(state_dir: Path, environ: Mapping[str, str] = os.environ
                        ) -> str | None:
    """The warning for a state dir under /tmp or /var/tmp in a daemon systemd started
    (INVOCATION_ID set, as systemd sets it for every unit it starts), or None. The example
    configuration's trial state dir is there, and the unit's PrivateTmp= gives the service
    a new, empty /tmp at every start: the journal would be lost at each restart. A warning,
    not an error: a trial under systemd may want just that."""
    if "INVOCATION_ID" not in environ:
        return None
    where = Path(os.path.abspath(state_dir))
    tmp = next((t for t in _PRIVATE_TMPS if where.is_relative_to(t)), None)
    if tmp is None:
        return None
    return (f"[paths] state_dir = {double_quoted(str(state_dir))} is under {tmp}, which the "
            "service's PrivateTmp= empties at every start: the journal there, which keeps "
            "each bundle sent once, is lost at each restart — set state_dir = "
            '"/var/lib/outboxd" (the default) unless this is a trial')
