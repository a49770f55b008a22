"""Release without attachments — "send anyway" (docs/folder-convention.md, sections 5, 6).

A release is one file in the outbox root, `NAME` + `[share] release_suffix`
(default `NAME.send-anyway`), beside the invoice file `NAME.ext`:

* a clerk drops it on the share (any content, usually empty);
* `outboxd send NAME --without-attachments` writes it for the operator, with
  a first line that says so (``RELEASED_BY_SEND``).

Why a file in the outbox and not a request in the state dir or the journal:
the daemon already watches the outbox, so a running daemon sees the release
at once through the same event that any dropped file causes, and a stopped
daemon finds it at its next start scan; there is one mechanism for both
ways of releasing, and the file travels with the bundle into the processing
folder at the claim (like the marker) and from there into sent/, which is
the lasting record of who released what. The people on the share see the
release too.

A release applies only to a bundle that waits for attachments (any
`[policy] unattached` but "send"); beside a bundle with errors, or one that
has all its attachments, it does nothing — the status page says why (idlefiles.py).
"""

from __future__ import annotations

import errno
import os
import pwd
import re
from pathlib import Path

from daemon.configuration.config import ShareConfig
from daemon.errors import InputError
from daemon.fs.fsops import is_regular_file, open_regular
from daemon.fs.fswrite import fsync_dir, rename_noreplace
from daemon.fs.temps import create_locked, drop_stale_copies, unlink_if_still
from daemon.names import NAME_MAX, fit_name, printable, stem
from daemon.watching.scan import Candidate

RELEASED_BY_SEND = "# released by outboxd send --without-attachments"
# Who ran that send, as its first line ends: " (by NAME)". A user name as a directory
# gives it (alice, alice@corp.example, CORP\alice): no control characters, no
# parentheses, which would end it early; longer ones are no name. Nor one not in UTF-8
# (os.environ and pwd keep such bytes as lone surrogates): the line, written in UTF-8,
# cannot hold it, and `send` stopped with a traceback, releasing nothing.
_USER = re.compile(r"[^\x00-\x1f\x7f-\x9f()\ud800-\udfff]{1,64}")
_BY = re.compile(rf" \(by ({_USER.pattern})\)\r?")
_READ_LIMIT = 4096
# `send`'s temp file is `.NAME.MARK.tmp`, MARK 7 random hex digits. It was the process
# id (at most 7 digits, Linux's pid_max 2**22), which is not ours alone: two `send`s in
# different pid namespaces (two containers on one share) have the same one, and so has
# a process that reuses a killed send's. As long as the longest pid, so that a long NAME
# is cut where it always was and an earlier version's killed send is still found.
_MARK_LEN = 7
_TEMP_BASE_MAX = NAME_MAX - len("..") - _MARK_LEN - len(".tmp")
# What a killed send's temp has between `.NAME.` and `.tmp`: a mark, or an earlier
# version's process id.
_STALE_MARK = f"(?:[0-9a-f]{{{_MARK_LEN}}}|[0-9]+)"


def _mark() -> str:
    return os.urandom(4).hex()[:_MARK_LEN]


def path_for(cand: Candidate, share: ShareConfig) -> Path:
    return beside(cand.invoice, share)


def beside(invoice: Path, share: ShareConfig) -> Path:
    """Where the release of the invoice file at `invoice` is: NAME + suffix beside it,
    in the outbox or, once claimed, in its processing folder."""
    return invoice.with_name(stem(invoice.name) + share.release_suffix)


def overlong(name: str, suffix: str) -> int:
    """By how many bytes the release file of the invoice file stem `name` is longer than a
    file name may be (0: it fits). Such a bundle cannot be released, by a file or by
    `outboxd send`, which writes that file: its invoice file must be renamed shorter."""
    return max(0, len(os.fsencode(name + suffix)) - NAME_MAX)


def rename_shorter(over: int) -> str:
    """What to do first about a name `over` bytes too long for its release file: every
    character is at least a byte, so that many characters fewer always fit."""
    return (f"rename the invoice file (and its folder, if it has one) to a name at least "
            f"{over} character{'s' if over > 1 else ''} shorter")


def release_file(cand: Candidate, share: ShareConfig) -> Path | None:
    """The release beside this invoice file, if it is a regular file (a link or a FIFO of
    that name releases nothing: outboxd never follows or opens those)."""
    return found_beside(cand.invoice, share)


def found_beside(invoice: Path, share: ShareConfig) -> Path | None:
    """The release beside the invoice file at `invoice` (in the outbox, or in its
    processing folder once claimed), if it is a regular file. A NAME at the length limit
    has no room for the suffix: no release file then."""
    path = beside(invoice, share)
    return path if is_regular_file(path) else None


