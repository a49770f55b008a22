"""An answer's body read within limits (daemon/delivery/answer_body.py, docs/protocol.md):
at most ANSWER_LIMIT bytes and within the answer's timeout_seconds, whatever the receiver
sends — drips, floods, bodies that stop, false or real compression, gzip bombs — the
status line deciding what the answer means."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
import tracemalloc
import zlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest

from daemon.delivery import answer_body
from daemon.delivery.answer_body import ANSWER_LIMIT, read_answer
from daemon.delivery.answers import BODY_LIMIT
from delivery.test_deliver import _http, _raw_server, http_cfg, send


def _sent_with_peak(tmp_path: Path, serve: Any) -> tuple[Any, int]:
    """One bundle sent to a raw server answering with `serve`: its receipt, and the
    highest memory traced while it was sent."""
    with _raw_server(serve) as port:
        tracemalloc.start()
        try:
            receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b"),
                                    real=True)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    return receipt, peak


def test_a_2xx_whose_body_does_not_decode_is_still_a_receipt(tmp_path: Path) -> None:
    """201 with a false Content-Encoding: gzip. The receiver has the bundle: a receipt,
    with a body that says the answer could not be decoded."""
    answer = _http("201 Created", "Content-Encoding: gzip\r\n", b"notgzip!!!")
    with _raw_server(lambda c: c.sendall(answer)) as port:
        receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b"),
                                real=True)
    assert receipt.status == 201 and receipt.receipt_id is None
    assert "could not be decoded" in receipt.body


def test_an_answer_that_drips_ends_within_the_timeout(tmp_path: Path) -> None:
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


def test_a_body_that_stops_coming_is_cut_at_the_deadline(tmp_path: Path) -> None:
    """201 whose body stops after its first byte (the connection left open): the
    body is under the answer's deadline too (timeout_seconds = 1), so the attempt
    ends within seconds, and the status decides: a receipt whose body says it was
    cut — not a retried timeout, which would upload the bundle again."""
    def stall(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 100\r\n\r\n{")
        conn.settimeout(10)
        conn.recv(1)  # until the client gives up and closes
    with _raw_server(stall) as port:
        started = time.monotonic()
        receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b",
                                                   timeout_seconds=1), real=True)
    assert receipt.status == 201 and "did not end within 1 s" in receipt.body
    assert receipt.body.startswith("{")
    assert time.monotonic() - started < 5


def test_a_huge_2xx_body_is_read_to_a_limit_and_kept_cut(tmp_path: Path) -> None:
    """201 with 5 MB of JSON: at most ANSWER_LIMIT is read, and the receipt keeps the
    first BODY_LIMIT characters as text (a 31 MB receipt.json and journal row before)."""
    body = json.dumps({"receipt_id": "R-1", "pad": "x" * 5_000_000}).encode()
    answer = _http("201 Created", "Content-Type: application/json\r\n", body)
    with _raw_server(lambda c: c.sendall(answer)) as port:
        receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b"),
                                real=True)
    assert receipt.status == 201 and isinstance(receipt.body, str)
    assert len(receipt.body) == BODY_LIMIT and receipt.body.startswith('{"receipt_id"')


def test_a_100_mb_answer_is_neither_read_whole_nor_held(tmp_path: Path) -> None:
    """201 announcing and sending 100 MB: the deliverer reads ANSWER_LIMIT of it, keeps
    BODY_LIMIT characters, and its memory peak stays a few MB (the answer is never held
    whole); the bundle is sent, as its status says."""

    def flood(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 104857600\r\n\r\n")
        chunk = b"x" * (64 << 10)
        for _ in range(1600):  # until the client hangs up (OSError, suppressed)
            conn.sendall(chunk)

    receipt, peak = _sent_with_peak(tmp_path, flood)
    assert receipt.status == 201 and len(receipt.body) == BODY_LIMIT
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MB"


def test_a_gzip_bomb_is_never_decompressed_past_the_answer_limit(tmp_path: Path) -> None:
    """201 with `Content-Encoding: gzip` (unasked: outboxd asks for identity) whose 1 MB
    unpack to 1 GiB: the deliverer keeps BODY_LIMIT characters of it, and its memory
    peak stays a few MB. httpx decompressed each chunk read whole, some 64 MB at once:
    the peak was 140 MB per delivery worker, at each attempt."""
    import zlib

    pack = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    bomb = b"".join(pack.compress(b"\0" * (64 << 20)) for _ in range(16)) + pack.flush()
    answer = _http("201 Created", "Content-Encoding: gzip\r\n", bomb)
    receipt, peak = _sent_with_peak(tmp_path, lambda c: c.sendall(answer))
    assert receipt.status == 201 and receipt.body == "\0" * BODY_LIMIT
    assert peak < 8 << 20, f"{peak / 2**20:.1f} MB"


@pytest.mark.parametrize(("coding", "packed"), [
    ("gzip", lambda b: gzip.compress(b)),
    ("x-gzip", lambda b: gzip.compress(b)),
    ("deflate", lambda b: zlib.compress(b)),
    ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),  # no zlib header
    ("identity, gzip", lambda b: gzip.compress(b)),
])
def test_a_receipt_compressed_all_the_same_is_read(tmp_path: Path, coding: str,
                                                   packed: Any) -> None:
    """A receiver that compresses its 201 though asked for identity (gzip, deflate with
    or without its zlib header): the receipt is read, its id kept."""
    body = json.dumps({"receipt_id": "R-zip"}).encode()
    answer = _http("201 Created", f"Content-Encoding: {coding}\r\n", packed(body))
    with _raw_server(lambda c: c.sendall(answer)) as port:
        receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b"),
                                real=True)
    assert receipt.receipt_id == "R-zip"


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip", "compress"])
def test_a_coding_outboxd_does_not_read_is_said_and_the_status_decides(
        tmp_path: Path, coding: str) -> None:
    """A Content-Encoding outboxd does not read (one it never asks for, or two in a
    row): the body is kept as a line saying so, and the 201 is a receipt."""
    answer = _http("201 Created", f"Content-Encoding: {coding}\r\n", b"\x1f\x8b??")
    with _raw_server(lambda c: c.sendall(answer)) as port:
        receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b"),
                                real=True)
    assert receipt.status == 201 and receipt.receipt_id is None
    assert receipt.body.startswith("(the answer's body could not be decoded: "
                                   f"Content-Encoding {coding}, which outboxd does not read")


def test_a_body_read_past_the_answers_seconds_is_cut_whatever_the_transport(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """read_answer bounds the body by its own clock too, not only by the transport's
    (answer_deadline.py): a transport without that clock, whose body keeps coming in
    chunks, is cut once the answer's seconds are over, saying so — the worker is not
    held for as long as the receiver goes on. A clock the test moves a second a look."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(answer_body, "time",
                        SimpleNamespace(monotonic=lambda: float(next(ticks))))
    endless = httpx.Response(201, content=(b"x" for _ in range(10**6)))
    read_answer(endless, 3.0)
    assert endless.content == b"xxxx (the answer did not end within 3 s; the rest was not read)"


def test_a_body_is_not_read_past_the_answer_limit() -> None:
    """An answer of 4 MiB: read_answer stops at ANSWER_LIMIT, saying so, and reads no
    more of it (not only keeps no more): a receiver sending without end costs neither
    the bandwidth nor the worker's time past the limit."""
    taken: list[int] = []

    def four_mib() -> Any:
        for n in range(64):
            taken.append(n)
            yield b"x" * (64 << 10)
    answer = httpx.Response(201, content=four_mib())
    read_answer(answer, 60.0)
    assert answer.content.endswith(f"x (the answer was cut at {ANSWER_LIMIT} bytes)".encode())
    assert answer.content.count(b"x") == ANSWER_LIMIT
    assert len(taken) == ANSWER_LIMIT // (64 << 10)
