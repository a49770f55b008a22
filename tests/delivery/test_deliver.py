"""Delivery (docs/protocol.md): the multipart request, secrets scrubbed from
answers. (What an answer means: test_answers.py; TLS: test_tls.py; the directory
transport: test_directory.py.)

httpx.MockTransport is used here only, to pin down classification and request shape; the
end-to-end tests talk to the real receiver.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import resource
import socket
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import serving
from pypdf import PdfWriter
from rawreceiver import stop_accepting
from structlog.testing import capture_logs
from swaps import opened_in, swap_for_link

from daemon import __version__
from daemon.bundle import Attachment, Bundle, InvoiceFile
from daemon.configuration.config import DeliveryConfig
from daemon.delivery.answers import Receipt
from daemon.delivery.deliver import (
    WRITE_SIZE,
    Coalesced,
    HttpDeliverer,
    Shared,
    make_deliverer,
)
from daemon.errors import InputError, Paused, Rejected, Retryable
from daemon.manifest import build_manifest

URL = "http://127.0.0.1:9/x"
INVOICE_XML = b'<?xml version="1.0"?><Invoice><ID>INV-1</ID></Invoice>'


# ------------------------------------------------------------------ builders

def pdf(pages: int = 1) -> bytes:
    w = PdfWriter()
    for _ in range(pages):
        w.add_blank_page(width=595, height=842)
    buf = io.BytesIO()
    w.write(buf)
    return buf.getvalue()


def put(path: Path, data: bytes) -> tuple[Path, int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, len(data), hashlib.sha256(data).hexdigest()


def attachment(root: Path, invoice_id: str, rel: str, data: bytes, content_type: str,
               document_type: str = "Attachment", note: str = "") -> Attachment:
    path, size, sha = put(root / rel, data)
    return Attachment(path, rel, path.name, invoice_id, size, sha, document_type, note,
                      content_type, None)


def make_bundle(root: Path, invoice_name: str = "batch-42.xml") -> Bundle:
    """Two invoices; INV-1 has two attachments (names given out of order), INV-2 one."""
    path, size, sha = put(root / invoice_name, INVOICE_XML)
    inv = InvoiceFile(path, invoice_name, size, sha, "ubl", ("INV-1", "INV-2"))
    atts = (
        attachment(root, "INV-1", "batch-42/INV-1/Tidrapport oktober Å.pdf", pdf(2),
                   "application/pdf", "Timesheet", "Signed"),
        attachment(root, "INV-2", "batch-42/INV-2/spec.csv", b"a;b\n1;2\n", "text/csv"),
        attachment(root, "INV-1", "batch-42/INV-1/contract.png", b"\x89PNG\r\n\x1a\nfake",
                   "image/png", "Contract"),
    )
    return Bundle(inv, root / "batch-42", atts, "e-invoice")


def big_bundle(root: Path, size: int = 8 << 20) -> Bundle:
    """make_bundle with one more attachment of `size` bytes: a body larger than the
    sockets' buffers, which a receiver that stops reading holds back."""
    b = make_bundle(root)
    big = attachment(root, "INV-2", "batch-42/INV-2/big.pdf", b"%PDF-1.4\n" + os.urandom(size),
                     "application/pdf")
    return Bundle(b.invoice_file, b.sidecar, (*b.attachments, big), b.channel)


@contextlib.contextmanager
def _one_answer_server(note: Any, receipt_id: str,
                       tls: ssl.SSLContext | None = None) -> Iterator[int]:
    """A local HTTP server on 127.0.0.1 (a receiver, or a proxy in front of one) that
    hands each POST to `note` and answers 201 with this receipt id; yields its port.
    With `tls`: HTTPS with that server context."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers["Content-Length"]))
            note(self)
            body = json.dumps({"receipt_id": receipt_id}).encode()
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler, tls) as port:
        yield port


def http_cfg(**kw: Any) -> DeliveryConfig:
    return DeliveryConfig(**{"url": URL, **kw})


def response(status: int, body: bytes | str = b"", headers: dict[str, str] | None = None,
             json_body: Any = None) -> httpx.Response:
    req = httpx.Request("POST", URL)
    if json_body is not None:
        return httpx.Response(status, json=json_body, headers=headers, request=req)
    return httpx.Response(status, content=body, headers=headers, request=req)


def parse_multipart(request: httpx.Request) -> list[dict[str, Any]]:
    """Split a multipart/form-data body into parts: name, filename, content_type, data."""
    ctype = request.headers["content-type"]
    assert ctype.startswith("multipart/form-data")
    boundary = re.search(r"boundary=([^;]+)", ctype).group(1).strip('"').encode()  # type: ignore[union-attr]
    body = request.content
    parts = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n")
        headers = {}
        for line in head.decode("utf-8").split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disp = headers["content-disposition"]
        name = re.search(r'\bname="([^"]*)"', disp)
        filename = re.search(r'\bfilename="([^"]*)"', disp)
        parts.append({"name": name.group(1) if name else None,
                      "filename": filename.group(1) if filename else None,
                      "content_type": headers.get("content-type"), "data": data[:-2]})
    return parts


class Recorder:
    """A MockTransport handler that keeps every request (body read) and answers as told."""

    def __init__(self, answer: httpx.Response | None = None) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer

    def __call__(self, request: httpx.Request) -> httpx.Response:
        request.read()
        self.requests.append(request)
        if self.answer is not None:
            return self.answer
        return httpx.Response(201, json={"receipt_id": "rcpt-1"})


@contextlib.contextmanager
def _raw_server(reply: Any) -> Iterator[int]:
    """A receiver on 127.0.0.1 that reads each request whole and then lets `reply(sock)`
    write whatever bytes it likes as the answer; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                while len(body) < length:
                    body += conn.recv(65536)
                with contextlib.suppress(OSError):
                    reply(conn)
    accepting = threading.Thread(target=serve, daemon=True)
    accepting.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        stop_accepting(listener, accepting)


