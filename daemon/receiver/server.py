"""The reference receiver (docs/protocol.md): the strict peer every integration test talks to.

Stdlib only. This is its HTTP side: the server and the state its handler
threads share, the request's headers, token and length checked before a byte
of the body is read, the answer (or the one --fail-first injects: faults.py), a
connection left usable, and `run()`. What the body becomes in the store is
receive.py's; the line each request leaves in requests.jsonl, requestlog.py's.
Idempotency follows the IETF Idempotency-Key draft: 409 while a key is in flight
(here), the stored 2xx body for a repeat, 422 for a key reused with other content
(receive.py).
"""

from __future__ import annotations

import errno
import hmac
import io
import json
import re
import shutil
import signal
import socket
import socketserver
import threading
import time
import uuid
from collections.abc import Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from daemon import logs
from daemon.errors import NO_ROOM, Refusal, UsageError, describe
from daemon.manifest import utc_now_iso
from daemon.receiver import limits
from daemon.receiver.faults import Fault, injected
from daemon.receiver.multipart import Body
from daemon.receiver.receive import receive_bundle, receive_document, removed, whole_answer
from daemon.receiver.requestlog import RequestLog

MAX_BODY = 2 << 30  # 2 GiB: larger requests are refused before a byte is read
MAX_DRAIN = 64 << 20  # refused bodies up to this size are read and dropped (see _finish)
_KEY = re.compile(r"[0-9a-f]{64}")


