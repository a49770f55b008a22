"""The receiver's whole answer within [delivery] timeout_seconds
(daemon/delivery/answer_deadline.py, docs/protocol.md): receivers that keep a delivery waiting
before their status line end as a retried timeout, over plain HTTP, TLS, a proxy and Basic auth
alike; a kept-alive connection gives each request its own time, and an upload's time is not taken
from the answer's; an upload has a bound of its own (timeout_seconds, and as much again a MiB).

Against a raw-socket receiver on 127.0.0.1 (rawreceiver.py), which paces its bytes as
a misbehaving receiver would; the tests themselves only wait on the deliverer.
"""

from __future__ import annotations

import importlib.util
import re
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpcore
import httpx
import pytest
from rawreceiver import RawReceiver, created

from daemon.bundle import Bundle
from daemon.configuration.config import DeliveryConfig
from daemon.delivery import answer_deadline
from daemon.delivery.deliver import HttpDeliverer, make_deliverer
from daemon.errors import ConfigError, Paused, Rejected, Retryable
from daemon.manifest import build_manifest
from delivery.test_deliver import URL, attachment, big_bundle, http_cfg, make_bundle
from delivery.test_tls import SERVER_NAME, _certificates

# Long enough that a deliverer without the bound is seen to fail (it gives up only when
# the receiver does) rather than to hang the suite.
GIVE_UP = 8.0
# A receiver on another machine, as far as outboxd knows: a proxy of the environment is
# used for it (a url on this machine never goes through one). Never resolved: the proxy
# on 127.0.0.1 takes the request.
ELSEWHERE = "http://rx.example:9/x"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY",
                   "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


def processing_without_end(rx: RawReceiver, conn: socket.socket, n: int) -> None:
    """`102 Processing` every 0.2 s and never a final answer (until GIVE_UP)."""
    until = time.monotonic() + GIVE_UP
    while time.monotonic() < until and rx.pace(0.2):
        conn.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
    conn.close()


def deliver_once(tmp_path: Path, cfg: DeliveryConfig) -> Any:
    """One delivery of test_deliver's bundle over the network; its Receipt, or the
    DeliveryError it raised."""
    bundle = make_bundle(tmp_path / "work")
    d = HttpDeliverer(cfg)
    try:
        return d.deliver(bundle, build_manifest(bundle))
    except Retryable as exc:
        return exc
    finally:
        d.close()


def assert_timed_out(outcome: Any, started: float, seconds: float = 1.0) -> None:
    """A retried timeout, which took about the `seconds` of timeout_seconds (not less)."""
    elapsed = time.monotonic() - started
    assert isinstance(outcome, Retryable), outcome
    assert "timed out talking to the receiver" in str(outcome) and outcome.status is None
    assert 0.9 * seconds <= elapsed < 5, elapsed


# timeout_seconds of the tests of answers that never come (TestAnswersThatNeverCome):
# each waits it out in full, and what they show (the bound ends the attempt, over
# whichever way the POST goes) is the same at half a second as at the shipped minute.
NEVER = 0.5


def deliver_with_deadline(tmp_path: Path,
                          answer: Callable[[RawReceiver, socket.socket, int], None]
                          ) -> tuple[Any, float]:
    """One delivery to a RawReceiver answering with `answer`, timeout_seconds = NEVER:
    its outcome (as deliver_once) and the seconds it took from the request."""
    with RawReceiver(answer) as rx:
        started = time.monotonic()
        outcome = deliver_once(tmp_path, http_cfg(url=f"http://127.0.0.1:{rx.port}/b",
                                                  timeout_seconds=NEVER))
    return outcome, time.monotonic() - started


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for var in PROXY_VARIABLES:
        monkeypatch.delenv(var, raising=False)
    return monkeypatch


