"""`[validation] convert_images` end to end on the external-print channel (docs/einvoice.md)."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from conftest import Env, Receiver
from helpers import drop_bundle, wait_for
from PIL import Image
from pypdf import PdfReader


def scan(fmt: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (20, 120, 200)).save(buf, fmt, dpi=(300, 300))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_300_dpi_png_and_jpeg_arrive_as_pdfs_of_their_size_at_300_dpi(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url, validation={"channel": "external-print",
                                               "convert_images": True})
    start_daemon()
    png, jpg = scan("PNG", (900, 600)), scan("JPEG", (1200, 300))
    drop_bundle(env.outbox, "INV-1", {"scan.png": png, "photo.jpg": jpg})

    [archived] = wait_for(env.sent_bundles, what="the bundle sent")
    wait_for(lambda: (archived / "receipt.json").exists(), what="receipt.json")
    manifest = json.loads((archived / "receipt.json").read_text())["manifest"]
    entries = {e["original_name"]: e for e in manifest["invoices"][0]["attachments"]}
    stored = receiver.store / manifest["bundle_id"] / "attachments" / "INV-1"
    for original, data, converted, (w, h) in (("scan.png", png, "scan.pdf", (900, 600)),
                                              ("photo.jpg", jpg, "photo.pdf", (1200, 300))):
        entry = entries[original]
        assert entry["name"] == converted and entry["content_type"] == "application/pdf"
        assert entry["converted_from"]["sha256"] == sha(data)
        assert entry["converted_from"]["name"] == original
        pdf = (stored / converted).read_bytes()
        assert sha(pdf) == entry["sha256"]
        box = PdfReader(io.BytesIO(pdf)).pages[0].mediabox
        assert float(box.width) == pytest.approx(w / 300 * 72, abs=0.1)
        assert float(box.height) == pytest.approx(h / 300 * 72, abs=0.1)
        # Archived side by side: the original in its sidecar, the PDF beside it.
        assert (archived / "INV-1" / original).read_bytes() == data
        assert (archived / "INV-1.converted" / converted).read_bytes() == pdf
    assert not any(p.name.endswith(".converted") for p in env.outbox.iterdir())


def test_without_the_flag_images_on_external_print_are_errors(
        env: Env, receiver: Receiver, start_daemon) -> None:
    env.write_config(receiver.url, validation={"channel": "external-print"})
    start_daemon()
    drop_bundle(env.outbox, "INV-2", {"scan.png": scan("PNG", (300, 300))})
    [q] = wait_for(env.quarantined, what="the bundle quarantined")
    reason = (q / "REASON.txt").read_text()
    assert "INV-2/scan.png" in reason and "external-print channel allows" in reason
    assert receiver.requests() == []
