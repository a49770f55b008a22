"""Which invoice ids an invoice file holds (docs/folder-convention.md, section 2)."""

from __future__ import annotations

import gc
import re
import socket
import subprocess
import sys
import tracemalloc
import zlib
from pathlib import Path

import pytest
from helpers import FIXTURES, UBL_NS, pdf_bytes, pdf_of_objects, text_pdf, ubl_invoice, write
from validating import pdf_carrying

from daemon.configuration.config import DEFAULT_PDF_ID_PATTERN
from daemon.errors import DuplicateInvoiceIds, HostileInput, InputError
from daemon.reading import invoices, pdftext, xmlids
from daemon.reading.invoices import (
    InvoiceRead,
    read_invoice_bytes,
    read_invoice_file,
)
from daemon.reading.invoicexml import _parse_xml, lxml_root, root_tag

PEPPOL = FIXTURES  # official Peppol examples, see tests/fixtures/peppol/README.md

# From the fixtures' README.md: the cbc:ID that is a direct child of the root.
FIXTURE_IDS = {
    "base-example.xml": "Snippet1",
    "base-creditnote-correction.xml": "Snippet1",
    "Allowance-example.xml": "Snippet1",
    "vat-category-E.xml": "Vat-Z",
    "Norwegian-example-1.xml": "TOSL108",
    "GR-base-example-correct.xml": "061828591|01/10/2020|0|1.1|0|1",
}
SVEFAKTURA = b"""<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:sfti:documents:BasicInvoice:1:0"
         xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-1"
         xmlns:cac="urn:sfti:documents:BasicInvoice:1:0:CommonAggregateComponents">
  <ID>SVE-77</ID>
  <cbc:IssueDate>2026-10-01</cbc:IssueDate>
  <cac:SellerParty><cac:Party><cac:PartyIdentification><cac:ID>5560000000</cac:ID>
  </cac:PartyIdentification></cac:Party></cac:SellerParty>
</Invoice>
"""


# An invoice whose supplier's name has a letter outside ASCII ("ü"), as text.
MUELLER = ubl_invoice("X").decode().replace("Supplier Ltd", "Müller GmbH")


_LINES_OF_ONE = ubl_invoice("X").count(b"\n")


def read(path: Path) -> InvoiceRead:
    return read_invoice_file(path, path.name, DEFAULT_PDF_ID_PATTERN)


def body(fixture: str) -> str:
    """A fixture without its XML declaration, ready to sit inside a wrapper element."""
    text = (PEPPOL / fixture).read_text(encoding="utf-8")
    return re.sub(r"^\s*<\?xml[^>]*\?>", "", text)


def wrap(*fixtures: str) -> bytes:
    inner = "\n".join(body(f) for f in fixtures)
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>\n{inner}\n</Batch>\n'.encode()


class TestPeppolFixtures:
    def test_every_fixture_is_covered(self) -> None:
        """The table below lists every fixture in the folder (a new fixture must be added)."""
        assert sorted(p.name for p in PEPPOL.glob("*.xml")) == sorted(FIXTURE_IDS)

    @pytest.mark.parametrize("fixture,expected", sorted(FIXTURE_IDS.items()))
    def test_fixture_id(self, fixture: str, expected: str) -> None:
        """Each official example yields exactly its root cbc:ID, not the many nested ones."""
        result = read(PEPPOL / fixture)
        assert result == InvoiceRead("ubl", (expected,))

    def test_several_documents_in_one_wrapper(self, tmp_path: Path) -> None:
        """Several Invoice/CreditNote elements in a wrapper are several invoices, in order."""
        path = write(tmp_path / "batch-42.xml",
                     wrap("vat-category-E.xml", "Norwegian-example-1.xml",
                          "GR-base-example-correct.xml", "base-example.xml"))
        assert read(path) == InvoiceRead("ubl", ("Vat-Z", "TOSL108",
                                                 "061828591|01/10/2020|0|1.1|0|1", "Snippet1"))

    def test_credit_note_and_invoice_mixed(self, tmp_path: Path) -> None:
        """A CreditNote counts like an Invoice; document order is kept."""
        path = write(tmp_path / "mixed.xml", wrap("Norwegian-example-1.xml",
                                                  "base-creditnote-correction.xml"))
        assert read(path).invoice_ids == ("TOSL108", "Snippet1")

    def test_same_id_twice_is_an_error(self, tmp_path: Path) -> None:
        """The same id twice in one XML file: duplicate-invoice-id, naming id and file."""
        path = write(tmp_path / "dup.xml", wrap("base-example.xml", "Allowance-example.xml"))
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.code == "duplicate-invoice-id"
        assert info.value.file == "dup.xml"
        assert "Snippet1" in info.value.message

    def test_same_id_twice_says_where_the_fix_is_made(self, tmp_path: Path) -> None:
        """duplicate-invoice-id's words name the fix, not only the rule: the numbers are
        corrected in the ERP and the file exported again (a clerk who read only "each
        invoice in a file needs its own id" edited the XML in the quarantine folder)."""
        path = write(tmp_path / "dup.xml", wrap("base-example.xml", "Allowance-example.xml"))
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.message.endswith(
            "needs its own id: correct the invoice numbers in the ERP and export the file "
            "again")

    def test_ids_said_twice_are_all_named_and_the_ids_read_are_kept(
            self, tmp_path: Path) -> None:
        """A batch with two ids each said twice names both at once (not one per export
        round), and the error carries the distinct ids the file holds, in file order, for
        the journal to name the invoices instead of the file's stem."""
        path = write(tmp_path / "dup.xml", wrap(
            "base-example.xml", "vat-category-E.xml", "Allowance-example.xml",
            "Norwegian-example-1.xml", "vat-category-E.xml"))
        with pytest.raises(DuplicateInvoiceIds) as info:
            read(path)
        assert info.value.code == "duplicate-invoice-id"
        assert info.value.message.startswith("the invoice ids 'Snippet1', 'Vat-Z' each occur "
                                             "more than once in this file")
        assert info.value.invoice_ids == ("Snippet1", "Vat-Z", "TOSL108")


