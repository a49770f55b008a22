"""Text in forms pypdf does not read, without a word (daemon/reading/pdftext.py,
pdfdamage.py): a form without resources pypdf never parses ("no resources, no font"),
and a page's forms past pypdf's count of forms per page it skips — so a page of INV-3
whose invoice number sat in such a form went out as INV-1, INV-2, no error, no warning.
Such a page is one whose text could not be read (pdf-text-unreadable), as a page
without resources that shows text already is."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import pdf_of_objects, write
from pypdf import apply_configuration, get_configuration

from reading.test_invoices import damaged, read, refusal
from reading.test_pdfdamage import (
    DRAWING,
    INVOICES,
    _font,
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


# How many forms pypdf enters while reading one page's text; the rest it skips. 5,000
# as shipped: lowered for TestFormsPastPypdfsCount, as for the tests of the count
# further down (where a form is drawn against it is what they show, and 5,000 draws
# took some 2 s a test to read). pdftext.py reads it from pypdf's configuration.
FORMS_READ = 40


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
    @pytest.fixture(autouse=True)
    def _count(self) -> Iterator[None]:
        assert get_configuration().xform_maximum_invocations_per_extraction > FORMS_READ
        with apply_configuration(xform_maximum_invocations_per_extraction=FORMS_READ):
            yield

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
        """A chart's markers drawn as forms, as many as pypdf enters and more: nothing
        lost."""
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


def nested(inner: bytes) -> bytes:
    """INV-1, INV-2 and a page that draws the form /Fm0, which draws the form /Fm1 (the
    stream object `inner`, object 12) after showing nothing."""
    outer = form(b"q /Fm1 Do Q\n", b"/Resources << /Font << /F1 3 0 R >> "
                 b"/XObject << /Fm1 12 0 R >> >>")
    data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"), form=outer)
    # pdf_pages' objects are numbered 1 to 10: one more, then its table again.
    objects = [data[data.index(b"%d 0 obj\n" % n) + len(b"%d 0 obj\n" % n):
                    data.index(b"\nendobj", data.index(b"%d 0 obj\n" % n))]
               for n in range(1, 11)]
    return pdf_of_objects([*objects, b"null", inner])


class TestFormsPypdfFailsOn:
    """What pypdf meets inside a form, where on a page it raises (a page not read), it
    catches with a log line to a logger outboxd keeps quiet, and reads on without the
    form's text: a page of INV-3 whose number sat in such a form went out as INV-1,
    INV-2, no error, no warning."""

    def test_a_form_in_a_filter_pypdf_does_not_have_is_a_page_not_read(
            self, tmp_path: Path) -> None:
        packed = form(INVOICES[2]).replace(b"/Type /XObject", b"/Filter /Foo /Type /XObject")
        data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"), form=packed)
        assert "the text of page 3 could not be read (a form it draws cannot be unpacked, " \
            "pypdf: Unsupported filter /Foo)" in unreadable(data, tmp_path)

    @pytest.mark.parametrize("content", [damaged("Invoice number: INV-3"),
                                         b"]\n" + INVOICES[2]], ids=["after", "before"])
    def test_a_form_whose_content_does_not_parse_is_a_page_not_read(
            self, tmp_path: Path, content: bytes) -> None:
        """A stray "]" in the form, after its text or before: pypdf parses a content
        stream whole before it reads any of it, and drops all of the form's text."""
        data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"), form=form(content))
        assert "the text of page 3 could not be read (a form it draws could not be read, " \
            "pypdf: Invalid Elementary Object" in unreadable(data, tmp_path)

    def test_a_form_in_a_font_pypdf_cannot_make_is_a_page_not_read(
            self, tmp_path: Path) -> None:
        """A width written as a string: pypdf raises ValueError making the form's font,
        before it reads any of the form (on a page, the page is not read)."""
        fonts = _font(b"/Subtype /Type1 /BaseFont /Helvetica /FirstChar 32 /LastChar 33 "
                      b"/Widths [(a) 1]")
        data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"), form=form(INVOICES[2], fonts))
        assert "the text of page 3 could not be read (pypdf stopped reading a form it " \
            "draws)" in unreadable(data, tmp_path)

    def test_a_form_drawn_by_a_form_that_pypdf_cannot_read_is_a_page_not_read(
            self, tmp_path: Path) -> None:
        data = nested(form(damaged("Invoice number: INV-3")))
        assert "the text of page 3 could not be read (a form it draws could not be read, " \
            "pypdf: Invalid Elementary Object" in unreadable(data, tmp_path)

    @pytest.mark.parametrize("drawn", ["by-the-page", "by-a-form"])
    def test_a_form_that_unpacks_past_the_unpacking_limit_is_unreadable(
            self, tmp_path: Path, drawn: str) -> None:
        """A form that unpacks past what pypdf unpacks (75 MB; 1 MB here), as a page's
        content that does: the file is pdf-unreadable, not read without the form."""
        from pypdf import apply_configuration
        bomb = stream(zlib.compress(INVOICES[2] + b" " * 1_000_001)).replace(
            b"<< ", b"<< /Type /XObject /Subtype /Form /BBox [0 0 595 842] " + FONTS + b" ", 1)
        data = nested(bomb) if drawn == "by-a-form" else \
            pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"), form=bomb)
        with apply_configuration(zlib_maximum_output_length=1_000_000):
            error = refusal(write(tmp_path / "print.pdf", data))
        assert (error.code, error.file) == ("pdf-unreadable", "print.pdf")
        assert "unpacks to more than 1,000,000 bytes" in error.message

    @pytest.mark.parametrize("content", [b"", b"  \r\n", b"% a comment, no operation\n"],
                             ids=["empty", "blanks", "comment"])
    def test_a_form_of_no_operations_loses_nothing(self, tmp_path: Path, content: bytes
                                                   ) -> None:
        data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n" + INVOICES[2]),
                         form=form(content))
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")

    def test_a_nested_form_read_whole_loses_nothing(self, tmp_path: Path) -> None:
        assert ids(nested(form(INVOICES[2])), tmp_path) == ("INV-1", "INV-2", "INV-3")

    def test_an_error_pypdf_meets_midway_through_a_form_is_a_page_not_read(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """pypdf reads its operations one by one; one it raises on inside a form (none
        known today in pypdf 7: as an error in a later pypdf would be) drops the form's
        text, that before the error included, with a log line."""
        from pypdf._text_extraction._text_extractor import TextExtraction
        process = TextExtraction.process_operation

        def raising_at_tz(self: TextExtraction, operator: bytes, operands: list[object]
                          ) -> None:
            if operator == b"Tz":
                raise ValueError("a made-up error")
            process(self, operator, operands)
        monkeypatch.setattr(TextExtraction, "process_operation", raising_at_tz)
        data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"),
                         form=form(INVOICES[2] + b"100 Tz\n"))
        assert "the text of page 3 could not be read (pypdf stopped reading a form it " \
            "draws)" in unreadable(data, tmp_path)


