"""The reference receiver's tests' set-up: a bundle as the daemon would post it, posted
over real HTTP to receivers started in threads on 127.0.0.1 (tests of server.py,
receive.py and checks.py)."""

from __future__ import annotations

import hashlib
import json
import random
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ThreadReceiver
from pypdf import PdfWriter

from daemon.bundle import Attachment, Bundle, InvoiceFile
from daemon.manifest import build_manifest
from daemon.receiver import make_server

UBL = b"""<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">
  <cbc:ID xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
    >INV-2001</cbc:ID>
</Invoice>
"""


def _digest(path: Path) -> tuple[int, str]:
    data = path.read_bytes()
    return len(data), hashlib.sha256(data).hexdigest()


def _attachment(path: Path, invoice_id: str, content_type: str, note: str = "",
                pages: int | None = None) -> Attachment:
    size, sha = _digest(path)
    return Attachment(path=path, rel=f"{invoice_id}/{path.name}", original_name=path.name,
                      invoice_id=invoice_id, size=size, sha256=sha, document_type="Contract",
                      note=note, content_type=content_type, pages=pages)


@dataclass
class Sent:
    """A bundle as the daemon would post it: manifest bytes plus the files in part order."""

    manifest: dict[str, Any]
    files: list[tuple[str, str, Path, str]]  # (part, filename, path, content type)

    @property
    def key(self) -> str:
        return str(self.manifest["bundle_id"])

    def manifest_bytes(self) -> bytes:
        return json.dumps(self.manifest, ensure_ascii=False).encode("utf-8")

    def parts(self, stack: ExitStack) -> list[tuple[str, tuple[Any, Any, str]]]:
        out: list[tuple[str, tuple[Any, Any, str]]] = [
            ("manifest", (None, self.manifest_bytes(), "application/json"))]
        for part, filename, path, ctype in self.files:
            out.append((part, (filename, stack.enter_context(open(path, "rb")), ctype)))
        return out


def make_sent(tmp_path: Path, note: str = "Signed", pdf_name: str = "Tidrapport oktober.pdf",
              safe_filenames: bool = True) -> Sent:
    """Two invoices (one id needs folder sanitising), a real PDF and a boundary-ish binary."""
    src = tmp_path / "outbox"
    src.mkdir(parents=True, exist_ok=True)
    invoice = src / "batch-42.xml"
    invoice.write_bytes(UBL)
    pdf = src / pdf_name
    writer = PdfWriter()
    writer.add_blank_page(width=595, height=842)
    with open(pdf, "wb") as fh:
        writer.write(fh)
    blob = src / "scan.bin"
    rng = random.Random(42)  # deterministic, and full of would-be boundary starts
    blob.write_bytes(b"".join(rng.randbytes(997) + b"\r\n--\r\n-" for _ in range(300)))
    size, sha = _digest(invoice)
    inv = InvoiceFile(path=invoice, name=invoice.name, size=size, sha256=sha, format="ubl",
                      invoice_ids=("INV-2001", "INV/7:1"))
    atts = (_attachment(pdf, "INV-2001", "application/pdf", note=note, pages=1),
            _attachment(blob, "INV/7:1", "application/octet-stream"))
    manifest = build_manifest(Bundle(inv, None, atts, "e-invoice"),
                              safe_filenames=safe_filenames)
    files = [("invoice", manifest["invoice_file"]["name"], invoice, "application/xml")]
    by_name = {a.original_name: a for a in atts}
    for entry in (e for i in manifest["invoices"] for e in i["attachments"]):
        files.append((entry["part"], entry["name"], by_name[entry["original_name"]].path,
                      entry["content_type"]))
    return Sent(manifest, files)


def post(url: str, sent: Sent, *, key: str | None = "auto", token: str | None = None,
         files: list[tuple[str, tuple[Any, Any, str]]] | None = None) -> httpx.Response:
    headers = {}
    if key is not None:
        headers["Idempotency-Key"] = sent.key if key == "auto" else key
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    with ExitStack() as stack, httpx.Client(timeout=30) as client:
        return client.post(url, files=files or sent.parts(stack), headers=headers)


def connect(url: str) -> socket.socket:
    """A raw connection to the receiver at url (loopback), for raw-socket tests."""
    return socket.create_connection(("127.0.0.1", httpx.URL(url).port or 80))


def raw_request(sent: Sent, url: str) -> tuple[bytes, bytes]:
    """The exact header block and body httpx would send, for raw-socket tests."""
    with ExitStack() as stack:
        request = httpx.Request("POST", url, files=sent.parts(stack),
                                headers={"Idempotency-Key": sent.key})
        body = request.read()
    lines = ["POST /bundles HTTP/1.1", f"Host: {request.url.netloc.decode()}"]
    lines += [f"{k}: {v}" for k, v in request.headers.items() if k.lower() != "host"]
    return "\r\n".join(lines).encode() + b"\r\n", body


def log_lines(store: Path) -> list[dict[str, Any]]:
    path = store / "requests.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def stored_bundles(store: Path) -> list[str]:
    return sorted(p.name for p in store.iterdir() if p.is_dir())


Starter = Callable[..., str]


@pytest.fixture
def start() -> Iterator[Starter]:
    """Start receivers in threads (conftest.ThreadReceiver); every one is stopped, its
    connections cut, after the test."""
    receivers: list[ThreadReceiver] = []

    def _start(store: Path, **kwargs: Any) -> str:
        receivers.append(ThreadReceiver(make_server("127.0.0.1", 0, store, **kwargs)))
        return receivers[-1].url

    yield _start
    for receiver in receivers:
        receiver.stop()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def url(start: Starter, store: Path) -> str:
    return start(store)