class TestLimits:
    def test_an_xml_file_of_millions_of_tags_is_refused_before_any_tree(
            self, tmp_path: Path) -> None:
        """More than MAX_XML_TAGS tags (each ~150 bytes of memory in a tree): the file is
        refused as invoice-too-large, naming the count and the fix, without parsing it."""
        data = b"<Invoices>" + b"<a/>" * invoices.MAX_XML_TAGS + b"</Invoices>"
        with pytest.raises(InputError) as info:
            read_invoice_bytes(data, "big.xml", "big.xml", DEFAULT_PDF_ID_PATTERN)
        assert (info.value.code, info.value.file) == ("invoice-too-large", "big.xml")
        assert f"{invoices.MAX_XML_TAGS + 2:,} XML tags" in info.value.message
        assert "split it" in info.value.message

    def test_one_tag_over_the_limit_is_refused_and_the_limit_itself_is_read(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """MAX_XML_TAGS tags (10 here) are read; one more is invoice-too-large."""
        monkeypatch.setattr(invoices, "MAX_XML_TAGS", 10)
        doc = (b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">'
               b'<cbc:ID xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:'
               b'CommonBasicComponents-2">INV-1</cbc:ID></Invoice>')
        pad = 10 - doc.count(b"<")
        at = doc.rindex(b"</")
        fits = doc[:at] + b"<a/>" * pad + doc[at:]
        assert read_invoice_bytes(fits, "ok.xml", "ok.xml", DEFAULT_PDF_ID_PATTERN
                                  ).invoice_ids == ("INV-1",)
        over = doc[:at] + b"<a/>" * (pad + 1) + doc[at:]
        with pytest.raises(InputError) as info:
            read_invoice_bytes(over, "big.xml", "big.xml", DEFAULT_PDF_ID_PATTERN)
        assert info.value.code == "invoice-too-large"

    @pytest.mark.parametrize("size, refused", [(4096, False), (4097, True)])
    def test_a_file_of_one_byte_over_the_size_limit_is_refused_by_its_size(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int,
            refused: bool) -> None:
        """MAX_INVOICE_BYTES (4 KiB here) is the largest invoice file taken: content that
        is neither XML nor PDF one byte over it is refused (it is not read whole, so only
        its size can refuse it), one of exactly the limit is named after its stem."""
        monkeypatch.setattr(invoices, "MAX_INVOICE_BYTES", 4096)
        path = write(tmp_path / "INV-7.edi", (bytes(range(1, 256)) * 17)[:size])
        if not refused:
            assert read(path).invoice_ids == ("INV-7",)
            return
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.code == "invoice-too-large"

    def test_an_invoice_file_that_grew_past_the_limit_since_its_size_was_taken_is_refused(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The size taken by fstat may be old by the time the file is read: what is read
        is bounded by the limit all the same, its first KB counted, and a file past it is
        invoice-too-large (here its fstat is made to say it fits)."""
        monkeypatch.setattr(invoices, "MAX_INVOICE_BYTES", 4096)
        monkeypatch.setattr(invoices, "refused_by_size", lambda fh: False)
        path = write(tmp_path / "grew.xml", ubl_invoice("INV-1").ljust(4097, b" "))
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.code == "invoice-too-large"

    def test_an_invoice_file_over_the_size_limit_is_not_read_whole(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """An XML or PDF invoice file over MAX_INVOICE_BYTES (64 MiB; 4 KiB here) is
        refused as invoice-too-large; what is read of it stops at the limit."""
        monkeypatch.setattr(invoices, "MAX_INVOICE_BYTES", 4096)
        path = write(tmp_path / "big.xml", ubl_invoice("INV-1") + b" " * 8192)
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.code == "invoice-too-large" and "split it" in info.value.message
        assert info.value.message.startswith("is over 4.1 KB (4,096 bytes), more than ")
        assert read(write(tmp_path / "ok.xml", ubl_invoice("INV-2"))).invoice_ids == ("INV-2",)

    @pytest.mark.parametrize("data", [b"\0" * 8192, b"\n" * 2048 + b"INV-1;100;SEK\n" * 500],
                             ids=["zero-bytes", "blank-head"])
    def test_an_invoice_file_over_the_size_limit_with_a_blank_start_is_refused(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
        """A file over MAX_INVOICE_BYTES (4 KiB here) whose first KB is blank, such as a
        large copy that set its size and stopped before writing (all zero bytes), is
        invoice-too-large: it was "anything else" and sent as the invoice INV-7 (a
        50 GB file of zero bytes named INV-7.pdf went to the receiver), while the same
        file under the limit is refused as empty."""
        monkeypatch.setattr(invoices, "MAX_INVOICE_BYTES", 4096)
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-7.pdf", data))
        assert (info.value.code, info.value.file) == ("invoice-too-large", "INV-7.pdf")
        assert info.value.message.startswith("is over 4.1 KB (4,096 bytes), more than ")

    @pytest.mark.parametrize("name", ["INV-7.edi", "INV-7.xml", "INV-7.pdf"])
    def test_anything_else_over_the_size_limit_is_refused_unread(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        """Content that is neither XML nor PDF over MAX_INVOICE_BYTES (4 KiB here) is
        invoice-too-large with the same words as an XML or PDF file, refused by its size
        before any of it is read: it had no limit, and went out whole as the invoice
        INV-7 (a 1 TB one held the readers for 791 s, twice, and was then said to make
        them loop)."""
        monkeypatch.setattr(invoices, "MAX_INVOICE_BYTES", 4096)
        path = write(tmp_path / name, bytes(range(256)) * 17)
        with open(path, "rb") as fh:
            assert invoices.refused_by_size(fh) and fh.tell() == 0
        with pytest.raises(InputError) as info:
            read(path)
        assert (info.value.code, info.value.file) == ("invoice-too-large", name)
        assert info.value.message == (
            "is over 4.1 KB (4,096 bytes), more than outboxd reads as one invoice file — "
            "export it again smaller (a lower scan resolution) or as one file per invoice")
        assert read(write(tmp_path / "ok.edi", bytes(range(256)) * 16)) == InvoiceRead(
            "other", ("ok",))

    def test_a_label_followed_by_a_sea_of_blanks_is_read_in_linear_time(self) -> None:
        """The default pdf_id_pattern after 'Invoice number' and 100,000 blanks: no id, and
        the search ends (the old pattern's two optional runs of blanks side by side took
        minutes; a child process with a 20 s deadline stands in for a stopwatch)."""
        code = ("import re, sys; "
                "from daemon.configuration.config import DEFAULT_PDF_ID_PATTERN as P; "
                "t = 'Invoice number' + ' ' * 100_000 + '-'; "
                "sys.exit(0 if re.search(P, t) is None else 3)")
        done = subprocess.run([sys.executable, "-c", code], timeout=20, check=False)
        assert done.returncode == 0
        assert re.search(DEFAULT_PDF_ID_PATTERN, "Invoice number:  # 7") is None
        assert re.search(DEFAULT_PDF_ID_PATTERN, "Invoice no. #  A-7").group(1) == "A-7"

    def test_labels_run_together_in_one_long_word_are_read_in_linear_time(
            self, tmp_path: Path) -> None:
        """A PDF page whose text is 'invoiceno' 33,000 times without a blank (300,000
        letters, one Tj; no blank counts against the text budget): no id, the stem, and
        read at once. The default pattern's digit look-ahead, unbounded, scanned the rest
        of the word from each of those labels: 15 s for 100,000 letters, minutes here
        (a child process with a 20 s deadline stands in for a stopwatch)."""
        path = write(tmp_path / "glued.pdf", text_pdf(["invoiceno" * 33_334]))
        code = ("import sys; from pathlib import Path; "
                "from daemon.configuration.config import DEFAULT_PDF_ID_PATTERN as P; "
                "from daemon.reading.invoices import read_invoice_file; "
                f"r = read_invoice_file(Path({str(path)!r}), 'glued.pdf', P); "
                "sys.exit(0 if r.invoice_ids == ('glued',) else 3)")
        done = subprocess.run([sys.executable, "-c", code], timeout=20, check=False)
        assert done.returncode == 0

    def test_an_id_holds_a_digit_among_the_characters_an_id_may_have(self) -> None:
        """The digit the default pattern asks for may come as late as an id of
        MAX_INVOICE_ID_CHARS allows (its look-ahead is bounded by it, above)."""
        limit = xmlids.MAX_INVOICE_ID_CHARS
        longest = "A" * (limit - 1) + "7"
        found = re.search(DEFAULT_PDF_ID_PATTERN, f"Invoice number {longest} ")
        assert found is not None and found.group(1) == longest

    def test_an_invoice_id_over_the_length_limit_is_an_error(self, tmp_path: Path) -> None:
        """An XML invoice whose cbc:ID runs to a million characters is refused as
        invoice-id-too-long, naming the file, the id's start, its length and the fix; an
        id of exactly MAX_INVOICE_ID_CHARS is taken (it would otherwise fill every log
        line, the journal and the manifest)."""
        limit = xmlids.MAX_INVOICE_ID_CHARS
        path = write(tmp_path / "long.xml", ubl_invoice("A" * 1_000_000))
        with pytest.raises(InputError) as info:
            read(path)
        assert (info.value.code, info.value.file) == ("invoice-id-too-long", "long.xml")
        assert "'AAAAAAAAAA" in info.value.message and "1,000,000 characters" in info.value.message
        assert f"the {limit} outboxd takes" in info.value.message
        assert "correct the invoice number" in info.value.message
        assert len(str(info.value)) < 400
        ok = write(tmp_path / "ok.xml", ubl_invoice("B" * limit))
        assert read(ok).invoice_ids == ("B" * limit,)
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "one-over.xml", ubl_invoice("C" * (limit + 1))))
        assert info.value.code == "invoice-id-too-long"

    def test_an_over_long_id_in_a_pdf_or_svefaktura_is_an_error(self, tmp_path: Path) -> None:
        """The same limit holds for an id found in a PDF's text and a Svefaktura's ID."""
        pdf = write(tmp_path / "p.pdf", text_pdf(["Invoice number: " + "7" * 300]))
        with pytest.raises(InputError) as info:
            read(pdf)
        assert (info.value.code, info.value.file) == ("invoice-id-too-long", "p.pdf")
        sfti = write(tmp_path / "s.xml", b'<Invoice xmlns="urn:sfti:documents:BasicInvoice:1:0">'
                     b"<ID>" + b"9" * 300 + b"</ID></Invoice>")
        with pytest.raises(InputError) as info:
            read(sfti)
        assert (info.value.code, info.value.file) == ("invoice-id-too-long", "s.xml")


class TestOtherXml:
    def test_small_ubl(self, tmp_path: Path) -> None:
        """A UBL invoice with nested cbc:IDs yields the root's id only."""
        assert read(write(tmp_path / "x.xml", ubl_invoice("INV-1001"))).invoice_ids == (
            "INV-1001",)

    def test_svefaktura_root_id(self, tmp_path: Path) -> None:
        """Svefaktura: the root's ID child, format 'svefaktura'."""
        assert read(write(tmp_path / "sve.xml", SVEFAKTURA)) == InvoiceRead("svefaktura",
                                                                            ("SVE-77",))

    def test_ubl_without_id_is_an_error(self, tmp_path: Path) -> None:
        """A UBL Invoice without a direct cbc:ID is an error, not the stem."""
        data = ubl_invoice("X").replace(b"<cbc:ID>X</cbc:ID>", b"")
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "noid.xml", data))
        assert info.value.code == "invoice-without-id"

    def test_unknown_xml_falls_back_to_stem(self, tmp_path: Path) -> None:
        """XML that is no invoice format is one invoice named after the file's stem."""
        assert read(write(tmp_path / "order-5.xml", b"<Order><ID>9</ID></Order>")) == \
            InvoiceRead("other", ("order-5",))

    def test_bom_and_whitespace_before_xml(self, tmp_path: Path) -> None:
        """A UTF-8 BOM, or blank lines before XML without a declaration, do not hide the XML."""
        data = b"\xef\xbb\xbf" + ubl_invoice("INV-BOM")
        assert read(write(tmp_path / "bom.xml", data)).invoice_ids == ("INV-BOM",)
        bare = b"\r\n  " + ubl_invoice("INV-WS").split(b"?>", 1)[1]
        assert read(write(tmp_path / "ws.xml", bare)).invoice_ids == ("INV-WS",)

    @pytest.mark.parametrize("codec", ["utf-16", "utf-16-be"])
    def test_ubl_saved_as_utf16_is_read_as_ubl(self, tmp_path: Path, codec: str) -> None:
        """An invoice saved as "Unicode" (UTF-16 with its byte-order mark, as XML
        requires) is UBL with its cbc:ID, not "anything else" named by its stem."""
        text = ubl_invoice("INV-16").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
        data = ("\ufeff" + text).encode(codec) if codec.endswith("-be") else text.encode(codec)
        assert read(write(tmp_path / "wide.xml", data)) == InvoiceRead("ubl", ("INV-16",))

    @pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
    @pytest.mark.parametrize("declared", [True, False])
    def test_utf16_without_byte_order_mark_is_xml_in_either_byte_order(
            self, tmp_path: Path, codec: str, declared: bool) -> None:
        """UTF-16 without its byte order mark, with or without a declaration, is XML
        in big-endian as in little-endian: the first bytes tell (XML 1.0, appendix F).
        Big-endian was "anything else" named by its stem (so not UBL under
        ubl-embedded, a "non-UBL invoice file" to pre-flight), little-endian UBL."""
        text = ubl_invoice("INV-16").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
        if not declared:
            text = "\r\n " + text.split("?>\n", 1)[1]  # blanks before the root too
        assert read(write(tmp_path / "wide.xml", text.encode(codec))) == \
            InvoiceRead("ubl", ("INV-16",))

    @pytest.mark.parametrize("codec", ["utf-32", "utf-32-le", "utf-32-be"])
    def test_xml_in_utf32_is_refused_with_the_fix_with_or_without_its_mark(
            self, tmp_path: Path, codec: str) -> None:
        """UTF-32 XML, which the parser cannot read, is the same invalid-xml asking for
        UTF-8 without its byte order mark, in either byte order (little-endian was "not
        well-formed", big-endian "anything else")."""
        text = ubl_invoice("INV-32").decode().replace('encoding="UTF-8"', 'encoding="UTF-32"')
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "wide.xml", text.encode(codec)))
        assert info.value.code == "invalid-xml"
        assert info.value.message.startswith("is XML in UTF-32, which outboxd cannot read")

    def test_xml_in_utf32_is_refused_with_the_fix(self, tmp_path: Path) -> None:
        """UTF-32 XML, which the parser cannot read, is invalid-xml asking for UTF-8,
        not "anything else" sent unread."""
        text = ubl_invoice("INV-32").decode().replace('encoding="UTF-8"', 'encoding="UTF-32"')
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "wide.xml", text.encode("utf-32")))
        assert info.value.code == "invalid-xml" and "as UTF-8" in info.value.message

    def test_text_in_utf16_that_is_not_xml_is_the_stem(self, tmp_path: Path) -> None:
        """UTF-16 content that does not start as XML is "anything else", as in UTF-8
        (under a name that promises no XML: .xml is extension-mismatch, TestOtherContent)."""
        data = "INV-9;100;SEK\n".encode("utf-16")
        assert read(write(tmp_path / "INV-9.edi", data)) == InvoiceRead("other", ("INV-9",))

    def test_malformed_xml(self, tmp_path: Path) -> None:
        """XML that is not well-formed is InputError invalid-xml naming the file."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "broken.xml", ubl_invoice("X")[:-20]))
        assert info.value.code == "invalid-xml"
        assert not isinstance(info.value, HostileInput)
        assert info.value.file == "broken.xml"

    @pytest.mark.parametrize(("data", "expected"), [
        (MUELLER.encode("cp1252"),
         "is not UTF-8 text, as its XML declaration says: line {line} holds the byte 0xfc, "
         "so it was saved in another encoding, such as Windows-1252 (\"ANSI\")"),
        (MUELLER.split("?>", 1)[1].encode("latin-1"),
         "is not UTF-8 text, as XML without an encoding in its declaration must be: "
         "line {line} holds the byte 0xfc"),
        (ubl_invoice("X").decode().encode("utf-16"),
         "says encoding=\"UTF-8\" in its XML declaration but is UTF-16"),
    ], ids=["cp1252-declared-utf8", "latin1-undeclared", "utf16-declared-utf8"])
    def test_xml_in_another_encoding_than_it_says_names_the_line_and_the_export_setting(
            self, tmp_path: Path, data: bytes, expected: str) -> None:
        """An ERP writing Windows-1252 under encoding="UTF-8" got "is not well-formed XML
        (not well-formed (invalid token): line 21, column 27) — export the invoice
        again", and exporting again made the same file. The error says which encoding
        the file is not, the line of the first byte that is not, and that the fix is the
        export's encoding."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-X.xml", data))
        assert (info.value.code, info.value.file) == ("invalid-xml", "INV-X.xml")
        line = data[:data.find(b"\xfc")].count(b"\n") + 1
        assert info.value.message.startswith(expected.format(line=line)), info.value.message
        assert info.value.message.endswith("— export the invoice as UTF-8" if "UTF-16" in
                                           expected else "have the ERP name the encoding "
                                           "it writes in the XML declaration")

    @pytest.mark.parametrize(("data", "expected"), [
        (b"\r\n" + ubl_invoice("X"), "its XML declaration (<?xml …?>) must be the very "
         "first thing in the file, and blank lines or spaces come before it (it is on "
         "line 2) — have the ERP write nothing before the declaration"),
        (b"<Batch>\n" + ubl_invoice("X") + ubl_invoice("Y") + b"</Batch>\n",
         "line 2 holds a second XML declaration (<?xml …?>), which only the very start "
         "of a file may have (a file made by joining invoice files keeps each one's) — "
         "have the ERP write one declaration, at the start"),
        (b"<!-- exported by ERP 9.1 -->\n" + ubl_invoice("X"),
         "its XML declaration (<?xml …?>) must be the very first thing in the file, and "
         "other text (a comment, a tag) comes before it (it is on line 2) — have the ERP "
         "write nothing before the declaration"),
        (ubl_invoice("X") + ubl_invoice("Y"),
         f"line {_LINES_OF_ONE + 1} holds a second XML declaration "
         "(<?xml …?>), which only the very start of a file may have (a file made by "
         "joining invoice files keeps each one's) — have the ERP write one declaration, "
         "at the start"),
    ], ids=["blank-line-first", "joined-files", "comment-first", "joined-files-unwrapped"])
    def test_a_declaration_not_at_the_start_names_its_line_and_what_the_erp_must_change(
            self, tmp_path: Path, data: bytes, expected: str) -> None:
        """A blank line before `<?xml …?>` (or a batch made by joining files, each with
        its declaration) read "XML or text declaration not at start of entity: line 2,
        column 0 — export the invoice again": words no clerk can pass on, and a fix that
        made the same file. The error says where the declaration is and what the
        export must stop writing; a comment written before the one declaration is not
        called a second declaration of joined files."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-X.xml", data))
        assert (info.value.code, info.value.file) == ("invalid-xml", "INV-X.xml")
        assert info.value.message == (f"is not well-formed XML: {expected}, then export "
                                      "the invoice again")

    def test_empty_file(self, tmp_path: Path) -> None:
        """An empty invoice file is InputError empty-file."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "empty.xml", b""))
        assert info.value.code == "empty-file"

    @pytest.mark.parametrize("data,what", [
        (b"\r\n\r\n", "4 bytes: blank lines and spaces, no text"),
        (b"\xef\xbb\xbf\n", "4 bytes: blank lines and spaces, no text"),
        (b"\0" * 2048, "2,048 bytes: all zero, as a copy that did not finish leaves a file"),
        ("\r\n \r\n".encode("utf-16"), "12 bytes: blank lines and spaces, no text"),
    ], ids=["blank-lines", "byte-order-mark", "zero-bytes", "utf-16-blank-lines"])
    def test_a_file_with_nothing_in_its_bytes_is_empty_not_an_invoice_named_by_its_stem(
            self, tmp_path: Path, data: bytes, what: str) -> None:
        """An export of blank lines (in UTF-16 too, as an attachment of blank lines is
        empty in it), or a copy that set the size and wrote nothing: the invoice file is
        empty (empty-file, with what its bytes are), not "anything else" sent as the
        invoice INV-7 with nothing in it."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-7.xml", data))
        assert info.value.code == "empty-file"
        assert info.value.message == f"the invoice file is empty ({what}) — export it again"

    @pytest.mark.parametrize("start", [b"%PDF-1.7\n", b"\n<?xml", b"\xef\xbb\xbf<"],
                             ids=["pdf", "blank-first", "byte-order-mark"])
    def test_telling_a_file_is_not_empty_neither_copies_nor_scans_it_whole(
            self, start: bytes) -> None:
        """Every invoice read asks whether the file is empty (nothing_in). A 5 MB
        invoice with something in its first bytes is told at once: no copy of its 5 MB
        is made for it (it was two, doubling the read of a 5 MB PDF invoice)."""
        import tracemalloc

        from daemon.validation.emptiness import nothing_in
        data = start + b"x" * 5_000_000
        tracemalloc.start()
        try:
            assert nothing_in(data) == ""
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 100_000, f"{peak:,} bytes allocated to tell the file is not empty"


class TestHostileXml:
    def hostile(self, path: Path) -> HostileInput:
        with pytest.raises(HostileInput) as info:
            read(path)
        assert info.value.code == "hostile-xml"
        assert info.value.file == path.name
        return info.value

    def test_entity_declarations_in_utf16_are_refused(self, tmp_path: Path) -> None:
        """The same refusal whatever the encoding: a UTF-16 invoice that declares an
        entity is hostile-xml, never read as "anything else" and sent."""
        text = ubl_invoice("INV-16").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
        text = text.replace("INV-16", "&x;").replace(
            "?>\n", '?>\n<!DOCTYPE Invoice [<!ENTITY x "X">]>\n', 1)
        err = self.hostile(write(tmp_path / "wide.xml", text.encode("utf-16")))
        assert "declares entities" in err.message and err.file == "wide.xml"

    def test_the_root_tag_of_xml_with_an_external_dtd_is_refused_not_read(self) -> None:
        """root_tag (what `check` says a file is) refuses a DOCTYPE that names an
        external DTD as the whole read does, hostile-xml; a bare DOCTYPE is allowed."""
        with pytest.raises(HostileInput):
            root_tag(b'<?xml version="1.0"?><!DOCTYPE Invoice SYSTEM '
                     b'"http://127.0.0.1:9/x.dtd"><Invoice/>', "x.xml")
        assert root_tag(b"<!DOCTYPE Invoice><Invoice/>", "x.xml") == "Invoice"

    def test_billion_laughs(self, tmp_path: Path) -> None:
        """Internal entity declarations are refused, never expanded."""
        decls = '<!ENTITY lol "lol">' + "".join(
            f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
            for i in range(1, 10))
        data = (f'<?xml version="1.0"?>\n<!DOCTYPE Invoice [{decls}]>\n'
                f'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
                f'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:'
                f'CommonBasicComponents-2"><cbc:ID>&lol9;</cbc:ID></Invoice>').encode()
        err = self.hostile(write(tmp_path / "laughs.xml", data))
        assert "lollol" not in str(err)
        # In words a clerk reads, not the class name of the library that refused it.
        assert "declares entities" in err.message and "Forbidden" not in err.message

    def test_external_entity(self, tmp_path: Path) -> None:
        """An external entity (file:///etc/passwd) is refused and its target never read."""
        secret = write(tmp_path / "secret.txt", b"TOP-SECRET-CONTENT")
        data = (f'<?xml version="1.0"?>\n<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM '
                f'"file://{secret}"><!ENTITY pw SYSTEM "file:///etc/passwd">]>\n'
                f'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" '
                f'xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:'
                f'CommonBasicComponents-2"><cbc:ID>&xxe;&pw;</cbc:ID></Invoice>').encode()
        err = self.hostile(write(tmp_path / "xxe.xml", data))
        assert "TOP-SECRET" not in str(err) and "root:" not in str(err)

    @pytest.mark.parametrize("doctype", [
        '<!DOCTYPE Invoice SYSTEM "http://127.0.0.1:{port}/invoice.dtd">',
        '<!DOCTYPE Invoice PUBLIC "-//X//DTD Invoice//EN" "http://127.0.0.1:{port}/i.dtd">',
    ])
    def test_external_dtd_is_refused_and_not_fetched(self, tmp_path: Path, doctype: str) -> None:
        """A DOCTYPE pointing at an external DTD is refused; nothing connects to its URL."""
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(5)
            server.setblocking(False)
            port = server.getsockname()[1]
            data = (f'<?xml version="1.0"?>\n{doctype.format(port=port)}\n'
                    ).encode() + ubl_invoice("INV-1").split(b"?>", 1)[1]
            err = self.hostile(write(tmp_path / "dtd.xml", data))
            assert "a DTD" in err.message and "Forbidden" not in err.message
            with pytest.raises(BlockingIOError):
                server.accept()  # a fetch would have left a connection waiting here

    def test_internal_subset_without_entities(self, tmp_path: Path) -> None:
        """A DOCTYPE with declarations (here an ATTLIST default) is refused too."""
        data = (b'<?xml version="1.0"?>\n<!DOCTYPE Order [<!ATTLIST Order id CDATA "x">]>\n'
                b"<Order/>")
        assert self.hostile(write(tmp_path / "attlist.xml", data)).code == "hostile-xml"

    def test_bare_doctype_is_allowed(self, tmp_path: Path) -> None:
        """A bare <!DOCTYPE Invoice> without declarations is read as usual."""
        data = ubl_invoice("INV-DT").replace(b"?>\n", b"?>\n<!DOCTYPE Invoice>\n", 1)
        assert b"<!DOCTYPE Invoice>" in data
        assert read(write(tmp_path / "dt.xml", data)) == InvoiceRead("ubl", ("INV-DT",))


class TestPdf:
    def test_ids_in_page_order_without_repeats(self, tmp_path: Path) -> None:
        """Distinct matches in page order; an id repeated on a continuation page counts once."""
        path = write(tmp_path / "print.pdf", text_pdf([
            "Invoice number: A-17", "Invoice number: A-17", "Fakturanummer B-18"]))
        assert read(path) == InvoiceRead("pdf", ("A-17", "B-18"))

    @pytest.mark.parametrize("text,expected", [
        ("Invoice no. 1001", "1001"), ("Invoice No: X-9", "X-9"), ("Fakturanr: 55/2026", "55/2026"),
        ("INVOICE NUMBER 7.1", "7.1"), ("Invoice number: 7", "7"), ("Fakturanr 8.", "8"),
    ])
    def test_default_pattern_labels(self, tmp_path: Path, text: str, expected: str) -> None:
        """The default pattern knows the usual labels and takes the id after them."""
        assert read(write(tmp_path / "p.pdf", text_pdf([text]))).invoice_ids == (expected,)

    @pytest.mark.parametrize("labels", [
        ["Invoice number", "Invoice date", "Customer no.", "INV-4711", "2024-03-01"],
        ["Fakturanummer", "Fakturadatum", "4711"],
        ["Invoice #", "Page 1 of 2", "4711"],
    ])
    def test_a_label_followed_by_another_word_is_no_id(
            self, tmp_path: Path, labels: list[str]) -> None:
        """A layout with its labels in one column and the values in another reads "Invoice
        number" then "Invoice date": the default pattern took the next label for the id,
        so every invoice of that layout was the invoice "Invoice" (a file of two of them
        one invoice, its folders orphans told to be renamed "Invoice"). An id holds a
        digit; without one found the file is one invoice named after its stem."""
        path = write(tmp_path / "column.pdf", text_pdf(["\n".join(labels)] * 2))
        assert read(path) == InvoiceRead("pdf", ("column",))

    def test_configured_pattern(self, tmp_path: Path) -> None:
        """[invoices] pdf_id_pattern replaces the default; its one group is the id."""
        path = write(tmp_path / "p.pdf", text_pdf(["Ref #Q-3 and Invoice number: A-17"]))
        assert read_invoice_file(path, "p.pdf", r"Ref #(\S+)").invoice_ids == ("Q-3",)

    def test_reading_page_after_page_holds_one_page_s_content_not_all_of_them(
            self, tmp_path: Path) -> None:
        """A small PDF whose every page holds 20 MB of content that Flate squeezes into a
        few KB (an inline image): pypdf kept every page's decoded content, so the memory
        of reading its text grew with the pages (30 pages: 600 MB; a 20 MB file of such
        pages ran a reader into the OOM killer before its time limit). Peak memory of a
        child process reading it stays near that of one page: 10 such pages here, which
        grew it by some 220 MB when every page was kept and by some 50 MB dropped page by
        page. (Their 200 MB of content are more than the search reads, inline images
        included: the limit is lifted in the child, as this is the memory of what it does
        read.)"""
        path = tmp_path / "bomb.pdf"
        code = (
            "import io, resource, sys, zlib\n"
            "from pypdf import PdfWriter\n"
            "from pypdf.generic import DictionaryObject, NameObject, StreamObject\n"
            "from daemon.reading.invoices import read_invoice_file\n"
            "from daemon.configuration.config import DEFAULT_PDF_ID_PATTERN\n"
            "from daemon.reading import pdftext\n"
            "pdftext.MAX_PDF_CONTENT_BYTES = 10**9\n"
            "w = PdfWriter()\n"
            "font = w._add_object(DictionaryObject({NameObject('/Type'): NameObject('/Font'),"
            " NameObject('/Subtype'): NameObject('/Type1'),"
            " NameObject('/BaseFont'): NameObject('/Helvetica')}))\n"
            "content = zlib.compress(b'BT /F1 12 Tf 72 720 Td (Invoice number: A-17) Tj ET\\n'"
            " b'BI /W 1 /H 1 /BPC 8 /CS /G ID ' + b'x' * 20_000_000 + b' EI\\n', 9)\n"
            "for _ in range(10):\n"
            "    page = w.add_blank_page(595, 842)\n"
            "    stream = StreamObject()\n"
            "    stream._data = content  # compressed already, as /Filter says\n"
            "    stream[NameObject('/Filter')] = NameObject('/FlateDecode')\n"
            "    page[NameObject('/Contents')] = w._add_object(stream)\n"
            "    page[NameObject('/Resources')] = DictionaryObject("
            "{NameObject('/Font'): DictionaryObject({NameObject('/F1'): font})})\n"
            "with open(sys.argv[1], 'wb') as fh:\n"
            "    w.write(fh)\n"
            "del w, content\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "ids = read_invoice_file(__import__('pathlib').Path(sys.argv[1]), 'bomb.pdf',"
            " DEFAULT_PDF_ID_PATTERN).invoice_ids\n"
            "grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before\n"
            "print(ids, grew // 1024)\n")
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        ids, grew_mb = done.stdout.rsplit(" ", 1)
        assert ids == "('A-17',)"
        assert path.stat().st_size < 2_000_000  # the whole file: a few KB a page
        # Ten pages kept: over 200 MB; one page (20 MB, and pypdf's copies of it): ~50.
        assert int(grew_mb) < 120, f"reading 10 pages of 20 MB each took {grew_mb} MB more"

    def test_a_small_pdf_with_too_much_page_content_to_search_is_refused(
            self, tmp_path: Path) -> None:
        """A PDF invoice of a few KB whose Flate decodes to a page of 300,000 text
        operators (3 million words): pypdf's search for the invoice number took seconds
        per such page, minutes for a file of a few such pages (a reader held to its
        120 s limit, `outboxd check` with none). Refused as invoice-too-large naming the
        file, from the size of its content, before it is parsed."""
        content = b"BT /F1 12 Tf 72 720 Td (a) Tj ET\n" * 300_001
        path = write(tmp_path / "INV-5.pdf", flate_pdf(content))
        assert path.stat().st_size < 60_000
        with pytest.raises(InputError) as info:
            read(path)
        assert (info.value.code, info.value.file) == ("invoice-too-large", "INV-5.pdf")
        assert "words of content on page 1 alone to search for its invoice number" in \
            info.value.message

    def test_a_page_that_unpacks_past_the_unpacking_limit_is_unreadable_not_the_stem(
            self, tmp_path: Path) -> None:
        """A PDF invoice of a few KB whose page unpacks past what pypdf unpacks (75 MB;
        1 MB here) is pdf-unreadable, as codes.md says and as such a part found while
        opening it is: it went out as the invoice INV-5, named after its stem, its real
        number unread, while a smaller bomb of text was refused (invoice-too-large)."""
        from pypdf import apply_configuration
        path = write(tmp_path / "INV-5.pdf", flate_pdf(b"\0" * 1_000_001))
        assert path.stat().st_size < 10_000
        with pytest.raises(InputError) as info, \
                apply_configuration(zlib_maximum_output_length=1_000_000):
            read(path)
        assert (info.value.code, info.value.file) == ("pdf-unreadable", "INV-5.pdf")
        assert "unpacks to more than 1,000,000 bytes" in info.value.message

    def test_a_page_that_draws_one_form_again_and_again_is_refused_past_the_operations(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """The operations of the forms a page draws count against the search's budget
        (pypdf reads a form again at each draw; a page of a few bytes drawing one form
        thousands of times held a read for minutes). The limit is lowered here so that
        the test reaches it in a fraction of the time the real one takes."""
        monkeypatch.setattr(pdftext, "MAX_PDF_TEXT_OPERATORS", 20_000)
        form = b"BT /F1 12 Tf 72 720 Td (a) Tj ET\n" * 60
        path = write(tmp_path / "INV-5.pdf", flate_pdf(b"/Fm0 Do\n" * 4_000, form))
        with pytest.raises(InputError) as info:
            read(path)
        assert (info.value.code, info.value.file) == ("invoice-too-large", "INV-5.pdf")
        assert "over 20,000 drawing operations" in info.value.message

    def test_a_long_dense_invoice_is_searched_whole(self, tmp_path: Path) -> None:
        """The budget leaves room for a long itemised invoice: 40 dense pages of table
        rows (each cell its own text run), the id on the last page, are read whole."""
        row = b"BT /F1 8 Tf 1 0 0 1 %d %d Tm (Item text 12345 desc) Tj ET\n"
        page = b"".join(row % (50 + 80 * c, 800 - 6 * r) for r in range(120) for c in range(6))
        pages = [page] * 39 + [page + b"BT /F1 8 Tf 50 50 Td (Invoice number: INV-77) Tj ET\n"]
        path = write(tmp_path / "long.pdf", flate_pdf_pages(pages))
        assert read(path).invoice_ids == ("INV-77",)

    def test_pdf_without_text_falls_back_to_stem(self, tmp_path: Path) -> None:
        """A PDF without a matching text (a scan) is one invoice named after the stem."""
        assert read(write(tmp_path / "INV-1002.pdf", pdf_bytes(2))) == InvoiceRead(
            "pdf", ("INV-1002",))

    @pytest.mark.parametrize("data,code", [
        (b"%PDF-1.4\ngarbage", "pdf-unreadable"),
        (pdf_bytes(0), "pdf-no-pages"),
        (pdf_bytes(1, encrypt=True), "pdf-encrypted"),
    ], ids=["damaged", "no-pages", "owner-password-only"])
    def test_a_pdf_no_one_can_use_is_an_error(self, tmp_path: Path, data: bytes, code: str
                                              ) -> None:
        """A PDF invoice file that is damaged, has no pages or is encrypted (even one that
        opens without a password) breaks the rules an attachment follows: an error that
        names the file and says to export it again, not an invoice named after the stem."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-7.pdf", data))
        assert (info.value.code, info.value.file) == (code, "INV-7.pdf")
        assert "again" in info.value.message or "without password" in info.value.message

    def test_another_format_holding_the_pdf_marker_is_not_a_pdf(self, tmp_path: Path
                                                                ) -> None:
        """A PNG (by its magic bytes) that happens to hold "%PDF-" in its first KB is not a
        PDF, as for attachments: no PDF error, but under .pdf a PNG that is no PDF."""
        data = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 + b"%PDF-1.4 in a text chunk"
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-9.pdf", data))
        assert (info.value.code, info.value.message) == (
            "extension-mismatch", "content is a PNG image, not a PDF — export or print the "
            "invoice to PDF again and put that file in its place")

    def test_text_that_cannot_be_extracted_falls_back_to_stem_with_a_warning(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A readable PDF whose text pypdf cannot extract is one invoice named after the
        stem (as a scan is), not an error — with a warning that its number was not
        looked for."""
        from pypdf import PageObject
        from pypdf.errors import PdfReadError

        def fails(self: PageObject, *args: object, **kwargs: object) -> str:
            raise PdfReadError("odd font")  # pypdf's words on the file: kept
        monkeypatch.setattr(PageObject, "extract_text", fails)
        found = read(write(tmp_path / "INV-8.pdf", text_pdf(["Invoice number: A-1"])))
        assert (found.format, found.invoice_ids) == ("pdf", ("INV-8",))
        [warning] = found.warnings
        assert warning.message.startswith("the text of page 1 could not be read (pypdf: "
                                          "odd font)")


    def test_a_page_pypdf_fails_on_in_its_own_code_is_said_damaged_not_in_its_words(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """pypdf failing in its own code on a page's text (a TypeError): the warning says
        the PDF is damaged there, not "(pypdf: unsupported operand …)", which a clerk
        cannot act on."""
        from pypdf import PageObject

        def fails(self: PageObject, *args: object, **kwargs: object) -> str:
            raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'")
        monkeypatch.setattr(PageObject, "extract_text", fails)
        found = read(write(tmp_path / "INV-8.pdf", text_pdf(["Invoice number: A-1"])))
        [warning] = found.warnings
        assert warning.message.startswith("the text of page 1 could not be read (the PDF "
                                          "is damaged there)")
        assert "TypeError" not in warning.message and "operand" not in warning.message

    def test_pypdfs_own_failure_on_an_invoice_page_is_logged_naming_the_file(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """pypdf failing in its own code on a PDF invoice file's page: its words go to the
        log for the admin, on a line that names the invoice file (under JSON logging, as
        the daemon writes it) — not a line of no file among the day's bundles."""
        import io
        import json

        from pypdf import PageObject

        from daemon import logs
        from daemon.configuration.config import LogConfig

        def fails(self: PageObject, *args: object, **kwargs: object) -> str:
            raise TypeError("unsupported operand type(s) for +: 'NoneType' and 'int'")
        monkeypatch.setattr(PageObject, "extract_text", fails)
        path = write(tmp_path / "INV-8.pdf", text_pdf(["Invoice number: A-1"]))
        out = io.StringIO()
        logs.configure(LogConfig(format="json", level="info"), out)
        try:
            read(path)
        finally:
            logs.configure()
        [line] = [e for e in map(json.loads, out.getvalue().splitlines())
                  if "pypdf failed in its own code" in e["event"]]
        assert line["file"] == "INV-8.pdf" and line["error"].startswith("TypeError")

def text_run(text: str) -> bytes:
    """Page content that writes `text` in the font /F1 (flate_pdf_pages')."""
    return b"BT /F1 12 Tf 72 720 Td (%s) Tj ET\n" % text.encode("latin-1")


def damaged(text: str) -> bytes:
    """text_run's content damaged by a stray "]" after it, as a broken export or a bad
    byte leaves a content stream: pypdf's parser raises on the page, its text unread."""
    return text_run(text) + b"]\n"


def refusal(path: Path) -> InputError:
    """The error reading `path` gives (none: the test fails)."""
    with pytest.raises(InputError) as info:
        read(path)
    return info.value


def said_with_pypdfs_words(message: str) -> tuple[str, str, str]:
    """A message's words before " (pypdf: ", pypdf's words (a few, on one line: no
    traceback) and the words from "so": pypdf's own change with its versions."""
    head, rest = message.split(" (pypdf: ", 1)
    why, tail = rest.split("), so ", 1)
    tail = "so " + tail
    assert "\n" not in message and "Traceback" not in message and len(why) < 100
    return head, why, tail


class TestPdfPageUnreadable:
    """A page whose text pypdf cannot extract (a damaged content stream, a broken font)
    dropped every id already found and made the file one invoice under its stem: a file
    of INV-1, INV-2 and a damaged page with INV-3 went as the invoice "print", none of
    the three. Every page is read; ids beside such a page are an error, no ids at all
    the stem with a warning."""

    def test_two_invoices_then_a_damaged_page_are_refused_naming_the_page_and_the_ids(
            self, tmp_path: Path) -> None:
        path = write(tmp_path / "print.pdf", flate_pdf_pages([
            text_run("Invoice number: INV-1"), text_run("Invoice number: INV-2"),
            damaged("Invoice number: INV-3")]))
        error = refusal(path)
        assert (error.code, error.file) == ("pdf-text-unreadable", "print.pdf")
        head, why, tail = said_with_pypdfs_words(error.message)
        assert head == "holds the invoices INV-1, INV-2, but the text of page 3 could not be read"
        assert why.startswith("Invalid Elementary Object starting with b']'")
        assert tail == ("so an invoice number on it was not looked for — export the PDF "
                        "again (print to PDF), or split it into one file per invoice")

    def test_a_damaged_first_page_does_not_hide_the_ids_after_it(self, tmp_path: Path
                                                                 ) -> None:
        """The search no longer stops at the first page that fails: the ids of the
        pages after it are found, and named in the error."""
        path = write(tmp_path / "print.pdf", flate_pdf_pages([
            damaged("Invoice number: INV-1"), text_run("Invoice number: INV-2"),
            text_run("Invoice number: INV-3")]))
        error = refusal(path)
        assert error.code == "pdf-text-unreadable"
        assert error.message.startswith("holds the invoices INV-2, INV-3, but the text of "
                                        "page 1 could not be read (pypdf: ")

    def test_one_id_and_several_damaged_pages_name_each_page_and_the_first_reason(
            self, tmp_path: Path) -> None:
        path = write(tmp_path / "print.pdf", flate_pdf_pages(
            [damaged("x"), text_run("Invoice number: INV-2")] + [damaged("x")] * 6))
        message = refusal(path).message
        assert message.startswith("holds the invoice INV-2, but the text of pages 1, 3, "
                                  "4, 5, 6 … and 2 more could not be read (page 1: pypdf: "
                                  "Invalid Elementary Object"), message
        assert ", so an invoice number on them was not looked for — " in message

    def test_a_damaged_page_in_a_file_without_ids_is_the_stem_with_a_warning(
            self, tmp_path: Path) -> None:
        """No id found (docs/folder-convention.md, section 2): one invoice under the
        stem, as before — but the page that failed is told of, as a warning on the
        invoice file."""
        path = write(tmp_path / "INV-8.pdf", flate_pdf_pages([damaged("Invoice number: A-1")]))
        found = read(path)
        assert (found.format, found.invoice_ids) == ("pdf", ("INV-8",))
        [warning] = found.warnings
        assert (warning.code, warning.file, warning.severity, warning.invoice_id) == (
            "pdf-text-unreadable", "INV-8.pdf", "warning", "INV-8")
        head, why, tail = said_with_pypdfs_words(warning.message)
        assert head == "the text of page 1 could not be read"
        assert why.startswith("Invalid Elementary Object starting with b']'")
        assert tail == ("so its invoice number was not looked for; the file is sent as one "
                        "invoice named after the file, INV-8 — if that is not its invoice "
                        "number, export the PDF again (print to PDF)")

    def test_readable_pages_without_ids_beside_a_damaged_one_are_the_stem_with_a_warning(
            self, tmp_path: Path) -> None:
        path = write(tmp_path / "scan.pdf", flate_pdf_pages(
            [text_run("Page 1 of 3"), damaged("x"), text_run("Total 100.00")]))
        found = read(path)
        assert found.invoice_ids == ("scan",)
        assert [w.message.split(" (")[0] for w in found.warnings] == [
            "the text of page 2 could not be read"]

    def test_a_page_tree_that_loops_is_the_stem_with_a_warning(self, tmp_path: Path) -> None:
        """pypdf cannot list the pages of a tree that holds itself (its /Count read
        when it opened it): the stem, as before, and the warning says why."""
        content = text_run("Invoice number: INV-1")
        path = write(tmp_path / "loop.pdf", pdf_of_objects([
            b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 2 >>",
            b"<< /Type /Pages /Parent 2 0 R /Kids [4 0 R 3 0 R] /Count 2 >>",
            b"<< /Type /Page /Parent 3 0 R /MediaBox [0 0 595 842] /Contents 5 0 R "
            b"/Resources << /Font << /F1 6 0 R >> >> >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"]))
        found = read(path)
        assert found.invoice_ids == ("loop",)
        [warning] = found.warnings
        assert warning.message.startswith("its list of pages could not be read (pypdf: "
                                          "Detected cyclic page references.), so its "
                                          "invoice number was not looked for")

    @pytest.mark.parametrize(("after", "code", "said"), [
        (b"//" * 250_001, "invoice-too-large", "over 500,000 words of content on page 2"),
        (b"[" + b"1 " * 100_001 + b"] TJ", "invoice-too-large",
         "(pypdf: Reached maximum array element count.)"),
        (b"\0" * 1_000_001, "pdf-unreadable", "unpacks to more than 1,000,000 bytes"),
    ], ids=["budget", "pypdf-parser-limit", "unpack-limit"])
    def test_a_limit_after_a_damaged_page_is_still_the_error(
            self, tmp_path: Path, after: bytes, code: str, said: str) -> None:
        """Reading on past a damaged page, a page past a limit is refused as it was,
        not taken for one more page whose text could not be read."""
        from pypdf import apply_configuration
        path = write(tmp_path / "INV-5.pdf", flate_pdf_pages(
            [damaged("Invoice number: INV-1"), after, text_run("Invoice number: INV-2")]))
        with apply_configuration(zlib_maximum_output_length=1_000_000):
            error = refusal(path)
        assert (error.code, error.file) == (code, "INV-5.pdf")
        assert said in error.message


class TestOtherContent:
    @pytest.mark.parametrize("name", ["INV-9.edi", "INV-9", "INV-9.txt"])
    def test_unknown_content_is_the_stem(self, tmp_path: Path, name: str) -> None:
        """Anything that is neither XML nor PDF, under a name that promises neither (an
        admin's invoice_patterns: *.edi, *), is one invoice named after the file's stem."""
        assert read(write(tmp_path / name, b"INV-9;100;SEK\n")) == InvoiceRead(
            "other", ("INV-9",))

    @pytest.mark.parametrize(("name", "data", "what"), [
        ("INV-9.pdf", bytes(range(256)) * 12, "a file of unknown type"),
        ("INV-9.PDF", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "a PNG image"),
        ("INV-9.xml", b"INV-9;100;SEK\nINV-9;200;SEK\n", "a CSV file"),
        ("INV-9.xml", "INV-9;100;SEK\n".encode("utf-16"), "a text file in UTF-16"),
        # Zeros for a start, content after: told by what the file holds, not by its
        # first 1024 bytes alone ("content is an empty file" of a 5 KB file).
        ("INV-9.pdf", b"\0" * 4096 + bytes(range(256)) * 4, "a file of unknown type"),
    ], ids=["random-pdf", "png-PDF", "csv-xml", "utf16-text-xml", "zero-start-pdf"])
    def test_a_pdf_or_xml_name_whose_content_is_neither_is_extension_mismatch(
            self, tmp_path: Path, name: str, data: bytes, what: str) -> None:
        """An invoice file named .pdf that is no PDF, or .xml that is no XML, is a broken
        or misnamed export: extension-mismatch naming what it is and the fix, as for an
        attachment, never "anything else" sent as the invoice INV-9 (3 KB of random bytes
        named .pdf, and 100 MB named .xml, went to the operator)."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / name, data))
        wanted = "a PDF" if name.lower().endswith(".pdf") else "XML"
        assert (info.value.code, info.value.file) == ("extension-mismatch", name)
        assert info.value.message.startswith(f"content is {what}")
        assert f", not {wanted} — export " in info.value.message

    def test_xml_named_pdf_and_a_pdf_named_xml_are_told_which_name_fits(
            self, tmp_path: Path) -> None:
        """UBL named .pdf, or a PDF named .xml: extension-mismatch, saying which name
        fits the content (and that its folder keeps its name), or to export it again."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-9.pdf", ubl_invoice("INV-9")))
        assert info.value.message == (
            "content is XML, not a PDF — if it is the invoice as XML, rename it to INV-9.xml "
            "(its folder keeps its name); else export or print the invoice to PDF again and "
            "put that file in its place")
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-9.xml", text_pdf(["Invoice number: A-1"])))
        assert (info.value.code, info.value.message) == ("extension-mismatch", (
            "content is a PDF, not XML — if it is the invoice as a PDF, rename it to "
            "INV-9.pdf (its folder keeps its name); else export the invoice as XML again "
            "and put that file in its place"))

    def test_an_empty_file_named_pdf_is_empty_not_misnamed(self, tmp_path: Path) -> None:
        """Nothing in it is the first thing to say: empty-file, not extension-mismatch."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-9.pdf", b"\0" * 100))
        assert info.value.code == "empty-file"

    def test_fifo_is_never_opened_blocking(self, tmp_path: Path) -> None:
        """An invoice path that is a FIFO is refused (HostileInput), without blocking."""
        import os
        fifo = tmp_path / "INV.xml"
        os.mkfifo(fifo)
        with pytest.raises(HostileInput) as info:
            read(fifo)
        assert info.value.code == "not-a-file"

    def test_symlink_is_refused(self, tmp_path: Path) -> None:
        """An invoice path that is a symbolic link is refused, never followed."""
        target = write(tmp_path / "real.xml", ubl_invoice("INV-1"))
        link = tmp_path / "INV-1.xml"
        link.symlink_to(target)
        with pytest.raises(HostileInput) as info:
            read(link)
        assert info.value.code == "symlink"


class TestXmlThatCannotBeRead:
    def test_unknown_encoding_is_invalid_xml(self, tmp_path: Path) -> None:
        """An encoding name Python does not know is an invalid-xml error, not a crash."""
        path = write(tmp_path / "INV-1.xml",
                     b'<?xml version="1.0" encoding="x-no-such-charset"?><Invoice/>')
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.code == "invalid-xml" and info.value.file == "INV-1.xml"

    @pytest.mark.parametrize("name", [b"utf-8\x00", b"undefined"])
    def test_an_encoding_name_no_codec_takes_is_invalid_xml(self, tmp_path: Path,
                                                            name: bytes) -> None:
        """A declared encoding name that Python's codecs refuse with a ValueError, not a
        LookupError (a NUL inside it, found by bench/fuzz.py; "undefined"), is an
        invalid-xml error naming the file, not a crash of the read."""
        path = write(tmp_path / "INV-1.xml",
                     b'<?xml version="1.0" encoding="' + name + b'"?>\n<Invoice>\xff</Invoice>')
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.code == "invalid-xml" and info.value.file == "INV-1.xml"

    def test_nesting_past_the_depth_limit_is_refused_as_it_is_parsed(self, tmp_path: Path
                                                                       ) -> None:
        """A well-formed file of elements nested 1,001 deep (past lxml's 256, so parsed by
        defusedxml) is invalid-xml naming the file, refused at that depth: a fuzzed
        invoice nested 600,000 deep took a reader 530 MB (ElementTree keeps ~0.4 KB a
        level open) before it was refused (peak memory measured in a child process).
        1,000 levels still read."""
        def nested(depth: int) -> bytes:
            return (b'<?xml version="1.0"?>\n<Invoice>' + b"<a>" * (depth - 1)
                    + b"</a>" * (depth - 1) + b"</Invoice>")
        assert read(write(tmp_path / "INV-2.xml", nested(1000))).invoice_ids == ("INV-2",)
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-1.xml", nested(1001)))
        assert (info.value.code, info.value.file) == ("invalid-xml", "INV-1.xml")
        assert "nests elements too deeply" in info.value.message
        path = write(tmp_path / "INV-3.xml", nested(600_000))
        code = ("import resource, sys\n"
                "from pathlib import Path\n"
                "from daemon.reading.invoices import read_invoice_file\n"
                "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
                "try:\n"
                "    read_invoice_file(Path(sys.argv[1]), 'INV-3.xml', '(x)')\n"
                "except Exception as exc:\n"
                "    print(exc.code, end=' ')\n"
                "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n")
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                              text=True, timeout=120, check=False)
        code_seen, grew_mb = done.stdout.split()
        assert code_seen == "invalid-xml" and int(grew_mb) < 100, done.stdout + done.stderr

    def test_absurd_nesting_is_invalid_xml(self, tmp_path: Path) -> None:
        """Nesting deep enough to exhaust the stack is an invalid-xml error, not a crash."""
        depth = 200_000
        path = write(tmp_path / "INV-1.xml", b"<a>" * depth + b"</a>" * depth)
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.code == "invalid-xml"


class TestFastPath:
    """The usual invoice is parsed by lxml, everything else by defusedxml: same answers."""

    @pytest.mark.parametrize("fixture", sorted(FIXTURE_IDS))
    def test_fixtures_take_the_fast_path_with_the_same_ids(self, fixture: str) -> None:
        """Each official example is parsed by lxml, and both parsers find the same ids."""
        data = (PEPPOL / fixture).read_bytes()
        fast = lxml_root(data)
        assert fast is not None
        assert xmlids.xml_ids(fast, fixture) == xmlids.xml_ids(_parse_xml(data), fixture)

    def test_wrapper_takes_the_fast_path_with_the_same_ids(self) -> None:
        """A wrapper of several documents: lxml and defusedxml agree on ids and order."""
        data = wrap("vat-category-E.xml", "Norwegian-example-1.xml", "base-example.xml")
        fast = lxml_root(data)
        assert fast is not None
        assert xmlids.xml_ids(fast, "w.xml") == xmlids.xml_ids(_parse_xml(data), "w.xml")

    def test_comment_and_cdata_inside_the_id(self, tmp_path: Path) -> None:
        """A comment, CDATA and character references inside cbc:ID: the text around them
        is one id, as before."""
        data = ubl_invoice("X").replace(
            b"<cbc:ID>X</cbc:ID>", b"<cbc:ID>IN<!-- c --><![CDATA[V-]]>7&#45;1</cbc:ID>")
        assert lxml_root(data) is not None
        assert read(write(tmp_path / "c.xml", data)).invoice_ids == ("INV-7-1",)

    @pytest.mark.parametrize("data", [
        ubl_invoice("INV-DT").replace(b"?>\n", b"?>\n<!DOCTYPE Invoice>\n", 1),
        ubl_invoice("INV-C").replace(b"?>\n", b"?>\n<!-- <!DOCTYPE x> -->\n", 1),
        ubl_invoice("INV-L").replace(b'encoding="UTF-8"', b'encoding="ISO-8859-1"'),
        ubl_invoice("INV-16").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"'
                                               ).encode("utf-16-le"),
    ], ids=["bare-doctype", "doctype-in-comment", "latin-1", "utf-16"])
    def test_doctype_or_other_encoding_goes_to_defusedxml(self, data: bytes) -> None:
        """Bytes with "<!DOCTYPE" anywhere, or not in UTF-8/ASCII, never reach lxml."""
        assert lxml_root(data) is None

    def test_latin_1_invoice_keeps_its_id(self, tmp_path: Path) -> None:
        """An invoice declared ISO-8859-1 is read with its non-ASCII id."""
        data = ubl_invoice("INV-X").decode().replace('encoding="UTF-8"',
                                                     'encoding="ISO-8859-1"')
        path = write(tmp_path / "l.xml", data.replace("INV-X", "INV-Ö").encode("latin-1"))
        assert read(path) == InvoiceRead("ubl", ("INV-Ö",))

    def test_utf_16_invoice_with_entities_is_hostile(self, tmp_path: Path) -> None:
        """Entity declarations in UTF-16 (no ASCII "<!DOCTYPE" in the bytes) are refused."""
        data = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "b">]>'
                '<x>&a;</x>').encode("utf-16-le")
        with pytest.raises(HostileInput) as info:
            read(write(tmp_path / "u.xml", data))
        assert info.value.code == "hostile-xml"

    def test_deeper_than_lxml_allows(self, tmp_path: Path) -> None:
        """An invoice nested deeper than libxml2's 256 levels is still found (defusedxml)."""
        inner = ubl_invoice("INV-DEEP").split(b"?>", 1)[1]
        data = b"<a>" * 300 + inner + b"</a>" * 300
        assert lxml_root(data) is None
        assert read(write(tmp_path / "deep.xml", data)) == InvoiceRead("ubl", ("INV-DEEP",))

    def test_read_invoice_bytes_is_read_invoice_file(self, tmp_path: Path) -> None:
        """The ids from bytes already read equal those read from the file."""
        path = write(tmp_path / "batch.xml", wrap("base-example.xml", "vat-category-E.xml"))
        assert read_invoice_bytes(path.read_bytes(), path.name, path.name,
                                  DEFAULT_PDF_ID_PATTERN) == read(path)

    @pytest.mark.parametrize("data", [
        b'<Invoice xmlns="urn:x"><cbc:ID>1</cbc:ID></Invoice>',  # unbound prefix
        b"<a>\x0c</a>", b"<a>&#12;</a>", b'<a x="1" x="2"/>', b"<a>&foo;</a>",
        b"<a/>junk", b"<a/><b/>", b'<?xml encoding="utf-8"?><a/>', b"<a>]]></a>",
        b'<a x="<"/>', " <a>\ufffe</a>".encode(),
    ], ids=["unbound-prefix", "control-char", "control-char-ref", "duplicate-attribute",
            "undefined-entity", "trailing-junk", "two-roots", "no-version", "cdata-end",
            "lt-in-attribute", "non-character"])
    def test_what_is_not_well_formed_gets_the_old_error(self, tmp_path: Path,
                                                         data: bytes) -> None:
        """XML that is not well-formed is left to defusedxml, whose invalid-xml error
        (and text) the reader gives as before."""
        assert lxml_root(data) is None
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "bad.xml", data))
        assert info.value.code == "invalid-xml"
        assert "is not well-formed XML (" in info.value.message


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize(("fmt", "preflight", "code", "message"), [
    ("bundle", "error", "invalid-xml", "is UTF-16 without a byte order mark (UTF-16 XML "
     "needs one to be read) — export the invoice as UTF-8"),
    ("ubl-embedded", "error", "invalid-xml", "is UTF-16 without a byte order mark (UTF-16 "
     "XML needs one to be read) — export the invoice as UTF-8"),
    ("ubl-embedded", "off", "embed-encoding", "is encoded as utf-16; attachments can be "
     "embedded only in UTF-8"),
], ids=["bundle", "embedded", "embedded-without-preflight"])
def test_a_utf16_invoice_without_its_mark_gets_the_encoding_error_in_either_byte_order(
        tmp_path: Path, codec: str, fmt: str, preflight: str, code: str, message: str) -> None:
    """A bundle whose INV-1.xml is UTF-16 without a byte order mark, read and checked as
    the daemon does (finish.evaluate): big-endian gets the error that says to export
    it as UTF-8, as little-endian does. It was a "non-UBL invoice file" (a
    not-preflighted note in bundle mode, `not-ubl` under ubl-embedded)."""
    from claimed import make

    from daemon.delivery.finish import evaluate
    from daemon.watching.scan import list_outbox

    _, s = make(tmp_path, delivery={"format": fmt}, einvoice={"preflight": preflight})
    write(s.outbox.path / "INV-1" / "a.pdf", pdf_bytes())
    text = ubl_invoice("INV-1").decode().split("?>\n", 1)[1]
    write(s.outbox.path / "INV-1.xml", text.encode(codec))
    [cand] = list_outbox(s.outbox).candidates.values()
    bundle = evaluate(cand, s)
    assert bundle.invoice_file.format == "ubl"
    [error] = bundle.errors
    assert (error.code, error.file) == (code, "INV-1.xml")
    assert error.message.startswith(message)
    assert all(f.code not in ("not-ubl", "not-preflighted") for f in bundle.findings)


def flate_pdf(content: bytes, form: bytes = b"") -> bytes:
    """A one-page PDF whose page content is `content`, Flate-compressed (`form`: the
    content of a form XObject /Fm0 the page may draw), written object by object."""
    return flate_pdf_pages([content], form)


def flate_pdf_pages(contents: list[bytes], form: bytes = b"") -> bytes:
    """A PDF with a page per item of `contents` (Flate-compressed), each with the font
    /F1 and the form /Fm0 (`form`) among its resources."""
    def stream(data: bytes, extra: bytes = b"") -> bytes:
        packed = zlib.compress(data, 9)
        return (b"<< /Length %d /Filter /FlateDecode%s >>\nstream\n" % (len(packed), extra)
                + packed + b"\nendstream")
    font = b"<< /Font << /F1 3 0 R >> >>"
    first = 5  # objects 1-4: catalog, pages, font, form; then a page and its content each
    kids = b" ".join(b"%d 0 R" % (first + 2 * i) for i in range(len(contents)))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, len(contents)),
               b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
               stream(form, b" /Type /XObject /Subtype /Form /BBox [0 0 595 842] "
                      b"/Resources " + font)]
    for i, content in enumerate(contents):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
                       b"/Contents %d 0 R /Resources << /Font << /F1 3 0 R >> "
                       b"/XObject << /Fm0 4 0 R >> >> >>" % (first + 2 * i + 1))
        objects.append(stream(content))
    return pdf_of_objects(objects)


