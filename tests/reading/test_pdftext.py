"""The budget of a PDF invoice file's text search (daemon/reading/pdftext.py): what pypdf
would parse in Python is counted before it parses it, so a hostile file of a few KB is
refused as invoice-too-large naming the file, in seconds, not after minutes (a reader
held to its time limit). The inputs are the minimised ones bench/fuzz.py and its
follow-up found: content that costs pypdf time without the blanks the budget counted."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest
from helpers import pdf_of_objects, write

from daemon.errors import InputError
from daemon.reading import pdftext
from reading.test_invoices import flate_pdf, flate_pdf_pages, read, text_run
from reading.test_pdfdamage import stream


def refused(path: Path) -> str:
    """The message of the invoice-too-large error reading `path` gives, naming it."""
    with pytest.raises(InputError) as info:
        read(path)
    assert (info.value.code, info.value.file) == ("invoice-too-large", path.name)
    return info.value.message


def test_names_without_blanks_between_them_are_words_of_the_budget(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of names written with no blank between them ("/////…", a few KB of Flate):
    pypdf parses each (~3 µs), and the budget, counting blanks only, let them through to
    ~10 s a page and any number of pages. Each name's slash counts a word. The limit is
    lowered so that the test reaches it quickly."""
    monkeypatch.setattr(pdftext, "MAX_PDF_CONTENT_WORDS", 100_000)
    path = write(tmp_path / "INV-5.pdf", flate_pdf_pages([b"/" * 40_000] * 3))
    assert path.stat().st_size < 20_000
    assert "over 100,000 words of page content" in refused(path)


