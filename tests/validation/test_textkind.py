"""Text by its content: UTF-8 or Windows-1252, CSV by a shared delimiter, plain text, XML
(docs/folder-convention.md, What makes an attachment invalid); told through `sniff`, which
hands textkind.py what no magic bytes name."""

from __future__ import annotations

import codecs
import io

import pytest

from daemon.validation.filetypes import HEAD_BYTES
from daemon.validation.sniff import sniff
from daemon.validation.textkind import INVOICE_LABEL


def kind(data: bytes) -> str:
    return sniff(io.BytesIO(data)).kind


class TestText:
    def test_comma_csv(self) -> None:
        """UTF-8 lines sharing a comma with equal field counts are CSV."""
        ft = sniff(io.BytesIO(b"date,hours,task\n2024-10-01,8,build\n2024-10-02,6,test\n"))
        assert (ft.kind, ft.mime, ft.warning) == ("csv", "text/csv", None)

    @pytest.mark.parametrize("delimiter", [";", "\t"])
    def test_semicolon_and_tab_csv(self, delimiter: str) -> None:
        """Semicolon (Swedish Excel) and tab are CSV delimiters too."""
        rows = ["datum", "timmar"], ["2024-10-01", "8,5"], ["2024-10-02", "6"]
        data = "\r\n".join(delimiter.join(r) for r in rows).encode()
        assert kind(data) == "csv"

    def test_utf8_bom(self) -> None:
        """A UTF-8 byte-order mark (Excel's "CSV UTF-8") is fine and gives no warning."""
        ft = sniff(io.BytesIO("\ufeffnamn;ort\nÅsa;Göteborg\n".encode("utf-8")))
        assert (ft.kind, ft.warning) == ("csv", None)

    def test_quoted_delimiters_do_not_break_field_count(self) -> None:
        """A delimiter inside quotes is data, not a field boundary."""
        assert kind(b'name,note\n"Smith, J",ok\nDoe,"a, b, c"\n') == "csv"

    def test_windows_1252_csv_warns(self) -> None:
        """CSV in Windows-1252 is CSV, with a warning naming the encoding."""
        ft = sniff(io.BytesIO("namn;ort\nÅsa;Göteborg\n".encode("cp1252")))
        assert ft.kind == "csv"
        assert ft.warning is not None and "Windows-1252" in ft.warning

    def test_a_utf8_bom_before_bytes_that_are_no_utf8_is_damaged_not_windows_1252(
            self) -> None:
        """A UTF-8 byte-order mark promises UTF-8: what follows in Windows-1252 is a
        damaged file of unknown type, not CSV with a warning (sent as it is)."""
        data = codecs.BOM_UTF8 + "namn;ort\nÅsa;Göteborg\n".encode("cp1252")
        assert kind(data) == "unknown"

    def test_windows_1252_found_beyond_the_head(self) -> None:
        """A Windows-1252 byte far past the sampled head still gives the warning."""
        data = b"a;b\n" * (HEAD_BYTES // 4 + 100) + "ö;ä\n".encode("cp1252")
        ft = sniff(io.BytesIO(data))
        assert ft.kind == "csv" and ft.warning is not None

    def test_a_line_without_the_delimiter_makes_it_text(self) -> None:
        """Text with a line that holds none of the delimiters is plain text, not CSV."""
        ft = sniff(io.BytesIO(b"Hello, world\nThis line, has, more, commas\nnone here\n"))
        assert (ft.kind, ft.mime) == ("text", "text/plain")

    def test_rows_of_different_lengths_sharing_the_delimiter_are_csv(self) -> None:
        """CSV is text whose lines share one delimiter. A time sheet with a shorter
        totals row, or an export that dropped trailing empty fields, is CSV."""
        assert kind(b"date;hours;task\n2026-11-02;8;build\n2026-11-03;7;test\nTotal;15\n") \
            == "csv"
        assert kind(b"a,b,c,d\n1,2,,\n3,4\n") == "csv"

    def test_lines_ended_by_carriage_returns_alone_are_csv(self) -> None:
        """Excel for Mac's "CSV (Macintosh)" ends each line with a carriage return alone:
        still CSV, also when the sampled head cuts its last line in two."""
        assert kind(b"datum;timmar\r2024-10-01;8\r2024-10-02;6\r") == "csv"
        long_rows = b"b" * 2000 + b";a\r"  # fewer rows in the head than are sampled
        assert kind(long_rows * (HEAD_BYTES // len(long_rows) + 2)) == "csv"

    def test_a_line_longer_than_the_head_after_a_blank_first_line_is_judged(self) -> None:
        """The line the head cuts in two is dropped only when a line ends before it:
        a blank line, then one row longer than the head, is judged by that row (CSV)."""
        assert kind(b"\n" + b"a;b;" * (HEAD_BYTES // 4 + 10)) == "csv"

    def test_blank_lines_are_skipped(self) -> None:
        """Empty lines (and trailing ;;; rows) do not spoil the field count."""
        assert kind(b"a;b\n\n1;2\n;\n\n3;4\n") == "csv"

    def test_xml(self) -> None:
        """Text starting with an XML declaration is XML."""
        assert kind(b'<?xml version="1.0"?><Invoice/>') == "xml"

    def test_only_a_document_starting_with_a_tag_is_named_an_invoice(self) -> None:
        """An invoice's namespace in XML is an invoice put into a sidecar (its own label
        and fix); the same namespace quoted in a plain text note is plain text."""
        namespace = b"urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
        assert sniff(io.BytesIO(b'<Invoice xmlns="' + namespace + b'"/>')).label \
            == INVOICE_LABEL
        assert sniff(io.BytesIO(b"Use the namespace " + namespace + b" please\n")).label \
            == "plain text file"

    def test_nul_bytes_are_not_text(self) -> None:
        """Text with NULs (UTF-16, binary records) is not treated as text."""
        assert kind("a,b\n1,2\n".encode("utf-16-le")) == "unknown"


def test_utf16_text_whose_head_ends_inside_a_surrogate_pair_is_still_text() -> None:
    """Excel's "Unicode Text" (UTF-16 with its byte-order mark) holding a character past
    U+FFFF (an emoji in a note) just where the first 64 KiB looked at end, between the
    two halves of its surrogate pair: still a text file in UTF-16, not taken for
    something else because its head alone does not decode."""
    line = "Åsa\tGöteborg 1234567\r\n"
    before = (line * (HEAD_BYTES // len(line)))[:HEAD_BYTES // 2 - 2]  # BOM, then pairs
    data = codecs.BOM_UTF16_LE + (before + "😀" + line * 50).encode("utf-16-le")
    assert data[HEAD_BYTES - 2:HEAD_BYTES + 2] == "😀".encode("utf-16-le")  # cut mid-pair
    ft = sniff(io.BytesIO(data))
    assert (ft.kind, ft.warning) == ("utf16", None)
