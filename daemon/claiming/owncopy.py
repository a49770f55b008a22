"""A claimed bundle's files that have other names too (hard links) made its own.

A claim moves a bundle by renaming its names, and so does an archive on the same disk: a
file with a second name (made by `ln`, a backup or copy tool that saves space so, an ERP
that keeps its own name for the file) would lie in `sent/` as the very file the other
name is, and a save into that name later would change what `sent/` says was sent. So,
once claimed and before the check by hashes reads the bundle (claims.py; recovery.py
after a crash), each such file is replaced within the work folder by a copy of its
bytes: what is checked, sent and archived is then that copy, and the other name keeps
its file untouched (nothing of it is deleted or written).

Which files have other names is known without a look of its own: the bundle's last
snapshot before the claim lstat'ed each of them (Snapshot.linked). A bundle without
them costs nothing here.

The copy is made beside the file under a temp name (write_atomic's pattern, with a
digest of the file's inode in it: leftcopies.py), synced, and exchanged with the file
only while that is still the one copied, unchanged: a kill leaves the file, or the whole
copy at its name, and at worst the temp, which recovery settles (own_claimed,
leftcopies.copies_left: removed only where that loses nothing). A file system without
the exchange (NFS, SMB) has each copy wait at its temp name, renamed over its file only
once every file is copied and none was saved into since its copy. The file itself, then at
the temp's name, is let go only once every file of the bundle is copied, and only if
none was saved into since its copy: else each goes back to its name, as it was, and the
bundle with it (EAGAIN) — let go one by one, a file copied before the other name was
saved into kept the old version beside another's new one (an ERP saving the invoice file
and its attachments again, through their names, as the claim copied them), and the
bundle, back in the outbox, sent that mix.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon.claiming.claim import mark_work_folder
from daemon.claiming.leftcopies import CHECKED, MAY_NOT_WRITE, copies_left, copy_temp_name
from daemon.configuration.config import Settings
from daemon.errors import InputError, shown_text
from daemon.fs.fscopy import Identity, copy_regular, identity
from daemon.fs.fsmove import unchanged
from daemon.fs.fsops import walk_to_folder
from daemon.fs.fswrite import held_path, rename_exchange
from daemon.fs.workfolder import held_folder, hold_folder
from daemon.names import printable
from daemon.reading.invoices import MAX_INVOICE_BYTES
from daemon.watching.scan import Candidate
from daemon.watching.snapshot import Snapshot, snapshot


def copy_limit(settings: Settings) -> int:
    """The largest file own_copies copies: the largest outboxd sends (an attachment under
    [validation] max_attachment_bytes, an invoice file under MAX_INVOICE_BYTES). One
    larger is refused by its size, never sent, and never read whole (readonce.SAMPLED):
    a copy of 100 GB would hold the loop thread past systemd's watchdog, at every start.
    It keeps its names, as a quarantined bundle's file."""
    return max(settings.validation.max_attachment_bytes, MAX_INVOICE_BYTES)


def own_copies(work: Path, rels: Iterable[str], limit: int,
               within: Path | None = None) -> Owned:
    """Each regular file at `rels` (paths below the work folder at `work`) that has other
    names now, and is no larger than `limit` bytes (copy_limit), replaced by a copy of
    its own (see the module); the paths copied, and those kept as names of their files
    where outboxd may not write. The work
    folder is held (hold_folder; `within`: the outbox), each folder below it opened
    without following a link; a file or folder that is no longer what it was is left as
    it is, for the check that follows to say what it is. OSError (EAGAIN) naming a file
    written into while it was copied: it is left as it was, and the bundle changed."""
    with held_folder(work, within=within) as held:
        return _own_copies_in(held, rels, work, limit)


