"""The directory transport (docs/protocol.md, section 7): a bundle written as the folder
TARGET/BUNDLEID/, or (ubl-embedded, docs/einvoice.md) one document as the file
TARGET/NAME--INVOICEID.xml, for a transfer agent that takes them from there.

Each appears in one rename, with everything in it already on disk: a reader (an SFTP
sync) never takes half a bundle or half a document, even after a power loss, and
takes no temporary name for a finished one (a bundle's is `.tmp-BUNDLEID/`, a
document's `.NAME.tmp-…`). Each temporary is held (flock) by its writer until the
rename, so that what a killed writer left is removed when the same bundle or document
is written again, or at the next start (sweep_target), and the live temporary of
another daemon sharing the target never is (on a network file system, where a
folder's lock does not reach other hosts, only one a day old is). A bundle folder is
renamed into place only if it is still the one this attempt made and filled.

What is already at a final name is looked at, never through a link, never opened if
it is a FIFO or device: a folder TARGET/BUNDLEID/ or a file with the document's bytes
is delivered already; anything else there is the admin's to look at, never replaced.

Nothing is written while the target is off the mount it was on at the start (its share
unmounted: the bare mount point is on the local disk, where no agent looks); a reload
that keeps the target keeps that mount (keep_mount), as sent/ and quarantine/ do.

When the target is group-writable (the transfer agent's group), so are the folders of
each bundle: the agent must be able to move or delete what it has taken, and umask
027 made them read-only for it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import time
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

from daemon.bundle import Bundle
from daemon.delivery.answers import Receipt
from daemon.delivery.parts import OpenWhenRead
from daemon.errors import Rejected, Retryable, describe, refused
from daemon.fs.folderlocks import SET_ASIDE, drop_folder_unless_held, hold_new_folder
from daemon.fs.fscopy import copy_file
from daemon.fs.fsdepth import TooDeep, remove_tree
from daemon.fs.fsops import kind_of
from daemon.fs.fsread import NotAFile, open_if_regular, read_bounded
from daemon.fs.fswrite import (
    add_group_write_below,
    fsync_dir,
    fsync_tree,
    held_path,
    rename_noreplace,
    write_json,
)
from daemon.fs.temps import (
    create_locked,
    drop_unfinished,
    drop_unless_held,
    is_unfinished,
    temp_prefix,
)
from daemon.fs.workfolder import still_at
from daemon.idnames import folder_name_for_id
from daemon.manifest import sent_parts
from daemon.watching.mounts import SameMount, on_network_share, shown

# Where no lock can be asked (NFS without lockd), or for the temporary documents of
# versions that took none, a temp is a leftover only once untouched this long: no
# write of one bundle takes a day, and until then a reader ignores it anyway.
STALE_AFTER = 24 * 3600.0
_BUNDLE_TEMP = re.compile(r"\.tmp-[0-9a-f]{64}")
_SET_ASIDE = re.compile(r"\.tmp-[0-9a-f]{64}" + re.escape(SET_ASIDE) + "[0-9a-f]{12}")
_UNLOCKED_DOCUMENT_TEMP = re.compile(r"\.tmp-[0-9a-f]{32}-.+")  # before 31170dc
# What an admin does about a leftover the start sweep could not remove.
LEFTOVER_FIX = ("it is what a write killed before it finished left, never a delivered "
                "bundle or document: remove it (rm -r), or let outboxd's user write to it "
                "and to the folders in it, and outboxd removes it at its next start")
# A leftover refused for its depth (fsdepth.TooDeep; not any ELOOP: a link swapped in
# gives one too): letting outboxd write there would change nothing.
DEEP_LEFTOVER_FIX = ("no write of outboxd's nests folders that deep: someone who may write in "
                     "the target made them; look at what it holds, then remove it (rm -r "
                     "removes any depth)")


class DirectoryDeliverer:
    """TARGET/.tmp-BUNDLEID/ renamed to TARGET/BUNDLEID/ (docs/protocol.md, section 7)."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.destination = str(target)  # as receipt.json names it (HttpDeliverer's)
        self.mount = SameMount(target)
        # The mount of the start is the target's (at a reload, keep_mount hands on the
        # running deliverer's for the same target).
        self.on_its_mount()

    def on_its_mount(self) -> None:
        """Retryable if the target is no longer on the mount it was on when this deliverer
        was made: a share unmounted from under it (its writes would go onto the local
        disk under the bare mount point, unseen by the transfer agent). A target that
        cannot be opened is left to the write to report."""
        try:
            moved = self.mount.changed()
        except OSError:
            return
        if moved is None:
            return
        then, now = (shown(m) for m in moved)
        raise Retryable(f"[delivery] target {self.target} is not on the file system it was on "
                        f"when outboxd started ({then}; now {now}): is its share unmounted? "
                        "Nothing is written there until that share is back; if the target "
                        "is meant to be where it is now, restart outboxd")

    def close(self) -> None:
        pass

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        bid = manifest["bundle_id"]
        final = self.target / bid
        body = {"delivered_to": str(final)}
        tmp = self.target / f".tmp-{bid}"
        held: int | None = None  # the lock on the .tmp- folder this attempt made
        self.on_its_mount()
        _fits_the_layout(manifest["invoice_file"]["name"])
        try:
            if _delivered(final):
                return Receipt(200, {**body, "already_delivered": True}, None)
            try:
                held = hold_new_folder(tmp)  # a killed writer's is replaced
            except BlockingIOError:
                raise Retryable(f"another outboxd is writing this bundle to [delivery] "
                                f"target {self.target} at this moment ({tmp.name}); "
                                "tried again later") from None
            # Written into the very folder held, never by its path: one that a member of
            # the target's group swaps for a link meanwhile takes no file elsewhere, and
            # one taken from us (removed by a start on another host, whose lock ours does
            # not reach) takes no more files and never comes back half-filled, to be
            # renamed into place without the files above (still_at, below).
            here = held_path(held)
            write_json(here / "manifest.json", manifest)
            # Every file under its manifest `name`, the one field that is right for a
            # folded name and for a converted image alike (original_name is neither).
            # Each file read from below the work folder, never through a link, and only
            # as the bytes that were checked (parts.OpenWhenRead: size, time and hash).
            inv = bundle.invoice_file
            with closing(OpenWhenRead(inv.where, inv.name, inv.size, inv.sha256)) as fin:
                copy_file(fin, here / manifest["invoice_file"]["name"])
            for att, name in sent_parts(bundle, manifest):
                (here / "attachments").mkdir(exist_ok=True)  # never with its parents
                folder = here / "attachments" / folder_name_for_id(att.invoice_id)
                folder.mkdir(exist_ok=True)
                # A converted image goes as its PDF (Attachment.sent_where).
                _, _, _, size, sha = att.sent
                with closing(OpenWhenRead(att.sent_where, att.rel, size, sha)) as fin:
                    copy_file(fin, folder / name)
            if os.stat(self.target).st_mode & stat.S_IWGRP:
                add_group_write_below(held, tmp)  # from the folder held, never by its path
            # The entries of the files and folders just made, before the rename that
            # publishes them: else a power loss could leave TARGET/BUNDLEID/ without
            # some of them, which a retry takes for delivered.
            fsync_tree(here)
            if not still_at(tmp, held):
                raise FileNotFoundError(errno.ENOENT, "taken meanwhile", str(tmp))
            try:
                rename_noreplace(tmp, final)
            except FileExistsError:
                # Another daemon delivered it meanwhile (or put something else there).
                if _delivered(final):
                    return Receipt(200, {**body, "already_delivered": True}, None)
                raise
            os.close(held)
            held = None
            fsync_dir(self.target)
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and held is not None and not _ours(tmp, held):
                raise Retryable(f"cannot write to [delivery] target {self.target}: "
                                f"{tmp.name} was removed while it was written (by another "
                                "outboxd's start, on a share whose locks do not reach "
                                "other hosts); tried again later") from None
            raise Retryable(f"cannot write to [delivery] target {self.target}: "
                            f"{exc.strerror or exc}") from None
        finally:
            if held is not None:
                # Not published. Half a bundle is of no use to anyone: a full disk gets
                # its space back, and one refused here (a file swapped for a link:
                # quarantined) never comes again under this id, so its .tmp- folder
                # would stay in the target for good. Removed before the lock is let go;
                # not one that is no longer ours (another writer's, made since).
                if _ours(tmp, held):
                    with suppress(OSError):  # one nested deeper than ours: refused, left
                        remove_tree(tmp, ignore_errors=True)
                os.close(held)
        return Receipt(201, body, None)


