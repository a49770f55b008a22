"""Objects a PDF names but its cross-reference table does not find (pdfobjects.py): looked
up in one index of the file, not by pypdf's search of the whole file for each; a file
whose table is right, or that pypdf repairs, reads as plain pypdf reads it."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pypdf._reader
import pytest
from helpers import write
from PIL import Image
from pypdf import PdfReader, PdfWriter
from reading.test_invoices import read, refusal
from reading.test_pdfdamage import INVOICES, pages_of, pdf_pages, pypdf_pdf

from daemon.validation import pdfobjects
from daemon.validation.pdfobjects import IndexedReader
from daemon.validation.pdfprobe import PdfFacts, probe_pdf


class Scans:
    """How often the whole file was gone through: pypdf's searches for one object each
    (each takes a copy of the file, pypdf's get_stream_data), and this module's passes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.searches = 0
        self.passes = 0
        copy = pypdf._reader.get_stream_data
        index = IndexedReader._headers_unlisted

        def searched(stream: Any) -> bytes:
            self.searches += 1
            return copy(stream)

        def passed(reader: IndexedReader) -> dict[tuple[int, int], int]:
            self.passes += 1
            return index(reader)
        monkeypatch.setattr(pypdf._reader, "get_stream_data", searched)
        monkeypatch.setattr(IndexedReader, "_headers_unlisted", passed)


@pytest.fixture
def scans(monkeypatch: pytest.MonkeyPatch) -> Scans:
    return Scans(monkeypatch)


def missing(count: int) -> bytes:
    """References to `count` objects no file here holds."""
    return b" ".join(b"%d 0 R" % (100_000 + i) for i in range(count))


def padding(size: int) -> bytes:
    """The form object of pdf_pages, `size` bytes of data that no page draws: what each
    of pypdf's searches goes through."""
    return b"<< /Length %d >>\nstream\n%s\nendstream" % (size, b"x" * size)


def plain_pages(data: bytes) -> list[str]:
    """The text of each page as pypdf alone reads it."""
    return [page.extract_text() for page in PdfReader(io.BytesIO(data), strict=False).pages]


def indexed_pages(data: bytes) -> list[str]:
    return [page.extract_text() for page in IndexedReader(io.BytesIO(data)).pages]


class TestNamedButNotHeld:
    """A hostile file: thousands of references to objects it does not hold."""

    def test_kids_not_in_the_file_are_looked_for_in_one_pass_for_an_attachment(
            self, scans: Scans) -> None:
        """3,000 /Kids entries to no object in 300 KB: pypdf searched the file for each
        as it listed the pages to count them — 2.9 s (20,000 in 1.2 MB: 91 s, a reader
        held to its time limit, per attempt); one pass now: 0.01 s (20,000: 0.06 s).
        The count found is the same: the one page that is there."""
        data = pdf_pages(pages_of(INVOICES[0]), kids=b"5 0 R " + missing(3_000),
                         form=padding(300_000))
        assert probe_pdf(io.BytesIO(data)) == PdfFacts(pages=1)
        assert (scans.searches, scans.passes) == (0, 1)

    def test_kids_not_in_the_file_of_an_invoice_are_a_list_of_pages_not_read(
            self, scans: Scans, tmp_path: Path) -> None:
        """The same file as an invoice: the entries are looked for when it is opened, as
        pdfdamage walks the list of pages, and again once each page has dropped what
        pypdf resolved — from the one index each time (2.9 s before, 0.01 s now). Its
        message is unchanged."""
        data = pdf_pages(pages_of(INVOICES[0]), kids=b"5 0 R " + missing(3_000),
                         form=padding(300_000))
        error = refusal(write(tmp_path / "print.pdf", data))
        assert (error.code, error.message) == ("pdf-text-unreadable", (
            "holds the invoice INV-1, but its list of pages could not be read (the entry "
            "after page 1 is not in the file), so an invoice number on it was not looked "
            "for — export the PDF again (print to PDF), or split it into one file per "
            "invoice"))
        assert (scans.searches, scans.passes) == (0, 1)

    def test_content_parts_not_in_the_file_are_looked_for_in_one_pass(
            self, scans: Scans, tmp_path: Path) -> None:
        """A page's /Contents array of 3,000 parts that are no object of the file: an
        attachment's count never reads it; an invoice's text search took 3.0 s, each
        part searched for, now 0.1 s. The page is one whose text could not be read."""
        data = pdf_pages(pages_of(INVOICES[0]),
                         entries={0: b"/Contents [6 0 R %s]" % missing(3_000)},
                         form=padding(300_000))
        found = read(write(tmp_path / "INV-7.pdf", data))
        assert found.invoice_ids == ("INV-7",)
        assert [w.message.split(", so ")[0] for w in found.warnings] == [
            "the text of page 1 could not be read (a part of its content is not in the "
            "file)"]
        assert (scans.searches, scans.passes) == (0, 1)


    @pytest.mark.parametrize("resources", ["/Font", "/XObject"])
    def test_resources_not_in_the_file_are_looked_for_in_one_pass(
            self, resources: str, scans: Scans, tmp_path: Path) -> None:
        """3,000 fonts, or forms the page draws, that are no object of the file: pypdf's
        text search looked each up (its fonts when it starts, a form at each draw),
        3.0 s and 3.1 s in 300 KB; now 0.02 s and 0.04 s. Nothing on the page is lost:
        its number is read."""
        names = b" ".join(b"/R%d %d 0 R" % (i, 100_000 + i) for i in range(3_000))
        draws = b"".join(b"/R%d Do\n" % i for i in range(3_000)) \
            if resources == "/XObject" else b""
        fonts = b"/F1 3 0 R" + (names if resources == "/Font" else b"")
        xobjects = names if resources == "/XObject" else b""
        data = pdf_pages(pages_of(INVOICES[0] + draws), entries={0: (
            b"/Contents 6 0 R /Resources << /Font << %s >> /XObject << %s >> >>"
            % (fonts, xobjects))}, form=padding(300_000))
        assert read(write(tmp_path / "print.pdf", data)).invoice_ids == ("INV-1",)
        assert (scans.searches, scans.passes) == (0, 1)

    def test_objects_listed_at_another_objects_header_are_looked_for_in_one_pass(
            self, scans: Scans) -> None:
        """A table that lists 3,000 /Kids at the catalog's place, none of them anywhere
        in the file: pypdf found the catalog's header there, searched the file for each
        (3.8 s in 300 KB) and read the catalog in its place; now 0.02 s, and each is
        missing, as it is from the file."""
        kids = b" ".join(b"%d 0 R" % (20 + i) for i in range(3_000))
        data = pdf_pages(pages_of(INVOICES[0]), kids=b"5 0 R " + kids, form=padding(300_000))
        head, table = data.split(b"\nxref\n", 1)
        lines = table.split(b"\n")
        size = int(lines[0].split()[1])
        catalog = lines[2][:10] + b" 00000 n "
        lines = [b"0 3020"] + lines[1:1 + size] + [catalog] * (3_020 - size) + \
            lines[lines.index(b"trailer"):]
        table = b"\n".join(lines).replace(b"/Size %d " % size, b"/Size 3020 ")
        assert probe_pdf(io.BytesIO(head + b"\nxref\n" + table)) == PdfFacts(pages=1)
        assert (scans.searches, scans.passes) == (0, 1)


def listing_first(data: bytes) -> bytes:
    """`data` (pdf_of_objects') with a table that lists only its first three objects
    (the catalog, the pages, the font): pypdf finds the others by searching for them."""
    head, table = data.split(b"\nxref\n", 1)
    lines = table.split(b"\n")
    size = lines[0].split()[1]
    kept = [b"0 4"] + lines[1:5] + lines[lines.index(b"trailer"):]
    return head + b"\nxref\n" + b"\n".join(kept).replace(b"/Size " + size + b" ", b"/Size 4 ")


def pointing_at_the_first(data: bytes) -> bytes:
    """`data` (pdf_of_objects') whose table lists every object but the catalog at the
    catalog's place: each header there is another's, and pypdf searches for each."""
    head, table = data.split(b"\nxref\n", 1)
    lines = table.split(b"\n")
    first = lines[2][:10]
    lines[3:] = [first + line[10:] if line.endswith(b" n ") else line for line in lines[3:]]
    return head + b"\nxref\n" + b"\n".join(lines)


class TestRepairedTables:
    """Files whose table pypdf mends as it reads them read as pypdf alone reads them."""

    @pytest.mark.parametrize("damage", [listing_first, pointing_at_the_first])
    def test_objects_the_table_misplaces_are_read_where_pypdfs_search_finds_them(
            self, damage: Callable[[bytes], bytes], scans: Scans, tmp_path: Path) -> None:
        data = pdf_pages(pages_of(*INVOICES))
        broken = damage(data)
        expected = plain_pages(broken)
        assert [text.strip() for text in expected] == [
            f"Invoice number: INV-{n}" for n in (1, 2, 3)]  # pypdf mends it
        scans.searches = 0
        assert indexed_pages(broken) == expected
        assert read(write(tmp_path / "print.pdf", broken)).invoice_ids == (
            "INV-1", "INV-2", "INV-3")
        assert scans.searches == 0
        assert scans.passes == 2  # once a reader: the test's, the invoice's

    @pytest.mark.parametrize("damage", [
        lambda data: re.sub(rb"startxref\n\d+", b"startxref\n5", data),
        lambda data: b"a line a mail gateway put before it\n" + data],
        ids=["startxref wrong", "bytes before it"])
    def test_a_table_pypdf_mends_on_opening_is_never_gone_through_again(
            self, damage: Callable[[bytes], bytes], scans: Scans, tmp_path: Path) -> None:
        """A table pypdf cannot find where the file says (rebuilt from the objects it
        finds), or whose places are all off by the bytes before the file's start: every
        object is where pypdf's table says once it is open, and nothing is looked for."""
        broken = damage(pdf_pages(pages_of(*INVOICES)))
        assert read(write(tmp_path / "print.pdf", broken)).invoice_ids == (
            "INV-1", "INV-2", "INV-3")
        assert scans.passes == 0


def incremental(data: bytes) -> bytes:
    """`data` with an update appended, as a signature or a filled-in form adds one: a
    page added, the first page's objects written again."""
    writer = PdfWriter(io.BytesIO(data), incremental=True)
    writer.add_blank_page(595, 842)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def valid_files() -> dict[str, bytes]:
    import img2pdf
    image = io.BytesIO()
    Image.new("RGB", (60, 80), "white").save(image, "PNG")
    pillow = io.BytesIO()
    Image.new("RGB", (60, 80), "white").save(
        pillow, "PDF", save_all=True, append_images=[Image.new("RGB", (60, 80), "gray")])
    pypdfs = pypdf_pdf(INVOICES)
    return {"pypdf": pypdfs, "pillow": pillow.getvalue(),
            "img2pdf": img2pdf.convert([image.getvalue()] * 2, nodate=True),
            "incremental": incremental(pypdfs),
            "by hand": pdf_pages(pages_of(*INVOICES))}


def test_valid_files_read_as_pypdf_reads_them_without_a_pass(scans: Scans) -> None:
    """Files whose table is right: each object where the table says, never an index."""
    for name, data in valid_files().items():
        assert indexed_pages(data) == plain_pages(data), name
        assert probe_pdf(io.BytesIO(data)).pages == len(plain_pages(data)), name
    assert (scans.passes, scans.searches) == (0, 0)


class TestLimit:
    """A file that holds more objects its table leaves out than the pass notes."""

    def many_unlisted(self, entries: dict[int, bytes] | None = None,
                      kids: bytes | None = None) -> bytes:
        headers = b"".join(b"\n%d 0 obj" % n for n in range(1_000, 1_030))
        return pdf_pages(pages_of(INVOICES[0]), entries=entries, kids=kids,
                         form=b"<< /Length %d >>\nstream\n%s\nendstream" % (len(headers),
                                                                             headers))

    @pytest.fixture(autouse=True)
    def low_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pdfobjects, "MAX_UNLISTED_HEADERS", 20)

    def test_an_attachment_naming_one_of_them_is_refused_in_words(self, scans: Scans
                                                                  ) -> None:
        data = self.many_unlisted(kids=b"5 0 R 99 0 R")
        assert probe_pdf(io.BytesIO(data)).problem() == ("pdf-unreadable", (
            "is not a readable PDF (it names objects its cross-reference table does not "
            "list, and holds over 20 such objects, more than are looked through for them: "
            "damaged, or made to hold up its reading) — export or print the document to "
            "PDF again"))
        assert (scans.passes, scans.searches) == (1, 0)

    def test_an_invoice_naming_one_in_a_page_is_refused_not_read_in_part(
            self, scans: Scans, tmp_path: Path) -> None:
        """Met while a page is read (its /Contents), past the count of its pages."""
        data = self.many_unlisted(entries={0: b"/Contents [6 0 R 99 0 R 98 0 R]"})
        error = refusal(write(tmp_path / "print.pdf", data))
        assert error.code == "pdf-unreadable"
        assert "holds over 20 such objects" in error.message
        assert (scans.passes, scans.searches) == (1, 0)  # refused once, not per lookup

    def test_a_file_holding_them_but_naming_none_is_read(self, scans: Scans,
                                                         tmp_path: Path) -> None:
        """The headers are only text inside a stream: nothing is looked for."""
        assert read(write(tmp_path / "INV-1.pdf", self.many_unlisted())).invoice_ids == (
            "INV-1",)
        assert scans.passes == 0


