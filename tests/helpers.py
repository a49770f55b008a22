"""Builders for real input files and a polling helper (no sleeps as synchronisation)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pypdf import PdfWriter

# Also what `outboxd demo` builds its samples with.
from daemon.actions.samples import text_pdf  # noqa: F401

# Unchanged copies of the official Peppol BIS 3 example documents (see fixtures/peppol/README.md),
# kept in the repository so a clean clone tests with nothing beside it.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "peppol"
UBL_NS = ('xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
          'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2" '
          'xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"')

T = TypeVar("T")


def ubl_invoice(invoice_id: str) -> bytes:
    """A small UBL invoice whose number is invoice_id (with other cbc:IDs inside, as real ones)."""
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice {UBL_NS}>\n'
            f"  <cbc:CustomizationID>urn:cen.eu:en16931:2017</cbc:CustomizationID>\n"
            f"  <cbc:ID>{invoice_id}</cbc:ID>\n"
            f"  <cac:AccountingSupplierParty><cac:Party><cac:PartyIdentification>"
            f"<cbc:ID>SUPPLIER-7</cbc:ID></cac:PartyIdentification></cac:Party>"
            f"</cac:AccountingSupplierParty>\n</Invoice>\n").encode()


def pdf_bytes(pages: int = 1, text_marker: str = "") -> bytes:
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    if text_marker:
        writer.add_metadata({"/Title": text_marker})
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def drop_bundle(outbox: Path, name: str, attachments: dict[str, bytes],
                invoice: bytes | None = None) -> Path:
    """Sidecar first, invoice last, written under a temporary name and renamed — as an ERP does."""
    for fname, data in attachments.items():
        write(outbox / name / fname, data)
    tmp = write(outbox / f".{name}.xml.tmp", invoice if invoice is not None else ubl_invoice(name))
    final = outbox / f"{name}.xml"
    tmp.rename(final)
    return final


def wait_for(condition: Callable[[], T], timeout: float = 20.0, interval: float = 0.05,
             what: str = "condition") -> T:
    """Poll until condition() is truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


MANIFEST_SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "manifest.schema.json"


def manifest_schema_problems(manifest: dict) -> list[str]:
    """Where a manifest breaks docs/manifest.schema.json, read strictly: a property the
    schema does not declare is a problem too (the schema must document every field)."""
    import json

    import jsonschema

    def strict(node: object) -> object:
        if isinstance(node, dict):
            out = {k: strict(v) for k, v in node.items()}
            if out.get("type") == "object" and "properties" in out:
                out["additionalProperties"] = False
            return out
        if isinstance(node, list):
            return [strict(v) for v in node]
        return node

    schema = strict(json.loads(MANIFEST_SCHEMA.read_text(encoding="utf-8")))
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator.iter_errors(manifest)]
