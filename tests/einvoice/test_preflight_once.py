"""Pre-flight's cost (docs/einvoice.md): an invoice is checked by the e-invoice rules
once per settled version — not again at each turn of its wait for attachments, nor at
its claim or its delivery — and a new version is checked anew. Driven through the
loop's pipeline with a real journal, real files, the rules as shipped (in process) and
the directory transport."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from claimed import folders, make, quiet_logs, run_once  # noqa: F401 - quiet_logs: autouse
from helpers import drop_bundle, ubl_invoice

import daemon.einvoice  # noqa: F401 - loads the module the name below is looked up in

# The package re-exports preflight(), which shadows its module's name as an attribute.
_PREFLIGHT = sys.modules["daemon.einvoice.preflight"]


def test_a_waiting_invoice_is_checked_once_and_a_new_version_once_more(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    checked: list[str] = []
    real = _PREFLIGHT.preflight

    def counted(data: bytes, rel: str, mode: str = "error") -> object:
        checked.append(rel)
        return real(data, rel, mode)

    monkeypatch.setattr(_PREFLIGHT, "preflight", counted)
    p, s = make(tmp_path, policy={"unattached": "warn", "attachment_wait_seconds": 60},
                einvoice={"preflight": "error"})
    drop_bundle(s.outbox.path, "INV-1", {}, ubl_invoice("INV-1"))
    for now in (1000.0, 1010.0, 1020.0):  # the wait for attachments, turn by turn
        assert run_once(p, now=now) == []
    assert checked == ["INV-1.xml"]
    [row] = run_once(p, now=5000.0)  # the wait is over: claimed, delivered, archived
    assert p.j.get(row).state == "sent" and len(folders(s.sent_dir)) == 1
    assert checked == ["INV-1.xml"], "checked again at its claim or delivery"

    # A corrected export under the same name is another version: checked on its own.
    drop_bundle(s.outbox.path, "INV-1", {}, ubl_invoice("INV-1").replace(
        b"<cbc:BuyerReference>REF-42", b"<cbc:BuyerReference>REF-43"))
    assert run_once(p, now=6000.0) == []
    assert checked == ["INV-1.xml", "INV-1.xml"]