def _http(status: str, headers: str, body: bytes) -> bytes:
    return f"HTTP/1.1 {status}\r\n{headers}Content-Length: {len(body)}\r\n\r\n".encode() + body


def send(tmp_path: Path, cfg: DeliveryConfig | None = None, handler: Any = None,
         real: bool = False) -> tuple[Receipt, Recorder, Bundle, dict[str, Any]]:
    """One delivery of make_bundle; through `handler` on a MockTransport, or with
    `real` over the network to cfg.url (127.0.0.1)."""
    cfg = cfg or http_cfg()
    rec = handler if handler is not None else Recorder()
    bundle = make_bundle(tmp_path / "work")
    manifest = build_manifest(bundle, safe_filenames=cfg.safe_filenames)
    d = HttpDeliverer(cfg, transport=None if real else httpx.MockTransport(rec))
    try:
        receipt = d.deliver(bundle, manifest)
    finally:
        d.close()
    return receipt, rec, bundle, manifest


# ------------------------------------------------------------------ the request

class TestHttpRequest:
    def test_parts_in_order(self, tmp_path: Path) -> None:
        """Parts: manifest, invoice, attachment-1…N in manifest order (invoices in file
        order, attachments by original name)."""
        receipt, rec, bundle, manifest = send(tmp_path)
        assert receipt.receipt_id == "rcpt-1" and receipt.status == 201
        parts = parse_multipart(rec.requests[0])
        assert [p["name"] for p in parts] == ["manifest", "invoice", "attachment-1",
                                              "attachment-2", "attachment-3"]
        assert json.loads(parts[0]["data"]) == manifest
        assert parts[0]["content_type"] == "application/json"
        assert parts[1]["data"] == INVOICE_XML
        by_name = {a.original_name: a for a in bundle.attachments}
        expected = [("Tidrapport oktober Å.pdf", "INV-1"), ("contract.png", "INV-1"),
                    ("spec.csv", "INV-2")]
        for part, (name, _) in zip(parts[2:], expected, strict=True):
            assert part["data"] == by_name[name].path.read_bytes()
        sent_parts = [a["part"] for inv in manifest["invoices"] for a in inv["attachments"]]
        assert sent_parts == ["attachment-1", "attachment-2", "attachment-3"]

    def test_headers(self, tmp_path: Path) -> None:
        """Idempotency-Key is the bundle id; User-Agent outboxd/VERSION; POST to the url;
        no Authorization without a token; Accept-Encoding identity (a compressed answer
        could unpack to gigabytes before the read's limit)."""
        _, rec, _, manifest = send(tmp_path)
        req = rec.requests[0]
        assert req.method == "POST" and str(req.url) == URL
        assert req.headers["Idempotency-Key"] == manifest["bundle_id"]
        assert req.headers["User-Agent"] == f"outboxd/{__version__}"
        assert req.headers["Accept-Encoding"] == "identity"
        assert "authorization" not in req.headers

    def test_cookies_of_the_receiver_are_never_sent_back(self, tmp_path: Path) -> None:
        """A receiver's Set-Cookie (a load balancer's, say) is not kept: the next POST of
        the same deliverer carries no Cookie header."""
        rec = Recorder(httpx.Response(201, json={"receipt_id": "rcpt-1"},
                                      headers={"Set-Cookie": "lb=node-7; Path=/"}))
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        d = HttpDeliverer(http_cfg(), transport=httpx.MockTransport(rec))
        try:
            d.deliver(bundle, manifest)
            d.deliver(bundle, manifest)
        finally:
            d.close()
        assert len(rec.requests) == 2
        assert all("cookie" not in r.headers for r in rec.requests)

    def test_a_proxy_from_the_environment_carries_the_post(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """With HTTP_PROXY set (e.g. by the unit's Environment=), the POST goes to that
        proxy for the configured url, and the proxy's answer is the receipt."""
        seen: list[str] = []
        with _one_answer_server(lambda h: seen.append(h.path), "via-proxy") as port:
            for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTPS_PROXY",
                        "ALL_PROXY", "NO_PROXY"):
                monkeypatch.delenv(var, raising=False)
            monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
            bundle = make_bundle(tmp_path / "work")
            d = HttpDeliverer(http_cfg(url="http://rx.example:9/x"))  # not this machine
            try:
                receipt = d.deliver(bundle, build_manifest(bundle))
            finally:
                d.close()
        assert receipt.receipt_id == "via-proxy" and seen == ["http://rx.example:9/x"]

    def test_a_user_and_password_in_the_url_are_sent_as_basic_auth(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """url = "http://user:pass@host/…" (a receiver behind Basic auth): the POST carries
        Authorization: Basic …, as httpx's Client makes it from the url."""
        seen: list[str | None] = []
        with _one_answer_server(lambda h: seen.append(h.headers.get("Authorization")),
                                "basic") as port:
            for var in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                        "ALL_PROXY"):
                monkeypatch.delenv(var, raising=False)
            bundle = make_bundle(tmp_path / "work")
            url = f"http://alice:s3cret@127.0.0.1:{port}/bundles"
            d = HttpDeliverer(http_cfg(url=url))
            try:
                receipt = d.deliver(bundle, build_manifest(bundle))
            finally:
                d.close()
        assert receipt.receipt_id == "basic"
        assert seen == ["Basic YWxpY2U6czNjcmV0"]  # base64 of alice:s3cret

    def test_bearer_token(self, tmp_path: Path) -> None:
        """With `token` set, Authorization: Bearer TOKEN is sent."""
        _, rec, _, _ = send(tmp_path, http_cfg(token="s3cret"))
        assert rec.requests[0].headers["Authorization"] == "Bearer s3cret"

    def test_bearer_token_file(self, tmp_path: Path) -> None:
        """token_file is read with surrounding whitespace stripped."""
        tf = tmp_path / "token"
        tf.write_text("  from-file\n")
        _, rec, _, _ = send(tmp_path, http_cfg(token_file=tf))
        assert rec.requests[0].headers["Authorization"] == "Bearer from-file"

    def test_safe_filenames_fold(self, tmp_path: Path) -> None:
        """safe_filenames = true folds every part's filename (invoice too) to ASCII."""
        cfg = http_cfg(safe_filenames=True)
        bundle = make_bundle(tmp_path / "w", "Faktura Åsa.xml")
        rec = Recorder()
        d = HttpDeliverer(cfg, transport=httpx.MockTransport(rec))
        d.deliver(bundle, build_manifest(bundle))
        d.close()
        parts = parse_multipart(rec.requests[0])
        assert [p["filename"] for p in parts[1:]] == [
            "Faktura_Asa.xml", "Tidrapport_oktober_A.pdf", "contract.png", "spec.csv"]

    def test_safe_filenames_off_keeps_names(self, tmp_path: Path) -> None:
        """safe_filenames = false sends the names as they are on disk."""
        _, rec, _, _ = send(tmp_path, http_cfg(safe_filenames=False))
        parts = parse_multipart(rec.requests[0])
        assert [p["filename"] for p in parts[1:]] == [
            "batch-42.xml", "Tidrapport oktober Å.pdf", "contract.png", "spec.csv"]

    def test_content_types(self, tmp_path: Path) -> None:
        """Each attachment part's Content-Type is its detected content_type; a UBL invoice
        goes as application/xml."""
        _, rec, _, _ = send(tmp_path)
        parts = parse_multipart(rec.requests[0])
        assert parts[1]["content_type"] == "application/xml"
        assert [p["content_type"] for p in parts[2:]] == [
            "application/pdf", "image/png", "text/csv"]

    @pytest.mark.parametrize("exc", [httpx.ConnectError("refused"),
                                     httpx.ReadTimeout("slow"),
                                     httpx.ConnectTimeout("slow"),
                                     httpx.RemoteProtocolError("bad")])
    def test_network_errors_are_retryable(self, tmp_path: Path, exc: Exception) -> None:
        """Connection errors and timeouts become Retryable (no status), never escape raw."""
        def handler(request: httpx.Request) -> httpx.Response:
            raise exc

        with pytest.raises(Retryable) as info:
            send(tmp_path, handler=handler)
        assert info.value.status is None

    def test_status_goes_through_classify(self, tmp_path: Path) -> None:
        """A 422 answer to the POST is a Rejected with the body."""
        rec = Recorder(httpx.Response(422, text="key reused"))
        with pytest.raises(Rejected) as info:
            send(tmp_path, handler=rec)
        assert info.value.status == 422 and info.value.body == "key reused"

    def test_make_deliverer_http(self) -> None:
        """transport = "http" gives an HttpDeliverer."""
        d = make_deliverer(http_cfg())
        try:
            assert isinstance(d, HttpDeliverer)
        finally:
            d.close()


