"""PDF facts from pypdf (pdfprobe.py): the page count from the page tree root's /Count
when it can be right, from walking the whole tree otherwise; a damaged cross-reference
table and a file cut inside an update said in words."""

from __future__ import annotations

import io
import random
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
)

from daemon.validation.pdfprobe import DAMAGED, PdfFacts, probe_pdf
from daemon.validation.pdftail import xref_miscounted

Edit = Callable[[PdfWriter, DictionaryObject], None]


def pdf(pages: int = 2, edit: Edit | None = None, tree: bool = False) -> bytes:
    """A PDF of blank pages; `edit` may rewrite the page tree root before it is written;
    `tree`: the pages hang below an intermediate /Pages node instead of the root."""
    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(595, 842)
    root = writer._pages.get_object()
    if tree:
        middle = DictionaryObject({NameObject("/Type"): NameObject("/Pages"),
                                   NameObject("/Kids"): root["/Kids"],
                                   NameObject("/Count"): NumberObject(pages),
                                   NameObject("/Parent"): writer._pages})
        middle_ref = writer._add_object(middle)
        for kid in root["/Kids"]:
            kid.get_object()[NameObject("/Parent")] = middle_ref
        root[NameObject("/Kids")] = ArrayObject([middle_ref])
    if edit is not None:
        edit(writer, root)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def count(value: PdfObject) -> Edit:
    def edit(writer: PdfWriter, root: DictionaryObject) -> None:
        root[NameObject("/Count")] = value
    return edit


def kids(make: Callable[[PdfWriter, DictionaryObject], list[PdfObject]]) -> Edit:
    def edit(writer: PdfWriter, root: DictionaryObject) -> None:
        root[NameObject("/Kids")] = ArrayObject(make(writer, root))
    return edit


def probe(data: bytes) -> PdfFacts:
    return probe_pdf(io.BytesIO(data))


class TestPageCount:
    @pytest.mark.parametrize("pages", [1, 3, 12])
    def test_flat_tree(self, pages: int) -> None:
        """An honest PDF reports its number of pages."""
        assert probe(pdf(pages)) == PdfFacts(pages=pages)

    def test_nested_tree(self) -> None:
        """Pages below an intermediate /Pages node are counted like a flat tree."""
        assert probe(pdf(5, tree=True)) == PdfFacts(pages=5)

    @pytest.mark.parametrize("lie", [
        NumberObject(0),  # "no pages" is never believed: the tree is walked
        NumberObject(-3),
        NumberObject(99),  # more pages than the file has objects
        NameObject("/Two"),  # not a number at all
    ])
    def test_impossible_count_is_recounted(self, lie: PdfObject) -> None:
        """A /Count that cannot be right gives way to walking the tree: the real 2 pages."""
        assert probe(pdf(2, count(lie))) == PdfFacts(pages=2)

    def test_count_below_kids_is_recounted(self) -> None:
        """A /Count smaller than the root's own /Kids gives way to the real 3 pages."""
        assert probe(pdf(3, count(NumberObject(1)))) == PdfFacts(pages=3)

    def test_count_without_kids_is_no_pages(self) -> None:
        """A root claiming 2 pages with no /Kids is a PDF with no pages."""
        assert probe(pdf(2, kids(lambda w, r: []))) == PdfFacts(pages=0)

    def test_count_over_a_kid_that_is_no_page(self) -> None:
        """A root claiming 1 page whose kid is a font, not a page, has no pages."""
        def font(writer: PdfWriter, root: DictionaryObject) -> list[PdfObject]:
            return [writer._add_object(DictionaryObject(
                {NameObject("/Type"): NameObject("/Font")}))]
        assert probe(pdf(0, lambda w, r: (kids(font)(w, r), count(NumberObject(1))(w, r))
                         )) == PdfFacts(pages=0)

    def test_repeated_kid_is_recounted(self) -> None:
        """The same page listed twice under /Kids is walked: 2, as pypdf counts it, not
        the /Count of 1."""
        def twice(writer: PdfWriter, root: DictionaryObject) -> list[PdfObject]:
            first = root["/Kids"][0]
            return [first, first]
        assert probe(pdf(1, lambda w, r: (kids(twice)(w, r), count(NumberObject(2))(w, r))
                         )) == PdfFacts(pages=2)
        assert probe(pdf(1, kids(twice))) == PdfFacts(pages=2)

    def test_repeated_kid_under_a_count_that_could_be_right_is_recounted(self) -> None:
        """The same page listed twice under a /Count of 3, a number the file's objects
        would allow: the tree is walked (2 pages), its /Count not taken."""
        def twice(writer: PdfWriter, root: DictionaryObject) -> list[PdfObject]:
            first = root["/Kids"][0]
            return [first, first]
        assert probe(pdf(2, lambda w, r: (kids(twice)(w, r), count(NumberObject(3))(w, r))
                         )) == PdfFacts(pages=2)

    def test_a_first_branch_deeper_than_real_trees_is_recounted(self) -> None:
        """One page below 40 nested /Pages nodes (deeper than the 32 levels followed)
        under a /Count of 5: the tree is walked (1 page), its /Count not taken."""
        def deep(writer: PdfWriter, root: DictionaryObject) -> None:
            below = root["/Kids"]
            for _ in range(40):
                ref = writer._add_object(DictionaryObject({
                    NameObject("/Type"): NameObject("/Pages"), NameObject("/Kids"): below,
                    NameObject("/Count"): NumberObject(1)}))
                for kid in below:
                    kid.get_object()[NameObject("/Parent")] = ref
                below = ArrayObject([ref])
            root[NameObject("/Kids")] = below
            root[NameObject("/Count")] = NumberObject(5)
        assert probe(pdf(1, deep)) == PdfFacts(pages=1)

    def test_kid_missing_from_the_file_is_recounted(self) -> None:
        """A kid that names an object the file does not hold makes the tree be walked."""
        def missing(writer: PdfWriter, root: DictionaryObject) -> list[PdfObject]:
            return [*root["/Kids"], IndirectObject(999, 0, writer)]
        assert probe(pdf(2, lambda w, r: (kids(missing)(w, r), count(NumberObject(3))(w, r))
                         )) == PdfFacts(pages=2)

    def test_plausible_lie_is_reported_as_stated(self) -> None:
        """A /Count that passes every check is taken as the PDF states it, as a viewer
        shows it: 3 for a file whose tree holds 2 pages (only `pages` in the manifest
        can be off; a file without pages never passes, see above)."""
        assert probe(pdf(2, count(NumberObject(3)))) == PdfFacts(pages=3)