@dataclass
class Owned:
    """What own_copies did: the paths copied, and the paths kept as names of their files
    with why (a folder outboxd may not write in: the bundle goes as it did before copies
    were made, rather than be put back for ever). `single`: the paths found with one name
    only (their other names removed since the snapshot), so not copied: a name made for
    one of them again before the check by hashes is a link that check must not take for
    one the snapshot saw (claimcheck.linked_since)."""
    copied: list[str] = field(default_factory=list)
    kept: dict[str, str] = field(default_factory=dict)
    single: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Swapped:
    """A file copied and exchanged with its copy: the file now at `tmp` (in the folder
    open at `folder`), looked at as `then` there after the exchange (its change time the
    exchange's: a save since, even one that keeps size and modification time, moves it);
    the copy, at `name`, is the inode `copy`. Not `exchanged` (a file system without the
    exchange: NFS, SMB): the file still at `name`, looked at as `then` before it was
    read, the copy at `tmp`, to be renamed over it by _let_go."""
    folder: int
    name: str
    tmp: str
    then: Identity
    copy: int
    rel: str
    exchanged: bool = True


def _own_copies_in(held: int, rels: Iterable[str], work: Path, limit: int) -> Owned:
    """own_copies below the work folder open at `held`, which lies at `work`."""
    owned = Owned()
    swapped: list[_Swapped] = []
    # One descriptor a folder, open until the files swapped in it are let go: a bundle of
    # thousands of linked files in one folder holds one, not one a file.
    folders: dict[str, int] = {}
    try:
        for rel in rels:
            folder, _, name = rel.rpartition("/")
            fd = folders.get(folder)
            if fd is None:
                try:
                    fd = walk_to_folder(held_path(held), [p for p in folder.split("/") if p],
                                        rel)
                except InputError:
                    continue  # a folder on the way swapped for a link: the check says so
                folders[folder] = fd
            try:
                done = _own_copy(fd, name, rel, limit)
            except OSError as exc:
                if exc.errno != errno.EAGAIN:  # the machine's: named by the file, not its temp
                    exc.filename, exc.filename2 = str(work / rel), None
                raise
            if isinstance(done, str):
                owned.kept[rel] = done
            elif done is False:
                owned.single.append(rel)
            elif done is not None:
                swapped.append(done)
                owned.copied.append(rel)
        _let_go(swapped, owned, held)
    except BaseException as exc:
        _put_back(swapped, work, exc)
        raise
    finally:
        for fd in folders.values():
            os.close(fd)
    return owned


def _let_go(swapped: list[_Swapped], owned: Owned, held: int) -> None:
    """The files exchanged with their copies removed from the work folder (their other
    names keep them), once all are copied: only if none was saved into since it was
    looked at before its copy (else EAGAIN, and _put_back). Where no exchange was had,
    each copy is renamed over its file only now, with the others: renamed as soon as it
    was made, it was past putting back when a later file of the bundle was saved into.
    A rename refused there (a folder with the sticky bit on NFS: only the file's owner
    may replace it) keeps the file's names, its copy removed, as an exchange refused
    does (`owned.kept`): put back, the bundle was claimed and refused so at every
    rescan, for ever.
    From the check on, the bundle as copied is the one to send, and the files are let go
    under the CHECKED mark in the work folder open at `held` (leftcopies.py: a kill
    between two of them): a failure after it puts nothing back (a file put back beside
    one let go was a name of a file whose other name, saved into, changed it while the
    copy let go did not) but leaves the rest to the claim's undo or recovery, which let
    them go (copies_left)."""
    for s in swapped:
        now = os.stat(s.tmp if s.exchanged else s.name, dir_fd=s.folder,
                      follow_symlinks=False)
        if not unchanged(s.then, now):
            raise _written_while_copied(s.rel)
    if not swapped:
        return
    mark_work_folder(held, CHECKED)
    try:
        _let_go_checked(swapped, owned)
    except BaseException:
        swapped.clear()
        raise
    os.unlink(CHECKED, dir_fd=held)
    os.fsync(held)


def _let_go_checked(swapped: list[_Swapped], owned: Owned) -> None:
    """_let_go's let-go, once every file is found unchanged since its copy."""
    while swapped:
        s = swapped[-1]
        if s.exchanged:
            os.unlink(s.tmp, dir_fd=s.folder)
        else:
            try:
                os.rename(s.tmp, s.name, src_dir_fd=s.folder, dst_dir_fd=s.folder)
            except OSError as exc:
                if exc.errno not in MAY_NOT_WRITE:
                    raise
                os.unlink(s.tmp, dir_fd=s.folder)  # the copy: the file keeps its name
                owned.copied.remove(s.rel)
                owned.kept[s.rel] = _refused(exc)
        swapped.pop()
        os.fsync(s.folder)


