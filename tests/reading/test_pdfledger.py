"""What the ledger of a PDF invoice file's search (daemon/reading/pdfdamage.py) makes of a
page's content parts, and what it says of the pages not read: a null written among the
parts loses nothing, a reference to an object written as null loses the part; the
pages not read are named in page order, each by the first fault found on it in the
order pypdf reads it."""

from __future__ import annotations

import zlib
from pathlib import Path

from reading.test_pdfdamage import (
    INVOICES,
    changed_byte,
    form_of,
    ids,
    pages_of,
    pdf_pages,
    stored,
    stream,
    unreadable,
    wrong_sum,
)


def test_a_null_written_among_the_parts_of_a_content_loses_nothing(tmp_path: Path
                                                                    ) -> None:
    """`/Contents [10 0 R null]`: the null names no part (pypdf skips it), page 3 is read."""
    data = pdf_pages(pages_of(*INVOICES), entries={2: b"/Contents [10 0 R null]"})
    assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")


def test_a_content_naming_an_object_written_as_null_is_a_page_not_read(
        tmp_path: Path) -> None:
    """Object 4 is written `null`: to PDF, as a reference to no object — pypdf reads no
    text there."""
    data = pdf_pages(pages_of(*INVOICES), entries={2: b"/Contents 4 0 R"}, form=b"null")
    assert "the text of page 3 could not be read (its content is not in the file)" in \
        unreadable(data, tmp_path)


def test_the_pages_not_read_are_named_in_page_order(tmp_path: Path) -> None:
    """Page 1 held in doubt (its checksum alone wrong) and decided not read at the end of
    the file, page 3 not read as it was met (cut short): pages 1, 3, page 1's reason."""
    data = pdf_pages([stream(wrong_sum(INVOICES[0])), stream(zlib.compress(INVOICES[1])),
                      stream(stored(INVOICES[2])[:30])])
    assert "the text of pages 1, 3 could not be read (page 1: its compressed content does " \
        "not match its checksum)" in unreadable(data, tmp_path)


def test_a_page_is_named_by_the_first_wrong_checksum_pypdf_reads_on_it(tmp_path: Path
                                                                        ) -> None:
    """Page 3 draws a form, then shows text, its content's checksum and the form's
    wrong: pypdf reads the form first (the content is checked after its text is read)."""
    data = pdf_pages(pages_of(*INVOICES[:2]) + [stream(changed_byte(b"/Fm0 Do\n" + INVOICES[2]))],
                     form=form_of(wrong_sum(b"0 0 m 1 1 l S\n")))
    assert "the text of page 3 could not be read (the compressed content of a form it draws " \
        "does not match its checksum)" in unreadable(data, tmp_path)


def test_a_page_is_named_by_the_first_damage_pypdf_reads_on_it(tmp_path: Path) -> None:
    """Page 3's content is cut short after it drew its form, which is cut short too: the
    form, met first (the content is checked after its text is read), is named."""
    content = b"/Fm0 Do\n" + INVOICES[2]
    data = pdf_pages(pages_of(*INVOICES[:2]) + [stream(stored(content)[:7 + 12])],
                     form=form_of(stored(b"0 0 m 1 1 l S\n")[:12]))
    assert "the text of page 3 could not be read (the compressed content of a form it draws " \
        "is cut short)" in unreadable(data, tmp_path)


def test_an_empty_dictionary_among_the_kids_is_no_page(tmp_path: Path) -> None:
    """`/Kids [5 0 R << >> 7 0 R 9 1 R]`: pypdf skips the empty dictionary (nothing on it
    lost), so the entry not in the file comes after page 2, not 3."""
    data = pdf_pages(pages_of(*INVOICES), kids=b"5 0 R << >> 7 0 R 9 1 R")
    assert "its list of pages could not be read (the entry after page 2 is not in the file)" \
        in unreadable(data, tmp_path)


def test_a_node_of_pages_without_a_type_is_walked_for_a_lost_entry(tmp_path: Path) -> None:
    """`/Kids [5 0 R 12 0 R]`, object 12 a node of pages without /Type (its /Kids tell it
    from a page, as pypdf tells it): the entry not in the file inside it is found."""
    data = pdf_pages(pages_of(*INVOICES) + [b"<< /Kids [7 0 R 9 1 R] /Parent 2 0 R /Count 2 >>"],
                     kids=b"5 0 R 12 0 R")
    assert "its list of pages could not be read (the entry after page 2 is not in the file)" \
        in unreadable(data, tmp_path)
