"""Stand-ins and waits for tests of flock-held files and folders (tests/fs/test_temps.py,
tests/fs/test_folderlocks.py)."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable


def no_locks(fd: int, op: int) -> None:
    """flock on an NFS mount whose lock daemon is not running."""
    raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))


def ended_within(seconds: float, step: Callable[[], object]) -> BaseException | None:
    """What `step` raised (None if nothing), run in a thread: an AssertionError if it
    is still running after `seconds` (waiting for good, it is left to its thread)."""
    raised: list[BaseException | None] = []

    def run() -> None:
        try:
            step()
            raised.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            raised.append(exc)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert raised, f"still waiting after {seconds} s"
    return raised[0]