# ------------------------------------------------------------------ secrets

TOKEN = "Sec\\re't9"  # visible ASCII that repr() escapes, as h11 quotes a header
PASSWORD = "Pass/Word9"  # percent-encoded (Pass%2FWord9) in the url


def refusing(fault: type[httpx.TransportError]) -> Any:
    """A transport whose error quotes the header and the url as h11 and httpx do."""
    def refuse(request: httpx.Request) -> httpx.Response:
        header = request.headers["authorization"]
        raise fault(f"Illegal header value {header.encode()!r} for {request.url} "
                    f"(also {header})")
    return refuse


def test_a_proxy_refusing_to_connect_to_an_https_receiver_without_credentials_pauses(
        tmp_path: Path) -> None:
    """To an https:// receiver a proxy's 407 answers the CONNECT, so httpcore raises it
    instead of returning an answer: it pauses as a 407 answer does (classify), never a
    retry with back-off as if the network were at fault (review)."""
    def proxy(request: httpx.Request) -> httpx.Response:
        raise httpx.ProxyError("407 Proxy Authentication Required")
    d = HttpDeliverer(http_cfg(url="https://127.0.0.1:9/b"),
                      transport=httpx.MockTransport(proxy))
    b = make_bundle(tmp_path)
    with pytest.raises(Paused) as info:
        d.deliver(b, build_manifest(b))
    assert info.value.status == 407 and "HTTPS_PROXY" in str(info.value)


