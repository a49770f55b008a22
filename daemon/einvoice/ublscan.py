"""Where each invoice of a UBL file lies in its bytes, for `ubl-embedded` (embed.py).

expat reports where each element starts and ends in the input bytes; from that the
scan keeps, for each Invoice/CreditNote, its byte range, the offset at which the UBL
2.1 schema puts new ``cac:AdditionalDocumentReference`` elements — after any the
document already has, before ``cac:ProjectReference`` (Invoice) or
``cac:StatementDocumentReference`` (CreditNote) — the indentation there, the namespace
prefixes in scope and those it borrows from outside, and the file names it already
embeds. Nothing is built here and nothing is re-serialised. A file that is not
ASCII-compatible (embed-encoding), declares entities (hostile-xml) or is not well-formed
(invalid-xml) is an InputError naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from xml.parsers import expat

from daemon.errors import InputError
from daemon.reading.invoicexml import XML_SPACE, wide_encoding, xml_fault

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
EXT = "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2"

# The children of Invoice / CreditNote that the UBL 2.1 schema puts before (or
# are) cac:AdditionalDocumentReference; the block goes after the last of them.
_HEAD = ["UBLVersionID", "CustomizationID", "ProfileID", "ProfileExecutionID", "ID",
         "CopyIndicator", "UUID", "IssueDate", "IssueTime"]
_INVOICE_BEFORE = (
    _HEAD + ["DueDate", "InvoiceTypeCode", "Note", "TaxPointDate", "DocumentCurrencyCode",
             "TaxCurrencyCode", "PricingCurrencyCode", "PaymentCurrencyCode",
             "PaymentAlternativeCurrencyCode", "AccountingCostCode", "AccountingCost",
             "LineCountNumeric", "BuyerReference"],
    ["InvoicePeriod", "OrderReference", "BillingReference", "DespatchDocumentReference",
     "ReceiptDocumentReference", "StatementDocumentReference", "OriginatorDocumentReference",
     "ContractDocumentReference", "AdditionalDocumentReference"])
_CREDIT_NOTE_BEFORE = (
    _HEAD + ["TaxPointDate", "CreditNoteTypeCode", "Note", "DocumentCurrencyCode",
             "TaxCurrencyCode", "PricingCurrencyCode", "PaymentCurrencyCode",
             "PaymentAlternativeCurrencyCode", "AccountingCostCode", "AccountingCost",
             "LineCountNumeric", "BuyerReference"],
    ["InvoicePeriod", "DiscrepancyResponse", "OrderReference", "BillingReference",
     "DespatchDocumentReference", "ReceiptDocumentReference", "ContractDocumentReference",
     "AdditionalDocumentReference"])


def _names(spec: tuple[list[str], list[str]]) -> frozenset[str]:
    cbc, cac = spec
    return frozenset([f"{EXT} UBLExtensions"] + [f"{CBC} {n}" for n in cbc]
                     + [f"{CAC} {n}" for n in cac])


BEFORE = {f"{NS_INVOICE} Invoice": _names(_INVOICE_BEFORE),
          f"{NS_CREDIT_NOTE} CreditNote": _names(_CREDIT_NOTE_BEFORE)}
UTF8_BOM = b"\xef\xbb\xbf"
ASCII_COMPATIBLE = re.compile(r"(utf-?8|us-ascii|ascii|iso-?8859-\d+|latin-?1|"
                              r"windows-125\d|cp125\d)$", re.I)


@dataclass
class Slice:
    """One Invoice/CreditNote of a file and where its attachments go."""

    root: str  # "Invoice" | "CreditNote"
    key: str  # "URI Invoice"
    start: int  # byte offsets of the element in the file
    end: int = 0
    insert_at: int = 0
    indent: bytes = b""
    invoice_id: str = ""
    prefixes: dict[str, str] = field(default_factory=dict)  # uri -> prefix in scope ("" default)
    inherited: set[str] = field(default_factory=set)  # prefixes used but declared outside
    filenames: list[str] = field(default_factory=list)  # embedded files already there


def _tag_end(data: bytes, at: int) -> int:
    """The offset just after the tag starting at `at` ('>' outside quotes)."""
    quote = 0
    for i in range(at + 1, len(data)):
        c = data[i]
        if quote:
            if c == quote:
                quote = 0
        elif c in (0x22, 0x27):
            quote = c
        elif c == 0x3E:
            return i + 1
    return len(data)


def _end_of(data: bytes, start: int, at: int) -> int:
    """The offset just after an element whose start tag begins at `start`, expat being
    at `at` when it ends it: at its end tag's '<', or, for an empty-element tag
    (`<cbc:Note/>`), already just after that tag — read from there on, the end was the
    next tag's, and the block went inside the element that follows."""
    whole = _tag_end(data, start)
    return whole if data[whole - 2:whole] == b"/>" else _tag_end(data, at)