def owner_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _owner_shown(uid: int) -> str | None:
    """The name of the user `uid`, as the warning names a release file's owner: one the
    passwd database keeps in another encoding than UTF-8 (LDAP, winbind) comes with lone
    surrogates, which the manifest, posted in UTF-8, cannot hold — escaped (\\udcNN),
    as a file name not in UTF-8 is shown."""
    name = owner_name(uid)
    return None if name is None else printable(name)


def invoking_user() -> str | None:
    """Who runs this `send`, for its release file's first line: the person sudo names
    (SUDO_USER: the docs have admins run commands as the daemon's user with sudo -u,
    which makes the process's own user outboxd), else the process's user by name; None
    where neither gives a name that fits the line. Never raises: a release is not
    refused for want of a name."""
    for name in (os.environ.get("SUDO_USER"), owner_name(os.geteuid())):
        if name and _USER.fullmatch(name):
            return name
    return None


def _send_user(head: str) -> str | None:
    """The user a release `send` wrote names on its first line (`head` starts with
    RELEASED_BY_SEND), if any."""
    line = head[len(RELEASED_BY_SEND):].split("\n", 1)[0]
    found = _BY.fullmatch(line)
    return found.group(1) if found else None


def _ran(user: str | None, uid: int) -> str:
    """Who ran the `send` whose release file belongs to `uid`, as the warning says it:
    the name on its line (`user`) beside the file's owner where that is another. The
    line is anyone's to write (a clerk may drop a file that begins as send's does); the
    owner no one writing the file can choose — outboxd under `sudo -u outboxd`, the
    clerk's own user for a file made on the share."""
    owner = _owner_shown(uid) or f"user id {uid}"
    if user is None:
        return f" (run as {owner})"
    return f" (run by {user})" if user == owner else f" (run by {user} as {owner})"


def released_by(path: Path) -> str:
    """Who released: the text of the manifest's unattached-invoice warning."""
    st: os.stat_result | None = None
    try:
        with open_regular(path) as fh:
            st = os.fstat(fh.fileno())  # the file read, not one renamed in since
            head = fh.read(_READ_LIMIT).decode("utf-8", "replace")
    except (InputError, OSError):
        head = ""
    if head.startswith(RELEASED_BY_SEND) and st is not None and st.st_nlink == 1:
        return "released by outboxd send" + _ran(_send_user(head), st.st_uid)
    if st is None:
        try:
            st = os.lstat(path)
        except OSError:
            return f"released by {path.name}"
    if st.st_nlink > 1:
        # A hard link made beside the invoice to another user's file is owned by that
        # user: its owner was recorded as having released the invoice, when anyone who
        # may write into the outbox did.
        return (f"released by {path.name} (owner unknown: the file is a hard link, one "
                "of several names of one file, so its owner need not be who made it)")
    owner = _owner_shown(st.st_uid)
    return f"released by {path.name}" + (f" (owner {owner})" if owner else "")


def warning_text(invoice_id: str, release: Path | None) -> str:
    """The unattached-invoice warning; names the release when there is one."""
    text = f"invoice {invoice_id} is sent without attachments"
    return f"{text} ({released_by(release)})" if release is not None else text


def write_release(cand: Candidate, share: ShareConfig, user: str | None) -> bool:
    """What `outboxd send --without-attachments` does; False if a release is already there.

    Written under a hidden name and renamed without replacing, so the daemon
    never reads half a file and a clerk's own release file is never replaced.
    """
    target = path_for(cand, share)
    # The temp's name must fit too (a release file of 240 bytes made a send fail with
    # "File name too long"): a long one is cut, the same way every time, so a killed
    # send's temp is still found by the next.
    base = fit_name(target.name, _TEMP_BASE_MAX)
    # A `send` killed before its rename left its temp file; a live one's is left be.
    drop_stale_copies(target.parent, base, _STALE_MARK)
    line = RELEASED_BY_SEND + (f" (by {user})" if user else "") + "\n"
    # Locked until renamed: a `send` of the same invoice run meanwhile leaves it be.
    tmp, fd = _new_temp(target, base)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        try:
            fh.write(line)
            fh.flush()
            os.fsync(fd)
            rename_noreplace(tmp, target)
        except BaseException as exc:
            # Only the file we made, while we hold it: whatever is at its name else is
            # another's (a sweep took ours, and someone made theirs there since).
            unlink_if_still(tmp, fd)
            if isinstance(exc, FileExistsError):
                return False  # a release is there: never replaced
            raise
    fsync_dir(target.parent)
    return True


def _new_temp(target: Path, base: str) -> tuple[Path, int]:
    """A temp of our own beside target, made (O_EXCL) and locked: a name another's
    temp has already is never opened, nor later removed, and another is drawn."""
    for _ in range(3):
        tmp = target.with_name(f".{base}.{_mark()}.tmp")
        try:
            return tmp, create_locked(tmp)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "three temp names in a row were taken", str(tmp))
