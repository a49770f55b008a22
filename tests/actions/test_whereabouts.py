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


def test_a_damaged_journal_leaves_sends_refusal_as_it_is_without_a_traceback(
        cfg: Env, capsys) -> None:
    """`send` of a name no file in the outbox has, beside a damaged journal (its pages
    overwritten): the journal cannot say what became of it, so the refusal is the plain
    one — no such invoice file, see `outboxd status` — exit 1, one line, no traceback,
    the journal file untouched."""
    import sys
    from pathlib import Path

    from daemon.cli import main
    sys.path.insert(0, str(Path(__file__).parents[1]))
    from journal.test_guarded import PAGE, written_journal

    settings = load_settings(cfg.config)
    settings.paths.state_dir.mkdir(parents=True, exist_ok=True)
    written_journal(settings.journal_path)
    with settings.journal_path.open("r+b") as f:
        f.seek(PAGE)
        f.write(b"\x5a" * 16)
    before = settings.journal_path.read_bytes()
    assert main(["send", "-c", str(cfg.config), "--without-attachments", "INV-1"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [f"outboxd: no invoice file or invoice id 'INV-1' in "
                                f"{settings.outbox.path} — outboxd status lists what waits"]
    assert settings.journal_path.read_bytes() == before