def test_reading_large_pdf_invoice_files_holds_none_of_them_after(tmp_path: Path) -> None:
    """Once a PDF invoice file's ids are read, nothing of it stays in memory, whenever
    the garbage collector runs: pypdf's reader is a reference cycle that keeps its
    stream and the copy pypdf makes of the bytes (a 50 MB PDF invoice left a reader
    48 MB larger until a full collection)."""
    size = 1 << 20
    files = [pdf_carrying(size) for _ in range(8)]
    gc.collect()
    gc.disable()  # a full collection may come late: what is read must not wait for it
    tracemalloc.start()
    try:
        for n, data in enumerate(files):
            found = read_invoice_bytes(data, f"INV-{n}.pdf", f"INV-{n}.pdf",
                                       DEFAULT_PDF_ID_PATTERN)
            assert found.invoice_ids == (f"INV-{n}",)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        gc.enable()
    assert held < 2 * size, f"{held / size:.1f} files' worth still held"


@pytest.mark.parametrize("mark", ["\x85", "\xa0", "\u2028"], ids=["NEL", "NBSP", "LSEP"])
def test_an_id_keeps_characters_python_counts_as_space_and_xml_does_not(
        tmp_path: Path, mark: str) -> None:
    """An id's text is trimmed of XML's white space only (space, tab, CR, LF): U+0085,
    U+00A0 and U+2028 at its end are part of the id, as the receiver reads it. Trimmed
    by str.strip(), "INV-8\\x85" was read as "INV-8": the manifest named another invoice,
    and the two ids of a batch that differ by it counted as one."""
    batch = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>'
             f'<Invoice {UBL_NS}><cbc:ID> INV-8{mark}\n</cbc:ID></Invoice>'
             f'<Invoice {UBL_NS}><cbc:ID>\tINV-8 </cbc:ID></Invoice></Batch>\n')
    path = write(tmp_path / "batch.xml", batch.encode())
    assert read(path).invoice_ids == (f"INV-8{mark}", "INV-8")


