"""At a start: the live rows of the previous run taken over. Those whose invoice file
is still in the outbox are remembered (waiting and held ones resumed as they were, two
rows of one name ended beside each other); the others are gone, with why; the errors
files a killed write left, or whose bundle left while the daemon was stopped, removed.
Part of `pipeline.Pipeline` (a mixin: its live rows and its memory of the errors files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from daemon.bundle import findings_of
from daemon.configuration.config import Settings
from daemon.errors import describe
from daemon.fs.temps import Listed
from daemon.journal import LIVE, Journal, Row
from daemon.loop.errorsfile import HeldErrors, drop_orphaned_errors, drop_unfinished_errors
from daemon.watching.scan import Candidate, candidate_for

LEFT_ALONE_AT_START = ("in the outbox, but no longer taken as an invoice file at start "
                       "(its name refused, or the patterns changed); left alone")


class Takeover:
    """The start's take-over of the journal's live rows (loop thread only)."""

    s: Settings
    j: Journal
    log: Any
    live: dict[str, Row]  # invoice file -> its live row, as last written
    _resumed: set[str]  # waiting or held rows taken over at start, not decided again since
    errors_files: HeldErrors

    if TYPE_CHECKING:
        # The pipeline's parts' (stranded.py, decide.py): declared for mypy only, so that
        # no stand-in here can come before them in the pipeline's bases
        # (tests/loop/test_service.py).
        def end_beside_or_later(self, row: Row, other: Row) -> None: ...

        def _clear_errors_file(self, cand: Candidate, row: Row) -> None: ...

    def start(self, present: set[str], listed: Listed | None = None,
              refused: Mapping[str, str] | None = None) -> None:
        """Take over the live rows of a previous run: those whose invoice file is
        no longer in the outbox are gone, the others are remembered. `listed`: the
        outbox's entries as the start's listing has them (scan.Listing.stats);
        `refused`: the root files it leaves alone (by the name on disk -> why)."""
        gone = []
        for row in self.j.rows(LIVE):  # by row id: the latest row of a name last
            if row.invoice_file in present:
                earlier = self.live.get(row.invoice_file)
                if earlier is not None:
                    # Two rows for one invoice file: a claim that ended at this start (or
                    # at a rescan, cut short by a crash) as one that did not happen, while
                    # the bundle dropped again had its own row. The later one follows the
                    # bundle; the other, left settling, stood for nothing until a restart.
                    self._resumed.discard(row.invoice_file)
                    self.end_beside_or_later(earlier, row)  # the start goes on
                self.live[row.invoice_file] = row
                if row.state in ("waiting", "held"):
                    self._resumed.add(row.invoice_file)
                if _explained(row):  # its NAME.errors.txt explains it until it is read
                    self.errors_files.remember(candidate_for(
                        self.s.outbox, row.invoice_file), tuple(findings_of(row.reasons)))
            else:
                gone.append(row)
        # What a kill mid-write of an errors file left: before any is written again.
        try:
            drop_unfinished_errors(self.s.outbox.path, present, listed)
        except OSError as exc:
            self.log.warning("cannot clear leftover temp files of errors files in the "
                             "outbox; tried again at the next start", error=describe(exc),
                             fix="let outboxd's user list and delete files in the outbox")
        # Those gone remembered too, as what their NAME.errors.txt says: a file with
        # other text was edited by a clerk, and is kept (errorsfile._Look).
        for row in gone:
            if _explained(row):
                self.errors_files.remember(candidate_for(
                    self.s.outbox, row.invoice_file), tuple(findings_of(row.reasons)))
        # After all held rows are remembered: the errors file of a NAME with another
        # held invoice file is rewritten for that one, not removed.
        for row in gone:  # taken out while we were stopped: as in step()
            self._clear_errors_file(candidate_for(self.s.outbox, row.invoice_file), row)
            # A name an older version took and this one refuses (a C1 control character)
            # is there still: said so, with why, as the page and the log say it; one no
            # longer an invoice file by the patterns is there too, left alone.
            there = listed is not None and row.invoice_file in listed
            # By the name on disk, as the row keeps it: another name shown alike (X +
            # U+202E and X\u202e typed) is no word on this row.
            why = (refused or {}).get(row.invoice_file) if there else None
            self.j.transition(row.id, "gone", f"in the outbox, but left alone: {why}"
                              if why is not None else LEFT_ALONE_AT_START if there
                              else "not in the outbox at start", durable=False)
        try:  # and those no row explains, whose bundle left while we were stopped
            drop_orphaned_errors(self.s.outbox.path, present, listed)
        except OSError as exc:
            self.log.warning("cannot remove an errors file of a bundle no longer in the "
                             "outbox; tried again at the next start", error=describe(exc),
                             fix="let outboxd's user list and delete files in the outbox")


def _explained(row: Row) -> bool:
    """Whether NAME.errors.txt may explain the live row's bundle: held, or held and
    settling again since one of its files changed (its reasons kept: the errors file
    stays until the bundle is read and decided again). Taken out of the outbox so, its
    errors file went on saying it was held, for good."""
    return row.state == "held" or (row.state == "settling" and bool(row.reasons))
