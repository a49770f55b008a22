"""Pages held in doubt (a checksum wrong, all else whole) that the file's end decides
were not read, where no other page holds an invoice number (daemon/reading/pdfdamage.py
Ledger, invoices.py): their numbers were read, so the file is no scan to send as one
invoice named after it — jsPDF's INV-1..3 behind a terms page of another writer (whose
checksum is right) went out as the one invoice "print", with a warning only."""

from __future__ import annotations

import zlib
from pathlib import Path

from reading.test_invoices import text_run
from reading.test_pdfdamage import INVOICES, pdf_pages, stream, unreadable, wrong_sum

AGAIN = " — export the PDF again (print to PDF), or split it into one file per invoice"
TERMS = stream(zlib.compress(text_run("Terms and conditions")))


def test_numbers_read_only_on_doubted_pages_are_an_error_not_the_stem(
        tmp_path: Path) -> None:
    data = pdf_pages([stream(wrong_sum(content)) for content in INVOICES] + [TERMS])
    assert unreadable(data, tmp_path) == (
        "the text of pages 1, 2, 3 could not be read (page 1: its compressed content does "
        "not match its checksum), so the invoices INV-1, INV-2, INV-3 read on them may not "
        f"be right{AGAIN}")


def test_a_number_read_on_one_doubted_page_beside_a_cover_page_is_an_error(
        tmp_path: Path) -> None:
    data = pdf_pages([TERMS, stream(wrong_sum(INVOICES[0]))])
    assert unreadable(data, tmp_path) == (
        "the text of page 2 could not be read (its compressed content does not match its "
        f"checksum), so the invoice INV-1 read on it may not be right{AGAIN}")