def _put_back(swapped: list[_Swapped], work: Path, why: BaseException) -> None:
    """Each file exchanged with its copy and not let go put back at its name, and the
    copy removed (where none was exchanged, only that): the bundle as it was, each file
    a name of its other names' file. One that cannot be (the share's EIO, ESTALE) is
    said, with `why` the copies were undone, as OSError naming it: left so, the file at
    its temp's name went back into the outbox under it with the bundle, and the clerk's
    file was a copy, its tie to the other names cut. The claim's undo puts it back first
    (leftcopies.put_back_left), and waits in processing, tried again at each rescan,
    while it cannot."""
    failed: tuple[_Swapped, OSError] | None = None
    for s in swapped:
        here = held_path(s.folder)
        try:
            if os.stat(s.name, dir_fd=s.folder, follow_symlinks=False).st_ino == s.copy:
                rename_exchange(here / s.tmp, here / s.name)
            with contextlib.suppress(FileNotFoundError):  # none made yet: nothing to remove
                if os.stat(s.tmp, dir_fd=s.folder, follow_symlinks=False).st_ino == s.copy:
                    os.unlink(s.tmp, dir_fd=s.folder)
        except OSError as err:
            failed = failed or (s, err)
    if failed is not None and isinstance(why, Exception):  # a Ctrl-C stays one
        s, exc = failed
        where = "lies at" if s.exchanged else "has its copy at"
        raise OSError(exc.errno, f"{exc.strerror or exc}: a file of several names (a hard "
                      f"link) that outboxd copied could not be put back as it was, and "
                      f"{where} {printable(s.tmp)} beside its name; the bundle stays in "
                      f"processing until it is, tried again at each rescan (the copies "
                      f"were undone because: {shown_text(why)})", str(work / s.rel)) from exc


def _as_copied(old: os.stat_result, then: Identity) -> bool:
    """Whether the file looked at as `old` is the one copied, with the bytes copied (its
    change time is the exchange's, its links may be fewer)."""
    return (old.st_ino, old.st_size, old.st_mtime_ns) == then[:3]


def _own_copy(folder: int, name: str, rel: str, limit: int
              ) -> _Swapped | str | Literal[False] | None:
    """The file `name` of the folder open at `folder` replaced by a copy of its own, if it
    is a regular file with other names, of `limit` bytes at most: the exchange, for
    _let_go; False if it has one name only now; None if it is no such file; why not,
    where outboxd may not write in the folder (the file keeps its names)."""
    try:
        st = os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        return None
    if st.st_nlink < 2:
        return False
    # Beside it, by descriptor: read as every input is (never a link followed, a FIFO or
    # device opened), written 0640 under the umask, group write and both times as the
    # file's: what a move of the bundle to another disk makes (fscopy.copy_entry).
    tmp = copy_temp_name(name, st.st_ino)
    try:
        made = copy_regular(folder, name, st, folder, tmp)
    except BaseException as exc:
        _remove_copy(folder, tmp, None)  # cut short (a full disk): never left, nor put back
        if isinstance(exc, OSError) and exc.errno in MAY_NOT_WRITE:
            return exc.strerror or os.strerror(exc.errno or 0)
        raise
    try:
        then = identity(st)
        after = _swap_in(folder, name, tmp, then, rel)
        return _Swapped(folder, name, tmp, then if after is None else after,
                        os.fstat(made).st_ino, rel, after is not None)
    except BaseException as exc:
        _remove_copy(folder, tmp, made)
        if isinstance(exc, OSError) and exc.errno in MAY_NOT_WRITE:
            return _refused(exc)  # the exchange refused, nothing done
        raise
    finally:
        os.close(made)


def _refused(exc: OSError) -> str:
    """Why no copy may take the file's name: most likely a folder with the sticky bit,
    where only a file's owner may rename it (or replace it by a rename)."""
    sticky = " (in a folder with the sticky bit only the file's owner may rename it)" \
        if exc.errno == errno.EPERM else ""
    return (exc.strerror or os.strerror(exc.errno or 0)) + sticky


