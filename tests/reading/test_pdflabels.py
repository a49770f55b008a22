"""The label a page prints beside a form field, or beside text typed onto it, is read
with the value (daemon/reading/pdflabels.py): a template printing "Invoice number:"
and the clerk's INV-2 in the field beside it went out under the file's stem, as each
value was searched as a line of its own after the page's text, where the default
pattern (a label, then the id) does not find a number alone. Fields are filled with
pypdf's writer (reading/test_pdffields.py's helpers)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import write
from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, NumberObject

from daemon.reading import pdftext
from daemon.reading.pdflabels import Labels
from reading.test_invoices import refusal
from reading.test_pdfdamage import ids, pages_of, pdf_pages
from reading.test_pdffields import typed_onto, with_fields


def at(x: float, y: float, text: str) -> bytes:
    """Page content printing `text` from (x, y) in /F1."""
    return b"BT /F1 12 Tf %g %g Td (%s) Tj ET\n" % (x, y, text.encode("latin-1"))


def rect(x0: float, y0: float, x1: float, y1: float) -> dict[str, Any]:
    return {"/Rect": ArrayObject(FloatObject(v) for v in (x0, y0, x1, y1))}


FIELD = rect(200, 650, 400, 670)  # the field, a label's baseline at 655 beside it


# Text the page prints after its labels: without it a label that ends the page's text
# is next to the first value searched after it, across the line between them.
FOOTER = at(72, 100, "Thank you for your order")


def filled(content: bytes, value: str, extra: dict[str, Any] = FIELD) -> bytes:
    """A one-page PDF of `content`, then FOOTER, and a text field holding `value`."""
    return with_fields(pdf_pages(pages_of(content + FOOTER)), [(0, "number", value, extra)])


def test_a_label_printed_left_of_a_field_is_read_with_its_value(tmp_path: Path) -> None:
    """The case found: "Invoice number:" in the page, INV-2 in the field beside it."""
    assert ids(filled(at(72, 655, "Invoice number:"), "INV-2"), tmp_path) == ("INV-2",)


def test_a_label_left_of_text_typed_onto_a_flat_pdf_is_read_with_it(tmp_path: Path) -> None:
    data = typed_onto(pdf_pages(pages_of(at(72, 655, "Invoice number:") + FOOTER)),
                      [(0, "INV-2", FIELD)])
    assert ids(data, tmp_path) == ("INV-2",)


def test_a_label_of_runs_word_by_word_is_read_whole(tmp_path: Path) -> None:
    """A writer placing each word on its own (Word), and text farther left on the line:
    the runs of the label's baseline, left to right."""
    content = at(20, 655, "Acme") + at(72, 655, "Invoice") + at(130, 655, "number:")
    assert ids(filled(content, "INV-2"), tmp_path) == ("INV-2",)


def test_a_label_drawn_in_a_moved_space_is_placed_where_it_shows(tmp_path: Path) -> None:
    """The label's place is where the page draws it, its transformation (cm) applied,
    as the field's /Rect is in the page's space."""
    content = b"q 1 0 0 1 50 600 cm\n" + at(22, 55, "Invoice number:") + b"Q\n"
    assert ids(filled(content, "INV-2"), tmp_path) == ("INV-2",)


def test_a_label_in_a_form_the_page_draws_is_placed_where_it_shows(
        tmp_path: Path) -> None:
    """A label inside a form (a template stamped onto the page), the form moved by its
    /Matrix and by the matrix it is drawn in: pypdf reads its text from the form's own
    space, which put the label 30 points down and to the left of where it shows."""
    body = at(42, 640, "Invoice number:")
    form = (b"<< /Type /XObject /Subtype /Form /BBox [0 0 595 842] /Matrix [1 0 0 1 10 5]"
            b" /Resources << /Font << /F1 3 0 R >> >> /Length %d >>\nstream\n%s\nendstream"
            % (len(body), body))
    page = pdf_pages(pages_of(b"q 1 0 0 1 20 10 cm /Fm0 Do Q\n" + FOOTER), form=form)
    data = with_fields(page, [(0, "number", "INV-2", FIELD)])
    assert ids(data, tmp_path) == ("INV-2",)
    elsewhere = with_fields(page, [(0, "number", "INV-2", rect(200, 635, 400, 650))])
    assert ids(elsewhere, tmp_path) == ("print",)


