"""Read invoices: which invoice ids an invoice file holds (docs/folder-convention.md, section 2).

UBL 2.x Invoice/CreditNote (any wrapper, document order), Svefaktura, PDF
text; anything else is one invoice named after the file's stem. What is read
of a file, and what is refused by its size or its name, is decided here; the ids an
XML file names, by xmlids.py; the XML itself is parsed by invoicexml.py.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from daemon.bundle import Finding, InvoiceFormat
from daemon.errors import InputError, UnusablePdf
from daemon.fs.fsops import open_below
from daemon.fs.fsread import read_bounded
from daemon.names import first_of, printable, stem
from daemon.reading.invoicexml import (
    NESTED_TOO_DEEP,
    is_xml,
    lxml_root,
    parse_defused,
    wide_encoding,
)
from daemon.reading.pdfdamage import PageDamaged, lost_page
from daemon.reading.pdftext import TextBudget, TextTooLarge
from daemon.reading.xmlids import checked_id, xml_ids
from daemon.sizes import limit_words
from daemon.validation.emptiness import nothing_in, what_is_empty
from daemon.validation.sniff import is_pdf, sniff

# The code of a PDF invoice page whose text could not be read (an error beside ids found
# on other pages, a warning with the stem standing in when none were).
PAGES_UNREAD = "pdf-text-unreadable"


@dataclass(frozen=True)
class InvoiceRead:
    format: InvoiceFormat
    invoice_ids: tuple[str, ...]
    # What reading found wrong with the file that does not stop it (a PDF page whose
    # text could not be read): the bundle's findings about its invoice file.
    warnings: tuple[Finding, ...] = ()


@dataclass(frozen=True)
class _PdfText:
    """What the search of a PDF invoice file's text found: the ids, in order of first
    appearance, and the pages whose text pypdf could not extract (number from 1, or 0
    for the list of pages itself) with pypdf's words for why."""

    ids: tuple[str, ...]
    unread: dict[int, str]
    # Ids read only on pages not read (in doubt, pdfdamage.Ledger): maybe not right.
    doubtful: tuple[str, ...] = ()


def _pdf_ids(data: bytes, pattern: re.Pattern[str], rel: str) -> _PdfText:
    """The ids in the text of a PDF invoice file, in page order. A PDF that no one can
    use (encrypted, unreadable, no pages) breaks the rules attachments follow:
    an error here too, not an invoice named after the stem."""
    # Closed once read: pypdf's reader is a reference cycle that keeps its stream, and
    # the copy of the bytes pypdf makes of it, until a full garbage collection (a 50 MB
    # PDF invoice left a reader 48 MB larger until then).
    with io.BytesIO(data) as src:
        return _pdf_ids_in(src, pattern, rel)


