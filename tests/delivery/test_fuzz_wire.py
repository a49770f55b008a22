"""The delivery against receivers that break the wire (docs/development.md, Fuzzing the
delivery): real sockets on 127.0.0.1, a raw receiver (rawreceiver.py) that resets,
closes, stalls, drips or writes what is no HTTP at each point of an exchange. Each ends
as docs/protocol.md says — retried, never "sent" without a whole 2xx to that very
request, never one request's receipt taken for another's — within the answer's
deadline and a margin; and the same deliverer then delivers the next bundle, taking the
receipt the receiver gave to that request.

One table of named faults, and a seeded sweep that cuts a valid answer at every kind of
place and then closes the connection or falls silent.
"""

from __future__ import annotations

import random
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rawreceiver import RawReceiver, created, take_at_once

from daemon.delivery.answers import Receipt
from daemon.delivery.deliver import HttpDeliverer
from daemon.errors import DeliveryError, Paused, Rejected, Retryable
from daemon.manifest import build_manifest
from delivery.test_deliver import big_bundle, http_cfg, make_bundle

# timeout_seconds of the deliverer: each answer's whole time, and the upload's.
DEADLINE = 0.6
# What a fault may take beyond it (a connection, an upload of 8 MiB on a shared host).
MARGIN = 3.0
# How long a silent receiver stays silent: far past the deadline (a deliverer without
# its bound is seen to wait for the receiver rather than to hang the suite).
SILENCE = 8.0

Answer = Callable[[RawReceiver, socket.socket, int], None]
TakeBody = Callable[[RawReceiver, socket.socket, int, bytes], None]


