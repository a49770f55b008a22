"""Read invoices: which invoice ids an invoice file holds (SPEC §1.2).

UBL 2.x Invoice/CreditNote (any wrapper, document order), Svefaktura, PDF
text; anything else is one invoice named after the file's stem. XML is
parsed with defusedxml: entity declarations, external entities and DTDs are
refused, never expanded or fetched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden
from defusedxml.ElementTree import DefusedXMLParser

from daemon.bundle import InvoiceFormat
from daemon.errors import HostileInput, InputError
from daemon.fsops import open_regular
from daemon.names import stem

UBL_INVOICE = "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
UBL_CREDIT_NOTE = "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote"
CBC_ID = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}ID"
SVEFAKTURA = "{urn:sfti:documents:BasicInvoice:1:0}Invoice"


@dataclass(frozen=True)
class InvoiceRead:
    format: InvoiceFormat
    invoice_ids: tuple[str, ...]


class _BareDoctypeParser(DefusedXMLParser):  # type: ignore[misc]
    """Allows `<!DOCTYPE x>` alone; refuses a DOCTYPE that points at or declares anything."""

    def defused_start_doctype_decl(self, name: str, sysid: str | None, pubid: str | None,
                                   has_internal_subset: bool) -> None:
        if sysid or pubid or has_internal_subset:
            raise DTDForbidden(name, sysid, pubid)


def _parse_xml(fh: BinaryIO) -> Element:
    # forbid_dtd=True installs the doctype handler (defusedxml only hooks it then);
    # the override above lets a bare `<!DOCTYPE x>` through.
    parser = _BareDoctypeParser(forbid_dtd=True, forbid_entities=True, forbid_external=True)
    data = fh.read()
    parser.feed(data)
    root: Element = parser.close()
    return root


def _direct_id(elem: Element, tag: str | None = CBC_ID) -> str | None:
    for child in elem:
        if (tag and child.tag == tag) or (tag is None and child.tag.rsplit("}", 1)[-1] == "ID"):
            text = (child.text or "").strip()
            return text or None
    return None


def _xml_ids(root: Element, rel: str) -> tuple[InvoiceFormat, list[str]]:
    if root.tag == SVEFAKTURA:
        found = _direct_id(root, None)
        return "svefaktura", [found] if found else []
    ids: list[str] = []
    for elem in root.iter():
        if elem.tag in (UBL_INVOICE, UBL_CREDIT_NOTE):
            found = _direct_id(elem)
            if found is None:
                raise InputError("invoice-without-id", rel, "a UBL Invoice/CreditNote has no "
                                 "cbc:ID — add the invoice number to the document")
            if found in ids:
                raise InputError("duplicate-invoice-id", rel, f"the invoice id {found!r} occurs "
                                 "twice in this file — each invoice in a file needs its own id")
            ids.append(found)
    return ("ubl", ids) if ids else ("other", [])


def _pdf_ids(fh: BinaryIO, pattern: re.Pattern[str]) -> list[str]:
    from pypdf import PdfReader
    ids: list[str] = []
    try:
        reader = PdfReader(fh, strict=False)
        if reader.is_encrypted:
            return []
        for page in reader.pages:
            for m in pattern.finditer(page.extract_text() or ""):
                if m.group(1) not in ids:
                    ids.append(m.group(1))
    except Exception:  # noqa: BLE001 - pypdf raises many kinds on broken files; the stem stands in
        return []
    return ids


def read_invoice_file(path: Path, rel: str, pdf_id_pattern: str) -> InvoiceRead:
    """The invoice ids of one invoice file; raises InputError for files that break a rule."""
    fallback = (stem(path.name),)
    with open_regular(path, rel) as fh:
        head = fh.read(1024)
        fh.seek(0)
        if not head:
            raise InputError("empty-file", rel, "the invoice file is empty — export it again")
        if head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            try:
                root = _parse_xml(fh)
            except DefusedXmlException as exc:
                raise HostileInput("hostile-xml", rel, f"the XML declares entities or a DTD "
                                   f"({type(exc).__name__}); outboxd never expands or fetches "
                                   "them — export the invoice without a DTD") from None
            except ParseError as exc:
                raise InputError("invalid-xml", rel, f"is not well-formed XML ({exc}) — "
                                 "export the invoice again") from None
            except (LookupError, ValueError, RecursionError) as exc:
                # An unknown encoding name, or nesting deep enough to exhaust the stack.
                raise InputError("invalid-xml", rel, f"cannot be read as XML "
                                 f"({type(exc).__name__}: {str(exc)[:200]}) — export the "
                                 "invoice again as UTF-8") from None
            try:
                fmt, ids = _xml_ids(root, rel)
            except RecursionError:
                raise InputError("invalid-xml", rel, "nests elements too deeply to be an "
                                 "invoice — export the invoice again") from None
            return InvoiceRead(fmt, tuple(ids) or fallback)
        if head.startswith(b"%PDF-") or b"%PDF-" in head:
            ids = _pdf_ids(fh, re.compile(pdf_id_pattern))
            return InvoiceRead("pdf", tuple(ids) or fallback)
    return InvoiceRead("other", fallback)