def keep_mount(new: object, running: object) -> None:
    """At a reload: a new deliverer (or the ubl-embedded one around it) that writes to the
    target the running one writes to keeps the mount noted for it at the start, as sent/
    and quarantine/ do (foldermounts.py). A reload made while the target's share is away
    (a new token, another log level) must not take the bare mount point for its home. A
    target the reload names anew is noted as it is then."""
    now, before = _directory_of(new), _directory_of(running)
    if now is not None and before is not None and now.target == before.target:
        now.mount = before.mount


def _directory_of(deliverer: object) -> DirectoryDeliverer | None:
    inner = getattr(deliverer, "inner", deliverer)  # EmbeddedDeliverer's transport
    return inner if isinstance(inner, DirectoryDeliverer) else None


# What a bundle folder holds beside its invoice file, in the case-folded form a target
# that takes upper and lower case as one (SMB, a casefold folder) compares names in.
_LAYOUT = frozenset({"manifest.json", "attachments"})


def _fits_the_layout(name: str) -> None:
    """Rejected for an invoice file named as the bundle folder's manifest.json or
    attachments/ (reachable with invoice_patterns such as "*"): it could never be written
    beside them, and a retry would meet the same name for ever."""
    if name.casefold() in _LAYOUT:
        raise _taken(f"the invoice file {name} cannot be written into a bundle folder of "
                     "[delivery] target, which holds manifest.json and attachments/ beside it",
                     f"invoice file named {name}",
                     "rename the invoice file (and its sidecar folder with it), then put "
                     "the bundle back into the outbox")


