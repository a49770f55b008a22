"""The values typed into a PDF invoice's form fields are searched for its invoice ids
(daemon/reading/pdffields.py): pypdf's text of a page is its content alone, so a filled
invoice template (an AcroForm from Acrobat or LibreOffice) of INV-1 in page 1's text and
INV-2 typed into a field on page 2 went out as ('INV-1',), without a word. The forms are
made and filled here with pypdf's writer, as a form filler fills a template: the value
(/V), its appearance, and /NeedAppearances; or written by hand where pypdf would not
write them so (a field's /Parent chain, one that loops, one not in the file)."""

from __future__ import annotations

import io
import time
import zlib
from pathlib import Path
from typing import Any

import pytest
from helpers import pdf_of_objects, write
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from daemon.reading import pdftext
from reading.test_invoices import read, refusal
from reading.test_pdfdamage import INVOICES, ids, pages_of, pdf_pages, stream, unreadable

DRAWING = b"0 0 m 595 842 l S\n"  # a page of lines: no text at all
SHOWN = 4  # the annotation flag Print, as form designers set it on a field


def _name(value: str) -> NameObject:
    return NameObject(value)


def with_fields(data: bytes, fields: list[tuple[int, str, str | None, dict[str, Any]]]
                ) -> bytes:
    """The PDF `data` with a text field of one widget per entry of `fields` — (page
    index, field name, value typed into it or None: left empty, the widget's other
    entries) — filled with pypdf's writer (update_page_form_field_values: the value,
    its appearance stream, /NeedAppearances)."""
    writer = PdfWriter(clone_from=io.BytesIO(data))
    refs = ArrayObject()
    for page, name, _, extra in fields:
        widget = DictionaryObject({
            _name("/Type"): _name("/Annot"), _name("/Subtype"): _name("/Widget"),
            _name("/FT"): _name("/Tx"), _name("/T"): TextStringObject(name),
            _name("/Rect"): ArrayObject(FloatObject(v) for v in (72, 650, 400, 670)),
            _name("/F"): NumberObject(SHOWN),
            _name("/DA"): TextStringObject("/Helvetica 12 Tf 0 g")})
        widget.update({_name(key): value for key, value in extra.items()})
        refs.append(writer.add_annotation(page, widget).indirect_reference)
    writer.root_object[_name("/AcroForm")] = DictionaryObject({_name("/Fields"): refs})
    for page in sorted({page for page, *_ in fields}):
        values = {name: value for at, name, value, _ in fields
                  if at == page and value is not None}
        if values:
            writer.update_page_form_field_values(writer.pages[page], values)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def field_values(data: bytes) -> list[Any]:
    """The /V of each widget of the file, as a viewer finds them: the test's own check
    that the form was filled as meant."""
    reader = PdfReader(io.BytesIO(data))
    return [annot.get_object().get("/V") for page in reader.pages
            for annot in page.get("/Annots") or ()]


def template(*fields: tuple[int, str, str | None, dict[str, Any]]) -> bytes:
    """A filled invoice template of two pages: INV-1 in page 1's text, page 2 of lines,
    and `fields`."""
    return with_fields(pdf_pages(pages_of(INVOICES[0], DRAWING)), list(fields))


def test_an_invoice_number_typed_into_a_field_is_read(tmp_path: Path) -> None:
    """The case found: INV-2 only in a filled field on page 2 (its value, and the
    appearance pypdf's writer made of it) was lost."""
    data = template((1, "number", "Invoice number: INV-2", {}))
    assert field_values(data) == ["Invoice number: INV-2"]
    found = read(write(tmp_path / "print.pdf", data))
    assert (found.invoice_ids, found.warnings) == (("INV-1", "INV-2"), ())


def test_a_pages_fields_come_after_its_text_and_before_the_next_page(
        tmp_path: Path) -> None:
    data = with_fields(pdf_pages(pages_of(INVOICES[1], INVOICES[2])),
                       [(0, "number", "Invoice number: INV-1", {})])
    assert ids(data, tmp_path) == ("INV-2", "INV-1", "INV-3")


def test_a_field_holding_the_number_of_the_pages_text_counts_once(tmp_path: Path) -> None:
    """The number printed in the page and typed into a field of it (and of the next
    page, as a template's header repeats it) is one invoice."""
    data = template((0, "number", "Invoice number: INV-1", {}),
                    (1, "header", "Invoice number: INV-1", {}),
                    (1, "next", "Invoice number: INV-2", {}))
    assert ids(data, tmp_path) == ("INV-1", "INV-2")


