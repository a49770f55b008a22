"""What the journal says became of an invoice no longer in the outbox
(daemon/actions/whereabouts.py), for `send` and `attach`."""

from __future__ import annotations

from conftest import Env

from daemon.actions.whereabouts import latest_row
from daemon.configuration.config_load import load_settings
from daemon.journal import Journal


def test_of_an_invoices_rows_the_latest_is_the_one_told(cfg: Env) -> None:
    """An invoice quarantined, then retried and waiting again: its latest row is what it
    is now, never the older quarantine."""
    settings = load_settings(cfg.config)
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    journal = Journal(settings.journal_path)
    try:
        journal.create("INV-1.xml", "quarantined", bundle_id="a" * 64, invoice_ids=["INV-1"])
        journal.create("INV-1.xml", "waiting", invoice_ids=["INV-1"], unattached_ids=["INV-1"])
    finally:
        journal.close()
    row = latest_row("INV-1", settings, as_id=True)
    assert row is not None and row.shown_state == "waiting"
