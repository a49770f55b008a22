"""What the status page says in the admin's log (docs/operations.md): a write the share
refused, with the page's file and the fix; a release file whose name can never be used
and a look-alike left in the outbox by a quarantine, each said once while it stays.

The page shows the clerks these files; the log line is the admin's, and a page
rewritten every 2 s must not repeat it at each write.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable, Sequence
from pathlib import Path

from daemon import logs
from daemon.errors import NO_ROOM, NO_ROOM_FIX
from daemon.loop.idlefiles import Idle
from daemon.watching.leftalone import LeftBehind


def not_written(path: Path, exc: BaseException) -> dict[str, str]:
    """The fields of "cannot write the status page": the page's file, why, and where the
    environment refused (a full or read-only share, no permission), the admin's fix —
    not a bare "[Errno 28] No space left on device" naming no file. An OutboxdError (a
    clerk's own file at the page's name) says its fix in its words already."""
    fields = {"file": str(path), "error": str(exc)}
    if isinstance(exc, OSError):
        fields["error"] = exc.strerror or str(exc)
        then = ("; the page is written again by itself once it can be (or turn it off: "
                '[share] status_page = "")')
        fields["fix"] = (NO_ROOM_FIX if exc.errno in NO_ROOM
                         else "the outbox's file system is mounted read-only: remount it "
                         "read-write" if exc.errno == errno.EROFS
                         else "give outboxd's user write access to the outbox folder"
                         if exc.errno in (errno.EACCES, errno.EPERM)
                         else "check the outbox's file system") + then
    return fields


class PageLog:
    """The files the page shows that the log tells once while they stay (by their names
    on disk: two files shown alike are two, each said once, and one removed forgets
    only itself; one dropped again later is said again)."""

    def __init__(self) -> None:
        self.reported_bad: set[str] = set()  # bad release files logged, as on disk
        self._said_left: set[tuple[str, str]] = set()  # (name on disk, quarantine)

    def left(self, left: Sequence[LeftBehind]) -> frozenset[str]:
        """A look-alike left in the outbox by a quarantine, logged once for as long as it
        is shown; returns the names shown, as on disk, for the loop to know an event on
        one (a rename) calls for a refresh."""
        # By the name on disk: the file is what is said once. (One quarantine's
        # look-alikes vary one sidecar's name by case, Unicode form, ends and copies'
        # words, so no two of them are shown alike.)
        said = {(x.on_disk, x.quarantine) for x in left}
        for x in left:
            if (x.on_disk, x.quarantine) not in self._said_left:
                logs.bundle_log(logs.get(), x.invoice_file, x.bundle_id, x.invoice_ids).warning(
                    "look-alike sidecar left in the outbox by a quarantine; waits for a "
                    "person", file=x.name, quarantine=x.quarantine, error=f"{x.name}: {x.why}")
        self._said_left = said
        return frozenset(x.on_disk for x in left)

    def bad_names(self, idle: Iterable[Idle]) -> None:
        """A release file whose name can never be used, logged once while it stays: the
        scanner leaves release files to the page, so this is the only place that sees them."""
        bad = {i.on_disk: i for i in idle if i.bad_name}
        for on_disk, i in bad.items():
            if on_disk not in self.reported_bad:
                logs.get().error("release file cannot be used; left alone", file=i.name,
                                 error=f"{i.name}: {i.why}")
        # Only those still there: gone ones are forgotten (months of names never freed).
        self.reported_bad = set(bad)
