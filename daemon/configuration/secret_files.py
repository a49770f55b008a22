"""Who else may read the files that hold the delivery's secret (docs/configuration.md,
Who may read the token): the configuration file when `[delivery] token` is written in
it, and `token_file`. The shipped install makes the clerks' group and the daemon's the
same (`outboxd`: the share is written through it), so a file readable by that group is
readable by every clerk with an account on the server. Said at each start and reload
and by `outboxd config`, as a warning: the daemon still works, and the file is the
admin's. Modes, a POSIX access ACL where the file has one, and group members are looked
at (no folders above), and nothing here opens a file, let alone quotes one."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import struct
from collections.abc import Callable
from pathlib import Path

from daemon.configuration.config import Settings, environment_overrides
from daemon.errors import unquoted

# Shown by name in a warning: enough for the admin to recognise the group.
SHOWN_MEMBERS = 3

CONFIG_FIX = (
    "move the token into /etc/outboxd/token (install -m 0600, owner root) and set "
    '[delivery] token_file = "/run/credentials/outboxd.service/token", which the unit '
    "passes in with LoadCredential= (docs/operations.md, Configuration and token); or keep "
    "it here and make the file readable by the service alone (chmod 0640 with a group "
    "no one but outboxd's user is in, or chmod 0600 owned by outboxd's user)")
TOKEN_FILE_FIX = (
    "chmod 0600 it (owned by root where the unit passes it in with LoadCredential=, else "
    "by outboxd's user), or chmod 0640 with a group no one but outboxd's user is in")
ACL_FIX = ("; or take the others' entries out of its ACL (getfacl shows them, setfacl -x "
           "u:NAME or g:NAME removes one)")

# The access ACL as the kernel keeps it (acl_ea_header/acl_ea_entry, little-endian):
# a version, then (tag, permissions, id) entries.
_ACL_XATTR = "system.posix_acl_access"
_USER, _GROUP_OBJ, _GROUP, _MASK = 0x02, 0x04, 0x08, 0x10
_READ = 0x04


def group_members(gid: int) -> set[str]:
    """The user names in group `gid`: its listed members and those whose primary group it
    is (a directory that does not enumerate its users gives its listed members only)."""
    try:
        members = set(grp.getgrgid(gid).gr_mem)
    except KeyError:
        members = set()
    return members | {p.pw_name for p in pwd.getpwall() if p.pw_gid == gid}


def _uid_of(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _acl_readers(path: Path, gid: int) -> tuple[set[int], set[int]] | None:
    """(uids, gids) besides the owner that the file's access ACL lets read it, or None
    where it has none (the mode says it all). With an ACL the mode's group bits are its
    mask, not the owning group's: `setfacl -m u:outboxd:r` on a 0600 file shows 0640
    whatever its group, and a named user it lets read shows in no group."""
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError:
        return None  # none set (ENODATA), or a file system without ACLs
    if len(raw) < 4 or (len(raw) - 4) % 8:
        return None
    entries = [struct.unpack_from("<HHI", raw, at) for at in range(4, len(raw), 8)]
    if any(tag == _MASK and not perm & _READ for tag, perm, _ in entries):
        return set(), set()
    readers = [(tag, ident) for tag, perm, ident in entries if perm & _READ]
    return ({i for t, i in readers if t == _USER},
            {gid if t == _GROUP_OBJ else i for t, i in readers if t in (_GROUP_OBJ, _GROUP)})


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def other_readers(path: Path, service_uids: set[int],
                  members: Callable[[int], set[str]] = group_members) -> str | None:
    """Who besides root, the file's owner and the service (`service_uids`) may read
    `path` by its mode, in words with the mode, or None (none, or it cannot be looked at:
    reading it says why). Readable by "other" always counts; by its group only where the
    group has a member outside those users, as the clerks in the shipped `outboxd`."""
    try:
        st = path.stat()
    except OSError:
        return None
    mode = f"mode {stat.S_IMODE(st.st_mode):04o}"
    if st.st_mode & stat.S_IROTH:
        return f"every user of this machine may read it ({mode})"
    if not st.st_mode & stat.S_IRGRP:
        return None  # no group, and with an ACL no named entry, may read it either
    trusted = service_uids | {0, st.st_uid}
    acl = _acl_readers(path, st.st_gid)
    users, gids = acl if acl is not None else (set(), {st.st_gid})
    others = sorted({_user_name(u) for u in users if u not in trusted}
                    | {m for g in gids for m in members(g) if _uid_of(m) not in trusted})
    if not others:
        return None
    shown = ", ".join(unquoted(m) for m in others[:SHOWN_MEMBERS])
    more = f" and {len(others) - SHOWN_MEMBERS} more" if len(others) > SHOWN_MEMBERS else ""
    if acl is not None:
        return (f"its ACL lets users besides outboxd's own read it ({mode}, the group "
                f"bits being the ACL's mask): {shown}{more}")
    return (f"its group {unquoted(_group_name(st.st_gid))} may read it ({mode}), and "
            f"that group has members besides outboxd's own user: {shown}{more}")


def service_uids(settings: Settings) -> set[int]:
    """The users that count as the service: this process's, and the state dir's owner
    (the daemon's user, where `config --check` runs as root)."""
    uids = {os.geteuid()}
    try:
        uids.add(settings.paths.state_dir.stat().st_uid)
    except OSError:
        pass
    return uids


def exposure_warnings(settings: Settings, config: Path | None,
                      members: Callable[[int], set[str]] = group_members) -> list[str]:
    """One warning per file that holds the token and that others may read; never the
    token. An inline token given by OUTBOXD_DELIVERY__TOKEN is not in the file. A
    token_file beside a token is not read (token wins): said instead, as an admin who
    moved the token into the file but left it in the configuration still sends that
    one (and the file's own mode was warned of, a folder as "holds the token")."""
    delivery, uids = settings.delivery, service_uids(settings)
    warnings = []
    in_file = "token" not in environment_overrides().get("delivery", {})
    if config is not None and delivery.token is not None and in_file and (
            who := other_readers(config, uids, members)):
        acl = ACL_FIX if who.startswith("its ACL") else ""
        warnings.append(f"the configuration file {unquoted(str(config))} holds [delivery] "
                        f"token, and {who} — {CONFIG_FIX}{acl}")
    if delivery.token_file is not None and delivery.token is not None:
        origin = "OUTBOXD_DELIVERY__TOKEN" if not in_file else "[delivery] token"
        warnings.append(f"[delivery] token_file {unquoted(str(delivery.token_file))} is not "
                        f"read: {origin} is set too, and wins — remove {origin} to send the "
                        "file's token, or remove token_file")
    elif delivery.token_file is not None and (
            who := other_readers(delivery.token_file, uids, members)):
        acl = ACL_FIX if who.startswith("its ACL") else ""
        warnings.append(f"[delivery] token_file {unquoted(str(delivery.token_file))} "
                        f"holds the token, and {who} — {TOKEN_FILE_FIX}{acl}")
    return warnings