def _ours(tmp: Path, held: int) -> bool:
    """Whether tmp is still the folder this attempt made (held); False if that cannot be
    told (the target gone): then it is neither published nor removed by this attempt."""
    try:
        return still_at(tmp, held)
    except OSError:
        return False


def _delivered(final: Path) -> bool:
    """Whether TARGET/BUNDLEID/ is there as a folder (delivered); False if nothing is.
    Anything else under that name (a link, a file) is no bundle outboxd wrote: refused."""
    try:
        mode = os.lstat(final).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        return True
    raise _in_the_way(final, f"is a {kind_of(mode)}, not a bundle folder")


def _in_the_way(final: Path, what: str) -> Rejected:
    """The rejection for something at a final name that outboxd neither reads nor replaces."""
    return _taken(f"[delivery] target already holds {final.name}, which is not what outboxd "
                  "writes there", f"{final} {what}",
                  "look at it and remove or rename it in the target (outboxd never opens, "
                  "follows or replaces it), then move the bundle back into the outbox")


def _taken(message: str, detail: str, fix: str) -> Rejected:
    """A final name held by what outboxd did not write: quarantined (409), with the fix."""
    refused = Rejected(message, 409, detail)
    refused.fix = fix
    return refused


def write_document(target: Path, name: str, data: bytes) -> Receipt:
    """One ubl-embedded document as TARGET/NAME: written under a temporary name that no
    reader of `*.xml` takes (and that a killed writer's next try sweeps), then renamed
    without replacing. A file already there with the same bytes is delivered; one with
    other bytes is the clerk's to look at, never replaced."""
    final = target / name
    try:
        if _holds(final, data):
            return Receipt(200, {"path": str(final), "already_there": True}, None)
        drop_unfinished(target, [name])
        tmp = target / f"{temp_prefix(name)}{os.urandom(6).hex()}"
        fd = create_locked(tmp)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
                rename_noreplace(tmp, final)  # still locked: no sweep takes it before
        except FileExistsError:
            tmp.unlink(missing_ok=True)
            return write_document(target, name, data)  # another writer's: compare it
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        fsync_dir(target)
    except OSError as exc:
        raise Retryable(f"cannot write to [delivery] target {target}: "
                        f"{exc.strerror or exc}") from None
    return Receipt(201, {"path": str(final)}, None)