class ReceiverServer(ThreadingHTTPServer):
    """Holds the state shared by the handler threads; everything mutable is under self.lock."""

    daemon_threads = True

    def __init__(self, addr: tuple[str, int], store: Path, token: str | None,
                 fail_first: Sequence[int | Fault], hold_first: float = 0.0,
                 retry_after: float = 0.0, own_ids: bool = False) -> None:
        if ":" in addr[0]:
            self.address_family = socket.AF_INET6
        self.store = store
        self.token = token
        self.lock = threading.Lock()
        self.faults = [f if isinstance(f, Fault) else Fault(f) for f in fail_first]
        # Seconds to sit on the first 201 after storing it: a receiver that
        # accepted a bundle but whose answer never arrived (crash tests).
        self.hold_first = hold_first
        self.retry_after = retry_after  # sent with injected 429/503 answers
        # A receipt's bundle_id of the receiver's own (--own-ids), not the sender's.
        self.own_ids = own_ids
        self.in_progress: set[str] = set()
        self.responses: dict[str, bytes] = {}
        self.request_log = RequestLog(store / "requests.jsonl")
        self.slots = threading.BoundedSemaphore(limits.MAX_CONNECTIONS)
        store.mkdir(parents=True, exist_ok=True)
        for leftover in store.glob(".tmp-*"):  # staging of a receiver that died mid-request
            removed(leftover)
        super().__init__(addr, ReceiverHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks DNS for getfqdn(host), which can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.server_address[1]

    def process_request(self, request: Any, client_address: Any) -> None:
        # A thread per connection, but only so many at once: one more is answered 503.
        if not self.slots.acquire(blocking=False):
            logs.get().warning(f"receiver: over {limits.MAX_CONNECTIONS} connections at "
                               "once; answered 503", client=str(client_address[0]))
            limits.turn_away(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()  # no thread started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def take_hold(self) -> float:
        with self.lock:
            hold, self.hold_first = self.hold_first, 0.0
            return hold

    def next_fault(self) -> Fault | None:
        """This request's entry of --fail-first; None once they are used up."""
        with self.lock:
            return self.faults.pop(0) if self.faults else None

    def claim(self, key: str) -> None:
        with self.lock:
            if key in self.in_progress:
                raise Refusal(409, "a request with this Idempotency-Key is still in progress")
            self.in_progress.add(key)

    def release(self, key: str) -> None:
        with self.lock:
            self.in_progress.discard(key)

    def stored_response(self, key: str) -> bytes | None:
        """The 2xx body of a finished request with this key, from memory or from disk;
        None also for STORE/KEY/ without a whole response.json (receive.py: stored again)."""
        with self.lock:
            if key not in self.responses:
                body = whole_answer(self.store / key / "response.json")
                if body is None:
                    return None
                self.responses[key] = body
            return self.responses[key]

    def remember(self, key: str, body: bytes) -> None:
        with self.lock:
            self.responses[key] = body


class ReceiverHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive; without TCP_NODELAY every answer waits ~40 ms on delayed ACK.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    # A stalled sender must not hold its key forever: each wait, and (multipart.Body)
    # the whole body, beyond its length at MIN_BODY_RATE.
    timeout = 120.0
    server: ReceiverServer
    server_version = "outboxd-receiver"

    def setup(self) -> None:
        super().setup()
        # The request's head read within limits.HEAD_SECONDS (parse_request reads it).
        self.rfile.close()
        self._head = limits.HeadTimed(self.connection, self.connection.makefile("rb", 0),
                                      self.timeout)
        self.rfile = io.BufferedReader(self._head)

    def handle_one_request(self) -> None:
        self._head.head()
        super().handle_one_request()

    def parse_request(self) -> bool:
        try:
            return super().parse_request()
        finally:
            self._head.done()

    def handle(self) -> None:
        try:
            super().handle()
        except ConnectionError:
            pass  # a client hanging up between keep-alive requests is not an error

    def handle_expect_100(self) -> bool:
        # Defer "100 Continue" until headers, token and key are accepted (do_POST sends it).
        return True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # requests.jsonl is the access log; do_POST writes one stderr line itself

    def log_message(self, format: str, *args: Any) -> None:
        # http.server's own lines (a malformed request line, a timeout): one log event
        # each, so that under JSON logging (off a terminal) every line is JSON.
        if self._head.awaiting:
            # The only line said before a request's first byte: the idle timeout. An HTTP
            # client keeps its connection open after its last POST (httpx until it next
            # sends), so this came some minutes after every burst, and as a warning
            # ("Request timed out") read as a fault; nothing was lost.
            logs.get().debug(f"receiver: idle connection closed: no request within "
                             f"{self.timeout:g} s", client=self.address_string())
            return
        logs.get().warning("receiver: " + format % args, client=self.address_string())

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # The base class answers malformed request lines with HTML; every answer here is JSON.
        self.close_connection = True
        self._send(code, {"error": message or HTTPStatus(code).phrase})

    def _send(self, status: int, payload: dict[str, Any] | bytes,
              headers: Sequence[tuple[str, str]] = ()) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers:
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            self.close_connection = True  # the client is gone; nothing left to tell it

    def do_GET(self) -> None:
        self._send(200, {"status": "ok", "service": "outboxd receiver"})

    def _refuse_method(self) -> None:
        self._send(405, {"error": f"{self.command} not allowed; POST a bundle"},
                   [("Allow", "GET, POST")])

    do_PUT = do_DELETE = do_PATCH = _refuse_method

    def do_POST(self) -> None:
        self._body: Body | None = None
        self._expect_pending = (self.request_version >= "HTTP/1.1" and
                                self.headers.get("Expect", "").lower() == "100-continue")
        key = self.headers.get("Idempotency-Key", "").strip()
        status: int = 500
        payload: bytes | dict[str, Any] = b""
        headers: list[tuple[str, str]] = []
        error: str | None = None
        claimed, gone, staging = False, False, None
        try:
            self._check_token()
            # ubl-embedded: one UBL document per POST, keyed by its own sha256.
            is_document = self.headers.get_content_type() == "application/xml"
            boundary = b"" if is_document else self._boundary()
            length = self._content_length()
            if not _KEY.fullmatch(key):
                raise Refusal(400, "Idempotency-Key header missing or not " + (
                    "the sha256 of the document's bytes" if is_document else "a bundle id")
                    + " (64 lowercase hex digits)")
            if (fault := injected(self.server, key, is_document)) is not None:
                if fault.retry_after is not None:
                    headers.append(("Retry-After", str(fault.retry_after)))
                elif fault.status in (429, 503):
                    headers.append(("Retry-After", f"{self.server.retry_after:g}"))
                raise Refusal(fault.status or 500, "injected failure (fail_first)")
            self.server.claim(key)
            claimed = True
            body = self._body = Body(self.rfile, length, self.timeout)
            if self._expect_pending:
                self._expect_pending = False
                self.send_response_only(100)
                self.end_headers()
            staging = self.server.store / f".tmp-{uuid.uuid4()}"
            staging.mkdir()
            status, payload = (
                receive_document(self.server, body, key, length, staging,
                                 self.headers.get("X-Outboxd-Bundle-Id")) if is_document
                else receive_bundle(self.server, body, key, boundary, staging))
        except Refusal as exc:
            status, payload, error = exc.status, {"error": exc.message}, exc.message
        except (ConnectionError, TimeoutError) as exc:
            status, error, gone = 400, f"request body not received: {exc}", True
            self.close_connection = True
        except OSError as exc:
            if exc.errno not in NO_ROOM:
                status, payload, error = 500, {"error": f"receiver failed: {exc!r}"}, repr(exc)
            else:  # 507 Insufficient Storage: nothing kept; the sender tries again later
                error = f"the receiver's store is full: {describe(exc)}"
                status, payload = 507, {"error": f"{error}; send the request again later"}
        except Exception as exc:  # a bug: answer 500, keep serving
            status, payload, error = 500, {"error": f"receiver failed: {exc!r}"}, repr(exc)
        finally:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            if claimed:
                self.server.release(key)  # before answering, so a prompt repeat never sees 409
        self._finish()
        # "monotonic": the host's monotonic clock, for measuring gaps between requests.
        record: dict[str, Any] = {"time": utc_now_iso(), "monotonic": time.monotonic(),
                                  "idempotency_key": key or None, "status": status}
        if error:
            record["error"] = error
        self.server.request_log.append(record)
        (logs.get().error if status == 507 else logs.get().info)(
            f"POST {self.path} {status}", client=self.address_string(),
                        idempotency_key=key[:12] or None, **({"error": error} if error else {}))
        if status == 201 and (hold := self.server.take_hold()):
            threading.Event().wait(hold)
        if not gone:
            self._send(status, payload, headers)

    def _finish(self) -> None:
        """Leave the connection usable: read what the client still sends, or close it.

        Closing a socket with unread data makes the kernel send RST, and the
        client may then see "connection reset" instead of our answer. A client
        still waiting for "100 Continue" sends no body at all.
        """
        raw = self.headers.get("Content-Length", "0").strip()
        body = self._body or (Body(self.rfile, int(raw), self.timeout) if raw.isdigit()
                               else None)
        if (self.close_connection or self._expect_pending or body is None
                or "Transfer-Encoding" in self.headers or body.remaining > MAX_DRAIN):
            self.close_connection = True
            return
        try:
            body.drain()
        except OSError:
            self.close_connection = True

    def _check_token(self) -> None:
        if self.server.token is None:
            return
        sent = self.headers.get("Authorization", "")
        expected = f"Bearer {self.server.token}"
        if not hmac.compare_digest(sent.encode(), expected.encode()):
            raise Refusal(401, "missing or wrong bearer token")

    def _content_length(self) -> int:
        raw = self.headers.get("Content-Length", "").strip()
        if self.headers.get("Transfer-Encoding") or not raw.isdigit():
            self.close_connection = True  # where the body ends is unknown: never reuse
            raise Refusal(411, "a Content-Length header (and no Transfer-Encoding) is required")
        length = int(raw)
        if length > MAX_BODY:
            raise Refusal(413, f"body of {length} bytes is over the {MAX_BODY}-byte limit")
        return length

    def _boundary(self) -> bytes:
        if self.headers.get_content_type() != "multipart/form-data":
            raise Refusal(400, "Content-Type must be multipart/form-data")
        boundary = self.headers.get_param("boundary")
        if not isinstance(boundary, str) or not 1 <= len(boundary) <= 70 or not boundary.isascii():
            raise Refusal(400, "multipart/form-data needs a boundary of 1-70 ASCII characters")
        return boundary.encode("ascii")


def make_server(host: str, port: int, store: Path, token: str | None = None,
                fail_first: Sequence[int | Fault] = (), hold_first: float = 0.0,
                retry_after: float = 0.0, own_ids: bool = False) -> ThreadingHTTPServer:
    """A bound, not yet serving receiver; call serve_forever() (tests do it in a thread)."""
    return ReceiverServer((host, port), Path(store), token, fail_first, hold_first, retry_after,
                          own_ids)


def run(listen: str, store: Path, token: str | None = None,
        fail_first: Sequence[int | Fault] = (),
        hold_first: float = 0.0, retry_after: float = 0.0, own_ids: bool = False) -> int:
    """Serve until SIGTERM or SIGINT; prints the one line tests wait for."""
    host, sep, port_text = listen.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise UsageError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8787")
    shown = f"[{host}]" if ":" in host else host
    # A folder that cannot be made and an address that cannot be had are mistakes on
    # the command line: one line naming it and the fix, exit 2, never a traceback.
    store = Path(store)
    try:
        store.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--store {store}: cannot create that folder ({exc.strerror or exc}) "
                         "— name a folder that can be created and written, e.g. "
                         "/tmp/received") from None
    try:
        server = make_server(host, int(port_text), store, token, fail_first, hold_first,
                             retry_after, own_ids)
    except OSError as exc:
        fix = {errno.EADDRINUSE: "another program listens there: stop it, or choose another "
                                 "port with --listen (port 0 takes a free one)",
               errno.EACCES: "ports below 1024 need privileges: choose a port of 1024 or "
                             "above with --listen"}.get(
            exc.errno or 0, "give an address of this machine with --listen, e.g. "
                            "127.0.0.1:8787")
        raise UsageError(f"--listen {shown}:{port_text}: cannot listen there "
                         f"({exc.strerror or exc}) — {fix}") from None
    bound_port = server.server_address[1]
    print(f"outboxd receiver listening on http://{shown}:{bound_port}", flush=True)

    def stop(signum: int, frame: object) -> None:
        # shutdown() waits for serve_forever() to return: call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.serve_forever(poll_interval=0.1)  # SIGTERM is acted on within 0.1 s
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
