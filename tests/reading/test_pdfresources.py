"""Where the search of a PDF invoice's text finds a page's resources
(daemon/reading/pdfresources.py): up its /Parent chain when it has none of its own,
that chain walked once even where it loops, and resources that hold nothing taken for
none, as pypdf takes them — text shown there is lost, the page not read."""

from __future__ import annotations

from pathlib import Path

from helpers import pdf_of_objects

from reading.test_pdfdamage import INVOICES, pages_of, pdf_pages, unreadable


def test_a_parent_chain_that_loops_is_walked_once(tmp_path: Path) -> None:
    """Page 3 has no resources, and its /Parent (object 4) is its own parent: the look
    up the chain stops where it has been, and the page, with no fonts, is not read."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [5 0 R 7 0 R 9 0 R] /Count 3 >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< /Parent 4 0 R >>"]  # its own parent
    for number, content in enumerate(pages_of(*INVOICES)):
        own = b"/Parent 4 0 R" if number == 2 else \
            b"/Parent 2 0 R /Resources << /Font << /F1 3 0 R >> >>"
        objects += [b"<< /Type /Page %s /MediaBox [0 0 595 842] /Contents %d 0 R >>"
                    % (own, 6 + 2 * number), content]
    data = pdf_of_objects(objects)
    assert "the text of page 3 could not be read (it shows text but has no fonts)" in \
        unreadable(data, tmp_path)


def test_resources_that_hold_nothing_are_none(tmp_path: Path) -> None:
    """`/Resources << >>`: pypdf reads no text on a page whose resources are empty."""
    data = pdf_pages(pages_of(*INVOICES), resources={2: b"/Resources << >>"})
    assert "the text of page 3 could not be read (it shows text but has no fonts)" in \
        unreadable(data, tmp_path)
