"""Delivery (docs/protocol.md): the response table, the multipart request, backoff, the
directory transport.

httpx.MockTransport is used here only, to pin down classification and request shape; the
end-to-end tests talk to the real receiver.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import html
import io
import json
import os
import random
import re
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from helpers import raised, without_blocking
from pypdf import PdfWriter

import daemon.tls
from daemon import __version__
from daemon.answers import BODY_LIMIT, Receipt, classify, parse_retry_after
from daemon.bundle import Attachment, Bundle, Conversion, InvoiceFile
from daemon.config import DeliveryConfig
from daemon.deliver import (
    WRITE_SIZE,
    Coalesced,
    DirectoryDeliverer,
    HttpDeliverer,
    backoff,
    make_deliverer,
)
from daemon.errors import ConfigError, Paused, Rejected, Retryable
from daemon.manifest import build_manifest, safe_filename
from daemon.tls import tls_verify

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

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_port
    finally:
        server.shutdown()
        server.server_close()


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
    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        listener.close()


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


class TestAnswersThatMisbehave:
    """Answers a receiver should not give: each ends as an outcome the status line
    decides, never as an exception that leaves the bundle stuck (network audit)."""

    def test_a_2xx_whose_body_does_not_decode_is_still_a_receipt(self, tmp_path: Path) -> None:
        """201 with a false Content-Encoding: gzip. The receiver has the bundle: a receipt,
        with a body that says the answer could not be decoded."""
        answer = _http("201 Created", "Content-Encoding: gzip\r\n", b"notgzip!!!")
        with _raw_server(lambda c: c.sendall(answer)) as port:
            receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b"),
                                    real=True)
        assert receipt.status == 201 and receipt.receipt_id is None
        assert "could not be decoded" in receipt.body

    @pytest.mark.parametrize("status", [201, 400])
    def test_json_nested_beyond_the_parser_is_kept_as_text(self, tmp_path: Path,
                                                           status: int) -> None:
        """JSON nested 100,000 deep (Python's parser gives up with RecursionError): a 201
        is a receipt, a 400 a rejection, each with the text cut to BODY_LIMIT."""
        body = b"[" * 100_000
        answer = _http(f"{status} X", "Content-Type: application/json\r\n", body)
        with _raw_server(lambda c: c.sendall(answer)) as port:
            cfg = http_cfg(url=f"http://127.0.0.1:{port}/b")
            if status == 201:
                receipt, _, _, _ = send(tmp_path, cfg, real=True)
                assert receipt.body == "[" * BODY_LIMIT
            else:
                with pytest.raises(Rejected) as info:
                    send(tmp_path, cfg, real=True)
                assert info.value.body == "[" * BODY_LIMIT

    def test_a_lone_surrogate_in_a_json_answer_becomes_a_replacement_character(
            self, tmp_path: Path) -> None:
        """{"receipt_id": "\\ud800"} decodes to text no UTF-8 file or database holds:
        it is kept as U+FFFD, with a token set (whose scrub writes the JSON again)."""
        answer = _http("201 Created", "Content-Type: application/json\r\n",
                       b'{"receipt_id": "R-\\ud800", "note": "x\\udfff"}')
        with _raw_server(lambda c: c.sendall(answer)) as port:
            receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b",
                                                       token="s3cret-token"), real=True)
        assert receipt.receipt_id == "R-\ufffd" and receipt.body["note"] == "x\ufffd"
        json.dumps(receipt.as_dict(), ensure_ascii=False).encode("utf-8")  # storable

    def test_a_lone_surrogate_in_a_utf16_answer_is_replaced_too(self) -> None:
        """The same escape in an answer sent as UTF-16 (its bytes spread out by NULs):
        still U+FFFD, not text the journal cannot store (the reread found the first
        check looked for the escape's UTF-8 bytes only)."""
        raw = '{"receipt_id": "R-\\ud800"}'.encode("utf-16")
        got = classify(response(201, raw))
        assert got.receipt_id == "R-\ufffd"
        json.dumps(got.as_dict(), ensure_ascii=False).encode("utf-8")  # storable

    def test_an_answer_that_drips_ends_within_the_timeout(self, tmp_path: Path) -> None:
        """201 whose body comes a byte every 0.3 s without end: httpx's timeouts are per
        read, so only the answer's own deadline (timeout_seconds = 1) ends it, about a
        second later. The status decides: the receiver said 201, so it is a receipt,
        whose body says it was cut — not a retry, which would upload it again."""
        def drip(conn: socket.socket) -> None:
            conn.sendall(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n")
            while True:
                conn.sendall(b"1\r\nx\r\n")
                threading.Event().wait(0.3)  # the receiver's pace, not a synchronisation
        with _raw_server(drip) as port:
            started = time.monotonic()
            receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b",
                                                       timeout_seconds=1), real=True)
        assert receipt.status == 201 and "did not end within 1 s" in receipt.body
        assert time.monotonic() - started < 5

    def test_a_huge_2xx_body_is_read_to_a_limit_and_kept_cut(self, tmp_path: Path) -> None:
        """201 with 5 MB of JSON: at most ANSWER_LIMIT is read, and the receipt keeps the
        first BODY_LIMIT characters as text (a 31 MB receipt.json and journal row before)."""
        body = json.dumps({"receipt_id": "R-1", "pad": "x" * 5_000_000}).encode()
        answer = _http("201 Created", "Content-Type: application/json\r\n", body)
        with _raw_server(lambda c: c.sendall(answer)) as port:
            receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b"),
                                    real=True)
        assert receipt.status == 201 and isinstance(receipt.body, str)
        assert len(receipt.body) == BODY_LIMIT and receipt.body.startswith('{"receipt_id"')

    def test_a_receipt_id_that_is_no_string_or_number_is_none(self) -> None:
        """An object, a list or true as receipt_id: no receipt id anyone could quote.
        NaN or 1e999 anywhere is not JSON (Python's parser takes them): the body is kept
        as text, so that receipt.json stays strict JSON."""
        for odd in ({"a": 1}, [1], True):
            assert classify(response(201, json_body={"receipt_id": odd})).receipt_id is None
        assert classify(response(201, json_body={"receipt_id": 7})).receipt_id == "7"
        for body in (b'{"receipt_id": "R-1", "n": NaN}', b'{"receipt_id": "R-1", "n": 1e999}'):
            kept = classify(response(201, body))
            assert kept.receipt_id is None and kept.body == body.decode()

    def test_a_receipt_with_a_byte_order_mark_or_in_utf16_keeps_its_id(self) -> None:
        """JSON may come with a UTF-8 byte-order mark, or in UTF-16: read from the bytes
        as JSON allows, not through a charset guess (the first version of the bounded
        read lost such receipt ids)."""
        data = json.dumps({"receipt_id": "R-Å"})
        for raw in (b"\xef\xbb\xbf" + data.encode(), data.encode("utf-16"),
                    data.encode("utf-8")):
            got = classify(response(201, raw, {"content-type":
                                               "application/json; charset=iso-8859-1"}))
            assert got.receipt_id == "R-Å", raw[:4]


