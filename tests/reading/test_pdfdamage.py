"""Damage pypdf reads past without a word (daemon/reading/pdfdamage.py): a PDF invoice page
whose text pypdf silently loses is a page whose text could not be read
(pdf-text-unreadable, docs/folder-convention.md section 2), as one on which pypdf raises
— a file of INV-1, INV-2 and such a page of INV-3 went out as ('INV-1', 'INV-2'), no
error, no warning. And pages without /Resources are read in linear time (pdftext.py)."""

from __future__ import annotations

import gzip
import io
import zlib
from pathlib import Path

import pytest
from helpers import pdf_of_objects, write
from PIL import Image
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from daemon.reading.invoices import InvoiceRead
from reading.test_invoices import read, refusal, text_run

INVOICES = [text_run(f"Invoice number: INV-{n}") for n in (1, 2, 3)]


def stream(packed: bytes, length: int | None = None) -> bytes:
    """A Flate stream object of the bytes `packed` as they are (its /Length theirs, or
    `length`)."""
    return (b"<< /Length %d /Filter /FlateDecode >>\nstream\n"
            % (len(packed) if length is None else length) + packed + b"\nendstream")


def stored(data: bytes, checksum: bytes | None = None) -> bytes:
    """`data` as zlib data of one stored (unpacked) block, the same bytes with any zlib:
    each byte of `data` is at a known place. `checksum`: the bytes after the block
    (default: zlib's checksum of `data`)."""
    size = len(data)
    return (b"\x78\x01\x01" + size.to_bytes(2, "little") + (size ^ 0xFFFF).to_bytes(2, "little")
            + data + (zlib.adler32(data).to_bytes(4, "big") if checksum is None else checksum))


def changed_byte(content: bytes) -> bytes:
    """`content` as zlib data (stored()) whose "Tj" became "Tk" by one flipped bit after
    its checksum was taken: zlib unpacks it without an error, pypdf shows no text (an
    operator it does not know) — the text lost, unsaid."""
    packed = bytearray(stored(content))
    packed[7 + content.index(b"Tj") + 1] ^= 0x01
    return bytes(packed)


def form_of(packed: bytes) -> bytes:
    """The stream object of the form /Fm0 (pdf_pages') of the Flate data `packed`."""
    return (b"<< /Length %d /Filter /FlateDecode /Type /XObject /Subtype /Form "
            b"/BBox [0 0 595 842] /Resources << /Font << /F1 3 0 R >> >> >>\nstream\n"
            % len(packed) + packed + b"\nendstream")


def pdf_pages(streams: list[bytes], entries: dict[int, bytes] | None = None,
              kids: bytes | None = None, form: bytes | None = None,
              resources: dict[int, bytes] | None = None) -> bytes:
    """A PDF of a page per stream object of `streams` (pages 5, 7, …, each page's content
    the object after it), in the font /F1 (3). `entries`: a page's /Contents
    entry in place of its own (by index); `kids`: the /Kids array's entries in place of
    the pages'; `form`: the stream object of the form /Fm0 (4) the pages may draw;
    `resources`: a page's /Resources entry in place of its own (by index)."""
    first = 5
    pages = [b"%d 0 R" % (first + 2 * i) for i in range(len(streams))]
    kids = kids if kids is not None else b" ".join(pages)
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(streams)),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               form or b"<< /Length 0 >>\nstream\n\nendstream"]
    for i, content in enumerate(streams):
        entry = (entries or {}).get(i, b"/Contents %d 0 R" % (first + 2 * i + 1))
        own = (resources or {}).get(
            i, b"/Resources << /Font << /F1 3 0 R >> /XObject << /Fm0 4 0 R >> >>")
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] %s %s >>"
                       % (entry, own))
        objects.append(content)
    return pdf_of_objects(objects)


def pages_of(*contents: bytes) -> list[bytes]:
    return [stream(zlib.compress(content)) for content in contents]


def ids(data: bytes, tmp_path: Path, name: str = "print.pdf") -> tuple[str, ...]:
    return read(write(tmp_path / name, data)).invoice_ids


def unreadable(data: bytes, tmp_path: Path) -> str:
    """The message of the pdf-text-unreadable error reading print.pdf of `data` gives."""
    error = refusal(write(tmp_path / "print.pdf", data))
    assert (error.code, error.file) == ("pdf-text-unreadable", "print.pdf")
    return error.message


HOLDS = "holds the invoices INV-1, INV-2, but "
SO = ", so an invoice number on it was not looked for"


