"""Realistic sample inputs for `outboxd demo`, made at run time.

Nothing binary ships with the package except the official Peppol BIS 3
example invoice (`demo_data/base-example.xml`, an unchanged copy), whose
invoice number is swapped for the demo's; PDFs and TIFFs are written here.
"""

from __future__ import annotations

import io
import re
from importlib import resources
from pathlib import Path

_ROOT_ID = re.compile(rb"(<(?:\w+:)?Invoice\b[^>]*>\s*(?:<!--.*?-->\s*)*"
                      rb"(?:<cbc:(?:UBLVersionID|CustomizationID|ProfileID)>[^<]*</cbc:\w+>\s*)*"
                      rb"<cbc:ID>)[^<]*(</cbc:ID>)", re.S)


def peppol_invoice(invoice_id: str) -> bytes:
    """The official Peppol BIS Billing 3.0 base example with `invoice_id` as its number."""
    data = resources.files("daemon.actions").joinpath("demo_data/base-example.xml").read_bytes()
    out, n = _ROOT_ID.subn(lambda m: m.group(1) + invoice_id.encode() + m.group(2), data,
                           count=1)
    if n != 1:
        raise RuntimeError("demo_data/base-example.xml: the invoice's own cbc:ID was not found")
    return out


def peppol_batch(invoice_ids: list[str]) -> bytes:
    """One file holding several Peppol invoices inside a wrapper element, as ERPs export."""
    docs = [re.sub(rb"^<\?xml[^>]*\?>\s*", b"", peppol_invoice(i)) for i in invoice_ids]
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<InvoiceBatch>\n'
            + b"\n".join(docs) + b"\n</InvoiceBatch>\n")


def text_pdf(pages: list[str]) -> bytes:
    """A PDF whose pages carry one line of real text each (Helvetica), with a correct xref.

    pypdf writes no text, so the objects are written out here: catalog, pages, one page
    and content stream per text, one font.
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


def encrypted_pdf(text: str) -> bytes:
    """A PDF protected by an owner password only: it opens without one, yet is encrypted."""
    from pypdf import PdfReader, PdfWriter
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(text_pdf([text]))))
    writer.encrypt(user_password="", owner_password="demo-owner", algorithm="RC4-128")
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def tiff_scan(dpi: int, pages: int = 1) -> bytes:
    """A scanned page as TIFF at `dpi` (A4-shaped, small so the demo stays quick)."""
    from PIL import Image, ImageDraw
    frames = []
    for n in range(pages):
        img = Image.new("L", (248, 350), 255)
        ImageDraw.Draw(img).text((20, 20), f"Delivery note, page {n + 1}", fill=0)
        frames.append(img)
    buf = io.BytesIO()
    frames[0].save(buf, "TIFF", dpi=(dpi, dpi), save_all=pages > 1, append_images=frames[1:])
    return buf.getvalue()


def write_then_rename(path: Path, data: bytes) -> None:
    """Write under a temporary name and rename, as an ERP or a careful copy does."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.rename(path)