@pytest.fixture
def parsed(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The pages pypdf was asked to parse for their text, by their number (its public
    extract_text, spied on): a page refused before it is parsed is not among them."""
    from pypdf import PageObject
    pages: list[int] = []
    extract = PageObject.extract_text

    def spy(page: PageObject, *args: Any, **kwargs: Any) -> str:
        pages.append(page.page_number + 1 if page.page_number is not None else 0)
        return extract(page, *args, **kwargs)
    monkeypatch.setattr(PageObject, "extract_text", spy)
    return pages


# Each a page of about 1,000,000 objects with no blank between them, a few KB of Flate:
# the names of fuzz seed 20's case 53 (3,000,000, at the limit of words of a file then:
# 5.4 s and +309 MB in the reader, and read under its stem, as pypdf's own limit of
# 2,000,000 objects a stream raised an error), strings glued to operators (6.9 s, +343 MB,
# the stem), empty arrays — none of them counted as words before.
ONE_PAGE_OF_OBJECTS = {"names": b"/a" * 3_000_000, "strings": b"(a)q" * 995_000,
                       "arrays": b"[]" * 1_000_000}


@pytest.mark.parametrize("content", ONE_PAGE_OF_OBJECTS.values(), ids=ONE_PAGE_OF_OBJECTS)
def test_a_page_of_more_objects_than_a_page_holds_is_refused_before_it_is_parsed(
        tmp_path: Path, parsed: list[int], content: bytes) -> None:
    """pypdf holds all of a page's objects at once (~80 to 350 bytes each): one page of
    a million of them is refused, naming the page, before pypdf parses it."""
    path = write(tmp_path / "INV-5.pdf", flate_pdf_pages(
        [b"BT /F1 12 Tf 72 720 Td (Invoice number INV-5) Tj ET\n", content]))
    assert path.stat().st_size < 40_000
    assert "over 500,000 words of content on page 2 alone" in refused(path)
    assert parsed == [1]


def test_a_form_of_more_objects_than_a_page_holds_is_refused_before_it_is_parsed(
        tmp_path: Path) -> None:
    """A form a page draws is parsed on its own, as a page is: one of a million names
    is refused at its draw (a page drawing it is refused as such a page is)."""
    path = write(tmp_path / "INV-5.pdf", flate_pdf(b"/Fm0 Do\n", b"/a" * 1_000_000))
    assert "over 500,000 words of content on page 1 alone" in refused(path)


def test_real_dense_pages_are_searched_whole(tmp_path: Path) -> None:
    """The limit of a page's words leaves room for the densest real pages, as PDF
    writers make them (reportlab's and fpdf2's operators): 11,700 glyphs each placed on
    its own (260,000 words), and a drawn table of 3,000 cells, each a rectangle and its
    text (63,000 words), the id on the last."""
    glyph = b"BT /F1 5 Tf 6 TL ET\nBT 1 0 0 1 %d.3 %d Tm (%s) Tj T* ET\n"
    glyphs = b"".join(glyph % (10 + 6 * k, 820 - 6 * r, b"Widget 12.50 25% "[k % 17:][:1])
                      for r in range(130) for k in range(90))
    cell = b"n %d %d 19 8 re S\nBT 1 0 0 1 %d %d Tm (%05d) Tj T* ET\n"
    cells = b"".join(cell % (10 + 19 * k, 820 - 8 * r, 11 + 19 * k, 822 - 8 * r, 30 * r + k)
                     for r in range(100) for k in range(30))
    assert pdftext._words(glyphs) > 250_000 and pdftext._words(cells) > 60_000
    path = write(tmp_path / "dense.pdf", flate_pdf_pages(
        [glyphs, cells + b"BT /F1 8 Tf 50 50 Td (Invoice number: INV-77) Tj ET\n"]))
    assert read(path).invoice_ids == ("INV-77",)


def test_content_past_the_bytes_searched_is_refused_before_it_is_parsed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parsed: list[int]) -> None:
    """Pages whose content is one long string each (no blank, no name: no word to
    count), which pypdf reads a byte at a time (~12 s for 30 MB, a hexadecimal one
    0.5 µs a byte: a page of 74 MB took 45 s; the file a few KB a page): the bytes of
    content count, and the page that takes a file over the limit is refused before it
    is parsed (it was checked once parsed). The limit is lowered so that the test
    reaches it quickly."""
    monkeypatch.setattr(pdftext, "MAX_PDF_CONTENT_BYTES", 100_000)
    path = write(tmp_path / "INV-5.pdf", flate_pdf_pages(
        [b"BT /F1 12 Tf (" + b"a" * 60_000 + b") Tj ET", b"BT /F1 12 Tf <" + b"41" * 30_000
         + b"> Tj ET"]))
    assert "over 100,000 bytes of page content" in refused(path)
    assert parsed == [1]


def test_an_inline_image_s_data_counts_as_content(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, parsed: list[int]) -> None:
    """An inline image's data is no longer left out of the bytes searched: pypdf reads
    it a byte at a time too when it is a JPEG's, or when it is made of "E"s (~0.54 µs a
    byte: five pages of 20 MB, a few KB of Flate each, took 51 s and were read). A page
    of a smaller one is read. The limit is lowered so that the test reaches it
    quickly."""
    monkeypatch.setattr(pdftext, "MAX_PDF_CONTENT_BYTES", 100_000)
    image = b"BI /W 100 /H 100 /BPC 8 /CS /G /F /Fl ID %s EI\n"
    path = write(tmp_path / "INV-5.pdf", flate_pdf_pages([image % (b"E" * 150_000)]))
    assert "over 100,000 bytes of page content (images drawn inline and fonts' character " \
        "maps included)" in refused(path)
    assert parsed == []
    text = b"BT /F1 12 Tf 72 720 Td (Invoice number INV-6) Tj ET\n"
    path = write(tmp_path / "INV-6.pdf", flate_pdf_pages([image % (b"E" * 40_000) + text]))
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


# Within the words of a page, past a limit of pypdf's own parser (100,000 elements in an
# array, entries in a dictionary), which it raises as an error.
PAST_PYPDFS_LIMITS = {"array": (b"[" + b"1 " * 100_001 + b"] TJ", "array element count"),
                      "dictionary": (b"/P <<" + b"".join(b"/k%d 1 " % i for i in range(100_001))
                                     + b">> BDC",
                                     "number of dictionary entries")}


@pytest.mark.parametrize("case", PAST_PYPDFS_LIMITS.values(), ids=PAST_PYPDFS_LIMITS)
def test_a_page_past_a_limit_of_pypdfs_parser_is_refused_not_read_under_its_stem(
        tmp_path: Path, case: tuple[bytes, str]) -> None:
    """A page that holds an array of 100,001 numbers (a few KB of Flate) stops pypdf's
    parser at its own limit: the error let the stem stand in, the file sent as one
    invoice named INV-5, the number on its page unread. Refused as a page past the
    search's limits is, with pypdf's words for the admin."""
    content, said = case
    path = write(tmp_path / "INV-5.pdf", flate_pdf(
        b"BT /F1 12 Tf 72 720 Td (Invoice number INV-77) Tj ET\n" + content))
    message = refused(path)
    assert message.startswith("holds more on one page than is searched for its invoice "
                              f"number (pypdf: Reached maximum {said}.)")


def font_with_map(filler: int) -> bytes:
    """The composite font of test_pdfmaps (object 4 there), its character map CMAP with
    `filler` blanks before it (on one line: cheap to parse, as a test should be)."""
    from reading.test_pdfmaps import CMAP
    return stream(zlib.compress(b" " * filler + CMAP))


@pytest.mark.parametrize("where", ["form-drawn-again", "page-after-page"])
def test_the_character_maps_pypdf_parses_count_as_content(tmp_path: Path, where: str
                                                          ) -> None:
    """pypdf parses the character map of every font of a page's resources, and of a
    form's at each draw, before it reads any of it, whether or not text is shown in it:
    a form of one line drawn 50 times, in resources naming a font whose map was 143 KB
    (30 KB of Flate), held a reader 5 s, and pypdf draws up to 5,000 forms a page.
    Their bytes count as content, each time pypdf parses them."""
    font = (b"<< /Type /Font /Subtype /Type0 /BaseFont /Arial /Encoding /Identity-H "
            b"/DescendantFonts [<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Arial "
            b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
            b"/DW 500 >>] /ToUnicode 5 0 R >>")
    form = (b"<< /Length 14 /Type /XObject /Subtype /Form /BBox [0 0 9 9] "
            b"/Resources << /Font << /F2 4 0 R >> >> >>\nstream\n0 0 m 1 1 l S\n\nendstream")
    pages, draws = (1, 31) if where == "form-drawn-again" else (31, 0)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>"
               % (b" ".join(b"%d 0 R" % (8 + n) for n in range(pages)), pages),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", font,
               font_with_map(1_000_000), form,
               stream(zlib.compress(b"/Fm0 Do\n" * draws + text_run("Invoice number: INV-1")))]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 7 0 R "
                b"/Resources << /Font << /F1 3 0 R /F2 4 0 R >> /XObject << /Fm0 6 0 R >> >> >>"
                ] * pages
    assert "over 30,000,000 bytes of page content" in refused(
        write(tmp_path / "INV-1.pdf", pdf_of_objects(objects)))


@pytest.mark.parametrize("limit", ["MAX_PDF_PAGE_WORDS", "MAX_PDF_CONTENT_WORDS",
                                   "MAX_PDF_CONTENT_BYTES"])
def test_content_of_exactly_a_limit_is_searched(tmp_path: Path, limit: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Each limit is the most searched: a page of exactly that many words or bytes is
    read, one more is refused."""
    content = text_run("Invoice number: INV-1")
    path = write(tmp_path / "INV-1.pdf", flate_pdf_pages([content]))
    size = len(content) if limit.endswith("BYTES") else pdftext._words(content)
    monkeypatch.setattr(pdftext, limit, size)
    assert read(path).invoice_ids == ("INV-1",)
    monkeypatch.setattr(pdftext, limit, size - 1)
    refused(path)


def test_a_page_past_the_operations_is_refused_at_the_first_one_past(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The operations are counted as pypdf reads them, and the search stops at the first
    past the limit — not after pypdf read the rest of the page."""
    visited: list[object] = []
    visit = pdftext.TextBudget.visit_before

    def spy(self: pdftext.TextBudget, operator: object, *rest: object) -> None:
        visited.append(operator)
        visit(self, operator, *rest)
    monkeypatch.setattr(pdftext.TextBudget, "visit_before", spy)
    monkeypatch.setattr(pdftext, "MAX_PDF_TEXT_OPERATORS", 10)
    path = write(tmp_path / "INV-1.pdf", flate_pdf_pages([b"q Q\n" * 500]))
    assert "over 10 drawing operations" in refused(path)
    assert len(visited) == 11
