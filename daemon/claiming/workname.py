"""What a work folder's name says of who claimed it: `NAME--ID12--HOST-PID-OWNERRAND`
(claim.work_dir_for). Apart from claim.py, which makes such names, so that what only
reads them (`outboxd status`, foreign.py) does not import the readers and validation."""

from __future__ import annotations

import socket

from daemon.names import fit_bytes


def host_tag() -> str:
    """This host as work folder names carry it: its short name, cut to 32 bytes."""
    return fit_bytes(socket.gethostname().split(".")[0] or "host", 32)


def work_host(name: str) -> str | None:
    """The host a work folder's name carries (HOST may hold "-"), or None for a name that
    is no work folder's."""
    parts = name.split("--")
    if len(parts) < 3:
        return None
    host, _, rand = parts[-1].rpartition("-")
    host, _, pid = host.rpartition("-")
    return host if host and pid.isdigit() and rand else None