def in_object_stream(pages: int, others: int) -> bytes:
    """A PDF whose font, and `others` objects besides, are in one object stream (3), its
    pages and their content outside it, as a writer's cross-reference stream lists
    them: page n reads "Invoice number: INV-n"."""
    out, places = bytearray(b"%PDF-1.5\n"), {}
    numbers = [5 + others + 2 * i for i in range(pages)]

    def add(number: int, body: bytes) -> None:
        places[number] = len(out)
        out.extend(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    add(1, b"<< /Type /Catalog /Pages 2 0 R >>")
    add(2, b"<< /Type /Pages /Kids [%s] /Count %d >>" % (
        b" ".join(b"%d 0 R" % n for n in numbers), pages))
    members = [b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"] + \
        [b"<< /A %d >>" % i for i in range(others)]
    starts = [sum(len(m) + 1 for m in members[:i]) for i in range(len(members))]
    head = b" ".join(b"%d %d" % (4 + i, at) for i, at in enumerate(starts)) + b"\n"
    data = head + b"\n".join(members)
    add(3, b"<< /Type /ObjStm /N %d /First %d /Length %d >>\nstream\n%s\nendstream" % (
        len(members), len(head), len(data), data))
    for n, number in enumerate(numbers, 1):
        content = b"BT /F1 12 Tf 72 720 Td (Invoice number: INV-%d) Tj ET" % n
        add(number, b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents "
            b"%d 0 R /Resources << /Font << /F1 4 0 R >> >> >>" % (number + 1))
        add(number + 1, b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content))
    table = numbers[-1] + 2
    rows = b"".join(
        b"\x01" + places[n].to_bytes(4, "big") + b"\0\0" if n in places else
        b"\x02" + (3).to_bytes(4, "big") + (n - 4).to_bytes(2, "big") if 4 <= n < 5 + others
        else b"\x01" + len(out).to_bytes(4, "big") + b"\0\0" if n == table
        else b"\0\0\0\0\0\xff\xff" for n in range(table + 1))
    start = len(out)
    out += b"%d 0 obj\n<< /Type /XRef /Size %d /W [1 4 2] /Root 1 0 R /Length %d >>\n" \
        b"stream\n%s\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % (
            table, table + 1, len(rows), rows, start)
    return bytes(out)