def test_utf16_xml_declared_so_and_not_well_formed_keeps_the_parsers_words(
        tmp_path: Path) -> None:
    """UTF-16 XML whose declaration says UTF-16, broken elsewhere (an element closed by
    another's end tag): invalid-xml in the parser's own words — neither "says encoding … but is"
    (its encoding is right) nor a declaration said to be misplaced."""
    text = ubl_invoice("INV-16").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    text = text.replace("</Invoice>", "</Invoicе></Invoice>")  # a Cyrillic е: no such open
    error = refusal(write(tmp_path / "wide.xml", text.encode("utf-16")))
    assert error.code == "invalid-xml"
    assert error.message.startswith("is not well-formed XML (") and \
        error.message.endswith("— export the invoice again")
    assert "says encoding" not in error.message and "declaration" not in error.message


@pytest.mark.parametrize("doctype", ["<!DOCTYPE Invoice []>", "<!DOCTYPE Invoice[ ]>",
                                     "<!DOCTYPE Invoice [\r\n]>"])
def test_a_doctype_with_an_empty_internal_subset_declares_nothing_and_is_read(
        tmp_path: Path, doctype: str) -> None:
    """`<!DOCTYPE Invoice []>` (what .NET's XmlWriter writes for an empty internal
    subset) declares nothing and points nowhere, as a bare DOCTYPE: the invoice is read
    under its id, by the whole read and by root_tag alike — before, hostile-xml said it
    "declares entities or a DTD", and every such export was quarantined."""
    data = ubl_invoice("INV-DT").replace(b"?>\n", f"?>\n{doctype}\n".encode(), 1)
    assert read(write(tmp_path / "dt.xml", data)).invoice_ids == ("INV-DT",)
    assert root_tag(data, "dt.xml").endswith("}Invoice")