class TestFlate:
    """pypdf unpacks Flate leniently: what zlib refuses it skips (a warning to a logger
    outboxd keeps quiet), data cut short it takes as it is, a checksum it never checks."""

    def test_a_changed_byte_that_unpacks_without_an_error_is_caught_by_the_checksum(
            self, tmp_path: Path) -> None:
        """Page 3's "Tj" turned "Tk" (changed_byte): INV-3 was lost unsaid."""
        data = pdf_pages(pages_of(*INVOICES[:2]) + [stream(changed_byte(INVOICES[2]))])
        assert unreadable(data, tmp_path) == (
            f"{HOLDS}the text of page 3 could not be read (its compressed content does not "
            f"match its checksum){SO} — export the PDF again (print to PDF), or split it "
            "into one file per invoice")

    def test_data_zlib_refuses_is_a_page_not_read(self, tmp_path: Path) -> None:
        """A stored block whose two lengths disagree: pypdf's recovery unpacks nothing
        of it, and logged that only."""
        packed = bytearray(stored(INVOICES[2]))
        packed[5] ^= 0xFF
        data = pdf_pages(pages_of(*INVOICES[:2]) + [stream(bytes(packed))])
        assert f"page 3 could not be read (its compressed content is damaged, zlib: " \
            f"invalid stored block lengths){SO}" in unreadable(data, tmp_path)

    def test_data_cut_short_is_a_page_not_read(self, tmp_path: Path) -> None:
        """Compressed data that stops inside its block (a copy cut short, a /Length too
        small): pypdf took what there was, the text after the cut lost."""
        packed = stored(INVOICES[2])[:30]
        data = pdf_pages(pages_of(*INVOICES[:2]) + [stream(packed)])
        assert f"page 3 could not be read (its compressed content is cut short){SO}" in \
            unreadable(data, tmp_path)

    def test_a_damaged_page_and_no_id_is_the_stem_with_a_warning(self, tmp_path: Path
                                                                   ) -> None:
        packed = stored(INVOICES[2])[:30]
        found = read(write(tmp_path / "INV-8.pdf", pdf_pages([stream(packed)])))
        assert_stem_with_warning(found, "its compressed content is cut short")

    def test_a_damaged_form_a_page_draws_is_a_page_not_read(self, tmp_path: Path) -> None:
        """The text of page 3 is in a form it draws, whose Flate lost it."""
        data = pdf_pages(pages_of(*INVOICES[:2], b"/Fm0 Do\n"),
                         form=form_of(changed_byte(INVOICES[2])))
        assert f"page 3 could not be read (the compressed content of a form it draws does " \
            f"not match its checksum){SO}" in unreadable(data, tmp_path)

    @pytest.mark.parametrize("packed", [
        stored(INVOICES[2], checksum=b""),
        stored(INVOICES[2], checksum=zlib.adler32(INVOICES[2]).to_bytes(4, "big")[:2]),
        stored(INVOICES[2]) + b"\r\n",
        stored(INVOICES[2], checksum=b"\r" + zlib.adler32(INVOICES[2]).to_bytes(4, "big")[:3]),
        stored(INVOICES[2], checksum=b"\r\n\r\n"),
    ], ids=["no-checksum", "checksum-cut", "end-of-line-counted", "distiller-cr",
            "blanks-for-checksum"])
    def test_what_writers_get_wrong_harmlessly_is_read(self, tmp_path: Path,
                                                       packed: bytes) -> None:
        """A missing checksum (or part of it), an end of line counted in /Length, a CR
        before a checksum short of its last byte (early Distiller, PitStop, some Adobe
        writers, which pypdf's recovery is for): all of the data unpacks, and is read."""
        data = pdf_pages(pages_of(*INVOICES[:2]) + [stream(packed)])
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")

    @pytest.mark.parametrize("flush", [zlib.Z_SYNC_FLUSH, zlib.Z_FULL_FLUSH],
                             ids=["sync-flush", "full-flush"])
    @pytest.mark.parametrize("after", [b"", b"\r\n"], ids=["", "end-of-line-counted"])
    def test_data_ended_at_a_flush_without_its_last_block_is_read(
            self, tmp_path: Path, flush: int, after: bytes) -> None:
        """A writer that flushes its compressor but never finishes it (streams saved by
        Acrobat Reader's forms: pypdf's recovery of "incomplete or truncated stream" is
        for them) ends the data at a whole byte, with the empty stored block 00 00 FF FF
        and no last block nor checksum: all it wrote unpacks, pypdf reads all the text.
        Taken for data cut short, every page of such a file was a page not read."""
        def flushed(content: bytes) -> bytes:
            packer = zlib.compressobj()
            return packer.compress(content) + packer.flush(flush) + after
        data = pdf_pages([stream(flushed(content)) for content in INVOICES])
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")