def test_a_connection_the_receiver_never_accepts_is_a_timeout_after_the_connect_bound(
        tmp_path: Path) -> None:
    """A receiver whose SYNs go unanswered (here a listener on 127.0.0.1 whose one-place
    queue is full, so the kernel drops them, as a firewall that drops packets does):
    with connect_timeout_seconds = 0.5 the attempt is a retried ConnectTimeout within
    about that, not the kernel's own minutes of SYN retries."""
    with socket.create_server(("127.0.0.1", 0), backlog=0) as listener:
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):  # fills the queue
            started = time.monotonic()
            outcome = deliver_once(tmp_path, http_cfg(url=f"http://127.0.0.1:{port}/b",
                                                      connect_timeout_seconds=0.5))
            elapsed = time.monotonic() - started
    assert isinstance(outcome, Retryable) and outcome.status is None, outcome
    assert "timed out talking to the receiver (ConnectTimeout)" in str(outcome)
    assert 0.4 <= elapsed < 3, elapsed


class TestAnswersThatNeverCome:
    def test_102_processing_without_end_is_a_timeout(self, tmp_path: Path) -> None:
        """A receiver that answers `102 Processing` every 0.2 s and never a final status
        (each read's timeout met): with timeout_seconds = NEVER the attempt fails as a
        retried timeout about that long after the request, not when the receiver
        stops."""
        outcome, elapsed = deliver_with_deadline(tmp_path, processing_without_end)
        assert isinstance(outcome, Retryable) and outcome.status is None, outcome
        assert "timed out talking to the receiver" in str(outcome)
        assert 0.9 * NEVER <= elapsed < 5, elapsed

    def test_100_continue_and_then_nothing_is_a_timeout(self, tmp_path: Path) -> None:
        """A receiver that answers `100 Continue` (unasked: outboxd sends no Expect
        header) and then nothing until GIVE_UP: with timeout_seconds = NEVER the attempt
        fails as a retried timeout about that long after the request."""
        def continue_then_silence(rx: RawReceiver, conn: socket.socket, n: int) -> None:
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
            rx.pace(GIVE_UP)
            conn.close()

        outcome, elapsed = deliver_with_deadline(tmp_path, continue_then_silence)
        assert isinstance(outcome, Retryable) and outcome.status is None, outcome
        assert "timed out talking to the receiver" in str(outcome)
        assert 0.9 * NEVER <= elapsed < 5, elapsed

    def test_a_status_line_sent_a_byte_at_a_time_is_a_timeout(self, tmp_path: Path) -> None:
        """A receiver that sends `HTTP/1.1 201 Created` and its headers one byte every
        0.2 s (the whole answer would take about 9 s): with timeout_seconds = NEVER the
        attempt fails as a retried timeout within seconds, and no receipt is made of it."""
        def drip(rx: RawReceiver, conn: socket.socket, n: int) -> None:
            for byte in b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}":
                if not rx.pace(0.2):
                    return
                conn.sendall(bytes([byte]))

        outcome, elapsed = deliver_with_deadline(tmp_path, drip)
        assert isinstance(outcome, Retryable) and outcome.status is None, outcome
        assert "timed out talking to the receiver" in str(outcome)
        assert 0.9 * NEVER <= elapsed < 5, elapsed

    def test_an_https_receiver_is_under_the_same_bound(self, tmp_path: Path) -> None:
        """Over TLS (the stream the handshake hands back is the one read): `102
        Processing` without end from an https:// receiver is a timeout as over HTTP."""
        ca, cert, key, _, _ = _certificates(tmp_path)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(str(cert), str(key))
        with RawReceiver(processing_without_end, tls=server) as rx:
            started = time.monotonic()
            outcome = deliver_once(tmp_path, http_cfg(url=f"https://127.0.0.1:{rx.port}/b",
                                                      verify=str(ca), timeout_seconds=NEVER))
        assert_timed_out(outcome, started, NEVER)
        assert rx.heads and rx.heads[0].startswith("POST /b ")

    def test_a_proxy_from_the_environment_is_under_the_same_bound(
            self, tmp_path: Path, no_proxies: pytest.MonkeyPatch) -> None:
        """With HTTP_PROXY set the POST goes to the proxy (its request line names the
        receiver's url), and a proxy that answers `102 Processing` without end is a
        timeout as a receiver would be."""
        with RawReceiver(processing_without_end) as rx:
            no_proxies.setenv("HTTP_PROXY", f"http://127.0.0.1:{rx.port}")
            started = time.monotonic()
            outcome = deliver_once(tmp_path, http_cfg(url=ELSEWHERE, timeout_seconds=NEVER))
        assert_timed_out(outcome, started, NEVER)
        assert rx.heads and rx.heads[0].startswith(f"POST {ELSEWHERE} ")

    def test_an_https_receiver_behind_a_proxy_is_under_the_same_bound(
            self, tmp_path: Path, no_proxies: pytest.MonkeyPatch) -> None:
        """HTTPS_PROXY and an https:// url: the POST goes by the proxy's CONNECT tunnel,
        TLS inside it (the stream the tunnel's handshake hands back is the one read),
        and `102 Processing` without end at its far end is a timeout."""
        ca, cert, key, _, _ = _certificates(tmp_path)
        server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server.load_cert_chain(str(cert), str(key))
        with RawReceiver(processing_without_end, tls=server, tunnel=True) as rx:
            no_proxies.setenv("HTTPS_PROXY", f"http://127.0.0.1:{rx.port}")
            started = time.monotonic()
            outcome = deliver_once(tmp_path, http_cfg(url=f"https://{SERVER_NAME}:9/b",
                                                      verify=str(ca), timeout_seconds=NEVER))
        assert_timed_out(outcome, started, NEVER)
        assert [h.split(" ")[:2] for h in rx.heads] == [["CONNECT", f"{SERVER_NAME}:9"],
                                                         ["POST", "/b"]]

    def test_a_url_with_user_and_password_is_under_the_same_bound(
            self, tmp_path: Path, no_proxies: pytest.MonkeyPatch) -> None:
        """url = http://user:password@… (Basic auth, made by httpx's Client): the POST
        carries the Authorization header, and `102 Processing` without end is a
        timeout."""
        with RawReceiver(processing_without_end) as rx:
            started = time.monotonic()
            outcome = deliver_once(tmp_path, http_cfg(
                url=f"http://alice:s3cret@127.0.0.1:{rx.port}/b", timeout_seconds=NEVER))
        assert_timed_out(outcome, started, NEVER)
        assert rx.heads and "Authorization: Basic YWxpY2U6czNjcmV0" in rx.heads[0]


