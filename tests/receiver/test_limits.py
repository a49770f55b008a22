"""What one client may hold of the reference receiver (daemon/receiver/limits.py): a
request's head within its deadline, and one of a bounded number of connections. Real
receivers on 127.0.0.1, raw sockets."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from helpers import wait_for

from daemon.receiver import limits

from .conftest import Starter, connect

GET = b"GET / HTTP/1.1\r\nHost: receiver\r\n\r\n"


def _answer_to_get(sock: socket.socket) -> bytes:
    """The receiver's whole answer to GET on `sock`, kept alive (its JSON body ends it)."""
    sock.sendall(GET)
    answer = b""
    while not answer.endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def test_a_client_trickling_its_request_head_is_cut_at_the_head_deadline(
        start: Starter, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Slow headers: a byte now and then never trips the socket's idle timeout (120 s a
    wait), so a client held a handler thread for ever. From its first byte, the request
    line and headers must be in within HEAD_SECONDS (0.3 s here); then the connection is
    closed, unanswered."""
    monkeypatch.setattr(limits, "HEAD_SECONDS", 0.3)
    url = start(store)
    head = b"POST /bundles HTTP/1.1\r\nHost: receiver\r\nX-Padding: " + b"a" * 300
    closed_after: float | None = None
    with connect(url) as sock:
        sock.settimeout(0.1)
        first = time.monotonic()
        for byte in head:  # ~30 s at most; the deadline is 0.3 s
            try:
                sock.sendall(bytes([byte]))
                if sock.recv(1024) == b"":
                    closed_after = time.monotonic() - first
            except TimeoutError:
                continue  # nothing from the receiver yet: trickle on
            except ConnectionError:
                closed_after = time.monotonic() - first
            if closed_after is not None:
                break
    assert closed_after is not None, "the receiver kept reading a head trickled byte by byte"
    assert 0.3 <= closed_after < 10


def test_an_idle_kept_alive_connection_is_not_cut_by_the_head_deadline(
        start: Starter, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The head's deadline runs from its first byte: a connection kept alive between
    requests, sending nothing for longer than HEAD_SECONDS, is still served after."""
    monkeypatch.setattr(limits, "HEAD_SECONDS", 0.15)
    url = start(store)
    with connect(url) as sock:
        sock.settimeout(10)
        assert _answer_to_get(sock).startswith(b"HTTP/1.1 200")
        sock.settimeout(0.5)  # idle for over three head deadlines
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sock.settimeout(10)
        assert _answer_to_get(sock).startswith(b"HTTP/1.1 200")


def test_a_connection_beyond_the_cap_is_answered_503_with_retry_after(
        start: Starter, store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread per connection, without limit, let any client take the machine's
    threads. Beyond MAX_CONNECTIONS (2 here) at once, a new connection is answered 503
    with Retry-After and closed; once one of those served is closed, a new one is
    served again."""
    monkeypatch.setattr(limits, "MAX_CONNECTIONS", 2)
    url = start(store)
    held = [connect(url), connect(url)]
    try:
        for sock in held:
            sock.settimeout(10)
            assert _answer_to_get(sock).startswith(b"HTTP/1.1 200")  # served, kept alive
        with connect(url) as extra:
            extra.settimeout(10)
            answer = b""
            while chunk := extra.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert f"Retry-After: {limits.BUSY_RETRY_AFTER}\r\n".encode() in answer
        assert b"Connection: close\r\n" in answer and answer.endswith(b"}")
    finally:
        held.pop().close()

    def served() -> bool:
        with connect(url) as again:
            again.settimeout(10)
            try:
                return _answer_to_get(again).startswith(b"HTTP/1.1 200")
            except ConnectionError:
                return False  # turned away (a slot not yet free) while it sent

    try:
        wait_for(served, timeout=10, what="a connection served once a slot is free")
    finally:
        held.pop().close()