HIDDEN = {"hidden": 2 | SHOWN, "shown-on-no-screen-and-not-printed": 32}


@pytest.mark.parametrize("flags", HIDDEN.values(), ids=HIDDEN.keys())
def test_the_value_of_a_widget_neither_shown_nor_printed_is_not_read(
        tmp_path: Path, flags: int) -> None:
    """A hidden field (a template's spare, an old number kept out of sight) shows
    nothing to a clerk, nor to the operator's print: its value is not an invoice."""
    data = template((1, "number", "Invoice number: INV-2", {"/F": NumberObject(flags)}))
    assert field_values(data) == ["Invoice number: INV-2"]
    assert ids(data, tmp_path) == ("INV-1",)


def test_a_widget_printed_but_not_shown_on_screen_is_read(tmp_path: Path) -> None:
    data = template((1, "number", "Invoice number: INV-2",
                     {"/F": NumberObject(32 | SHOWN)}))
    assert ids(data, tmp_path) == ("INV-1", "INV-2")


def test_the_value_of_a_password_field_is_not_read(tmp_path: Path) -> None:
    """A password field shows dots, not its value."""
    data = template((1, "number", "Invoice number: INV-2", {"/Ff": NumberObject(1 << 13)}))
    assert ids(data, tmp_path) == ("INV-1",)


def test_a_form_of_no_values_changes_nothing(tmp_path: Path) -> None:
    """An unfilled template: the same ids, no warning, and a file of no number at all
    is still one invoice under its stem, with no warning."""
    data = template((0, "number", None, {}), (1, "date", None, {}))
    found = read(write(tmp_path / "print.pdf", data))
    assert (found.invoice_ids, found.warnings) == (("INV-1",), ())
    blank = with_fields(pdf_pages(pages_of(DRAWING)), [(0, "number", None, {})])
    found = read(write(tmp_path / "INV-8.pdf", blank))
    assert (found.invoice_ids, found.warnings) == (("INV-8",), ())


def test_a_value_on_a_page_without_resources_is_read(tmp_path: Path) -> None:
    """A page of no fonts, whose only text is a field's (its widget draws its own)."""
    data = with_fields(pdf_pages(pages_of(INVOICES[0], DRAWING), resources={1: b""}),
                       [(1, "number", "Invoice number: INV-2", {})])
    assert ids(data, tmp_path) == ("INV-1", "INV-2")


# A hand-written file: INV-1 in page 1's text (object 5, content 6), page 2 (7, content
# 8) of lines, with the widgets of `annots` on page 2 and the objects `more` from 9 on.
# `entry`: page 2's /Annots entry as written, in place of the array of `annots`.
def by_hand(annots: bytes, more: list[bytes], entry: bytes | None = None) -> bytes:
    entry = b"/Annots [%s]" % annots if entry is None else entry
    return pdf_of_objects([
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [] >> >>",
        b"<< /Type /Pages /Kids [5 0 R 7 0 R] /Count 2 >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", b"null",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 6 0 R "
        b"/Resources << /Font << /F1 3 0 R >> >> >>", stream(zlib.compress(INVOICES[0])),
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 8 0 R "
        b"/Resources << /Font << /F1 3 0 R >> >> %s >>" % entry,
        stream(zlib.compress(DRAWING)), *more])


WIDGET = b"<< /Type /Annot /Subtype /Widget /Rect [0 0 10 10] /F 4 "


def test_a_hidden_widgets_flags_written_as_an_object_of_their_own_are_followed(
        tmp_path: Path) -> None:
    data = by_hand(b"9 0 R", [WIDGET.replace(b"/F 4", b"/F 10 0 R")
                              + b"/FT 11 0 R /V (Invoice number: INV-2) >>", b"2", b"/Tx"])
    assert ids(data, tmp_path) == ("INV-1",)
    shown = data.replace(b"10 0 obj\n2\n", b"10 0 obj\n4\n")
    assert ids(shown, tmp_path) == ("INV-1", "INV-2")


