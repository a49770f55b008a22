"""Whom the daemon runs as, named in every hint that tells an admin to run a command as
it: the owner of the state dir, which systemd's `StateDirectory=` gives to the unit's
`User=` (a drop-in may set another than the package's), else the package's `outboxd`."""

from __future__ import annotations

import grp
import os
import pwd
import shlex
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
