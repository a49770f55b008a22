"""`outboxd status`: what the journal says about every bundle, for people and scripts."""

from __future__ import annotations

import json
from typing import Any

from daemon.config import Settings
from daemon.journal import STATES, Journal, Row


def _bundle(row: Row) -> dict[str, Any]:
    return {"bundle_id": row.bundle_id, "invoice_file": row.invoice_file,
            "invoice_ids": row.invoice_ids, "state": row.shown_state, "since": row.since,
            "deadline": row.deadline, "unattached_ids": row.unattached_ids,
            "attempts": row.attempts, "next_attempt_at": row.next_attempt_at,
            "last_error": row.last_error, "reasons": row.reasons}


def collect(settings: Settings) -> dict[str, Any]:
    path = settings.journal_path
    if not path.exists():
        return {"counts": dict.fromkeys(STATES, 0), "bundles": []}
    journal = Journal(path, readonly=True)
    try:
        return {"counts": journal.counts(), "bundles": [_bundle(r) for r in journal.recent()]}
    finally:
        journal.close()


FINAL_STATES = ("quarantined", "sent")


def render(data: dict[str, Any], limit: int = 20) -> str:
    """SPEC §7 sections; of sent and quarantined only the `limit` most recent (a busy week
    holds thousands), with a line saying how many more there are."""
    counts = data["counts"]
    lines = ["  ".join(f"{state}: {n}" for state, n in counts.items())]
    sections = (("Waiting for attachments", "waiting"), ("Held (invalid)", "held"),
                ("Retrying", "retrying"), ("Quarantined recently", "quarantined"),
                ("Sent recently", "sent"))
    for title, state in sections:
        rows = [b for b in data["bundles"] if b["state"] == state]
        if not rows:
            continue
        hidden = 0
        if state in FINAL_STATES and len(rows) > limit:
            # Most recent first; rows come in journal order, which breaks ties.
            rows = [b for _, b in sorted(enumerate(rows), key=lambda ib: (ib[1]["since"], ib[0]),
                                         reverse=True)]
            hidden, rows = len(rows) - limit, rows[:limit]
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
        if hidden:
            lines.append(f"  … and {hidden} more (outboxd status --json lists them all)")
    return "\n".join(lines)


def as_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)
