"""Whom the daemon runs as, named in every hint that tells an admin to run a command as
it: the owner of the state dir, which systemd's `StateDirectory=` gives to the unit's
`User=` (a drop-in may set another than the package's), else the package's `outboxd`."""

from __future__ import annotations

import grp
import os
import pwd
import shlex
import stat
from collections.abc import Callable
from pathlib import Path

DEFAULT = "outboxd"  # the package's user and group (systemd/outboxd.service)


def daemons_user(state_dir: Path) -> str:
    """The state dir's owner as `sudo -u` takes it (quoted for a shell), or `outboxd` where
    there is no state dir yet or root owns it (made by hand, or by a start as root)."""
    # An id without a name (a removed user): sudo takes it as #UID.
    return _named(state_dir, "st_uid", lambda uid: shlex.quote(pwd.getpwuid(uid).pw_name),
                  lambda uid: shlex.quote(f"#{uid}"))


def daemons_group(state_dir: Path) -> str:
    """The state dir's group (whose members may read it), or `outboxd` as above."""
    return _named(state_dir, "st_gid", lambda gid: grp.getgrgid(gid).gr_name, str)


def _named(state_dir: Path, field: str, name: Callable[[int], str],
           unnamed: Callable[[int], str]) -> str:
    try:
        number: int = getattr(os.stat(state_dir), field)
    except OSError:
        return DEFAULT
    if number == 0:
        return DEFAULT
    try:
        return name(number)
    except KeyError:
        return unnamed(number)


def as_the_daemons_user(command: str, state_dir: Path, group: bool = False) -> str:
    """The fix for a write this user may not make, in the same words in every command:
    whom to run it as. `group`: a member of the outbox's group may write there too
    (operations.md, share permissions), as it may not in the state dir."""
    return (f"run it as the daemon's user (sudo -u {daemons_user(state_dir)} outboxd "
            f"{command} …) or as root" + (", or as a member of the outbox's group" if group
                                           else ""))


def this_user() -> tuple[str, str]:
    """The user and primary group this process runs as (at `run`: the daemon's own), as
    chown and chgrp take them, for a hint to give it access to a folder."""
    uid = os.geteuid()
    try:
        entry = pwd.getpwuid(uid)
    except KeyError:  # a uid without a name (a container's, a removed user's)
        return str(uid), str(os.getegid())
    try:
        return entry.pw_name, grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        return entry.pw_name, str(entry.pw_gid)


def write_access_fix(user: str, group: str, where: str) -> str:
    """How to let `user` write in the folder `where`: the words of the start's check of
    the folders it writes (config_folders) and of every later refusal (folder_refusing)."""
    return f"give {user} write access to it (e.g. chgrp {group} {where} && chmod g+rwx {where})"


def folder_refusing(path: str) -> str:
    """Why a write at `path` was refused (EACCES, EPERM) and the fix: the folder it was
    made in (`path` itself when a folder, else the folder holding it), its owner and mode
    against the user this process runs as. A folder whose mode lets this user write (or
    root: no mode stops it) is refused by something else: an attribute, an ACL or a
    sandbox, each named with the command that shows it."""
    folder = path if os.path.isdir(path) else os.path.dirname(path) or "."
    user, group = this_user()
    try:
        st = os.stat(folder)
    except OSError:
        return (f"{folder} cannot be looked at by {user}, the user outboxd runs as here — "
                "give it access to that folder and those above it")
    owner = _owner_name(st.st_uid)
    facts = f"{folder} (owner {owner}, mode {stat.S_IMODE(st.st_mode):04o})"
    if _mode_lets_write(st):
        return (f"{facts} refuses the writes of {user}, the user outboxd runs as here, "
                f"though its mode lets it write — look for an immutable attribute (lsattr "
                f"-d {folder}), an ACL (getfacl {folder}) or a read-only path of the "
                "systemd unit (its ReadWritePaths=)")
    return (f"{facts} is not writable by {user}, the user outboxd runs as here — "
            f"{write_access_fix(user, group, folder)}")



def rename_refusing(src: str, dst: str) -> str:
    """Why a rename of `src` to `dst` was refused (EACCES, EPERM) and the fix. It writes in
    the folder dst goes into, the one src leaves and, for a folder moved to another, in
    src itself (its ".." changes): folder_refusing of the first of those whose mode does
    not let this user write, else of dst's folder with the others named too. The error
    names src alone, and folder_refusing(src) blamed the bundle's own work folder for a
    day folder in sent/ made immutable or another user's."""
    if not os.path.dirname(dst):
        # A bare name, given by a held folder's descriptor: where it goes is unknown
        # here, and "." (under systemd "/") is not it — never ask to open that up.
        return folder_refusing(src)
    into, out_of = os.path.dirname(dst), os.path.dirname(src) or "."
    folders = list(dict.fromkeys([into, out_of, *([src] if os.path.isdir(src)
                                                 and into != out_of else [])]))
    for folder in folders:
        try:
            writable = _mode_lets_write(os.stat(folder))
        except OSError:
            writable = False  # folder_refusing says it cannot be looked at
        if not writable:
            return folder_refusing(folder)
    said = folder_refusing(into)
    return said if len(folders) == 1 else (
        f"{said}; the move writes in {' and '.join(folders[1:])} too: look there as well")

def _owner_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a removed user's files (a migration that changed uids)
        return str(uid)


def _mode_lets_write(st: os.stat_result) -> bool:
    """Whether the mode bits let this process write in (and enter) the folder statted."""
    if os.geteuid() == 0:
        return True
    if st.st_uid == os.geteuid():
        bits = stat.S_IWUSR | stat.S_IXUSR
    elif st.st_gid in {os.getegid(), *os.getgroups()}:
        bits = stat.S_IWGRP | stat.S_IXGRP
    else:
        bits = stat.S_IWOTH | stat.S_IXOTH
    return st.st_mode & bits == bits