def test_a_form_without_resources_naming_a_text_operator_in_a_comment_loses_nothing(
        tmp_path: Path) -> None:
    """"Tj" in a comment (a writer's note) is no text shown: the form of lines is drawn,
    nothing lost."""
    data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n" + INVOICES[2]),
                     form=form(b"% drawn before the Tj of the page\n0 0 m 595 842 l S\n", b""))
    assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")


def test_a_form_that_draws_itself_is_read_once(tmp_path: Path) -> None:
    """A form whose resources name itself (a writer's loop): pypdf reads it once and
    skips the draw of itself inside it — its text read, nothing lost, no page taken for
    one not read."""
    drawn = form(INVOICES[2] + b"/Fm0 Do\n",
                 b"/Resources << /Font << /F1 3 0 R >> /XObject << /Fm0 4 0 R >> >>")
    data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"), form=drawn)
    found = read(write(tmp_path / "print.pdf", data))
    assert (found.invoice_ids, found.warnings) == (("INV-1", "INV-2", "INV-3"), ())


def test_a_form_pypdf_never_parses_is_counted_before_it_is_parsed_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A form without resources that shows text is parsed here (pypdf does not), to
    know whether it shows any: its words count against the limit of one page first."""
    from daemon.reading import pdftext
    monkeypatch.setattr(pdftext, "MAX_PDF_PAGE_WORDS", 100)
    data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"),
                     form=form(b"(a) Tj " * 60 + INVOICES[2], b""))
    error = refusal(write(tmp_path / "print.pdf", data))
    assert error.code == "invoice-too-large"
    assert "over 100 words of content on page 3" in error.message


def test_text_in_a_form_pypdf_never_parses_that_does_not_parse_is_a_page_not_read(
        tmp_path: Path) -> None:
    """A form without resources whose content names a text operator but does not parse
    (a stray "]"): whether it shows text cannot be known, so it is taken to."""
    data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"),
                     form=form(damaged("Invoice number: INV-3"), b""))
    assert "the text of page 3 could not be read (a form it draws shows text that cannot " \
        "be read)" in unreadable(data, tmp_path)


def test_a_restore_with_nothing_saved_keeps_the_font(tmp_path: Path) -> None:
    """A "Q" with no "q" before it: pypdf keeps the font it has, and reads on."""
    data = pdf_pages(pages_of(*INVOICES[:2], b"BT /F1 12 Tf ET Q BT 72 720 Td "
                                             b"(Invoice number: INV-3) Tj ET\n"))
    assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")


def test_a_limit_met_in_a_form_drawn_by_a_form_on_the_last_page_refuses_the_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pypdf catches what is raised inside a form, and reads on: the limit met there is
    raised again once the page is read — on the last page too, with no page after it
    whose count would."""
    from daemon.reading import pdftext
    monkeypatch.setattr(pdftext, "MAX_PDF_PAGE_WORDS", 100)
    error = refusal(write(tmp_path / "print.pdf", nested(form(b"(a) Tj " * 60))))
    assert error.code == "invoice-too-large"
    assert "over 100 words of content on page 3" in error.message