def _pdf_ids_in(src: io.BytesIO, pattern: re.Pattern[str], rel: str) -> _PdfText:
    from daemon.validation.pdfprobe import (
        PdfFacts,
        lookup_limit_error,
        open_pdf,
        parse_limit_error,
        pypdfs_words,
        unpack_limit_error,
    )
    reader, facts = open_pdf(src)
    if reader is None:
        problem = facts.problem()
        assert problem is not None  # open_pdf gives no reader only for an unusable PDF
        raise UnusablePdf(problem[0], rel, problem[1])
    unread: dict[int, str] = {}
    budget = TextBudget()
    try:
        if len(reader.pages) and (lost := lost_page(reader)) is not None:
            unread[0] = lost  # walked before a page drops what pypdf's list resolved
        for number, page in enumerate(reader.pages, 1):
            try:
                text = budget.text_of(page)
            except Exception as exc:  # noqa: BLE001 - a page whose text pypdf cannot extract
                # Read on: a damaged page must not hide the ids of the pages after it
                # (_pdf_read decides what a file with such a page is). But not past a
                # limit: ours (TextTooLarge, or one met inside a form, which pypdf caught
                # and logged) is raised again by check(), that of the lookups of objects
                # the file does not list by check_lookups(); pypdf's, as it is.
                budget.check()
                reader.check_lookups()
                if unpack_limit_error(exc) is not None or parse_limit_error(exc) is not None:
                    raise
                unread[number] = str(exc) if isinstance(exc, PageDamaged) else \
                    pypdfs_words(exc)
                continue
            finally:
                # pypdf keeps every object it resolved, each page's decoded content with
                # it: a few KB of Flate a page that decode to 75 MB each (its own limit)
                # made the memory grow with the pages, past what the machine has. Dropped
                # page by page, a page that failed too; what a later page needs is read
                # again from the file (but an object stream's objects: drop_resolved).
                reader.drop_resolved()
            reader.check_lookups()  # met inside pypdf, which may have caught it
            budget.ledger.read(number, (m.group(1) for m in pattern.finditer(text or "")))
    except TextTooLarge as exc:
        raise _too_large(rel, f"holds {exc}", _SPLIT_PDF) from None
    except Exception as exc:  # noqa: BLE001 - past a limit, or a list of pages that loops
        # A page that unpacks past pypdf's limit: the PDF open_pdf refuses; one past a
        # limit of pypdf's parser (an array of 100,000 numbers): refused as a page past
        # ours is, never read under its stem with its real number unread.
        if (error := unpack_limit_error(exc) or lookup_limit_error(exc)) is not None:
            code, message = PdfFacts(error=error).problem() or ("", "")
            raise UnusablePdf(code, rel, message) from None
        if (words := parse_limit_error(exc)) is not None:
            raise _too_large(rel, f"holds more on one page than is searched for its "
                             f"invoice number ({words})", _SPLIT_PDF) from None
        unread[0] = pypdfs_words(exc)  # pypdf's list of the pages (a page tree that loops)
    ids, unread, doubtful = budget.ledger.decided(unread)
    return _PdfText(tuple(checked_id(found, rel) for found in ids), unread,
                    tuple(checked_id(found, rel) for found in doubtful))


_AGAIN_PDF = "export the PDF again (print to PDF)"
# How many page numbers, and ids, a message names before it counts the rest.
_SHOWN = 5


def _unread_words(unread: dict[int, str]) -> str:
    """"the text of page 3 could not be read (pypdf: …)": which pages, and pypdf's words
    for the first of them (a few, not a traceback)."""
    numbers = [f"{n:,}" for n in unread if n]
    shown, more = first_of(numbers, _SHOWN)
    parts = [("the text of page " if len(numbers) == 1 else "the text of pages ")
             + ", ".join(shown) + (f" {more}" if more else "")] if numbers else []
    if 0 in unread:
        parts.append("its list of pages")
    first, why = next(iter(unread.items()))
    said = f"page {first:,}: {why}" if len(unread) > 1 and first else why
    return f"{' and '.join(parts)} could not be read ({printable(said)})"


def _ids_words(ids: tuple[str, ...]) -> str:
    """"the invoices INV-1, INV-2": the first few of `ids`, the rest counted."""
    shown, more = first_of([printable(i) for i in ids], _SHOWN)
    return ("the invoice " if len(ids) == 1 else "the invoices ") + ", ".join(shown) + \
        (f" {more}" if more else "")


def _pdf_read(found: _PdfText, name: str, rel: str) -> InvoiceRead:
    """The ids of a PDF invoice file from what its search found. A page whose text could
    not be read among pages that hold ids is an error: the invoice on it would go
    unnamed, its attachments matched to the others (or to none). In a file where no id
    was found at all it is a warning: the stem stands in, as for a scan, but a clerk is
    told that the number was not looked for there."""
    if not found.unread:
        return InvoiceRead("pdf", found.ids or (stem(name),))
    on = "it" if len(found.unread) == 1 else "them"
    if found.ids:
        raise UnusablePdf(PAGES_UNREAD, rel, f"holds {_ids_words(found.ids)}, but "
                          f"{_unread_words(found.unread)}, so an invoice number on {on} was "
                          f"not looked for — {_AGAIN_PDF}, or split it into one file per "
                          "invoice")
    if found.doubtful:
        # Numbers were read, in text that may be changed: the file is not one invoice
        # named after the file (the warning below), nor can these be trusted.
        raise UnusablePdf(PAGES_UNREAD, rel, f"{_unread_words(found.unread)}, so "
                          f"{_ids_words(found.doubtful)} read on {on} may not be right "
                          f"— {_AGAIN_PDF}, or split it into one file per invoice")
    # Of its one invoice, the stem: an ERP maps a warning to its invoice by the id.
    warning = Finding(PAGES_UNREAD, rel, f"{_unread_words(found.unread)}, so its "
                      "invoice number was not looked for; the file is sent as one invoice "
                      f"named after the file, {printable(stem(name))} — if that is not its "
                      f"invoice number, {_AGAIN_PDF}", "warning", stem(name))
    return InvoiceRead("pdf", (stem(name),), (warning,))


