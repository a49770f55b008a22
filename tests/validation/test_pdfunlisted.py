"""Where the look up of objects the cross-reference table does not find
(daemon/validation/pdfobjects.py) draws its lines: its limit of unlisted objects is the
most read, objects the table lists are not counted against it, and an object the table
lists as freed is pypdf's null, never looked for in the file."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from helpers import write
from reading.test_invoices import read
from reading.test_pdfdamage import INVOICES, pages_of, pdf_pages, plain, unreadable

from daemon.validation import pdfobjects
from daemon.validation.pdfprobe import probe_pdf
from validation import test_pdfobjects


def test_as_many_unlisted_objects_as_the_limit_are_looked_through(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A file of 30 unlisted headers (and a dozen listed), naming an object it does not
    hold: with the limit at 30, read (its one page counted); the limit is the most
    looked through, and only objects the table does not list count."""
    data = test_pdfobjects.TestLimit().many_unlisted(kids=b"5 0 R 99 0 R")
    monkeypatch.setattr(pdfobjects, "MAX_UNLISTED_HEADERS", 30)
    facts = probe_pdf(io.BytesIO(data))
    assert (facts.problem(), facts.pages) == (None, 1)


def test_an_object_the_table_lists_as_freed_is_not_looked_for(tmp_path: Path) -> None:
    """Page 3's content is object 4, which the table lists as freed (an update deleted
    it) though its old body is still in the file: pypdf takes it for null, reads no text
    there, and so the page is not read — not read from the old body."""
    data = pdf_pages(pages_of(*INVOICES), entries={2: b"/Contents 4 0 R"},
                     form=plain(INVOICES[2]))
    row = re.findall(rb"\d{10} 00000 n \n", data)[3]  # object 4's, after object 0's
    data = data.replace(row, b"0000000000 00000 f \n")
    assert "the text of page 3 could not be read (its content is not in the file)" in \
        unreadable(data, tmp_path)


def test_a_header_written_with_a_leading_zero_is_not_the_object(tmp_path: Path) -> None:
    """The list of pages names object 12, which the table does not list; the file holds
    "012 0 obj" (inside a stream), which pypdf's search for "12 0 obj" never finds: the
    entry is not in the file, as pypdf reads it — not a page read from there."""
    body = (b"\n012 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents "
            b"10 0 R /Resources << /Font << /F1 3 0 R >> >> >>\nendobj\n")
    data = pdf_pages(pages_of(*INVOICES), kids=b"5 0 R 7 0 R 12 0 R", form=plain(body))
    assert "its list of pages could not be read (the entry after page 2 is not in the file)" \
        in unreadable(data, tmp_path)


def test_an_unlisted_object_written_twice_is_read_where_pypdfs_search_finds_it(
        tmp_path: Path) -> None:
    """The list of pages names object 12, which the table does not list, and the file
    holds it twice: page 3 first, then something that is no page. pypdf's search finds
    the first, and so does the index — page 3 is read."""
    first = (b"\n12 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents "
             b"10 0 R /Resources << /Font << /F1 3 0 R >> >> >>\nendobj\n")
    data = pdf_pages(pages_of(*INVOICES), kids=b"5 0 R 7 0 R 12 0 R",
                     form=plain(first + b"\n12 0 obj\n<< /Type /Pag >>\nendobj\n"))
    assert read(write(tmp_path / "print.pdf", data)).invoice_ids == ("INV-1", "INV-2", "INV-3")
