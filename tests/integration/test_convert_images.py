"""`[validation] convert_images` end to end on the external-print channel (docs/einvoice.md)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import LEAN, Env, Receiver
from helpers import drop_bundle, wait_for
from PIL import Image
from pypdf import PdfReader
from structlog.testing import capture_logs

from daemon.configuration.config import Settings
from daemon.loop.service import Service
from daemon.reading.readers import Readers
from daemon.validation import convert


def scan(fmt: str, size: tuple[int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (20, 120, 200)).save(buf, fmt, dpi=(300, 300))
    return buf.getvalue()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.mark.usefixtures("quick_settle")  # its bundle comes whole
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


@pytest.mark.usefixtures("quick_settle")  # its bundle comes whole
def test_without_the_flag_images_on_external_print_are_errors(
        env: Env, receiver: Receiver, start_daemon) -> None:
    # Refused when read, wherever that is (conftest.LEAN); no conversion runs.
    env.write_config(receiver.url, validation={"channel": "external-print"}, **LEAN)
    start_daemon()
    drop_bundle(env.outbox, "INV-2", {"scan.png": scan("PNG", (300, 300))})
    [q] = wait_for(env.quarantined, what="the bundle quarantined")
    reason = (q / "REASON.txt").read_text()
    assert "INV-2/scan.png" in reason and "external-print channel allows" in reason
    assert receiver.requests() == []


@contextlib.contextmanager
def daemon_here(tmp_path: Path, reader_processes: int) -> Iterator[tuple[Settings, Service]]:
    """`outboxd run` in this process (a thread; real watcher, readers and directory
    transport), so that what runs in the daemon's own process can be watched; stopped
    (if not yet) and waited for at the end."""
    s = Settings(outbox={"path": str(tmp_path / "outbox"), "settle_seconds": 0.2},
                 paths={"state_dir": str(tmp_path / "state")},
                 delivery={"transport": "directory", "target": str(tmp_path / "target")},
                 validation={"channel": "external-print", "convert_images": True},
                 einvoice={"preflight": "off"},
                 service={"reader_processes": reader_processes})
    s.outbox.path.mkdir()
    svc = Service(s)
    thread = threading.Thread(target=svc.run, name="loop")
    thread.start()
    try:
        yield s, svc
    finally:
        svc.request_stop()
        thread.join(60)
        assert not thread.is_alive(), "the daemon did not stop within 60 s"


@pytest.mark.parametrize("reader_processes", [1, 0], ids=["readers", "threads"])
def test_the_daemons_own_process_never_converts_an_image_when_it_has_readers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader_processes: int) -> None:
    """Decoding an image costs hundreds of MB for a large scan. With reader processes
    the image is converted in them before the claim and again, into the work folder,
    after it: the converter of the daemon's own process is never called, yet the PDF
    is written, archived and sent. With none (`reader_processes = 0`) every conversion
    runs on the readers' threads here, never on a delivery worker."""
    threads: list[str] = []
    real = convert.image_to_pdf

    def watched(data: bytes, max_pixels: int) -> bytes:
        threads.append(threading.current_thread().name)
        return real(data, max_pixels)

    monkeypatch.setattr(convert, "image_to_pdf", watched)
    png = scan("PNG", (900, 600))
    with daemon_here(tmp_path, reader_processes) as (s, _):
        drop_bundle(s.outbox.path, "INV-3", {"scan.png": png})
        [archived] = wait_for(lambda: list(s.sent_dir.glob("*/*")), what="the bundle sent")
    pdf = (archived / "INV-3.converted" / "scan.pdf").read_bytes()
    assert pdf == real(png, s.validation.max_image_pixels)
    [sent] = (tmp_path / "target").glob("*/attachments/INV-3/scan.pdf")
    assert sent.read_bytes() == pdf
    if reader_processes:
        assert threads == []
    else:
        assert len(threads) == 2 and all(t.startswith("read") for t in threads), threads


def test_a_stop_during_a_conversion_at_delivery_lets_the_delivery_end_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM while a reader converts a claimed bundle's image at delivery: the daemon
    waits for its deliveries (within the grace period) before it stops its readers, so
    the bundle is sent and archived, not failed with "the daemon is stopping" and left
    for the next start."""
    converting = threading.Event()
    real = Readers.materialise

    def noted(self: Readers, *args: object, **kwargs: object) -> object:
        converting.set()
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Readers, "materialise", noted)
    with capture_logs() as logs, daemon_here(tmp_path, 1) as (s, svc):
        drop_bundle(s.outbox.path, "INV-4", {"scan.png": scan("PNG", (5000, 5000))})
        assert converting.wait(60), "no conversion at delivery"
        svc.request_stop()
    [archived] = s.sent_dir.glob("*/*")
    assert (archived / "INV-4.converted" / "scan.pdf").read_bytes().startswith(b"%PDF")
    assert [e for e in logs if e["log_level"] == "error"] == []
