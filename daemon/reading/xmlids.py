"""Which invoice ids an XML invoice file names (docs/folder-convention.md, section 2):
the `cbc:ID` directly under each UBL Invoice/CreditNote, in document order and under
any wrapper, or the root's `ID` of a Svefaktura invoice; and the length an id may have,
whatever the file it is read from. The XML is parsed by invoicexml.py; what is read of
a file, and PDF text, by invoices.py.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from daemon.bundle import InvoiceFormat
from daemon.errors import DuplicateInvoiceIds, InputError
from daemon.names import first_of, printable
from daemon.reading.invoicexml import XML_SPACE

UBL_INVOICE = "{urn:oasis:names:specification:ubl:schema:xsd:Invoice-2}Invoice"
UBL_CREDIT_NOTE = "{urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2}CreditNote"
CBC_ID = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}ID"
SVEFAKTURA = "{urn:sfti:documents:BasicInvoice:1:0}Invoice"
UBL_ROOTS = (UBL_INVOICE, UBL_CREDIT_NOTE)


def _direct_id(elem: Any, rel: str, tag: str | None = CBC_ID) -> str | None:
    """The text of the ID that is `elem`'s own child (`tag`, or any namespace's `ID` for
    None), None for none or an empty one. More than one is an error: a document has one
    invoice number, and the second would be lost unsaid (with pre-flight off, nothing
    else reads the document before it goes)."""
    found = [child for child in elem if (tag and child.tag == tag) or (
        tag is None and child.tag.rsplit("}", 1)[-1] == "ID")]
    # XML's own white space only: str.strip() also takes U+0085, U+00A0 and U+2028 off,
    # so "INV-8\x85" was read as "INV-8" — another invoice's id.
    texts = [(child.text or "").strip(XML_SPACE) for child in found]
    if len(texts) > 1:
        kind = ("a Svefaktura " if tag is None else "a UBL ") + elem.tag.rsplit("}", 1)[-1]
        said, more = first_of([repr(printable(t[:60])) for t in texts], 5)
        lost = (f": it would be sent as the invoice {printable(texts[0][:60])!r} alone"
                if texts[0] else "")
        raise InputError("invoice-two-ids", rel, f"{kind} has {len(texts)} "
                         f"{'ID' if tag is None else 'cbc:ID'} elements of its own "
                         f"({', '.join(said)}{f' {more}' if more else ''}), where a "
                         f"document has one, its invoice number{lost} — have the ERP write "
                         "one invoice number in the document and export it again")
    return (texts[0] or None) if texts else None


# An id goes into every log line, the journal, the status page, `outboxd status`, a
# folder name and the manifest: one of 30 MB (an ERP's runaway field, or malice) made
# lines of 60 MB in each and a manifest the receiver refused. Real invoice numbers hold
# a few dozen characters; EN 16931 sets no limit, so this one is outboxd's own: the
# longest name a file (an invoice file whose stem is its id) can have.
MAX_INVOICE_ID_CHARS = 255


def checked_id(found: str, rel: str) -> str:
    if len(found) > MAX_INVOICE_ID_CHARS:
        raise InputError("invoice-id-too-long", rel, f"the invoice id "
                         f"'{printable(found[:40])}…' is {len(found):,} characters long, "
                         f"more than the {MAX_INVOICE_ID_CHARS} outboxd takes — correct "
                         "the invoice number and export the invoice again")
    return found


def xml_ids(root: Any, rel: str) -> tuple[InvoiceFormat, list[str]]:
    """Ids from an ElementTree or an lxml tree (lxml's without comments and PIs)."""
    if root.tag == SVEFAKTURA:
        found = _direct_id(root, rel, None)
        return "svefaktura", [checked_id(found, rel)] if found else []
    ids: dict[str, None] = {}  # in file order; a set's speed for a batch of thousands
    twice: dict[str, None] = {}
    # lxml filters in C; ElementTree's iter() takes one tag, so filter here.
    docs = root.iter(*UBL_ROOTS) if isinstance(root, etree._Element) else (
        e for e in root.iter() if e.tag in UBL_ROOTS)
    for elem in docs:
        found = _direct_id(elem, rel)
        if found is None:
            raise InputError("invoice-without-id", rel, "a UBL Invoice/CreditNote has no "
                             "cbc:ID — add the invoice number to the document")
        checked_id(found, rel)
        if found in ids:
            twice[found] = None
        ids[found] = None
    if twice:
        # Read on to the end: every id said twice is named at once, and the ids the file
        # holds go to the journal (the ERP looks its invoices up by them).
        which = (f"the invoice id {next(iter(twice))!r} occurs twice" if len(twice) == 1
                 else "the invoice ids " + ", ".join(map(repr, twice)) + " each occur more "
                 "than once")
        # The fix is the ERP's, as for every error in an invoice file: a clerk who
        # read only "needs its own id" edited the XML in the quarantine folder.
        raise DuplicateInvoiceIds(rel, f"{which} in this file — each invoice in a file "
                                  "needs its own id: correct the invoice numbers in the "
                                  "ERP and export the file again", tuple(ids))
    return ("ubl", list(ids)) if ids else ("other", [])