def reset(conn: socket.socket) -> None:
    """Close with a TCP reset (RST), not an orderly FIN."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def silent(rx: RawReceiver, conn: socket.socket) -> None:
    rx.pace(SILENCE)
    conn.close()


def first_only(hostile: Answer) -> Answer:
    """`hostile` for the first request, then `201 {"receipt_id": "R-n"}` for request n."""
    def answer(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        if n == 0:
            hostile(rx, conn, n)
        else:
            conn.sendall(created(f"R-{n}"))
    return answer


def body_once(hostile: Callable[[RawReceiver, socket.socket, int, bytes], None]) -> TakeBody:
    """`hostile` takes the first request's body (it raises OSError, or resets, to end
    the connection there); every later body is taken at once."""
    calls = [0]

    def take(rx: RawReceiver, conn: socket.socket, length: int, got: bytes) -> None:
        calls[0] += 1
        if calls[0] == 1:
            hostile(rx, conn, length, got)
            raise OSError("the receiver broke the connection")
        take_at_once(rx, conn, length, got)
    return take


def reset_before_body(rx: RawReceiver, conn: socket.socket, length: int, got: bytes) -> None:
    reset(conn)


def reset_mid_body(rx: RawReceiver, conn: socket.socket, length: int, got: bytes) -> None:
    size = len(got)
    while size < length // 2:
        size += len(conn.recv(65536))
    reset(conn)


def raw(data: bytes, then: str = "close", ended: threading.Semaphore | None = None
        ) -> Answer:
    """Write `data`, then close the connection, reset it, or fall silent; `ended` is
    released once it is closed or reset."""
    def answer(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        if data:
            conn.sendall(data)
        if then == "reset":
            reset(conn)
        elif then == "silent":
            silent(rx, conn)
        else:
            conn.close()
        if ended is not None:
            ended.release()
    return answer


def drip(data: bytes, every: float) -> Answer:
    """Write `data` a byte each `every` seconds (the connection kept for the next)."""
    def answer(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        for i in range(len(data)):
            if not rx.pace(every):
                return
            conn.sendall(data[i:i + 1])
    return answer


def created_n(rx: RawReceiver, conn: socket.socket, n: int) -> None:
    conn.sendall(created(f"R-{n}"))


def receipt_with_trailer(rx: RawReceiver, conn: socket.socket, n: int) -> None:
    """A 201 whose Content-Length is shorter than what follows: the rest looks like the
    answer to the next request on the kept-alive connection."""
    conn.sendall(created(f"R-{n}") + created("R-STALE"))


class KeptAliveThenClosed:
    """A 201 that keeps the connection alive, then the receiver closes it (its idle
    timeout), before the next request: `settle` waits until it has."""

    def __init__(self) -> None:
        self.closed = threading.Semaphore(0)

    def __call__(self, rx: RawReceiver, conn: socket.socket, n: int) -> None:
        conn.sendall(created(f"R-{n}"))
        conn.shutdown(socket.SHUT_RDWR)
        conn.close()
        self.closed.release()

    def settle(self) -> None:
        assert self.closed.acquire(timeout=SILENCE), "the receiver did not close"


STATUS = b"HTTP/1.1 201 Created\r\n"
HEAD = STATUS + b"Content-Type: application/json\r\n"


@dataclass(frozen=True)
class Fault:
    answer: Answer
    # Expected outcomes of consecutive deliveries: "sent R-n" (the receipt of request
    # n), or "retry". Each delivery is a bundle of its own.
    outcomes: tuple[str, ...]
    take_body: TakeBody | None = None
    big: bool = False  # a body larger than the sockets' buffers (8 MiB)
    # Waits, after each delivery, for what the receiver does between requests.
    settle: Callable[[], None] | None = None


FAULTS = {
    "reset before the body is read": Fault(
        created_n, ("retry", "sent R-0"), body_once(reset_before_body)),
    "reset while the body is read": Fault(
        created_n, ("retry", "sent R-0"), body_once(reset_mid_body), big=True),
    "reset after the request, before any answer": Fault(
        first_only(raw(b"", "reset")), ("retry", "sent R-1")),
    "closed after the request, before any answer": Fault(
        first_only(raw(b"")), ("retry", "sent R-1")),
    "half a status line, then closed": Fault(
        first_only(raw(b"HTTP/1.1 20")), ("retry", "sent R-1")),
    "half a status line, then silence": Fault(
        first_only(raw(b"HTTP/1.1 20", "silent")), ("retry", "sent R-1")),
    "headers without end, then closed": Fault(
        first_only(raw(HEAD + b"X-Pad: 1\r\n")), ("retry", "sent R-1")),
    "headers without end, then silence": Fault(
        first_only(raw(HEAD + b"X-Pad: 1\r\n", "silent")), ("retry", "sent R-1")),
    "status line dripped past the deadline": Fault(
        first_only(drip(HEAD + b"Content-Length: 2\r\n\r\n{}", 0.1)), ("retry", "sent R-1")),
    "a whole answer dripped within the deadline": Fault(
        first_only(drip(created("R-0"), 0.002)), ("sent R-0", "sent R-1")),
    "100 Continue, then silence": Fault(
        first_only(raw(b"HTTP/1.1 100 Continue\r\n\r\n", "silent")), ("retry", "sent R-1")),
    "100 Continue, then the answer": Fault(
        first_only(lambda rx, c, n: c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n"
                                              + created("R-0"))), ("sent R-0", "sent R-1")),
    "101 Switching Protocols": Fault(
        first_only(raw(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n"
                       b"Connection: Upgrade\r\n\r\n", "silent")), ("retry", "sent R-1")),
    "a chunked 500 that never ends": Fault(
        first_only(raw(b"HTTP/1.1 500 Oops\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"5\r\nhello\r\n", "silent")), ("retry", "sent R-1")),
    # An answer not known whole is no answer (docs/protocol.md), whether its body is
    # cut by a close or by the deadline: no receipt, retried with the same key.
    "a chunked 201 that never ends": Fault(
        first_only(raw(HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                       b'14\r\n{"receipt_id": "R-0"\r\n', "silent")), ("retry", "sent R-1")),
    "a chunked 201 cut by a close": Fault(
        first_only(raw(HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
                       b'14\r\n{"receipt_id": "R-0"\r\n')), ("retry", "sent R-1")),
    "a 201 whose Content-Length is longer than its body, then closed": Fault(
        first_only(raw(HEAD + b"Content-Length: 90\r\n\r\n{\"receipt_id\": \"R-0\"}")),
        ("retry", "sent R-1")),
    "SSH's banner instead of HTTP": Fault(
        first_only(raw(b"SSH-2.0-OpenSSH_9.6\r\n")), ("retry", "sent R-1")),
    "random bytes instead of HTTP": Fault(
        first_only(raw(random.Random(5).randbytes(300), "silent")), ("retry", "sent R-1")),
    "an answer running on past its Content-Length": Fault(
        # The receiver answers the second request too (R-1, unread) if it has read it
        # whole before the deliverer, seeing the spoilt connection, closed it — a race
        # of the two threads (a loaded host loses it): the third bundle gets the receipt
        # of the last request the receiver took, R-2 or R-1 (LAST).
        receipt_with_trailer, ("sent R-0", "retry", "sent R-LAST")),
    "the kept-alive connection closed between requests": Fault(
        closing := KeptAliveThenClosed(), ("sent R-0", "sent R-1", "sent R-2"),
        settle=closing.settle),
}


def deliver_each(rx: RawReceiver, tmp_path: Path, count: int, big: bool = False,
                 settle: Callable[[], None] | None = None) -> list[tuple[str, Any, float]]:
    """`count` deliveries of bundles of their own through one deliverer, in turn: each
    one's outcome ("sent R-n" by its receipt id, "retry", or what else it was), what
    it returned or raised, and the seconds it took."""
    deliverer = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{rx.port}/b",
                                       timeout_seconds=DEADLINE, token="tok-wire-9"))
    done: list[tuple[str, Any, float]] = []
    try:
        for i in range(count):
            bundle = big_bundle(tmp_path / f"b{i}") if big and i == 0 \
                else make_bundle(tmp_path / f"b{i}")
            started = time.monotonic()
            try:
                got: Any = deliverer.deliver(bundle, build_manifest(bundle))
            except (Retryable, Paused, Rejected) as exc:
                got = exc
            took = time.monotonic() - started
            kind = (f"sent {got.receipt_id}" if isinstance(got, Receipt)
                    else "retry" if isinstance(got, Retryable) else type(got).__name__)
            done.append((kind, got, took))
            if settle is not None:
                settle()
    finally:
        deliverer.close()
    return done


@pytest.mark.parametrize("name", FAULTS)
def test_a_receiver_that_breaks_the_wire_is_retried_and_the_next_bundle_goes(
        tmp_path: Path, name: str) -> None:
    """Each fault of FAULTS ends as docs/protocol.md says (a retry, with the same key;
    a whole 2xx is that request's receipt), within DEADLINE and MARGIN, without the
    token in what is said; and the deliverer goes on: each next bundle is sent on the
    receipt the receiver gave to its own request."""
    fault = FAULTS[name]
    with RawReceiver(fault.answer, take_body=fault.take_body) as rx:
        done = deliver_each(rx, tmp_path, len(fault.outcomes), fault.big, fault.settle)
        last = f"R-{rx.requests - 1}"
    assert [kind for kind, _, _ in done] == [o.replace("R-LAST", last)
                                             for o in fault.outcomes], done
    for _, got, took in done:
        assert took < DEADLINE + MARGIN + (DEADLINE * 8 if fault.big else 0), done
        if isinstance(got, DeliveryError):
            assert "tok-wire-9" not in f"{got} {got.body}"



def whole_answer(rng: random.Random) -> bytes:
    """A valid 201 with a receipt, its body by Content-Length or chunked."""
    body = b'{"receipt_id": "R-0", "note": "' + b"x" * rng.randrange(0, 300) + b'"}'
    if rng.random() < 0.5:
        return HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode() + body
    cut = rng.randrange(1, len(body))
    chunks = b"".join(f"{len(p):x}\r\n".encode() + p + b"\r\n"
                      for p in (body[:cut], body[cut:]))
    return HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n"


def cut_answers(seed: int, rounds: int) -> list[Any]:
    """Valid answers, each cut somewhere and then closed, reset or left silent (`rounds`
    of each kind of place and each end, a whole answer only closed or reset),
    with the outcomes docs/protocol.md allows for the first delivery: whole and closed,
    sent; cut anywhere else, retried — in its status line or headers, or in its body,
    whether the connection is then closed, reset or left silent until the deadline (an
    answer not known whole is no answer). A reset may discard what had come and not
    been read: retried."""
    rng = random.Random(seed)
    made = []
    kinds = [(where, then) for where in ("status line", "headers", "body", "whole")
             for then in ("close", "reset", "silent")
             if (where, then) != ("whole", "silent")]
    for where, then in kinds * rounds:
        data = whole_answer(rng)
        head_end = data.index(b"\r\n\r\n") + 4
        k = {"status line": rng.randrange(0, len(STATUS)),
             "headers": rng.randrange(len(STATUS), head_end),
             "body": rng.randrange(head_end, len(data)),
             "whole": len(data)}[where]
        allowed = {"sent R-0"} if where == "whole" else {"retry"}
        if then == "reset":
            allowed.add("retry")
        made.append(pytest.param(data[:k], then, allowed, id=f"{where} {k} {then}"))
    return made


@pytest.mark.parametrize(("cut", "then", "allowed"), cut_answers(20261207, 2))
def test_a_valid_answer_cut_anywhere_is_a_receipt_only_when_whole(
        tmp_path: Path, cut: bytes, then: str, allowed: set[str]) -> None:
    """A 201 cut at a place the seed chose, then closed, reset or left silent: never
    a receipt unless it came whole, status line, headers and body; within the deadline
    and a margin; and the next bundle is sent on its own answer."""
    ended = threading.Semaphore(0)

    def settle() -> None:
        # The next bundle after the receiver has closed: a request sent on the
        # connection as it closes meets the close (a retry, docs/development.md).
        if then != "silent" and not done_settling:
            assert ended.acquire(timeout=SILENCE), "the receiver did not end"
            done_settling.append(True)

    done_settling: list[bool] = []
    with RawReceiver(first_only(raw(cut, then, ended))) as rx:
        done = deliver_each(rx, tmp_path, 2, settle=settle)
    (first, _, took), (second, _, _) = done
    assert first in allowed and second == "sent R-1", done
    assert took < DEADLINE + MARGIN, done


def test_a_2xx_cut_at_the_deadline_is_filed_on_the_stored_answer_to_its_retry(
        tmp_path: Path) -> None:
    """A receiver that answers 201 and then stalls in the body (a store that hangs after
    the status line went out): no receipt, retried with the same Idempotency-Key; the
    receiver answers the retry as the Idempotency-Key draft has it, with its stored
    first answer, whole (200, the same receipt id): that files the bundle, with the
    receipt id the first answer held. Taken as sent on the status alone, the bundle went
    to sent/ with a cut body and no receipt id."""
    first = b'{"receipt_id": "R-first"}'
    keys: list[str] = []

    def answer(rx: RawReceiver, conn: socket.socket, n: int) -> None:
        key = re.search(r"(?im)^idempotency-key: *(\S+)", rx.head())
        keys.append(key.group(1) if key else "")
        if n == 0:
            raw(HEAD + f"Content-Length: {len(first)}\r\n\r\n".encode() + first[:9],
                "silent")(rx, conn, n)
        else:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                         + f"Content-Length: {len(first)}\r\n\r\n".encode() + first)

    bundle = make_bundle(tmp_path / "b")
    manifest = build_manifest(bundle)
    with RawReceiver(answer) as rx:
        deliverer = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{rx.port}/b",
                                           timeout_seconds=DEADLINE))
        try:
            started = time.monotonic()
            with pytest.raises(Retryable, match=r"\(HTTP 201\) did not come whole"):
                deliverer.deliver(bundle, manifest)
            assert time.monotonic() - started < DEADLINE + MARGIN
            receipt = deliverer.deliver(bundle, manifest)
        finally:
            deliverer.close()
    assert (receipt.status, receipt.receipt_id) == (200, "R-first")
    assert keys == [manifest["bundle_id"]] * 2