PLACES = {
    "above-the-field": at(200, 680, "Invoice number:"),
    "right-of-the-field": at(420, 655, "Invoice number:"),
    "below-the-field": at(72, 630, "Invoice number:"),
}


@pytest.mark.parametrize("content", PLACES.values(), ids=PLACES.keys())
def test_text_not_left_of_a_field_on_its_line_is_not_its_label(
        tmp_path: Path, content: bytes) -> None:
    """Only the page's text on the field's line and to its left is put before its
    value: a file of such a layout is one invoice under its stem, as before."""
    assert ids(filled(content, "INV-2"), tmp_path) == ("print",)


def test_a_value_that_holds_its_label_is_read_as_before(tmp_path: Path) -> None:
    """A label typed into the field too, another printed beside it: one invoice."""
    data = filled(at(72, 655, "Invoice number:"), "Invoice number: INV-2")
    assert ids(data, tmp_path) == ("INV-2",)


def test_the_runs_looked_at_for_labels_count_as_operations(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A page of many runs on the line of many fields: each run looked at for each
    field is an operation of the budget, so such a page is refused, not searched for
    minutes."""
    monkeypatch.setattr(pdftext, "MAX_PDF_TEXT_OPERATORS", 3_000)
    content = b"".join(at(2 * n, 655, "x") for n in range(60)) + at(72, 700, "Invoice "
                                                                   "number: INV-1")
    fields = [(0, f"f{n}", "INV-2", rect(200 + n, 650, 201 + n, 670)) for n in range(60)]
    error = refusal(write(tmp_path / "print.pdf",
                          with_fields(pdf_pages(pages_of(content)), fields)))
    assert (error.code, error.file) == ("invoice-too-large", "print.pdf")
    assert "drawing operations" in error.message
    off_line = [(0, name, value, rect(200, 600, 201, 620)) for _, name, value, _ in fields]
    assert ids(with_fields(pdf_pages(pages_of(content)), off_line), tmp_path) == ("INV-1",)


class Steps:
    def take_steps(self, steps: int) -> None:
        pass


RECTS = {"not-an-array": NumberObject(3), "three-numbers": ArrayObject(
    [NumberObject(0)] * 3), "not-numbers": ArrayObject([NameObject("/A")] * 4)}


@pytest.mark.parametrize("bad", RECTS.values(), ids=RECTS.keys())
def test_a_field_without_a_place_is_read_alone(bad: Any) -> None:
    """A /Rect that is not four numbers: the value alone, no error."""
    labels = Labels()
    labels.visit("Invoice number:", [1, 0, 0, 1, 0, 0], [1, 0, 0, 1, 72, 655])
    assert labels.before(DictionaryObject({NameObject("/Rect"): bad}), "INV-2",
                         Steps()) == "INV-2"
    assert labels.before(DictionaryObject({NameObject("/Rect"): ArrayObject(
        FloatObject(v) for v in (200, 650, 400, 670))}), "INV-2", Steps()) == \
        "INV-2\nInvoice number: INV-2"


def test_a_value_is_still_searched_alone_before_its_label(tmp_path: Path) -> None:
    """A pattern of an admin's that wants the number at a line's start, as a value
    was searched before labels were read, still finds it beside a label."""
    from daemon.reading.invoices import read_invoice_file
    path = write(tmp_path / "print.pdf", filled(at(72, 655, "Invoice number:"), "INV-2"))
    found = read_invoice_file(path, "print.pdf", r"(?m)^(INV-\d+)$")
    assert found.invoice_ids == ("INV-2",)
