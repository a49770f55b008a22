"""What the daemon's journal tells `outboxd check`, read only (journal/readonly.py, as
`status` reads it): what was sent before (a bundle sent again is a `duplicate`, an
invoice id sent in another bundle `invoice-id-already-sent`), the look-alike folders a
quarantine left in the outbox, and the invoice files that left it lately.

A clerk's account may not read the state dir, and a fresh install has no journal:
check then goes on without it, and one note a run says what it could not tell.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from collections.abc import Callable
from typing import TypeVar

from daemon.bundle import Bundle, Finding
from daemon.configuration.config import Settings
from daemon.errors import OutboxdError
from daemon.journal import Journal, Row
from daemon.journal.readonly import JournalReader
from daemon.journal.records import UNREADABLE_REASONS
from daemon.loop import sentbefore
from daemon.manifest import bundle_id_of
from daemon.watching.leftalone import SPELLING
from daemon.watching.strays import ByStem, by_stem

T = TypeVar("T")

_SENT_CODES = "duplicate, invoice-id-already-sent"


class CheckJournal:
    """The journal's answers for one run of check, read from one open of it (close() at
    the end). `notes` says, once, what it could not tell; the caller prints and empties
    it."""

    def __init__(self, settings: Settings) -> None:
        self.path = settings.journal_path
        # Opened once a run, not once a bundle: 0.2 ms an open, 4 s for 20,000 bundles.
        self._reader = JournalReader(self.path)
        self._rows: list[Row] | None = None
        self._finished: ByStem | None = None
        self.notes: list[str] = []
        self._said = False  # the note that the journal cannot be read: once a run

    def finished(self) -> ByStem:
        """The invoice files sent or quarantined lately (a folder that came late)."""
        if self._finished is None:
            self._finished = by_stem(self._ask(lambda j: j.finished_files()) or [])
        return self._finished

    def spelling_rows(self) -> list[Row]:
        """The rows quarantined for a look-alike sidecar."""
        if self._rows is None:
            self._rows = self._read_spelling()
        return self._rows

    def sent_findings(self, bundle: Bundle, settings: Settings
                      ) -> tuple[list[Finding], list[Finding]]:
        """(errors, warnings) the journal gives the bundle, as the daemon gives them: the
        `duplicate` it quarantines at once under [policy] duplicates = "quarantine", and
        the `invoice-id-already-sent` warnings it sends with the bundle. The caller adds
        the warnings only to a bundle that will be sent (no errors), as the daemon does.
        None for a bundle with errors: the daemon stops it for those first."""
        if bundle.errors:
            return [], []
        bid, ids = bundle_id_of(bundle), list(bundle.invoice_ids)
        answer = self._ask(lambda j: (j.sent_before(bid), j.sent_in(ids, bid)),
                           missing_matters=True)
        if answer is None:
            return [], []
        before, sent_in = answer
        name = bundle.invoice_file.name
        if before is not None and settings.policy.duplicates == "quarantine":
            return [sentbefore.duplicate(name, bid, sentbefore.when_sent(
                before, settings.sent_dir))], []
        return [], [sentbefore.already_sent(name, i, sentbefore.sent_where(
                        row, settings.sent_dir)) for i, row in sent_in.items()]

    def _ask(self, question: Callable[[Journal], T], missing_matters: bool = False
             ) -> T | None:
        """The journal's answer; None (and one note) where there is none to read. A
        journal not there yet is no note for what only a quarantine or a delivery
        writes (nothing was), but is for what was sent: the daemon, when it starts,
        takes what sent/ holds for sent."""
        try:
            os.lstat(self.path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                if missing_matters:
                    self._note(f"there is no journal at {self.path} (outboxd has not run "
                               "with this configuration yet, or [paths] state_dir is not "
                               "the daemon's); check goes on without what the daemon "
                               f"knows: whether a bundle or an invoice id was sent before "
                               f"({_SENT_CODES})")
                return None
            # A clerk's account that may not enter the state dir.
            self._unreadable(f"cannot read the journal {self.path}: "
                             f"{exc.strerror or exc} — run check as the daemon's user, or "
                             "check [paths] state_dir and its permissions")
            return None
        try:
            return self._reader.read(question)
        except (sqlite3.Error, ValueError, OutboxdError) as exc:
            self._reader.close()
            self._unreadable(str(exc) if isinstance(exc, OutboxdError) else (
                f"cannot read the journal {self.path}: {exc} — check [paths] state_dir and "
                "its permissions, or run check as the daemon's user"))
            return None

    def close(self) -> None:
        """The journal closed, if it was opened: at the end of the run."""
        self._reader.close()

    def _unreadable(self, why: str) -> None:
        self._note(f"{why}; check goes on without what the daemon knows: whether a bundle "
                   f"or an invoice id was sent before ({_SENT_CODES}), look-alike folders "
                   "a quarantine left in the outbox, attachments that came after their "
                   "invoice left")

    def _note(self, text: str) -> None:
        if not self._said:
            self._said = True
            self.notes.append(f"note: {text}")

    def _read_spelling(self) -> list[Row]:
        rows = self._ask(lambda j: j.quarantined_for(SPELLING))
        if rows is None:
            return []
        for row in rows:
            if any(r["code"] == UNREADABLE_REASONS for r in row.reasons):
                self.notes.append(
                    f"note: {row.invoice_file}: the journal's reasons for its quarantine "
                    "cannot be read (not a JSON list of findings), so check cannot tell "
                    "which look-alike folders it left in the outbox — REASON.txt in "
                    f"{row.archive_dir} says  [{UNREADABLE_REASONS}]")
        return rows
