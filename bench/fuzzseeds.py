"""The valid files bench/fuzz.py mutates: made here, the same bytes every run (no dates,
no random ids), so that a case is named by its seed and number alone.

PDFs are written by hand (pypdf stamps a random /ID into what it writes): a page of text
that reads "Invoice number INV-…" (the PDF invoice file's path searches it), many pages
in a nested page tree, a cross-reference stream with its objects in an object stream
(PDF 1.5), an incremental update after the first %%EOF, an annotation and a form field.
Images come from Pillow: TIFFs at 300 DPI (one page, many pages; raw, LZW, Deflate,
JPEG, PackBits, Group 4), PNG (with pHYs, and an animated one), JPEG (JFIF density,
and EXIF resolution), GIF (animated), BMP and WebP. XML from tests/fixtures: the Peppol
invoice and credit note, a file of two invoices, a Svefaktura, a UTF-16 invoice. And an
attachments.toml naming its folder's files.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "peppol"

# --------------------------------------------------------------------------- PDF


def _stream(body: bytes, extra: str = "", compress: bool = False) -> bytes:
    if compress:
        body = zlib.compress(body, 9)
        extra += " /Filter /FlateDecode"
    return (f"<< /Length {len(body)}{extra} >>\nstream\n".encode() + body
            + b"\nendstream")


def _classic(objects: list[bytes]) -> bytes:
    """`objects` numbered from 1, a classic xref table and trailer; the root is 1."""
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n"
            "%%EOF\n").encode()
    return bytes(out)


def _text_page(parent: int, content: int, font: int, extra: str = "") -> bytes:
    return (f"<< /Type /Page /Parent {parent} 0 R /MediaBox [0 0 595 842] /Contents "
            f"{content} 0 R /Resources << /Font << /F1 {font} 0 R >> >>{extra} >>").encode()


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _content(invoice_id: str, page: int) -> bytes:
    return (f"BT /F1 12 Tf 72 770 Td (Invoice number {invoice_id}) Tj 0 -16 Td "
            f"(Page {page}) Tj ET 0.5 g 72 100 450 600 re f").encode()


def pdf_one_page(invoice_id: str = "INV-77", compress: bool = False) -> bytes:
    return _classic([b"<< /Type /Catalog /Pages 2 0 R >>",
                     b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                     _text_page(2, 4, 5), _stream(_content(invoice_id, 1), compress=compress),
                     _FONT])


def pdf_many_pages(pages: int = 6) -> bytes:
    """A page tree of two levels: the root's kids are two /Pages nodes."""
    half = pages // 2
    # 1 catalog, 2 root, 3-4 intermediate, 5 font, then page i: 6 + 2i, content 7 + 2i
    objs: list[bytes] = [b"<< /Type /Catalog /Pages 2 0 R >>",
                         f"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count {pages} >>".encode()]
    for lo, hi in ((0, half), (half, pages)):
        kids = " ".join(f"{6 + 2 * i} 0 R" for i in range(lo, hi))
        objs.append(f"<< /Type /Pages /Parent 2 0 R /Kids [{kids}] /Count {hi - lo} >>"
                    .encode())
    objs.append(_FONT)
    for i in range(pages):
        objs.append(_text_page(3 if i < half else 4, 7 + 2 * i, 5))
        objs.append(_stream(_content("INV-77", i + 1), compress=True))
    return _classic(objs)