@contextlib.contextmanager
def _refusing_proxy(status: int) -> Iterator[int]:
    """A proxy on 127.0.0.1 that answers every CONNECT with `status` (a 502: it could
    not reach the host asked for); yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_CONNECT(self) -> None:  # noqa: N802 - the stdlib's name
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    with serving(Handler) as port:
        yield port


def _through_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proxy: str) -> str:
    """The error of one delivery to https://receiver.test through HTTPS_PROXY=`proxy`."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", proxy)
    d = HttpDeliverer(http_cfg(url="https://receiver.test/b", connect_timeout_seconds=2))
    b = make_bundle(tmp_path)
    try:
        with pytest.raises(Retryable) as info:
            d.deliver(b, build_manifest(b))
    finally:
        d.close()
    return str(info.value)


def test_a_proxy_that_does_not_answer_is_named_not_the_receiver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY names a proxy where nothing listens: the retried error says the
    proxy of the service's environment cannot be reached (its host and port, not its
    password), on the way to which receiver — "cannot reach the receiver" sent the admin
    to the operator for a fault of the company network."""
    with socket.socket() as unused:  # bound, then closed: nothing listens on it
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    said = _through_proxy(tmp_path, monkeypatch, f"http://bob:Pr0xyPass@127.0.0.1:{port}")
    assert said.startswith(f"cannot reach the proxy at 127.0.0.1:{port} (HTTPS_PROXY"), said
    assert "receiver at receiver.test:443" in said and "Pr0xyPass" not in said


def test_a_proxy_refusing_to_connect_to_the_receiver_is_told_from_the_receiver(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy answers CONNECT with 502: the retried error says the proxy did not open
    the way to the receiver, with its answer and what to check (not "cannot reach the
    receiver", as if the operator were down)."""
    with _refusing_proxy(502) as port:
        said = _through_proxy(tmp_path, monkeypatch, f"http://127.0.0.1:{port}")
    assert said.startswith(f"the proxy at 127.0.0.1:{port} (HTTPS_PROXY"), said
    assert "did not open the way to the receiver at receiver.test:443" in said
    assert "502" in said and "NO_PROXY" in said


def both_secrets(url: str) -> DeliveryConfig:
    """A token and a url with a password at once. Loading refuses that (one Authorization
    header per request), so it is made past validation here: the scrub is checked with
    both secrets in one text, as a defence that does not rely on the check."""
    return http_cfg(token=TOKEN).model_copy(update={"url": url})


def test_a_request_refused_before_it_left_pauses_without_quoting_anything(
        tmp_path: Path) -> None:
    """h11 refuses a header it cannot send and quotes it, token and all: that is our
    settings, not the network, so the bundle pauses with a message naming what to check,
    and nothing of the refused request is in it."""
    cfg = both_secrets(f"http://bob:{PASSWORD.replace('/', '%2F')}@127.0.0.1:9/b")
    d = HttpDeliverer(cfg, transport=httpx.MockTransport(refusing(httpx.LocalProtocolError)))
    b = make_bundle(tmp_path)
    with pytest.raises(Paused) as info:
        d.deliver(b, build_manifest(b))
    assert "token and url" in str(info.value) and "Sec" not in str(info.value)


@pytest.mark.parametrize("written", ["Pass%2FWord9", "Pass%2fWord9"])
def test_a_network_error_that_quotes_the_token_or_the_password_is_told_without_them(
        tmp_path: Path, written: str) -> None:
    """An error on the way to the receiver goes to the log, the journal, `status` and
    the status page: the token and the url's password are replaced by *** in every form
    they take in it (as given, as repr() quotes them, percent-encoded as written in the
    url, in either case)."""
    cfg = both_secrets(f"http://bob:{written}@127.0.0.1:9/b")
    d = HttpDeliverer(cfg, transport=httpx.MockTransport(refusing(httpx.ConnectError)))
    b = make_bundle(tmp_path)
    with pytest.raises(Retryable) as info:
        d.deliver(b, build_manifest(b))
    text = str(info.value)
    assert "Sec" not in text and "Word9" not in text
    assert "***" in text and "cannot reach the receiver" in text


def test_a_receiver_that_cannot_be_reached_is_named_by_host_and_port(tmp_path: Path) -> None:
    """A resolver's "Name or service not known" names no host: the error says which
    receiver could not be reached, its port filled in from the scheme where the url
    has none."""
    def unknown_name(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno -2] Name or service not known")
    for url, where in (("https://operator.invalid/b", "operator.invalid:443"),
                       ("http://127.0.0.1:9/b", "127.0.0.1:9")):
        d = HttpDeliverer(http_cfg(url=url), transport=httpx.MockTransport(unknown_name))
        b = make_bundle(tmp_path)
        with pytest.raises(Retryable) as info:
            d.deliver(b, build_manifest(b))
        assert str(info.value).startswith(f"cannot reach the receiver at {where}: ")


