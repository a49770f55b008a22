"""logs.py's levels for the libraries that read and convert the clerks' files: what
they say of a file is either nothing anyone can act on or the finding that names the
file already, so it stays out of the log (and `outboxd check`'s output), while our own
lines and the libraries' real warnings get through."""

from __future__ import annotations

import io
import logging
import struct

from test_logs import _logged

from daemon import logs


def test_pikepdf_import_chatter_stays_out_of_the_log_but_its_warnings_do_not() -> None:
    """pikepdf (imported by img2pdf for convert_images) logs "C++ to Python logger bridge
    initialized" at INFO: it appeared on `outboxd check`'s stderr and in the daemon's
    log. At [log] level = "info" it is dropped; a pikepdf warning still gets through."""
    text = _logged("info", lambda: (
        logging.getLogger("pikepdf._core").info("pikepdf C++ to Python logger bridge "
                                                "initialized"),
        logging.getLogger("pikepdf._core").warning("a real pikepdf warning")))
    assert "logger bridge" not in text
    assert "a real pikepdf warning" in text


def test_converting_a_transparent_image_for_print_logs_no_warning() -> None:
    """img2pdf warns "Image contains an alpha channel. Computing a separate soft mask" for
    every PNG with transparency (a screenshot) that convert_images turns into a PDF: twice
    a bundle in the daemon's log, and in `outboxd check` beside "0 warning(s)", naming no
    file and asking nothing of anyone. What stops a conversion is raised instead, and is a
    finding naming the file; our own warnings still get through."""
    from PIL import Image

    from daemon.validation.convert import image_to_pdf
    buf = io.BytesIO()
    Image.new("RGBA", (40, 40), (255, 0, 0, 128)).save(buf, "PNG", dpi=(300, 300))
    text = _logged("info", lambda: (image_to_pdf(buf.getvalue(), 10**8),
                                    logs.get().warning("ours")))
    assert "alpha" not in text and "ours" in text


def _tiff_of_samples_per_pixel(samples: int) -> bytes:
    """A TIFF of 8×8 pixels whose header says each pixel has `samples` samples."""
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "TIFF", dpi=(300, 300))
    data = bytearray(buf.getvalue())
    ifd = struct.unpack_from("<I", data, 4)[0]
    for i in range(struct.unpack_from("<H", data, ifd)[0]):
        at = ifd + 2 + 12 * i
        if struct.unpack_from("<H", data, at)[0] == 277:  # SamplesPerPixel, a SHORT
            struct.pack_into("<H", data, at + 8, samples)
    return bytes(data)


def test_an_image_pillow_refuses_logs_no_error_of_pillow_s() -> None:
    """Pillow logs "More samples per pixel than can be decoded: 19968" at ERROR before it
    refuses such a TIFF (a mutated one, bench.fuzz seed 27): an error line in the
    daemon's log at each read of the bundle, naming no file and asking nothing of anyone,
    beside the image-unreadable finding that names the file. Pillow's records stay out
    of the log; the probe still refuses the image, and our own lines get through."""
    from daemon.validation.imageprobe import probe_image
    facts: list[object] = []
    text = _logged("debug", lambda: (
        facts.append(probe_image(io.BytesIO(_tiff_of_samples_per_pixel(19968)), "tiff",
                                 10**8)),
        logs.get().error("ours")))
    assert "samples per pixel" not in text and "PIL" not in text and "ours" in text
    assert getattr(facts[0], "error", None)


def test_a_pdf_font_of_an_encoding_pypdf_does_not_know_logs_no_error_of_pypdf_s() -> None:
    """pypdf logs "Advanced encoding /X not implemented yet, using [256 characters]
    instead." at ERROR for a font whose /Encoding it does not know, and reads the text in
    the standard encoding: a 2.5 KB error line naming no file at each read of an invoice
    file that is read as it should be. It stays out of the log; the invoice number is
    found, and our own lines get through."""
    from reading.test_invoices import flate_pdf_pages

    from daemon.configuration.config_sections import DEFAULT_PDF_ID_PATTERN
    from daemon.reading.invoices import read_invoice_bytes
    pdf = flate_pdf_pages([b"BT /F1 12 Tf 72 720 Td (Invoice number INV-5) Tj ET"]).replace(
        b"/BaseFont /Helvetica", b"/BaseFont /Helvetica /Encoding /Bogus-Enc")
    read: list[object] = []
    text = _logged("debug", lambda: (
        read.append(read_invoice_bytes(pdf, "INV-5.pdf", "INV-5.pdf", DEFAULT_PDF_ID_PATTERN)),
        logs.get().error("ours")))
    assert "Bogus-Enc" not in text and "pypdf" not in text and "ours" in text
    assert getattr(read[0], "invoice_ids", None) == ("INV-5",)