@pytest.mark.parametrize("subset", [
    "<!ELEMENT Invoice ANY>",
    '<!ATTLIST cbc:ID schemeID CDATA "0088">',  # a default would change what is read
    '<!NOTATION n SYSTEM "x">',
    "<!-- a comment -->",
    "<?pi x?>",
    "%pe;",
    '<!ENTITY x "X">',
])
def test_an_internal_subset_holding_anything_is_still_hostile(tmp_path: Path,
                                                              subset: str) -> None:
    """Only an empty subset is let through: any declaration, reference, comment or
    instruction in it is refused as before, by the whole read and by root_tag."""
    data = ubl_invoice("INV-DT").replace(
        b"?>\n", f"?>\n<!DOCTYPE Invoice [ {subset} ]>\n".encode(), 1)
    with pytest.raises(HostileInput) as info:
        read(write(tmp_path / "dt.xml", data))
    assert info.value.code == "hostile-xml"
    with pytest.raises(HostileInput):
        root_tag(data, "dt.xml")


def test_an_empty_internal_subset_in_utf16_is_still_refused(tmp_path: Path) -> None:
    """In UTF-16 the subset's bytes are not looked at: refused as before (hostile-xml)."""
    text = ubl_invoice("INV-16").decode().replace('encoding="UTF-8"', 'encoding="UTF-16"')
    text = text.replace("?>\n", "?>\n<!DOCTYPE Invoice []>\n", 1)
    with pytest.raises(HostileInput):
        read(write(tmp_path / "wide.xml", text.encode("utf-16")))


