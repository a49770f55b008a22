"""This machine, as the settings fingerprint on the share names it (deciding.py): told
apart from another server that shares its short host name and state dir path, and so
the very same daemon name HOST-OWNER (claim.copy_tag) and work folder names.

The id is systemd's /etc/machine-id (/var/lib/dbus/machine-id on a system without
systemd), made once when the system is installed and kept across reboots. That id is
the machine's secret by systemd's rule (machine-id(5): an application shows a keyed
hash of it, never the id), and the fingerprint is readable by everyone on the share:
so only an HMAC of it, keyed by outboxd's own constant, is written. Without either file
(a container without one), the full host name (`hostname`, not cut to its short name)
stands for the machine: two servers with the same full name are then not told apart.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from daemon.fs.fsread import NotAFile, read_admin_file

# Read at each call, not copied at import: tests give each daemon its own (helpers'
# outboxd_with), as two machines would have.
MACHINE_ID_FILES: tuple[str, ...] = ("/etc/machine-id", "/var/lib/dbus/machine-id")
_KEY = b"outboxd: which machine runs a daemon of this name"
_LIMIT = 1024  # bytes: a machine id is 33


def machine_id() -> str:
    """16 hex digits that stay the same on this machine, differ on another, and do not
    give its machine-id away."""
    for name in MACHINE_ID_FILES:
        try:
            raw = read_admin_file(Path(name), _LIMIT).strip()
        except (OSError, NotAFile):  # a folder a bind mount made, a FIFO: the next one
            continue
        if raw:
            return _keyed(b"machine-id:" + raw)
    return _keyed(b"host:" + os.fsencode(machine_name()))


def machine_name() -> str:
    """This machine as an admin knows it: its full host name (fin01.new.example), where
    work folder names carry only the short one."""
    return os.uname().nodename or "unknown"


def _keyed(data: bytes) -> str:
    return hmac.new(_KEY, data, hashlib.sha256).hexdigest()[:16]