def pdf_object_streams() -> bytes:
    """PDF 1.5: catalog, pages, page and font in an object stream, a cross-reference
    stream (binary /W [1 4 2] entries) instead of a table."""
    inner = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
             _text_page(2, 5, 4), _FONT]
    head, body = [], b""
    for number, obj in enumerate(inner, 1):
        head.append(f"{number} {len(body)}")
        body += obj + b"\n"
    header = (" ".join(head) + "\n").encode()
    out = bytearray(b"%PDF-1.5\n%\xe2\xe3\xcf\xd3\n")
    offsets: dict[int, int] = {}
    offsets[5] = len(out)
    out += b"5 0 obj\n" + _stream(_content("INV-77", 1), compress=True) + b"\nendobj\n"
    offsets[6] = len(out)
    out += (b"6 0 obj\n" + _stream(header + body, f" /Type /ObjStm /N {len(inner)} /First "
                                   f"{len(header)}", compress=True) + b"\nendobj\n")
    xref_at = len(out)
    rows = [b"\x00" + (0).to_bytes(4, "big") + (65535).to_bytes(2, "big")]
    rows += [b"\x02" + (6).to_bytes(4, "big") + i.to_bytes(2, "big") for i in range(4)]
    rows += [b"\x01" + offsets[n].to_bytes(4, "big") + b"\x00\x00" for n in (5, 6)]
    rows += [b"\x01" + xref_at.to_bytes(4, "big") + b"\x00\x00"]
    out += (b"7 0 obj\n" + _stream(b"".join(rows), " /Type /XRef /Size 8 /W [1 4 2] /Root "
                                   "1 0 R", compress=True) + b"\nendobj\n")
    out += f"startxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)


def pdf_incremental() -> bytes:
    """A one-page PDF and an update after its %%EOF: its page again (object 3), drawing
    a new content stream (object 6); the update's table has three subsections."""
    out = bytearray(pdf_one_page())
    prev = int(bytes(out).rsplit(b"startxref\n", 1)[1].split(b"\n", 1)[0])
    at3 = len(out)
    out += b"3 0 obj\n" + _text_page(2, 6, 5) + b"\nendobj\n"
    at6 = len(out)
    out += b"6 0 obj\n" + _stream(_content("INV-78", 1)) + b"\nendobj\n"
    xref = len(out)
    out += (f"xref\n0 1\n0000000000 65535 f \n3 1\n{at3:010d} 00000 n \n6 1\n"
            f"{at6:010d} 00000 n \ntrailer\n<< /Size 7 /Root 1 0 R /Prev {prev} >>\n"
            f"startxref\n{xref}\n%%EOF\n").encode()
    return bytes(out)


def pdf_annotated() -> bytes:
    """A page with a link annotation and a text field (an AcroForm)."""
    return _classic([b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [6 0 R] >> >>",
                     b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                     _text_page(2, 4, 5, " /Annots [6 0 R 7 0 R]"),
                     _stream(_content("INV-77", 1)), _FONT,
                     b"<< /Type /Annot /Subtype /Widget /FT /Tx /T (name) /V (Ann) /Rect "
                     b"[72 600 300 620] /P 3 0 R >>",
                     b"<< /Type /Annot /Subtype /Link /Rect [72 500 200 520] /A << /S /URI "
                     b"/URI (http://127.0.0.1/) >> >>"])


# ------------------------------------------------------------------------ images


def _image(mode: str = "RGB", size: tuple[int, int] = (48, 32), shade: int = 0) -> Image.Image:
    im = Image.new(mode, size, "white")
    for x in range(size[0]):  # a gradient and a bar, so that compression has work
        for y in range(0, size[1], 3):
            value = (x * 5 + y * 3 + shade) % 256
            im.putpixel((x, y), value if mode in ("L", "1", "P") else
                        (value, 255 - value, (value * 7) % 256))
    return im


def _saved(im: Image.Image, fmt: str, **opts: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **opts)
    return buf.getvalue()


def tiff(compression: str | None = None, pages: int = 1) -> bytes:
    mode = "1" if compression == "group4" else "L" if compression == "packbits" else "RGB"
    frames = [_image(mode, shade=17 * i) for i in range(pages)]
    return _saved(frames[0], "TIFF", compression=compression or "raw", dpi=(300, 300),
                  save_all=pages > 1, append_images=frames[1:])


def png(animated: bool = False) -> bytes:
    if animated:
        frames = [_image(shade=40 * i) for i in range(3)]
        return _saved(frames[0], "PNG", save_all=True, append_images=frames[1:],
                      duration=100, dpi=(300, 300))
    return _saved(_image(), "PNG", dpi=(300, 300))


