"""The two findings about what was sent before, in one wording for the daemon and for
`outboxd check`: `duplicate` (this exact bundle was sent, or is on its way: quarantined
under [policy] duplicates = "quarantine", decide.py) and `invoice-id-already-sent` (an
invoice id the receiver took in another bundle: a warning in the manifest, finish.py).
Both say when and where, from the journal's row of the bundle sent (`when_sent`), so
that a clerk reading REASON.txt finds it in sent/ as `outboxd check` would show it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from daemon.bundle import Finding
from daemon.journal import DELIVERED, Row
from daemon.watching.leftalone import shared_name


def duplicate(invoice_file: str, bundle_id: str, sent: str = "sent before") -> Finding:
    """`sent`: when and where, as "sent at TIME (folder F)", or "being sent since TIME"."""
    return Finding("duplicate", invoice_file, f"this exact bundle ({bundle_id[:12]}) was "
                   f"{sent} — remove it, or, if it is meant to be a new bundle, change a "
                   "file, a type or a note (another channel in attachments.toml alone does "
                   "not make a new bundle)")


def already_sent(invoice_file: str, invoice_id: str, where: str = "") -> Finding:
    """`where`: the other bundle, when and its folder, as "(INV-7.xml, sent at TIME …)"
    (sent_where)."""
    return Finding("invoice-id-already-sent", invoice_file, f"invoice {invoice_id} was "
                   "already sent in another bundle" + (f" {where}" if where else ""),
                   "warning", invoice_id)


def sent_where(row: Row | None, sent_dir: Path) -> str:
    """already_sent's `where` for the journal's row of the other bundle (Journal.sent_in;
    None: the journal keeps no row of it): "(INV-7.xml, sent at TIME, folder
    sent/DAY/NAME--ID)", the folder once it is there. The daemon's warning goes into the
    manifest and so into receipt.json: with the journal lost, sent/ alone must still say
    which earlier bundle sent the invoice."""
    if row is None:
        return ""
    folder = sent_folder(row, sent_dir)
    return "(" + ", ".join(x for x in (row.invoice_file, f"sent at {row.since}",
                                        f"folder {folder}" if folder else "") if x) + ")"


def when_sent(row: Row, sent_dir: Path, time: Callable[[str], str] = str,
              listed: str = "outboxd status lists it") -> str:
    """duplicate's `sent` for the journal's row of the bundle sent before (sent_before):
    "sent at TIME (folder sent/DAY/NAME--ID)" — the folder once it is there, a delivered
    row's archive may still be under way — or "being sent since TIME (`listed`)".
    `time`: how a journal time is shown (REASON.txt: as the page shows it)."""
    if row.state in ("sent", DELIVERED):
        folder = sent_folder(row, sent_dir)
        return f"sent at {time(row.since)}" + (f" (folder {folder})" if folder else "")
    return f"being sent since {time(row.since)} ({listed})"


def sent_folder(row: Row, sent_dir: Path) -> str:
    """The folder in sent/ of the journal's row of a bundle sent, as a clerk finds it
    (DAY/NAME--ID); "" before it is there: a delivered row's archive may be under way."""
    return (shared_name(Path(row.archive_dir), sent_dir)
            if row.state == "sent" and row.archive_dir else "")
