"""What one client may hold of the reference receiver: a thread for a request's head
only so long, and one of a bounded number of connections.

A socket timeout only bounds each wait: a client sending its request line and
headers a byte now and then never trips it, and held a handler thread for good;
and every connection had a thread of its own, without limit. The body has its
own deadline (multipart.Body).
"""

from __future__ import annotations

import contextlib
import io
import socket
import time
from typing import Any

# From a request's first byte, its request line and headers must be in within this
# (a real client sends them in one go; outboxd in one write).
HEAD_SECONDS = 30.0
# Connections served at once; one more is answered BUSY and closed.
MAX_CONNECTIONS = 64
BUSY_RETRY_AFTER = 5  # seconds, in BUSY's Retry-After

_BUSY_BODY = b'{"error": "too many connections; try again later"}'
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\n"
        b"Content-Type: application/json\r\n"
        b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n"
        b"Retry-After: " + str(BUSY_RETRY_AFTER).encode() + b"\r\n"
        b"Connection: close\r\n\r\n" + _BUSY_BODY)


class HeadTimed(io.RawIOBase):
    """A connection's reading side (`raw`: its unbuffered makefile) whose waits, while a
    request's head is read (`head()` until `done()`), end at the head's deadline:
    HEAD_SECONDS from its first byte, TimeoutError after. Before that byte, an idle
    kept-alive connection waits as long as the socket's own timeout allows, as before."""

    def __init__(self, conn: socket.socket, raw: socket.SocketIO, idle: float | None) -> None:
        super().__init__()
        self._conn, self._raw = conn, raw
        self._idle = idle  # the socket's timeout, put back once the head is in
        self._reading_head = False
        self._by: float | None = None

    def head(self) -> None:
        self._reading_head, self._by = True, None

    @property
    def awaiting(self) -> bool:
        """Waiting for a request's first byte: a timeout now ends an idle connection (a
        client's kept-alive one, or one never used), no request is cut short."""
        return self._reading_head and self._by is None

    def done(self) -> None:
        if self._by is not None:
            self._conn.settimeout(self._idle)
        self._reading_head, self._by = False, None

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int | None:
        if self._by is not None:
            left = self._by - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"request line and headers not received within "
                                   f"{HEAD_SECONDS:g} s")
            self._conn.settimeout(left if self._idle is None else min(left, self._idle))
        n = self._raw.readinto(b)
        if self._reading_head and self._by is None and n:
            self._by = time.monotonic() + HEAD_SECONDS
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def turn_away(conn: socket.socket) -> None:
    """Answer BUSY on a connection beyond MAX_CONNECTIONS, from the accepting thread and
    never waiting (a new connection's send buffer has room for it); the caller closes
    it. What the client sent already is read first: a close with unread data resets the
    connection, and the client may lose the answer. A client still sending may yet
    see a reset — a connection error, which outboxd retries as it retries a 503."""
    with contextlib.suppress(OSError):
        conn.send(BUSY, socket.MSG_DONTWAIT)
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(1 << 16, socket.MSG_DONTWAIT):
            pass
