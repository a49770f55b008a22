"""Pre-flight (docs/einvoice.md): the official rules on each UBL document of an invoice file.

Which rules is decided per document by its ``cbc:CustomizationID``; a file
with several invoices is checked document by document and each finding names
its invoice. Findings use the code ``einvoice-rule``:
``INV-1.xml: [BR-CO-15] Invoice total amount with VAT … (/Invoice/cac:LegalMonetaryTotal)``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from daemon.bundle import Finding, Severity
from daemon.einvoice import engine as engine_mod
from daemon.einvoice.artefacts import PEPPOL_BIS3, RuleSet, almost_peppol, rule_sets_for
from daemon.errors import InputError
from daemon.invisible import escaped_controls
from daemon.reading.invoicexml import XML_SPACE, wide_encoding, xml_fault

Mode = Literal["error", "warn", "off"]

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CBC = "{urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2}"
ROOTS = {f"{{{NS_INVOICE}}}Invoice": "Invoice", f"{{{NS_CREDIT_NOTE}}}CreditNote": "CreditNote"}
MAX_FINDINGS = 40  # per document; a file from the wrong export fails hundreds of rules
FIX = "correct the invoice in the ERP and export it again"


@dataclass(frozen=True)
class Document:
    """One UBL Invoice/CreditNote of a file, ready for the rules."""

    invoice_id: str
    root_name: str  # "Invoice" | "CreditNote"
    customization_id: str | None
    tree: Any  # lxml element (the root of its own document)
    text: str  # serialised by lxml: ASCII, no declaration, no DTD
    rel: str  # the file it is in, as findings name it


@dataclass(frozen=True)
class Result:
    checked: bool  # False: no document of the file is EN 16931 UBL (Svefaktura, PDF, …)
    findings: tuple[Finding, ...] = ()
    not_checked: tuple[str, ...] = field(default=())  # invoice ids not pre-flighted, and why
    fatal: tuple[Finding, ...] = ()  # those findings that are fatal assertions or XSD errors

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")


def documents(data: bytes, rel: str) -> list[Document]:
    """Every UBL Invoice/CreditNote in the file, each as a document of its own."""
    root = _parsed(data, rel)
    return [_document(el, root, rel) for el in root.iter(*ROOTS)]


def _parsed(data: bytes, rel: str) -> Any:
    """The file's root element (InputError invalid-xml when it is not XML)."""
    eng = engine_mod.load()
    etree = eng._etree
    try:
        return etree.fromstring(data, eng.parser())
    except etree.XMLSyntaxError as exc:
        raise InputError("invalid-xml", rel, _unreadable(data, exc)) from None


def _document(el: Any, root: Any, rel: str) -> Document:
    """The Invoice/CreditNote `el` of the file whose root is `root`, as its own document."""
    eng = engine_mod.load()
    etree = eng._etree
    text = _char_refs(etree.tostring(el, encoding="ascii", xml_declaration=False)
                      .decode("ascii"))
    tree = el if el is root else etree.fromstring(text.encode("ascii"), eng.parser())
    own_id = el.find(f"{CBC}ID")
    cid = el.find(f"{CBC}CustomizationID")
    return Document(
        # As invoices.py reads it (XML_SPACE): an id trimmed of U+00A0 named another.
        invoice_id=(own_id.text or "").strip(XML_SPACE) if own_id is not None else "",
        root_name=ROOTS[el.tag],
        # As the rules read it (XPath's normalize-space: XML white space only).
        customization_id=(cid.text or "").strip(XML_SPACE) if cid is not None else None,
        tree=tree, text=text, rel=rel)


def _char_refs(text: str) -> str:
    """`text` with XML's predefined entity references (lxml writes `&` as `&amp;`) as
    character references, which mean the same. SaxonC's parser (the JDK's) counts every
    `&amp;`, `&lt;` and `&gt;` of a document towards its limit of 100,000 characters of
    entities, and a valid invoice with more (item names like "Nuts & Bolts" on thousands
    of lines) could not be checked at all; character references it does not count. A
    document reaches here without a DTD, so no other entity is in it."""
    for name, number in (("&amp;", "&#38;"), ("&lt;", "&#60;"), ("&gt;", "&#62;"),
                         ("&quot;", "&#34;"), ("&apos;", "&#39;")):
        text = text.replace(name, number)
    return text


def _unreadable(data: bytes, exc: Exception) -> str:
    """Why lxml could not read the file. UTF-16 without a byte order mark (and without a
    declaration, which lxml would go by) read as "Char 0x0 out of allowed range", which
    no clerk can act on; XML requires the mark of UTF-16, and UTF-8 needs none."""
    wide = wide_encoding(data)
    if wide is not None and not wide[1]:
        name = wide[0].upper()
        return (f"is {name} without a byte order mark ({name} XML needs one to be read) — "
                "export the invoice as UTF-8")
    # libxml2 names the line of the declaration, not of the byte it could not read.
    return xml_fault(data) or f"is not well-formed XML ({exc}) — export the invoice again"


def check_document(doc: Document) -> list[engine_mod.Assertion] | None:
    """XSD + the document's rule sets; None when its CustomizationID names no EN 16931 rules."""
    rule_sets = rule_sets_for(doc.customization_id)
    return None if rule_sets is None else _run(doc, rule_sets)


