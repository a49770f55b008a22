"""sd_notify over $NOTIFY_SOCKET without libsystemd: one datagram per message."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable


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


# How long one part of a long start step may take before systemd ends the start: as
# long as the default TimeoutStartSec=, counted afresh from each part done.
START_PART_SECONDS = 90


class StartProgress:
    """Before READY=1, a start step of many parts (reading sent/ back into a new journal:
    a receipt per bundle of up to 400 days, on a share) tells systemd after each part that
    the start goes on. Without it systemd ends a start that takes over TimeoutStartSec=,
    and Restart= begins it again from the start, for ever; a part that hangs is still
    ended. Said at most once a second; also shown by `systemctl status` (STATUS=)."""

    def __init__(self, what: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._clock = clock
        self._last: float | None = None

    def __call__(self, part: str) -> None:
        now = self._clock()
        if self._last is not None and now - self._last < 1.0:
            return
        self._last = now
        notify(f"STATUS=starting: {self._what} ({part})\n"
               f"EXTEND_TIMEOUT_USEC={START_PART_SECONDS * 1_000_000}")