def wrong_sum(content: bytes) -> bytes:
    """`content` as zlib compresses it, its checksum written wrong (every bit flipped), as
    jsPDF 1.x writes every stream's: all of the data unpacks, and pypdf reads its text."""
    packed = zlib.compress(content)
    return packed[:-4] + (int.from_bytes(packed[-4:], "big") ^ 0xFFFFFFFF).to_bytes(4, "big")


def plain(content: bytes) -> bytes:
    """A stream object of `content` as it is: no Flate, no checksum to tell by."""
    return b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream"


class TestChecksumAlone:
    """A wrong checksum over data that unpacks whole is damage only beside a right one in
    the same file: a writer that gets every checksum wrong (jsPDF 1.x) lost nothing, and
    its file of INV-1, INV-2 and INV-3 went out as one invoice under its file name."""

    def test_a_writer_whose_every_checksum_is_wrong_is_read_whole_without_a_warning(
            self, tmp_path: Path) -> None:
        data = pdf_pages([stream(wrong_sum(content)) for content in INVOICES])
        found = read(write(tmp_path / "print.pdf", data))
        assert (found.invoice_ids, found.warnings) == (("INV-1", "INV-2", "INV-3"), ())

    def test_a_one_page_file_with_a_wrong_checksum_is_read_under_its_id(
            self, tmp_path: Path) -> None:
        """Its one stream is all there is to tell the writer by: its id, not the stem
        with a warning."""
        found = read(write(tmp_path / "print.pdf",
                           pdf_pages([stream(wrong_sum(INVOICES[0]))])))
        assert (found.invoice_ids, found.warnings) == (("INV-1",), ())

    def test_one_wrong_checksum_among_right_ones_is_a_page_not_read(
            self, tmp_path: Path) -> None:
        """Page 1's checksum is wrong, the pages after it have theirs right: decided
        at the end of the file, page 1 is a page not read (a changed byte), its INV-1
        not kept."""
        data = pdf_pages([stream(wrong_sum(INVOICES[0]))] + pages_of(*INVOICES[1:]))
        assert unreadable(data, tmp_path).startswith(
            "holds the invoices INV-2, INV-3, but the text of page 1 could not be read (its "
            f"compressed content does not match its checksum){SO}")

    def test_a_right_checksum_in_a_form_makes_a_wrong_one_on_a_page_damage(
            self, tmp_path: Path) -> None:
        """The only right checksum of the file is a form's (page 1 draws it, INV-1 in
        it; page 2 is not Flate): page 3's wrong one is a changed byte."""
        data = pdf_pages([plain(b"/Fm0 Do\n"), plain(INVOICES[1]),
                          stream(wrong_sum(INVOICES[2]))],
                         form=form_of(zlib.compress(INVOICES[0])))
        assert unreadable(data, tmp_path) == (
            f"{HOLDS}the text of page 3 could not be read (its compressed content does not "
            f"match its checksum){SO} — export the PDF again (print to PDF), or split it "
            "into one file per invoice")

    def test_a_form_with_a_wrong_checksum_among_wrong_ones_is_read(self, tmp_path: Path
                                                                    ) -> None:
        data = pdf_pages([stream(wrong_sum(b"/Fm0 Do\n")), stream(wrong_sum(INVOICES[1]))],
                         form=form_of(wrong_sum(INVOICES[0])))
        assert ids(data, tmp_path) == ("INV-1", "INV-2")

    @pytest.mark.parametrize(("packed", "proves"), [
        (zlib.compress(INVOICES[1])[:-1], True),
        (zlib.compress(INVOICES[1])[:-2], True),
        (gzip.compress(INVOICES[1], mtime=0), True),
        (zlib.compress(INVOICES[1])[:-3], False),
        (zlib.compress(INVOICES[1])[:-4], False),
    ], ids=["short-of-its-last-byte", "two-bytes", "gzip", "one-byte", "none"])
    def test_what_checksum_proves_the_writer_gets_them_right(
            self, tmp_path: Path, packed: bytes, proves: bool) -> None:
        """Beside page 1's wrong checksum, page 2's: one short of its last byte, or of
        two, or gzip's (which zlib checks) is right, and page 1 is a page not read; one
        byte of it (1 in 256 by chance) or none proves nothing, and page 1 is read."""
        data = pdf_pages([stream(wrong_sum(INVOICES[0])), stream(packed)])
        if proves:
            assert unreadable(data, tmp_path).startswith(
                "holds the invoice INV-2, but the text of page 1 could not be read")
        else:
            assert ids(data, tmp_path) == ("INV-1", "INV-2")

    def test_the_ids_of_pages_held_in_doubt_keep_their_page_order(self, tmp_path: Path
                                                                   ) -> None:
        """Pages 1 and 3 held in doubt until the end of the file (page 2 is not Flate),
        then read: the ids in order of first appearance, page by page, as for any file."""
        data = pdf_pages([stream(wrong_sum(INVOICES[1])), plain(INVOICES[0]),
                          stream(wrong_sum(INVOICES[2])), plain(INVOICES[1])])
        assert ids(data, tmp_path) == ("INV-2", "INV-1", "INV-3")

    def test_a_wrong_checksum_does_not_hide_other_damage_on_its_page(self, tmp_path: Path
                                                                     ) -> None:
        """Page 3's first part has only its checksum wrong (as every stream of the
        file), its second is not in the file: the page is not read, for that."""
        data = pdf_pages([stream(wrong_sum(content)) for content in INVOICES],
                         entries={2: b"/Contents [10 0 R 99 0 R]"})
        assert f"page 3 could not be read (a part of its content is not in the file){SO}" \
            in unreadable(data, tmp_path)