class TestOneInvoiceNumberADocument:
    """A UBL Invoice/CreditNote (or a Svefaktura invoice) has one ID of its own, its
    invoice number: one with two was read under the first, and with pre-flight off sent
    so, the second number lost without a word (`invoice-two-ids`)."""

    @staticmethod
    def two_ids(first: str, second: str) -> bytes:
        return ubl_invoice(first).replace(
            f"<cbc:ID>{first}</cbc:ID>".encode(),
            f"<cbc:ID>{first}</cbc:ID>\n  <cbc:ID>{second}</cbc:ID>".encode(), 1)

    def test_a_ubl_invoice_with_two_ids_of_its_own_is_an_error_naming_both(
            self, tmp_path: Path) -> None:
        """The error names the file, both numbers, the rule (one invoice number a
        document) and the fix; the many cbc:IDs inside (a party's, a line's) are not its
        own and count for nothing."""
        path = write(tmp_path / "INV-1.xml", self.two_ids("INV-1", "INV-2"))
        with pytest.raises(InputError) as info:
            read(path)
        e = info.value
        assert (e.code, e.file) == ("invoice-two-ids", "INV-1.xml")
        assert e.message == (
            "a UBL Invoice has 2 cbc:ID elements of its own ('INV-1', 'INV-2'), where a "
            "document has one, its invoice number: it would be sent as the invoice 'INV-1' "
            "alone — have the ERP write one invoice number in the document and export it "
            "again")

    def test_the_same_number_twice_is_an_error_too(self, tmp_path: Path) -> None:
        """Two equal cbc:IDs break the same rule (UBL's schema allows one): an operator
        refuses the document, so it is stopped at the outbox, as one without an id is."""
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "INV-1.xml", self.two_ids("INV-1", "INV-1")))
        assert info.value.code == "invoice-two-ids"

    def test_a_document_in_a_batch_with_two_ids_is_an_error(self, tmp_path: Path) -> None:
        """In a file of several documents, the one with two numbers stops the file, as
        one without a number does."""
        docs = "".join(f"<CreditNote xmlns=\"urn:oasis:names:specification:ubl:schema:xsd:"
                       f"CreditNote-2\" xmlns:cbc=\"urn:oasis:names:specification:ubl:schema:"
                       f"xsd:CommonBasicComponents-2\">{ids}</CreditNote>"
                       for ids in ("<cbc:ID>CN-1</cbc:ID>",
                                   "<cbc:ID>CN-2</cbc:ID><cbc:ID>CN-3</cbc:ID>"))
        path = write(tmp_path / "batch.xml", f"<Batch>{docs}</Batch>".encode())
        with pytest.raises(InputError) as info:
            read(path)
        assert info.value.code == "invoice-two-ids"
        assert "a UBL CreditNote has 2 cbc:ID elements of its own ('CN-2', 'CN-3')" \
            in info.value.message

    def test_a_svefaktura_invoice_with_two_ids_is_an_error(self, tmp_path: Path) -> None:
        """Svefaktura's root has one ID, as a UBL document has."""
        data = SVEFAKTURA.replace(b"<ID>SVE-77</ID>", b"<ID>SVE-77</ID><ID>SVE-78</ID>")
        with pytest.raises(InputError) as info:
            read(write(tmp_path / "sve.xml", data))
        assert info.value.code == "invoice-two-ids"
        assert "a Svefaktura Invoice has 2 ID elements of its own ('SVE-77', 'SVE-78')" \
            in info.value.message