class TestDamagedCrossReferenceTable:
    """A table whose section counts more or fewer entries than follow it: pypdf refuses
    the file in its own words; the clerk is told what is damaged, and the fix."""

    @staticmethod
    def miscounted(count: int) -> bytes:
        data = pdf(2)
        table = re.search(rb"xref\n0 (\d+)\n", data)
        assert table is not None and int(table[1]) != count
        return data[:table.start(1)] + str(count).encode() + data[table.end(1):]

    @pytest.mark.parametrize("count", [1, 5, 8, 9, 12, 30, 99, 10**9])
    def test_a_miscounted_table_is_named_with_the_fix(self, count: int) -> None:
        """Fewer entries declared than held ("Could not read Null object"), a few more
        ("Invalid Elementary Object"), more than the file could hold ("Declared size 99
        exceeds allowed limit"): each says the table is damaged, not pypdf's words."""
        assert probe(self.miscounted(count)).problem() == (
            "pdf-unreadable", "is not a readable PDF (its cross-reference table, the list "
            "of where each part of the file lies, is damaged: it counts more or fewer "
            "entries than it holds) — export or print the document to PDF again")

    def test_a_table_that_counts_right_is_not_said_to_be_damaged(self) -> None:
        """A PDF refused for another reason (its page tree's /Kids is no list) is not
        said to have a damaged table: it is said to be damaged, pypdf's words after."""
        broken = pdf(2).replace(b"/Kids [", b"/Kids <<", 1)
        facts = probe(broken)
        assert facts.error == DAMAGED
        assert facts.detail is not None and facts.detail.startswith("pypdf: ")


