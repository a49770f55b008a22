"""`[delivery] format = "ubl-embedded"` (docs/einvoice.md): attachments inside the UBL document.

Byte-preserving: expat reports where each element starts and ends in the
input bytes, and the new ``cac:AdditionalDocumentReference`` elements are
spliced in as text at the offset the UBL 2.1 schema requires — after any the
document already has, before ``cac:ProjectReference`` (Invoice) or
``cac:StatementDocumentReference`` (CreditNote). Nothing is re-serialised, so
every byte outside the inserted block stays as the ERP wrote it.

A file with several invoices is split into one document per invoice, each the
element's own bytes (behind the file's XML declaration). An invoice that
relies on a namespace prefix declared on the wrapper cannot be cut out byte
for byte; that is an error that says so.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from xml.parsers import expat
from xml.sax.saxutils import escape

from daemon.bundle import Attachment, Bundle, Finding
from daemon.errors import InputError
from daemon.invoices import read_xml_invoice, wide_encoding
from daemon.manifest import sent_name
from daemon.notes import MANIFEST_NAME
from daemon.parts import read_checked
from daemon.readonce import kept_read

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
EXT = "urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2"

# One invoice's attachments in all: its document is built and checked whole in memory, some
# 8 bytes of a reader's per byte embedded (ten 5 MB scans: 700 MB). 20 MB is four at the
# default max_attachment_bytes, a reader near 450 MB.
MAX_EMBEDDED_BYTES = 20_000_000

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


@dataclass(frozen=True)
class Document:
    invoice_id: str
    root: str
    data: bytes
    inserted: tuple[int, int]  # byte range of the inserted block in data


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
        at = p.CurrentByteIndex
        parts = name.split(" ")
        uri_local = " ".join(parts[:2]) if len(parts) > 1 else name
        if current is not None:
            if depth == root_depth + 1:
                if id_text is not None:
                    current.invoice_id = "".join(id_text).strip()
                    id_text = None
                if uri_local in BEFORE[current.key]:
                    current.insert_at = _tag_end(data, at)
                    line_start = data.rfind(b"\n", 0, child_start) + 1
                    lead = data[line_start:child_start]
                    current.indent = lead if not lead.strip() else b""
            if depth == root_depth:
                current.end = _tag_end(data, at)
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
        raise InputError("invalid-xml", rel, f"is not well-formed XML ({exc}) — export the "
                         "invoice again") from None
    return slices, encoding, decl


# ------------------------------------------------------------------ building

def _attr(value: str) -> str:
    return escape(value, {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})


def reference(att: Attachment, name: str, data: bytes, mime: str, cac: str, cbc: str,
              declare: str) -> str:
    """One cac:AdditionalDocumentReference, `name` its cbc:ID and filename; base64 on one
    line, never a DocumentTypeCode."""
    description = att.note or att.document_type
    return (f"<{cac}AdditionalDocumentReference{declare}><{cbc}ID>{escape(name)}</{cbc}ID>"
            f"<{cbc}DocumentDescription>{escape(description)}</{cbc}DocumentDescription>"
            f"<{cac}Attachment><{cbc}EmbeddedDocumentBinaryObject mimeCode=\"{_attr(mime)}\" "
            f"filename=\"{_attr(name)}\">{base64.b64encode(data).decode('ascii')}"
            f"</{cbc}EmbeddedDocumentBinaryObject></{cac}Attachment>"
            f"</{cac}AdditionalDocumentReference>")


def _prefixes(sl: Slice) -> tuple[str, str, str]:
    """The document's own prefixes for cac and cbc, or local declarations when it has none."""
    declare = ""
    out = []
    for uri, fallback in ((CAC, "cac"), (CBC, "cbc")):
        pfx = sl.prefixes.get(uri)
        if pfx is None:
            pfx = fallback
            declare += f' xmlns:{fallback}="{uri}"'
        out.append(f"{pfx}:" if pfx else "")
    return out[0], out[1], declare