# Invoice files are read whole, and an XML one is parsed into a tree: at ~150 bytes
# of memory a tag, a file of 30 MB of small elements took a reader past 1 GB. Real
# invoices hold hundreds of tags (the Peppol base example ~300): the limit takes a
# batch of some 6,000 such invoices in one file.
MAX_INVOICE_BYTES = 64 << 20
MAX_XML_TAGS = 2_000_000


def _too_large(rel: str, what: str, fix: str) -> InputError:
    return InputError("invoice-too-large", rel, f"{what}, more than outboxd reads as one "
                      f"invoice file — {fix}")


_SPLIT_XML = ("split it into files of fewer invoices, or move large attachments out of "
              "the XML into the sidecar folder")
_SPLIT_PDF = "export it again smaller (a lower scan resolution) or as one file per invoice"


def read_xml_invoice(root: Path, below: str, rel: str) -> bytes:
    """The whole XML invoice file `below` the folder `root` (opened as open_below opens a
    bundle's file; `rel`: its name in errors), for a step that reads it again after
    matching (pre-flight, ubl-embedded). Bounded as matching bounds it: one that grew
    past MAX_INVOICE_BYTES since raises invoice-too-large, as it would have then."""
    with open_below(root, below, rel) as fh:
        data = read_bounded(fh, MAX_INVOICE_BYTES)
    if data is None:
        raise _too_large(rel, f"is over {limit_words(MAX_INVOICE_BYTES)}", _SPLIT_XML)
    return data


def read_invoice_file(path: Path, rel: str, pdf_id_pattern: str) -> InvoiceRead:
    """The invoice ids of one invoice file; raises InputError for files that break a rule.
    Opened from the folder holding it (fsops.open_below), as every file of a bundle."""
    with open_below(path.parent, path.name, rel) as fh:
        return read_invoice_from(fh, path.name, rel, pdf_id_pattern)


def read_invoice_from(fh: BinaryIO, name: str, rel: str, pdf_id_pattern: str) -> InvoiceRead:
    """read_invoice_file of the invoice file `name`, open at `fh` (at its start)."""
    data = fh.read(1024)
    # Sized by fstat first, whatever the content: a file over the limit is refused unread.
    # "Anything else" had no limit and went out whole, a 100 MB file of random bytes
    # named .xml as an invoice, and a 1 TB one held the readers past their time limit.
    if refused_by_size(fh):
        raise _over_the_limit(rel, data)
    whole = len(data) < 1024
    if not whole and _read_whole(data):
        rest = read_bounded(fh, MAX_INVOICE_BYTES - len(data))
        if rest is None:  # grew past the limit since its fstat
            raise _over_the_limit(rel, data)
        whole, data = True, data + rest
    return read_invoice_bytes(data, name, rel, pdf_id_pattern, whole)


def _over_the_limit(rel: str, head: bytes) -> InputError:
    """invoice-too-large of a file over MAX_INVOICE_BYTES, its fix by its `head`."""
    return _too_large(rel, f"is over {limit_words(MAX_INVOICE_BYTES)}",
                      _SPLIT_XML if is_xml(head) else _SPLIT_PDF)


def _read_whole(head: bytes) -> bool:
    """Whether a file of this head is read whole: XML and PDF, and a head with nothing
    in it (to tell whether the file is empty); anything else is named by its head."""
    return is_xml(head) or is_pdf(head) or bool(nothing_in(head))


