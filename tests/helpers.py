"""Builders for real input files and a polling helper (no sleeps as synchronisation)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pypdf import PdfWriter

# Copies of ../shared/fixtures/peppol (official Peppol BIS 3 examples), kept in the repo
# so a clean clone tests without the shared folder beside it.
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


def text_pdf(pages: list[str]) -> bytes:
    """A PDF whose pages carry real text (Helvetica, one line each), built by hand.

    pypdf writes no text, so the objects are written out with a correct xref
    table: catalog, pages, one page + content stream per text, one font.
    """
    n = len(pages)
    font_obj = 3 + 2 * n
    objects: list[bytes] = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        ("<< /Type /Pages /Kids [" + " ".join(f"{3 + 2 * i} 0 R" for i in range(n))
         + f"] /Count {n} >>").encode(),
    ]
    for i, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
        objects.append((f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                        f"/Resources << /Font << /F1 {font_obj} 0 R >> >> "
                        f"/Contents {4 + 2 * i} 0 R >>").encode())
        objects.append(b"<< /Length %d >>\nstream\n" % len(stream) + stream
                       + b"\nendstream")
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                   b"/Encoding /WinAnsiEncoding >>")
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += (b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n"
            % (len(objects) + 1, xref))
    return bytes(out)
