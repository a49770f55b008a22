"""What the journal says became of an invoice file or id no longer in the outbox, for
the commands that look for one there (`send`, `attach`): a helpdesk asked to "send
INV-1001", or an ERP's script attaching to it after it went, learns that it went out,
or where it is stuck, not only that no file holds it."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from daemon.configuration.config import Settings
from daemon.errors import OutboxdError
from daemon.journal import Journal, Row
from daemon.journal.readonly import read_journal
from daemon.journal.records import LIVE
from daemon.loop.statelock import running
from daemon.names import stem


@dataclass(frozen=True)
class Endings:
    """How a command ends each answer: `sent` for a bundle that went out, `moving` for
    one on its way (being delivered, retried, quarantined), `quarantined` after the
    retry command, `unseen` for one deleted or moved without the daemon seeing it."""
    sent: str
    moving: str
    quarantined: str
    unseen: str


def latest_row(name: str, settings: Settings, *, as_id: bool = False) -> Row | None:
    """The journal's latest row (this week's finished bundles, every unfinished one) of the
    invoice file or id `name` (`as_id`: of the invoice id alone); None where it has none,
    or cannot be read (the caller's refusal stands without it; `outboxd status` says what
    is wrong)."""
    def latest(journal: Journal) -> Row | None:
        # attach names an invoice id, never a file: an invoice file whose stem is that id
        # but which holds other ids (Q-1.xml exported again as Q-1-new) is not its bundle.
        rows = [r for r in journal.recent() if name in r.invoice_ids or (
                not as_id and name in (r.invoice_file, stem(r.invoice_file)))]
        return rows[-1] if rows else None
    try:
        return read_journal(settings.journal_path, latest) \
            if settings.journal_path.exists() else None
    except (sqlite3.Error, OSError, OutboxdError):
        return None


def left_the_outbox(name: str, settings: Settings, ends: Endings, *,
                    as_id: bool = False) -> str | None:
    """What the journal says became of the invoice file or id `name` (latest_row, `as_id`
    as there), said for the person who asked; None where it knows nothing of it."""
    row = latest_row(name, settings, as_id=as_id)
    if row is None:
        return None
    state, where = row.shown_state, row.archive_dir
    if state == "sent":
        return f"{row.invoice_file} was sent at {row.since} ({where}); {ends.sent}"
    if state == "quarantined":
        short = (row.bundle_id or "")[:12]
        return (f"{row.invoice_file} was quarantined at {row.since} ({where}) — see "
                f"REASON.txt there; once fixed: outboxd retry {short}{ends.quarantined}")
    if state in LIVE:
        # Its row says "in the outbox", the outbox says otherwise: the file was deleted
        # or moved where no daemon saw it go ("left the outbox and is waiting" was both).
        listed = f"the journal still lists it as {state} (since {row.since}) until"
        up = running(settings.paths.state_dir)
        if up:
            why = f"deleted or moved away, unseen yet by the running daemon; {listed} its " \
                  "next rescan"
        elif up is False:
            why = f"deleted or moved while outboxd was stopped; {listed} outboxd starts " \
                  "and looks"
        else:
            why = f"deleted or moved (while outboxd was stopped?); {listed} the daemon " \
                  "next looks at the outbox"
        return f"{row.invoice_file} was {why}; {ends.unseen}"
    return (f"{row.invoice_file} left the outbox and is {state} since {row.since}; "
            f"{ends.moving} — outboxd status shows how it goes")
