"""`outboxd status`: what the journal says about every bundle, for people and scripts."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from daemon.config import Settings
from daemon.errors import JournalError
from daemon.journal import STATES, Journal, Row


def _bundle(row: Row) -> dict[str, Any]:
    return {"bundle_id": row.bundle_id, "invoice_file": row.invoice_file,
            "invoice_ids": row.invoice_ids, "state": row.shown_state, "since": row.since,
            "deadline": row.deadline, "unattached_ids": row.unattached_ids,
            "attempts": row.attempts, "next_attempt_at": row.next_attempt_at,
            "last_error": row.last_error, "reasons": row.reasons}


def _read(path: Path, immutable: bool) -> dict[str, Any]:
    journal = Journal(path, readonly=True, immutable=immutable)
    try:
        return {"counts": journal.counts(), "bundles": [_bundle(r) for r in journal.recent()]}
    finally:
        journal.close()


def collect(settings: Settings) -> dict[str, Any]:
    path = settings.journal_path
    if not path.exists():
        return {"counts": dict.fromkeys(STATES, 0), "bundles": []}
    try:
        try:
            return _read(path, immutable=False)
        except sqlite3.OperationalError:
            # A read-only state dir (a stopped daemon, a backup): SQLite cannot
            # make its -shm file there. Nothing writes then, so read the file as is.
            return _read(path, immutable=True)
    except sqlite3.Error as exc:
        raise JournalError(f"cannot read the journal {path}: {exc} — if it is damaged, stop "
                           "outboxd and move the file away; outboxd starts a new journal and "
                           "reads what was sent back from the receipts in sent/") from None


def render(data: dict[str, Any]) -> str:
    counts = data["counts"]
    lines = ["  ".join(f"{state}: {n}" for state, n in counts.items())]
    sections = (("Waiting for attachments", "waiting"), ("Held (invalid)", "held"),
                ("Retrying", "retrying"), ("Quarantined", "quarantined"), ("Sent", "sent"))
    for title, state in sections:
        rows = [b for b in data["bundles"] if b["state"] == state]
        if not rows:
            continue
        lines += ["", f"{title}:"]
        for b in rows:
            detail = {
                "waiting": f"no attachments: {', '.join(b['unattached_ids'])}; since "
                           f"{b['since']}; deadline {b['deadline'] or 'none (hold)'}",
                "held": "; ".join(r["message"] for r in b["reasons"]),
                "retrying": f"attempts {b['attempts']}, next {b['next_attempt_at']}, "
                            f"last error: {b['last_error']}",
                "quarantined": "; ".join(f"{r['file']}: {r['code']}" for r in b["reasons"]),
                "sent": f"at {b['since']}",
            }[state]
            lines.append(f"  {b['invoice_file']} [{', '.join(b['invoice_ids'])}] {detail}")
    return "\n".join(lines)


def as_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
