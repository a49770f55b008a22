"""Work folders of an outbox moved while outboxd was stopped (docs/operations.md, Moving
the outbox to a new path or server): each row in flight names its work folder by the
path it had, and is taken up in the processing folder now configured. A part of
`recovery.Recovery` (a mixin: it shares the finisher's journal and settings).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from daemon.configuration.config import Settings
from daemon.errors import JournalError, JournalLost, describe
from daemon.fs.workfolder import folder_mark, hold_folder, left_at
from daemon.journal import IN_FLIGHT, Journal, Row
from daemon.logs import bundle_log

# How long a start looks at a moved work folder's recorded path (_follow_moved): far
# above a look at a share that answers, well within systemd's start timeout.
OLD_PATH_SECONDS = 5.0


class MovedWork:
    s: Settings
    j: Journal
    log: Any
    # Rows whose work folder could not be looked for where the outbox moved to
    # (_follow_moved), with the error each had before; old processing folders whose
    # look did not answer, not looked into again.
    _unfollowed: dict[int, str | None]
    _hung: set[Path]

    def unfollowed(self) -> frozenset[int]:
        """The rows whose moved work folder a look has not found yet: the orphan sweep
        leaves a folder of that name alone. Taken for no row's, an empty one (a claim
        stopped before its first rename) was removed, and one holding the bundle was said
        to be copied in by someone, the admin told to move its files into the outbox,
        while its row waited to be finished from there."""
        return frozenset(self._unfollowed)

    def followed_again(self) -> list[Row]:
        """The rows whose work folder the start could not look for in the processing
        folder now configured (_follow_moved: the share failed the look), looked for again
        (at each rescan, before the orphan sweep, which would name the folder as no
        row's): those it now answered for, each naming the work folder to finish it from.
        Left to the next start, such a bundle waited for a restart, its row naming the
        old path."""
        answered: list[Row] = []
        for row_id in sorted(self._unfollowed):
            try:
                row = self.j.get(row_id)
                if row.state not in IN_FLIGHT:
                    del self._unfollowed[row_id]
                    continue
                log = bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids)
                followed = self._follow_moved(row, log)
            except JournalLost:
                raise
            except JournalError:
                continue  # said by the journal, once; looked for again at the next rescan
            if followed is not None:
                answered.append(followed)
        return answered

    def _follow_moved(self, row: Row, log: Any) -> Row | None:
        """The row with its work folder where the admin moved it: the outbox (with the
        processing folder in it) moved to a new path or a new server while bundles were
        in flight (docs/operations.md, Moving the outbox). The journal names each work
        folder by its full path, so they were retried for ever as "not there (is the
        share mounted?)" while the folders themselves, in the processing folder now
        configured, were named "not left by outboxd". A work folder's name is unique (its
        bundle id, host, process and a random part): one of that name in the current
        processing folder, while none is left at the recorded path, is the same folder.
        A recorded path still there is used as it is (a copy, not a move, left both).
        The recorded path is looked at last, and for OLD_PATH_SECONDS at most: it is
        outside the folders configured, often on the server the outbox was moved off,
        whose mount hangs once that server is switched off — a look without a bound held
        the start before READY until systemd killed it, at every restart. One that does
        not answer is taken for left (the folder under its name here is the move's), and
        the others recorded in its folder are not looked at again (`_hung`).
        None when the look for the folder here fails otherwise than "not there" (the
        share's EIO, ESTALE): the row, which names the old path, says why and waits, its
        bundle neither finished nor sent, and follow_moved_again looks at each rescan. Taken
        for "not here", the row kept its old path until the next start: "is the share
        mounted?" for good once the share was back, and the folder here said to be no
        row's (orphans.py)."""
        if not row.work_dir:
            return row
        old = Path(row.work_dir)
        new = self.s.processing_dir / old.name
        if old.parent == self.s.processing_dir:
            return row
        try:
            here = self._folder_here(new)
        except OSError as exc:
            self._cannot_follow(row, new, exc, log)
            return None
        # Its error as before it waited (a retry's "HTTP 503"), once it no longer waits
        # (dropped from _unfollowed once that is written: a write refused looks again).
        fields: dict[str, Any] = {"last_error": self._unfollowed[row.id]} \
            if row.id in self._unfollowed else {}
        if not here:
            there: bool | None = True  # none here to take up: the row keeps its path
        else:
            there = None if old.parent in self._hung else left_at(old, OLD_PATH_SECONDS)
        if there:
            if fields:
                self.j.update(row.id, **fields)
                self._unfollowed.pop(row.id, None)
                return self.j.get(row.id)
            return row
        if there is None:
            self._hung.add(old.parent)
        fields["work_dir"] = str(new)
        if row.claimed_in is not None:
            fields["claimed_in"] = folder_mark(self.s.processing_dir, self.s.outbox.path)
        self.j.update(row.id, **fields)
        self._unfollowed.pop(row.id, None)
        log.warning("work folder found in the processing folder now configured; the "
                    "bundle is finished from there", was=str(old), work_dir=str(new),
                    **({} if there is False else {"was_path": "does not answer"}))
        return self.j.get(row.id)

    def _folder_here(self, new: Path) -> bool:
        """Whether a work folder is at `new`, in the processing folder now configured,
        reached as hold_folder reaches one (a link in its place or on its way is none);
        an OSError when the look cannot tell (the share fails it)."""
        try:
            os.close(hold_folder(new, within=self.s.outbox.path))
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ELOOP, errno.ENOTDIR):
                return False
            raise
        return True

    def _cannot_follow(self, row: Row, new: Path, exc: OSError, log: Any) -> None:
        """The row whose work folder cannot be looked for at `new` now: waiting, saying
        why (a claim, delivered or quarantining row shows `retrying` with it, a
        `delivering` one goes `retrying`, never "Being sent" while nothing is), the error
        it had before kept for when it no longer waits."""
        error = (f"cannot look for its work folder in the processing folder now configured "
                 f"({new}): {describe(exc)} — is the share mounted? Looked for again at "
                 "each rescan")
        if row.id not in self._unfollowed:
            self._unfollowed[row.id] = row.last_error
        if error == row.last_error:
            return  # written and said once, not at every rescan that finds it so
        if row.state == "delivering":
            self.j.transition(row.id, "retrying", "work folder not looked for",
                              last_error=error)
        else:
            self.j.update(row.id, last_error=error)
        log.error("cannot look for a work folder in the processing folder now configured; "
                  "will look again at each rescan", was=row.work_dir, error=describe(exc))
