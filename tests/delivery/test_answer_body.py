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
from daemon.delivery.answer_body import ANSWER_LIMIT, AnswerCut, read_answer
from daemon.delivery.answers import BODY_LIMIT
from daemon.errors import DeliveryError, Retryable
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


def _delivered_or_refused(tmp_path: Path, serve: Any, timeout: float = 1) -> Any:
    """One bundle sent to a raw server answering with `serve`: the Receipt, or the
    DeliveryError the answer was taken for."""
    with _raw_server(serve) as port:
        try:
            return send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b",
                                           timeout_seconds=timeout), real=True)[0]
        except DeliveryError as exc:
            return exc


def test_a_2xx_whose_body_drips_past_the_deadline_is_no_receipt(tmp_path: Path) -> None:
    """201 whose body comes a byte every 0.3 s without end: httpx's timeouts are per
    read, so only the answer's own deadline (timeout_seconds = 1) ends it, about a
    second later. The answer did not come whole, so it is no receipt (filed in sent/
    with a cut body before): retried with the same Idempotency-Key, saying why."""
    def drip(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n")
        while True:
            conn.sendall(b"1\r\nx\r\n")
            threading.Event().wait(0.3)  # the receiver's pace, not a synchronisation
    started = time.monotonic()
    got = _delivered_or_refused(tmp_path, drip)
    assert isinstance(got, Retryable), got
    assert str(got).startswith("the receiver's answer (HTTP 201) did not come whole: its "
                               "body was still coming when the answer's 1 s")
    assert "same Idempotency-Key" in str(got)
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(("status", "headers"), [
    ("201 Created", ""), ("200 OK", ""),
    # Neither a refusal nor a pause is taken from an answer known in part: retried too.
    ("400 Bad Request", ""), ("401 Unauthorized", ""),
    ("503 Service Unavailable", "Retry-After: 3600\r\n")])
def test_an_answer_whose_body_stops_coming_is_retried_at_the_deadline(
        tmp_path: Path, status: str, headers: str) -> None:
    """An answer whose body stops after its first byte (the connection left open): the
    body is under the answer's deadline too (timeout_seconds = 0.5 here, the bound a
    stalled body meets whatever its length), so the attempt ends within seconds, and,
    whatever the status, as one broken off by a close does: no
    answer, retried with the same key (a Retry-After in it not read). A 2xx was filed
    as sent with the cut body, no receipt id read; a 400 quarantined the bundle on half
    a reason."""
    def stall(conn: socket.socket) -> None:
        conn.sendall(f"HTTP/1.1 {status}\r\n{headers}Content-Length: 100\r\n\r\n{{"
                     .encode())
        conn.settimeout(10)
        conn.recv(1)  # until the client gives up and closes
    started = time.monotonic()
    got = _delivered_or_refused(tmp_path, stall, timeout=0.5)
    assert type(got) is Retryable and got.retry_after is None, got
    assert f"(HTTP {status[:3]}) did not come whole" in str(got)
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


def gzip_of_zeros(mib: int) -> bytes:
    """A whole gzip stream (its CRC and size right) of `mib` MiB of zeros, some 1 KB a
    MiB, made in a fraction of a second: one MiB packed and fully flushed (byte-aligned,
    no reference back into it) is the same bytes for every MiB, so it is repeated,
    where packing 1 GiB took 3-4 s of the test."""
    import struct
    import zlib

    zeros = b"\0" * (1 << 20)
    pack = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    head = pack.compress(b"")  # gzip's header
    one = pack.compress(zeros) + pack.flush(zlib.Z_FULL_FLUSH)
    crc = 0
    for _ in range(mib):
        crc = zlib.crc32(zeros, crc)
    # An empty last block (fixed Huffman codes), then CRC-32 and size mod 2**32.
    return head + one * mib + b"\x03\x00" + struct.pack("<II", crc, (mib << 20) % (1 << 32))


def test_a_gzip_of_zeros_is_what_it_says() -> None:
    """gzip_of_zeros, for the bomb below: a stream gzip reads whole, CRC and size
    checked, to that many zeros."""
    import gzip
    assert gzip.decompress(gzip_of_zeros(3)) == b"\0" * (3 << 20)


def test_a_gzip_bomb_is_never_decompressed_past_the_answer_limit(tmp_path: Path) -> None:
    """201 with `Content-Encoding: gzip` (unasked: outboxd asks for identity) whose 1 MB
    unpack to 1 GiB: the deliverer keeps BODY_LIMIT characters of it, and its memory
    peak stays a few MB. httpx decompressed each chunk read whole, some 64 MB at once:
    the peak was 140 MB per delivery worker, at each attempt."""
    answer = _http("201 Created", "Content-Encoding: gzip\r\n", gzip_of_zeros(1024))
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


@pytest.mark.parametrize(("coding", "packed"), [
    ("gzip", lambda b: gzip.compress(b)),
    ("deflate", lambda b: zlib.compress(b)),
    ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS))])  # no zlib header
@pytest.mark.parametrize("cut", ["half", "no trailer"])
def test_a_compressed_body_whose_stream_is_cut_is_kept_saying_so(
        tmp_path: Path, coding: str, packed: Any, cut: str) -> None:
    """A 201 whose body came whole (its Content-Length) but whose gzip or deflate stream
    stops before its end — a writer never closed, which a retry would meet again: the
    status decides, as for a body that does not decode, and the kept body says it was
    cut (it was kept as if whole). Cut inside the trailer, the JSON before it may be
    whole; it is kept as text with the note, no receipt id read from a stream that
    did not end."""
    whole = packed(json.dumps({"receipt_id": "R-zip", "note": "n" * 200}).encode())
    body = whole[:len(whole) // 2] if cut == "half" else whole[:-4]
    answer = _http("201 Created", f"Content-Encoding: {coding}\r\n", body)
    with _raw_server(lambda c: c.sendall(answer)) as port:
        receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b"),
                                real=True)
    assert receipt.status == 201 and receipt.receipt_id is None
    assert receipt.body.startswith('{"receipt_id"')
    assert receipt.body.endswith(f" (the answer's {coding} stream ended before its end: "
                                 "what it held is cut here)")


def test_an_empty_body_said_to_be_gzip_is_kept_empty(tmp_path: Path) -> None:
    """A 201 with `Content-Encoding: gzip` and no body (a server that labels every
    answer so): nothing came, so nothing is said to be cut."""
    answer = _http("201 Created", "Content-Encoding: gzip\r\n", b"")
    with _raw_server(lambda c: c.sendall(answer)) as port:
        receipt, _, _, _ = send(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b"),
                                real=True)
    assert (receipt.status, receipt.body, receipt.receipt_id) == (201, "", None)


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
    chunks, is given up once the answer's seconds are over, as an answer that did not
    come whole (AnswerCut) — the worker is not held for as long as the receiver goes
    on. A clock the test moves a second a look."""
    ticks = iter(range(10**6))
    monkeypatch.setattr(answer_body, "time",
                        SimpleNamespace(monotonic=lambda: float(next(ticks))))
    endless = httpx.Response(201, content=(b"x" for _ in range(10**6)))
    with pytest.raises(AnswerCut, match="its body was still coming when the answer's 3 s"):
        read_answer(endless, 3.0)
    assert endless.is_closed


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