def test_a_network_error_without_a_message_is_told_by_its_kind(tmp_path: Path) -> None:
    """An error that says nothing (a reset read, as some TLS stacks raise it) still tells
    the admin what went wrong: its kind, not an empty reason after the colon."""
    def silent(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("")
    d = HttpDeliverer(http_cfg(url="http://127.0.0.1:9/b"), transport=httpx.MockTransport(silent))
    b = make_bundle(tmp_path)
    with pytest.raises(Retryable) as info:
        d.deliver(b, build_manifest(b))
    assert str(info.value).startswith("no valid answer from the receiver at 127.0.0.1:9: the "
                                      "connection broke while the request was sent or its "
                                      "answer awaited (ReadError); ")


def test_the_body_is_streamed_in_few_large_writes_with_the_same_bytes() -> None:
    """Part headers and boundaries are joined with the file data into writes of at
    least WRITE_SIZE (only the last is smaller): the same bytes, far fewer sends."""
    big = os.urandom(3 * WRITE_SIZE + 123)
    chunks = [b"--b\r\n", b"Content-Type: x\r\n", b"\r\n", big[:WRITE_SIZE], big[WRITE_SIZE:],
              b"\r\n", b"--b--\r\n"]
    writes = list(Coalesced(chunks))
    assert b"".join(writes) == b"".join(chunks)
    assert all(len(w) >= WRITE_SIZE for w in writes[:-1])
    assert len(writes) == 3 < len(chunks)


def test_a_bundle_of_more_attachments_than_free_file_descriptors_is_sent(
        tmp_path: Path, start_receiver: Any) -> None:
    """A sidecar of 300 attachments goes out, checked by the reference receiver, while the
    process may open only 64 more files: each file is open only while its part is sent.
    (Opened all at once, a sidecar of 20,000 files ran the daemon out of descriptors and
    the bundle was quarantined as unreadable.)"""
    receiver = start_receiver(process=True)  # the limit below is this process's alone
    root = tmp_path / "work"
    path, size, sha = put(root / "INV-9.xml", INVOICE_XML)
    atts = tuple(attachment(root, "INV-9", f"INV-9/page-{n:03d}.csv", f"a;b\n{n};2\n".encode(),
                            "text/csv") for n in range(300))
    bundle = Bundle(InvoiceFile(path, "INV-9.xml", size, sha, "ubl", ("INV-9",)),
                    root / "INV-9", atts, "e-invoice")
    manifest = build_manifest(bundle)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    d = HttpDeliverer(http_cfg(url=receiver.url))
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (len(os.listdir("/proc/self/fd")) + 64, hard))
        receipt = d.deliver(bundle, manifest)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        d.close()
    assert receipt.status == 201
    stored = receiver.store / manifest["bundle_id"]
    assert len(list(stored.rglob("page-*.csv"))) == 300


class _ReplacesOneFile(httpx.HTTPTransport):
    """The real transport to 127.0.0.1, which first lets `change` alter a file in the
    processing folder: what a person on the share (or a sync tool) may do between the
    claim's check and the part that sends it."""

    def __init__(self, change: Any) -> None:
        super().__init__()
        self.change = change

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.change()
        return super().handle_request(request)


@pytest.mark.parametrize("replacement", ["longer", "same size", "same size and time"])
def test_an_attachment_replaced_before_its_part_is_sent_is_not_sent_in_its_place(
        tmp_path: Path, start_receiver: Any, replacement: str) -> None:
    """Files are opened only when their part is sent, so one renamed over (or rewritten)
    after it was checked would go out as the checked file: with another size the body broke
    its Content-Length (h11's error paused all delivery with "check [delivery] token and
    url"), with the same size the operator got other bytes than the manifest's hash (also
    with its time put back, which its owner may do). It is
    an InputError naming the file (the bundle is quarantined as processing-damaged), the
    receiver accepts nothing, and no descriptor stays open."""
    receiver = start_receiver(process=True)  # its sockets are not this process's descriptors
    bundle = make_bundle(tmp_path / "work")
    att = bundle.attachments[1]  # batch-42/INV-2/spec.csv

    def replace_it() -> None:
        other = att.path.with_name("other.csv")
        data = b"a;b\n1;2\n3;4\n" if replacement == "longer" else b"a;b\n9;9\n"
        other.write_bytes(data)
        later = att.path.stat().st_mtime_ns + 2_000_000_000
        if replacement == "same size and time":
            # Its owner may put the time back (os.utime): only the bytes tell.
            later = att.path.stat().st_mtime_ns
        os.utime(other, ns=(later, later))
        os.replace(other, att.path)

    d = HttpDeliverer(http_cfg(url=receiver.url), transport=_ReplacesOneFile(replace_it))
    open_before = len(os.listdir("/proc/self/fd"))
    try:
        with pytest.raises(InputError) as info:
            d.deliver(bundle, build_manifest(bundle))
    finally:
        d.close()
    assert info.value.file == att.rel
    assert "changed or replaced" in info.value.message
    assert receiver.accepted() == []
    assert len(os.listdir("/proc/self/fd")) <= open_before


