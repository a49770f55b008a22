"""What tests of matching start from (test_match, test_idfolders, test_lookalikes,
test_notes): an invoice file written into an outbox (conftest's `outbox` fixture),
matched with its sidecar as the daemon matches it, and the bundle's layout, codes and
findings to assert on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers import UBL_NS, pdf_bytes, write

from daemon.bundle import Bundle, Finding
from daemon.configuration.config import Settings
from daemon.reading.match import assemble
from daemon.watching.scan import Candidate

PDF = pdf_bytes()


def batch_xml(*ids: str) -> bytes:
    """One XML file holding several UBL invoices in a wrapper element."""
    inner = "".join(f"<Invoice {UBL_NS}><cbc:ID>{i}</cbc:ID></Invoice>" for i in ids)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>{inner}</Batch>\n'.encode()


def settings(outbox: Path, /, **sections: dict[str, Any]) -> Settings:
    base: dict[str, dict[str, Any]] = {
        "outbox": {"path": str(outbox)},
        "paths": {"state_dir": str(outbox.parent / "state")},
        "delivery": {"url": "http://127.0.0.1:9/x"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return Settings(**base)


def candidate(outbox: Path, invoice_name: str, data: bytes) -> Candidate:
    invoice = write(outbox / invoice_name, data)
    name = Path(invoice_name).stem
    return Candidate(name, invoice, outbox / name, outbox / f"{name}.ready")


def match(outbox: Path, invoice_name: str, data: bytes, /, **sections: dict[str, Any]) -> Bundle:
    return assemble(candidate(outbox, invoice_name, data), settings(outbox, **sections))


def layout(bundle: Bundle) -> dict[str, list[str]]:
    """invoice id -> sorted attachment names."""
    return {i: sorted(a.original_name for a in bundle.attachments_of(i))
            for i in bundle.invoice_ids}


def codes(bundle: Bundle) -> list[str]:
    return sorted(f.code for f in bundle.errors)


def finding(bundle: Bundle, code: str) -> Finding:
    hits = [f for f in bundle.findings if f.code == code]
    assert hits, f"no {code} finding among {bundle.findings}"
    return hits[0]
