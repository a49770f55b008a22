"""A font's character map (/ToUnicode) that pypdf reads text through, lost without a word
(daemon/reading/pdfdamage.py, pdftext.py): most writers (LibreOffice, Word, Chrome) show
text in a composite font of glyph numbers (Identity-H), readable only through its map —
one that names no object of the file, or whose Flate is damaged, made page 3's INV-3
control characters or "INV-#", and the file went out as INV-1, INV-2 without a word.
Such a page is one whose text could not be read (pdf-text-unreadable)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import pdf_of_objects, write

from reading.test_invoices import read
from reading.test_pdfdamage import (
    INVOICES,
    _font,
    ids,
    pages_of,
    pdf_pages,
    stored,
    stream,
    unreadable,
    wrong_sum,
)

TEXT = "Invoice number: INV-3"
CODES = {c: n for n, c in enumerate(sorted(set(TEXT)), 1)}
CMAP = (b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap /CMapName /X def "
        b"1 begincodespacerange <0000> <FFFF> endcodespacerange %d beginbfchar\n" % len(CODES)
        + b"".join(b"<%04X> <%04X>\n" % (n, ord(c)) for c, n in CODES.items())
        + b"endbfchar endcmap CMapName currentdict /CMap defineresource pop end end\n")
# Page 3's text in the composite font /F2, glyph numbers a character map makes text.
SHOWN = b"BT /F2 12 Tf 72 720 Td <%s> Tj ET\n" % "".join(
    f"{CODES[c]:04X}" for c in TEXT).encode()
SELECTED = b"BT /F2 12 Tf 72 720 Td ET 0 0 m 595 842 l S\n"  # /F2 selected, nothing shown


def composite_pdf(cmap: bytes, page3: bytes = SHOWN, to_unicode: bytes = b"11 0 R",
                  pack: Callable[[bytes], bytes] = zlib.compress) -> bytes:
    """INV-1, INV-2 (in /F1, each Flate packed by `pack`) and `page3`, /F2 a Type0
    Identity-H font whose /ToUnicode is `to_unicode` (11: the stream object `cmap`)."""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [5 0 R 7 0 R 9 0 R] /Count 3 >>",
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               b"<< /Type /Font /Subtype /Type0 /BaseFont /Arial /Encoding /Identity-H "
               b"/DescendantFonts [<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Arial "
               b"/CIDSystemInfo << /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> "
               b"/DW 500 >>] /ToUnicode %s >>" % to_unicode]
    for number, content in enumerate([*INVOICES[:2], page3]):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents "
                       b"%d 0 R /Resources << /Font << /F1 3 0 R /F2 4 0 R >> >> >>"
                       % (6 + 2 * number))
        objects.append(stream(pack(content)))
    objects.append(cmap)
    return pdf_of_objects(objects)


def changed_map() -> bytes:
    """CMAP as zlib data whose "3" maps to "#" by one flipped bit after its checksum was
    taken: it unpacks without an error, and INV-3 reads "INV-#"."""
    packed = bytearray(stored(CMAP))
    packed[7 + CMAP.index(b"<%04X> <%04X>" % (CODES["3"], ord("3"))) + 10] ^= 0x01
    return bytes(packed)


SO = "so an invoice number on it was not looked for"


def test_a_composite_font_and_its_map_are_read(tmp_path: Path) -> None:
    assert ids(composite_pdf(stream(zlib.compress(CMAP))), tmp_path) == (
        "INV-1", "INV-2", "INV-3")


def test_a_lost_map_of_a_composite_font_is_a_page_not_read(tmp_path: Path) -> None:
    data = composite_pdf(stream(zlib.compress(CMAP)), to_unicode=b"99 0 R")
    assert "the text of page 3 could not be read (the character map of the font /F2 it " \
        f"shows text in is not in the file), {SO}" in unreadable(data, tmp_path)


def test_a_map_cut_short_is_a_page_not_read(tmp_path: Path) -> None:
    packed = zlib.compress(CMAP)
    data = composite_pdf(stream(packed[:len(packed) // 2]))
    assert "the text of page 3 could not be read (the compressed character map of the " \
        f"font /F2 it shows text in is cut short), {SO}" in unreadable(data, tmp_path)


def test_a_changed_byte_in_a_map_beside_right_checksums_is_a_page_not_read(
        tmp_path: Path) -> None:
    data = composite_pdf(stream(changed_map()))
    assert "the text of page 3 could not be read (the compressed character map of the " \
        f"font /F2 it shows text in does not match its checksum), {SO}" in \
        unreadable(data, tmp_path)


def test_a_writer_whose_every_checksum_is_wrong_is_read_with_its_maps(
        tmp_path: Path) -> None:
    """jsPDF 1.x's, maps included: all of it unpacks, and pypdf reads it all."""
    data = composite_pdf(stream(wrong_sum(CMAP)), pack=wrong_sum)
    found = read(write(tmp_path / "print.pdf", data))
    assert (found.invoice_ids, found.warnings) == (("INV-1", "INV-2", "INV-3"), ())