class TestAnswersInTime:
    def test_each_request_on_a_kept_alive_connection_gets_its_own_time(
            self, tmp_path: Path) -> None:
        """Three POSTs of one deliverer on one kept-alive connection, timeout_seconds = 1:
        the first two are answered after 0.6 s each (1.2 s together) and both are
        receipts — the clock starts again with each request; the third gets `102
        Processing` without end and is a retried timeout on the same connection."""
        def answer(rx: RawReceiver, conn: socket.socket, n: int) -> None:
            if n == 2:
                processing_without_end(rx, conn, n)
                return
            conn.sendall(b"HTTP/1.1 102 Processing\r\n\r\n")
            if rx.pace(0.6):
                conn.sendall(created(f"R-{n}"))

        bundle = make_bundle(tmp_path / "work")
        manifest = build_manifest(bundle)
        with RawReceiver(answer) as rx:
            d = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{rx.port}/b", timeout_seconds=1))
            try:
                receipts = [d.deliver(bundle, manifest).receipt_id for _ in range(2)]
                started = time.monotonic()
                with pytest.raises(Retryable) as info:
                    d.deliver(bundle, manifest)
                outcome = info.value
            finally:
                d.close()
        assert receipts == ["R-0", "R-1"]
        assert_timed_out(outcome, started)
        assert rx.connections == 1 and len(rx.heads) == 3

    def test_a_slow_upload_does_not_count(self, tmp_path: Path) -> None:
        """A 12 MiB bundle the receiver takes in slowly (it stops reading three times
        for 0.6 s, each wait shorter than timeout_seconds = 1, the upload longer), then
        answers at once: a receipt. The answer's time starts when the request is sent."""
        def take_slowly(rx: RawReceiver, conn: socket.socket, length: int, got: bytes) -> None:
            size, pauses = len(got), [0, 1 << 20, 2 << 20]
            while size < length:
                if pauses and size >= pauses[0]:
                    pauses.pop(0)
                    rx.pace(0.6)
                chunk = conn.recv(min(65536, length - size))
                if not chunk:
                    raise OSError("the request ended early")
                size += len(chunk)

        work = tmp_path / "work"
        bundle = make_bundle(work)
        big = attachment(work, "INV-2", "batch-42/INV-2/hours.csv", b"1;2\n" * (3 << 20),
                         "text/csv")
        bundle = replace(bundle, attachments=(*bundle.attachments, big))
        with RawReceiver(lambda rx, conn, n: conn.sendall(created("R-big")),
                         take_body=take_slowly) as rx:
            d = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{rx.port}/b", timeout_seconds=1))
            try:
                receipt = d.deliver(bundle, build_manifest(bundle))
            finally:
                d.close()
        assert receipt.receipt_id == "R-big"
        assert rx.uploads[0] > 1.5  # the upload did take longer than timeout_seconds

    @pytest.mark.parametrize("scheme", ["http", "https"])
    def test_an_upload_the_receiver_takes_in_too_slowly_is_a_timeout(
            self, tmp_path: Path, scheme: str) -> None:
        """A receiver that reads a 12 MiB bundle 16 KiB every 0.1 s (each 64 KiB write
        taken well within timeout_seconds = 1, the whole upload over a minute) held the
        delivery worker until it was done: the upload's time (1 s, and 1 s a MiB
        written) ends the attempt as a retried timeout within seconds, no receipt.
        Over TLS alike (there a write is one SSL write, bounded as a whole)."""
        def take_at_a_crawl(rx: RawReceiver, conn: socket.socket, length: int,
                            got: bytes) -> None:
            size = len(got)
            while size < length and rx.pace(0.1):
                chunk = conn.recv(min(16 << 10, length - size))
                if not chunk:
                    raise OSError("the request ended early")
                size += len(chunk)

        work = tmp_path / "work"
        bundle = make_bundle(work)
        big = attachment(work, "INV-2", "batch-42/INV-2/hours.csv", b"1;2\n" * (3 << 20),
                         "text/csv")
        bundle = replace(bundle, attachments=(*bundle.attachments, big))
        tls: dict[str, Any] = {}
        if scheme == "https":
            ca, cert, key, _, _ = _certificates(tmp_path)
            server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server.load_cert_chain(str(cert), str(key))
            tls = {"server": server, "verify": str(ca)}
        with RawReceiver(lambda rx, conn, n: conn.sendall(created("R-slow")),
                         take_body=take_at_a_crawl, tls=tls.get("server")) as rx:
            d = HttpDeliverer(http_cfg(url=f"{scheme}://127.0.0.1:{rx.port}/b",
                                       timeout_seconds=1, verify=tls.get("verify", True)))
            started = time.monotonic()
            try:
                outcome: Any = d.deliver(bundle, build_manifest(bundle))
            except Retryable as exc:
                outcome = exc
            finally:
                d.close()
            elapsed = time.monotonic() - started
        assert isinstance(outcome, Retryable) and outcome.status is None, outcome
        # Said as the upload's timeout over TLS too, where the socket is readable with the
        # server's post-handshake records (TLS 1.3 session tickets), so the stalled upload
        # is taken for one the receiver may have answered (an early 413) and its answer
        # looked for: none comes. It said ReadTimeout, which docs/operations.md explains
        # as an answer slow to come after the upload's end — the wrong cause to the admin.
        assert "timed out talking to the receiver (WriteTimeout" in str(outcome), outcome
        # With its figures, which the advice to raise timeout_seconds rests on (before:
        # the class name alone): how much of the request went in, in what time, and the
        # time allowed for that much.
        words = re.fullmatch(
            r"timed out talking to the receiver \(WriteTimeout: the receiver took in "
            r"([\d.]+) MiB of the request in ([\d.]+) s, where ([\d.]+) s are allowed for "
            r"([\d.]+) MiB \(\[delivery\] timeout_seconds = 1: 1 s, and 1 s for each MiB\)\)",
            str(outcome))
        assert words is not None, outcome
        taken, took, allowed, size = map(float, words.groups())
        assert taken <= size <= 12.1 and allowed == pytest.approx(1 + size, abs=0.1)
        assert took <= allowed + 0.1 and elapsed >= took - 0.1  # rounded to 0.1 s
        # At most 1 s + 1 s for each of the 12 MiB: what was written by then (the
        # socket buffers' few MiB at once, then the crawl) ends it sooner; over TLS one
        # more second for the answer looked for.
        assert elapsed < 13 + 1 + (1 if scheme == "https" else 0), elapsed

    def test_no_proxy_still_sends_the_post_straight(
            self, tmp_path: Path, no_proxies: pytest.MonkeyPatch) -> None:
        """HTTP_PROXY names a proxy where nothing listens, NO_PROXY the receiver's
        address: the POST goes straight to the receiver, as httpx decides it."""
        with RawReceiver(lambda rx, conn, n: conn.sendall(created("straight"))) as rx:
            no_proxies.setenv("HTTP_PROXY", "http://127.0.0.1:9")
            no_proxies.setenv("NO_PROXY", "127.0.0.1")
            outcome = deliver_once(tmp_path, http_cfg(url=f"http://127.0.0.1:{rx.port}/b"))
        assert outcome.receipt_id == "straight"
        assert rx.heads and rx.heads[0].startswith("POST /b ")


    @pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "localhost"])
    def test_a_receiver_on_this_machine_never_goes_through_the_environments_proxy(
            self, tmp_path: Path, no_proxies: pytest.MonkeyPatch, host: str) -> None:
        """HTTP_PROXY set (a unit's Environment=) and no NO_PROXY: a receiver on this
        machine gets the POST itself, and the proxy — on another machine in life, which
        could not reach our loopback — sees nothing, least of all the token, which the
        url check lets go over plain http:// to this machine only."""
        with RawReceiver(lambda rx, conn, n: conn.sendall(created("here"))) as proxy, \
                RawReceiver(lambda rx, conn, n: conn.sendall(created("straight")),
                            family=socket.AF_INET6 if host == "[::1]" else socket.AF_INET
                            ) as rx:
            no_proxies.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.port}")
            outcome = deliver_once(tmp_path, http_cfg(url=f"http://{host}:{rx.port}/b",
                                                      token="s3cret-token"))
        assert outcome.receipt_id == "straight", outcome
        assert proxy.heads == [] and rx.heads[0].startswith("POST /b ")
        assert "Bearer s3cret-token" in rx.heads[0]



