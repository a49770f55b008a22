"""The temps of owncopy.py that a kill left in a claimed bundle: told apart, and removed
only where that loses nothing.

A copy of a file of several names is made beside it under a temp name, then exchanged
with it; the file itself lies at the temp's name until every file of the bundle is
copied. A kill leaves at the temp's name either a copy of ours (half or whole: the file
still at its name) or the file itself. The file itself is let go only if it holds the
bytes of its copy; else it was saved into through its other name after it was copied,
and goes back to its name (and the copy, with the bytes claimed, goes), so that the
bundle is found changed and settles again with what was saved, as it does when no kill
comes between (owncopy._let_go, _put_back). That its other name still keeps it is not
enough: an ERP saving the whole bundle again had the old invoice file, let go as its
copy, sent beside the new attachments; and if that name was removed since, the file
holds the only copy of what was saved.

Which is which, and that the temp is ours at all, is in its name, with no syscall or
journal record of its own at the claim: `.NAME.tmp-` then 4 random hex digits and 8 of
a digest of them, NAME and the inode of the file copied (owncopy's look at it). The
file itself keeps that inode; a copy of ours lies beside a file of that inode at NAME.
A name of that pattern whose digest fits neither (a clerk's dot-file, an older
version's random temp, an inode a share renumbered after a remount) is not proven
ours, and is kept, with a warning: it travels with the bundle, as any dot-file of a
sidecar does.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Any, Literal

from daemon.configuration.config import OutboxConfig
from daemon.errors import InputError
from daemon.fs.fsops import opened_if_regular, walk_to_folder
from daemon.fs.fsread import hash_of
from daemon.fs.fswrite import held_path, rename_exchange, rename_noreplace
from daemon.fs.temps import TEMP_NAME_BYTES, is_unfinished, temp_prefix
from daemon.fs.workfolder import hold_folder
from daemon.names import fit_bytes, printable
from daemon.watching.scan import Candidate
from daemon.watching.snapshot import Snapshot, snapshot

CHECKED = ".outboxd-copies-checked"
"""The mark owncopy leaves in a work folder while it lets go of the files it copied:
every copy was whole and every file unchanged since its copy when it was made, so the
bundle as copied is the one to send. A kill while the files are let go one by one
leaves some let go (their copies at their names, nothing beside them: as a file of
one name looks) and the rest beside their copies; without the mark, recovery put
those back if saved into since (an ERP saving the whole bundle again before the
restart), and the bundle went out with the old copies of the files let go beside the
new versions of the others. With it, recovery lets go of the rest too (copies_left)."""

# A folder outboxd may read but not write in (made so by its owner, or on a share mounted
# read-only below the outbox), or a sticky one where the file is another user's: no copy
# can be made beside the file there, or take its name.
MAY_NOT_WRITE = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})

_TAIL = 12  # hex digits, as every temp of write_atomic's pattern (temps.is_unfinished)
_SALT = 4  # of them random: two copies of one file (a claim put back, claimed again)


def copy_temp_name(name: str, ino: int) -> str:
    """The temp name owncopy copies the file `name` (inode `ino`) under, beside it."""
    salt = os.urandom(_SALT // 2).hex()
    return f"{temp_prefix(name)}{salt}{_digest(salt, name, ino)}"


def _digest(salt: str, name: str, ino: int) -> str:
    data = b"\0".join((salt.encode(), os.fsencode(name), str(ino).encode()))
    return hashlib.blake2b(data, digest_size=(_TAIL - _SALT) // 2).hexdigest()


def _made_for(tmp: str, name: str, ino: int) -> bool:
    """Whether `tmp` is the temp name copy_temp_name gave a copy of the file `name` of
    inode `ino`."""
    tail = tmp[len(temp_prefix(name)):]
    return (tmp.startswith(temp_prefix(name)) and len(tail) == _TAIL
            and _digest(tail[:_SALT], name, ino) == tail[_SALT:])


def drop_copies_left(held: int, moved: Candidate, cfg: OutboxConfig, log: Any) -> None:
    """The temps a kill left in the claimed bundle `moved`, whose work folder is open at
    `held`, settled (copies_left) as for a bundle going back: for a work folder no
    journal row knows (orphans.py), before it goes back into the outbox."""
    copies_left(held, moved, snapshot(moved, cfg), log, going_back=True)


def put_back_left(work: Path, moved: Candidate, cfg: OutboxConfig, log: Any) -> None:
    """Before a claim is undone (undoing.py): each file of several names that the claim's
    copies left at a temp name (owncopy._put_back failed: the share's EIO) put back at
    its name, and each copy of ours removed, so that no temp goes back into the outbox
    with the bundle. OSError while that cannot be done (the undo waits, stranded.py). A
    work folder that is no longer one (a link in its place) is left to the undo to say."""
    try:
        held = hold_folder(work, within=cfg.path)
    except OSError:
        return
    try:
        drop_copies_left(held, moved, cfg, log)
    finally:
        os.close(held)


def copies_left(held: int, moved: Candidate, snap: Snapshot | None, log: Any,
                going_back: bool = False) -> bool:
    """Each temp of owncopy's a kill left in the claimed bundle `moved` (as it lies in its
    work folder, open at `held`; `snap`: its snapshot there) settled (_settle): beside the
    invoice file and the marker (whatever `completion` says now: it may have been
    "marker" at the claim), and in each folder of the sidecar whose snapshot shows a name
    of the pattern. Each folder reached from `held`, never through a link. Whether a file