def _holds(final: Path, data: bytes) -> bool:
    """Whether TARGET/NAME is a file with exactly these bytes; False if nothing is there.
    One with other bytes, or anything that is no file (a link, a FIFO, a device, a
    folder: never opened), is refused, and stays as it is."""
    try:
        fh = open_if_regular(final)
    except NotAFile as exc:
        raise _in_the_way(final, str(exc)) from None
    if fh is None:
        return False
    with fh:
        # Sized first: a large file of other bytes is not read at all.
        if os.fstat(fh.fileno()).st_size == len(data) and read_bounded(fh, len(data)) == data:
            return True
    raise _taken(f"[delivery] target already holds {final.name} with other content",
                 f"{final} exists and differs",
                 "move that file away if it is an old version the transfer agent has not "
                 "taken, then move the bundle back into the outbox")


def clear_target(target: Path, log: Any) -> None:
    """The start's sweep of the target (sweep_target), with a warning for each leftover
    that stays (its name, the error, the fix), or one if the target cannot be listed."""
    try:
        kept = sweep_target(target)
    except OSError as exc:
        log.warning("cannot clear leftovers in [delivery] target", target=str(target),
                    error=refused(exc))
        return
    for name, why in kept:
        log.warning("cannot clear a leftover in [delivery] target", target=str(target),
                    leftover=name, error=describe(why, writing=True),
                    fix=DEEP_LEFTOVER_FIX if isinstance(why, TooDeep) else LEFTOVER_FIX)


def sweep_target(target: Path) -> list[tuple[str, OSError]]:
    """Remove what writers killed before their rename left in the target: `.tmp-BUNDLEID/`
    folders and `.NAME.tmp-…` documents that no live writer holds (another daemon
    sharing the target keeps its own), and the unlocked temporary documents of earlier
    versions (`.tmp-<32 hex>-NAME`) once untouched for STALE_AFTER. For the daemon's
    start: a leftover whose bundle never comes again would stay for good.

    Each leftover that cannot be removed (a folder in it the daemon's user may not
    write) is returned with the error, and the sweep goes on with the others: one such
    leftover must not keep every later one. An OSError from listing the target itself
    is raised.

    On a network file system a lock on a folder holds on this host only (NFS and SMB
    pass a file's lock on to the server, not a folder's): a `.tmp-BUNDLEID/` that another
    host writes now looks free, so there only one untouched for STALE_AFTER goes. A
    target on a share mounted on demand is looked into first (on_network_share), and
    one whose file system still cannot be seen is taken for a network one."""
    local_locks = on_network_share(target)
    with os.scandir(target) as entries:  # one listing: a target may hold many bundles
        found = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    kept: list[tuple[str, OSError]] = []
    for name, is_dir in found:
        try:
            _sweep_one(target / name, is_dir, local_locks)
        except FileNotFoundError:
            pass  # gone meanwhile: nothing left to clear
        except OSError as exc:
            kept.append((name, exc))
    return kept


def _sweep_one(path: Path, is_dir: bool, local_locks: bool) -> None:
    """Remove path if it is a leftover of sweep_target's kinds; OSError if it cannot be."""
    name = path.name
    if is_unfinished(name) and not is_dir:
        drop_unless_held(path)
    elif _BUNDLE_TEMP.fullmatch(name):
        drop_folder_unless_held(path, older_than=STALE_AFTER, local_locks=local_locks)
    elif _SET_ASIDE.fullmatch(name) and not path.is_symlink():
        # One a removal was killed in (drop_folder_unless_held): no writer's any more.
        remove_tree(path)  # refused by name if nested deeper than any of ours
    elif _UNLOCKED_DOCUMENT_TEMP.fullmatch(name):
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) and time.time() - st.st_mtime >= STALE_AFTER:
            path.unlink()