def _refused_by_both_reads(tmp_path: Path, data: bytes) -> tuple[InputError, InputError]:
    """The errors the invoice read and the first element's read (root_tag: `outboxd
    check`, the e-invoice kinds) give the XML `data`, each checked to be invalid-xml of
    INV-1.xml ending with the encoding's fix."""
    with pytest.raises(InputError) as info:
        read(write(tmp_path / "INV-1.xml", data))
    with pytest.raises(InputError) as first:
        root_tag(data, "INV-1.xml")
    for refused in (info.value, first.value):
        assert (refused.code, refused.file) == ("invalid-xml", "INV-1.xml")
        assert refused.message.endswith("— export the invoice as UTF-8, or have the ERP "
                                        "name the encoding it writes in the XML declaration")
    return info.value, first.value


@pytest.mark.parametrize(("name", "said"), [
    (b"nonsense", 'its XML declaration names the encoding "nonsense", which is no '
                  "encoding outboxd knows"),
    (b"Shift_JIS", 'its XML declaration names the encoding "Shift_JIS", which outboxd '
                   "cannot read"),
    (b"x-no-such-charset", 'its XML declaration names the encoding "x-no-such-charset"')])
def test_an_encoding_outboxd_cannot_read_is_named_with_the_export_setting_to_change(
        tmp_path: Path, name: bytes, said: str) -> None:
    """An invoice declared in an encoding Python does not know, or in one of many bytes a
    character that the XML parser does not read (an ERP writing Shift_JIS), was refused
    with the parser's exception ("LookupError: unknown encoding: nonsense", "ValueError:
    multi-byte encodings are not supported"), which names no rule a clerk can follow.
    Now it names the declared encoding and the export setting to change, as every other
    encoding fault does (found by bench/fuzz.py, seeds 30 and 33). The file's first
    element is read the same way (root_tag, for `outboxd check` and the e-invoice kinds)."""
    data = b'<?xml version="1.0" encoding="' + name + b'"?>\n<Invoice><ID>1</ID></Invoice>'
    for refused in _refused_by_both_reads(tmp_path, data):
        assert said in refused.message and "Error" not in refused.message