def test_a_no_proxy_list_httpx_cannot_parse_does_not_stop_deliveries(
        tmp_path: Path, no_proxies: pytest.MonkeyPatch) -> None:
    """NO_PROXY with an IPv6 network and a bracketed address (as some hosts and
    container tools set it), with no proxy set: httpx's own reading of it makes a
    Client that cannot be built (a traceback at start); outboxd's deliverer is made and
    the POST goes straight to the receiver."""
    no_proxies.setenv("NO_PROXY", "localhost,::1,fd00::/8,[::1]")
    with RawReceiver(lambda rx, conn, n: conn.sendall(created("straight"))) as rx:
        outcome = deliver_once(tmp_path, http_cfg(url=f"http://127.0.0.1:{rx.port}/b"))
    assert outcome.receipt_id == "straight"


@pytest.mark.parametrize("proxy", ["ftp://proxy.example:21", "socks5://u:Pr0xyPass@s.example"])
def test_a_proxy_outboxd_cannot_use_is_a_configuration_error(
        no_proxies: pytest.MonkeyPatch, proxy: str) -> None:
    """A proxy variable that names no proxy url httpx speaks, or a SOCKS proxy without
    the socksio package (not one of outboxd's dependencies), is a ConfigError when the
    deliverer is made, one that does not quote the value (it may hold a password)."""
    if proxy.startswith("socks") and importlib.util.find_spec("socksio") is not None:
        pytest.skip("socksio is installed here: SOCKS proxies are usable")
    no_proxies.setenv("ALL_PROXY", proxy)  # the proxy for the receiver's url, whatever its scheme
    with pytest.raises(ConfigError) as info:
        make_deliverer(http_cfg(url=ELSEWHERE))
    assert "proxy" in str(info.value) and proxy not in str(info.value)
    assert "Pr0xyPass" not in str(info.value)