def refused_by_size(fh: BinaryIO) -> bool:
    """Whether read_invoice_from refuses the open file `fh` by its size alone,
    invoice-too-large, whatever it holds (its position is left where it was)."""
    return refused_size(os.fstat(fh.fileno()))


def refused_size(st: os.stat_result) -> bool:
    """refused_by_size of the file looked at as `st` (an fstat of the caller's own)."""
    return st.st_size > MAX_INVOICE_BYTES


# A ".pdf" that is no PDF, or a ".xml" that is no XML, is a broken or misnamed export
# (random bytes, a spreadsheet saved under the wrong name), as an attachment's would be
# (extension-mismatch): it was "anything else" and went to the operator as an invoice
# named after its stem. Other names (an admin's invoice_patterns: *.edi, *) promise
# nothing, and there the content decides.
_PROMISED = {".pdf": "pdf", ".xml": "xml"}


def _content_as_named(data: bytes, name: str, rel: str) -> None:
    """Raises extension-mismatch where `data` (the file's content as read: whole, or its
    head) is not what the invoice file's name says."""
    head = data[:1024]
    promised = _PROMISED.get(os.path.splitext(name)[1].lower())
    actual = "xml" if is_xml(head) else "pdf" if is_pdf(head) else None
    if promised is None or actual == promised:
        return
    words = {"pdf": "a PDF", "xml": "XML"}
    again = ("export or print the invoice to PDF again" if promised == "pdf"
             else "export the invoice as XML again")
    if actual is None:
        # Sniffed in what was read, not its first 1024 bytes alone: zeros there and
        # content after were "an empty file".
        label = sniff(io.BytesIO(data), deep=False).label
        what, fix = ("an " if label[:1].lower() in "aeiox" else "a ") + label, again
    else:
        what = words[actual]
        fix = (f"if it is the invoice as {what}, rename it to {stem(name)}.{actual} (its "
               f"folder keeps its name); else {again}")
    raise InputError("extension-mismatch", rel, f"content is {what}, not {words[promised]} "
                     f"— {fix} and put that file in its place")


def read_invoice_bytes(data: bytes, name: str, rel: str, pdf_id_pattern: str,
                       whole: bool = True) -> InvoiceRead:
    """The invoice ids of the content `data` of the invoice file `name` (read by the
    caller, who hashes the same bytes; `whole`: all of the file, not only its head);
    raises InputError for files that break a rule."""
    fallback = (stem(name),)
    head = data[:1024]
    if not head:
        raise InputError("empty-file", rel, "the invoice file is empty — export it again")
    if whole and (nothing := nothing_in(data)):
        # Else "anything else": one invoice named after the stem, sent with nothing in it.
        raise InputError("empty-file", rel, f"the invoice file is empty "
                         f"({what_is_empty(len(data), nothing)}) — export it again")
    _content_as_named(data, name, rel)
    if is_xml(head):
        if (wide := wide_encoding(head)) is not None and wide[0] == "utf-32":
            # expat reads UTF-16 but not UTF-32 (with its mark or without, in either
            # byte order); refused plainly rather than sent unread.
            raise InputError("invalid-xml", rel, "is XML in UTF-32, which outboxd cannot "
                             "read — export the invoice again as UTF-8")
        # Counted in the bytes, before any tree: '<' is 0x3C in UTF-8 and UTF-16 alike.
        if (tags := data.count(b"<")) > MAX_XML_TAGS:
            raise _too_large(rel, f"holds {tags:,} XML tags (at most {MAX_XML_TAGS:,})",
                             _SPLIT_XML)
        root = lxml_root(data)  # None for UTF-16 (NUL bytes): defusedxml decides
        if root is None:
            root = parse_defused(data, rel)
        try:
            fmt, ids = xml_ids(root, rel)
        except RecursionError:
            raise InputError("invalid-xml", rel, NESTED_TOO_DEEP) from None
        return InvoiceRead(fmt, tuple(ids) or fallback)
    if is_pdf(head):
        from daemon import logs
        with logs.about_file(rel):  # pypdf's own failure is logged for the admin: of this file
            found = _pdf_ids(data, re.compile(pdf_id_pattern), rel)
        return _pdf_read(found, name, rel)
    return InvoiceRead("other", fallback)