def check_built(doc: Document) -> list[engine_mod.Assertion]:
    """The fatal assertions of a document ubl-embedded built: the UBL 2.1 XSD whatever its
    CustomizationID — ubl-embedded builds UBL 2.1 documents only, and one outside EN 16931
    went out unchecked, without its cbc:IssueDate — then the rule sets it names, if any."""
    return [a for a in _run(doc, rule_sets_for(doc.customization_id) or ()) if a.fatal]


def _run(doc: Document, rule_sets: tuple[RuleSet, ...]) -> list[engine_mod.Assertion]:
    eng = engine_mod.load()  # loaded once per process: the XSD and rules are compiled there
    found = eng.xsd_errors(doc.root_name, doc.tree)
    if rule_sets:
        found += eng.schematron(rule_sets, doc.tree, doc.text, doc.rel, bool(found))
    return found


def preflight(data: bytes, rel: str, mode: Mode = "error") -> Result:
    """Pre-flight the bytes of one invoice file (``rel`` names it in the findings).

    ``mode`` is ``[einvoice] preflight``: fatal assertions and XSD errors are
    errors under "error", warnings under "warn"; the rules' own warnings are
    warnings in both; "off" looks at nothing. Raises ConfigError when the
    engine cannot load, InputError when the bytes are not XML.
    """
    if mode == "off":
        return Result(checked=False)
    root = _parsed(data, rel)
    several = any(True for _ in itertools.islice(root.iter(*ROOTS), 1, None))
    findings: list[Finding] = []
    fatal: list[Finding] = []
    skipped: list[str] = []
    checked = False
    # One document at a time: each is a copy of its part of the file, as text and as a
    # tree of its own, and a batch of 15,000 invoices made all at once took a reader
    # ~750 MB past its size.
    for el in root.iter(*ROOTS):
        doc = _document(el, root, rel)
        found = check_document(doc)
        if almost_peppol(doc.customization_id):
            findings.append(_not_quite_peppol(doc, rel, ran=found is not None))
        if found is None:
            skipped.append(f"{doc.invoice_id}: " + (
                f"its CustomizationID {doc.customization_id!r} names no EN 16931 rules"
                if doc.customization_id else "it has no CustomizationID"))
            continue
        checked = True
        for finding, is_fatal in _findings(doc, found, rel, mode, several):
            findings.append(finding)
            if is_fatal:
                fatal.append(finding)
    return Result(checked, tuple(findings), tuple(skipped), tuple(fatal))


def _not_quite_peppol(doc: Document, rel: str, ran: bool) -> Finding:
    """The warning of an invoice whose CustomizationID looks like Peppol BIS 3's and is
    not: the rules are chosen by the id (only EN 16931's, or none, ran), and the invoice
    went out as checked when an access point would refuse it."""
    shown = escaped_controls((doc.customization_id or "")[:200])
    which = "only the EN 16931 rules were" if ran else "no EN 16931 rule was either"
    return Finding("peppol-id-mismatch", rel, f"invoice {doc.invoice_id}: its "
                   f"CustomizationID '{shown}' looks like Peppol BIS Billing 3.0's but does "
                   f"not begin with '{PEPPOL_BIS3}', so the Peppol BIS 3 rules were not run "
                   f"({which}) and a Peppol access point will refuse the invoice — if it "
                   "goes to Peppol, correct the CustomizationID in the ERP's export",
                   "warning", invoice_id=doc.invoice_id or None)


def _findings(doc: Document, found: list[engine_mod.Assertion], rel: str, mode: Mode,
              several: bool) -> list[tuple[Finding, bool]]:
    """Each finding with whether it is fatal (an assertion the rules flag fatal, an XSD
    error, or a summary counting one)."""
    who = f"invoice {doc.invoice_id}: " if several else ""
    out: list[tuple[Finding, bool]] = []
    for a in found[:MAX_FINDINGS]:
        severity: Severity = "error" if a.fatal and mode == "error" else "warning"
        where = f" ({a.location})" if a.location else ""
        tail = f" — {FIX}" if a.fatal else ""
        out.append((Finding("einvoice-rule", rel, f"{who}[{a.rule}] {a.text}{where}{tail}",
                            severity, invoice_id=doc.invoice_id or None), a.fatal))
    if len(found) > MAX_FINDINGS:
        more = found[MAX_FINDINGS:]
        fatal = any(a.fatal for a in more)
        out.append((Finding("einvoice-rule", rel, f"{who}{len(more)} more findings "
                            f"({', '.join(sorted({a.rule for a in more})[:10])}) — {FIX}",
                            "error" if fatal and mode == "error" else "warning",
                            invoice_id=doc.invoice_id or None), fatal))
    return out


def read_and_preflight(path: Path, rel: str, mode: Mode) -> Result:
    """Open the invoice file safely (no links, FIFOs, devices; from the folder holding
    it, as every file of a bundle) and pre-flight it; within finish.evaluate, the bytes
    matching read and hashed instead (readonce.py)."""
    from daemon.reading.invoices import read_xml_invoice
    from daemon.reading.readonce import kept_read
    data = kept_read(path)
    if data is None:
        data = read_xml_invoice(path.parent, path.name, rel)
    return preflight(data, rel, mode)
