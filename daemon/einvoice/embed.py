"""`[delivery] format = "ubl-embedded"` (docs/einvoice.md): attachments inside the UBL document.

Byte-preserving: the new ``cac:AdditionalDocumentReference`` elements are spliced
in as text at the offset the scan of the file (ublscan.py) found for each invoice.
Nothing is re-serialised, so every byte outside the inserted block stays as the ERP
wrote it.

A file with several invoices is split into one document per invoice, each the
element's own bytes (behind the file's XML declaration). An invoice that
relies on a namespace prefix declared on the wrapper cannot be cut out byte
for byte; that is an error that says so.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from xml.sax.saxutils import escape

from daemon.bundle import Attachment, Bundle, Finding, InvoiceFile
from daemon.delivery.parts import read_checked
from daemon.einvoice.kinds import what_it_is
from daemon.einvoice.ublscan import CAC, CBC, Slice, is_document_element, scan
from daemon.errors import InputError
from daemon.manifest import sent_name
from daemon.reading.notes import MANIFEST_NAME
from daemon.reading.readonce import kept_read
from daemon.sizes import limit_words, size_words

# One invoice's attachments in all: its document is built and checked whole in memory, some
# 8 bytes of a reader's per byte embedded (ten 5 MB scans: 700 MB). 20 MB is four at the
# default max_attachment_bytes, a reader near 450 MB.
MAX_EMBEDDED_BYTES = 20_000_000


@dataclass(frozen=True)
class Document:
    invoice_id: str
    root: str
    data: bytes
    inserted: tuple[int, int]  # byte range of the inserted block in data


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
class Invoice:
    """One invoice's document to build: its slice, its prefixes for cac/cbc (and their
    declarations), and each attachment that goes in with its name and type there."""

    sl: Slice
    prefixes: tuple[str, str, str]
    attachments: tuple[tuple[Attachment, str, str], ...]


@dataclass(frozen=True)
class Plan:
    """What documents_for found: the errors, or how each invoice's document is built."""

    findings: tuple[Finding, ...]
    invoices: tuple[Invoice, ...] = ()
    data: bytes = b""  # the invoice file's bytes
    whole: bool = False  # its one invoice is the document element
    decl: bytes = b""
    encoding: str = "utf-8"

    def each(self) -> Iterator[Document]:
        """The documents, built one at a time as they are taken: each holds its
        attachments base64-encoded, up to MAX_EMBEDDED_BYTES of them, and a batch's
        documents built together held all of its attachments (8 invoices of 15 MB took
        a reader ~700 MB past its size, and the daemon's delivery as much). InputError
        when an attachment can no longer be read as it was checked."""
        for inv in self.invoices:
            yield self.build(inv)

    def build(self, inv: Invoice) -> Document:
        """One invoice's document (InputError: see each)."""
        cac, cbc, declare = inv.prefixes
        refs = [reference(att, name, _content(att), mime, cac, cbc, declare)
                for att, name, mime in inv.attachments]
        return build(self.data, inv.sl, self.whole, self.decl, self.encoding, refs)

    @property
    def documents(self) -> tuple[Document, ...]:
        """Every document at once (for tests and the benchmark: small bundles)."""
        return tuple(self.each())


def _content(att: Attachment) -> bytes:
    content = kept_read(att.path)  # within finish.evaluate: the bytes matching hashed
    return read_checked(att) if content is None else content


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
        return Plan((Finding("not-ubl", rel, not_ubl_message(inv), "error"),))
    data = kept_read(inv.path)  # within finish.evaluate: the bytes matching hashed
    if data is None:
        try:
            data = read_checked(inv)  # a delivery attempt: the bytes checked, or none
        except InputError as exc:
            return Plan((Finding(exc.code, exc.file, exc.message, "error"),))
    try:
        slices, encoding, decl = scan(data, rel)
    except InputError as exc:
        return Plan((Finding(exc.code, exc.file, exc.message, "error"),))
    whole = len(slices) == 1 and is_document_element(data, slices[0])
    findings: list[Finding] = []
    cut = {sl.invoice_id for sl in slices}
    # An invoice inside another one's element (in its UBLExtensions, say) is read as an
    # invoice of the file but is no document of its own: its attachments would go nowhere.
    findings.extend(Finding("embed-split", rel, f"invoice {invoice_id} lies inside another "
                            "invoice's element, so it cannot be sent as a document of its "
                            "own — export each invoice as an Invoice/CreditNote element of "
                            "its own", "error", invoice_id)
                    for invoice_id in inv.invoice_ids if invoice_id not in cut)
    invoices: list[Invoice] = []
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
        going: list[tuple[Attachment, str, str]] = []
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
            going.append((att, name, mime))
        if total > MAX_EMBEDDED_BYTES:
            findings.append(Finding("embed-too-large", rel, f"invoice {sl.invoice_id}'s "
                                    f"attachments come to {size_words(total)}; ubl-embedded "
                                    "puts at most "
                                    f"{limit_words(MAX_EMBEDDED_BYTES, over=total)} of "
                                    "attachments "
                                    "into one invoice's document — make them smaller (a scan "
                                    "at a lower resolution, a PDF exported again) or attach "
                                    "fewer", "error", sl.invoice_id))
            continue
        invoices.append(Invoice(sl, (cac, cbc, declare), tuple(going)))
    if findings:
        return Plan(tuple(findings))
    return Plan((), tuple(invoices), data, whole, decl, encoding)


def not_ubl_message(inv: InvoiceFile) -> str:
    """The `not-ubl` error's words: what the file is, and the two ways out (a clerk's
    export, an admin's setting)."""
    what = what_it_is(inv)
    return (f"is {f'{what}, not' if what else 'not'} a UBL 2.1 Invoice or CreditNote, the "
            "only documents [delivery] format = \"ubl-embedded\" sends — export the invoice "
            "from the ERP as a UBL 2.1 Invoice or CreditNote (Peppol BIS Billing 3.0), or "
            "have the admin set [delivery] format = \"bundle\" to send the file as it is")


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
