"""The claimed bundle's work folder, held by descriptor: every step after the claim
(delivery, archive, quarantine, undo, recovery, the orphan sweep) holds the folder under
`.outboxd/processing/` so, reaches what is in it from the descriptor, and moves or
removes it by its name only while that name is still it. A user of the share who swaps
the folder for a link (or moves it) gets the bundle reported stuck, never followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from daemon.fs.fsops import FOLDER, FOLDER_NOFOLLOW, walk_to_folder


def hold_folder(path: Path, shown: str | None = None, within: Path | None = None) -> int:
    """A claimed bundle's work folder at `path`, open (the caller closes it), never through
    a link a user of the share swapped in for it: every step after the claim holds it so,
    reaches what is in it from this descriptor, and moves or removes it by its name only
    while that is still it (still_held). The folders above are the daemon's own.
    Refused with `shown` (a bundle read for the clerk): as folder_below refuses a folder on
    its way (HostileInput, InputError naming `shown`, or the machine's or share's OSError).
    Without (for the admin): a link or no folder as not_the_folder(path), else as is.
    `within` (the outbox, where the processing folder lies by default): the folders from
    it down to `path` are reached as folder_within reaches them, never through a link —
    anyone on the share may put `.outboxd` back as a link to another folder holding one
    of the same name; such a link is refused (without `shown`: an OSError naming it).
    Elsewhere (a [paths] processing outside the outbox, the admin's) by its path."""
    try:
        if within is None:
            return os.open(path, FOLDER_NOFOLLOW)
        return _hold_within(path, within)
    except _LinkOnTheWay:
        if shown is None:
            raise
        # Walked again from the outbox as folder_below walks: the clerk's line names the
        # folder on the way that is a link (raises, or holds one put back meanwhile).
        assert within is not None
        return walk_to_folder(within, list(path.relative_to(within).parts), shown)
    except OSError as exc:
        refused = exc
    if shown is not None:
        # Which folder on the way failed, and how, is what folder_below tells apart:
        # walked again as it walks (raises, or holds a folder put back meanwhile).
        return walk_to_folder(path.parent, [path.name], shown)
    if refused.errno in (errno.ELOOP, errno.ENOTDIR):
        raise not_the_folder(path)
    raise refused


class _LinkOnTheWay(OSError):
    """A folder between `within` and a work folder is a link (or no folder): the admin's
    line names that folder, not the work folder."""


def made_in_processing(work: Path, within: Path | None) -> int:
    """A new work folder at `work`, made in the processing folder held and then held
    itself (the caller closes it); FileExistsError if something has that name. Inside
    `within` (the outbox) the processing folder is reached as hold_folder reaches a work
    folder, each folder on the way made where missing (a `.outboxd` removed by hand is
    made again), and the work folder made at its descriptor, never by `work`'s path: a
    `.outboxd` swapped for a link after the claims' look for links would have had it made
    behind the link (a link on the way: _LinkOnTheWay, an OSError naming it)."""
    processing = work.parent
    if within is None or not processing.is_relative_to(within):
        processing.mkdir(parents=True, exist_ok=True)  # the admin's path, as configured
        parent = os.open(processing, FOLDER_NOFOLLOW)
    else:
        parent = _hold_within(processing, within, make=True)
    try:
        os.mkdir(work.name, dir_fd=parent)
        try:
            return os.open(work.name, FOLDER_NOFOLLOW, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise not_the_folder(work) from None  # swapped since it was made
            raise
    finally:
        os.close(parent)


def made_within(folder: Path, within: Path) -> int:
    """`folder` inside `within` (the outbox), open (the caller closes it): each folder from
    within down to it opened from the one above without following a link, and made
    where missing (a link on the way: an OSError naming it)."""
    return _hold_within(folder, within, make=True)


def _hold_within(path: Path, within: Path, make: bool = False) -> int:
    """The work folder at `path`, each folder from `within` down to it opened from the one
    above without following a link (errors as the system's, but a link or no folder on
    the way: _LinkOnTheWay). Elsewhere than in `within`, by its path. `make`: each
    folder down to `path` made where missing, and a link in `path`'s own place is on the
    way too (to what is to be made in it)."""
    try:
        parts = path.relative_to(within).parts
    except ValueError:
        return os.open(path, FOLDER_NOFOLLOW)
    last = len(parts) if make else len(parts) - 1
    fd = os.open(within, FOLDER)
    try:
        for n, part in enumerate(parts):
            if make:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, dir_fd=fd)
            try:
                inner = os.open(part, FOLDER_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if n == last or exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                raise _LinkOnTheWay(errno.ELOOP, "is a symbolic link or no folder; outboxd "
                                    "never follows a link in the outbox — put the folder "
                                    "itself back under this name",
                                    str(within.joinpath(*parts[:n + 1]))) from None
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


@contextmanager
def held_folder(path: Path, shown: str | None = None,
                within: Path | None = None) -> Iterator[int]:
    """hold_folder(path, shown, within), open while the block runs."""
    fd = hold_folder(path, shown, within)
    try:
        yield fd
    finally:
        os.close(fd)


def folder_identity(path: Path) -> tuple[int, int] | None:
    """The folder at `path` as the file system knows it; None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def folder_mark(path: Path, within: Path | None = None, without: str | None = None
                ) -> str | None:
    """folder_identity(path) as the journal keeps it ("device:inode"); None when there is
    none. Inside `within` (the outbox: the processing folder, which anyone on the share
    may move aside and put back as a link to it) the folder reached as hold_folder
    reaches one, never through a link (a link on the way: None), and its identity taken
    from the folder so held: by its path, a link to the very folder the claim was
    recorded in gave that folder's mark. `without`: None too when the folder has an
    entry of that name (a work folder), looked for in the folder marked, not by a second
    look at its path; a look for it that the share fails (EIO) raises (entry_at)."""
    if within is None or not path.is_relative_to(within):
        # The admin's path, as configured (a link there is theirs).
        identity = folder_identity(path)
        if identity is None or (without is not None and there(path / without)):
            return None
        return f"{identity[0]}:{identity[1]}"
    try:
        held = _hold_within(path, within)
    except OSError:
        return None
    try:
        if without is not None and entry_at(Path(without), held):
            return None
        st = os.fstat(held)
    finally:
        os.close(held)
    return f"{st.st_dev}:{st.st_ino}"


def maybe_there(path: Path) -> bool:
    """there(path), but a look the share fails (EIO, ESTALE) counts as there: for a
    caller that would end or pass over something on "gone" (a claim ended `gone`, a read
    said as another daemon's claim), and may look again later instead."""
    try:
        return there(path)
    except OSError:
        return True


def left_at(path: Path, seconds: float) -> bool | None:
    """Whether anything is at `path` (a link too), or None when the look has not answered
    within `seconds`: a share that hangs (a hard NFS mount to a server switched off)
    keeps a look waiting in the kernel for as long as it is down. The look goes on, on a
    thread of its own that ends with the process, which a look blocked on a share does
    not stop (the kernel ends it at exit)."""
    found: list[bool] = []
    look = threading.Thread(target=lambda: found.append(os.path.lexists(path)),
                            name="work folder look", daemon=True)
    look.start()
    look.join(seconds)
    return found[0] if found else None


def folder_there(path: Path, within: Path | None = None) -> bool | None:
    """Whether a folder is at `path`, held as hold_folder holds it (never through a link):
    a link or no folder in its place or on its way is none (nothing of ours is renamed
    through one). None when a look that fails otherwise cannot tell (the share away):
    the caller keeps what it knew, or looks again later."""
    try:
        os.close(hold_folder(path, within=within))
    except OSError as exc:
        return False if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR) else None
    return True


def entry_at(path: Path, held: int | None = None) -> bool:
    """Whether anything (a link too) is at `path`: by its name in the folder held open at
    `held` (the folder it lies in), if given, else by its path. Not there only when it
    is gone (ENOENT, ENOTDIR); a look that fails otherwise (a share's EIO, ESTALE or
    timeout) raises: taken for "not there", an archive entry the share hid for a moment
    had the bundle archived a second time beside it, a receipt read back as none, and a
    work folder taken for one never made (its claim ended `gone`)."""
    try:
        os.stat(path if held is None else path.name, dir_fd=held, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return False
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return False  # a name the file system cannot hold is nothing there
        raise
    return True


def there(path: Path) -> bool:
    """entry_at(path) by its path, one lstat: os.path.lexists answers False for any
    OSError, and took a share that cannot be looked at for a file that is gone."""
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as exc:
        # A name the file system cannot hold is nothing there: an invoice file's name
        # at the limit makes its release file's and marker's names longer than that.
        if exc.errno == errno.ENAMETOOLONG:
            return False
        raise
    return True


def link_inside(path: Path, within: Path | None = None) -> bool:
    """Whether `path` is a link, or (inside `within`, the outbox) a folder on the way to
    it is: a look by its path would go where the link leads and find the work folder
    missing ("is the share mounted?"); the hold that follows refuses it, naming the link.
    A folder that cannot be looked at counts as none."""
    if within is None or not path.is_relative_to(within):
        return os.path.islink(path)
    parts = path.relative_to(within).parts
    return any(os.path.islink(within.joinpath(*parts[:n])) for n in range(1, len(parts) + 1))


def not_the_folder(path: Path) -> OSError:
    return OSError(errno.ELOOP, "is a symbolic link or no longer the folder outboxd claimed; "
                   "outboxd never writes, copies or moves through one — put the bundle's "
                   "folder itself back under this name", str(path))


def still_at(path: Path, fd: int) -> bool:
    """Whether path still names what fd has open (not removed or replaced since): the
    same inode on the same file system — an inode number alone is reused on another (a
    share mounted over the folder's place, another file system's folder moved in)."""
    try:
        now, held = os.lstat(path), os.fstat(fd)
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)
    except FileNotFoundError:
        return False


def still_held(path: Path, fd: int) -> None:
    """not_the_folder(path) unless path still names the folder held at `fd` (hold_folder):
    moved away, or a link or another folder in its place since it was held."""
    if not still_at(path, fd):
        raise not_the_folder(path)
