"""A bundle on its way here that another daemon finished: its row closed as sent.

Daemons sharing an outbox each keep their own journal (docs/operations.md, Several
daemons on one share). One may take over and archive a bundle another had claimed: a
work folder named before owners, an admin moving folders, a daemon started on a new
journal. The look at sent/ (sentnews.SentNews) then reads the receipt of a bundle this
journal has delivering or retrying; once this daemon's work folder for it is gone for
good, the row ends `sent`, naming the other daemon's entry, instead of retrying "is the
share mounted?" for ever. Gone for good, strictly: the work folder is missing from the
processing folder in force, which is there on the mount it was on at the start — a share
away (foldermounts.py) or a folder that cannot be looked at is never taken for it.

A part of `finish.Finisher` (a mixin). The row is closed by its own delivery attempt
(one worker at a time per row), never beside one that might write `retrying` after it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from daemon.bundle import Bundle
from daemon.configuration.config import Settings
from daemon.errors import InputError
from daemon.fs.fsops import folder_within
from daemon.journal import ELSEWHERE_DETAIL, Journal, Row
from daemon.logs import bundle_log
from daemon.watching.foldermounts import FolderMounts

_ON_ITS_WAY = ("delivering", "retrying")


class SentElsewhere:
    s: Settings
    j: Journal
    log: Any
    mounts: FolderMounts
    paused: set[int]
    untrusted: set[int]
    _move_faults: dict[int, tuple[int, float]]
    _validated: dict[int, Bundle]
    _chosen_here: set[int]  # see moves.Moves
    # sentnews.SentNews.in_flight (the service hands it over): bundle id → the record of
    # another daemon's sent/ entry of a bundle on its way here.
    elsewhere: Mapping[str, dict[str, Any]]

    def sent_elsewhere(self, row: Row) -> dict[str, Any] | None:
        """The record of another daemon's sent/ entry of this row's very bundle, if the
        row is on its way here and its work folder is gone for good; else None."""
        rec = self.elsewhere.get(row.bundle_id or "")
        if rec is None or rec["bundle_id"] != row.bundle_id or row.state not in _ON_ITS_WAY \
                or not row.work_dir:
            return None
        return rec if self._gone_for_good(Path(row.work_dir)) else None

    def _gone_for_good(self, work: Path) -> bool:
        processing = self.s.processing_dir
        if work.parent != processing:
            return False  # a processing folder no longer named: its mount is not known
        try:
            # Looked into from the outbox without following a link (folder_within): a
            # `.outboxd` a share user made a link to an empty folder would show every work
            # folder gone. Such a link proves nothing: the attempt refuses it, naming it.
            with folder_within(self.s.outbox.path, processing) as fd:
                os.stat(work.name, dir_fd=fd, follow_symlinks=False)
            return False  # there (a link too: the attempt refuses it and says so)
        except FileNotFoundError:
            pass
        except (OSError, InputError):
            # The processing folder itself gone, a link on the way, or what cannot be
            # looked at (permissions, a share's error): not known.
            return False
        # The bare mount point of a share gone (made again there by a claim) is no proof.
        return self.mounts.away(processing) is None

    def closable(self) -> list[int]:
        """The rows sent_elsewhere would close now (the loop brings them forward)."""
        return [row.id for bundle_id in list(self.elsewhere)
                for row in self.j.in_flight(bundle_id) if self.sent_elsewhere(row)]

    def close_sent_elsewhere(self, row: Row, rec: dict[str, Any]) -> None:
        """The row ends `sent` as of the other daemon's delivery, its entry its archive;
        nothing of it is retried."""
        self.j.transition(row.id, "sent", f"{ELSEWHERE_DETAIL} {rec['archive_dir']}",
                          since=rec["delivered_at"], archive_dir=rec["archive_dir"],
                          receipt_id=rec.get("receipt_id"), last_error=None,
                          next_attempt_at=None)
        self._move_faults.pop(row.id, None)
        self._validated.pop(row.id, None)
        self._chosen_here.discard(row.id)
        self.paused.discard(row.id)
        self.untrusted.discard(row.id)
        bundle_log(self.log, row.invoice_file, row.bundle_id, row.invoice_ids).warning(
            "bundle sent by another daemon (its receipt is in sent/); its work folder here "
            "is gone, so it is no longer retried", archive=rec["archive_dir"],
            work_dir=row.work_dir)