def test_a_damaged_map_of_a_font_that_shows_no_text_loses_nothing(tmp_path: Path) -> None:
    packed = zlib.compress(CMAP)
    data = composite_pdf(stream(packed[:len(packed) // 2]), page3=SELECTED)
    found = read(write(tmp_path / "print.pdf", data))
    assert (found.invoice_ids, found.warnings) == (("INV-1", "INV-2"), ())


def _descendant(entries: bytes) -> bytes:
    """A page's /Resources holding /F1, a Type0 font whose descendant has `entries`."""
    return _font(b"/Subtype /Type0 /BaseFont /Arial /Encoding /Identity-H /DescendantFonts "
                 b"[<< /Type /Font /Subtype /CIDFontType2 /BaseFont /Arial /CIDSystemInfo "
                 b"<< /Registry (Adobe) /Ordering (Identity) /Supplement 0 >> %s >>]" % entries)


# A part of the font that names no object of the file, in a place _lost_part does not
# name: pypdf drops the whole font all the same (tried one by one), "\ufffd" for each
# character.
DROPPED = {
    "descriptor": _font(b"/Subtype /TrueType /BaseFont /Arial /FirstChar 32 /LastChar 126 "
                        b"/FontDescriptor 99 0 R"),
    "type1-font-file": _font(b"/Subtype /Type1 /BaseFont /Foo /FontDescriptor << /Type "
                             b"/FontDescriptor /FontName /Foo /FontFile 99 0 R >>"),
    "compact-font-file": _font(b"/Subtype /Type1 /BaseFont /Foo /FontDescriptor << /Type "
                               b"/FontDescriptor /FontName /Foo /FontFile3 99 0 R >>"),
    "descendant-entry": _font(b"/Subtype /Type0 /BaseFont /Arial /Encoding /Identity-H "
                              b"/DescendantFonts [99 0 R]"),
    "descendants-descriptor": _descendant(b"/FontDescriptor 99 0 R"),
    "descendants-widths": _descendant(b"/W 99 0 R"),
    "descendants-font-file": _descendant(b"/FontDescriptor << /Type /FontDescriptor "
                                         b"/FontName /Arial /FontFile2 99 0 R >>"),
}


@pytest.mark.parametrize("entry", DROPPED.values(), ids=DROPPED.keys())
def test_text_in_a_font_pypdf_drops_is_a_page_not_read(tmp_path: Path, entry: bytes) -> None:
    data = pdf_pages(pages_of(*INVOICES), resources={2: entry})
    assert "the text of page 3 could not be read (the font /F1 it shows text in cannot be " \
        f"read), {SO}" in unreadable(data, tmp_path)


def without_map(to_unicode: bytes | None, page3: bytes = SHOWN, to_glyphs: bytes = b""
                ) -> bytes:
    """composite_pdf's file, /F2's /ToUnicode written as `to_unicode` (None: none at all),
    its descendant font's entries `to_glyphs` added (object 11: a stream of glyphs)."""
    data = composite_pdf(stream(b"\0\x01" * 128), page3=page3, to_unicode=to_unicode or b"x")
    if to_unicode is None:
        data = data.replace(b" /ToUnicode x", b"")
    return rebuilt(data.replace(b"/DW 500 >>]", b"/DW 500 %s>>]" % to_glyphs))


def rebuilt(data: bytes) -> bytes:
    """composite_pdf's file `data`, changed in place, with its table written again."""
    return pdf_of_objects([data[data.index(b"%d 0 obj\n" % n) + len(b"%d 0 obj\n" % n):
                                data.index(b"\nendobj", data.index(b"%d 0 obj\n" % n))]
                           for n in range(1, 12)])


@pytest.mark.parametrize("to_unicode", [None, b"null", b"/Identity-H"],
                         ids=["none", "null", "a-name"])
def test_a_composite_font_of_glyph_numbers_without_a_map_is_a_page_not_read(
        tmp_path: Path, to_unicode: bytes | None) -> None:
    """A map is optional to PDF, but without one pypdf reads the glyph numbers of an
    Identity-H font as control characters: INV-3 went out unsaid as INV-1, INV-2."""
    assert "the text of page 3 could not be read (the font /F2 it shows text in has no " \
        f"character map), {SO}" in unreadable(without_map(to_unicode), tmp_path)


UNICODE = b"BT /F2 12 Tf 72 720 Td <%s> Tj ET\n" % TEXT.encode("utf-16-be").hex().encode()


def test_a_composite_font_of_character_codes_without_a_map_is_read(tmp_path: Path) -> None:
    """A writer whose CIDs are the characters' own codes (UTF-16) maps them to glyphs by
    a /CIDToGIDMap stream: pypdf reads its text right, without a map."""
    data = without_map(None, UNICODE, b"/CIDToGIDMap 11 0 R ")
    assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")


def test_a_composite_font_without_a_map_that_shows_no_text_loses_nothing(tmp_path: Path
                                                                          ) -> None:
    assert ids(without_map(None, SELECTED), tmp_path) == ("INV-1", "INV-2")


def test_a_lost_map_of_a_composite_font_in_a_unicode_encoding_loses_nothing(
        tmp_path: Path) -> None:
    """/UniGB-UCS2-H: the codes are the characters' own, which pypdf reads through the
    encoding — a map that names no object loses nothing (only one of glyph numbers is
    needed)."""
    data = rebuilt(composite_pdf(stream(zlib.compress(CMAP)), page3=UNICODE,
                                 to_unicode=b"99 0 R").replace(b"/Identity-H", b"/UniGB-UCS2-H"))
    assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")


def test_a_lost_map_of_a_vertical_composite_font_is_a_page_not_read(tmp_path: Path) -> None:
    """Identity-V, glyph numbers written top to bottom (CJK invoices), as Identity-H."""
    data = composite_pdf(stream(zlib.compress(CMAP)), to_unicode=b"99 0 R").replace(
        b"/Identity-H", b"/Identity-V")
    assert "the text of page 3 could not be read (the character map of the font /F2 it " \
        f"shows text in is not in the file), {SO}" in unreadable(data, tmp_path)


def test_a_map_is_unpacked_again_once_a_page_not_at_each_text_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Page 3 shows its text in /F2 fifty times: its map is checked once (a map of 1 MB
    checked at each of a page's thousands of runs of text would be gigabytes unpacked)."""
    from daemon.reading import pdfdamage
    checked: list[object] = []
    flate = pdfdamage._flate

    def spy(stream: object) -> object:
        checked.append(stream)
        return flate(stream)
    monkeypatch.setattr(pdfdamage, "_flate", spy)
    shown = b"BT /F2 12 Tf 72 720 Td <%s> Tj ET\n" % b"".join(
        b"%04X" % CODES[c] for c in "Invoice number: INV-3")
    found = read(write(tmp_path / "print.pdf", composite_pdf(stream(zlib.compress(CMAP)),
                                                             page3=shown * 50)))
    assert found.warnings == ()
    assert len(checked) == 3 + 1  # the pages' contents, and the map once