def test_a_part_whose_folder_became_a_link_is_never_sent_from_outside(
        tmp_path: Path, start_receiver: Any) -> None:
    """The invoice's folder in the work folder swapped, between the part's check and its
    sending, for a link to an outside folder holding a file of the same name, size and
    time (opened by its path, it would pass the part's own check and go out in its
    place): the file is opened from the work folder with no link followed on the way,
    so it is an InputError naming the file, the link and the fix (the bundle is
    quarantined as processing-damaged), the outside file is never opened, and the
    receiver accepts nothing."""
    receiver = start_receiver(process=True)
    bundle = make_bundle(tmp_path / "work")
    att = bundle.attachments[1]  # batch-42/INV-2/spec.csv
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "spec.csv").write_bytes(b"a;b\n9;9\n")  # as long as the real one
    st = att.path.stat()
    os.utime(outside / "spec.csv", ns=(st.st_atime_ns, st.st_mtime_ns))
    d = HttpDeliverer(http_cfg(url=receiver.url), transport=_ReplacesOneFile(
        lambda: swap_for_link(att.path.parent, outside)))
    try:
        with opened_in(outside) as opened, pytest.raises(InputError) as info:
            d.deliver(bundle, build_manifest(bundle))
    finally:
        d.close()
    assert opened == []
    assert (info.value.code, info.value.file) == ("symlink", att.rel)
    assert "lies in batch-42/INV-2, which is a symbolic link" in info.value.message
    assert receiver.accepted() == []


def test_an_answer_that_breaks_off_after_its_status_line_is_retried_as_such(
        tmp_path: Path) -> None:
    """A receiver (or a proxy) that sends "201 Created" and closes the connection in the
    middle of the body: the answer is not known whole, so the attempt is retried (the
    same Idempotency-Key brings the first answer back whole). It was said as "cannot
    reach the receiver", which sent the admin looking at the network; it now says the
    answer broke off, with its status."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(201)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"receipt_id": "r-')
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *args: Any) -> None:
            pass

    bundle = make_bundle(tmp_path / "work")
    with serving(Handler) as port:
        d = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{port}/bundles"))
        try:
            with pytest.raises(Retryable) as info:
                d.deliver(bundle, build_manifest(bundle))
        finally:
            d.close()
    assert str(info.value).startswith("the receiver's answer (HTTP 201) broke off before its "
                                      "end (")
    assert "same Idempotency-Key" in str(info.value) and "cannot reach" not in str(info.value)



def test_a_2xx_answered_before_the_body_was_all_written_is_no_receipt(tmp_path: Path) -> None:
    """The receiver answers 201 after the request's head and closes the connection while
    8 MB of the body are still to come: it never had the bundle whole, so the 201 is no
    receipt (it filed the bundle in sent/); the attempt is retried with the same key."""
    from delivery.test_answer_deadline import RawReceiver

    def answer_at_once(rx: Any, conn: socket.socket, length: int, got: bytes) -> None:
        conn.sendall(_http("201 Created", "", b'{"receipt_id": "R-early"}'))
        conn.close()
        raise OSError("closed")  # no answer after the body: RawReceiver moves on

    bundle = big_bundle(tmp_path / "work")
    with RawReceiver(lambda rx, conn, n: None, take_body=answer_at_once) as rx:
        d = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{rx.port}/bundles"))
        try:
            with pytest.raises(Retryable) as info:
                d.deliver(bundle, build_manifest(bundle))
        finally:
            d.close()
    assert "answered HTTP 201 before it had the whole request" in str(info.value)
    assert "same Idempotency-Key" in str(info.value)


def _refused_as_answered(tmp_path: Path, journal: Any, body: bytes) -> tuple[str, Any]:
    """A bundle posted to a receiver that answers 201 with `body`, by a deliverer bound to
    `journal`: the Retryable's text (pytest fails if it is taken as a receipt) and the
    bundle's manifest."""
    from delivery.test_answer_deadline import RawReceiver

    bundle = make_bundle(tmp_path / "work")
    manifest = build_manifest(bundle)
    with RawReceiver(lambda rx, conn, n: conn.sendall(
            _http("201 Created", "Content-Type: application/json\r\n", body))) as rx:
        d = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{rx.port}/bundles"))
        d.bind_journal(journal)
        try:
            with pytest.raises(Retryable) as info:
                d.deliver(bundle, manifest)
        finally:
            d.close()
    return str(info.value), manifest