class TestContents:
    def test_contents_that_are_not_a_stream_are_a_page_not_read(self, tmp_path: Path
                                                                  ) -> None:
        """pypdf logs "Page contents are not a stream or an array" and reads no text."""
        data = pdf_pages(pages_of(*INVOICES), entries={2: b"/Contents 42"})
        assert f"page 3 could not be read (its content is not a stream){SO}" in \
            unreadable(data, tmp_path)

    def test_contents_that_are_no_object_of_the_file_are_a_page_not_read(
            self, tmp_path: Path) -> None:
        data = pdf_pages(pages_of(*INVOICES), entries={2: b"/Contents 99 0 R"})
        assert f"page 3 could not be read (its content is not in the file){SO}" in \
            unreadable(data, tmp_path)

    def test_a_part_of_the_contents_that_is_no_object_is_a_page_not_read(
            self, tmp_path: Path) -> None:
        data = pdf_pages(pages_of(*INVOICES), entries={2: b"/Contents [10 0 R 99 0 R]"})
        assert "page 3 could not be read (a part of its content is not in the file)" in \
            unreadable(data, tmp_path)

    def test_a_page_without_contents_is_no_damage(self, tmp_path: Path) -> None:
        """A blank page (no /Contents, or null) loses nothing: the ids are the file's."""
        data = pdf_pages(pages_of(*INVOICES, b""), entries={3: b""})
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")
        data = pdf_pages(pages_of(*INVOICES, b""), entries={3: b"/Contents null"})
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")


# Page 3's /Resources entry, the font it names lost in each way pypdf reads past: the
# resources, the /Font dictionary or the font no object of the file, the name not among
# the fonts, the font a null.
def _font(entries: bytes) -> bytes:
    """A page's /Resources holding the font /F1 written in place with `entries`."""
    return b"/Resources << /Font << /F1 << /Type /Font %s >> >> >>" % entries


