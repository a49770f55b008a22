"""Valid PDF invoices as common writers leave them, read whole by the look for pages pypdf
loses without a word (daemon/reading/pdfdamage.py, pdffonts.py, pdftext.py,
daemon/validation/pdfobjects.py): none of their pages taken for one not read, no
warning — an incremental update (a stamped or amended invoice), resources a page
inherits from the page tree, a form with resources of its own, a composite font and
its character map, each also as qpdf packs it again into object streams."""

from __future__ import annotations

import io
import zlib
from pathlib import Path

import pikepdf
from helpers import write
from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject, RectangleObject

from reading.test_invoices import read
from reading.test_pdfdamage import INVOICES, pypdf_pdf, stream
from reading.test_pdfmaps import CMAP, composite_pdf


def read_whole(data: bytes, tmp_path: Path) -> tuple[str, ...]:
    """The ids of print.pdf of `data`, asserting it was read without a warning."""
    found = read(write(tmp_path / "print.pdf", data))
    assert found.warnings == ()
    return found.invoice_ids


def in_object_streams(data: bytes) -> bytes:
    """`data` saved again by qpdf (pikepdf): its objects packed into object streams, every
    stream compressed again by qpdf's zlib."""
    out = io.BytesIO()
    with pikepdf.open(io.BytesIO(data)) as pdf:
        pdf.save(out, object_stream_mode=pikepdf.ObjectStreamMode.generate,
                 compress_streams=True, recompress_flate=True)
    return out.getvalue()


def amended() -> bytes:
    """pypdf's file of INV-1 to INV-3, page 2 changed to INV-7 by an incremental update
    (a second cross-reference table and %%EOF after the first)."""
    writer = PdfWriter(io.BytesIO(pypdf_pdf(INVOICES)), incremental=True)
    body = DecodedStreamObject()
    body.set_data(INVOICES[1].replace(b"INV-2", b"INV-7"))
    writer.pages[1][NameObject("/Contents")] = writer._add_object(body.flate_encode())
    out = io.BytesIO()
    writer.write(out)
    assert out.getvalue().count(b"%%EOF") == 2
    return out.getvalue()


def inherited_and_form() -> bytes:
    """pypdf's file whose pages take their font from the page tree's /Resources, page 3
    drawing a form (its content Flate, as every page's) with its own font."""
    writer = PdfWriter()
    font = writer._add_object(DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica")}))
    fonts = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    for number, content in enumerate(INVOICES, 1):
        page = writer.add_blank_page(595, 842)
        del page[NameObject("/Resources")]
        if number == 3:
            form = DecodedStreamObject()
            form.set_data(content)
            form.update({NameObject("/Type"): NameObject("/XObject"),
                         NameObject("/Subtype"): NameObject("/Form"),
                         NameObject("/BBox"): RectangleObject([0, 0, 595, 842]),
                         NameObject("/Resources"): fonts})
            page[NameObject("/Resources")] = DictionaryObject({NameObject("/XObject"): (
                DictionaryObject({NameObject("/Fm0"): writer._add_object(form.flate_encode())}))})
            content = b"q /Fm0 Do Q\n"
        body = DecodedStreamObject()
        body.set_data(content)
        page[NameObject("/Contents")] = writer._add_object(body.flate_encode())
    writer.root_object["/Pages"][NameObject("/Resources")] = fonts
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def composite() -> bytes:
    """Page 3 in a composite font of glyph numbers, its character map Flate, as pypdf
    writes the file again (identical objects merged)."""
    data = composite_pdf(stream(zlib.compress(CMAP)))
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.compress_identical_objects()
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_an_incremental_update_is_read_as_it_now_is(tmp_path: Path) -> None:
    data = amended()
    assert read_whole(data, tmp_path) == ("INV-1", "INV-7", "INV-3")
    assert read_whole(in_object_streams(data), tmp_path) == ("INV-1", "INV-7", "INV-3")


def test_inherited_resources_and_a_forms_own_are_read(tmp_path: Path) -> None:
    data = inherited_and_form()
    assert read_whole(data, tmp_path) == ("INV-1", "INV-2", "INV-3")
    assert read_whole(in_object_streams(data), tmp_path) == ("INV-1", "INV-2", "INV-3")


def test_a_composite_font_and_its_compressed_map_are_read(tmp_path: Path) -> None:
    data = composite()
    assert read_whole(data, tmp_path) == ("INV-1", "INV-2", "INV-3")
    assert read_whole(in_object_streams(data), tmp_path) == ("INV-1", "INV-2", "INV-3")