class TestAReceiptNamingAnotherId:
    """A 2xx whose JSON names an id of our form that is not the request's (docs/protocol.md,
    section 5): another bundle's answer only when the journal knows that id as another
    bundle of this daemon; otherwise the receiver's own id, and a receipt."""

    def test_a_receiver_naming_its_own_sha256_as_bundle_id_gives_a_receipt(
            self, tmp_path: Path, start_receiver: Any, journal: Any) -> None:
        """The reference receiver with --own-ids answers 201 with the SHA-256 of the
        manifest it stored as `bundle_id`: 64 hex digits, none of ours. The deliverer
        (the journal bound, as finish.py binds it) takes it as this bundle's receipt;
        it was retried, and every later attempt got the same 200, for ever."""
        rx = start_receiver("--own-ids")
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        d = HttpDeliverer(http_cfg(url=rx.url))
        d.bind_journal(journal)
        try:
            receipt = d.deliver(bundle, manifest)
        finally:
            d.close()
        theirs = receipt.body["bundle_id"]
        assert receipt.status == 201 and receipt.receipt_id.startswith("rcpt-")
        assert re.fullmatch("[0-9a-f]{64}", theirs) and theirs != manifest["bundle_id"]
        assert [r["status"] for r in rx.requests()] == [201]

    def test_an_answer_naming_a_bundle_this_daemon_sent_is_retried_naming_it(
            self, tmp_path: Path, journal: Any) -> None:
        """A receiver (or a proxy) that mixed its answers up gives this request the 201
        of a bundle this daemon sent before, naming that bundle's id: no receipt, asked
        again with the same key; the error names both ids and whose the named one is,
        for the admin to see the receiver answers for the wrong request."""
        other = "cd" * 32
        row = journal.create("INV-7.xml", "delivering", bundle_id=other)
        journal.transition(row, "sent")
        body = json.dumps({"receipt_id": "R-7", "bundle_id": other}).encode()
        refused, manifest = _refused_as_answered(tmp_path, journal, body)
        assert (f'names bundle_id "{other}", not "{manifest["bundle_id"]}": that is the id '
                "of INV-7.xml (sent), another bundle of this outboxd" in refused)

    def test_an_answer_naming_a_bundle_posted_then_quarantined_is_no_receipt(
            self, tmp_path: Path, journal: Any) -> None:
        """A bundle this daemon posted, then quarantined (a later attempt was rejected),
        left the states `sent_before` counts; an answer of its request, given to this one
        by a receiver or proxy that mixed them up, still names a request of ours. Taken
        for this bundle's receipt, this bundle went to sent/ though the receiver never
        had it; it is asked again, the error naming the quarantined bundle."""
        other = "ab" * 32
        row = journal.create("INV-8.xml", "delivering", bundle_id=other, attempts=2)
        journal.transition(row, "quarantined")
        body = json.dumps({"receipt_id": "R-8", "bundle_id": other}).encode()
        refused, _ = _refused_as_answered(tmp_path, journal, body)
        assert "that is the id of INV-8.xml (quarantined)" in refused


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("userinfo", ["", "user:pass-word-123@"])
def test_a_redirect_is_never_followed_with_the_token_or_the_bundle(
        tmp_path: Path, status: int, userinfo: str) -> None:
    """A receiver that redirects the POST, to another port of the same host or to the
    same one: nothing goes there (neither the Authorization header nor the invoice), by
    the direct transport or the Client that adds Basic auth; the attempt pauses naming
    the Location, as a configuration problem."""
    from delivery.test_answer_deadline import RawReceiver

    with RawReceiver(lambda rx, conn, n: conn.sendall(_http("201 Created", "", b"{}"))) \
            as elsewhere:
        target = f"http://127.0.0.1:{elsewhere.port}/stolen"

        def redirect(rx: Any, conn: socket.socket, n: int) -> None:
            conn.sendall(_http(f"{status} Moved", f"Location: {target}\r\n", b""))

        with RawReceiver(redirect) as rx:
            cfg = http_cfg(url=f"http://{userinfo}127.0.0.1:{rx.port}/bundles",
                           token=None if userinfo else "tok-never-elsewhere")
            with pytest.raises(Paused) as info:
                send(tmp_path, cfg, real=True)
        assert elsewhere.connections == 0
    assert len(rx.heads) == 1
    assert f"HTTP {status} redirect to {target}" in str(info.value)