def _swap_in(folder: int, name: str, tmp: str, then: Identity, rel: str
             ) -> Identity | None:
    """The whole copy at `tmp` put at `name` while `name` is the file copied, unchanged
    since (`then`: as it was looked at before it was read), by an exchange (the file is
    at `tmp` now, looked at as the identity returned); None where the file system has
    none (the copy stays at `tmp`, for _let_go). A write through its other name during
    the copy may have left the copy half old, half new: never put in place, and said
    (EAGAIN), as a change of the bundle is."""
    if not unchanged(then, os.stat(name, dir_fd=folder, follow_symlinks=False)):
        raise _written_while_copied(rel)
    here = held_path(folder)
    if not rename_exchange(here / tmp, here / name):
        return None  # no exchange on this file system (NFS, SMB): nothing was done
    # The file taken away must be the one copied, as copied: else (a person's file put at
    # the name in that instant, the file saved into) it goes back, and the copy is not used.
    looked = os.stat(tmp, dir_fd=folder, follow_symlinks=False)
    if _as_copied(looked, then):
        return identity(looked)
    rename_exchange(here / tmp, here / name)
    raise _written_while_copied(rel)


def _remove_copy(folder: int, tmp: str, made: int | None) -> None:
    """The copy at `tmp` removed, only while it is the one made (open at `made`; None:
    closed by the copy that failed, a regular file at the temp's new random name)."""
    try:
        st = os.stat(tmp, dir_fd=folder, follow_symlinks=False)
        if st.st_ino == os.fstat(made).st_ino if made is not None else stat.S_ISREG(st.st_mode):
            os.unlink(tmp, dir_fd=folder)
    except OSError:
        pass  # gone already; else the error that brought us here is the one to say


def _written_while_copied(rel: str) -> OSError:
    return OSError(errno.EAGAIN, "was saved into, through another name of the file, while "
                   "outboxd made the bundle a copy of its own; the bundle is read again",
                   printable(rel))


def own_claimed(moved: Candidate, settings: Settings, log: Any
                ) -> tuple[Snapshot | None, tuple[str, ...]]:
    """own_copies for a claim a crash cut short, at the start (recovery.py): `moved` is
    the bundle as it lies in its work folder. Its snapshot there tells which files have
    other names (none is kept from before the crash); the temps a kill left are settled
    first (leftcopies.copies_left; looked at again once a file went back to its name).
    The snapshot (None: no invoice file there) for the look at its sidecar that follows,
    and the files it found linked that the copies did not find with one name: the
    check by hashes that follows takes a link of any other file for one made since
    (claimcheck.linked_since), as the check after a claim does."""
    snap = snapshot(moved, settings.outbox)
    try:
        held = hold_folder(moved.invoice.parent, within=settings.outbox.path)
    except OSError:  # no folder of ours there now (a link in its place): the read says so
        return snap, snap.linked if snap is not None else ()
    single: list[str] = []
    try:
        if copies_left(held, moved, snap, log):
            # A file put back at its name has other names that snapshot did not see.
            snap = snapshot(moved, settings.outbox)
        if snap is not None and snap.linked:
            owned = _own_copies_in(held, snap.linked, moved.invoice.parent,
                                   copy_limit(settings))
            say_copied(log, owned)
            single = owned.single
    finally:
        os.close(held)
    if snap is None:
        return None, ()
    return snap, tuple(rel for rel in snap.linked if rel not in single)


def say_copied(log: Any, owned: Owned) -> None:
    """What own_copies did, logged on the bundle's logger: the files copied, and those
    kept as names of their files, with the fix."""
    if owned.copied:
        log.info("files with other names (hard links) copied for the bundle; their other "
                 "names keep theirs", files=[printable(rel) for rel in owned.copied])
    for rel, why in owned.kept.items():
        log.warning("file with other names (a hard link) sent and archived as it is: "
                    "outboxd may not write in its folder to make a copy of its own, so a "
                    "save into its other name will change the archived file too",
                    file=printable(rel),
                    error=f"{printable(rel)}: {why} — let outboxd's user write in the "
                          "folder, or put a copy of the file there, not a second name")