def test_a_form_past_pypdfs_count_drawn_again_is_unpacked_and_counted_once_a_page(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chart's marker past pypdf's count (2 here), 200 KB of lines drawn 20 times: it
    is unpacked, and its bytes counted, once on the page — 4 MB counted for it would
    refuse a real chart (the limit 3 MB here)."""
    from pypdf import apply_configuration

    from daemon.reading import pdftext
    monkeypatch.setattr(pdftext, "MAX_PDF_CONTENT_BYTES", 3_000_000)
    lines = b"0 0 m 1 1 l S\n" * 15_000
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", form(DRAWING),
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 6 0 R "
               b"/Resources << /Font << /F1 3 0 R >> /XObject << /Fm0 4 0 R /Fm1 7 0 R >> >> >>",
               stream(zlib.compress(b"/Fm0 Do\n" * 2 + b"/Fm1 Do\n" * 20 + INVOICES[0])),
               form(lines)]
    with apply_configuration(xform_maximum_invocations_per_extraction=2):
        assert ids(pdf_of_objects(objects), tmp_path) == ("INV-1",)


def test_pypdfs_count_of_forms_starts_again_on_each_page(tmp_path: Path) -> None:
    """pypdf counts the forms it enters page by page (2 here): page 2's one form, with
    INV-2 in it, after page 1's two, is read — not taken for one past the count."""
    from pypdf import apply_configuration
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [5 0 R 7 0 R] /Count 2 >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", form(DRAWING)]
    resources = b"/Resources << /Font << /F1 3 0 R >> /XObject << /Fm0 4 0 R /Fm1 9 0 R >> >>"
    for number, content in enumerate([b"/Fm0 Do\n" * 2 + INVOICES[0], b"/Fm1 Do\n"]):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                       b"/Contents %d 0 R %s >>" % (6 + 2 * number, resources))
        objects.append(stream(zlib.compress(content)))
    objects.append(form(INVOICES[1]))
    with apply_configuration(xform_maximum_invocations_per_extraction=2):
        assert ids(pdf_of_objects(objects), tmp_path) == ("INV-1", "INV-2")


def test_a_lost_font_a_form_selects_by_its_own_name_leaves_the_pages_font(
        tmp_path: Path) -> None:
    """The form selects /F9, lost in its own resources, and shows nothing; the page then
    shows INV-3 in the /F1 it selected before the form: read, as pypdf reads a form
    with a font state of its own."""
    content = b"BT /F1 12 Tf ET /Fm0 Do BT 72 700 Td (Invoice number: INV-3) Tj ET\n"
    drawn = form(b"BT /F9 12 Tf ET 0 0 m 1 1 l S\n", b"/Resources << /Font << /F9 99 0 R >> >>")
    data = pdf_pages(pages_of(*INVOICES[:2], content), form=drawn)
    assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")