LOST_FONTS = {
    "resources-not-in-the-file": (b"/Resources 99 0 R", "its resources are not in the file"),
    "fonts-not-in-the-file": (b"/Resources << /Font 99 0 R >>",
                              "the fonts it shows text in are not in the file"),
    "font-not-in-the-file": (b"/Resources << /Font << /F1 99 0 R >> >>",
                             "the font /F1 it shows text in is not in the file"),
    "font-not-among-the-fonts": (b"/Resources << /Font << /F2 3 0 R >> >>",
                                 "the font /F1 it shows text in is not among its fonts"),
    "font-a-null": (b"/Resources << /Font << /F1 null >> >>",
                    "the font /F1 it shows text in is not a font"),
    "no-resources": (b"", "it shows text but has no fonts"),
    # A part of the font that names no object: pypdf drops the whole font and reads
    # "\ufffd" for each character (tried one by one).
    "encoding-not-in-the-file": (
        _font(b"/Subtype /Type1 /BaseFont /Helvetica /Encoding 99 0 R"),
        "the encoding of the font /F1 it shows text in is not in the file"),
    "differences-not-in-the-file": (
        _font(b"/Subtype /Type1 /BaseFont /Helvetica "
              b"/Encoding << /Type /Encoding /Differences 99 0 R >>"),
        "the encoding's differences of the font /F1 it shows text in is not in the file"),
    "widths-not-in-the-file": (
        _font(b"/Subtype /Type1 /BaseFont /Helvetica /FirstChar 32 /LastChar 126 "
              b"/Widths 99 0 R"),
        "the widths of the font /F1 it shows text in is not in the file"),
    "a-width-not-in-the-file": (
        _font(b"/Subtype /Type1 /BaseFont /Helvetica /FirstChar 32 /LastChar 34 "
              b"/Widths [500 99 0 R 500]"),
        "a width of the font /F1 it shows text in is not in the file"),
    "font-file-not-in-the-file": (
        _font(b"/Subtype /TrueType /BaseFont /Arial /FontDescriptor << /Type "
              b"/FontDescriptor /FontName /Arial /FontFile2 99 0 R >>"),
        "the embedded font file of the font /F1 it shows text in is not in the file"),
    "descendant-font-not-in-the-file": (
        _font(b"/Subtype /Type0 /BaseFont /Arial /Encoding /Identity-H "
              b"/DescendantFonts 99 0 R"),
        "the descendant font of the font /F1 it shows text in is not in the file"),
}
# A page of lines, and a font selected but no text shown in it: nothing to lose.
DRAWING = b"0 0 m 595 842 l S 10 10 100 100 re f BT /F1 12 Tf 72 720 Td ET\n"