def test_a_value_inherited_from_the_field_above_its_widgets_is_read(tmp_path: Path) -> None:
    """A field of two widgets (/Kids): its type and value are the field's, not the
    widgets' own."""
    data = by_hand(b"10 0 R 11 0 R", [
        b"<< /FT /Tx /T (number) /V (Invoice number: INV-2) /Kids [10 0 R 11 0 R] >>",
        WIDGET + b"/Parent 9 0 R >>", WIDGET + b"/Parent 9 0 R >>"])
    assert ids(data, tmp_path) == ("INV-1", "INV-2")


def test_a_fields_own_value_is_read_not_the_one_of_the_field_above_it(
        tmp_path: Path) -> None:
    """The nearest value up the chain is the widget's: a field "invoice.number" of its
    own value under "invoice", which holds another."""
    data = by_hand(b"10 0 R", [
        b"<< /FT /Tx /T (invoice) /V (Invoice number: INV-9) /Kids [10 0 R] >>",
        WIDGET + b"/T (number) /V (Invoice number: INV-2) /Parent 9 0 R >>"])
    assert ids(data, tmp_path) == ("INV-1", "INV-2")


def test_the_shown_text_of_a_choice_is_read(tmp_path: Path) -> None:
    """A choice field whose option pairs a value exported with a text shown: the text
    shown is read."""
    data = by_hand(b"9 0 R", [WIDGET + b"/FT /Ch /T (number) /V (2) /Opt [[(1) "
                              b"(Invoice number: INV-9)] [(2) (Invoice number: INV-2)]] >>"])
    assert ids(data, tmp_path) == ("INV-1", "INV-2")


def test_a_parent_chain_that_loops_is_read_once_around(tmp_path: Path) -> None:
    """Fields whose /Parent entries come back to each other (a writer's loop): the
    chain ends where it began, the value found on the way read."""
    data = by_hand(b"9 0 R", [WIDGET + b"/Parent 10 0 R >>",
                              b"<< /Parent 11 0 R /FT /Tx >>",
                              b"<< /Parent 10 0 R /V (Invoice number: INV-2) >>"])
    assert ids(data, tmp_path) == ("INV-1", "INV-2")
    looped = by_hand(b"9 0 R", [WIDGET + b"/Parent 10 0 R >>", b"<< /Parent 11 0 R >>",
                                b"<< /Parent 10 0 R >>"])
    assert ids(looped, tmp_path) == ("INV-1",)


MISSING = {
    "its-field": (b"/Parent 99 0 R >>", "a form field it shows is not in the file"),
    "its-value": (b"/FT /Tx /V 99 0 R >>",
                  "the value of a form field it shows is not in the file"),
}


@pytest.mark.parametrize("entries,why", MISSING.values(), ids=MISSING.keys())
def test_a_widget_whose_value_is_not_in_the_file_is_a_page_not_read(
        tmp_path: Path, entries: bytes, why: str) -> None:
    """The number may have been there: the page is one whose text could not be read."""
    data = by_hand(b"9 0 R", [WIDGET + entries])
    assert f"the text of page 2 could not be read ({why})" in unreadable(data, tmp_path)


def test_an_annotation_not_in_the_file_loses_nothing_said(tmp_path: Path) -> None:
    """An /Annots entry naming no object (most are links): read as before."""
    assert ids(by_hand(b"99 0 R", []), tmp_path) == ("INV-1",)


def widgets(count: int) -> bytes:
    """INV-1's page, and a page of `count` filled text fields, the last INV-2."""
    return by_hand(b" ".join(b"%d 0 R" % (9 + n) for n in range(count)), [
        WIDGET + b"/FT /Tx /T (f%d) /V (%s) >>"
        % (n, b"Invoice number: INV-2" if n == count - 1 else b"line %d" % n)
        for n in range(count)])


def test_a_page_of_ten_thousand_fields_is_read_in_seconds(tmp_path: Path) -> None:
    """10,000 filled fields: ~1 s here (pypdf parses each widget, ~90 µs)."""
    data = widgets(10_000)
    started = time.monotonic()
    assert ids(data, tmp_path) == ("INV-1", "INV-2")
    assert time.monotonic() - started < 20