def scan(data: bytes, rel: str) -> tuple[list[Slice], str, bytes]:
    """The UBL documents of a file, its encoding and its XML declaration (b"" if none),
    with the UTF-8 byte order mark before it if the file has one: a document cut from the
    file starts as the file does."""
    decl = b""
    encoding = "utf-8"
    bom = len(UTF8_BOM) if data.startswith(UTF8_BOM) else 0
    if data.startswith(b"<?xml", bom):
        decl = data[:data.index(b"?>") + 2]
        found = re.search(rb"""encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""", decl)
        if found:
            encoding = found.group(1).decode("ascii")
    elif (wide := wide_encoding(data)) is not None:
        # Taken for UTF-8, the block went in as UTF-8 bytes amid UTF-16 ones and the
        # error blamed the invoice.
        encoding = wide[0]
    if not ASCII_COMPATIBLE.match(encoding):
        raise InputError("embed-encoding", rel, f"is encoded as {encoding}; attachments can "
                         "be embedded only in UTF-8 (or another ASCII-compatible encoding) — "
                         "export the invoice as UTF-8")
    p = expat.ParserCreate(namespace_separator=" ")
    p.namespace_prefixes = True
    p.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    slices: list[Slice] = []
    scopes: list[dict[str, tuple[str, bool]]] = [{}]  # prefix -> (uri, declared inside slice)
    pending: dict[str, str] = {}
    starts: list[int] = []  # where each open element's start tag begins
    depth = 0
    current: Slice | None = None
    root_depth = 0
    child_start = 0
    id_text: list[str] | None = None

    def refuse(*_: object) -> None:
        raise InputError("hostile-xml", rel, "the XML declares entities; outboxd never expands "
                         "them — export the invoice without a DTD")

    def ns_start(prefix: str | None, uri: str | None) -> None:
        pending[prefix or ""] = uri or ""

    def start(name: str, attrs: dict[str, str]) -> None:
        nonlocal depth, current, root_depth, child_start, id_text
        at = p.CurrentByteIndex
        starts.append(at)
        parts = name.split(" ")
        uri_local = " ".join(parts[:2]) if len(parts) > 1 else name
        prefix = parts[2] if len(parts) > 2 else ""
        if current is None and uri_local in BEFORE:
            current = Slice(root=parts[1], key=uri_local, start=at)
            root_depth = depth + 1
        inside = current is not None
        scope = dict(scopes[-1])
        for pfx, uri in pending.items():
            scope[pfx] = (uri, inside)
        pending.clear()
        scopes.append(scope)
        depth += 1
        if current is None:
            return
        if depth == root_depth:
            current.prefixes = {uri: pfx for pfx, (uri, _) in sorted(scope.items())}
        used = [prefix] + [a.split(" ")[2] for a in attrs if len(a.split(" ")) > 2]
        if len(parts) > 1 and not prefix:
            used.append("")  # the default namespace
        for pfx in used:
            if pfx in scope and not scope[pfx][1]:
                current.inherited.add(pfx or "(default)")
        if depth == root_depth + 1:
            child_start = at
            if uri_local == f"{CBC} ID":
                id_text = []
        if uri_local == f"{CBC} EmbeddedDocumentBinaryObject":
            fname = next((v for k, v in attrs.items() if k.split(" ")[-1] == "filename"), "")
            if fname:
                current.filenames.append(fname)

    def chars(text: str) -> None:
        if id_text is not None:
            id_text.append(text)

    def end(name: str) -> None:
        nonlocal depth, current, id_text
        start_at, at = starts.pop(), p.CurrentByteIndex
        parts = name.split(" ")
        uri_local = " ".join(parts[:2]) if len(parts) > 1 else name
        if current is not None:
            if depth == root_depth + 1:
                if id_text is not None:
                    current.invoice_id = "".join(id_text).strip(XML_SPACE)  # as invoices.py
                    id_text = None
                if uri_local in BEFORE[current.key]:
                    current.insert_at = _end_of(data, start_at, at)
                    line_start = data.rfind(b"\n", 0, child_start) + 1
                    lead = data[line_start:child_start]
                    current.indent = lead if not lead.strip() else b""
            if depth == root_depth:
                current.end = _end_of(data, start_at, at)
                slices.append(current)
                current = None
        depth -= 1
        scopes.pop()

    p.StartNamespaceDeclHandler = ns_start
    p.StartElementHandler = start
    p.EndElementHandler = end
    p.CharacterDataHandler = chars
    p.EntityDeclHandler = refuse
    p.ExternalEntityRefHandler = lambda *_: refuse()  # type: ignore[assignment]
    try:
        p.Parse(data, True)
    except expat.ExpatError as exc:
        raise InputError("invalid-xml", rel, xml_fault(data) or f"is not well-formed XML "
                         f"({exc}) — export the invoice again") from None
    return slices, encoding, decl



def is_document_element(data: bytes, sl: Slice) -> bool:
    """True when the Invoice/CreditNote is the file's root (nothing but prolog before it)."""
    before = re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", b"", data[:sl.start], flags=re.S)
    return not before.strip(b" \t\r\n\xef\xbb\xbf")