class TestFonts:
    """Text shown in a font pypdf does not have: pypdf reads none of it (no resources),
    or "\ufffd" for each character, without a word — a file of INV-1, INV-2 and a page
    of INV-3 whose font was lost went out as the invoices INV-1 and INV-2."""

    @pytest.mark.parametrize("entry,why", LOST_FONTS.values(), ids=LOST_FONTS.keys())
    def test_text_in_a_lost_font_is_a_page_not_read(self, tmp_path: Path, entry: bytes,
                                                   why: str) -> None:
        data = pdf_pages(pages_of(*INVOICES), resources={2: entry})
        assert unreadable(data, tmp_path) == (
            f"{HOLDS}the text of page 3 could not be read ({why}){SO} — export the PDF "
            "again (print to PDF), or split it into one file per invoice")

    @pytest.mark.parametrize("entry", [entry for entry, _ in LOST_FONTS.values()],
                             ids=LOST_FONTS.keys())
    def test_a_page_that_shows_no_text_loses_nothing_with_its_font(
            self, tmp_path: Path, entry: bytes) -> None:
        """A page of lines that selects the lost font and shows nothing in it: the ids
        of the file, no finding."""
        data = pdf_pages(pages_of(*INVOICES[:2], DRAWING), resources={2: entry})
        found = read(write(tmp_path / "print.pdf", data))
        assert (found.invoice_ids, found.warnings) == (("INV-1", "INV-2"), ())

    def test_a_lost_to_unicode_map_loses_nothing(self, tmp_path: Path) -> None:
        """A /ToUnicode that names no object: pypdf reads the text by the font's own
        encoding, INV-3 with it — not a page not read (a walk for every reference the
        font makes that names nothing would refuse such readable files)."""
        data = pdf_pages(pages_of(*INVOICES), resources={2: _font(
            b"/Subtype /Type1 /BaseFont /Helvetica /ToUnicode 99 0 R")})
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")

    @pytest.mark.parametrize("shown", [b"(INV-3) Tj", b"[(INV-) -20 (3)] TJ", b"(INV-3) '",
                                       b'0 0 (INV-3) "'], ids=["Tj", "TJ", "quote", "dquote"])
    def test_each_operator_that_shows_text_shows_it_lost(self, tmp_path: Path,
                                                         shown: bytes) -> None:
        content = b"BT /F1 12 Tf 72 720 Td 14 TL %s ET\n" % shown
        data = pdf_pages(pages_of(*INVOICES[:2], content),
                         resources={2: LOST_FONTS["font-not-in-the-file"][0]})
        assert "page 3 could not be read (the font /F1 it shows text in is not in the " \
            "file)" in unreadable(data, tmp_path)

    def test_a_lost_font_given_up_by_q_and_Q_loses_nothing(self, tmp_path: Path) -> None:
        """pypdf's text takes the font back at "Q", as the graphics state: the text
        shown after it, in /F1 selected before "q", is read."""
        content = (b"BT /F1 12 Tf ET q BT /F9 12 Tf ET Q "
                   b"BT 72 720 Td (Invoice number: INV-3) Tj ET\n")
        data = pdf_pages(pages_of(*INVOICES[:2], content))
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")

    def test_text_in_a_lost_font_selected_before_q_is_lost(self, tmp_path: Path) -> None:
        content = b"BT /F9 12 Tf ET q BT 72 720 Td (Invoice number: INV-3) Tj ET Q\n"
        data = pdf_pages(pages_of(*INVOICES[:2], content))
        assert "page 3 could not be read (the font /F9 it shows text in is not among its " \
            "fonts)" in unreadable(data, tmp_path)

    def test_text_in_a_lost_font_of_a_form_a_page_draws_is_a_page_not_read(
            self, tmp_path: Path) -> None:
        """The form's own fonts are the ones its text is in, not the page's."""
        form = (b"<< /Length %d /Type /XObject /Subtype /Form /BBox [0 0 595 842] "
                b"/Resources << /Font << /F1 99 0 R >> >> >>\nstream\n" % len(INVOICES[2])
                + INVOICES[2] + b"\nendstream")
        data = pdf_pages(pages_of(*INVOICES[:2], b"q /Fm0 Do Q BT /F1 12 Tf (Total) Tj ET\n"),
                         form=form)
        assert "page 3 could not be read (the font /F1 a form it draws shows text in is " \
            "not in the file)" in unreadable(data, tmp_path)

    def test_a_lost_font_of_a_form_leaves_the_pages_font_as_it_was(self, tmp_path: Path
                                                                   ) -> None:
        """A form that selects a lost font and shows nothing in it, drawn between the
        page's text in /F1: the page's text is read."""
        form = (b"<< /Length %d /Type /XObject /Subtype /Form /BBox [0 0 595 842] "
                b"/Resources << /Font << /F1 99 0 R >> >> >>\nstream\n" % len(DRAWING)
                + DRAWING + b"\nendstream")
        content = (b"BT /F1 12 Tf 72 720 Td (Invoice number:) Tj ET /Fm0 Do "
                   b"BT 72 700 Td (INV-3) Tj ET\n")
        data = pdf_pages(pages_of(*INVOICES[:2], content), form=form)
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")

    def test_resources_not_in_the_file_up_the_parent_chain_are_a_page_not_read(
            self, tmp_path: Path) -> None:
        """Page 2 takes its resources from its /Parent, a node that does not list it
        (pypdf looks up /Parent), whose /Resources names none of the file's objects."""
        data = pdf_of_objects([
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R 5 0 R] /Count 2 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << /Font << /F1 8 0 R >> >> >>",
            stream(zlib.compress(INVOICES[0])),
            b"<< /Type /Page /Parent 7 0 R /MediaBox [0 0 595 842] /Contents 6 0 R >>",
            stream(zlib.compress(INVOICES[1])),
            b"<< /Type /Pages /Kids [] /Count 0 /Resources 99 0 R >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"])
        assert "the text of page 2 could not be read (its resources are not in the file)" \
            in refusal(write(tmp_path / "print.pdf", data)).message

    def test_a_lost_font_and_no_id_is_the_stem_with_a_warning(self, tmp_path: Path
                                                              ) -> None:
        data = pdf_pages(pages_of(INVOICES[0]), resources={0: b"/Resources 99 0 R"})
        found = read(write(tmp_path / "INV-8.pdf", data))
        assert_stem_with_warning(found, "its resources are not in the file")


