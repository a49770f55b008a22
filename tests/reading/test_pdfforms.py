"""Text in forms pypdf does not read, without a word (daemon/reading/pdftext.py,
pdfdamage.py): a form without resources pypdf never parses ("no resources, no font"),
and a page's forms past pypdf's count of forms per page it skips — so a page of INV-3
whose invoice number sat in such a form went out as INV-1, INV-2, no error, no warning.
Such a page is one whose text could not be read (pdf-text-unreadable), as a page
without resources that shows text already is."""

from __future__ import annotations

import zlib
from pathlib import Path

import pytest
from helpers import pdf_of_objects, write
from pypdf import get_configuration

from reading.test_invoices import read, refusal
from reading.test_pdfdamage import (
    DRAWING,
    INVOICES,
    assert_stem_with_warning,
    ids,
    pages_of,
    pdf_pages,
    stream,
    unreadable,
)

FONTS = b"/Resources << /Font << /F1 3 0 R >> >>"


def form(content: bytes, resources: bytes = FONTS) -> bytes:
    """The stream object of a form of `content` (unpacked) with `resources` as written."""
    return (b"<< /Length %d /Type /XObject /Subtype /Form /BBox [0 0 595 842] %s >>\n"
            b"stream\n" % (len(content), resources) + content + b"\nendstream")


WITHOUT_RESOURCES = {
    "none": (b"", "a form it draws shows text but has no fonts"),
    "empty": (b"/Resources << >>", "a form it draws shows text but has no fonts"),
    "not-in-the-file": (b"/Resources 99 0 R",
                        "the resources of a form it draws are not in the file"),
}


class TestFormWithoutResources:
    @pytest.mark.parametrize("resources,why", WITHOUT_RESOURCES.values(),
                             ids=WITHOUT_RESOURCES.keys())
    def test_text_in_a_form_without_resources_is_a_page_not_read(
            self, tmp_path: Path, resources: bytes, why: str) -> None:
        """PDF 1.1's forms took the page's resources; pypdf reads no text in one that
        has none of its own (an old writer's logo-and-number block)."""
        data = pdf_pages(pages_of(*INVOICES[:2], b"q /Fm0 Do Q\n"),
                         form=form(INVOICES[2], resources))
        assert f"the text of page 3 could not be read ({why})" in unreadable(data, tmp_path)

    def test_a_form_without_resources_that_shows_no_text_loses_nothing(
            self, tmp_path: Path) -> None:
        data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n" + INVOICES[2]),
                         form=form(b"0 0 m 595 842 l S\n", b""))
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")

    def test_text_in_a_form_without_resources_and_no_id_is_the_stem_with_a_warning(
            self, tmp_path: Path) -> None:
        data = pdf_pages(pages_of(b"/Fm0 Do\n"), form=form(INVOICES[0], b""))
        found = read(write(tmp_path / "INV-8.pdf", data))
        assert_stem_with_warning(found, "a form it draws shows text but has no fonts")


# How many forms pypdf enters while reading one page's text; the rest it skips.
FORMS_READ = get_configuration().xform_maximum_invocations_per_extraction


def drawing_many_forms(count: int, last: bytes, after: bytes = b"") -> bytes:
    """A PDF of INV-1, INV-2 and a page that draws the form /Fm0 (lines) `count` times,
    then the form /Fm1 of `last`, then shows `after`."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [5 0 R 7 0 R 9 0 R] /Count 3 >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               form(DRAWING)]
    resources = b"/Resources << /Font << /F1 3 0 R >> /XObject << /Fm0 4 0 R /Fm1 11 0 R >> >>"
    for number, content in enumerate([*INVOICES[:2], b"/Fm0 Do\n" * count + b"/Fm1 Do\n" + after]):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                       b"/Contents %d 0 R %s >>" % (6 + 2 * number, resources))
        objects.append(stream(zlib.compress(content)))
    objects.append(form(last))
    return pdf_of_objects(objects)


class TestFormsPastPypdfsCount:
    def test_text_in_a_form_drawn_past_pypdfs_count_is_a_page_not_read(
            self, tmp_path: Path) -> None:
        data = drawing_many_forms(FORMS_READ, INVOICES[2])
        assert f"the text of page 3 could not be read (a form it draws after its first " \
            f"{FORMS_READ:,} shows text, which is not read)" in unreadable(data, tmp_path)

    def test_a_form_drawn_within_pypdfs_count_is_read(self, tmp_path: Path) -> None:
        data = drawing_many_forms(FORMS_READ - 1, INVOICES[2])
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")

    def test_forms_past_pypdfs_count_that_show_no_text_lose_nothing(
            self, tmp_path: Path) -> None:
        """A chart's markers drawn as forms, thousands of them: nothing lost."""
        data = drawing_many_forms(FORMS_READ, DRAWING, INVOICES[2])
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")


def test_forms_pypdf_never_parses_are_counted_as_they_are_unpacked(tmp_path: Path) -> None:
    """A form without resources that unpacks to megabytes of lines, drawn by each page:
    unpacked to look for text in it, it counts against the search's limit (a few KB of
    Flate a page would otherwise hold a reader for minutes), as a form pypdf reads does."""
    lines = b"0 0 m 1 1 l S\n" * 300_000  # 4.2 MB
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count 10 >>"
               % b" ".join(b"%d 0 R" % (5 + 2 * n) for n in range(10)),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               stream(zlib.compress(lines)).replace(
                   b"<< ", b"<< /Type /XObject /Subtype /Form /BBox [0 0 595 842] ", 1)]
    for number in range(10):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents %d "
                       b"0 R /Resources << /Font << /F1 3 0 R >> /XObject << /Fm0 4 0 R >> "
                       b">> >>" % (6 + 2 * number))
        objects.append(stream(zlib.compress(b"/Fm0 Do\n" + INVOICES[0])))
    error = refusal(write(tmp_path / "print.pdf", pdf_of_objects(objects)))
    assert error.code == "invoice-too-large"
    assert "over 30,000,000 bytes of page content" in error.message