was put back at its name (the snapshot no longer says which files have other names).
`going_back`: the bundle goes back into the outbox (an undo, an orphan), so each file
itself goes back to its name whatever its bytes, its ties to its other names kept, as
owncopy._put_back leaves a bundle; else (recovery, which sends it) only one saved
into since its copy."""
    put_back = False
    checked = _marked(held)
    names = {"": [moved.invoice.name, moved.marker.name]}
    for rel, *_ in snap.entries if snap is not None else ():
        folder, _, name = rel.rpartition("/")
        if folder:
            names.setdefault(folder, []).append(name)
    for folder, here in names.items():
        if folder and not any(is_unfinished(n) for n in here):
            continue  # the snapshot saw no temp there: not listed again
        try:
            fd = walk_to_folder(held_path(held), [p for p in folder.split("/") if p], folder)
        except InputError:
            continue  # swapped for a link since the snapshot: nothing of ours there
        try:
            files = [n for n in here if not is_unfinished(n)]
            temps = os.listdir(fd) if not folder else [n for n in here if is_unfinished(n)]
            for tmp in temps:
                # Beside which file: names cut to fit (temp_prefix) may share a prefix.
                owners = [n for n in files if tmp.startswith(temp_prefix(n))]
                if owners and is_unfinished(tmp):
                    put_back = _settle(fd, tmp, owners, folder, log,
                                       going_back and not checked, checked) or put_back
        finally:
            os.close(fd)
    if checked:  # every file let go now: the bundle is the one copied
        os.unlink(CHECKED, dir_fd=held)  # never followed
        os.fsync(held)
    return put_back


def _marked(held: int) -> bool:
    """Whether the work folder open at `held` has the CHECKED mark (a regular file, as
    owncopy makes it: a link of that name is no mark of ours)."""
    try:
        return stat.S_ISREG(os.stat(CHECKED, dir_fd=held, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


def _settle(fd: int, tmp: str, names: list[str], folder: str, log: Any,
            going_back: bool, checked: bool) -> bool:
    """The temp `tmp` of the folder open at `fd` (`folder`: its path in the work folder),
    beside the files `names` whose temps its name may be: removed if it is a copy of ours,
    or the file itself with the bytes of its copy (not `going_back`); the file itself put
    back at its name otherwise; anything else kept, said. Whether it was put back.
    `checked` (the CHECKED mark: killed while the files were let go): a copy of ours takes
    its file's name, and the file itself is let go, where its other names keep it or its
    copy holds its bytes — as the let-go the kill cut short would have done."""
    try:
        st = os.stat(tmp, dir_fd=fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    # Only regular files are ours (a link, a FIFO put there never is), beside one.
    for name in names if stat.S_ISREG(st.st_mode) else ():
        try:
            at_name: os.stat_result | None = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            at_name = None
        if at_name is not None and not stat.S_ISREG(at_name.st_mode):
            continue
        if at_name is not None and _made_for(tmp, name, at_name.st_ino) and \
                at_name.st_ino != st.st_ino:
            # A copy of ours, half or whole (whole where `checked`): the file is at its name.
            if checked and (at_name.st_nlink > 1 or _same_bytes(fd, tmp, name) or
                            _kept_saved(fd, name, name, at_name, folder, log, link=True)):
                _take_name(fd, tmp, name)
            else:
                os.unlink(tmp, dir_fd=fd)
            os.fsync(fd)
            return False
        if checked and _made_for(tmp, name, st.st_ino) and at_name is not None:
            # The file itself: let go where its other names keep it or its copy holds its
            # bytes; else (saved into after the check, its other names removed) kept.
            if st.st_nlink > 1 or _same_bytes(fd, tmp, name):
                os.unlink(tmp, dir_fd=fd)
            else:
                _kept_saved(fd, tmp, name, st, folder, log, link=False)
            os.fsync(fd)
            return False
        if _made_for(tmp, name, st.st_ino):
            rel = f"{folder}/{name}".lstrip("/")
            try:
                done = _file_itself(fd, tmp, name, at_name, rel, log, going_back)
            except OSError as exc:  # the share's EIO: said with what is where, for status
                raise OSError(exc.errno, f"{exc.strerror or exc}: {printable(rel)} lies at "
                              f"{printable(tmp)} beside its name in the bundle's work "
                              "folder and cannot be put back at its name now") from exc
            if done is not None:
                return done == "put back"
    log.warning("hidden file named like outboxd's temporary copy of a file of the bundle "
                "kept: outboxd cannot tell it as its own, and it travels with the bundle",
                file=printable(f"{folder}/{tmp}".lstrip("/")),
                fix="nothing to do if it is yours; one an older outboxd left while it copied "
                    "the file beside it (a hard link) may be removed once the bundle is "
                    "archived")
    return False


def _kept_saved(fd: int, src: str, name: str, st: os.stat_result, folder: str, log: Any,
                link: bool) -> bool:
    """The file of `name` at `src` (looked at as `st`), saved into through its other name
    after the claim checked its copy and that name removed since (it holds the only copy
    of what was saved), given a hidden name of its own beside it, linked (`link`: it
    stays at `src` too, for its copy to take that name) or renamed: the bundle goes as
    checked, and what was saved travels with it, said. Whether that was done (a link
    refused, as protected_hardlinks may: the copy is not used, the file kept at `name`)."""
    kept = f".{fit_bytes(name, TEMP_NAME_BYTES)}.saved-{st.st_ino}"
    try:
        if link:
            os.link(src, kept, src_dir_fd=fd, dst_dir_fd=fd, follow_symlinks=False)
        else:
            here = held_path(fd)
            rename_noreplace(here / src, here / kept, fd, fd)
    except FileExistsError:
        pass  # made by a start killed after it: the same file
    except OSError:
        if not link:
            raise
        return False
    log.warning("file of the bundle saved into, through its other name, after outboxd had "
                "checked its copy, and that name removed, before a restart: the bundle is "
                "sent as it was claimed, and what was saved is kept beside it",
                file=printable(f"{folder}/{name}".lstrip("/")),
                kept=printable(f"{folder}/{kept}".lstrip("/")),
                fix="what was saved after the claim is in the kept file, archived with the "
                    "bundle; put a copy of it in the outbox if it is to be sent")
    return True


def _take_name(fd: int, tmp: str, name: str) -> None:
    """The whole copy at `tmp` renamed over its file at `name` (a file system without the
    exchange), as owncopy._let_go does; where that is refused (a sticky folder, the file
    another user's), the copy removed and the file kept as it is, as there."""
    try:
        os.rename(tmp, name, src_dir_fd=fd, dst_dir_fd=fd)
    except OSError as exc:
        if exc.errno not in MAY_NOT_WRITE:
            raise
        os.unlink(tmp, dir_fd=fd)


def _file_itself(fd: int, tmp: str, name: str, at_name: os.stat_result | None, rel: str,
                 log: Any, going_back: bool) -> Literal["let go", "put back"] | None:
    """The file itself at `tmp`, exchanged with its copy (the regular file at `name`,
    looked at as `at_name`; None: none there) before the kill: let go only if it holds
    its copy's bytes, unchanged since it was copied, and the bundle is not `going_back`;
    else back at its name, and the copy removed. None if nothing was done (kept)."""
    same = at_name is not None and _same_bytes(fd, tmp, name)
    if same and not going_back:
        os.unlink(tmp, dir_fd=fd)  # its copy holds its bytes
        os.fsync(fd)
        return "let go"
    here = held_path(fd)
    if at_name is None:
        rename_noreplace(here / tmp, here / name, fd, fd)
    elif not rename_exchange(here / tmp, here / name):
        return None  # no exchange here, so none made it: not ours after all
    # The copy, now at the temp's name: the bytes claimed, saved over since.
    elif os.stat(tmp, dir_fd=fd, follow_symlinks=False).st_ino == at_name.st_ino:
        os.unlink(tmp, dir_fd=fd)
    os.fsync(fd)
    if same:  # going back, as it was
        log.info("file of several names (a hard link) put back at its name before the "
                 "bundle goes back into the outbox", file=printable(rel))
        return "put back"
    log.warning("file of the bundle saved into, through its other name, after outboxd "
                "copied it before a restart: put back with what was saved, and the bundle "
                "read again", file=printable(rel),
                fix="nothing to do: the bundle settles again and is sent with what was "
                    "saved")
    return "put back"


def _same_bytes(fd: int, a: str, b: str) -> bool:
    """Whether the regular files `a` and `b` of the folder open at `fd` hold the same
    bytes (False if either is no regular file now)."""
    digests = []
    for name in (a, b):
        file, _ = opened_if_regular(name, fd)
        if file is None:
            return False
        with os.fdopen(file, "rb") as fh:
            digests.append(hash_of(fh))
    return digests[0] == digests[1]
