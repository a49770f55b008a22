"""A receiver on 127.0.0.1 that writes raw bytes at its own pace and reads requests at
its own pace: the misbehaving receivers of test_answer_deadline.py (answers that never
end, status lines a byte at a time) and of the daemon's tests (uploads read at a crawl).
No HTTP server library answers so."""

from __future__ import annotations

import contextlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable

# How long a connection's socket waits for the deliverer at most: no thread is left
# behind for ever by a test that fails.
CONNECTION_LIMIT = 16.0


class RawReceiver:
    """A receiver on 127.0.0.1 (or ::1, `family` AF_INET6) writing raw bytes, for answers no
    HTTP server library gives. Each connection is served on a thread of its own, as a
    server serves them: each request on it (kept alive for the next) is read whole, by
    `take_body` (at once unless given), then `answer(rx, conn, n)` writes what the n-th
    request (from 0, over all connections) gets. With `tls`, TLS from the first byte, or
    with `tunnel` after a CONNECT, answered 200 (a proxy in front of an https://
    receiver). Keeps what the tests assert: connections accepted, each request's head,
    and how long each body took to arrive."""

    def __init__(self, answer: Callable[[RawReceiver, socket.socket, int], None], *,
                 tls: ssl.SSLContext | None = None, tunnel: bool = False,
                 take_body: Callable[[RawReceiver, socket.socket, int, bytes], None]
                 | None = None, family: socket.AddressFamily = socket.AF_INET) -> None:
        self._answer = answer
        self._tls = tls
        self._tunnel = tunnel
        self._take_body = take_body or take_at_once
        self.listener = socket.create_server(
            ("::1" if family == socket.AF_INET6 else "127.0.0.1", 0), family=family)
        # A small window: a slow reader holds the sender back sooner.
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        self.port: int = self.listener.getsockname()[1]
        self.stopped = threading.Event()
        self.connections = 0
        self.heads: list[str] = []
        self.uploads: list[float] = []
        self._lock = threading.Lock()
        self._requests = 0
        self._here = threading.local()

    @property
    def requests(self) -> int:
        """Requests read whole so far (each one's n was this count before it)."""
        with self._lock:
            return self._requests

    def head(self) -> str:
        """The head of the request being answered, on its own connection's thread (heads[-1]
        may be another connection's: each is served on a thread of its own)."""
        return str(self._here.head)

    def pace(self, seconds: float) -> bool:
        """The receiver's own pace (not a synchronisation): False once the test is over."""
        return not self.stopped.wait(seconds)

    def __enter__(self) -> RawReceiver:
        self._accepting = threading.Thread(target=self._serve, daemon=True)
        self._accepting.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        stop_accepting(self.listener, self._accepting)

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        conn.settimeout(CONNECTION_LIMIT)
        with contextlib.suppress(OSError):
            if self._tls is not None and not self._tunnel:
                conn = self._tls.wrap_socket(conn, server_side=True)
        with conn, contextlib.suppress(OSError):
            while (head := _read_head(conn)) is not None:
                text, _, rest = head.partition(b"\r\n\r\n")
                self.heads.append(text.decode("latin-1"))
                self._here.head = text.decode("latin-1")
                if text.startswith(b"CONNECT ") and self._tls is not None:
                    conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    conn = self._tls.wrap_socket(conn, server_side=True)
                    continue
                found = re.search(rb"(?i)content-length: *(\d+)", text)
                length = int(found.group(1)) if found else 0
                started = time.monotonic()
                self._take_body(self, conn, length, rest)
                self.uploads.append(time.monotonic() - started)
                with self._lock:
                    n, self._requests = self._requests, self._requests + 1
                self._answer(self, conn, n)


def stop_accepting(listener: socket.socket, accepting: threading.Thread) -> None:
    """Close `listener` and wait for its thread blocked in accept() to end. close() alone
    does not wake that thread, and Linux takes the descriptor number of the connection
    to come before accept() blocks: each receiver of each test left a thread holding one
    taken for good, unseen in /proc/self/fd, until a later test measuring its own
    descriptors (test_match.py) ran out of them. shutdown() wakes it (EINVAL)."""
    with contextlib.suppress(OSError):
        listener.shutdown(socket.SHUT_RDWR)
    accepting.join(CONNECTION_LIMIT)
    listener.close()
    assert not accepting.is_alive(), "the receiver's accepting thread did not end"


def _read_head(conn: socket.socket) -> bytes | None:
    """A request's head and what came after it; None when the connection ends first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    return data


def take_at_once(rx: RawReceiver, conn: socket.socket, length: int, got: bytes) -> None:
    size = len(got)
    while size < length:
        chunk = conn.recv(min(65536, length - size))
        if not chunk:
            raise OSError("the request ended early")
        size += len(chunk)


def created(receipt_id: str) -> bytes:
    body = f'{{"receipt_id": "{receipt_id}"}}'.encode()
    return (b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