# ------------------------------------------------------------------ classify

class TestClassify:
    @pytest.mark.parametrize("status", [200, 201])
    def test_2xx_json_receipt_id(self, status: int) -> None:
        """2xx is sent; a JSON body's receipt_id is kept."""
        r = classify(response(status, json_body={"receipt_id": "R-77", "x": 1}))
        assert r == Receipt(status, {"receipt_id": "R-77", "x": 1}, "R-77")

    @pytest.mark.parametrize("status", [301, 302, 307, 308])
    def test_redirect_pauses_instead_of_quarantining(self, status: int) -> None:
        """A redirect is a wrong [delivery] url (ours), not a bad bundle: Paused, naming
        where it points, never Rejected."""
        with pytest.raises(Paused) as info:
            classify(response(status, headers={"Location": "https://operator.example/x"}))
        assert "https://operator.example/x" in str(info.value)

    def test_2xx_numeric_receipt_id_as_text(self) -> None:
        """A numeric receipt_id is kept as text."""
        assert classify(response(201, json_body={"receipt_id": 42})).receipt_id == "42"

    def test_2xx_non_json_has_no_receipt_id(self) -> None:
        """A 2xx with a non-JSON body is still sent, without receipt_id; the body is kept."""
        r = classify(response(200, b"OK thanks", {"content-type": "text/plain"}))
        assert r.status == 200 and r.receipt_id is None and r.body == "OK thanks"

    def test_2xx_json_without_receipt_id(self) -> None:
        """A JSON 2xx body that is not an object, or lacks receipt_id, gives none."""
        assert classify(response(201, json_body=["a"])).receipt_id is None
        assert classify(response(204)).receipt_id is None

    @pytest.mark.parametrize("status", [401, 403, 404])
    def test_config_problems_pause(self, status: int) -> None:
        """401/403/404 pause deliveries (configuration problem), never reject."""
        with pytest.raises(Paused) as info:
            classify(response(status, b"nope"))
        assert info.value.status == status and not isinstance(info.value, Rejected)

    def test_a_proxy_that_wants_credentials_pauses_naming_the_proxy(self) -> None:
        """407 comes from a proxy in between, not the receiver: the bundle is not at
        fault, so deliveries pause (never quarantine) and the message names what to fix."""
        with pytest.raises(Paused) as info:
            classify(response(407, b"Proxy Authentication Required"))
        assert info.value.status == 407 and "HTTPS_PROXY" in str(info.value)

    @pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504])
    def test_retryable(self, status: int) -> None:
        """408/409/425/429/5xx are retried."""
        with pytest.raises(Retryable) as info:
            classify(response(status, b"busy"))
        assert info.value.status == status and info.value.retry_after is None

    def test_retry_after_seconds(self) -> None:
        """Retry-After in seconds is passed on."""
        with pytest.raises(Retryable) as info:
            classify(response(429, headers={"Retry-After": "120"}))
        assert info.value.retry_after == 120.0

    def test_retry_after_http_date(self) -> None:
        """Retry-After as an HTTP date becomes the seconds until then."""
        when = datetime.now(UTC) + timedelta(seconds=90)
        with pytest.raises(Retryable) as info:
            classify(response(503, headers={"Retry-After": email.utils.format_datetime(
                when, usegmt=True)}))
        assert info.value.retry_after is not None and 80 <= info.value.retry_after <= 91

    def test_retry_after_garbage_and_past(self) -> None:
        """An unparsable Retry-After is ignored; one in the past is 0. Only digits are
        seconds (RFC 9110): "1_000", "inf", "nan", "-5" or other scripts' digits, which
        Python's float() takes, are ignored too."""
        assert parse_retry_after("soon-ish") is None
        assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
        for odd in ("-5", "1_000", "inf", "nan", "1e3", "\u0661\u0662"):
            assert parse_retry_after(odd) is None, odd
        assert parse_retry_after(" 120 ") == 120.0

    @pytest.mark.parametrize("status", [400, 413, 415, 422])
    def test_other_4xx_rejected_with_truncated_body(self, status: int) -> None:
        """Other 4xx reject the bundle with the status and the first 2,000 characters."""
        body = "é" + "x" * 5000
        with pytest.raises(Rejected) as info:
            classify(response(status, body.encode("utf-8"),
                              {"content-type": "text/plain; charset=utf-8"}))
        assert info.value.status == status
        assert info.value.body == body[:BODY_LIMIT] and len(info.value.body) == 2000


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
            d = HttpDeliverer(http_cfg())
            try:
                receipt = d.deliver(bundle, build_manifest(bundle))
            finally:
                d.close()
        assert receipt.receipt_id == "via-proxy" and seen == [URL]

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