def test_annotations_past_the_limit_are_refused_before_they_are_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of more annotations than are searched (1,000 here; 100,000, ~10 s, in
    use) is refused as too large before pypdf parses any of them."""
    monkeypatch.setattr(pdftext, "MAX_PDF_FORM_OBJECTS", 1_000)
    from daemon.reading import pdffields
    read_any = pdffields._annotation_text
    seen: list[object] = []

    def spy(annot: object, budget: Any) -> str | None:
        seen.append(annot)
        return read_any(annot, budget)
    monkeypatch.setattr(pdffields, "_annotation_text", spy)
    error = refusal(write(tmp_path / "print.pdf", widgets(1_001)))
    assert (error.code, error.file) == ("invoice-too-large", "print.pdf")
    assert "over 1,000 annotations and form fields" in error.message
    assert seen == []
    assert ids(widgets(1_000), tmp_path) == ("INV-1", "INV-2")


def test_annotations_past_a_limit_of_pypdfs_parser_are_refused_not_skipped(
        tmp_path: Path) -> None:
    """An /Annots array of its own object, of more entries than pypdf parses (1,000
    here; 100,000 in use): refused as too large, as a page's content past that limit
    is — not read as a page of no fields."""
    from pypdf import apply_configuration
    data = by_hand(b"", [b"[%s]" % b" ".join([b"10 0 R"] * 1_001),
                         WIDGET + b"/FT /Tx /V (Invoice number: INV-2) >>"],
                   entry=b"/Annots 9 0 R")
    with apply_configuration(array_maximum_element_count=1_000):
        error = refusal(write(tmp_path / "print.pdf", data))
    assert (error.code, error.file) == ("invoice-too-large", "print.pdf")
    assert "array element count" in error.message


def test_a_value_that_is_no_text_string_is_read_as_latin_1(tmp_path: Path) -> None:
    """A value in bytes pypdf cannot decode as PDF's text (0x7f is none of its
    characters): read as Latin-1, as its bytes show, not dropped."""
    data = by_hand(b"9 0 R", [WIDGET + b"/FT /Tx /V <496e766f696365206e756d6265723a"
                                        b"20494e562d327f> >>"])
    assert ids(data, tmp_path) == ("INV-1", "INV-2")


def test_an_annotation_past_a_limit_of_pypdfs_parser_is_refused_not_skipped(
        tmp_path: Path) -> None:
    """A widget of more entries than pypdf parses in a dictionary (1,000 here): refused
    as too large, not read as if it were not there."""
    from pypdf import apply_configuration
    padding = b" ".join(b"/K%d 1" % n for n in range(1_001))
    data = by_hand(b"9 0 R", [WIDGET + padding + b" /FT /Tx /V (Invoice number: INV-2) >>"])
    with apply_configuration(dictionary_maximum_element_count=1_000):
        error = refusal(write(tmp_path / "print.pdf", data))
    assert (error.code, error.file) == ("invoice-too-large", "print.pdf")
    assert "dictionary" in error.message


# Acrobat's Fill & Sign and typewriter tool put what a clerk types onto a flat PDF as a
# FreeText annotation (its /Contents), not in a form field.
def typed_onto(data: bytes, typed: list[tuple[int, str, dict[str, Any]]]) -> bytes:
    """The PDF `data` with a FreeText annotation per entry of `typed` — (page index,
    the text typed, the annotation's other entries) — as pypdf's writer adds one."""
    from pypdf.annotations import FreeText
    writer = PdfWriter(clone_from=io.BytesIO(data))
    for page, text, extra in typed:
        annotation = FreeText(text=text, rect=(72, 650, 400, 670))
        annotation.update({_name(key): value for key, value in extra.items()})
        writer.add_annotation(page, annotation)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def flat(*typed: tuple[int, str, dict[str, Any]]) -> bytes:
    """A flat invoice of two pages (INV-1 in page 1's text, page 2 of lines), no form,
    with the text of `typed` typed onto it."""
    return typed_onto(pdf_pages(pages_of(INVOICES[0], DRAWING)), list(typed))


def test_an_invoice_number_typed_onto_a_flat_pdf_is_read(tmp_path: Path) -> None:
    """The case found: INV-2 typed with Fill & Sign onto page 2 of a flat PDF (a
    FreeText annotation) was lost, the file sent as INV-1 alone."""
    data = flat((1, "Invoice number: INV-2", {}))
    found = read(write(tmp_path / "print.pdf", data))
    assert (found.invoice_ids, found.warnings) == (("INV-1", "INV-2"), ())


@pytest.mark.parametrize("flags", HIDDEN.values(), ids=HIDDEN.keys())
def test_text_typed_onto_a_page_neither_shown_nor_printed_is_not_read(
        tmp_path: Path, flags: int) -> None:
    """The flags rule of the form fields: a hidden FreeText shows nothing to anyone."""
    data = flat((1, "Invoice number: INV-2", {"/F": NumberObject(flags)}))
    assert ids(data, tmp_path) == ("INV-1",)
    printed = flat((1, "Invoice number: INV-2", {"/F": NumberObject(32 | SHOWN)}))
    assert ids(printed, tmp_path) == ("INV-1", "INV-2")


def test_typed_text_comes_in_page_order_with_the_fields(tmp_path: Path) -> None:
    """Typed text and a form field on one page: each a line after the page's text, in
    the order of the page's annotations, before the next page's text."""
    data = typed_onto(with_fields(pdf_pages(pages_of(INVOICES[1], INVOICES[2])),
                                  [(0, "number", "Invoice number: INV-1", {})]),
                      [(0, "Invoice number: INV-4", {})])
    assert ids(data, tmp_path) == ("INV-2", "INV-1", "INV-4", "INV-3")


def test_typed_text_whose_contents_are_not_in_the_file_is_a_page_not_read(
        tmp_path: Path) -> None:
    data = by_hand(b"9 0 R", [b"<< /Type /Annot /Subtype /FreeText /Rect [0 0 10 10] "
                              b"/Contents 99 0 R >>"])
    assert "the text of page 2 could not be read (the text typed onto it is not in " \
        "the file)" in unreadable(data, tmp_path)


def test_rich_text_is_not_read_where_plain_text_is(tmp_path: Path) -> None:
    """/RC is the same text with its styling (Acrobat writes both): /Contents is read,
    /RC's XHTML not parsed, so a number only in the styling is not an invoice."""
    rich = TextStringObject('<?xml version="1.0"?><body xmlns="http://www.w3.org/1999/'
                            'xhtml"><p>Invoice number: INV-9</p></body>')
    data = flat((1, "Invoice number: INV-2", {"/RC": rich}))
    assert ids(data, tmp_path) == ("INV-1", "INV-2")


def test_typed_text_counts_against_the_limit_of_annotations(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pdftext, "MAX_PDF_FORM_OBJECTS", 3)
    data = flat(*[(1, f"line {n}", {}) for n in range(3)], (1, "Invoice number: INV-2", {}))
    error = refusal(write(tmp_path / "print.pdf", data))
    assert (error.code, error.file) == ("invoice-too-large", "print.pdf")
    assert ids(flat(*[(1, f"line {n}", {}) for n in range(2)],
                    (1, "Invoice number: INV-2", {})), tmp_path) == ("INV-1", "INV-2")


def test_a_value_written_as_a_stream_is_read(tmp_path: Path) -> None:
    """PDF lets a text field's value be a stream of text, not only a string (long
    multi-line values are written so): the invoice number in it is read."""
    data = by_hand(b"9 0 R", [WIDGET + b"/FT /Tx /V 10 0 R >>",
                              stream(zlib.compress(b"Invoice number: INV-2"))])
    assert ids(data, tmp_path) == ("INV-1", "INV-2")


def test_a_value_stream_that_cannot_be_unpacked_is_a_page_not_read(tmp_path: Path) -> None:
    """A value stream under a filter pypdf cannot undo (/Foo, no filter PDF has): the
    number may have been there, so the page is one whose text could not be read, said
    so — never read as a field of no value."""
    packed = b"Invoice number: INV-2"
    data = by_hand(b"9 0 R", [WIDGET + b"/FT /Tx /V 10 0 R >>",
                              b"<< /Length %d /Filter /Foo >>\nstream\n%s\nendstream"
                              % (len(packed), packed)])
    assert "the text of page 2 could not be read (the value of a form field it shows " \
        "cannot be unpacked)" in unreadable(data, tmp_path)


def test_a_value_stream_of_damaged_flate_is_a_page_not_read(tmp_path: Path) -> None:
    """A value stream said to be Flate whose bytes are not (pypdf then gives an empty
    value, without a word): the number may have been there, so the page is one whose
    text could not be read, saying why — it was read as a field of no value."""
    data = by_hand(b"9 0 R", [WIDGET + b"/FT /Tx /V 10 0 R >>", stream(b"not flate data")])
    assert "the text of page 2 could not be read (the compressed value of a form field " \
        "it shows does not begin as Flate data does)" in unreadable(data, tmp_path)