@pytest.mark.parametrize(("head", "said"), [
    (b'<?xml version="1.0" encoding="cp037"?>', 'its XML declaration names the encoding '
     '"cp037", which outboxd cannot read (an encoding whose letters are not ASCII\'s bytes'),
    (b'\xef\xbb\xbf<?xml version="1.0" encoding="cp500"?>', 'names the encoding "cp500", '
     "which outboxd cannot read"),
    (b'\xef\xbb\xbf<?xml version="1.0" encoding="UTF-16"?>', 'says encoding="UTF-16" in '
     "its XML declaration but starts with the byte order mark of UTF-8")])
def test_an_encoding_the_parser_will_not_take_is_named_not_called_unknown(
        tmp_path: Path, head: bytes, said: str) -> None:
    """An EBCDIC encoding Python knows (cp037, cp500: its letters are not ASCII's bytes,
    so expat does not read it), or UTF-16 declared after a UTF-8 byte order mark, was
    refused in the parser's words: "is not well-formed XML (unknown encoding: line 1,
    column 31) — export the invoice again", which another export only makes again. Now
    it names the encoding and the export setting to change, as every other encoding fault
    does (bench/fuzz.py, seed 45, case 107: a byte order mark and encoding="cp037")."""
    data = head + b"\n<Invoice><ID>1</ID></Invoice>"
    for refused in _refused_by_both_reads(tmp_path, data):
        assert said in refused.message and "unknown encoding" not in refused.message


@pytest.mark.parametrize("name", [b"undefined", b"idna", b"punycode"])
def test_an_encoding_python_has_but_no_text_is_in_is_named_with_the_setting_to_change(
        tmp_path: Path, name: bytes) -> None:
    """Python knows "undefined", "idna" and "punycode" as codecs, but no file's text is in
    them: the parser failed on them with Python's words ("UnicodeError: decoding with
    'undefined' codec failed"). The whole read and root_tag now name the declared
    encoding and the export setting to change, as for an encoding no codec knows."""
    data = b'<?xml version="1.0" encoding="' + name + b'"?>\n<Invoice><ID>1</ID></Invoice>'
    path = write(tmp_path / "INV-1.xml", data)
    with pytest.raises(InputError) as info:
        read(path)
    with pytest.raises(InputError) as first:
        root_tag(data, "INV-1.xml")
    for refused in (info.value, first.value):
        assert (refused.code, refused.file) == ("invalid-xml", "INV-1.xml")
        assert f'names the encoding "{name.decode()}", which is no encoding outboxd ' \
               "knows" in refused.message
        assert "Error" not in refused.message and "codec" not in refused.message


@pytest.mark.parametrize("data", [
    b"<Invoice &><ID>1</ID></Invoice>",  # not well-formed before the root's start ends
    b"\xef\xbb\xbf<?xml version='1.0'?>\n<Inv",  # cut before the root's start tag ends
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice\x96><ID>1</ID></Invoice>',
])
def test_root_tag_says_a_parse_error_with_the_whole_reads_words_and_its_fix(
        tmp_path: Path, data: bytes) -> None:
    """root_tag (the file's first element, for `outboxd check` and the e-invoice kinds)
    said a parse error with no fix ("cannot be read as XML (not well-formed (invalid
    token): line 1, column 9)"). It now says what the whole read says of the same bytes:
    the rule broken and the fix, word for word."""
    with pytest.raises(InputError) as whole:
        read(write(tmp_path / "INV-1.xml", data))
    with pytest.raises(InputError) as first:
        root_tag(data, "INV-1.xml")
    assert (first.value.code, first.value.file) == ("invalid-xml", "INV-1.xml")
    assert first.value.message == whole.value.message
    assert " — " in first.value.message