# ------------------------------------------------------------------ backoff

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


class TestBackoff:
    @pytest.mark.parametrize("attempt", [1, 2, 3, 5, 9, 12, 40])
    def test_within_full_jitter_bounds(self, attempt: int) -> None:
        """Delay is in [0, min(cap, base * 2**(n-1))]."""
        rng = random.Random(attempt)
        ceiling = min(300.0, 1.0 * 2 ** (attempt - 1))
        delays = [backoff(attempt, 1.0, 300.0, rng=rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling * 0.5  # jitter really spans the range

    def test_jitter_is_random(self) -> None:
        """Full jitter: not the same delay every time."""
        rng = random.Random(7)
        assert len({backoff(4, 1.0, 300.0, rng=rng) for _ in range(20)}) > 1

    def test_seeded_is_reproducible(self) -> None:
        """Same seed, same delays."""
        a = [backoff(n, 0.5, 10, rng=random.Random(3)) for n in range(1, 8)]
        b = [backoff(n, 0.5, 10, rng=random.Random(3)) for n in range(1, 8)]
        assert a == b

    def test_retry_after_is_a_floor(self) -> None:
        """Retry-After is honoured as the least delay."""
        rng = random.Random(1)
        assert all(backoff(1, 1.0, 300.0, retry_after=30, rng=rng) >= 30 for _ in range(50))

    def test_retry_after_is_a_floor_even_above_retry_max(self) -> None:
        """A receiver's "come back in an hour" is honoured even above retry_max_seconds
        (docs/protocol.md, Answers): the next attempt waits the whole hour."""
        assert backoff(1, 1.0, 300.0, retry_after=3600, rng=random.Random(1)) == 3600.0

    def test_retry_after_over_a_day_counts_as_a_day(self) -> None:
        """Retry-After values over 24 h wait 24 h, not longer."""
        assert backoff(1, 1.0, 300.0, retry_after=10 * 86400, rng=random.Random(1)) == 86400.0

    def test_endless_retries_do_not_overflow(self) -> None:
        """Retries go on without limit: attempt 5000 still gives a delay within the cap."""
        rng = random.Random(5)
        assert 0 <= backoff(5000, 1.0, 300.0, rng=rng) <= 300.0
        assert 0 <= backoff(10**6, 0.05, 0.5, retry_after=0.1, rng=rng) <= 0.5


# ------------------------------------------------------------------ directory transport

class TestDirectoryDeliverer:
    def test_writes_bundle_folder(self, tmp_path: Path) -> None:
        """TARGET/BUNDLEID/ holds manifest.json, the invoice file and
        attachments/INVOICE_ID/NAME with the original bytes; no .tmp-* left.
        (safe_filenames off: NAME is the name on disk.)"""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle, safe_filenames=False)
        target = tmp_path / "target"
        target.mkdir()
        receipt = DirectoryDeliverer(target).deliver(bundle, manifest)
        bid = manifest["bundle_id"]
        final = target / bid
        assert receipt.status == 201 and receipt.body["delivered_to"] == str(final)
        assert os.listdir(target) == [bid]
        assert json.loads((final / "manifest.json").read_text("utf-8")) == manifest
        assert (final / "batch-42.xml").read_bytes() == INVOICE_XML
        files = sorted(str(p.relative_to(final)) for p in final.rglob("*") if p.is_file())
        assert files == ["attachments/INV-1/Tidrapport oktober Å.pdf",
                         "attachments/INV-1/contract.png", "attachments/INV-2/spec.csv",
                         "batch-42.xml", "manifest.json"]
        for a in bundle.attachments:
            assert (final / "attachments" / a.invoice_id / a.original_name).read_bytes() == \
                a.path.read_bytes()

    def test_every_file_lies_under_its_manifest_name(self, tmp_path: Path) -> None:
        """With safe_filenames (the default) the files are written under the manifest's
        `name`, folded as over HTTP, and a converted image under its PDF's name: a reader
        finds every file from the manifest alone."""
        bundle = make_bundle(tmp_path / "work", invoice_name="Faktura Å.xml")
        pdf_path, size, sha = put(tmp_path / "work" / "Skärm.pdf", pdf(1))
        cyrillic = attachment(tmp_path / "work", "INV-2", "batch-42/INV-2/Акт.pdf", pdf(1),
                              "application/pdf")
        shot = attachment(tmp_path / "work", "INV-2", "batch-42/INV-2/Skärm.png",
                          b"\x89PNG\r\n\x1a\nfake", "image/png")
        shot = replace(shot, converted=Conversion("Skärm.pdf", size, sha, 1, "image/png",
                                                  pdf_path))
        bundle = replace(bundle, attachments=(*bundle.attachments, shot, cyrillic))
        manifest = build_manifest(bundle)
        target = tmp_path / "target"
        target.mkdir()
        DirectoryDeliverer(target).deliver(bundle, manifest)
        final = target / manifest["bundle_id"]
        assert (final / manifest["invoice_file"]["name"]).read_bytes() == INVOICE_XML
        assert manifest["invoice_file"]["name"] == "Faktura_A.xml"
        written = {str(p.relative_to(final)) for p in final.rglob("*") if p.is_file()}
        named = {f"attachments/{inv['id']}/{e['name']}" for inv in manifest["invoices"]
                 for e in inv["attachments"]}
        assert written == named | {"manifest.json", "Faktura_A.xml"}
        assert "attachments/INV-2/Skarm.pdf" in named
        assert f"attachments/INV-2/{safe_filename('Акт.pdf')}" in named
        assert (final / "attachments/INV-2/Skarm.pdf").read_bytes() == pdf_path.read_bytes()
        assert (final / "attachments/INV-1/Tidrapport_oktober_A.pdf").read_bytes() == \
            bundle.attachments[0].path.read_bytes()

    def test_second_delivery_is_already_delivered(self, tmp_path: Path) -> None:
        """An existing TARGET/BUNDLEID/ means already delivered: reported, not rewritten."""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        target = tmp_path / "target"
        target.mkdir()
        d = DirectoryDeliverer(target)
        d.deliver(bundle, manifest)
        final = target / manifest["bundle_id"]
        (final / "manifest.json").write_text("picked up by the agent")
        again = d.deliver(bundle, build_manifest(bundle, created_at="2030-01-01T00:00:00Z"))
        assert again.body.get("already_delivered") is True and 200 <= again.status < 300
        assert (final / "manifest.json").read_text() == "picked up by the agent"
        assert os.listdir(target) == [manifest["bundle_id"]]

    def test_stale_tmp_folder_is_replaced(self, tmp_path: Path) -> None:
        """A .tmp-BUNDLEID left by a crash is rebuilt, not shipped as it was."""
        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        target = tmp_path / "target"
        stale = target / f".tmp-{manifest['bundle_id']}"
        stale.mkdir(parents=True)
        (stale / "junk").write_bytes(b"junk")
        DirectoryDeliverer(target).deliver(bundle, manifest)
        final = target / manifest["bundle_id"]
        assert not (final / "junk").exists() and os.listdir(target) == [manifest["bundle_id"]]

    def test_unwritable_target_is_retryable(self, tmp_path: Path) -> None:
        """A target that cannot be written (here: a file in the way) is Retryable."""
        bundle = make_bundle(tmp_path / "work")
        (tmp_path / "target").write_bytes(b"not a folder")
        with pytest.raises(Retryable):
            DirectoryDeliverer(tmp_path / "target").deliver(bundle, build_manifest(bundle))

    def test_make_deliverer_directory_creates_target(self, tmp_path: Path) -> None:
        """transport = "directory" gives a DirectoryDeliverer and creates the target."""
        d = make_deliverer(DeliveryConfig(transport="directory", target=tmp_path / "t"))
        assert isinstance(d, DirectoryDeliverer) and (tmp_path / "t").is_dir()


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


class TestAnswersThatEchoSecrets:
    """A receiver that echoes our request headers in its answer: neither the token nor
    the url's Basic credentials reach the journal, the papers or the status page."""

    @staticmethod
    def echo(status: int, auth: str | None = None) -> Any:
        def handler(request: httpx.Request) -> httpx.Response:
            request.read()
            nonlocal auth
            auth = auth or request.headers.get("Authorization", "")
            if status < 300:
                return httpx.Response(status, json={"receipt_id": "r-1", "you_sent": {
                    "Authorization": auth}, "list": [auth]})
            return httpx.Response(status, text=f"refused; you sent Authorization: {auth}")
        return handler

    def test_a_rejection_quoting_the_bearer_token_is_scrubbed(self, tmp_path: Path) -> None:
        """A 400 whose body quotes 'Bearer TOKEN': the error's text and body say ***."""
        with pytest.raises(Rejected) as info:
            send(tmp_path, http_cfg(token="SuperSecretTok123"), self.echo(400))
        assert "SuperSecretTok123" not in str(info.value) + info.value.body
        assert "Bearer ***" in info.value.body

    def test_a_receipt_quoting_the_token_is_scrubbed(self, tmp_path: Path) -> None:
        """A 201 that echoes the header in its JSON: every string of the receipt is
        scrubbed, nested ones too; the receipt id is kept."""
        receipt, _, _, _ = send(tmp_path, http_cfg(token="SuperSecretTok123"), self.echo(201))
        assert "SuperSecretTok123" not in json.dumps(receipt.body)
        assert receipt.body["you_sent"] == {"Authorization": "Bearer ***"}
        assert receipt.receipt_id == "r-1"

    def test_basic_credentials_echoed_in_base64_are_scrubbed(self, tmp_path: Path) -> None:
        """The url's user:password goes out as Basic base64 (httpx's Client adds it; the
        test transport here is handed the request before that, so the answer quotes the
        header as the Client would send it): a 503 quoting it keeps neither the base64
        nor the password."""
        cfg = http_cfg(url="http://user:Passw0rdX@127.0.0.1:9/b")
        encoded = base64.b64encode(b"user:Passw0rdX").decode()
        with pytest.raises(Retryable) as info:
            send(tmp_path, cfg, self.echo(503, f"Basic {encoded} (Passw0rdX)"))
        assert "Basic ***" in info.value.body
        assert encoded not in info.value.body and "Passw0rdX" not in info.value.body

    @pytest.mark.parametrize("escape", [
        lambda t: html.escape(t), lambda t: html.escape(t, quote=False),
        lambda t: html.escape(t).replace("&#x27;", "&apos;"),
        # Go's html/template and encoding/xml; PHP's htmlspecialchars
        lambda t: html.escape(t).replace("&quot;", "&#34;").replace("&#x27;", "&#39;"),
        lambda t: html.escape(t).replace("&#x27;", "&#039;")],
        ids=["python", "python-unquoted", "xml", "go", "php"])
    def test_a_token_echoed_in_an_html_or_xml_page_is_scrubbed(
            self, tmp_path: Path, escape: Any) -> None:
        """An error page in HTML or XML quotes the token with & < > and quotes escaped
        (the token rule allows them): that form is taken out too."""
        token = "Tk&9<x>\"q'Z/7+w="
        with pytest.raises(Rejected) as info:
            send(tmp_path, http_cfg(token=token),
                 self.echo(400, f"<p>Bearer {escape(token)}</p>"))
        assert escape(token) not in info.value.body and "Bearer ***" in info.value.body


def _certificates(folder: Path) -> tuple[Path, Path, Path, Path, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, both signed
    by it, made with the openssl command: (ca, server cert, server key, client cert,
    client key)."""
    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            "/CN=outboxd test CA", "-keyout", "ca.key", "-out", "ca.pem")
    for name, extra in (("server", "subjectAltName=IP:127.0.0.1"), ("client", "")):
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                "-keyout", f"{name}.key", "-out", f"{name}.csr")
        (folder / f"{name}.ext").write_text(extra + "\n" if extra else "\n")
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-days", "2", "-extfile", f"{name}.ext",
                "-out", f"{name}.pem")
    return (folder / "ca.pem", folder / "server.pem", folder / "server.key",
            folder / "client.pem", folder / "client.key")


class TestTls:
    """verify and client_cert on a real HTTPS receiver on 127.0.0.1 (certificates made
    by openssl in the test): httpx is handed an SSL context built from the files."""

    def test_a_ca_bundle_and_a_client_certificate_are_used(self, tmp_path: Path) -> None:
        """verify = the CA's file and client_cert/client_key: the POST arrives over TLS and
        the receiver saw the client's certificate."""
        ca, cert, key, client_cert, client_key = _certificates(tmp_path)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca))
        server.load_cert_chain(str(cert), str(key))
        server.verify_mode = ssl.CERT_REQUIRED
        peers: list[Any] = []
        with _one_answer_server(lambda h: peers.append(h.connection.getpeercert()), "tls-1",
                                tls=server) as port:
            cfg = http_cfg(url=f"https://127.0.0.1:{port}/b", verify=str(ca),
                           client_cert=client_cert, client_key=client_key)
            receipt, _, _, _ = send(tmp_path, cfg, handler=None, real=True)
        assert receipt.receipt_id == "tls-1"
        assert peers and dict(x[0] for x in peers[0]["subject"])["commonName"] == "client"

    def test_a_receiver_the_ca_bundle_does_not_vouch_for_is_not_sent_to(
            self, tmp_path: Path) -> None:
        """The system's CAs (verify = true) do not know the test CA: the POST fails
        before any byte of the bundle leaves (a retry), and nothing arrives."""
        _, cert, key, _, _ = _certificates(tmp_path)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(str(cert), str(key))
        arrived: list[Any] = []
        with _one_answer_server(arrived.append, "never", tls=server) as port:
            with pytest.raises(Retryable) as info:
                send(tmp_path, http_cfg(url=f"https://127.0.0.1:{port}/b"), real=True)
        assert "CERTIFICATE_VERIFY_FAILED" in str(info.value) and arrived == []

    def test_a_client_key_under_a_passphrase_is_named_and_never_prompted_for(
            self, tmp_path: Path) -> None:
        """A client_key protected by a passphrase: OpenSSL would ask for it on the
        terminal (and, with none, fail as "Invalid argument"); outboxd says which file
        and why, at once, with the fix."""
        _, _, _, client_cert, client_key = _certificates(tmp_path)
        locked = tmp_path / "locked.key"
        subprocess.run(["openssl", "pkey", "-in", str(client_key), "-out", str(locked),
                        "-aes256", "-passout", "pass:secret"], check=True, capture_output=True)
        with pytest.raises(ConfigError) as info:
            tls_verify(http_cfg(url="https://127.0.0.1:9/b", client_cert=client_cert,
                                client_key=locked))
        assert f"client_key = '{locked}'" in str(info.value)
        assert "passphrase" in str(info.value) and "without a passphrase" in str(info.value)

    def test_a_passphrase_key_inside_client_cert_names_client_cert(
            self, tmp_path: Path) -> None:
        """client_cert holding the certificate and a locked key, client_key unset: the
        error names client_cert, the setting the user wrote."""
        _, _, _, client_cert, client_key = _certificates(tmp_path)
        both = tmp_path / "both.pem"
        subprocess.run(["openssl", "pkey", "-in", str(client_key), "-out", str(both),
                        "-aes256", "-passout", "pass:secret"], check=True, capture_output=True)
        both.write_text(client_cert.read_text() + both.read_text())
        with pytest.raises(ConfigError) as info:
            tls_verify(http_cfg(url="https://127.0.0.1:9/b", client_cert=both))
        assert f"client_cert = '{both}'" in str(info.value) and "passphrase" in str(info.value)

    def test_a_fifo_as_a_tls_file_is_refused_unopened(self, tmp_path: Path) -> None:
        """OpenSSL would block reading a FIFO: one swapped in for client_key after the
        settings were checked is named, with what it is, and never opened for reading."""
        _, _, _, client_cert, client_key = _certificates(tmp_path)
        cfg = http_cfg(url="https://127.0.0.1:9/b", client_cert=client_cert,
                       client_key=client_key)
        client_key.unlink()
        os.mkfifo(client_key)
        error = without_blocking(lambda: raised(lambda: tls_verify(cfg)), client_key,
                                 "tls_verify")
        assert isinstance(error, ConfigError)
        assert f"client_key = '{client_key}' is a FIFO" in str(error)

    def test_a_tls_file_that_cannot_be_read_is_the_one_named(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """ssl's own errors name no file ("Permission denied"): of a certificate and a
        key, the one this user may not read is named, with the fix."""
        _, _, _, client_cert, client_key = _certificates(tmp_path)
        real_read = daemon.tls.read_admin_file

        def denying(path: Path, limit: int) -> bytes:
            if str(path) == str(client_key):
                raise PermissionError(13, "Permission denied", str(path))
            return real_read(path, limit)
        monkeypatch.setattr("daemon.tls.read_admin_file", denying)
        with pytest.raises(ConfigError) as info:
            tls_verify(http_cfg(url="https://127.0.0.1:9/b", client_cert=client_cert,
                                client_key=client_key))
        assert f"client_key = '{client_key}' cannot be used: Permission denied" in \
            str(info.value)
        assert "client_cert" not in str(info.value) and "readable" in str(info.value)

    @pytest.mark.parametrize("setting", ["verify", "client_cert"])
    def test_a_tls_file_that_does_not_load_is_named_with_its_setting(
            self, tmp_path: Path, setting: str) -> None:
        """A CA bundle or client certificate that is no PEM: the error names the setting
        and the file, and says what the file must be."""
        junk = tmp_path / "junk.pem"
        junk.write_text("hello\n")
        with pytest.raises(ConfigError) as info:
            tls_verify(http_cfg(url="https://127.0.0.1:9/b", **{setting: str(junk)}))
        assert f"{setting} = '{junk}' cannot be used" in str(info.value)
        assert "PEM" in str(info.value)

    @pytest.mark.parametrize("shape", ["slash-escaped", "unicode-escaped", "cut"])
    def test_a_token_hidden_by_json_escapes_or_the_cut_is_scrubbed_too(
            self, tmp_path: Path, shape: str) -> None:
        """The token written as JSON may write it ('/' as '\\/', every character as
        \\uXXXX), or standing across BODY_LIMIT where the kept text is cut: none of it
        survives in the kept body."""
        token = "s3cr3t/Token+Value_0123456789abcdef"
        if shape == "slash-escaped":
            body = json.dumps({"auth": f"Bearer {token}"}).replace("/", "\\/")
        elif shape == "unicode-escaped":
            body = '{"auth": "' + "".join(f"\\u{ord(c):04x}" for c in token) + '"}'
        else:
            body = "x" * (BODY_LIMIT - 20) + token
        answer = httpx.Response(400, content=body.encode())
        with pytest.raises(Rejected) as info:
            send(tmp_path, http_cfg(token=token), Recorder(answer))
        kept = info.value.body
        assert "s3cr3t" not in kept and "\\u0073\\u0033" not in kept
        assert "***" in kept
