"""What a work folder's name says of who claimed it: `NAME--ID12--HOST-PID-OWNERRAND`
(claim.work_dir_for): the host it was claimed on, and whether it is this daemon's to
finish (`whose`: this host, our state dir, a process gone or us). Apart from claim.py,
which makes such names, so that what only reads them (`outboxd status`, foreign.py)
does not import the readers and validation."""

from __future__ import annotations

import os
import re
import socket

from daemon.names import fit_bytes

OWNER_LEN = 6  # hex digits of claim.owner_of


def host_tag() -> str:
    """This host as work folder names carry it: its short name, cut to 32 bytes."""
    return fit_bytes(socket.gethostname().split(".")[0] or "host", 32)


def work_host(name: str) -> str | None:
    """The host a work folder's name carries (HOST may hold "-", and "--"), or None for a
    name that is no work folder's."""
    parts = _parts(name)
    return None if parts is None else parts[1]


# Whose a work folder is, as `whose` tells from its name (orphans.py acts on it).
OURS = "ours"  # this host's, our state dir's (or an outboxd's before owners), dead or us
SIBLING = "sibling"  # another daemon of this host (another state dir) whose process is gone
NOT_OURS = "not ours"  # another host's, a live process's, or no work folder name of ours


def whose(name: str, owner: str) -> str:
    """NAME--ID12--HOST-PID-[OWNER]RAND: ours when this host, our state dir (a name
    without OWNER: ours as before owners) and PID us or no longer running."""
    parts = _parts(name)
    if parts is None:
        return NOT_OURS
    _, host, pid_text, rand = parts
    pid = int(pid_text)
    if host != host_tag():
        return NOT_OURS
    if pid != os.getpid():
        try:
            os.kill(pid, 0)
            return NOT_OURS  # a live daemon's (another's, or a person's process's pid)
        except ProcessLookupError:
            pass
        except PermissionError:
            return NOT_OURS  # someone's process runs under that pid
    if len(rand) > OWNER_LEN and rand[:OWNER_LEN] != owner:
        return SIBLING
    return OURS


def work_stem(name: str) -> str | None:
    """The NAME a work folder's name NAME--ID12--TAG carries (the invoice file's stem,
    shortened where the whole would not fit), read from the right as the rest is: a
    clerk's stem may hold "--" itself; None for a name that is no work folder's."""
    found = _WORK_NAME.match(name)
    return None if found is None else found[1]


def work_bundle(name: str) -> str | None:
    """The ID12 a work folder's name NAME--ID12--TAG carries (the first 12 hex digits
    of its bundle's id, as the claim named it); None for a name that carries none."""
    parts = _parts(name)
    return None if parts is None else parts[0]


def named_for(name: str, owner: str) -> bool:
    """Whether a work folder's name carries this host's short name and the state dir
    OWNER `owner`: what a daemon of this name (HOST-OWNER) claimed, on this machine or on
    another that shares both (samename.py)."""
    parts = _parts(name)
    return parts is not None and parts[1] == host_tag() and len(parts[3]) > OWNER_LEN \
        and parts[3][:OWNER_LEN] == owner


def has_owner(name: str) -> bool:
    """Whether a work folder's name (one whose found ours) carries its state dir's
    OWNER, as every outboxd since owners names them."""
    parts = _parts(name)
    return parts is not None and len(parts[3]) > OWNER_LEN


# NAME--ID12--HOST-PID-[OWNER]RAND, read from the right: NAME may hold "--" (a clerk's
# file name), and so may HOST (a short host name such as xn--mnchen-3ya or web--1).
# Split at the last "--" (or the second last) instead, such a host's folders read as
# another host's (never ours: a crash's work folders were not finished, the status page
# named a host that does not exist) and carried no bundle id.
_WORK_NAME = re.compile(r"\A(.*)--([0-9a-fA-F]{12})--(.+)-([0-9]+)-([^-]+)\Z", re.DOTALL)


def _parts(name: str) -> tuple[str, str, str, str] | None:
    """(ID12, HOST, PID, [OWNER]RAND) of a work folder's name; None for a name that is
    no work folder's."""
    found = _WORK_NAME.match(name)
    if found is None:
        return None
    return found[2], found[3], found[4], found[5]