def test_a_given_transport_still_takes_every_post(tmp_path: Path,
                                                  no_proxies: pytest.MonkeyPatch) -> None:
    """A transport handed to HttpDeliverer (httpx.MockTransport in tests) gets the POST
    even with a proxy in the environment: the bounded transports are made only when none
    is given."""
    no_proxies.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(201, json={"receipt_id": "mock"})

    bundle: Bundle = make_bundle(tmp_path / "work")
    d = HttpDeliverer(http_cfg(), transport=httpx.MockTransport(answer))
    try:
        assert d.deliver(bundle, build_manifest(bundle)).receipt_id == "mock"
    finally:
        d.close()
    assert seen == [URL]


def test_the_end_of_a_request_all_written_in_time_is_no_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A request with a Content-Length ends with an empty write (h11's end of message,
    which httpcore hands on). Its body all taken in within the upload's time, that
    empty write comes after the time is up when the last piece went out at its end: it
    was a WriteTimeout, the attempt retried though the receiver had the whole request
    (and the same slow link met it again at every retry). Nothing to write takes no
    time. The clock is the module's, moved by the test."""
    clock = [100.0]
    monkeypatch.setattr(answer_deadline.time, "monotonic", lambda: clock[0])
    with socket.create_server(("127.0.0.1", 0)) as listener:
        stream = answer_deadline.AnswerClockBackend(1.0).connect_tcp(
            "127.0.0.1", listener.getsockname()[1], timeout=5)
        conn, _ = listener.accept()
        try:
            stream.write(b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab", timeout=5)
            clock[0] += 2.0  # past the upload's 1 s (and 1 s a MiB)
            stream.write(b"", timeout=5)  # raised WriteTimeout before
            received = b""
            while not received.endswith(b"ab"):
                received += conn.recv(1024)
            assert received == b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nab"
        finally:
            stream.close()
            conn.close()


class TestAnswersNotTheirs:
    def test_an_answer_waiting_before_the_request_was_sent_is_not_taken(
            self, tmp_path: Path) -> None:
        """The receiver follows its first answer with a second one on the kept-alive
        connection (or sends more body than its Content-Length says), and refuses every
        later request. The next POST on that connection read the left-over bytes as its
        own answer: a 201 that was not its own filed it as sent. Now such an answer
        is not taken (retried with the same key), the connection is dropped, and the
        next attempt, on a new connection, gets the receiver's real answer (422)."""
        def answer(rx: RawReceiver, conn: socket.socket, n: int) -> None:
            if n == 0:
                conn.sendall(created("R-first") + created("R-STRAY"))
            else:
                conn.sendall(b"HTTP/1.1 422 Unprocessable Content\r\nContent-Length: 7\r\n"
                             b"\r\nrefused")

        with RawReceiver(answer) as rx:
            d = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{rx.port}/b"))
            outcomes: list[Any] = []
            try:
                for n in range(3):
                    bundle = make_bundle(tmp_path / f"w{n}")
                    try:
                        outcomes.append(d.deliver(bundle, build_manifest(bundle)))
                    except (Retryable, Rejected) as exc:
                        outcomes.append(exc)
            finally:
                d.close()
        first, stray, real = outcomes
        assert first.receipt_id == "R-first"
        assert isinstance(stray, Retryable)
        assert "an answer was already waiting on the kept-alive connection" in str(stray)
        assert isinstance(real, Rejected) and real.status == 422
        assert rx.connections == 2

    @pytest.mark.parametrize(("status", "outcome"), [("413 Content Too Large", Rejected),
                                                     ("401 Unauthorized", Paused)])
    def test_an_early_answer_from_a_receiver_that_stops_reading_decides(
            self, tmp_path: Path, status: str, outcome: type[Exception]) -> None:
        """The receiver answers after the request's head and stops reading the body,
        the connection left open: the upload stalls, and once the write times out
        (timeout_seconds = 1) the answer that came decides — the 413 quarantines, the
        401 pauses. It was a timeout, retried for ever, the receiver's answer unread."""
        def answer_at_once(rx: RawReceiver, conn: socket.socket, length: int,
                           got: bytes) -> None:
            conn.sendall(f"HTTP/1.1 {status}\r\nContent-Length: 4\r\n\r\nnope".encode())
            rx.pace(GIVE_UP)  # reads nothing more; the test's end releases it
            raise OSError("stalled")

        bundle = big_bundle(tmp_path / "work")
        with RawReceiver(lambda rx, conn, n: None, take_body=answer_at_once) as rx:
            d = HttpDeliverer(http_cfg(url=f"http://127.0.0.1:{rx.port}/b", timeout_seconds=1))
            started = time.monotonic()
            try:
                with pytest.raises(outcome) as info:
                    d.deliver(bundle, build_manifest(bundle))
            finally:
                d.close()
        assert info.value.status == int(status[:3])  # type: ignore[attr-defined]
        assert time.monotonic() - started < GIVE_UP

    @pytest.mark.parametrize("scheme", ["http", "https"])
    def test_a_2xx_read_after_the_upload_stalled_is_no_receipt(
            self, tmp_path: Path, scheme: str) -> None:
        """The receiver answers 201 after the request's head and stops reading the body,
        the connection left open. Once the upload's time is up (timeout_seconds = 1) the
        answer is read — over plain HTTP because it came, over TLS always (the session
        tickets make the socket readable) — and a 2xx read then answers a request whose
        body was not all sent: no receipt, retried with the same key; the receiver, still
        reading, would have answered the same for a slow and honest one."""
        def answer_at_once(rx: RawReceiver, conn: socket.socket, length: int,
                           got: bytes) -> None:
            conn.sendall(created("R-early"))
            rx.pace(GIVE_UP)  # reads nothing more; the test's end releases it
            raise OSError("stalled")

        tls: dict[str, Any] = {}
        if scheme == "https":
            ca, cert, key, _, _ = _certificates(tmp_path)
            server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            server.load_cert_chain(str(cert), str(key))
            tls = {"server": server, "verify": str(ca)}
        bundle = big_bundle(tmp_path / "work")
        with RawReceiver(lambda rx, conn, n: None, take_body=answer_at_once,
                         tls=tls.get("server")) as rx:
            d = HttpDeliverer(http_cfg(url=f"{scheme}://127.0.0.1:{rx.port}/b",
                                       timeout_seconds=1, verify=tls.get("verify", True)))
            started = time.monotonic()
            try:
                with pytest.raises(Retryable) as info:
                    d.deliver(bundle, build_manifest(bundle))
            finally:
                d.close()
        assert "answered HTTP 201 before it had the whole request" in str(info.value)
        assert time.monotonic() - started < GIVE_UP


class _Stream:
    """A connection's stream as httpcore's: records what goes out and what is read."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.reads = 0

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written.append(buffer)

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.reads += 1
        return b"HTTP/1.1 201 Created\r\n"

    def get_extra_info(self, info: str) -> Any:
        return object() if info == "ssl_object" else None


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_write_after_the_uploads_time_is_up_never_goes_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The upload's time (timeout_seconds, and as much again a MiB) used up between two
    writes (the client built the next part slowly): the next write is not sent at all,
    and the attempt ends as the upload's timeout, in figures."""
    clock = _Clock()
    monkeypatch.setattr(answer_deadline.time, "monotonic", clock)
    inner = _Stream()
    stream = answer_deadline._AnswerClockStream(inner, 2.0)  # type: ignore[arg-type]
    stream.write(b"POST /bundles HTTP/1.1\r\n")
    clock.now += 3.0
    with pytest.raises(httpcore.WriteTimeout) as info:
        stream.write(b"the body")
    assert inner.written == [b"POST /bundles HTTP/1.1\r\n"]
    assert str(info.value).startswith(answer_deadline.UPLOAD_TOO_SLOW)
    assert "[delivery] timeout_seconds = 2" in str(info.value)


def test_a_read_after_the_answers_time_is_up_is_a_timeout_without_reading(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The answer's time (timeout_seconds from its first read) used up between two
    reads: the next read is a timeout saying so, not one more wait on the receiver."""
    clock = _Clock()
    monkeypatch.setattr(answer_deadline.time, "monotonic", clock)
    inner = _Stream()
    stream = answer_deadline._AnswerClockStream(inner, 2.0)  # type: ignore[arg-type]
    stream.write(b"POST /bundles HTTP/1.1\r\n\r\n")
    assert stream.read(65536) == b"HTTP/1.1 201 Created\r\n"
    clock.now += 2.5
    with pytest.raises(httpcore.ReadTimeout) as info:
        stream.read(65536)
    assert inner.reads == 1
    assert str(info.value) == "the receiver's answer did not come whole within 2 s"