class TestPageList:
    def test_a_kid_that_is_no_object_of_the_file_is_a_page_not_read(self, tmp_path: Path
                                                                      ) -> None:
        """/Kids [5 0 R 7 0 R 9 1 R]: object 9 is in the file, but not of generation 1.
        pypdf left the page out of its list without a word."""
        data = pdf_pages(pages_of(*INVOICES), kids=b"5 0 R 7 0 R 9 1 R")
        assert unreadable(data, tmp_path) == (
            f"{HOLDS}its list of pages could not be read (the entry after page 2 is not in "
            "the file), so an invoice number on it was not looked for — export the PDF "
            "again (print to PDF), or split it into one file per invoice")

    @pytest.mark.parametrize("kids", [b"5 0 R 7 0 R 17", b"5 0 R 7 0 R 12 0 R"],
                             ids=["a-number", "a-page-of-another-type"])
    def test_a_kid_that_is_not_a_page_is_a_page_not_read(self, tmp_path: Path, kids: bytes
                                                         ) -> None:
        """A number, or page 3 as an object of /Type /Pag (object 12, written as the
        fourth "content"): pypdf skips either with no more than a warning to its logger."""
        streams = pages_of(*INVOICES) + [b"<< /Type /Pag /Parent 2 0 R /Contents 10 0 R "
                                         b"/Resources << /Font << /F1 3 0 R >> >> >>"]
        data = pdf_pages(streams, kids=kids)
        assert "its list of pages could not be read (the entry after page 2 is not a page)" \
            in unreadable(data, tmp_path)

    def test_a_null_written_in_the_kids_is_no_page_lost(self, tmp_path: Path) -> None:
        """`/Kids [5 0 R null 7 0 R 9 0 R]`: the null names no object (a page left out by
        the writer, not one the file lost), and pypdf reads every page there is — as a
        null written among the parts of a /Contents. It was said to be "not in the file",
        and the file of INV-1, INV-2 and INV-3 quarantined."""
        for kids in (b"5 0 R null 7 0 R 9 0 R", b"5 0 R 7 0 R 9 0 R null"):
            data = pdf_pages(pages_of(*INVOICES), kids=kids)
            assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3"), kids

    def test_a_first_kid_missing_beside_no_id_is_the_stem_with_a_warning(
            self, tmp_path: Path) -> None:
        data = pdf_pages(pages_of(text_run("Total 100.00"), text_run("Page 2")),
                         kids=b"99 0 R 5 0 R 7 0 R")
        found = read(write(tmp_path / "scan.pdf", data))
        assert found.invoice_ids == ("scan",)
        assert [w.message.split(", so ")[0] for w in found.warnings] == [
            "its list of pages could not be read (the entry before its first page is not in "
            "the file)"]


