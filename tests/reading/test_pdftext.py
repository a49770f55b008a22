"""The budget of a PDF invoice file's text search (daemon/reading/pdftext.py): what pypdf
would parse in Python is counted before it parses it, so a hostile file of a few KB is
refused as invoice-too-large naming the file, in seconds, not after minutes (a reader
held to its time limit). The inputs are the minimised ones bench/fuzz.py and its
follow-up found: content that costs pypdf time without the blanks the budget counted."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import write

from daemon.errors import InputError
from daemon.reading import pdftext
from reading.test_invoices import flate_pdf, flate_pdf_pages, read


def refused(path: Path) -> str:
    """The message of the invoice-too-large error reading `path` gives, naming it."""
    with pytest.raises(InputError) as info:
        read(path)
    assert (info.value.code, info.value.file) == ("invoice-too-large", path.name)
    return info.value.message


def test_names_without_blanks_between_them_are_words_of_the_budget(tmp_path: Path) -> None:
    """A page of 3,000,001 names written with no blank between them ("/////…", a few KB
    of Flate): pypdf parses each (~3 µs), and the budget, counting blanks only, let it
    through to ~10 s a page and any number of pages. Each name's slash counts a word."""
    path = write(tmp_path / "INV-5.pdf", flate_pdf(b"/" * 3_000_001))
    assert path.stat().st_size < 20_000
    assert "over 3,000,000 words of page content" in refused(path)


def test_content_past_the_bytes_searched_is_refused_but_not_for_its_images(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages whose content is one long string each (no blank, no name: no word to
    count), which pypdf reads a byte at a time (~12 s for 30 MB, a hexadecimal one
    twice as long; the file a few KB a page, any number of pages): the bytes of content
    count, and a file over the limit is refused. An inline image's data, which pypdf
    skips at C speed, does not count: a page of a larger one is read. The limit is
    lowered so that the test reaches it quickly."""
    monkeypatch.setattr(pdftext, "MAX_PDF_CONTENT_BYTES", 100_000)
    path = write(tmp_path / "INV-5.pdf", flate_pdf_pages(
        [b"BT /F1 12 Tf (" + b"a" * 60_000 + b") Tj ET", b"BT /F1 12 Tf <" + b"41" * 30_000
         + b"> Tj ET"]))
    assert "over 100,000 bytes of page content (besides images)" in refused(path)
    image = b"BI /W 1 /H 1 /BPC 8 /CS /G ID " + b"x" * 150_000 + b" EI\n"
    path = write(tmp_path / "INV-6.pdf", flate_pdf_pages(
        [image, image + b"BT /F1 12 Tf 72 720 Td (Invoice number INV-6) Tj ET\n"]))
    assert read(path).invoice_ids == ("INV-6",)


def test_a_form_counts_its_content_each_time_a_page_draws_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of a few bytes that draws one form of many names again and again: pypdf
    parses the form at each draw, and only the page's own content was counted (five
    draws of a form of 1,000,000 names took 15 s). The form's words count at each draw,
    before it is parsed. The limit is lowered so that the test reaches it quickly."""
    monkeypatch.setattr(pdftext, "MAX_PDF_CONTENT_WORDS", 100_000)
    path = write(tmp_path / "INV-5.pdf",
                 flate_pdf(b"/Fm0 Do\n" * 4, b"BT /F1 12 Tf ET " + b"/a" * 40_000))
    assert "over 100,000 words of page content" in refused(path)


def test_the_id_in_a_form_a_page_draws_often_is_still_found(tmp_path: Path) -> None:
    """Counting forms keeps what pypdf reads: an invoice whose number is drawn by a
    form, and whose page draws a small form 500 times (a logo, a rule), is read whole."""
    form = b"BT /F1 12 Tf 72 720 Td (Invoice number INV-9) Tj ET\n"
    path = write(tmp_path / "INV-5.pdf", flate_pdf(b"/Fm0 Do\n" * 500, form))
    assert read(path).invoice_ids == ("INV-9",)