class TestObjectStreams:
    """Objects of an object stream, which pypdf parses all at once, are kept from page
    to page of an invoice's text search; what else pypdf resolved is dropped."""

    @pytest.fixture
    def stream_parses(self, monkeypatch: pytest.MonkeyPatch) -> list[int]:
        parses: list[int] = []
        parse = PdfReader._get_object_from_stream

        def spy(self: PdfReader, ref: Any) -> Any:
            parses.append(ref.idnum)
            return parse(self, ref)
        monkeypatch.setattr(PdfReader, "_get_object_from_stream", spy)
        return parses

    def test_a_stream_the_pages_font_is_in_is_parsed_once_not_once_a_page(
            self, stream_parses: list[int], tmp_path: Path) -> None:
        """40 pages whose font is in a stream of 5,000 objects: parsed again for each
        page, 2.3 s (400 pages and 20,000 objects in 780 KB: 88 s); once now, 0.08 s
        (those 400: 0.5 s)."""
        data = in_object_stream(40, 5_000)
        found = read(write(tmp_path / "print.pdf", data))
        assert found.invoice_ids == tuple(f"INV-{n}" for n in range(1, 41))
        assert len(stream_parses) == 1

    def test_streams_past_the_limit_are_parsed_again_as_before(
            self, stream_parses: list[int], tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(pdfobjects, "MAX_KEPT_STREAM_BYTES", 1_000)
        found = read(write(tmp_path / "print.pdf", in_object_stream(5, 500)))
        assert found.invoice_ids == tuple(f"INV-{n}" for n in range(1, 6))
        assert len(stream_parses) == 5

    def test_what_a_page_resolved_outside_streams_is_dropped(self) -> None:
        """The page's content (decoded, the memory the drop is for), the page, the
        stream itself: gone; the stream's objects stay, the first listed first."""
        reader = IndexedReader(io.BytesIO(in_object_stream(3, 10)))
        reader.pages[0].extract_text()
        assert (0, 3) in reader.resolved_objects  # the stream, its decoded data with it
        reader.drop_resolved()
        assert sorted(reader.resolved_objects) == [(0, n) for n in range(4, 15)]
        assert reader.pages[1].extract_text() == "Invoice number: INV-2"
        reader.drop_resolved()
        assert sorted(reader.resolved_objects) == [(0, n) for n in range(4, 15)]
