"""The two findings about what was sent before, in one wording for the daemon and for
`outboxd check`: `duplicate` (this exact bundle was sent, or is on its way: quarantined
under [policy] duplicates = "quarantine", decide.py) and `invoice-id-already-sent` (an
invoice id the receiver took in another bundle: a warning in the manifest, finish.py).
The daemon says "before"; check, which reads the journal for it, says when and where.
"""

from __future__ import annotations

from daemon.bundle import Finding


def duplicate(invoice_file: str, bundle_id: str, sent: str = "sent before") -> Finding:
    """`sent`: when and where, as "sent at TIME (folder F)", or "being sent since TIME"."""
    return Finding("duplicate", invoice_file, f"this exact bundle ({bundle_id[:12]}) was "
                   f"{sent} — remove it, or, if it is meant to be a new bundle, change a "
                   "file, a type or a note (another channel in attachments.toml alone does "
                   "not make a new bundle)")


def already_sent(invoice_file: str, invoice_id: str, where: str = "") -> Finding:
    """`where`: the other bundle, when and its folder, as "(INV-7.xml, sent at TIME …)"."""
    return Finding("invoice-id-already-sent", invoice_file, f"invoice {invoice_id} was "
                   "already sent in another bundle" + (f" {where}" if where else ""),
                   "warning", invoice_id)
