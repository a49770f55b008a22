"""A bundle's step that fails (daemon/loop/stepping.py), on the loop without timing
(fakeloop): said once, with what to do, and nothing of the bundle lost."""

from __future__ import annotations

import errno
import sys
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

sys.path.insert(0, str(Path(__file__).parent.parent))

from fakeloop import FakeClock, settle_all  # noqa: E402
from helpers import _OsWith, pdf_bytes, ubl_invoice, write  # noqa: E402

import daemon.journal as journal_module  # noqa: E402
from daemon.errors import JournalLost  # noqa: E402


def test_a_claim_whose_journal_cannot_be_synced_is_said_once_and_the_bundle_stays(
        make_service: Any, clock: FakeClock, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The state dir's disk fails (EIO at the journal's fsync, injected) as a settled
    bundle is claimed: the step's failure is logged once, as an error naming the journal
    and the disk to check, without a traceback; the bundle stays in the outbox, unclaimed;
    and the loop's next turn ends the run (JournalLost), so that the service manager
    starts outboxd again from what is on disk."""
    svc = make_service()
    outbox = tmp_path / "outbox"
    write(outbox / "INV-1" / "a.pdf", pdf_bytes())
    write(outbox / "INV-1.xml", ubl_invoice("INV-1"))
    svc.hint("INV-1.xml")

    def failed(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(journal_module, "os", _OsWith(fsync=failed))
    with capture_logs() as logs, pytest.raises(JournalLost):
        settle_all(svc, clock)
    [said] = [e for e in logs if e["log_level"] == "error" and e.get("invoice_file")]
    assert said["event"] == "bundle step failed" and "exc_info" not in said
    assert "could not be synced to disk (Input/output error)" in said["error"]
    assert "check the disk holding [paths] state_dir" in said["error"]
    assert (outbox / "INV-1.xml").exists() and (outbox / "INV-1" / "a.pdf").exists()