class TestDamagedOtherwise:
    """A PDF pypdf refuses where the file shows no more precise cause: the clerk reads
    plain words and the fix; pypdf's own words follow, shortened, for the admin."""

    def test_garbage_after_the_header_says_damaged_and_the_fix_first(self) -> None:
        """`%PDF-1.4` and garbage: "damaged, or not really a PDF" and where to make it
        again, before pypdf's words ("Stream has ended unexpectedly") in parentheses."""
        assert probe(b"%PDF-1.4\n garbage").problem() == (
            "pdf-unreadable", "is not a readable PDF: the file is damaged, or is not "
            "really a PDF (pypdf: Stream has ended unexpectedly) — export or print it to "
            "PDF again from the program that made it")

    def test_pypdfs_long_words_are_cut_to_one_short_line(self) -> None:
        """An exception text of thousands of characters (pypdf quotes bytes of the file)
        is kept to 100 characters on one line: the message stays readable."""
        from pypdf.errors import PdfReadError

        from daemon.validation.pdfprobe import _refused
        facts = _refused(io.BytesIO(pdf(1)), PdfReadError("bad\n" + "x" * 5000))
        assert facts.error == DAMAGED and facts.detail is not None
        assert len(facts.detail) <= len("pypdf: ") + 100 and "\n" not in facts.detail

    @pytest.mark.parametrize("fault", [AssertionError(), TypeError("'NoneType' object is "
                                       "not subscriptable"), KeyError("/Root"),
                                       IndexError("list index out of range"),
                                       ValueError("invalid literal for int() with base 10")])
    def test_pypdf_failing_in_its_own_code_is_said_as_damaged_and_logged_only(
            self, monkeypatch: pytest.MonkeyPatch, fault: Exception) -> None:
        """pypdf failing in its own code on a file (an AssertionError, a KeyError …):
        the clerk reads that the PDF is damaged and to export it again, without
        "(pypdf: AssertionError)"; pypdf's text goes to the log, for the admin."""
        from structlog.testing import capture_logs

        from daemon.validation import pdfobjects

        def fails(*_: object, **__: object) -> None:
            raise fault
        monkeypatch.setattr(pdfobjects, "IndexedReader", fails)
        with capture_logs() as logs:
            facts = probe(pdf(1))
        assert facts.problem() == (
            "pdf-unreadable", "is not a readable PDF: the file is damaged, or is not "
            "really a PDF — export or print it to PDF again from the program that made it")
        [line] = [e for e in logs if "pypdf failed in its own code" in e["event"]]
        assert line["error"].startswith(type(fault).__name__)

    def test_tables_of_an_updated_pdf_that_count_right_are_not_damaged(self) -> None:
        """A PDF with an update (two tables) and a PDF 1.5 cross-reference stream: the
        check finds nothing to say of either."""
        _, whole = incremental()
        assert not xref_miscounted(io.BytesIO(whole))
        writer = PdfWriter()
        writer.add_blank_page(100, 100)
        buf = io.BytesIO()
        writer.write(buf)
        assert not xref_miscounted(io.BytesIO(buf.getvalue()))


# ------------------------------------------------- PDFs cut inside an update

def incremental(extra: bytes = b"") -> tuple[bytes, bytes]:
    """A 3-page PDF and the same file with an update appended (as a signature, a form
    filled in or notes are saved): a 4th page and, when given, an `extra` attachment."""
    writer = PdfWriter()
    for _ in range(3):
        writer.add_blank_page(200, 200)
    buf = io.BytesIO()
    writer.write(buf)
    first = buf.getvalue()
    update = PdfWriter(io.BytesIO(first), incremental=True)
    update.add_blank_page(300, 300)
    if extra:
        update.add_attachment("extra.bin", extra)
    buf = io.BytesIO()
    update.write(buf)
    return first, buf.getvalue()