def test_a_deliverer_to_an_http_receiver_loads_no_ca_bundle_one_to_https_does_at_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing goes to an http:// receiver over TLS (no redirect is followed), so its
    deliverer loads no CA bundle (~40 ms of every start and reload, in nearly every test
    daemon); one to an https:// receiver loads it when it is made, as before: a CA bundle
    that does not load still stops the start, not the first delivery."""
    loaded: list[object] = []
    real = ssl.SSLContext.load_verify_locations

    def load(self: ssl.SSLContext, *args: Any, **kw: Any) -> None:
        loaded.append(args or kw)
        real(self, *args, **kw)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", load)
    HttpDeliverer(http_cfg(url="http://127.0.0.1:9/x")).close()
    assert loaded == []
    HttpDeliverer(http_cfg(url="https://127.0.0.1:9/x")).close()
    assert len(loaded) == 1


def _reset_then_taken(tmp_path: Path, upload: bool = True
                      ) -> tuple[str, list[bytes], list[str], Receipt]:
    """A bundle posted twice, as a retry posts it, to a receiver that resets the first
    connection (RST, not an orderly close) and takes the second POST: halfway through
    the upload, or (`upload` False) once it has read it whole, before any answer. The
    first attempt's error, what the receiver got of each body, each request's head, and
    the second attempt's receipt."""
    from rawreceiver import RawReceiver

    bodies: list[bytes] = []

    def take(rx: RawReceiver, conn: socket.socket, length: int, got: bytes) -> None:
        first = not bodies
        while len(got) < (length // 2 if first and upload else length):
            chunk = conn.recv(65536)
            if not chunk:
                raise OSError("the request ended early")
            got += chunk
        bodies.append(got)
        if first:
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
            conn.close()
            raise OSError("reset")

    bundle = big_bundle(tmp_path / "work", 1 << 20)
    manifest = build_manifest(bundle, created_at="2026-12-06T19:00:00Z")
    with RawReceiver(lambda rx, conn, n: conn.sendall(
            _http("201 Created", "", b'{"receipt_id": "R-2"}')), take_body=take) as rx:
        d = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{rx.port}/bundles"))
        try:
            with pytest.raises(Retryable) as info:
                d.deliver(bundle, manifest)
            receipt = d.deliver(bundle, manifest)
        finally:
            d.close()
        heads = list(rx.heads)
    return str(info.value), bodies, heads, receipt


def test_a_post_again_after_a_reset_in_its_upload_carries_the_same_key_and_bytes(
        tmp_path: Path) -> None:
    """The receiver resets the connection in the middle of the upload; the retry carries
    the same Idempotency-Key and, byte for byte, the same body (the multipart boundary
    included). httpx drew a new boundary each time: a receiver fingerprinting a key's
    request by the hash of its body (as the Idempotency-Key draft allows) answered the
    retry 422, key reused with another payload, and the bundle was quarantined."""
    _, bodies, heads, receipt = _reset_then_taken(tmp_path)
    assert receipt.receipt_id == "R-2"
    first, second = bodies
    assert len(first) < len(second) and second.startswith(first)
    keys = [re.search(r"(?im)^idempotency-key: *(\S+)", h).group(1) for h in heads]
    types = [re.search(r"(?im)^content-type: *(.+)$", h).group(1) for h in heads]
    assert len(heads) == 2 and keys[0] == keys[1] and types[0] == types[1]


def test_a_reset_before_the_answer_is_said_as_a_broken_connection_not_an_unreachable_receiver(
        tmp_path: Path) -> None:
    """The receiver reads the whole request and resets the connection instead of
    answering: it was reached and may have stored the bundle. It was said as "cannot
    reach the receiver" (the clerks' page: the operator's server does not answer), which
    sent the admin to the network; it says the connection broke, and that the bundle is
    asked for again with the same Idempotency-Key, which the receiver then takes."""
    said, _, _, receipt = _reset_then_taken(tmp_path, upload=False)
    assert said.startswith("no valid answer from the receiver at 127.0.0.1:"), said
    assert "reset" in said and "same Idempotency-Key" in said and "cannot reach" not in said
    assert receipt.receipt_id == "R-2"


def test_a_real_proxy_of_the_environment_that_wants_credentials_to_connect_pauses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTPS_PROXY names a proxy on 127.0.0.1 that answers the CONNECT for an https://
    receiver with 407: deliveries pause with the 407 and what to check (the proxy's
    credentials in the environment), never a retry with back-off as if the proxy could
    not reach the receiver."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    with _refusing_proxy(407) as port:
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
        d = HttpDeliverer(http_cfg(url="https://receiver.test/b", connect_timeout_seconds=2))
        b = make_bundle(tmp_path)
        try:
            with pytest.raises(Paused) as info:
                d.deliver(b, build_manifest(b))
        finally:
            d.close()
    assert not isinstance(info.value, Retryable)
    assert info.value.status == 407 and "credentials" in str(info.value)
    assert "HTTPS_PROXY" in str(info.value)


class _Closing:
    """A deliverer whose close() is recorded, and raises an error quoting the token."""

    def __init__(self, fails: bool = False) -> None:
        self.closed = 0
        self.fails = fails

    def deliver(self, bundle: Bundle, manifest: dict[str, Any]) -> Receipt:
        raise AssertionError("not sent in this test")

    def close(self) -> None:
        self.closed += 1
        if self.fails:
            raise RuntimeError(f"connection pool still in use, Bearer {TOKEN}")

    def scrub(self, text: str) -> str:
        return text.replace(TOKEN, "***")


def test_a_deliverer_a_reload_replaces_mid_attempt_is_closed_once_the_attempt_ends(
        ) -> None:
    """A reload replaces the deliverer while an attempt uses it: the old one is closed
    only when that attempt gives it back (closing it under the POST broke it, and the
    receiver, which had the bundle, got it again), and once."""
    old, new = _Closing(), _Closing()
    shared = Shared(old)
    taken = shared.take()
    shared.replace(new)
    assert shared.take() is new and old.closed == 0
    shared.give_back(taken)
    assert old.closed == 1 and new.closed == 0


def test_a_replaced_deliverer_that_fails_to_close_is_one_warning_without_the_token(
        ) -> None:
    """The replaced deliverer's close() raising (its error quoting the token) when the
    last attempt with it ends: one warning, the token taken out by the deliverer's
    own scrub, and the attempt's outcome stands (give_back returns)."""
    old = _Closing(fails=True)
    shared = Shared(old)
    taken = shared.take()
    shared.replace(_Closing())
    with capture_logs() as logs:
        shared.give_back(taken)
    [event] = logs
    assert event["event"] == "the replaced deliverer did not close cleanly"
    assert event["log_level"] == "warning" and "exc_info" not in event
    assert TOKEN not in event["error"] and "Bearer ***" in event["error"]
    assert event["error"].startswith("RuntimeError: ")