def build(data: bytes, sl: Slice, whole: bool, decl: bytes, encoding: str,
          refs: list[str]) -> Document:
    """The invoice's document with the references spliced in after sl.insert_at."""
    eol = b"\r\n" if b"\r\n" in data[sl.start:sl.end] else (
        b"\n" if b"\n" in data[sl.start:sl.end] else b"")
    indent = sl.indent if eol else b""
    block = b"".join(eol + indent + r.encode(encoding, "xmlcharrefreplace") for r in refs)
    if whole:
        head, tail = data[:sl.insert_at], data[sl.insert_at:]
    else:
        lead = decl + (eol or b"\n") if decl else b""
        head, tail = lead + data[sl.start:sl.insert_at], data[sl.insert_at:sl.end]
        if data.endswith(b"\n"):
            tail += eol or b"\n"
    return Document(sl.invoice_id, sl.root, head + block + tail,
                    (len(head), len(head) + len(block)))


@dataclass(frozen=True)
class Plan:
    documents: tuple[Document, ...]
    findings: tuple[Finding, ...]


def documents_for(bundle: Bundle, mime_codes: frozenset[str], *,
                  safe_filenames: bool) -> Plan:
    """Every invoice of the bundle as one UBL document with its attachments inside.

    Each file goes in under its name as [delivery] safe_filenames sends it (cbc:ID and
    filename alike), as a part of a bundle would. Findings (errors) instead of documents
    when the rules of embedding (docs/einvoice.md) are broken: not UBL, a type outside the
    Peppol list, file names equal ignoring case as embedded, prefixes declared outside a
    split invoice.
    """
    inv = bundle.invoice_file
    rel = inv.name
    if inv.format != "ubl":
        return Plan((), (Finding("not-ubl", rel, f"is not a UBL Invoice/CreditNote ({inv.format})"
                                 "; [delivery] format = \"ubl-embedded\" sends UBL 2.1 only — "
                                 "export the invoice as Peppol BIS 3 UBL", "error"),))
    data = kept_read(inv.path)  # within finish.evaluate: the bytes matching hashed
    if data is None:
        data = read_xml_invoice(*inv.where, rel)
    try:
        slices, encoding, decl = scan(data, rel)
    except InputError as exc:
        return Plan((), (Finding(exc.code, exc.file, exc.message, "error"),))
    whole = len(slices) == 1 and _is_document_element(data, slices[0])
    findings: list[Finding] = []
    cut = {sl.invoice_id for sl in slices}
    # An invoice inside another one's element (in its UBLExtensions, say) is read as an
    # invoice of the file but is no document of its own: its attachments would go nowhere.
    findings.extend(Finding("embed-split", rel, f"invoice {invoice_id} lies inside another "
                            "invoice's element, so it cannot be sent as a document of its "
                            "own — export each invoice as an Invoice/CreditNote element of "
                            "its own", "error", invoice_id)
                    for invoice_id in inv.invoice_ids if invoice_id not in cut)
    docs: list[Document] = []
    for sl in slices:
        if not whole and sl.inherited:
            findings.append(Finding("embed-split", rel, f"invoice {sl.invoice_id} uses "
                                    f"namespace prefixes declared outside it "
                                    f"({', '.join(sorted(sl.inherited))}), so it cannot be sent "
                                    "on its own byte for byte — declare the namespaces on each "
                                    "Invoice/CreditNote element", "error", sl.invoice_id))
            continue
        cac, cbc, declare = _prefixes(sl)
        # embedded name, casefolded -> (what holds it, whether it is a folded name)
        seen = {n.casefold(): (f"the document's own {n!r}", False) for n in sl.filenames}
        refs: list[str] = []
        atts = sorted(bundle.attachments_of(sl.invoice_id), key=lambda a: a.original_name)
        # Known before any is read: the other checks still run, so that all is said at once.
        total = sum(a.size for a in atts if a.content_type in mime_codes)
        for att in atts:
            mime = att.content_type
            if mime not in mime_codes:
                findings.append(Finding("embed-type-not-allowed", att.rel, f"is {mime}; Peppol "
                                        f"allows only {', '.join(sorted(mime_codes))} inside an "
                                        "invoice — export it as PDF and put that file in its "
                                        "place",
                                        "error", att.invoice_id))
                continue
            # Access points are the receivers likeliest to refuse a name that is not
            # plain ASCII: the name is folded as a part's filename is (docs/einvoice.md).
            given = PurePosixPath(att.original_name).name
            name = sent_name(given, safe_filenames)
            folded = name != given
            if (clash := seen.get(name.casefold())) is not None:
                findings.append(Finding("embed-name-collision", att.rel, _collision(
                    name, clash[0], folded or clash[1]), "error", att.invoice_id))
                continue
            seen[name.casefold()] = (repr(att.rel), folded)
            if (bad := _not_xml(name)) is not None:  # U+FFFE, U+FFFF: a name may hold them
                findings.append(Finding("embed-character", att.rel, f"has a name holding "
                                        f"the character U+{bad:04X}, which an XML document "
                                        "cannot carry — rename the file", "error",
                                        att.invoice_id))
                continue
            if (bad := _not_xml(att.note or att.document_type)) is not None:
                what = "note" if att.note else "document type"
                findings.append(Finding("embed-character", att.rel, f"has a {what} in "
                                        f"{MANIFEST_NAME} holding the character U+{bad:04X}, "
                                        "which an XML document cannot carry — remove it from "
                                        f"the {what}", "error", att.invoice_id))
                continue
            if total > MAX_EMBEDDED_BYTES:
                continue
            try:
                content = kept_read(att.path)
                if content is None:
                    content = read_checked(att)
            except InputError as exc:  # a link or a FIFO put where the file was checked
                findings.append(Finding(exc.code, exc.file, exc.message, "error",
                                        att.invoice_id))
                continue
            refs.append(reference(att, name, content, mime, cac, cbc, declare))
        if total > MAX_EMBEDDED_BYTES:
            findings.append(Finding("embed-too-large", rel, f"invoice {sl.invoice_id}'s "
                                    f"attachments come to {total:,} bytes; ubl-embedded puts "
                                    f"at most {MAX_EMBEDDED_BYTES:,} bytes of attachments "
                                    "into one invoice's document — make them smaller (a scan "
                                    "at a lower resolution, a PDF exported again) or attach "
                                    "fewer", "error", sl.invoice_id))
            continue
        docs.append(build(data, sl, whole, decl, encoding, refs))
    return Plan(tuple(docs) if not findings else (), tuple(findings))


def _collision(name: str, other: str, folded: bool) -> str:
    """Why an attachment embedded as `name` collides with `other` (one of the two names
    folded by safe_filenames, or not)."""
    how = (f"would be embedded under the same file name as {other}: {name!r} once "
           "[delivery] safe_filenames has folded the names to ASCII, ignoring case"
           if folded else f"has the same file name as {other} ignoring case")
    return f"{how}; Peppol needs each embedded file name once — rename one of them"


# What XML 1.0 cannot hold even as a character reference (its production Char): a
# control character, U+FFFE, U+FFFF. TOML lets attachments.toml write them ("\u0001").
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _not_xml(text: str) -> int | None:
    """The code point of the first character of `text` that XML cannot hold, or None."""
    found = _NOT_XML_CHAR.search(text)
    return ord(found.group()) if found else None


def _is_document_element(data: bytes, sl: Slice) -> bool:
    """True when the Invoice/CreditNote is the file's root (nothing but prolog before it)."""
    before = re.sub(rb"<\?.*?\?>|<!--.*?-->|<!DOCTYPE[^>]*>", b"", data[:sl.start], flags=re.S)
    return not before.strip(b" \t\r\n\xef\xbb\xbf")
