"""What tests of attachment validation start from: a sidecar on disk, the Bundle the
matcher would build of it, and images made with Pillow (docs/folder-convention.md,
"What makes an attachment invalid")."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from pathlib import Path

from PIL import Image, TiffImagePlugin
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, NameObject

from daemon.bundle import Attachment, Bundle, Finding, InvoiceFile
from daemon.configuration.config import ValidationConfig
from daemon.validation.validate import validate_bundle

INVOICE = b'<?xml version="1.0"?><Invoice><ID>INV-1001</ID></Invoice>'


def image_bytes(fmt: str, size: tuple[int, int] = (16, 16), **kw: object) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, 255).save(buf, fmt, **kw)
    return buf.getvalue()


def tiff_pages(*dpis: tuple[float, float] | None, tiffinfo: dict[int, object] | None = None,
               ) -> bytes:
    """A TIFF with one page per entry, each with its own resolution (None: no tags)."""
    buf = io.BytesIO()
    with TiffImagePlugin.AppendingTiffWriter(buf, new=True) as tf:
        for dpi in dpis:
            kw: dict[str, object] = {"dpi": dpi} if dpi else {}
            if tiffinfo:
                kw["tiffinfo"] = tiffinfo
            Image.new("L", (16, 16), 255).save(tf, "TIFF", **kw)
            tf.newFrame()
    return buf.getvalue()


def pdf_carrying(size: int) -> bytes:
    """A one-page PDF of about `size` bytes, most of them one incompressible stream (as a
    scan's image is): big on disk and in memory, cheap for pypdf to open."""
    writer = PdfWriter()
    page = writer.add_blank_page(200, 200)
    stream = DecodedStreamObject()
    stream.set_data(os.urandom(max(0, size - 1000)))
    page[NameObject("/PieceInfo")] = writer._add_object(stream)
    buf = io.BytesIO()
    writer.write(buf)
    return buf.getvalue()


def pdf_unpacking_to(expanded: int) -> bytes:
    """A PDF 1.5 of a few KB whose page tree lies in an object stream that Flate unpacks
    to `expanded` bytes (blanks after the objects): reading its pages unpacks it."""
    objs = b"1 0 2 60 3 120 "
    body = (b"<< /Type /Catalog /Pages 2 0 R >>".ljust(60)
            + b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>".ljust(60)
            + b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 200 200] >>")
    packer = zlib.compressobj(9)
    packed = [packer.compress(objs + body)]
    blanks, left = b" " * (1 << 24), expanded - len(objs) - len(body)
    while left > 0:
        packed.append(packer.compress(blanks[:left]))
        left -= len(blanks)
    stream = b"".join(packed) + packer.flush()
    out = io.BytesIO()
    out.write(b"%PDF-1.5\n")
    at_stream = out.tell()
    out.write(b"4 0 obj\n<< /Type /ObjStm /N 3 /First %d /Filter /FlateDecode /Length %d >>"
              b"\nstream\n" % (len(objs), len(stream)) + stream + b"\nendstream\nendobj\n")
    at_xref = out.tell()
    # The cross-reference stream: object 0 free, 1-3 in object stream 4, 4 and 5 plain.
    rows = [(0, 0, 255), (2, 4, 0), (2, 4, 1), (2, 4, 2), (1, at_stream, 0), (1, at_xref, 0)]
    table = b"".join(struct.pack(">BIH", kind, a, b) for kind, a, b in rows)
    out.write(b"5 0 obj\n<< /Type /XRef /Size 6 /W [1 4 2] /Root 1 0 R /Length %d >>\nstream\n"
              % len(table) + table + b"\nendstream\nendobj\nstartxref\n%d\n%%%%EOF\n" % at_xref)
    return out.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width × height (pixel data would never fit)."""
    data = bytearray(image_bytes("PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def tiff_claiming(width: int, height: int, dpi: float = 300) -> bytes:
    """A tiny one-page TIFF at `dpi` whose header claims width × height (its strip
    would never hold them)."""
    data = bytearray(image_bytes("TIFF", dpi=(dpi, dpi)))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for n in range(struct.unpack_from("<H", data, ifd)[0]):
        entry = ifd + 2 + 12 * n
        tag = struct.unpack_from("<H", data, entry)[0]
        if tag in (256, 257):  # ImageWidth, ImageLength: as LONGs
            struct.pack_into("<HHII", data, entry, tag, 4, 1, width if tag == 256 else height)
    return bytes(data)


def tiff_compressed(*compressions: int) -> bytes:
    """A 300-DPI TIFF of one page per entry, each page's Compression tag (259) set to it
    (its strip stays as written, uncompressed: only the header says otherwise)."""
    data = bytearray(tiff_pages(*[(300.0, 300.0)] * len(compressions)))
    ifd = struct.unpack_from("<I", data, 4)[0]
    for compression in compressions:
        entries = struct.unpack_from("<H", data, ifd)[0]
        for n in range(entries):
            entry = ifd + 2 + 12 * n
            if struct.unpack_from("<H", data, entry)[0] == 259:
                struct.pack_into("<HHIHH", data, entry, 259, 3, 1, compression, 0)
        ifd = struct.unpack_from("<I", data, ifd + 2 + 12 * entries)[0]
    return bytes(data)


class Outbox:
    """Writes files under tmp_path/outbox and builds the Bundle the matcher would."""

    def __init__(self, root: Path) -> None:
        self.root = root / "outbox"
        (self.root / "INV-1001").mkdir(parents=True)
        self.invoice_path = self.root / "INV-1001.xml"
        self.invoice_path.write_bytes(INVOICE)

    def write(self, name: str, data: bytes) -> Path:
        path = self.root / "INV-1001" / name
        path.write_bytes(data)
        return path

    def attachment(self, name: str) -> Attachment:
        path = self.root / "INV-1001" / name
        data = path.read_bytes() if path.is_file() and not path.is_symlink() else b""
        return Attachment(path=path, rel=f"INV-1001/{name}", original_name=name,
                          invoice_id="INV-1001", size=len(data),
                          sha256=hashlib.sha256(data).hexdigest(), document_type="Attachment")

    def bundle(self, *names: str, channel: str = "e-invoice") -> Bundle:
        invoice = InvoiceFile(self.invoice_path, "INV-1001.xml", len(INVOICE),
                              hashlib.sha256(INVOICE).hexdigest(), "ubl", ("INV-1001",))
        return Bundle(invoice, self.root / "INV-1001",
                      tuple(self.attachment(n) for n in names), channel)

    def validate(self, name: str, data: bytes | None = None, channel: str = "e-invoice",
                 cfg: ValidationConfig | None = None) -> Bundle:
        if data is not None:
            self.write(name, data)
        return validate_bundle(self.bundle(name, channel=channel), cfg or ValidationConfig())


def codes(bundle: Bundle, severity: str | None = None) -> list[str]:
    return [f.code for f in bundle.findings if severity in (None, f.severity)]


def only(bundle: Bundle, code: str) -> Finding:
    found = [f for f in bundle.findings if f.code == code]
    assert len(found) == 1, bundle.findings
    finding = found[0]
    assert finding.file.startswith("INV-1001/") and finding.file in finding.line()
    assert finding.invoice_id == "INV-1001"
    assert " — " in finding.message, "every message says the fix after the dash"
    return finding
