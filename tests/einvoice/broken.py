"""Broken copies of the official base example, one rule broken each (shared by the tests)."""

from __future__ import annotations

import base64
import re
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "einvoice"
BASE = (EXAMPLES / "base-example.xml").read_bytes()
SUPPLIER = b"    <cac:AccountingSupplierParty>"


def reference(doc_id: str, mime: str = "application/pdf") -> bytes:
    data = base64.b64encode(b"%PDF-1.4 not really").decode()
    return (f'    <cac:AdditionalDocumentReference><cbc:ID>{doc_id}</cbc:ID><cac:Attachment>'
            f'<cbc:EmbeddedDocumentBinaryObject mimeCode="{mime}" filename="a.bin">{data}'
            f"</cbc:EmbeddedDocumentBinaryObject></cac:Attachment>"
            f"</cac:AdditionalDocumentReference>\n").encode()


def with_id(data: bytes, invoice_id: str) -> bytes:
    return data.replace(b"<cbc:ID>Snippet1</cbc:ID>", f"<cbc:ID>{invoice_id}</cbc:ID>".encode(), 1)


def saxon_type_error(invoice_id: str) -> bytes:
    """A BASE invoice of `invoice_id` with its cbc:IssueDate twice: a rule's
    normalize-space() of the two fails with a type error (XPTY0004), about which Saxon
    writes a report of many lines to fd 2. (Two cbc:IDs did so before they were refused
    at reading, invoice-two-ids, where no rule runs.)"""
    base = with_id(BASE, invoice_id)
    date = re.search(rb"<cbc:IssueDate>[^<]*</cbc:IssueDate>", base)
    assert date is not None
    return base[:date.end()] + date.group(0) + base[date.end():]


# kind -> (the broken document, the rule id pre-flight must name)
BROKEN: dict[str, tuple[bytes, str]] = {
    "wrong-totals": (BASE.replace(b'<cbc:TaxInclusiveAmount currencyID="EUR">1656.25<',
                                  b'<cbc:TaxInclusiveAmount currencyID="EUR">1700.00<'),
                     "BR-CO-15"),
    "no-issue-date": (BASE.replace(b"    <cbc:IssueDate>2017-11-13</cbc:IssueDate>\n", b""),
                      "BR-03"),
    "zip-attachment": (BASE.replace(SUPPLIER, reference("zip-1", "application/zip") + SUPPLIER),
                       "BR-CL-24"),
    "empty-reference-id": (BASE.replace(SUPPLIER, reference("") + SUPPLIER), "BR-52"),
}
for _kind, (_data, _rule) in BROKEN.items():
    assert _data != BASE, _kind  # the replacement found its text


def nested(depth: int) -> bytes:
    """The base example with a UBL extension nesting elements `depth` deep: well-formed,
    valid under the XSD (an extension's content is anything)."""
    ext = (b'<ext:UBLExtensions xmlns:ext="urn:oasis:names:specification:ubl:schema:xsd:'
           b'CommonExtensionComponents-2"><ext:UBLExtension><ext:ExtensionContent>'
           + b"<x>" * depth + b"</x>" * depth
           + b"</ext:ExtensionContent></ext:UBLExtension></ext:UBLExtensions>")
    return BASE.replace(b"<cbc:CustomizationID>", ext + b"<cbc:CustomizationID>", 1)


def body(data: bytes) -> bytes:
    """The document without its XML declaration, to wrap several in one file."""
    return data.split(b"?>\n", 1)[1]


# Peppol BIS 4A (UBL 2.1, before EN 16931): no EN 16931 rules are chosen for it
# (docs/einvoice.md).
BIS_4A = ("urn:www.cenbii.eu:transaction:biitrns010:ver2.0:extended:"
          "urn:www.peppol.eu:bis:peppol4a:ver2.0")


def outside_en16931(data: bytes, customization_id: str | None) -> bytes:
    """The document with another CustomizationID, or none."""
    head, rest = data.split(b"<cbc:CustomizationID>", 1)
    tail = rest.split(b"</cbc:CustomizationID>", 1)[1]
    if customization_id is None:
        return head.rstrip(b" ") + tail.lstrip(b"\n")
    return head + f"<cbc:CustomizationID>{customization_id}</cbc:CustomizationID>".encode() \
        + tail
