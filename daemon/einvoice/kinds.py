"""What an invoice file that is not UBL is, in words (docs/einvoice.md, `not-ubl`).

Reading gives an invoice file one of four formats, and "other" is all that a clerk
learned of a UN/CEFACT CII invoice, a UBL Order or a wrapper around nothing: an
internal word that says neither what the file is nor what to export instead. The
words here name the file's kind by its root element (or, for a file that is not
XML, by its content), so that the ERP's export that made it can be found.
"""

from __future__ import annotations

import io
import re

from daemon.bundle import InvoiceFile
from daemon.delivery.parts import read_checked
from daemon.errors import InputError
from daemon.reading.invoicexml import is_xml, root_tag
from daemon.reading.readonce import kept_read
from daemon.validation.sniff import sniff

UBL_NS = re.compile(r"urn:oasis:names:specification:ubl:schema:xsd:([A-Za-z]+)-2")
UBL_INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
# Roots that name an e-invoice syntax other than UBL, as an integrator knows them.
KNOWN_ROOTS = {
    "{urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100}CrossIndustryInvoice":
        "a UN/CEFACT CII invoice (CrossIndustryInvoice, as Factur-X, ZUGFeRD 2 and "
        "XRechnung CII write it)",
    "{urn:ferd:CrossIndustryDocument:invoice:1p0}CrossIndustryDocument":
        "a ZUGFeRD 1 invoice (CrossIndustryDocument)",
}


def what_it_is(inv: InvoiceFile) -> str | None:
    """The invoice file's kind in words ("a PDF", "a UBL Order", "XML whose root is
    <Batch> (in no namespace)"), for a message that says "is …, not UBL"; None when
    the file can no longer be read as it was checked."""
    if inv.format == "pdf":
        return "a PDF"
    if inv.format == "svefaktura":
        return "a Svefaktura 1.0 invoice (urn:sfti:documents:BasicInvoice:1:0)"
    data = kept_read(inv.path)  # within finish.evaluate: the bytes matching hashed
    try:
        if data is None:
            data = read_checked(inv)
        return _content_words(data, inv.name)
    except InputError:
        # Changed since its check, or no longer readable: its own error says so when it
        # is read again; here it is enough that it is not UBL.
        return None


def _content_words(data: bytes, rel: str) -> str:
    if not is_xml(data[:1024]):
        label = sniff(io.BytesIO(data), deep=False).label
        return ("an " if label[:1].lower() in "aeiou" else "a ") + label
    tag = root_tag(data, rel)  # its start tag alone: never the whole file parsed again
    ns, local = tag[1:].split("}", 1) if tag.startswith("{") else ("", tag)
    if tag in KNOWN_ROOTS:
        return KNOWN_ROOTS[tag]
    if (ubl := UBL_NS.fullmatch(ns)) and ubl.group(1) == local:
        return f"a UBL {local}"
    where = f"in the namespace {ns}" if ns else "in no namespace"
    if local in ("Invoice", "CreditNote"):
        # Mostly an export that left the namespace out, or wrote another one.
        return (f"XML whose root is <{local}> {where} (a UBL {local}'s is "
                f"{UBL_INVOICE_NS.replace('Invoice', local)})")
    return f"XML whose root is <{local}> ({where})"