def pypdf_pdf(contents: list[bytes]) -> bytes:
    """A PDF pypdf writes: a page per content, in Helvetica, its content compressed by
    pypdf's own compression."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    for content in contents:
        page = writer.add_blank_page(595, 842)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
            {NameObject("/F1"): font})})
        body = DecodedStreamObject()
        body.set_data(content)
        page[NameObject("/Contents")] = writer._add_object(body)
        page.compress_content_streams()
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


class TestValidFiles:
    """Whole files of other writers read as they did: no page taken for damaged."""

    def test_fonts_of_pages_and_forms_selected_and_given_back_are_read(
            self, tmp_path: Path) -> None:
        """Two fonts, each selected inside "q" and "Q" and after them, text shown by all
        four operators, and a form of its own font drawn among it: every id is read, no
        warning — no valid page is taken for one whose font was lost."""
        form = (b"<< /Length %d /Type /XObject /Subtype /Form /BBox [0 0 595 842] "
                b"/Resources << /Font << /F2 3 0 R >> >> >>\nstream\n"
                % len(INVOICES[2].replace(b"/F1", b"/F2"))
                + INVOICES[2].replace(b"/F1", b"/F2") + b"\nendstream")
        content = (b"q BT /F1 12 Tf 72 720 Td (Invoice number: INV-1) Tj ET Q "
                   b"BT /F1 9 Tf 72 600 Td 14 TL (Invoice number: INV-4) ' "
                   b"0 0 (Invoice number: INV-5) \" T* [(Invoice number: INV-) 20 (6)] TJ ET "
                   b"q /Fm0 Do Q BT 72 400 Td (Invoice number: INV-2) Tj ET\n")
        data = pdf_pages(pages_of(content, INVOICES[1]), form=form, resources={
            0: b"/Resources << /Font << /F1 3 0 R /F2 3 0 R >> /XObject << /Fm0 4 0 R >> >>"})
        found = read(write(tmp_path / "print.pdf", data))
        assert set(found.invoice_ids) == {f"INV-{n}" for n in range(1, 7)}
        assert found.warnings == ()

    def test_pypdfs_compression_is_read_whole(self, tmp_path: Path) -> None:
        data = pypdf_pdf(INVOICES)
        assert b"/FlateDecode" in data
        assert ids(data, tmp_path) == ("INV-1", "INV-2", "INV-3")

    def test_qpdfs_compression_is_read_whole(self, tmp_path: Path) -> None:
        """pikepdf (qpdf, which img2pdf brings) packs every stream again with its zlib."""
        import pikepdf
        out = io.BytesIO()
        with pikepdf.open(io.BytesIO(pypdf_pdf(INVOICES))) as pdf:
            pdf.save(out, compress_streams=True, recompress_flate=True,
                     object_stream_mode=pikepdf.ObjectStreamMode.generate)
        assert ids(out.getvalue(), tmp_path) == ("INV-1", "INV-2", "INV-3")

    def test_pillows_and_img2pdfs_scans_are_read_without_a_warning(self, tmp_path: Path
                                                                    ) -> None:
        """Scans (a page of an image, no text): the stem, and no warning."""
        import img2pdf
        image = io.BytesIO()
        Image.new("RGB", (60, 80), "white").save(image, "PNG")
        scans = {"pillow.pdf": io.BytesIO(), "img2pdf.pdf": img2pdf.convert(
            [image.getvalue()] * 3, nodate=True)}
        Image.new("RGB", (60, 80), "white").save(
            scans["pillow.pdf"], "PDF", save_all=True,
            append_images=[Image.new("RGB", (60, 80), "gray")] * 2)
        for name, made in scans.items():
            data = made.getvalue() if isinstance(made, io.BytesIO) else made
            found = read(write(tmp_path / name, data))
            assert (found.invoice_ids, found.warnings) == ((Path(name).stem,), ()), name


def tree_of_pages(count: int, resources: bool) -> bytes:
    """`count` pages under one node, each with a short text run, its resources its own
    or none anywhere."""
    content = text_run("Invoice number: INV-1")
    kids = b" ".join(b"%d 0 R" % (3 + 2 * i) for i in range(count))
    own = b" /Resources << /Font << /F1 %d 0 R >> >>" % (3 + 2 * count) if resources else b""
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, count)]
    for i in range(count):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                       b"/Contents %d 0 R%s >>" % (4 + 2 * i, own))
        objects.append(stream(zlib.compress(content)))
    objects.append(b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    return pdf_of_objects(objects)


def test_pages_without_resources_parse_their_parent_once_not_once_a_page(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages without /Resources (none on them, none above them): the look for inherited
    ones went up /Parent for each page, and the node of n pages, dropped with the page
    before (invoices.py drops what pypdf resolved page by page), was parsed again each
    time: 2,000 such pages (450 KB) took 6.2 s, 20,000 the reader's time limit. Now the
    node is parsed once: 0.13 s and 1.5 s (pages with their own resources: 0.5 s for
    2,000). Time is not asserted; how often the node is parsed is."""
    parsed = []
    resolve = PdfReader.get_object

    def spy(self: PdfReader, ref: object) -> object:
        idnum = ref if isinstance(ref, int) else getattr(ref, "idnum", None)
        if idnum == 2 and (0, 2) not in self.resolved_objects:
            parsed.append(2)
        return resolve(self, ref)  # type: ignore[arg-type]
    monkeypatch.setattr(PdfReader, "get_object", spy)
    assert ids(tree_of_pages(200, resources=False), tmp_path, "INV-9.pdf") == ("INV-9",)
    assert len(parsed) <= 3, len(parsed)  # opening, listing the pages; not per page


def test_a_page_whose_resources_are_up_its_parent_chain_alone_is_still_read(
        tmp_path: Path) -> None:
    """A page whose /Parent is not the node that lists it, and holds the /Resources the
    page takes (pypdf looks up /Parent): its text is read as pypdf reads it."""
    content = text_run("Invoice number: INV-4")
    data = pdf_of_objects([
        b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 5 0 R /MediaBox [0 0 595 842] /Contents 4 0 R >>",
        stream(zlib.compress(content)),
        b"<< /Type /Pages /Kids [] /Count 0 /Resources << /Font << /F1 6 0 R >> >> >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"])
    assert ids(data, tmp_path) == ("INV-4",)


def assert_stem_with_warning(found: InvoiceRead, reason: str) -> None:
    """INV-8.pdf read as one invoice under its stem, with the warning that page 1's text
    could not be read for `reason`."""
    assert found.invoice_ids == ("INV-8",)
    [warning] = found.warnings
    assert (warning.code, warning.severity) == ("pdf-text-unreadable", "warning")
    assert warning.message.startswith(f"the text of page 1 could not be read ({reason}), so "
                                      "its invoice number was not looked for")