def jpeg(exif: bool = False) -> bytes:
    im = _image()
    if exif:
        data = Image.Exif()
        data[0x011A], data[0x011B], data[0x0128] = 300.0, 300.0, 2
        return _saved(im, "JPEG", quality=80, exif=data.tobytes())
    return _saved(im, "JPEG", quality=80, dpi=(300, 300))


def gif() -> bytes:
    frames = [_image("P", shade=30 * i) for i in range(3)]
    return _saved(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


# --------------------------------------------------------------------------- XML


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def xml_batch() -> bytes:
    """Two UBL invoices in one wrapper: the Peppol example under two ids."""
    one = _fixture("base-example.xml").split(b"?>", 1)[1]
    two = one.replace(b"<cbc:ID>Snippet1</cbc:ID>", b"<cbc:ID>Snippet2</cbc:ID>", 1)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n<Batch>' + one + two + b"</Batch>\n"


SVEFAKTURA = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Invoice xmlns="urn:sfti:documents:'
              b'BasicInvoice:1:0"><ID>SFTI-1</ID><IssueDate>2026-01-01</IssueDate></Invoice>\n')


def xml_utf16() -> bytes:
    text = _fixture("base-example.xml").decode("utf-8")
    return text.replace('encoding="UTF-8"', 'encoding="UTF-16"', 1).encode("utf-16")


NOTES = (b'channel = "e-invoice"\n\n[files.\'ok.pdf\']\ntype = "Timesheet"\n'
         b'note = "Hours for October \\u00e9"\n')


# ------------------------------------------------------------------------- table

# kind -> [(seed name, file extension, maker)]; a kind's seeds are mutated into its cases.
Maker = Callable[[], bytes]
SEEDS: dict[str, list[tuple[str, str, Maker]]] = {
    "pdf": [("one-page", "pdf", pdf_one_page),
            ("one-page-flate", "pdf", lambda: pdf_one_page(compress=True)),
            ("many-pages", "pdf", pdf_many_pages),
            ("object-streams", "pdf", pdf_object_streams),
            ("incremental", "pdf", pdf_incremental),
            ("annotated", "pdf", pdf_annotated)],
    "tiff": [("raw", "tif", tiff), ("lzw", "tif", lambda: tiff("tiff_lzw")),
             ("deflate", "tif", lambda: tiff("tiff_adobe_deflate")),
             ("jpeg", "tif", lambda: tiff("jpeg")), ("packbits", "tif", lambda: tiff("packbits")),
             ("group4", "tif", lambda: tiff("group4")),
             ("multi-lzw", "tif", lambda: tiff("tiff_lzw", pages=3))],
    "png": [("png", "png", png), ("apng", "png", lambda: png(animated=True))],
    "jpeg": [("jfif", "jpg", jpeg), ("exif", "jpg", lambda: jpeg(exif=True))],
    "gif": [("animated", "gif", gif)],
    "bmp": [("bmp", "bmp", lambda: _saved(_image(), "BMP")),
            ("bmp-8bit", "bmp", lambda: _saved(_image("L"), "BMP"))],
    "webp": [("webp", "webp", lambda: _saved(_image(), "WEBP", quality=80))],
    "xml": [("invoice", "xml", lambda: _fixture("base-example.xml")),
            ("credit-note", "xml", lambda: _fixture("base-creditnote-correction.xml")),
            ("allowance", "xml", lambda: _fixture("Allowance-example.xml")),
            ("batch", "xml", xml_batch), ("svefaktura", "xml", lambda: SVEFAKTURA),
            ("utf-16", "xml", xml_utf16)],
    # attachments.toml in the sidecar, beside a valid ok.pdf it names.
    "toml": [("notes", "toml", lambda: NOTES)],
}
# The PDF seeds again, as the invoice file itself (its text is searched for ids).
SEEDS["pdfinvoice"] = SEEDS["pdf"]
# Kinds whose case is the invoice file; the others' case is an attachment.
INVOICE_KINDS = frozenset({"xml", "pdfinvoice"})


def made() -> dict[str, list[tuple[str, str, bytes]]]:
    """Every kind's seeds, made."""
    return {kind: [(name, ext, make()) for name, ext, make in seeds]
            for kind, seeds in SEEDS.items()}
