"""The reference receiver (docs/protocol.md), driven over real HTTP by httpx and raw sockets."""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
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
    """Start receivers in threads; every one is shut down and closed after the test."""
    servers: list[tuple[ThreadingHTTPServer, threading.Thread]] = []

    def _start(store: Path, **kwargs: Any) -> str:
        server = make_server("127.0.0.1", 0, store, **kwargs)
        thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        thread.start()
        servers.append((server, thread))
        return f"http://127.0.0.1:{server.server_address[1]}/bundles"

    yield _start
    for server, thread in servers:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def url(start: Starter, store: Path) -> str:
    return start(store)


class TestAccepting:
    def test_valid_bundle_is_stored_byte_identical_and_answered_201(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A valid bundle gets 201 with a receipt and lands in STORE/BUNDLE_ID/ as sent."""
        sent = make_sent(tmp_path)
        resp = post(url, sent)
        assert resp.status_code == 201, resp.text
        body = resp.json()
        assert body["bundle_id"] == sent.key and body["receipt_id"].startswith("rcpt-")
        assert resp.headers["content-type"] == "application/json"
        folder = store / sent.key
        assert (folder / "manifest.json").read_bytes() == sent.manifest_bytes()
        assert (folder / "response.json").read_bytes() == resp.content
        assert (folder / "batch-42.xml").read_bytes() == UBL
        pdf = folder / "attachments" / "INV-2001" / "Tidrapport_oktober.pdf"
        assert pdf.read_bytes() == sent.files[1][2].read_bytes()
        assert (folder / "attachments" / "INV_7_1" / "scan.bin").read_bytes() == \
            sent.files[2][2].read_bytes()
        assert stored_bundles(store) == [sent.key]  # no staging dir left behind
        [line] = log_lines(store)
        assert line["status"] == 201 and line["idempotency_key"] == sent.key
        assert "error" not in line

    def test_body_arriving_in_tiny_pieces_is_parsed_the_same(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """Boundaries split across reads do not confuse the streaming parser."""
        sent = make_sent(tmp_path)
        head, body = raw_request(sent, url)
        with connect(url) as sock:
            sock.sendall(head + b"\r\n")
            cut = 7 * 600  # the manifest and the first parts' boundaries, 7 bytes at a time
            for i in range(0, cut, 7):
                sock.sendall(body[i:i + 7])
            sock.sendall(body[cut:])
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 201, resp.read()
        assert (store / sent.key / "manifest.json").read_bytes() == sent.manifest_bytes()

    def test_get_answers_a_small_json_health_document(self, url: str) -> None:
        """GET is a health check; other methods get 405 with JSON."""
        assert httpx.get(url).json()["status"] == "ok"
        resp = httpx.put(url, content=b"")
        assert resp.status_code == 405 and "error" in resp.json()


class TestIdempotency:
    def test_repeat_with_same_content_gets_200_and_the_first_body(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A repeated key with the same content answers 200 with the stored 201 body."""
        sent = make_sent(tmp_path)
        first = post(url, sent)
        again = replace(sent, manifest={**sent.manifest, "created_at": "2030-01-01T00:00:00Z",
                                        "warnings": []})
        second = post(url, again)
        assert (first.status_code, second.status_code) == (201, 200)
        assert second.content == first.content
        assert [line["status"] for line in log_lines(store)] == [201, 200]
        assert stored_bundles(store) == [sent.key]

    def test_same_key_with_other_content_gets_422(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A key reused for a bundle whose content differs is refused with 422."""
        sent = make_sent(tmp_path)
        assert post(url, sent).status_code == 201
        other = make_sent(tmp_path / "other", note="Unsigned")
        assert other.key != sent.key
        resp = post(url, other, key=sent.key)
        assert resp.status_code == 422 and "other content" in resp.json()["error"]
        assert stored_bundles(store) == [sent.key]

    def test_same_key_while_first_is_in_progress_gets_409(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A second request with a key still being received gets 409; the first then succeeds."""
        sent = make_sent(tmp_path)
        head, body = raw_request(sent, url)
        with connect(url) as sock:
            # The receiver answers 100 Continue only once it holds the key: our sync point.
            sock.sendall(head + b"Expect: 100-continue\r\n\r\n")
            interim = b""
            while not interim.endswith(b"\r\n\r\n"):
                interim += sock.recv(1)
            assert interim.startswith(b"HTTP/1.1 100")
            sock.sendall(body[:1000])
            assert post(url, sent).status_code == 409
            sock.sendall(body[1000:])
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 201
        assert [line["status"] for line in log_lines(store)] == [409, 201]

    def test_stored_answers_survive_a_restart(
            self, tmp_path: Path, store: Path, start: Starter) -> None:
        """A new receiver on the same store answers a repeat with the first body."""
        sent = make_sent(tmp_path)
        first = post(start(store), sent)
        second = post(start(store), sent)
        assert (first.status_code, second.status_code) == (201, 200)
        assert second.content == first.content


class TestRefusing:
    def test_hash_mismatch_is_400_and_nothing_is_stored(
            self, tmp_path: Path, store: Path, url: str) -> None:
        """A part whose bytes differ from the manifest is refused; no bundle, no staging dir."""
        sent = make_sent(tmp_path)
        pdf = sent.files[1][2]
        pdf.write_bytes(pdf.read_bytes().replace(b"%%EOF", b"%%EOX"))  # same size, new hash
        resp = post(url, sent)
        assert resp.status_code == 400
        assert "attachment-1" in resp.json()["error"] and "sha256" in resp.json()["error"]
        assert stored_bundles(store) == []
        assert log_lines(store)[0]["error"] == resp.json()["error"]

    def test_size_mismatch_is_400(self, tmp_path: Path, store: Path, url: str) -> None:
        """A truncated invoice part is refused and named."""
        sent = make_sent(tmp_path)
        sent.files[0][2].write_bytes(UBL[:-1])
        resp = post(url, sent)
        assert resp.status_code == 400 and "'invoice'" in resp.json()["error"]
        assert stored_bundles(store) == []

    @pytest.mark.parametrize("order, expected", [
        ([1, 0, 2, 3], "first part must be 'manifest'"),
        ([0, 2, 1, 3], "expected part 'invoice'"),
        ([0, 1, 3, 2], "expected part 'attachment-1', got 'attachment-2'"),
        ([0, 1, 2], "part 'attachment-2' is missing"),
        ([0, 1, 2, 3, 3], "unexpected part 'attachment-2'"),
    ])
    def test_parts_out_of_order_missing_or_extra_are_400(
            self, tmp_path: Path, store: Path, url: str, order: list[int], expected: str) -> None:
        """Only manifest, invoice, attachment-1..N in that order are accepted."""
        sent = make_sent(tmp_path)
        with ExitStack() as stack:
            parts = sent.parts(stack)
            resp = post(url, sent, files=[parts[i] for i in order])
        assert resp.status_code == 400 and expected in resp.json()["error"]
        assert stored_bundles(store) == []

    @pytest.mark.parametrize("key, expected", [
        (None, "Idempotency-Key header missing"),
        ("../../etc", "Idempotency-Key header missing or not a bundle id"),
        ("0" * 64, "is not the bundle id"),
    ])
    def test_missing_or_wrong_idempotency_key_is_400(
            self, tmp_path: Path, url: str, key: str | None, expected: str) -> None:
        """The Idempotency-Key must be present and equal to the recomputed bundle id."""
        resp = post(url, make_sent(tmp_path), key=key)
        assert resp.status_code == 400 and expected in resp.json()["error"]

    def test_manifest_bundle_id_must_match_its_content(self, tmp_path: Path, url: str) -> None:
        """A manifest whose bundle_id is not the hash of its content is refused."""
        sent = make_sent(tmp_path)
        sent.manifest["bundle_id"] = "f" * 64
        resp = post(url, sent, key="f" * 64)
        assert resp.status_code == 400 and "not the id of its content" in resp.json()["error"]

    @pytest.mark.parametrize("name", ["../evil.pdf", "..", "a\\b.pdf", ""])
    def test_hostile_filenames_are_400(self, tmp_path: Path, store: Path, url: str,
                                       name: str) -> None:
        """Sent names that are not plain basenames never reach the file system."""
        sent = make_sent(tmp_path)
        sent.manifest["invoices"][0]["attachments"][0]["name"] = name
        part, _old, path, ctype = sent.files[1]
        sent.files[1] = (part, name, path, ctype)
        resp = post(url, sent)
        assert resp.status_code == 400 and "filename" in resp.json()["error"]
        assert stored_bundles(store) == [] and not (tmp_path / "evil.pdf").exists()

    @pytest.mark.parametrize("pdf_name", ['Offer 10%22 off.pdf', 'Offert "A".pdf'])
    def test_names_with_quotes_or_a_literal_percent_22_are_accepted_as_sent(
            self, tmp_path: Path, store: Path, url: str, pdf_name: str) -> None:
        """With safe_filenames = false a name may hold '"' (httpx sends it as %22, as
        HTML5 says) or a literal '%22': both match the manifest's name, and the file is
        stored; the receiver does not decode %22 in a name that means it literally."""
        sent = make_sent(tmp_path, pdf_name=pdf_name, safe_filenames=False)
        assert pdf_name in [f[1] for f in sent.files]
        resp = post(url, sent)
        assert resp.status_code == 201, resp.text
        assert stored_bundles(store) == [sent.key]

    @pytest.mark.parametrize("manifest", [b"{not json", b'{"manifest_version": 2}', b"[]"])
    def test_bad_manifest_is_400(self, tmp_path: Path, url: str, manifest: bytes) -> None:
        """A manifest that is not JSON, not an object or not version 1 is refused."""
        sent = make_sent(tmp_path)
        with ExitStack() as stack:
            parts = sent.parts(stack)
            parts[0] = ("manifest", (None, manifest, "application/json"))
            resp = post(url, sent, files=parts)
        assert resp.status_code == 400 and "manifest" in resp.json()["error"]

    def test_non_multipart_body_is_400(self, url: str) -> None:
        """Only multipart/form-data is accepted."""
        resp = httpx.post(url, json={"a": 1}, headers={"Idempotency-Key": "0" * 64})
        assert resp.status_code == 400 and "multipart" in resp.json()["error"]

    def test_chunked_body_without_length_is_411(self, url: str) -> None:
        """A body without Content-Length gets 411 and a JSON answer."""
        with connect(url) as sock:
            sock.sendall(b"POST /bundles HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n0\r\n\r\n")
            resp = http.client.HTTPResponse(sock)
            resp.begin()
            assert resp.status == 411 and "Content-Length" in json.loads(resp.read())["error"]


class TestTokenAndFaults:
    @pytest.mark.parametrize("token", [None, "wrong", "s3cret-tokenX", "s3cret-toke"])
    def test_bad_or_missing_token_is_401_and_never_logged(
            self, tmp_path: Path, store: Path, start: Starter, token: str | None,
            capfd: pytest.CaptureFixture[str]) -> None:
        """With a token configured, only 'Bearer <token>' is let in; the token stays secret."""
        url = start(store, token="s3cret-token")
        sent = make_sent(tmp_path)
        resp = post(url, sent, token=token)
        assert resp.status_code == 401 and "error" in resp.json()
        assert post(url, sent, token="s3cret-token").status_code == 201
        assert [line["status"] for line in log_lines(store)] == [401, 201]
        assert "s3cret" not in (store / "requests.jsonl").read_text()
        assert "s3cret" not in capfd.readouterr().err

    def test_fail_first_answers_the_given_statuses_then_accepts(
            self, tmp_path: Path, store: Path, start: Starter) -> None:
        """fail_first injects those statuses (with Retry-After: 0), storing nothing, then 201."""
        url = start(store, fail_first=[503, 429])
        sent = make_sent(tmp_path)
        statuses = []
        with ExitStack() as stack, httpx.Client() as client:  # one keep-alive connection
            for _ in range(3):
                resp = client.post(url, files=sent.parts(stack),
                                   headers={"Idempotency-Key": sent.key})
                statuses.append((resp.status_code, resp.headers.get("retry-after")))
                if resp.status_code != 201:
                    assert stored_bundles(store) == []
        assert statuses == [(503, "0"), (429, "0"), (201, None)]
        assert [line["status"] for line in log_lines(store)] == [503, 429, 201]

    def test_fail_first_lets_a_request_through_and_gives_one_answer_its_own_retry_after(
            self, start_receiver: Any) -> None:
        """`--fail-first pass,422,429:7,503 --retry-after 2` (the command line, as the
        ubl-embedded tests use it), one entry per request in turn: the first is answered
        as usual (stored, 201), the second 422, the third 429 with Retry-After: 7, the
        fourth 503 with --retry-after's 2; after them every request is answered as usual.
        Nothing an injected answer refused is stored."""
        r = start_receiver("--fail-first", "pass,422,429:7,503", "--retry-after", "2")
        docs = [UBL.replace(b"INV-2001", f"INV-{i}".encode()) for i in range(5)]
        keys = [hashlib.sha256(d).hexdigest() for d in docs]
        with httpx.Client() as client:  # one keep-alive connection
            answers = [client.post(r.url, content=d, headers={
                "Content-Type": "application/xml", "Idempotency-Key": k})
                for d, k in zip(docs, keys, strict=True)]
        assert [(a.status_code, a.headers.get("retry-after")) for a in answers] == [
            (201, None), (422, None), (429, "7"), (503, "2"), (201, None)]
        assert [(x["idempotency_key"], x["status"]) for x in r.requests()] == list(
            zip(keys, [201, 422, 429, 503, 201], strict=True))
        assert sorted(p.name for p in (r.store / "documents").glob("*.xml")) == sorted(
            f"{k}.xml" for k in (keys[0], keys[4]))
        assert answers[0].json()["document_key"] == keys[0]


def run_receiver(*args: str) -> subprocess.CompletedProcess[str]:
    """`outboxd receiver ARGS` as a process, bounded: a receiver that starts after all
    would serve forever, and the timeout fails the test instead of hanging the run."""
    return subprocess.run([sys.executable, "-m", "daemon", "receiver", *args],
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


class TestStartUpErrors:
    def test_a_port_in_use_is_one_line_naming_the_address_and_exit_2(
            self, tmp_path: Path) -> None:
        """Another program listens on the port: one line with the address, the OS error
        and the fix; exit 2 (a usage error), no traceback."""
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            done = run_receiver("--listen", f"127.0.0.1:{port}", "--store", str(tmp_path / "s"))
        assert done.returncode == 2
        assert "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        assert f"127.0.0.1:{port}" in line and "Address already in use" in line
        assert "choose another port" in line

    @pytest.mark.parametrize("value", ["503,later", "pass,429:soon", "429:-1", "-", "201:"])
    def test_a_fail_first_it_cannot_read_is_one_line_naming_it_and_exit_2(
            self, tmp_path: Path, value: str) -> None:
        """An entry of --fail-first that is neither a status, STATUS:SECONDS (whole
        seconds) nor pass: one line naming the value and the forms; exit 2, nothing listening."""
        done = run_receiver("--listen", "127.0.0.1:0", "--store", str(tmp_path / "s"),
                            f"--fail-first={value}")
        assert done.returncode == 2 and done.stdout == "" and "Traceback" not in done.stderr
        [line] = done.stderr.splitlines()
        assert repr(value) in line and "STATUS:SECONDS" in line

    def test_a_store_that_cannot_be_created_is_one_line_naming_it_and_exit_2(
            self, tmp_path: Path) -> None:
        """--store below a plain file: one line with the folder, the OS error and the fix;
        exit 2, no traceback, nothing listening."""
        (tmp_path / "afile").write_text("x")
        store = tmp_path / "afile" / "sub"
        done = run_receiver("--listen", "127.0.0.1:0", "--store", str(store))
        assert done.returncode == 2 and done.stdout == ""
        [line] = done.stderr.splitlines()
        assert str(store) in line and "Not a directory" in line and "name a folder" in line


def test_off_a_terminal_every_line_the_receiver_logs_is_json(start_receiver: Any) -> None:
    """Under systemd or a log collector (stderr not a terminal) the receiver logs JSON
    lines only: each answered POST is an event with its status and key (it was a line of
    plain text among the JSON ones)."""
    from helpers import wait_for

    receiver = start_receiver()
    assert httpx.post(receiver.url, content=b"not multipart",
                      headers={"Content-Type": "text/plain"}).status_code == 400
    wait_for(lambda: "POST /bundles 400" in receiver.stderr(), what="the POST's log line")
    events = [json.loads(line) for line in receiver.stderr().splitlines()]
    [answered] = [e for e in events if e["event"] == "POST /bundles 400"]
    assert answered["level"] == "info" and answered["idempotency_key"] is None
    assert answered["error"] == "Content-Type must be multipart/form-data"
