"""sd_notify over $NOTIFY_SOCKET without libsystemd: one datagram per message."""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send e.g. "READY=1"; False (and no error) when not run by systemd."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return False
    if path.startswith("@"):  # abstract namespace
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            # Never block the loop: a receiver that does not drain its socket
            # (only ten datagrams queue by default) would stall the daemon on
            # the eleventh STATUS=. A message that cannot go now is dropped.
            sock.setblocking(False)
            sock.connect(path)
            sock.send(message.encode("utf-8"))
    except OSError:
        return False
    return True


def watchdog_interval() -> float | None:
    """Half of WatchdogSec, when systemd asked for keep-alives (WATCHDOG_USEC)."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return int(usec) / 2_000_000
    except ValueError:
        return None