class TestCutInsideAnUpdate:
    def test_a_whole_pdf_with_an_update_is_read_with_the_updates_pages(self) -> None:
        """The update is read: 4 pages, not the first revision's 3."""
        _, whole = incremental()
        assert probe(whole) == PdfFacts(pages=4)

    def test_every_cut_inside_the_update_is_unreadable_not_the_older_revision(self) -> None:
        """Cut anywhere in its update (from the first bytes of its first object to just
        before its own %%EOF), pypdf would read the 3-page revision before it; the probe
        says the file ends inside an update, with the fix: pdf-unreadable, so the grace
        for files cut short applies."""
        first, whole = incremental()
        assert whole.startswith(first) and whole[len(first):].lstrip().startswith(b"2 0 obj")
        start = len(first) + whole[len(first):].index(b" 0") + 2  # "2 0": the two numbers
        end = whole.rindex(b"%%EOF")
        for cut in range(start, end + 4):  # "%%EO": pypdf takes it for the new marker
            facts = probe(whole[:cut])
            assert facts.cut_short and facts.pages == 0, f"cut at {cut}: {facts}"
            assert facts.problem() == (
                "pdf-unreadable", "is not a readable PDF: it ends inside an update added "
                "after its end marker, as a copy stopped before its end leaves it — copy "
                "the file again"), f"cut at {cut}"

    def test_an_end_marker_inside_the_update_at_the_first_reads_edge_is_not_the_end(
            self) -> None:
        """An update cut inside its stream, whose data holds "x%%EOF" (no marker pypdf
        takes: not at a line's start) just where the first 4 KB read from the end begins:
        that marker's line is not known yet, so the probe reads further back, past it to
        the real %%EOF, and finds the update cut short — not the older revision's 3 pages."""
        first, _ = incremental()
        head = first + b"4 0 obj\n<< /Length 9000 >>\nstream\n" + b"q\n" * 100 + b"x"
        data = head + b"%%EOF stream bytes\n" + b"q\n" * 2038 + b"q"
        assert len(data) - 4096 == len(head)  # the marker starts the first 4 KB read
        assert probe(data).cut_short

    def test_a_copy_that_sized_the_file_first_is_unreadable_inside_the_update(self) -> None:
        """The update half written, the rest still the zeros of a copy that sized the
        file first."""
        first, whole = incremental()
        data = whole[:len(first) + 60] + bytes(len(whole) - len(first) - 60)
        assert probe(data).cut_short

    def test_a_long_update_is_looked_through_to_its_start(self, tmp_path: Path) -> None:
        """An update of 200 KB (an attachment in it), cut halfway, read from a file on disk
        (as one over the in-memory limit is): the last %%EOF is far from the end, and still
        found."""
        first, whole = incremental(extra=random.Random(3).randbytes(200_000))
        path = tmp_path / "signed.pdf"
        path.write_bytes(whole[:(len(first) + len(whole)) // 2])
        with path.open("rb") as fh:
            assert probe_pdf(fh).cut_short
            assert fh.tell() == 0
        assert probe(whole) == PdfFacts(pages=4)

    @pytest.mark.parametrize("junk", [
        b"\n", b"\r\n\r\n", bytes(5000), b"  \x00\n", b"<html><body>404</body></html>\n",
        b"%% written by a scanner\n", b"7\n", b"\xff\xfe garbage",
    ], ids=["newline", "blank-lines", "nuls", "spaces", "html", "comment", "lone-number",
            "binary"])
    def test_junk_after_the_end_marker_is_not_an_update(self, junk: bytes) -> None:
        """Bytes some generators or downloads leave after %%EOF that start no PDF object:
        the PDF is read as before, in both of its forms."""
        first, whole = incremental()
        assert probe(whole + junk) == PdfFacts(pages=4)
        assert probe(first + junk) == PdfFacts(pages=3)

    def test_an_inline_end_marker_on_the_last_line_is_the_end(self) -> None:
        """Producers that write "startxref 123%%EOF" on one line: pypdf takes that marker,
        and so does the probe (nothing follows it)."""
        _, whole = incremental()
        inline = whole.rstrip()
        inline = inline[:inline.rindex(b"\n%%EOF")] + b"%%EOF"
        assert probe(inline) == PdfFacts(pages=4)


def catalog_in_object_stream(stream_end: bytes) -> bytes:
    """A PDF whose catalog, page tree and page (1–3) are in object stream 4, listed by a
    cross-reference stream (5); `stream_end` ends that object stream."""
    out, places = bytearray(b"%PDF-1.5\n"), {}

    def add(number: int, body: bytes) -> None:
        places[number] = len(out)
        out.extend(b"%d 0 obj\n%s\nendobj\n" % (number, body))
    members = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"]
    starts = [sum(len(m) + 1 for m in members[:i]) for i in range(len(members))]
    head = b" ".join(b"%d %d" % (1 + i, at) for i, at in enumerate(starts)) + b"\n"
    data = head + b"\n".join(members)
    add(4, b"<< /Type /ObjStm /N 3 /First %d /Length %d >>\nstream\n%s\n%s" % (
        len(head), len(data), data, stream_end))
    rows = b"\0\0\0\0\0\xff\xff" + b"".join(
        b"\x02" + (4).to_bytes(4, "big") + i.to_bytes(2, "big") for i in range(3))
    rows += b"\x01" + places[4].to_bytes(4, "big") + b"\0\0"
    rows += b"\x01" + len(out).to_bytes(4, "big") + b"\0\0"
    start = len(out)
    out += b"5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R /Length %d >>\n" \
        b"stream\n%s\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % (len(rows), rows, start)
    return bytes(out)


def test_pypdfs_words_name_an_object_by_its_number_not_a_python_address() -> None:
    """A PDF whose object stream holding its catalog never ends ("endstr am": pypdf then
    looks for that stream inside itself) is refused as damaged, pypdf's words naming the
    object as the file does (object 4 0). They named it as pypdf's IndirectObject(4, 0,
    <the address of its reader in memory>), which differed at every read: the same file
    got another message in each reader process and after each restart, and the admin a
    number that means nothing (found by bench/fuzz.py, seed 31, case 224)."""
    assert probe(catalog_in_object_stream(b"endstream")) == PdfFacts(pages=1)
    broken = catalog_in_object_stream(b"endstr am")
    first, again = probe(broken), probe(broken)
    assert first.error == DAMAGED and first.detail is not None
    assert "loop" in first.detail and "object 4 0" in first.detail
    assert not re.search(r"\d{6}", first.detail) and again == first
